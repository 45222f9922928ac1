//! Element types and static shapes.

use crate::error::{Error, Name, Result};

/// Highest tensor rank the runtime handles.
pub const MAX_RANK: usize = 8;

/// Element types the runtime stores (ONNX `TensorProto.DataType` subset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE float.
    F16,
    /// Signed 8-bit integer (quantized activations and weights).
    I8,
    /// Unsigned 8-bit integer (quantized activations from some exporters).
    U8,
    /// 32-bit integer (quantized bias).
    I32,
    /// 64-bit integer (shapes, indices).
    I64,
    /// Boolean, one byte per element.
    Bool,
}

impl DType {
    /// The type a tensor of this type is computed and stored in: float16 widens to float32
    /// (f16 models run in f32; a `Cast` to float16 rounds values to f16 precision).
    pub fn computed(self) -> Self {
        match self {
            DType::F16 => DType::F32,
            d => d,
        }
    }

    /// Maps an ONNX data type code; `name` is only used for the error.
    pub fn from_onnx(code: i64, name: &str) -> Result<Self> {
        Ok(match code {
            1 => DType::F32,
            2 => DType::U8,
            3 => DType::I8,
            6 => DType::I32,
            7 => DType::I64,
            9 => DType::Bool,
            10 => DType::F16,
            _ => {
                return Err(Error::UnsupportedDtype {
                    name: Name::new(name),
                    code: code as i32,
                })
            }
        })
    }

    /// The ONNX data type code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::U8 => 2,
            DType::I8 => 3,
            DType::I32 => 6,
            DType::I64 => 7,
            DType::Bool => 9,
            DType::F16 => 10,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }
}

/// A static shape (every dimension known at plan time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    dims: [u32; MAX_RANK],
    rank: u8,
}

impl Shape {
    /// The shape of a scalar (rank 0, one element).
    pub const SCALAR: Shape = Shape {
        dims: [0; MAX_RANK],
        rank: 0,
    };

    /// Builds a shape, rejecting negative dims, too many dims and element counts that overflow.
    pub fn new(dims: &[i64], name: &str) -> Result<Self> {
        if dims.len() > MAX_RANK {
            return Err(Error::BadDimension {
                name: Name::new(name),
            });
        }
        let mut s = Shape {
            dims: [0; MAX_RANK],
            rank: dims.len() as u8,
        };
        for (d, &v) in s.dims.iter_mut().zip(dims) {
            *d = u32::try_from(v).map_err(|_| Error::BadDimension {
                name: Name::new(name),
            })?;
        }
        s.checked_numel().ok_or_else(|| Error::BadDimension {
            name: Name::new(name),
        })?;
        Ok(s)
    }

    /// Builds a shape from unsigned dims (already validated elsewhere).
    pub fn from_usize(dims: &[usize], name: &str) -> Result<Self> {
        let mut v = [0i64; MAX_RANK];
        if dims.len() > MAX_RANK {
            return Err(Error::BadDimension {
                name: Name::new(name),
            });
        }
        for (o, &d) in v.iter_mut().zip(dims) {
            *o = i64::try_from(d).map_err(|_| Error::BadDimension {
                name: Name::new(name),
            })?;
        }
        Shape::new(&v[..dims.len()], name)
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank as usize
    }

    /// Dimension `i` (0 when out of range).
    pub fn dim(&self, i: usize) -> usize {
        if i < self.rank() {
            self.dims[i] as usize
        } else {
            0
        }
    }

    /// All dimensions.
    pub fn dims(&self) -> &[u32] {
        &self.dims[..self.rank()]
    }

    /// Number of elements; shapes are validated on construction so this cannot overflow
    /// (but saturates defensively).
    pub fn numel(&self) -> usize {
        self.checked_numel().unwrap_or(usize::MAX)
    }

    fn checked_numel(&self) -> Option<usize> {
        // Keep sizes well inside isize for byte arithmetic with 8-byte elements.
        let limit = (isize::MAX as usize) / 16;
        self.dims().iter().try_fold(1usize, |acc, &d| {
            acc.checked_mul(d as usize).filter(|&n| n <= limit)
        })
    }
}
