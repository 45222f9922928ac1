//! Teachers for distillation: a model sprig trains ([`CnnModel`]) or any float ONNX model run
//! frozen through tract-onnx ([`OnnxTeacher`]), whose intermediate activations are picked by
//! ONNX tensor name for the feature losses. Both answer the same two questions — what layers
//! and shapes they have (to check and build connectors before training) and what they output
//! for a batch — so the trainer does not care where a teacher came from.

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use sprig_models::arch::{ArchSpec, CnnModel};
use tract_onnx::prelude::*;

/// What distillation needs to know about a teacher before running it.
#[derive(Debug, Clone, PartialEq)]
pub struct TeacherLayout {
    /// Label in errors.
    pub name: String,
    /// Layers a KD term may name, in feature order.
    pub layers: Vec<String>,
    /// Shape (C, H, W) of each layer's feature (H = W = 1 for vectors).
    pub shapes: Vec<(usize, usize, usize)>,
    /// Number of logits.
    pub outputs: usize,
    /// Input channels the teacher reads (more than the student's for a privileged teacher).
    pub input_channels: usize,
}

impl TeacherLayout {
    /// The layout of a sprig architecture (its named convolution, block and dense layers).
    pub fn of(spec: &ArchSpec) -> Self {
        TeacherLayout {
            name: spec.name.clone(),
            layers: spec.layer_names(),
            shapes: spec.feature_shapes(),
            outputs: spec.shapes().last().map_or(0, |s| s.0),
            input_channels: spec.input.0,
        }
    }
}

/// A frozen model distillation can learn from.
pub trait Teacher {
    /// Layers, shapes and outputs.
    fn layout(&self) -> TeacherLayout;
    /// Logits `[B, outputs]` and the features of [`TeacherLayout::layers`] (`[B, C, H, W]`, or
    /// `[B, C]` for vectors) for the batch `x`, detached from any graph.
    fn forward_features(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)>;
}

impl Teacher for CnnModel {
    fn layout(&self) -> TeacherLayout {
        TeacherLayout::of(&self.spec)
    }

    fn forward_features(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let (o, f) = CnnModel::forward_features(self, x)?;
        Ok((o.detach(), f.into_iter().map(|t| t.detach()).collect()))
    }
}

/// Any float ONNX classifier, frozen, run through tract-onnx with a symbolic batch size. Its
/// first graph output is taken as the logits; `features` name further tensors of the graph
/// (ONNX value names) that the feature losses can use. The model must read the same input
/// (layout and normalisation) as the student's data pipeline produces: `[N, C, H, W]` float32
/// in [0, 1] for sprig's image datasets.
pub struct OnnxTeacher {
    plan: Arc<TypedRunnableModel>,
    layout: TeacherLayout,
}

impl std::fmt::Debug for OnnxTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxTeacher")
            .field("layout", &self.layout)
            .finish()
    }
}

impl OnnxTeacher {
    /// Loads `path` for inputs of shape `chw`, exposing the tensors named in `features`.
    /// Errors name the file and what is wrong (unknown tensor, unsupported operator, an
    /// output that is not `[N, classes]`, a feature that is not `[N, C]` or `[N, C, H, W]`).
    pub fn load(
        path: &Path,
        chw: (usize, usize, usize),
        features: &[String],
    ) -> crate::Result<Self> {
        let what = |e: String| crate::Error::Invalid(format!("teacher {}: {e}", path.display()));
        let bytes = crate::read_file(path)?;
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|e| what(format!("not a readable ONNX model: {e:#}")))?;
        let n = model.symbols.sym("N");
        let fact = InferenceFact::dt_shape(
            f32::datum_type(),
            tvec![n.to_dim(), chw.0.to_dim(), chw.1.to_dim(), chw.2.to_dim()],
        );
        model
            .set_input_fact(0, fact)
            .map_err(|e| what(format!("{e:#}")))?;
        let mut outlets = vec![*model
            .output_outlets()
            .map_err(|e| what(format!("{e:#}")))?
            .first()
            .ok_or_else(|| what("the graph has no output".into()))?];
        for f in features {
            let o = model.find_outlet_label(f).ok_or_else(|| {
                what(format!("no tensor named '{f}' in the graph (features name ONNX values, as Netron shows them)"))
            })?;
            outlets.push(o);
        }
        model
            .select_output_outlets(&outlets)
            .map_err(|e| what(format!("{e:#}")))?;
        let typed = model
            .into_typed()
            .and_then(|m| m.into_decluttered())
            .map_err(|e| what(format!("tract cannot run it for {chw:?} inputs: {e:#}")))?;
        let mut shapes = Vec::new();
        for (i, o) in typed.output_outlets().unwrap_or(&[]).iter().enumerate() {
            let fact = typed.outlet_fact(*o).map_err(|e| what(format!("{e:#}")))?;
            let dims: Vec<Option<usize>> = fact
                .shape
                .iter()
                .skip(1)
                .map(|d| d.as_i64().and_then(|v| usize::try_from(v).ok()))
                .collect();
            let label = if i == 0 {
                "the first output (logits)".to_string()
            } else {
                format!("feature '{}'", features[i - 1])
            };
            if fact.datum_type != f32::datum_type() {
                return Err(what(format!(
                    "{label} is {:?}, not float32",
                    fact.datum_type
                )));
            }
            let shape = match dims.as_slice() {
                [Some(c)] => (*c, 1, 1),
                [Some(c), Some(h), Some(w)] if i > 0 => (*c, *h, *w),
                _ => {
                    return Err(what(format!(
                        "{label} has shape {:?}; expected [N, C]{}",
                        fact.shape,
                        if i > 0 { " or [N, C, H, W]" } else { "" }
                    )))
                }
            };
            shapes.push(shape);
        }
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| what(format!("{e:#}")))?;
        let stem = path
            .file_stem()
            .map_or("onnx teacher".into(), |s| s.to_string_lossy().into_owned());
        Ok(OnnxTeacher {
            plan,
            layout: TeacherLayout {
                name: stem,
                layers: features.to_vec(),
                outputs: shapes[0].0,
                shapes: shapes[1..].to_vec(),
                input_channels: chw.0,
            },
        })
    }
}

impl OnnxTeacher {
    /// The same teacher labelled `name` in errors (the recipe's name for it).
    pub fn named(mut self, name: &str) -> Self {
        self.layout.name = name.into();
        self
    }
}

impl Teacher for OnnxTeacher {
    fn layout(&self) -> TeacherLayout {
        self.layout.clone()
    }

    fn forward_features(&self, x: &Tensor) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let dims = x.dims().to_vec();
        let data = x.flatten_all()?.to_vec1::<f32>()?;
        let input = tract_ndarray::ArrayD::from_shape_vec(dims, data)
            .map_err(|e| candle_core::Error::Msg(format!("teacher input: {e}")))?;
        let outs = self
            .plan
            .run(tvec!(tract_onnx::prelude::Tensor::from(input).into()))
            .map_err(|e| candle_core::Error::Msg(format!("{}: {e:#}", self.layout.name)))?;
        let mut ts = Vec::with_capacity(outs.len());
        for o in outs.iter() {
            let view = o
                .to_plain_array_view::<f32>()
                .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?;
            let shape = view.shape().to_vec();
            let v: Vec<f32> = view.iter().copied().collect();
            ts.push(Tensor::from_vec(v, shape, &Device::Cpu)?);
        }
        let logits = ts.remove(0);
        Ok((logits, ts))
    }
}
