//! The tensor table built from a model: every tensor name once, with its element type, static
//! shape, where its bytes live, and who produces and consumes it.

use crate::error::{Error, Name, Result};
use crate::onnx::{Model, Node, TensorView};
use crate::tensor::{DType, Shape, MAX_RANK};

/// Marks "no node" in producer/consumer fields.
pub const NONE: u16 = u16::MAX;

/// Where a tensor's bytes are at inference time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc<'m> {
    /// Not stored (never used by a step, or not yet planned).
    None,
    /// Borrowed from the model bytes (int8 weights: alignment 1, used in place).
    Model(&'m [u8]),
    /// Copied or precomputed into the persistent head of the arena at this offset.
    Persist(usize),
    /// In the planned working part of the arena at this offset.
    Work(usize),
}

/// One row of the tensor table.
#[derive(Debug, Clone, Copy)]
pub struct TensorInfo<'m> {
    /// Tensor name from the model.
    pub name: &'m str,
    /// Element type (valid once `known`).
    pub dtype: DType,
    /// Static shape (valid once `known`).
    pub shape: Shape,
    /// Type and shape have been inferred.
    pub known: bool,
    /// The initializer or Constant value, for constants.
    pub konst: Option<TensorView<'m>>,
    /// A graph input the caller fills.
    pub is_input: bool,
    /// A graph output the caller reads.
    pub is_output: bool,
    /// Producing node index, or [`NONE`].
    pub producer: u16,
    /// Number of node inputs (plus graph outputs) that read it.
    pub uses: u16,
    /// The last node reading it (the only one when `uses == 1`).
    pub consumer: u16,
    /// Needed by a kept step or as a graph output.
    pub needed: bool,
    /// Float16 in the model (a float16 initializer or input, or computed from one): with
    /// [`crate::PlanOptions::half_arithmetic`] its values are computed in half precision.
    pub half: bool,
    /// Storage.
    pub loc: Loc<'m>,
    /// First and last step that touch it (planning).
    pub first: u16,
    /// See `first`.
    pub last: u16,
}

impl<'m> TensorInfo<'m> {
    pub(crate) fn new(name: &'m str) -> Self {
        TensorInfo {
            name,
            dtype: DType::F32,
            shape: Shape::SCALAR,
            known: false,
            konst: None,
            is_input: false,
            is_output: false,
            producer: NONE,
            uses: 0,
            consumer: NONE,
            needed: false,
            half: false,
            loc: Loc::None,
            first: u16::MAX,
            last: 0,
        }
    }

    /// Bytes this tensor occupies.
    pub fn bytes(&self) -> usize {
        self.shape.numel().saturating_mul(self.dtype.size())
    }
}

/// The tensor table plus the node list of a model.
pub struct Graph<'m, const T: usize, const N: usize> {
    /// Tensors by id.
    pub tensors: heapless::Vec<TensorInfo<'m>, T>,
    /// Raw `NodeProto` bytes by node index, for random access during fusion.
    pub nodes: heapless::Vec<&'m [u8], N>,
    /// Graph input ids (non-constant), in graph order.
    pub inputs: heapless::Vec<u16, 16>,
    /// Graph output ids, in graph order.
    pub outputs: heapless::Vec<u16, 16>,
    /// The model's default-domain opset.
    pub opset: i64,
    /// Values computed at plan time (shape arithmetic, see [`crate::fold`]).
    pub folded: heapless::Vec<Folded, MAX_FOLDED>,
    /// Spectral constants (windows, mel matrices) are computed once into the persistent area
    /// instead of by steps, so `op_features` must still name their family.
    pub hoisted_signal: bool,
}

/// Most values the plan computes ahead of time (shape vectors and their arithmetic: a
/// few per reshape an exporter wrote with `Shape`); none without feature `shape-ops`, so
/// microcontroller builds that do not need it keep their tables as small as before.
#[cfg(feature = "shape-ops")]
pub const MAX_FOLDED: usize = 24;
/// See above.
#[cfg(not(feature = "shape-ops"))]
pub const MAX_FOLDED: usize = 0;

/// A tensor whose value the plan computed ahead of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// The tensor.
    pub id: u16,
    /// Its value.
    pub value: FoldedValue,
}

/// The value of a [`Folded`] tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldedValue {
    /// At most [`MAX_RANK`] values: integers, or for a float32 tensor the `f32` bit patterns
    /// (the tensor's element type says which).
    Small {
        /// How many.
        len: u8,
        /// The values (the first `len`).
        values: [i64; MAX_RANK],
    },
    /// Every element equal to the `value` attribute of `ConstantOfShape` node `node`.
    Splat {
        /// The node index.
        node: u16,
    },
}

/// An integer constant as plan-time code reads it: from the model, or computed by folding.
#[derive(Debug, Clone, Copy)]
pub enum IntConst<'m> {
    /// An initializer or `Constant` value.
    Model(TensorView<'m>),
    /// A folded value.
    Folded {
        /// Its shape.
        shape: Shape,
        /// Its elements.
        values: [i64; MAX_RANK],
    },
}

impl IntConst<'_> {
    /// The shape.
    pub fn shape(&self) -> Shape {
        match self {
            IntConst::Model(v) => v.shape,
            IntConst::Folded { shape, .. } => *shape,
        }
    }

    /// Calls `f(index, value)` for every element.
    pub fn for_each_i64(&self, mut f: impl FnMut(usize, i64)) -> Result<()> {
        match self {
            IntConst::Model(v) => v.for_each_i64(f),
            IntConst::Folded { shape, values } => {
                for (i, &v) in values.iter().take(shape.numel()).enumerate() {
                    f(i, v);
                }
                Ok(())
            }
        }
    }
}

impl<'m, const T: usize, const N: usize> Graph<'m, T, N> {
    /// Id of the tensor called `name`.
    pub fn find(&self, name: &str) -> Option<u16> {
        self.tensors
            .iter()
            .position(|t| t.name == name)
            .map(|i| i as u16)
    }

    fn add(&mut self, name: &'m str) -> Result<u16> {
        if let Some(id) = self.find(name) {
            return Ok(id);
        }
        self.tensors
            .push(TensorInfo::new(name))
            .map_err(|_| Error::CapacityExceeded {
                what: "tensors",
                capacity: T,
            })?;
        Ok((self.tensors.len() - 1) as u16)
    }

    /// Node `i`, parsed (validated by `Model::parse` already).
    pub fn node(&self, i: u16) -> Result<Node<'m>> {
        let raw = self.nodes.get(i as usize).ok_or(Error::InvalidModel {
            reason: "node index out of range",
        })?;
        Node::parse(raw)
    }

    /// Tensor `id`.
    pub fn t(&self, id: u16) -> &TensorInfo<'m> {
        // Ids are only created by `add`, so they are always in range; fall back to the first
        // tensor rather than panic if that ever changes.
        self.tensors.get(id as usize).unwrap_or(&self.tensors[0])
    }

    /// Tensor `id`, mutable.
    pub fn t_mut(&mut self, id: u16) -> Result<&mut TensorInfo<'m>> {
        self.tensors
            .get_mut(id as usize)
            .ok_or(Error::InvalidModel {
                reason: "tensor id out of range",
            })
    }

    /// An empty table.
    pub fn empty() -> Self {
        Graph {
            tensors: heapless::Vec::new(),
            nodes: heapless::Vec::new(),
            inputs: heapless::Vec::new(),
            outputs: heapless::Vec::new(),
            opset: 0,
            folded: heapless::Vec::new(),
            hoisted_signal: false,
        }
    }

    /// Fills the table in place from `model`: initializers, graph inputs, node outputs (each
    /// defined once), uses.
    #[inline(never)] // keeps this large frame off the caller's stack on MCUs
    pub fn load(&mut self, model: &Model<'m>) -> Result<()> {
        self.tensors.clear();
        self.nodes.clear();
        self.inputs.clear();
        self.outputs.clear();
        self.folded.clear();
        self.opset = model.opset();
        let g = self;
        for init in model.initializers() {
            let init = init?;
            let id = g.add(init.name)?;
            let t = g.t_mut(id)?;
            if t.konst.is_some() {
                return Err(Error::DuplicateTensor {
                    name: Name::new(init.name),
                });
            }
            t.konst = Some(init);
            t.half = init.dtype == DType::F16;
            t.dtype = init.dtype.computed();
            t.shape = init.shape;
            t.known = true;
        }
        for vi in model.inputs() {
            let vi = vi?;
            let id = g.add(vi.name)?;
            if g.t(id).konst.is_some() {
                continue; // IR < 4 lists initializers as inputs too
            }
            let t = g.t_mut(id)?;
            t.is_input = true;
            let dtype = vi.dtype.ok_or(Error::InvalidModel {
                reason: "graph input without an element type",
            })?;
            t.half = dtype == DType::F16;
            t.dtype = dtype.computed();
            t.shape = vi.shape.ok_or(Error::BadDimension {
                name: Name::new(vi.name),
            })?;
            t.known = true;
            g.inputs.push(id).map_err(|_| Error::CapacityExceeded {
                what: "graph inputs",
                capacity: 16,
            })?;
        }
        for (i, raw) in model_node_slices(model).enumerate() {
            let raw = raw?;
            g.nodes.push(raw).map_err(|_| Error::CapacityExceeded {
                what: "nodes",
                capacity: N,
            })?;
            let node = Node::parse(raw)?;
            for name in node.inputs.iter().filter(|s| !s.is_empty()) {
                let id = g.find(name).ok_or_else(|| Error::UndefinedTensor {
                    name: Name::new(name),
                })?;
                let t = g.t_mut(id)?;
                t.uses = t.uses.saturating_add(1);
                t.consumer = i as u16;
            }
            for name in node.outputs.iter().filter(|s| !s.is_empty()) {
                let id = g.add(name)?;
                let t = g.t_mut(id)?;
                if t.producer != NONE || t.konst.is_some() || t.is_input {
                    return Err(Error::DuplicateTensor {
                        name: Name::new(name),
                    });
                }
                t.producer = i as u16;
            }
        }
        for vi in model.outputs() {
            let vi = vi?;
            let id = g.find(vi.name).ok_or_else(|| Error::UndefinedTensor {
                name: Name::new(vi.name),
            })?;
            let t = g.t_mut(id)?;
            t.is_output = true;
            t.uses = t.uses.saturating_add(1);
            t.consumer = NONE;
            g.outputs.push(id).map_err(|_| Error::CapacityExceeded {
                what: "graph outputs",
                capacity: 16,
            })?;
        }
        Ok(())
    }

    /// The constant behind tensor `name`, if it is one.
    pub fn konst(&self, name: Option<&str>) -> Option<TensorView<'m>> {
        name.and_then(|n| self.find(n))
            .and_then(|id| self.t(id).konst)
    }

    /// The plan-time value of tensor `id`, if folding computed one.
    pub fn folded(&self, id: u16) -> Option<FoldedValue> {
        self.folded.iter().find(|f| f.id == id).map(|f| f.value)
    }

    /// The integer constant behind tensor `name` (a model constant, or a folded vector), for
    /// plan-time reads of shapes, axes, pads and sizes.
    pub fn int_konst(&self, name: Option<&str>) -> Option<IntConst<'m>> {
        let id = self.find(name?)?;
        let t = self.t(id);
        if let Some(k) = t.konst {
            return Some(IntConst::Model(k));
        }
        if !cfg!(feature = "shape-ops") {
            return None;
        }
        match self.folded(id)? {
            FoldedValue::Small { values, .. } if t.dtype != DType::F32 => Some(IntConst::Folded {
                shape: t.shape,
                values,
            }),
            _ => None,
        }
    }
}

fn model_node_slices<'m>(model: &Model<'m>) -> impl Iterator<Item = Result<&'m [u8]>> + 'm {
    model.node_slices()
}
