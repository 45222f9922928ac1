//! Zero-copy views of the ONNX messages the runtime reads: model, graph, node, attribute, tensor
//! and value info. Field numbers follow onnx.proto. Views borrow the model bytes; only small
//! fixed-size tables (names of a node's inputs) are copied.

use crate::error::{Error, Name, Result};
use crate::proto::{for_each_packed_varint, read_varint, Fields, Value};
use crate::tensor::{DType, Shape, MAX_RANK};

/// Most inputs one node may have (Concat in a DenseNet block can have many).
pub const MAX_NODE_INPUTS: usize = 16;
/// Most outputs one node may have.
pub const MAX_NODE_OUTPUTS: usize = 4;

/// A parsed, validated ONNX model borrowing its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Model<'m> {
    bytes: &'m [u8],
    graph: &'m [u8],
    opset: i64,
    ir_version: i64,
    node_count: usize,
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidModel { reason }
}

impl<'m> Model<'m> {
    /// Reads and validates a serialized `ModelProto`. Nothing is copied: initializer data stays
    /// in `bytes` (which may live in flash). Every message is walked once here, so later
    /// iteration over the same bytes cannot meet malformed data.
    pub fn parse(bytes: &'m [u8]) -> Result<Self> {
        let mut graph = None;
        let mut opset = None;
        let mut ir_version = 0;
        for f in Fields::new(bytes) {
            match f? {
                (1, v) => ir_version = v.as_i64()?,
                (7, v) => graph = Some(v.as_bytes()?),
                (8, v) => {
                    let mut domain = "";
                    let mut version = 0;
                    for g in Fields::new(v.as_bytes()?) {
                        match g? {
                            (1, v) => domain = v.as_str()?,
                            (2, v) => version = v.as_i64()?,
                            _ => {}
                        }
                    }
                    if domain.is_empty() || domain == "ai.onnx" {
                        opset = Some(version);
                    }
                }
                _ => {}
            }
        }
        let graph = graph.ok_or(invalid("no graph"))?;
        let opset = opset.ok_or(invalid("no opset import for the default ONNX domain"))?;
        if opset < 1 {
            return Err(invalid("opset version below 1"));
        }
        let mut m = Model {
            bytes,
            graph,
            opset,
            ir_version,
            node_count: 0,
        };
        m.validate()?;
        Ok(m)
    }

    #[inline(never)] // keeps this large frame off the caller's stack on MCUs
    fn validate(&mut self) -> Result<()> {
        let mut nodes = 0usize;
        let mut outputs = 0usize;
        for f in Fields::new(self.graph) {
            match f? {
                (1, v) => {
                    let node = Node::parse(v.as_bytes()?)?;
                    // Touch every attribute so malformed attributes surface here.
                    for a in Fields::new(node.raw) {
                        if let (5, v) = a? {
                            Attribute::parse(v.as_bytes()?)?;
                        }
                    }
                    nodes += 1;
                }
                (5, v) => {
                    TensorView::parse(v.as_bytes()?)?;
                }
                (11, v) => {
                    ValueInfo::parse(v.as_bytes()?)?;
                }
                (12, v) => {
                    ValueInfo::parse(v.as_bytes()?)?;
                    outputs += 1;
                }
                (15, _) => return Err(invalid("sparse initializers are not supported")),
                _ => {}
            }
        }
        if outputs == 0 {
            return Err(invalid("graph has no outputs"));
        }
        self.node_count = nodes;
        Ok(())
    }

    /// The opset version of the default domain; attribute handling depends on it.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// A `metadata_props` value by key (e.g. how a trajectory model's output is decoded).
    pub fn metadata(&self, key: &str) -> Option<&'m str> {
        Fields::new(self.bytes).find_map(|f| match f {
            Ok((14, Value::Bytes(entry))) => {
                let (mut k, mut v) = (None, None);
                for g in Fields::new(entry) {
                    match g {
                        Ok((1, x)) => k = x.as_str().ok(),
                        Ok((2, x)) => v = x.as_str().ok(),
                        _ => {}
                    }
                }
                (k == Some(key)).then_some(v).flatten()
            }
            _ => None,
        })
    }

    /// The IR version field.
    pub fn ir_version(&self) -> i64 {
        self.ir_version
    }

    /// Number of nodes in the graph.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    fn graph_items<T: 'm>(
        &self,
        field: u32,
        f: fn(&'m [u8]) -> Result<T>,
    ) -> impl Iterator<Item = Result<T>> + 'm {
        Fields::new(self.graph).filter_map(move |r| match r {
            Ok((n, Value::Bytes(b))) if n == field => Some(f(b)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// Nodes in file order (ONNX requires topological order).
    pub fn nodes(&self) -> impl Iterator<Item = Result<Node<'m>>> + 'm {
        self.graph_items(1, Node::parse)
    }

    /// Constant tensors.
    pub fn initializers(&self) -> impl Iterator<Item = Result<TensorView<'m>>> + 'm {
        self.graph_items(5, TensorView::parse)
    }

    /// Graph inputs (older files also list initializers here; the planner skips those).
    pub fn inputs(&self) -> impl Iterator<Item = Result<ValueInfo<'m>>> + 'm {
        self.graph_items(11, ValueInfo::parse)
    }

    /// Graph outputs.
    pub fn outputs(&self) -> impl Iterator<Item = Result<ValueInfo<'m>>> + 'm {
        self.graph_items(12, ValueInfo::parse)
    }

    /// Finds an initializer by name.
    pub fn initializer(&self, name: &str) -> Result<Option<TensorView<'m>>> {
        for t in self.initializers() {
            let t = t?;
            if t.name == name {
                return Ok(Some(t));
            }
        }
        Ok(None)
    }
}

/// One node: its op, names of inputs and outputs, and its attributes (read on demand).
#[derive(Debug, Clone)]
pub struct Node<'m> {
    /// Node name ("" when the file gives none).
    pub name: &'m str,
    /// Operator type, e.g. `Conv`.
    pub op_type: &'m str,
    /// Operator domain ("" for the default ONNX domain).
    pub domain: &'m str,
    /// Input tensor names; "" marks an omitted optional input.
    pub inputs: heapless::Vec<&'m str, MAX_NODE_INPUTS>,
    /// Output tensor names.
    pub outputs: heapless::Vec<&'m str, MAX_NODE_OUTPUTS>,
    raw: &'m [u8],
}

impl<'m> Node<'m> {
    /// Reads a `NodeProto`.
    pub fn parse(raw: &'m [u8]) -> Result<Self> {
        let mut n = Node {
            name: "",
            op_type: "",
            domain: "",
            inputs: heapless::Vec::new(),
            outputs: heapless::Vec::new(),
            raw,
        };
        for f in Fields::new(raw) {
            match f? {
                (1, v) => n
                    .inputs
                    .push(v.as_str()?)
                    .map_err(|_| Error::CapacityExceeded {
                        what: "inputs of one node",
                        capacity: MAX_NODE_INPUTS,
                    })?,
                (2, v) => n
                    .outputs
                    .push(v.as_str()?)
                    .map_err(|_| Error::CapacityExceeded {
                        what: "outputs of one node",
                        capacity: MAX_NODE_OUTPUTS,
                    })?,
                (3, v) => n.name = v.as_str()?,
                (4, v) => n.op_type = v.as_str()?,
                (7, v) => n.domain = v.as_str()?,
                _ => {}
            }
        }
        if n.op_type.is_empty() {
            return Err(invalid("node without op_type"));
        }
        // Every ONNX operator has at least one output; refusing the rest here lets each pass
        // read `outputs[0]`.
        if n.outputs.is_empty() {
            return Err(invalid("node without outputs"));
        }
        Ok(n)
    }

    /// A name for messages: the node name, else its first output.
    pub fn label(&self) -> Name {
        if !self.name.is_empty() {
            Name::new(self.name)
        } else {
            Name::new(self.outputs.first().copied().unwrap_or(self.op_type))
        }
    }

    /// Input `i`, or `None` when absent or given as "".
    pub fn input(&self, i: usize) -> Option<&'m str> {
        self.inputs.get(i).copied().filter(|s| !s.is_empty())
    }

    /// Looks up an attribute by name.
    pub fn attr(&self, name: &str) -> Result<Option<Attribute<'m>>> {
        for f in Fields::new(self.raw) {
            if let (5, v) = f? {
                let a = Attribute::parse(v.as_bytes()?)?;
                if a.name == name {
                    return Ok(Some(a));
                }
            }
        }
        Ok(None)
    }

    /// Names of all attributes (to reject ones an op does not implement).
    pub fn attr_names(&self) -> impl Iterator<Item = Result<&'m str>> + 'm {
        Fields::new(self.raw).filter_map(|r| match r {
            Ok((5, Value::Bytes(b))) => Some(Attribute::parse(b).map(|a| a.name)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// An integer attribute or its default.
    pub fn attr_i(&self, name: &str, default: i64) -> Result<i64> {
        match self.attr(name)? {
            Some(a) => a
                .int()
                .ok_or_else(|| self.bad_attr("integer attribute of another type")),
            None => Ok(default),
        }
    }

    /// A float attribute or its default.
    pub fn attr_f(&self, name: &str, default: f32) -> Result<f32> {
        match self.attr(name)? {
            Some(a) => a
                .float()
                .ok_or_else(|| self.bad_attr("float attribute of another type")),
            None => Ok(default),
        }
    }

    /// A list-of-ints attribute copied into `out`; returns how many there were, or `None`.
    pub fn attr_ints(&self, name: &str, out: &mut [i64]) -> Result<Option<usize>> {
        match self.attr(name)? {
            Some(a) => a
                .ints(out)
                .map(Some)
                .map_err(|_| self.bad_attr("list attribute too long or of another type")),
            None => Ok(None),
        }
    }

    /// A string attribute.
    pub fn attr_s(&self, name: &str) -> Result<Option<&'m [u8]>> {
        Ok(self.attr(name)?.and_then(|a| a.bytes))
    }

    pub(crate) fn bad_attr(&self, what: &'static str) -> Error {
        Error::Unsupported {
            node: self.label(),
            what,
        }
    }
}

/// One `AttributeProto`.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'m> {
    /// Attribute name.
    pub name: &'m str,
    kind: i64,
    f: Option<f32>,
    i: Option<i64>,
    bytes: Option<&'m [u8]>,
    tensor: Option<&'m [u8]>,
    raw: &'m [u8],
}

impl<'m> Attribute<'m> {
    fn parse(raw: &'m [u8]) -> Result<Self> {
        let mut a = Attribute {
            name: "",
            kind: 0,
            f: None,
            i: None,
            bytes: None,
            tensor: None,
            raw,
        };
        for f in Fields::new(raw) {
            match f? {
                (1, v) => a.name = v.as_str()?,
                (2, v) => a.f = Some(v.as_f32()?),
                (3, v) => a.i = Some(v.as_i64()?),
                (4, v) => a.bytes = Some(v.as_bytes()?),
                (5, v) => a.tensor = Some(v.as_bytes()?),
                (20, v) => a.kind = v.as_i64()?,
                (7, Value::Bytes(_)) | (7, Value::Fixed32(_)) | (8, _) => {}
                (7, _) => {
                    return Err(Error::Malformed {
                        what: "floats attribute with a non-float wire type",
                    })
                }
                _ => {}
            }
        }
        if let Some(t) = a.tensor {
            TensorView::parse(t)?;
        }
        Ok(a)
    }

    /// The integer value (type INT).
    pub fn int(&self) -> Option<i64> {
        if self.kind == 2 || (self.kind == 0 && self.i.is_some()) {
            self.i.or(Some(0))
        } else {
            None
        }
    }

    /// The float value (type FLOAT).
    pub fn float(&self) -> Option<f32> {
        if self.kind == 1 || (self.kind == 0 && self.f.is_some()) {
            self.f.or(Some(0.0))
        } else {
            None
        }
    }

    /// The tensor value (type TENSOR).
    pub fn tensor(&self) -> Option<Result<TensorView<'m>>> {
        self.tensor.map(TensorView::parse)
    }

    /// Calls `f` with each entry of a STRINGS list, in order.
    pub fn for_each_string(&self, mut f: impl FnMut(&'m [u8]) -> Result<()>) -> Result<()> {
        if self.kind != 8 && self.kind != 0 {
            return Err(invalid("expected a STRINGS attribute"));
        }
        for field in Fields::new(self.raw) {
            if let (9, v) = field? {
                f(v.as_bytes()?)?;
            }
        }
        Ok(())
    }

    /// Copies an INTS list into `out` and returns its length.
    pub fn ints(&self, out: &mut [i64]) -> Result<usize> {
        if self.kind != 7 && self.kind != 0 {
            return Err(invalid("expected an INTS attribute"));
        }
        let mut n = 0;
        for f in Fields::new(self.raw) {
            if let (8, v) = f? {
                for_each_packed_varint(v, |x| {
                    *out.get_mut(n).ok_or(invalid("INTS attribute too long"))? = x;
                    n += 1;
                    Ok(())
                })?;
            }
        }
        Ok(n)
    }

    /// Copies a FLOATS list into `out` and returns its length.
    pub fn floats(&self, out: &mut [f32]) -> Result<usize> {
        let mut n = 0;
        let mut push = |x: f32| -> Result<()> {
            *out.get_mut(n).ok_or(invalid("FLOATS attribute too long"))? = x;
            n += 1;
            Ok(())
        };
        for f in Fields::new(self.raw) {
            match f? {
                (7, Value::Fixed32(b)) => push(f32::from_bits(b))?,
                (7, Value::Bytes(b)) => {
                    for c in b.chunks_exact(4) {
                        push(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))?;
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    }
}

/// Where a tensor's elements are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorData<'m> {
    /// Little-endian packed elements (`raw_data`, or packed `float_data`).
    Raw(&'m [u8]),
    /// Packed varints (`int32_data` / `int64_data`), one per element.
    Varints(&'m [u8]),
}

/// A `TensorProto`: an initializer, a Constant's value or a test-data tensor.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'m> {
    /// Tensor name.
    pub name: &'m str,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Shape,
    /// The elements.
    pub data: TensorData<'m>,
}

impl<'m> TensorView<'m> {
    /// Reads and validates a `TensorProto`: the data must hold exactly `numel` elements.
    pub fn parse(raw: &'m [u8]) -> Result<Self> {
        let mut name = "";
        let mut dims = [0i64; MAX_RANK];
        let mut rank = 0usize;
        let mut dtype_code = 0i64;
        let mut data = None;
        let mut external = false;
        let mut too_many_dims = false;
        for f in Fields::new(raw) {
            match f? {
                (1, v) => for_each_packed_varint(v, |d| {
                    if rank < MAX_RANK {
                        dims[rank] = d;
                    } else {
                        too_many_dims = true;
                    }
                    rank += 1;
                    Ok(())
                })?,
                (2, v) => dtype_code = v.as_i64()?,
                (4, Value::Bytes(b)) | (9, Value::Bytes(b)) => data = Some(TensorData::Raw(b)),
                (5, Value::Bytes(b)) | (7, Value::Bytes(b)) => data = Some(TensorData::Varints(b)),
                (4 | 5 | 7, _) => {
                    return Err(Error::BadInitializer {
                        name: Name::new(name),
                    })
                }
                (3, _) => return Err(invalid("segmented tensors are not supported")),
                (6 | 10 | 11, _) => {
                    return Err(Error::UnsupportedDtype {
                        name: Name::new(name),
                        code: dtype_code as i32,
                    })
                }
                (8, v) => name = v.as_str()?,
                (13, _) => external = true,
                (14, v) => external |= v.as_i64()? == 1,
                _ => {}
            }
        }
        if external {
            return Err(Error::ExternalData {
                name: Name::new(name),
            });
        }
        if too_many_dims {
            return Err(Error::BadDimension {
                name: Name::new(name),
            });
        }
        let dtype = DType::from_onnx(dtype_code, name)?;
        let shape = Shape::new(&dims[..rank], name)?;
        let data = data.unwrap_or(TensorData::Raw(&[]));
        let numel = shape.numel();
        let ok = match data {
            TensorData::Raw(b) => numel.checked_mul(dtype.size()) == Some(b.len()),
            TensorData::Varints(b) => count_varints(b)? == numel,
        };
        if !ok {
            return Err(Error::BadInitializer {
                name: Name::new(name),
            });
        }
        Ok(TensorView {
            name,
            dtype,
            shape,
            data,
        })
    }

    /// Visits every element converted to `i64` (integer types; floats are truncated toward 0).
    pub fn for_each_i64(&self, mut f: impl FnMut(usize, i64)) -> Result<()> {
        match self.data {
            TensorData::Varints(b) => {
                let mut pos = 0;
                let mut i = 0;
                while pos < b.len() {
                    let v = read_varint(b, &mut pos)? as i64;
                    // int32_data holds sign-extended int32 for int32 and smaller types.
                    let v = if self.dtype == DType::I64 {
                        v
                    } else {
                        v as i32 as i64
                    };
                    f(i, v);
                    i += 1;
                }
            }
            TensorData::Raw(b) => {
                for (i, c) in b.chunks_exact(self.dtype.size()).enumerate() {
                    f(i, raw_to_i64(self.dtype, c));
                }
            }
        }
        Ok(())
    }

    /// Visits every element converted to `f32`.
    pub fn for_each_f32(&self, mut f: impl FnMut(usize, f32)) -> Result<()> {
        match (self.data, self.dtype) {
            (TensorData::Raw(b), DType::F32) => {
                for (i, c) in b.chunks_exact(4).enumerate() {
                    f(i, f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
                Ok(())
            }
            (TensorData::Raw(b), DType::F16) => {
                for (i, c) in b.chunks_exact(2).enumerate() {
                    f(i, half::f16::from_le_bytes([c[0], c[1]]).to_f32());
                }
                Ok(())
            }
            (TensorData::Varints(_), DType::F16) => {
                self.for_each_i64(|i, v| f(i, half::f16::from_bits(v as u16).to_f32()))
            }
            _ => self.for_each_i64(|i, v| f(i, v as f32)),
        }
    }

    /// Element `i` as `f32` (for scalars such as scales; linear time for varint data).
    pub fn f32_at(&self, i: usize) -> Result<f32> {
        let mut out = None;
        self.for_each_f32(|j, v| {
            if j == i {
                out = Some(v)
            }
        })?;
        out.ok_or(Error::BadInitializer {
            name: Name::new(self.name),
        })
    }

    /// Element `i` as `i64`.
    pub fn i64_at(&self, i: usize) -> Result<i64> {
        let mut out = None;
        self.for_each_i64(|j, v| {
            if j == i {
                out = Some(v)
            }
        })?;
        out.ok_or(Error::BadInitializer {
            name: Name::new(self.name),
        })
    }

    /// The raw little-endian bytes when stored that way (zero-copy weights).
    pub fn raw(&self) -> Option<&'m [u8]> {
        match self.data {
            TensorData::Raw(b) => Some(b),
            TensorData::Varints(_) => None,
        }
    }
}

fn raw_to_i64(dtype: DType, c: &[u8]) -> i64 {
    match dtype {
        DType::I8 => c[0] as i8 as i64,
        DType::U8 | DType::Bool => c[0] as i64,
        DType::I32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
        DType::I64 => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        DType::F32 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
        DType::F16 => half::f16::from_le_bytes([c[0], c[1]]).to_f32() as i64,
    }
}

fn count_varints(b: &[u8]) -> Result<usize> {
    let mut pos = 0;
    let mut n = 0;
    while pos < b.len() {
        read_varint(b, &mut pos)?;
        n += 1;
    }
    Ok(n)
}

/// A graph input or output: name, element type and (static) shape if the file gives one.
#[derive(Debug, Clone, Copy)]
pub struct ValueInfo<'m> {
    /// Tensor name.
    pub name: &'m str,
    /// Element type, if given.
    pub dtype: Option<DType>,
    /// Shape, if every dimension is a number.
    pub shape: Option<Shape>,
}

impl<'m> ValueInfo<'m> {
    fn parse(raw: &'m [u8]) -> Result<Self> {
        let mut vi = ValueInfo {
            name: "",
            dtype: None,
            shape: None,
        };
        let mut ty = None;
        for f in Fields::new(raw) {
            match f? {
                (1, v) => vi.name = v.as_str()?,
                (2, v) => ty = Some(v.as_bytes()?),
                _ => {}
            }
        }
        let Some(ty) = ty else { return Ok(vi) };
        for f in Fields::new(ty) {
            if let (1, v) = f? {
                // TypeProto.Tensor
                let mut dims = [0i64; MAX_RANK];
                let mut rank = 0usize;
                let mut known = true;
                let mut has_shape = false;
                for g in Fields::new(v.as_bytes()?) {
                    match g? {
                        (1, v) => vi.dtype = Some(DType::from_onnx(v.as_i64()?, vi.name)?),
                        (2, v) => {
                            has_shape = true;
                            for d in Fields::new(v.as_bytes()?) {
                                if let (1, v) = d? {
                                    let mut value = None;
                                    for e in Fields::new(v.as_bytes()?) {
                                        if let (1, v) = e? {
                                            value = Some(v.as_i64()?);
                                        }
                                    }
                                    match value {
                                        Some(x) if rank < MAX_RANK => dims[rank] = x,
                                        Some(_) => {
                                            return Err(Error::BadDimension {
                                                name: Name::new(vi.name),
                                            })
                                        }
                                        None => known = false,
                                    }
                                    rank += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if has_shape && known {
                    vi.shape = Some(Shape::new(&dims[..rank.min(MAX_RANK)], vi.name)?);
                }
            }
        }
        Ok(vi)
    }
}

impl<'m> Model<'m> {
    /// Raw `NodeProto` bytes in file order.
    pub fn node_slices(&self) -> impl Iterator<Item = Result<&'m [u8]>> + 'm {
        self.graph_items(1, Ok)
    }

    /// Raw `TensorProto` bytes of the initializers, in file order (for tools that rewrite a
    /// graph and copy what they do not change).
    pub fn initializer_slices(&self) -> impl Iterator<Item = Result<&'m [u8]>> + 'm {
        self.graph_items(5, Ok)
    }

    /// Raw `ValueInfoProto` bytes of the graph inputs (`outputs: false`) or outputs.
    pub fn value_info_slices(&self, outputs: bool) -> impl Iterator<Item = Result<&'m [u8]>> + 'm {
        self.graph_items(if outputs { 12 } else { 11 }, Ok)
    }
}

/// Visits the op type of every node without validating the rest of the file (to decide which
/// tools or tests apply to a model before parsing it properly).
pub fn for_each_op_type<'m>(bytes: &'m [u8], mut f: impl FnMut(&'m str)) -> Result<()> {
    for field in Fields::new(bytes) {
        if let (7, v) = field? {
            for g in Fields::new(v.as_bytes()?) {
                if let (1, v) = g? {
                    for n in Fields::new(v.as_bytes()?) {
                        if let (4, v) = n? {
                            f(v.as_str()?);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_needs_an_op_type_and_an_output() {
        // input "x" (field 1), op_type "Relu" (field 4)
        let no_output = [0x0a, 1, b'x', 0x22, 4, b'R', b'e', b'l', b'u'];
        assert!(matches!(
            Node::parse(&no_output),
            Err(Error::InvalidModel { .. })
        ));
        // ... and output "y" (field 2)
        let relu = [
            0x0a, 1, b'x', 0x12, 1, b'y', 0x22, 4, b'R', b'e', b'l', b'u',
        ];
        let n = Node::parse(&relu).unwrap();
        assert_eq!((n.op_type, n.outputs[0]), ("Relu", "y"));
        // output only, no op_type
        assert!(matches!(
            Node::parse(&[0x12, 1, b'y']),
            Err(Error::InvalidModel { .. })
        ));
    }
}
