//! Protobuf wire-format reader over a borrowed byte slice. Every read is bounds-checked and
//! returns [`Error`] instead of panicking; nothing is copied.

use crate::error::{Error, Result};

/// One field value as it appears on the wire.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (little-endian 8 bytes).
    Fixed64(u64),
    /// Wire type 2: a sub-message, string, bytes or packed repeated field.
    Bytes(&'a [u8]),
    /// Wire type 5 (little-endian 4 bytes).
    Fixed32(u32),
}

impl<'a> Value<'a> {
    /// The value of an integer field (varint), as protobuf's two's-complement int64.
    pub fn as_i64(self) -> Result<i64> {
        match self {
            Value::Varint(v) => Ok(v as i64),
            _ => Err(Error::Malformed {
                what: "expected a varint field",
            }),
        }
    }

    /// The bytes of a length-delimited field.
    pub fn as_bytes(self) -> Result<&'a [u8]> {
        match self {
            Value::Bytes(b) => Ok(b),
            _ => Err(Error::Malformed {
                what: "expected a length-delimited field",
            }),
        }
    }

    /// A UTF-8 string field.
    pub fn as_str(self) -> Result<&'a str> {
        core::str::from_utf8(self.as_bytes()?).map_err(|_| Error::Malformed {
            what: "string is not UTF-8",
        })
    }

    /// A `float` field (fixed32).
    pub fn as_f32(self) -> Result<f32> {
        match self {
            Value::Fixed32(v) => Ok(f32::from_bits(v)),
            _ => Err(Error::Malformed {
                what: "expected a fixed32 field",
            }),
        }
    }
}

/// Iterates over the `(field number, value)` pairs of one message.
#[derive(Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    /// Starts reading the message held in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Fields { buf, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or(Error::Truncated { at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64> {
        read_varint(self.buf, &mut self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(Error::Truncated { at: self.pos })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next_field(&mut self) -> Result<(u32, Value<'a>)> {
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        if field == 0 || key >> 3 > u32::MAX as u64 {
            return Err(Error::Malformed {
                what: "field number 0 or too large",
            });
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Value::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| Error::Truncated { at: self.pos })?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let mut a = [0u8; 4];
                for x in a.iter_mut() {
                    *x = self.byte()?;
                }
                Value::Fixed32(u32::from_le_bytes(a))
            }
            _ => {
                return Err(Error::Malformed {
                    what: "unknown wire type",
                })
            }
        };
        Ok((field, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let r = self.next_field();
        if r.is_err() {
            // Stop after the first error so callers never loop on corrupt data.
            self.pos = self.buf.len();
        }
        Some(r)
    }
}

/// Reads one varint at `*pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(Error::Truncated { at: *pos })?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Error::Malformed {
        what: "varint longer than 10 bytes",
    })
}

/// Visits the integers of a repeated int field that may be packed (one `Bytes` value holding
/// varints) or unpacked (one `Varint` per element).
pub fn for_each_packed_varint(
    value: Value<'_>,
    mut f: impl FnMut(i64) -> Result<()>,
) -> Result<()> {
    match value {
        Value::Varint(v) => f(v as i64),
        Value::Bytes(b) => {
            let mut pos = 0;
            while pos < b.len() {
                f(read_varint(b, &mut pos)? as i64)?;
            }
            Ok(())
        }
        _ => Err(Error::Malformed {
            what: "repeated integer field has a fixed wire type",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_varint_and_bytes() {
        // field 1 varint 300, field 2 bytes "hi", field 3 fixed32 1.0
        let buf = [
            0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x1d, 0, 0, 0x80, 0x3f,
        ];
        let f: Result<heapless::Vec<(u32, Value), 4>> = Fields::new(&buf).collect();
        let f = f.unwrap();
        assert_eq!(f[0].0, 1);
        assert_eq!(f[0].1.as_i64().unwrap(), 300);
        assert_eq!(f[1].1.as_str().unwrap(), "hi");
        assert_eq!(f[2].1.as_f32().unwrap(), 1.0);
    }

    #[test]
    fn truncated_length_is_an_error() {
        let buf = [0x12, 0x05, b'h'];
        assert!(matches!(
            Fields::new(&buf).next(),
            Some(Err(Error::Truncated { .. }))
        ));
    }

    #[test]
    fn overlong_varint_is_an_error() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            Fields::new(&buf).next(),
            Some(Err(Error::Malformed { .. }))
        ));
    }
}
