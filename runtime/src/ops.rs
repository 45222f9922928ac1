//! Operators: `prepare` checks a node's attributes and input types, infers its output shape and
//! fixes every constant the kernel needs; `eval` (in `kernels`) is pure compute. This split
//! (as in TFLite Micro) keeps all failure modes at plan time.

use crate::error::{Error, Name, Result};
use crate::graph::{Graph, TensorInfo};
use crate::onnx::Node;
use crate::quant::Requant;
use crate::tensor::{DType, Shape, MAX_RANK};

/// Ops the runtime claims, as listed in README and checked by the conformance suite.
pub const SUPPORTED_OPS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "ArgMax",
    "ArgMin",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "BlackmanWindow",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "ConstantOfShape",
    "Conv",
    "ConvInteger",
    "ConvTranspose",
    "Cos",
    "Cosh",
    "CumSum",
    "DepthToSpace",
    "DFT",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "Div",
    "Dropout",
    "Einsum",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "EyeLike",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GridSample",
    "GreaterOrEqual",
    "GRU",
    "HammingWindow",
    "HannWindow",
    "Hardmax",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "InstanceNormalization",
    "IsInf",
    "IsNaN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "LRN",
    "LSTM",
    "MatMul",
    "MatMulInteger",
    "Max",
    "MaxPool",
    "MeanVarianceNormalization",
    "Mean",
    "MelWeightMatrix",
    "Min",
    "Mish",
    "Mod",
    "Mul",
    "Neg",
    "NegativeLogLikelihoodLoss",
    "Not",
    "OneHot",
    "Or",
    "Pad",
    "Pow",
    "PRelu",
    "QLinearConv",
    "QLinearMatMul",
    "QuantizeLinear",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "ReverseSequence",
    "RNN",
    "Round",
    "Selu",
    "Scatter",
    "ScatterElements",
    "ScatterND",
    "Shape",
    "Shrink",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Softmax",
    "SoftmaxCrossEntropyLoss",
    "Softplus",
    "Softsign",
    "SpaceToDepth",
    "Split",
    "STFT",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Sum",
    "Tan",
    "Tanh",
    "ThresholdedRelu",
    "Tile",
    "TopK",
    "Transpose",
    "Trilu",
    "Unsqueeze",
    "Upsample",
    "Where",
    "Xor",
];

/// Element-wise unary functions on f32.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Abs,
    Neg,
    Exp,
    Sqrt,
    LeakyRelu(f32),
    Clip(f32, f32),
    /// `HardSigmoid(alpha, beta)`: max(0, min(1, alpha·x + beta)).
    HardSigmoid(f32, f32),
    /// x · max(0, min(1, x/6 + 1/2)) (MobileNetV3).
    HardSwish,
    /// x for x > 0, alpha·(eˣ − 1) otherwise.
    Elu(f32),
    /// max(0, x) + min(0, alpha·(e^(x/alpha) − 1)).
    Celu(f32),
    /// `Selu(alpha, gamma)`: gamma·x for x > 0, gamma·alpha·(eˣ − 1) otherwise.
    Selu(f32, f32),
    /// ln(1 + eˣ).
    Softplus,
    /// x / (1 + |x|).
    Softsign,
    /// x for x > alpha, 0 otherwise.
    ThresholdedRelu(f32),
    Reciprocal,
    Floor,
    Ceil,
    /// Rounds half to even, as ONNX `Round` specifies.
    Round,
    Sign,
    Log,
    Erf,
    /// `Cast` to float16: rounds to the nearest f16 value (kept as f32).
    RoundF16,
    Sin,
    Cos,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// `Shrink(lambd, bias)`: x + bias below −lambd, x − bias above lambd, 0 between.
    Shrink(f32, f32),
    /// x · tanh(softplus(x)) (YOLOv4).
    Mish,
    /// x · Φ(x), exactly (erf) or with the tanh approximation (`true`).
    Gelu(bool),
}

/// Element-wise binary functions on f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    /// NaN if either input is NaN (as onnxruntime and numpy).
    Max,
    /// NaN if either input is NaN (as onnxruntime and numpy).
    Min,
    /// `Mean` of two inputs.
    Mean,
    /// `PRelu(x, slope)`: x for x ≥ 0, slope·x otherwise.
    PRelu,
    /// `Mod` with `fmod = 0`: the remainder takes the divisor's sign (Python's `%`).
    Mod,
    /// `Mod` with `fmod = 1`: the remainder takes the dividend's sign (C's `fmod`).
    Fmod,
}

impl Binary {
    /// The function of an element-wise ONNX op (`Sum` adds); `None` for any other op.
    pub fn of(op_type: &str) -> Option<Self> {
        Some(match op_type {
            "Add" | "Sum" => Binary::Add,
            "Sub" => Binary::Sub,
            "Mul" => Binary::Mul,
            "Div" => Binary::Div,
            "Pow" => Binary::Pow,
            "Max" => Binary::Max,
            "Min" => Binary::Min,
            "Mean" => Binary::Mean,
            "PRelu" => Binary::PRelu,
            // The planner turns it into Fmod when the node says `fmod = 1`.
            "Mod" => Binary::Mod,
            _ => return None,
        })
    }

    /// The ONNX op that computes this function of two inputs (the inverse of [`Binary::of`]).
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "Add",
            Binary::Sub => "Sub",
            Binary::Mul => "Mul",
            Binary::Div => "Div",
            Binary::Pow => "Pow",
            Binary::Max => "Max",
            Binary::Min => "Min",
            Binary::Mean => "Mean",
            Binary::PRelu => "PRelu",
            Binary::Mod | Binary::Fmod => "Mod",
        }
    }
}

/// How `ScatterElements` combines an update with the value already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScatterReduction {
    /// Overwrite (a later update to the same position wins).
    None,
    /// Add (float32 only).
    Add,
    /// Multiply (float32 only).
    Mul,
    /// Keep the larger (float32 only).
    Max,
    /// Keep the smaller (float32 only).
    Min,
}

/// Where an output index of `Resize` samples the input (ONNX's
/// `coordinate_transformation_mode`), `o` the output index, `s` the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeCoord {
    /// (o + ½) / s − ½.
    HalfPixel,
    /// As `HalfPixel`, but 0 when the output axis has length 1.
    PytorchHalfPixel,
    /// o · (in − 1) / (in · s − 1).
    AlignCorners,
    /// o / s.
    Asymmetric,
    /// (o + ½) / s.
    TfHalfPixelForNn,
}

/// How `Resize` reads the input at a fractional coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    /// The nearest element; `.5` goes down (`round_prefer_floor`, the default) or up.
    NearestRoundPreferFloor,
    /// `round_prefer_ceil`.
    NearestRoundPreferCeil,
    /// `floor`.
    NearestFloor,
    /// `ceil`.
    NearestCeil,
    /// Linear interpolation along every resized axis (at most three of them), float32 only.
    Linear,
}

/// How `Pad` fills the border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadMode {
    /// A constant value.
    Constant,
    /// The mirror image without repeating the edge (numpy's `reflect`).
    Reflect,
    /// The edge element repeated.
    Edge,
    /// The opposite side (periodic).
    Wrap,
}

/// The reduction of a float `Reduce*` op over the elements it reduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Reduce {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    /// Σ |x|.
    L1,
    /// √Σ x².
    L2,
    /// ln Σ x.
    LogSum,
    /// ln Σ eˣ, computed as max + ln Σ e^(x − max).
    LogSumExp,
    /// Σ x².
    SumSquare,
}

/// The element-wise ops that `DQ → op → Q` turns into a 256-entry int8 lookup table, by the
/// index `Op::QLut` records (for profiles and frozen plans).
pub const LUT_OPS: &[&str] = &[
    // The first LUT_OPS_WITHOUT_FLOAT_OPS entries have tables in every build.
    "Relu",
    "Sigmoid",
    "Tanh",
    "Abs",
    "Neg",
    "Exp",
    "Sqrt",
    "LeakyRelu",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Celu",
    "Selu",
    "Softplus",
    "Softsign",
    "ThresholdedRelu",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Log",
    "Erf",
    // The rest are computed with libm functions only `float-ops` builds link (about 9 KB of
    // Cortex-M flash an int8-lut firmware would otherwise carry for every model).
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "Shrink",
    "Mish",
    "Gelu",
];

/// How many of [`LUT_OPS`] (from the start) have lookup tables in builds without `float-ops`.
pub const LUT_OPS_WITHOUT_FLOAT_OPS: usize = 23;

/// How profiles name a lookup step: `QLinear` + the op, as onnxruntime names its int8
/// activations (`QLinearSigmoid`, `QLinearLeakyRelu`); in [`LUT_OPS`] order.
pub const LUT_STEP_NAMES: &[&str] = &[
    "QLinearRelu",
    "QLinearSigmoid",
    "QLinearTanh",
    "QLinearAbs",
    "QLinearNeg",
    "QLinearExp",
    "QLinearSqrt",
    "QLinearLeakyRelu",
    "QLinearHardSigmoid",
    "QLinearHardSwish",
    "QLinearElu",
    "QLinearCelu",
    "QLinearSelu",
    "QLinearSoftplus",
    "QLinearSoftsign",
    "QLinearThresholdedRelu",
    "QLinearReciprocal",
    "QLinearFloor",
    "QLinearCeil",
    "QLinearRound",
    "QLinearSign",
    "QLinearLog",
    "QLinearErf",
    "QLinearSin",
    "QLinearCos",
    "QLinearTan",
    "QLinearAsin",
    "QLinearAcos",
    "QLinearAtan",
    "QLinearSinh",
    "QLinearCosh",
    "QLinearAsinh",
    "QLinearAcosh",
    "QLinearAtanh",
    "QLinearShrink",
    "QLinearMish",
    "QLinearGelu",
];

/// What a `DQ → f → Q` lookup table holds: Q(f(DQ(code))) for every 8-bit code, with the
/// input's and output's quantization.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub struct LutSpec {
    pub f: Unary,
    pub sx: f32,
    pub zx: i32,
    pub sy: f32,
    pub zy: i32,
    pub unsigned_in: bool,
    pub unsigned_out: bool,
}

/// Numpy-style broadcasting: output shape and element strides of both inputs (0 where the
/// input is broadcast along that axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast {
    /// Output shape.
    pub out: Shape,
    /// Strides of input A per output axis.
    pub a: [u32; MAX_RANK],
    /// Strides of input B per output axis.
    pub b: [u32; MAX_RANK],
    /// Both inputs already have the output shape.
    pub same: bool,
}

/// Geometry of a 2-D convolution or pooling window (1-D uses H = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct Window {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oc: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub pt: usize,
    pub pl: usize,
    pub dh: usize,
    pub dw: usize,
    pub group: usize,
}

impl Window {
    /// A fully connected layer as a 1×1 convolution: `rows` independent inputs of `k` features
    /// to `n` outputs.
    pub fn fully_connected(rows: usize, k: usize, n: usize) -> Self {
        Window {
            n: rows,
            c: k,
            h: 1,
            w: 1,
            oc: n,
            oh: 1,
            ow: 1,
            kh: 1,
            kw: 1,
            sh: 1,
            sw: 1,
            dh: 1,
            dw: 1,
            group: 1,
            pt: 0,
            pl: 0,
        }
    }
}

/// Parameters of a fused int8 convolution or fully connected layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QLinear {
    /// Window geometry (a fully connected layer is a 1×1 convolution over 1×1 maps).
    pub win: Window,
    /// Input zero point.
    pub zx: i32,
    /// Output zero point.
    pub zy: i32,
    /// Output clamp after the fused activation, in the output's integer domain.
    pub act_min: i32,
    /// See `act_min`.
    pub act_max: i32,
    /// Persist offset of `oc` adjusted int32 biases (bias − zx·Σw).
    pub bias: usize,
    /// Persist offset of `oc` [`Requant`] pairs.
    pub requant: usize,
    /// Persist offset of the weights packed at plan time for this CPU's optimized kernel.
    pub packed: usize,
    /// Bytes at `packed` (0 = the kernel reads the model's weights as they are).
    pub packed_len: usize,
    /// Element strides of the weight for (output channel, reduction index) — lets Gemm with
    /// `transB = 0` and MatMul use weights in place.
    pub w_stride_oc: usize,
    /// See `w_stride_oc`.
    pub w_stride_k: usize,
    /// Input and output are uint8 rather than int8.
    pub unsigned: bool,
}

impl QLinear {
    /// The output value of accumulator `acc` (bias included) under channel requantization
    /// `r`: rescaled, shifted by the output zero point and clamped to the fused activation.
    /// The one definition every kernel, reference or optimized, shares. (`max` then `min`,
    /// not `clamp`: no assertion to keep in the firmware, the same value for a valid range.)
    #[inline]
    pub fn output(&self, acc: i32, r: Requant) -> i32 {
        self.offset_and_clamp(r.apply(acc))
    }

    /// The rescaled value `v` shifted by the output zero point and clamped to the fused
    /// activation ([`QLinear::output`]'s last step, for kernels that rescale themselves).
    #[inline(always)]
    pub fn offset_and_clamp(&self, v: i32) -> i32 {
        self.zy
            .saturating_add(v)
            .max(self.act_min)
            .min(self.act_max)
    }
}

/// Most inputs a fused int8 Concat takes (DenseNet concatenates two at a time); more fall back
/// to the float path. Keeps the step table small.
pub const MAX_QCONCAT_INPUTS: usize = 4;

/// A fused int8 Concat (`DQ, DQ, … → Concat → Q`, DenseNet): each input is rescaled to the
/// output's quantization, y = zy + requant(x − zx); inputs already on the output's scale and
/// zero point are copied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QConcat {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
    /// Output zero point.
    pub zy: i32,
    /// Per input: zero point and rescale to the output (multiplier 0: plain copy).
    pub inputs: [(i32, Requant); MAX_QCONCAT_INPUTS],
    /// uint8 rather than int8.
    pub unsigned: bool,
}

/// A fused int8 average pool (`DQ → AveragePool|GlobalAveragePool → Q`) whose windows all lie
/// inside the input, so every window averages the same count: y = zy + requant(Σ (x − zx)),
/// the requantization folding in sx / (sy · count).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QAvgPool {
    /// Window geometry (GlobalAveragePool: one window the size of the map).
    pub win: Window,
    /// Input zero point.
    pub zx: i32,
    /// Output zero point.
    pub zy: i32,
    /// sx / (sy · window size).
    pub rq: Requant,
    /// uint8 rather than int8.
    pub unsigned: bool,
}

/// Parameters of a fused int8 element-wise Add (residual connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QAdd {
    /// Broadcasting of the two inputs.
    pub bc: Broadcast,
    /// Zero points of A, B and the output.
    pub za: i32,
    /// See `za`.
    pub zb: i32,
    /// See `za`.
    pub zy: i32,
    /// Both inputs are brought to a common scale 2^-20·… before adding (TFLite's scheme).
    pub ma: Requant,
    /// See `ma`.
    pub mb: Requant,
    /// Rescales the sum to the output scale.
    pub my: Requant,
    /// Output clamp after the fused activation.
    pub act_min: i32,
    /// See `act_min`.
    pub act_max: i32,
    /// uint8 tensors.
    pub unsigned: bool,
}

impl QAdd {
    /// The output value for input values `a` and `b` (TFLite's scheme: both brought to a
    /// common fixed-point scale, added, rescaled), clamped to the fused activation.
    #[inline]
    pub fn output(&self, a: i32, b: i32) -> i32 {
        let va = self.ma.apply((a - self.za) << 20);
        let vb = self.mb.apply((b - self.zb) << 20);
        self.zy
            .saturating_add(self.my.apply(va.saturating_add(vb)))
            .max(self.act_min)
            .min(self.act_max)
    }
}

/// Parameters of a fused int8 element-wise Mul (`DQ, DQ → Mul → [Relu] → Q`: a
/// squeeze-excite scale): y = zy + round(sa·sb/sy · (a − za)(b − zb)), the product exact in
/// i32 and rounded once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QMul {
    /// Broadcasting of the two inputs.
    pub bc: Broadcast,
    /// Zero points of A, B and the output.
    pub za: i32,
    /// See `za`.
    pub zb: i32,
    /// See `za`.
    pub zy: i32,
    /// sa·sb/sy.
    pub m: Requant,
    /// Output clamp after the fused activation.
    pub act_min: i32,
    /// See `act_min`.
    pub act_max: i32,
    /// uint8 tensors.
    pub unsigned: bool,
}

impl QMul {
    /// The output value for input values `a` and `b`, clamped to the fused activation.
    #[inline]
    pub fn output(&self, a: i32, b: i32) -> i32 {
        // |(a − za)(b − zb)| ≤ 255² for 8-bit codes and in-range zero points.
        let prod = (a - self.za).saturating_mul(b - self.zb);
        self.zy
            .saturating_add(self.m.apply(prod))
            .max(self.act_min)
            .min(self.act_max)
    }
}

/// Quantize/Dequantize parameters: per-tensor (`axis_len == 1`) or per-axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QParams {
    /// Persist offset of `axis_len` f32 scales.
    pub scales: usize,
    /// Persist offset of `axis_len` i32 zero points.
    pub zps: usize,
    /// Number of scales.
    pub axis_len: usize,
    /// Product of the dims after the quantization axis.
    pub inner: usize,
}

impl QParams {
    /// `scales`/`zps` value of a step whose per-tensor scale and zero point are tensors
    /// computed at run time (its second and third inputs), as in the expanded form of
    /// `DynamicQuantizeLinear`.
    pub const FROM_INPUTS: usize = usize::MAX;

    /// The scale and zero point are read from the step's inputs, not from the arena.
    pub fn from_inputs(&self) -> bool {
        self.scales == Self::FROM_INPUTS
    }
}

/// A prepared step.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub enum Op {
    /// Byte copy: Identity, Reshape, Flatten, Squeeze, Unsqueeze (any element type).
    Copy,
    Unary(Unary),
    Binary(Binary, Broadcast),
    Conv(Window),
    /// Half-precision convolution ([`crate::half_ops::conv`]): f16 weights in the
    /// `[group][k][oc]` layout, optional f16 bias.
    ConvF16(Window),
    /// Half-precision `Y = A·B + C` ([`crate::half_ops::gemm`]): f16 `B` as `[k][n]`, optional
    /// f16 `C` of `n` values.
    /// `trans_b`: `B` is `[n][k]` in the file (the plan stores it transposed).
    GemmF16 {
        m: usize,
        k: usize,
        n: usize,
        trans_b: bool,
    },
    /// Y = alpha·A'·B' + beta·C with A' `[m,k]`, B' `[k,n]`.
    Gemm {
        m: usize,
        k: usize,
        n: usize,
        trans_a: bool,
        trans_b: bool,
        alpha: f32,
        beta: f32,
        c: Option<Broadcast>,
    },
    /// Batched matrix product; batch offsets via broadcast strides over the batch dims.
    MatMul {
        batch: usize,
        m: usize,
        k: usize,
        n: usize,
        a_batch_stride: usize,
        b_batch_stride: usize,
    },
    MaxPool(Window),
    AveragePool {
        win: Window,
        count_include_pad: bool,
    },
    GlobalAveragePool {
        nc: usize,
        hw: usize,
    },
    /// `ArgMax` / `ArgMin` along an axis of length `len` with `inner` elements after it:
    /// int64 indices of the first extreme (the last with `last`).
    ArgExtreme {
        outer: usize,
        len: usize,
        inner: usize,
        max: bool,
        last: bool,
    },
    Softmax {
        outer: usize,
        len: usize,
        inner: usize,
        /// `LogSoftmax`: the logarithm of the result, computed as x − max − ln Σ e^(x − max).
        log: bool,
    },
    /// A `Reduce*` op: `axes` has bit `i` set when input axis `i` is reduced.
    Reduce {
        kind: Reduce,
        in_shape: Shape,
        axes: u8,
    },
    BatchNorm {
        c: usize,
        inner: usize,
        n: usize,
        eps: f32,
    },
    Concat {
        outer: usize,
        inner: usize,
    },
    Transpose {
        in_shape: Shape,
        perm: [u8; MAX_RANK],
    },
    /// Strided window of the input: first index and step per axis (output shape from the plan).
    Slice {
        in_shape: Shape,
        starts: [u32; MAX_RANK],
        steps: [i32; MAX_RANK],
    },
    /// `DQ → element-wise op → Q` on int8/uint8: `y = table[x]`, the 256-byte table (in the
    /// persistent arena at `table`) holding Q(f(DQ(x))) for every input code, computed with the
    /// float path's own kernels, so the result is bit-identical to it. `name` indexes
    /// [`LUT_OPS`].
    QLut {
        table: usize,
        unsigned: bool,
        name: u8,
    },
    /// `Pad`: output element at index `o` reads input index `o − begin` per axis (negative
    /// `begin` crops), or `value` (little-endian bytes) outside in constant mode.
    Pad {
        in_shape: Shape,
        begin: [i32; MAX_RANK],
        mode: PadMode,
        value: [u8; 8],
    },
    /// Float `ConvTranspose`: `c`/`h`/`w` the input, `oc`/`oh`/`ow` the output, `pt`/`pl` the
    /// leading pads (the trailing ones are implied by the output size).
    ConvTranspose(Window),
    /// `Resize` / `Upsample` (output shape from the plan).
    Resize {
        in_shape: Shape,
        scales: [f32; MAX_RANK],
        mode: ResizeMode,
        coord: ResizeCoord,
    },
    /// `Tile` and `Expand`: output index `o` reads input index `o mod in_dim` per axis
    /// (`in_shape` has the output's rank, leading 1s added for `Expand`).
    Tile {
        in_shape: Shape,
    },
    /// `Clip` whose bounds are tensors read when the step runs: input `min_at` holds the
    /// lower bound and `max_at` the upper (0: that bound is absent).
    ClipInputs {
        min_at: u8,
        max_at: u8,
    },
    /// `Trilu`: each of the `rows × cols` matrices keeps the elements on and above (`upper`)
    /// or on and below diagonal `k` and zeroes the rest; with `k_input` the step's second
    /// input holds k (int64), read when the step runs.
    Trilu {
        rows: usize,
        cols: usize,
        upper: bool,
        k: i64,
        k_input: bool,
    },
    /// `outer × axis_len × inner` data, `indices` (int64 or int32) picking along the axis.
    Gather {
        outer: usize,
        axis_len: usize,
        inner: usize,
        indices: usize,
        wide: bool,
    },
    /// `GatherElements`: the output (shape of the indices) reads `data` at its own position
    /// with the `axis` coordinate taken from the indices (int64, or int32 unless `wide`).
    GatherElements {
        data: Shape,
        axis: u8,
        wide: bool,
    },
    /// `ScatterElements` (and the older `Scatter`): the output is `data` with each update
    /// written at its own position, the `axis` coordinate taken from the indices (the inverse
    /// of GatherElements); `indices` has this shape.
    ScatterElements {
        indices: Shape,
        axis: u8,
        wide: bool,
        reduction: ScatterReduction,
    },
    Quantize {
        q: QParams,
        out: DType,
    },
    Dequantize {
        q: QParams,
        input: DType,
    },
    QConv(QLinear),
    QAdd(QAdd),
    QMul(QMul),
    /// RNN, GRU or LSTM (one output per step).
    Rnn(crate::rnn::RnnSpec),
    /// LayerNormalization or InstanceNormalization (one output per step).
    Norm(crate::norm::Norm),
    /// TopK values or indices (one output per step).
    TopK(crate::topk::TopK),
    /// A comparison with broadcasting (strides from the input shapes at run time); bool out.
    Compare(crate::logic::Cmp),
    /// Not, And, Or, Xor on bool tensors, with broadcasting.
    Logic(crate::logic::Logic),
    /// `Where(cond, x, y)` with all three broadcast to the output.
    Where,
    /// Add, Sub, Mul, Div, Max or Min on two integer tensors of one type, with broadcasting.
    IntBinary(Binary),
    /// Max, Min, Sum (`Add`) or Mean of more than two float32 inputs, with broadcasting.
    Variadic(Binary),
    /// `Hardmax`: 1.0 at the first maximum along an axis of length `len`, 0.0 elsewhere.
    Hardmax {
        outer: usize,
        len: usize,
        inner: usize,
    },
    /// `IsNaN` / `IsInf` on float32: bool out.
    Classify(crate::logic::Class),
    /// `Cast` between numeric types other than float32 → float16 (`kernels::convert`).
    Convert {
        from: DType,
        to: DType,
    },
    /// int8/uint8 Concat whose inputs are rescaled to the output's scale and zero point.
    QConcat(QConcat),
    /// int8/uint8 AveragePool or GlobalAveragePool over full windows.
    QAvgPool(QAvgPool),
    /// ConvInteger, MatMulInteger, or a QLinearConv/QLinearMatMul the int8 layer cannot take.
    IntLinear(crate::intop::IntLinear),
    /// One output of `DynamicQuantizeLinear` (one output per step).
    DynQuant(crate::dynquant::DynQuant),
    /// `GatherND` ([`crate::index_nd`]): slices of `data` addressed by tuples of `k` int64
    /// coordinates after `batch_dims` paired axes.
    GatherNd {
        data: Shape,
        k: u8,
        batch_dims: u8,
    },
    /// `ScatterND` ([`crate::index_nd`]): the output (data's shape) with update slices written
    /// or combined at tuples of `k` coordinates.
    ScatterNd {
        k: u8,
        reduction: ScatterReduction,
    },
    /// `LRN` ([`crate::local_norm`]).
    Lrn(crate::local_norm::Lrn),
    /// `MeanVarianceNormalization` over the axes whose bits are set in `axes`.
    Mvn {
        shape: Shape,
        axes: u8,
    },
    /// `CumSum` ([`crate::sequence`]) along the middle axis of `outer × len × inner`.
    CumSum {
        outer: usize,
        len: usize,
        inner: usize,
        exclusive: bool,
        reverse: bool,
    },
    /// `ReverseSequence` ([`crate::sequence`]): `batch × time × inner`, or `time × batch ×
    /// inner` when `time_major`.
    ReverseSequence {
        batch: usize,
        time: usize,
        inner: usize,
        time_major: bool,
    },
    /// `OneHot` ([`crate::one_hot`]): output `outer × depth × inner` from indices of type
    /// `indices`.
    OneHot {
        outer: usize,
        depth: usize,
        inner: usize,
        indices: DType,
    },
    /// `NegativeLogLikelihoodLoss` / `SoftmaxCrossEntropyLoss` ([`crate::loss`]).
    Loss(crate::loss::Loss),
    /// `GridSample` on float32 images ([`crate::grid_sample`]).
    GridSample(crate::grid_sample::GridSample),
    /// `Einsum` on float32 ([`crate::einsum`]).
    Einsum(crate::einsum::Einsum),
    /// `EyeLike`: `rows × cols` with ones on diagonal `k`.
    EyeLike {
        rows: usize,
        cols: usize,
        k: i64,
    },
    /// `DFT` on float32 ([`crate::signal`]).
    Dft(crate::signal::Dft),
    /// `STFT` on float32 ([`crate::signal`]).
    Stft(crate::signal::Stft),
    /// `HannWindow`, `HammingWindow` or `BlackmanWindow` of `size` float32 values.
    WindowFn {
        kind: crate::signal::WindowKind,
        size: u32,
        periodic: bool,
    },
    /// `MelWeightMatrix` as float32 ([`crate::signal`]).
    MelWeights(crate::signal::MelWeights),
}

/// Most inputs one step reads (Concat).
pub const MAX_STEP_INPUTS: usize = crate::onnx::MAX_NODE_INPUTS;

/// A step of the execution plan.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// The node (for fused steps, the main node) it came from.
    pub node: u16,
    /// What to compute.
    pub op: Op,
    /// Input tensor ids.
    pub ins: [u16; MAX_STEP_INPUTS],
    /// How many of `ins` are used.
    pub n_in: u8,
    /// Output tensor id.
    pub out: u16,
    /// Bytes of scratch the kernel wants while it runs (0 = none).
    pub scratch: usize,
    /// Planned offset of that scratch in the working arena.
    pub scratch_at: usize,
    /// Round the float32 result to float16 (a float16 op computed in f32 in a half-arithmetic
    /// plan).
    pub round_f16: bool,
}

impl Step {
    /// The input ids in use.
    pub fn inputs(&self) -> &[u16] {
        &self.ins[..self.n_in as usize]
    }
}

/// Requests for persistent arena bytes made during preparation, filled once in
/// `Interpreter::new`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[allow(missing_docs)]
pub enum Fill {
    /// Copy constant tensor `id` (converted to its dtype's little-endian layout).
    Const { id: u16, at: usize },
    /// Copy the f32 matrix `id` (`rows × cols`, or a stack of such blocks) transposed, so Gemm
    /// with `transB = 1` runs the row-broadcast kernel and recurrent layers update all gates
    /// with contiguous rows.
    ConstTransposed {
        id: u16,
        at: usize,
        rows: usize,
        cols: usize,
    },
    /// f32 scales and i32 zero points of a Q/DQ op.
    QParams { scale: u16, zp: u16, q: QParams },
    /// Adjusted int32 bias and per-channel requantization of a fused linear op.
    QLinear {
        w: u16,
        bias: u16,
        bias_scale: u16,
        sx: f32,
        sw: u16,
        sy: f32,
        p: QLinear,
    },
    /// A value computed at plan time ([`crate::fold`]) that a step reads or the caller
    /// receives as an output.
    Folded { id: u16, at: usize },
    /// A spectral window of `size` float32 values at `at` (its step had nothing to read, so it
    /// runs once, here).
    Window {
        at: usize,
        kind: crate::signal::WindowKind,
        size: u32,
        periodic: bool,
    },
    /// A mel filterbank matrix at `at`, computed once like [`Fill::Window`].
    Mel {
        at: usize,
        m: crate::signal::MelWeights,
    },
    /// The 256-byte table of a [`Op::QLut`] step, at `at`.
    Lut { at: usize, spec: LutSpec },
    /// Weight zero points, int32 biases and requantization of an integer op (scales unused
    /// when it outputs int32).
    IntLinear {
        zw: u16,
        bias: u16,
        sx: f32,
        sw: u16,
        sy: f32,
        p: crate::intop::IntLinear,
    },
}

/// Context handed to `prepare`: the tensor table and a bump allocator for persistent bytes.
pub struct Prep<'g, 'm, const T: usize, const N: usize> {
    /// The tensor table.
    pub g: &'g mut Graph<'m, T, N>,
    /// Bytes of persistent arena requested so far.
    pub persist: usize,
    /// What to write into those bytes.
    pub fills: &'g mut heapless::Vec<Fill, N>,
}

/// Appends a planned step; the plan holds at most `N`.
pub(crate) fn push_step<const N: usize>(
    steps: &mut heapless::Vec<Step, N>,
    step: Step,
) -> Result<()> {
    steps.push(step).map_err(|_| Error::CapacityExceeded {
        what: "steps",
        capacity: N,
    })
}

impl<'m, const T: usize, const N: usize> Prep<'_, 'm, T, N> {
    /// Gives the node output `name` its element type and shape (for the nodes planned as one
    /// step per output); returns its tensor id.
    pub(crate) fn type_output(&mut self, name: &str, dtype: DType, shape: Shape) -> Result<u16> {
        let id = self.g.find(name).ok_or_else(|| Error::UndefinedTensor {
            name: Name::new(name),
        })?;
        let o = self.g.t_mut(id)?;
        o.dtype = dtype;
        o.shape = shape;
        o.known = true;
        Ok(id)
    }

    /// Reserves `bytes` (16-byte aligned) of persistent arena.
    pub fn reserve(&mut self, bytes: usize) -> Result<usize> {
        let at = self.persist;
        let size = bytes.checked_add(15).ok_or(Error::InvalidModel {
            reason: "persistent size overflows",
        })? & !15;
        self.persist = at.checked_add(size).ok_or(Error::InvalidModel {
            reason: "persistent size overflows",
        })?;
        Ok(at)
    }

    /// Reserves `count` elements of `elem` bytes (the product checked, for 32-bit targets).
    pub fn reserve_n(&mut self, count: usize, elem: usize) -> Result<usize> {
        let bytes = count.checked_mul(elem).ok_or(Error::InvalidModel {
            reason: "persistent size overflows",
        })?;
        self.reserve(bytes)
    }

    /// Schedules a fill.
    pub fn fill(&mut self, f: Fill) -> Result<()> {
        self.fills.push(f).map_err(|_| Error::CapacityExceeded {
            what: "prepared constants",
            capacity: N,
        })
    }
}

pub(crate) fn shape_err(node: &Node<'_>, what: &'static str) -> Error {
    Error::ShapeMismatch {
        node: node.label(),
        what,
    }
}

pub(crate) fn unsupported(node: &Node<'_>, what: &'static str) -> Error {
    Error::Unsupported {
        node: node.label(),
        what,
    }
}

/// Looks up a node input that must exist and be typed.
pub(crate) fn input<'m, const T: usize, const N: usize>(
    g: &Graph<'m, T, N>,
    node: &Node<'m>,
    i: usize,
) -> Result<(u16, TensorInfo<'m>)> {
    let name = node
        .input(i)
        .ok_or_else(|| shape_err(node, "a required input is missing"))?;
    let id = g.find(name).ok_or_else(|| Error::UndefinedTensor {
        name: Name::new(name),
    })?;
    let t = *g.t(id);
    if !t.known {
        return Err(Error::UndefinedTensor {
            name: Name::new(name),
        });
    }
    Ok((id, t))
}

/// Computes numpy broadcasting of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Option<Broadcast> {
    let rank = a.rank().max(b.rank());
    let mut out = [0i64; MAX_RANK];
    let mut sa = [0u32; MAX_RANK];
    let mut sb = [0u32; MAX_RANK];
    let (mut stride_a, mut stride_b) = (1u64, 1u64);
    for i in (0..rank).rev() {
        let da = if i + a.rank() >= rank {
            a.dim(i + a.rank() - rank)
        } else {
            1
        };
        let db = if i + b.rank() >= rank {
            b.dim(i + b.rank() - rank)
        } else {
            1
        };
        let d = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
        out[i] = d as i64;
        sa[i] = if da == 1 && d != 1 {
            0
        } else {
            stride_a as u32
        };
        sb[i] = if db == 1 && d != 1 {
            0
        } else {
            stride_b as u32
        };
        stride_a *= da as u64;
        stride_b *= db as u64;
    }
    let out = Shape::new(&out[..rank], "broadcast").ok()?;
    Some(Broadcast {
        out,
        a: sa,
        b: sb,
        same: a == &out && b == &out,
    })
}

/// Int8 output clamp for a fused activation, given the output quantization.
pub(crate) fn act_range(
    relu: bool,
    clip: Option<(f32, f32)>,
    sy: f32,
    zy: i32,
    unsigned: bool,
) -> (i32, i32) {
    let (mut lo, mut hi) = if unsigned { (0, 255) } else { (-128, 127) };
    let q = |v: f32| -> i32 {
        let r = crate::quant::round_ties_even(v / sy);
        r.clamp(-1.0e9, 1.0e9) as i32 + zy
    };
    if relu {
        lo = lo.max(zy);
    }
    if let Some((cmin, cmax)) = clip {
        lo = lo.max(q(cmin));
        hi = hi.min(q(cmax));
    }
    (lo, hi)
}

/// The ONNX op type a plain step runs.
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Copy => "Reshape",
        Op::Unary(u) => match u {
            Unary::Relu => "Relu",
            Unary::Sigmoid => "Sigmoid",
            Unary::Tanh => "Tanh",
            Unary::Abs => "Abs",
            Unary::Neg => "Neg",
            Unary::Exp => "Exp",
            Unary::Sqrt => "Sqrt",
            Unary::LeakyRelu(_) => "LeakyRelu",
            Unary::Clip(..) => "Clip",
            Unary::HardSigmoid(..) => "HardSigmoid",
            Unary::HardSwish => "HardSwish",
            Unary::Elu(_) => "Elu",
            Unary::Celu(_) => "Celu",
            Unary::Selu(..) => "Selu",
            Unary::Softplus => "Softplus",
            Unary::Softsign => "Softsign",
            Unary::ThresholdedRelu(_) => "ThresholdedRelu",
            Unary::Reciprocal => "Reciprocal",
            Unary::Floor => "Floor",
            Unary::Ceil => "Ceil",
            Unary::Round => "Round",
            Unary::Sign => "Sign",
            Unary::Log => "Log",
            Unary::Erf => "Erf",
            Unary::RoundF16 => "Cast",
            Unary::Sin => "Sin",
            Unary::Cos => "Cos",
            Unary::Tan => "Tan",
            Unary::Asin => "Asin",
            Unary::Acos => "Acos",
            Unary::Atan => "Atan",
            Unary::Sinh => "Sinh",
            Unary::Cosh => "Cosh",
            Unary::Asinh => "Asinh",
            Unary::Acosh => "Acosh",
            Unary::Atanh => "Atanh",
            Unary::Shrink(..) => "Shrink",
            Unary::Mish => "Mish",
            Unary::Gelu(_) => "Gelu",
        },
        Op::Binary(b, _) | Op::IntBinary(b) => b.name(),
        Op::Conv(_) | Op::ConvF16(_) => "Conv",
        Op::ConvTranspose(_) => "ConvTranspose",
        Op::Gemm { .. } | Op::GemmF16 { .. } => "Gemm",
        Op::MatMul { .. } => "MatMul",
        Op::MaxPool(_) => "MaxPool",
        Op::AveragePool { .. } => "AveragePool",
        Op::GlobalAveragePool { .. } => "GlobalAveragePool",
        Op::ArgExtreme { max: true, .. } => "ArgMax",
        Op::ArgExtreme { max: false, .. } => "ArgMin",
        Op::Softmax { log: false, .. } => "Softmax",
        Op::Softmax { log: true, .. } => "LogSoftmax",
        Op::BatchNorm { .. } => "BatchNormalization",
        Op::Reduce { kind, .. } => match kind {
            Reduce::Sum => "ReduceSum",
            Reduce::Mean => "ReduceMean",
            Reduce::Max => "ReduceMax",
            Reduce::Min => "ReduceMin",
            Reduce::Prod => "ReduceProd",
            Reduce::L1 => "ReduceL1",
            Reduce::L2 => "ReduceL2",
            Reduce::LogSum => "ReduceLogSum",
            Reduce::LogSumExp => "ReduceLogSumExp",
            Reduce::SumSquare => "ReduceSumSquare",
        },
        Op::Concat { .. } => "Concat",
        Op::Transpose { .. } => "Transpose",
        Op::Gather { .. } => "Gather",
        Op::GatherElements { .. } => "GatherElements",
        Op::ScatterElements { .. } => "ScatterElements",
        Op::Slice { .. } => "Slice",
        Op::Pad { .. } => "Pad",
        Op::QLut { name, .. } => LUT_STEP_NAMES
            .get(*name as usize)
            .copied()
            .unwrap_or("QLinearLookup"),
        Op::Tile { .. } => "Tile",
        Op::Trilu { .. } => "Trilu",
        Op::ClipInputs { .. } => "Clip",
        Op::TopK(_) => "TopK",
        Op::Resize { .. } => "Resize",
        Op::Quantize { .. } => "QuantizeLinear",
        Op::Dequantize { .. } => "DequantizeLinear",
        Op::QConv(_) => "QLinearConv",
        Op::QAdd(_) => "QLinearAdd",
        Op::QMul(_) => "QLinearMul",
        Op::IntLinear(l) => match (l.geom, l.out8.is_some()) {
            (crate::intop::IntGeom::Conv(_), true) => "QLinearConv",
            (crate::intop::IntGeom::Conv(_), false) => "ConvInteger",
            (_, true) => "QLinearMatMul",
            (_, false) => "MatMulInteger",
        },
        Op::DynQuant(_) => "DynamicQuantizeLinear",
        Op::QConcat(_) => "QLinearConcat",
        Op::QAvgPool(_) => "QLinearAveragePool",
        Op::Rnn(r) => match r.cell {
            crate::rnn::Cell::Rnn => "RNN",
            crate::rnn::Cell::Gru => "GRU",
            crate::rnn::Cell::Lstm => "LSTM",
        },
        Op::Norm(n) if n.channels > 0 => "InstanceNormalization",
        Op::Norm(_) => "LayerNormalization",
        Op::Compare(c) => match c {
            crate::logic::Cmp::Equal => "Equal",
            crate::logic::Cmp::Greater => "Greater",
            crate::logic::Cmp::GreaterOrEqual => "GreaterOrEqual",
            crate::logic::Cmp::Less => "Less",
            crate::logic::Cmp::LessOrEqual => "LessOrEqual",
        },
        Op::Logic(l) => match l {
            crate::logic::Logic::Not => "Not",
            crate::logic::Logic::And => "And",
            crate::logic::Logic::Or => "Or",
            crate::logic::Logic::Xor => "Xor",
        },
        Op::Where => "Where",
        Op::Variadic(Binary::Add) => "Sum",
        Op::Variadic(b) => b.name(),
        Op::Convert { .. } => "Cast",
        Op::Hardmax { .. } => "Hardmax",
        Op::Classify(crate::logic::Class::Nan) => "IsNaN",
        Op::Classify(_) => "IsInf",
        Op::GatherNd { .. } => "GatherND",
        Op::ScatterNd { .. } => "ScatterND",
        Op::Lrn(_) => "LRN",
        Op::Mvn { .. } => "MeanVarianceNormalization",
        Op::CumSum { .. } => "CumSum",
        Op::ReverseSequence { .. } => "ReverseSequence",
        Op::OneHot { .. } => "OneHot",
        Op::EyeLike { .. } => "EyeLike",
        Op::Einsum(_) => "Einsum",
        Op::GridSample(_) => "GridSample",
        Op::Loss(l) if l.softmax => "SoftmaxCrossEntropyLoss",
        Op::Loss(_) => "NegativeLogLikelihoodLoss",
        Op::Dft(_) => "DFT",
        Op::Stft(_) => "STFT",
        Op::WindowFn { kind, .. } => kind.name(),
        Op::MelWeights(_) => "MelWeightMatrix",
    }
}
