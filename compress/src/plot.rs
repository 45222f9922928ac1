//! Shared plotting set-up: plotters draws text through ab_glyph with a vendored DejaVu Sans
//! (assets/DejaVuSans.LICENSE), so PNG reports need no system font libraries.

use std::sync::Once;

/// Registers the embedded font as "sans-serif" (idempotent).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // Cannot fail for a valid embedded font; a failure would only drop text from plots.
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, font);
    });
}
