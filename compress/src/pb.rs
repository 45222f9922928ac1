//! A minimal protobuf writer for the ONNX messages sprig exports.

/// A message being built.
#[derive(Debug, Default, Clone)]
pub struct Msg(pub Vec<u8>);

impl Msg {
    /// An empty message.
    pub fn new() -> Self {
        Msg(Vec::new())
    }

    fn raw_varint(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                break;
            }
            self.0.push(b | 0x80);
        }
    }

    /// Varint field (int32/int64/enum; negative values as 10-byte two's complement).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.raw_varint((field as u64) << 3);
        self.raw_varint(v as u64);
        self
    }

    /// Length-delimited field.
    pub fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.raw_varint(((field as u64) << 3) | 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    /// String field.
    pub fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    /// Embedded message field.
    pub fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }

    /// 64-bit fixed field (`double`, `fixed64`), as raw bits.
    pub fn fixed64(&mut self, field: u32, bits: u64) {
        self.raw_varint(((field as u64) << 3) | 1);
        self.0.extend_from_slice(&bits.to_le_bytes());
    }

    /// float field (fixed32).
    pub fn f32(&mut self, field: u32, v: f32) -> &mut Self {
        self.raw_varint(((field as u64) << 3) | 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
}

/// ONNX element type codes used by the exporter.
pub mod dtype {
    /// float32
    pub const FLOAT: i64 = 1;
    /// float16
    pub const FLOAT16: i64 = 10;
    /// int8
    pub const INT8: i64 = 3;
    /// int32
    pub const INT32: i64 = 6;
    /// int64
    pub const INT64: i64 = 7;
}

/// A `TensorProto` with raw little-endian data.
pub fn tensor(name: &str, dtype: i64, dims: &[usize], raw: &[u8]) -> Msg {
    let mut t = Msg::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, dtype).str(8, name).bytes(9, raw);
    t
}

/// float32 tensor.
pub fn tensor_f32(name: &str, dims: &[usize], v: &[f32]) -> Msg {
    tensor(
        name,
        dtype::FLOAT,
        dims,
        &v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(),
    )
}

/// A float16 `TensorProto` of `v` rounded to half precision.
pub fn tensor_f16(name: &str, dims: &[usize], v: &[f32]) -> Msg {
    tensor(
        name,
        dtype::FLOAT16,
        dims,
        &v.iter()
            .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
            .collect::<Vec<_>>(),
    )
}

/// `ValueInfoProto` of a tensor with a static shape.
pub fn value_info(name: &str, elem: i64, dims: &[usize]) -> Msg {
    let mut shape = Msg::new();
    for &d in dims {
        shape.msg(1, Msg::new().int(1, d as i64));
    }
    let mut tt = Msg::new();
    tt.int(1, elem).msg(2, &shape);
    let mut ty = Msg::new();
    ty.msg(1, &tt);
    let mut vi = Msg::new();
    vi.str(1, name).msg(2, &ty);
    vi
}

/// An attribute.
pub enum Attr<'a> {
    /// INT
    Int(i64),
    /// INTS
    Ints(&'a [i64]),
    /// FLOAT
    Float(f32),
}

/// A `NodeProto`.
pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> Msg {
    let mut n = Msg::new();
    for i in inputs {
        n.str(1, i);
    }
    for o in outputs {
        n.str(2, o);
    }
    n.str(3, name).str(4, op);
    for (an, a) in attrs {
        let mut m = Msg::new();
        m.str(1, an);
        match a {
            Attr::Int(v) => {
                m.int(3, *v).int(20, 2);
            }
            Attr::Ints(v) => {
                for x in *v {
                    m.int(8, *x);
                }
                m.int(20, 7);
            }
            Attr::Float(v) => {
                m.f32(2, *v).int(20, 1);
            }
        }
        n.msg(5, &m);
    }
    n
}

/// Wraps a graph into a `ModelProto` (IR 8, default-domain opset `opset`).
pub fn model(graph: &Msg, opset: i64) -> Vec<u8> {
    let mut m = Msg::new();
    m.int(1, 8)
        .str(2, "sprig")
        .str(3, env!("CARGO_PKG_VERSION"));
    m.msg(8, Msg::new().str(1, "").int(2, opset));
    m.msg(7, graph);
    m.0
}
