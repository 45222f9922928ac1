//! Typed errors. Every failure on a model file, an arena or an input is one of these: the runtime
//! never panics on data it did not write itself.

use core::fmt;

/// What went wrong, with the name of the node or tensor involved where there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The protobuf wire data ended inside a field.
    Truncated {
        /// Byte offset (inside the message being read) where more data was expected.
        at: usize,
    },
    /// A varint longer than 10 bytes or a wire type protobuf does not define.
    Malformed {
        /// What was malformed.
        what: &'static str,
    },
    /// The file is protobuf but not an ONNX model sprig can read.
    InvalidModel {
        /// Why.
        reason: &'static str,
    },
    /// An operator (or a domain other than the default ONNX one) the runtime does not implement.
    UnsupportedOp {
        /// The `op_type`.
        op: Name,
        /// Node name (or first output name when the node has no name).
        node: Name,
    },
    /// The model needs an op family this build of sprig-runtime leaves out (a Cargo feature
    /// such as `float-ops` or `int8-concat`, off to save flash on a microcontroller).
    FamilyNotBuilt {
        /// The feature to enable.
        feature: &'static str,
    },
    /// An attribute value or input combination the implementation of an op does not cover.
    Unsupported {
        /// Node name.
        node: Name,
        /// What is not supported.
        what: &'static str,
    },
    /// A node reads a tensor no earlier node, initializer or graph input defines
    /// (this is also how a graph cycle shows up).
    UndefinedTensor {
        /// The tensor name.
        name: Name,
    },
    /// Two producers for one tensor name.
    DuplicateTensor {
        /// The tensor name.
        name: Name,
    },
    /// Shapes or element types that do not fit together.
    ShapeMismatch {
        /// Node name.
        node: Name,
        /// What did not fit.
        what: &'static str,
    },
    /// A data type the runtime does not store (string, complex, double...).
    UnsupportedDtype {
        /// Tensor name.
        name: Name,
        /// ONNX `TensorProto.DataType` code.
        code: i32,
    },
    /// A dimension that is negative, symbolic, or so large that sizes overflow.
    BadDimension {
        /// Tensor name.
        name: Name,
    },
    /// Initializer data stored outside the file (`data_location = EXTERNAL`).
    ExternalData {
        /// Tensor name.
        name: Name,
    },
    /// Initializer bytes do not match its dims and element type.
    BadInitializer {
        /// Tensor name.
        name: Name,
    },
    /// More nodes, tensors or node inputs than the interpreter's fixed tables hold.
    CapacityExceeded {
        /// Which table.
        what: &'static str,
        /// Its capacity.
        capacity: usize,
    },
    /// The caller's arena is smaller than the plan needs.
    ArenaTooSmall {
        /// Bytes needed (including alignment slack).
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// A frozen plan ([`crate::frozen`]) that is damaged, made for another model, or
    /// inconsistent with its own arena.
    BadPlan {
        /// What was wrong.
        what: &'static str,
    },
    /// Input/output index or buffer size wrong in a call to the interpreter.
    BadIo {
        /// What was wrong.
        what: &'static str,
    },
}

/// A tensor, node or op name copied out of the model (truncated to 47 bytes) so an error can
/// outlive the model bytes and still say which part of the file was wrong.
///
/// Without the `error-names` feature (on in every std build) it holds nothing and shows as
/// `?`: a microcontroller firmware whose model was checked on the host saves the flash that
/// copying and carrying names through every `Result` costs (about 4 KB at opt-level "z"), the
/// way TensorFlow Lite Micro's `TF_LITE_STRIP_ERROR_STRINGS` does. The variant and its other
/// fields stay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name(#[cfg(feature = "error-names")] heapless::String<47>);

impl Name {
    /// Copies `s`, cutting it at a character boundary if it is longer than the buffer.
    #[cfg(feature = "error-names")]
    pub fn new(s: &str) -> Self {
        let mut out = heapless::String::new();
        for ch in s.chars() {
            if out.push(ch).is_err() {
                break;
            }
        }
        Name(out)
    }

    /// Names are left out of this build (feature `error-names` off).
    #[cfg(not(feature = "error-names"))]
    #[inline(always)]
    pub fn new(_: &str) -> Self {
        Name()
    }

    /// The (possibly truncated) name; `?` when the build leaves names out.
    pub fn as_str(&self) -> &str {
        #[cfg(feature = "error-names")]
        return self.0.as_str();
        #[cfg(not(feature = "error-names"))]
        return "?";
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Name {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { at } => write!(f, "model data truncated at byte {at}"),
            Error::Malformed { what } => write!(f, "malformed protobuf: {what}"),
            Error::InvalidModel { reason } => write!(f, "invalid ONNX model: {reason}"),
            Error::UnsupportedOp { op, node } => write!(f, "unsupported operator {op} (node {node})"),
            Error::FamilyNotBuilt { feature } => write!(f, "the model needs op family {feature}, which this build of sprig-runtime leaves out (enable its feature `{feature}`)"),
            Error::Unsupported { node, what } => write!(f, "node {node}: unsupported {what}"),
            Error::UndefinedTensor { name } => write!(f, "tensor {name} is used before it is defined (or the graph has a cycle)"),
            Error::DuplicateTensor { name } => write!(f, "tensor {name} is defined twice"),
            Error::ShapeMismatch { node, what } => write!(f, "node {node}: {what}"),
            Error::UnsupportedDtype { name, code } => write!(f, "tensor {name}: unsupported element type {code}"),
            Error::BadDimension { name } => write!(f, "tensor {name}: negative, symbolic or overflowing dimension"),
            Error::ExternalData { name } => write!(f, "tensor {name}: external data files are not supported; embed the weights in the .onnx file"),
            Error::BadInitializer { name } => write!(f, "initializer {name}: data size does not match its shape and type"),
            Error::CapacityExceeded { what, capacity } => write!(f, "model needs more {what} than the interpreter holds ({capacity})"),
            Error::ArenaTooSmall { needed, given } => write!(f, "arena too small: plan needs {needed} bytes, {given} given"),
            Error::BadPlan { what } => write!(f, "frozen plan refused: {what}"),
            Error::BadIo { what } => write!(f, "bad input/output: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Result alias used throughout the runtime.
pub type Result<T> = core::result::Result<T, Error>;
