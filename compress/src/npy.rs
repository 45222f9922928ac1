//! NumPy `.npy` tensors in and out of the CLI.

use npyz::{DType as NpyDType, NpyFile, WriterBuilder};
use sprig_runtime::DType;
use std::path::Path;

/// A loaded array: element type, shape and little-endian bytes.
#[derive(Debug, Clone)]
pub struct Array {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<u64>,
    /// Little-endian elements.
    pub bytes: Vec<u8>,
}

fn bad(path: &Path, what: impl std::fmt::Display) -> crate::Error {
    crate::Error::Invalid(format!("{}: {what}", path.display()))
}

/// Reads a `.npy` file of float32, int8, uint8, int32 or int64.
pub fn read(path: &Path) -> crate::Result<Array> {
    let raw = crate::read_file(path)?;
    let npy = NpyFile::new(&raw[..]).map_err(|e| bad(path, format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let ts = match npy.dtype() {
        NpyDType::Plain(ts) => ts,
        other => return Err(bad(path, format!("unsupported dtype {other:?}"))),
    };
    let ts_s = ts.to_string();
    let (dtype, bytes): (DType, Vec<u8>) = match ts_s.trim_start_matches(['<', '|', '=']) {
        "f4" => (
            DType::F32,
            npy.into_vec::<f32>()
                .map_err(|e| bad(path, e))?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        "i1" => (
            DType::I8,
            npy.into_vec::<i8>()
                .map_err(|e| bad(path, e))?
                .iter()
                .map(|&v| v as u8)
                .collect(),
        ),
        "u1" => (DType::U8, npy.into_vec::<u8>().map_err(|e| bad(path, e))?),
        "i4" => (
            DType::I32,
            npy.into_vec::<i32>()
                .map_err(|e| bad(path, e))?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        "i8" => (
            DType::I64,
            npy.into_vec::<i64>()
                .map_err(|e| bad(path, e))?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        _ => {
            return Err(bad(
                path,
                format!("unsupported dtype {ts_s} (use float32, int8, uint8, int32 or int64)"),
            ))
        }
    };
    Ok(Array {
        dtype,
        shape,
        bytes,
    })
}

/// Writes an array as `.npy`.
pub fn write(path: &Path, dtype: DType, shape: &[u64], bytes: &[u8]) -> crate::Result<()> {
    let mut out = Vec::new();
    let io = |err: std::io::Error| crate::Error::Io {
        path: path.into(),
        err,
    };
    macro_rules! put {
        ($t:ty, $n:expr, $conv:expr) => {{
            let mut w = npyz::WriteOptions::new()
                .default_dtype()
                .shape(shape)
                .writer(&mut out)
                .begin_nd()
                .map_err(io)?;
            for c in bytes.chunks_exact($n) {
                let v: $t = $conv(c);
                w.push(&v).map_err(io)?;
            }
            w.finish().map_err(io)?;
        }};
    }
    match dtype {
        DType::F32 => put!(f32, 4, |c: &[u8]| f32::from_le_bytes(c.try_into().unwrap())),
        DType::I8 => put!(i8, 1, |c: &[u8]| c[0] as i8),
        DType::U8 | DType::Bool => put!(u8, 1, |c: &[u8]| c[0]),
        DType::I32 => put!(i32, 4, |c: &[u8]| i32::from_le_bytes(c.try_into().unwrap())),
        DType::I64 => put!(i64, 8, |c: &[u8]| i64::from_le_bytes(c.try_into().unwrap())),
        DType::F16 => put!(f32, 2, |c: &[u8]| half_to_f32(u16::from_le_bytes([
            c[0], c[1]
        ]))),
    }
    crate::write_file(path, &out)
}

fn half_to_f32(bits: u16) -> f32 {
    let sign = ((bits >> 15) as u32) << 31;
    let exp = ((bits >> 10) & 0x1f) as i32;
    let man = (bits & 0x3ff) as u32;
    let v = if exp == 0 {
        (man as f32) * 2f32.powi(-24)
    } else if exp == 31 {
        if man == 0 {
            f32::INFINITY
        } else {
            f32::NAN
        }
    } else {
        (1.0 + man as f32 / 1024.0) * 2f32.powi(exp - 15)
    };
    f32::from_bits(v.to_bits() | sign)
}
