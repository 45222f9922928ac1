//! Cross-crate integration and conformance tests live in `tests/`; the speed comparison in
//! `benches/`. This library is empty on purpose.
#![warn(missing_docs)]
