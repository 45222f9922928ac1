//! Architectures as layer lists. One [`ArchSpec`] builds the candle module for training
//! ([`CnnModel`]) and, through the trained weights ([`LayerWeights`], batch norm folded into
//! the convolutions), the ONNX export. Families: a plain small CNN ([`ArchSpec::small_cnn`]),
//! ResNet-CIFAR ([`ArchSpec::resnet`]: resnet8/20/56 shapes with a width multiplier) and a
//! MobileNetV2-style depthwise net ([`ArchSpec::mobilenet_v2`]) and DenseNet-BC
//! ([`ArchSpec::densenet_bc`]: bottleneck layers whose outputs are concatenated).

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor, D};
use candle_nn::{BatchNorm, Conv2dConfig, VarBuilder, VarMap};

use crate::train_ops::{self, Kernels};

/// One layer of a feed-forward classifier.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSpec {
    /// 2-D convolution `k`×`k`, zero padding `pad`, stride `stride`; followed by batch norm
    /// when `bn` (then the convolution has no bias), then an optional ReLU.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size.
        k: usize,
        /// Padding on each side.
        pad: usize,
        /// Stride.
        stride: usize,
        /// Batch norm after the convolution.
        bn: bool,
        /// ReLU at the end.
        relu: bool,
    },
    /// ResNet basic block: conv3×3(stride, `mid` channels)–BN–ReLU–conv3×3(`out`)–BN, plus the
    /// shortcut (identity, or conv1×1(stride)–BN when the shape changes), added, then ReLU.
    /// Without `bn` (after folding) the convolutions carry the biases.
    Residual {
        /// Output channels.
        out: usize,
        /// Channels between the two convolutions (= `out` in ResNet; fewer after structured
        /// pruning, which can narrow the block inside without touching the sum).
        mid: usize,
        /// Stride of the first convolution and the shortcut.
        stride: usize,
        /// Batch norm in the block.
        bn: bool,
    },
    /// MobileNetV2 inverted residual (linear bottleneck): 1×1 expansion to `expand`·C channels
    /// (left out when `expand` is 1)–BN–ReLU, 3×3 depthwise (`stride`)–BN–ReLU, 1×1 projection
    /// to `out`–BN without ReLU; plus the input when the stride is 1 and the width unchanged.
    /// ReLU rather than ReLU6: the int8 observers bound the range anyway.
    InvertedResidual {
        /// Expansion factor t.
        expand: usize,
        /// Output channels.
        out: usize,
        /// Stride of the depthwise convolution.
        stride: usize,
        /// Batch norm in the block.
        bn: bool,
    },
    /// DenseNet-BC bottleneck layer: conv1×1(`mid`)–BN–ReLU–conv3×3(`growth`)–BN–ReLU, its
    /// output concatenated after the layer's input (C → C + `growth` channels).
    DenseLayer {
        /// Bottleneck channels (4·growth in the paper; fewer after structured pruning).
        mid: usize,
        /// Channels the layer adds to the concatenation (the growth rate k).
        growth: usize,
        /// Batch norm in the layer.
        bn: bool,
    },
    /// 2×2 max pooling, stride 2.
    MaxPool2,
    /// 2×2 average pooling, stride 2 (DenseNet's transitions).
    AvgPool2,
    /// Mean over H×W: N×C×H×W → N×C.
    GlobalAvgPool,
    /// N×C×H×W → N×(C·H·W).
    Flatten,
    /// Fully connected layer, optional ReLU.
    Dense {
        /// Output features.
        out: usize,
        /// ReLU after the layer.
        relu: bool,
    },
}

/// A classifier architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchSpec {
    /// Short name for reports.
    pub name: String,
    /// Input channels, height, width.
    pub input: (usize, usize, usize),
    /// The layers in order.
    pub layers: Vec<LayerSpec>,
}

/// A plain 3×3 convolution with bias and ReLU, stride 1, "same" padding.
fn conv3(out: usize) -> LayerSpec {
    LayerSpec::Conv {
        out,
        k: 3,
        pad: 1,
        stride: 1,
        bn: false,
        relu: true,
    }
}

fn conv_out(size: usize, k: usize, pad: usize, stride: usize) -> usize {
    (size + 2 * pad).saturating_sub(k) / stride.max(1) + 1
}

impl ArchSpec {
    /// A plain small CNN: two conv+pool stages of `c1`, `c2` channels, optional hidden dense
    /// layer, classifier over `classes`.
    pub fn small_cnn(
        name: &str,
        input: (usize, usize, usize),
        c1: usize,
        c2: usize,
        hidden: Option<usize>,
        classes: usize,
    ) -> Self {
        let mut layers = vec![
            conv3(c1),
            LayerSpec::MaxPool2,
            conv3(c2),
            LayerSpec::MaxPool2,
            LayerSpec::Flatten,
        ];
        if let Some(h) = hidden {
            layers.push(LayerSpec::Dense { out: h, relu: true });
        }
        layers.push(LayerSpec::Dense {
            out: classes,
            relu: false,
        });
        ArchSpec {
            name: name.into(),
            input,
            layers,
        }
    }

    /// ResNet for small images (He et al. 2016, the CIFAR variant): conv3×3(w)–BN–ReLU, three
    /// stages of `n` basic blocks with `w`, `2w`, `4w` channels (stride 2 entering stages 2 and
    /// 3), global average pooling, a dense classifier. `n` = 1, 3, 9 give resnet8/20/56; `w` =
    /// 16 is the paper's width.
    pub fn resnet(
        name: &str,
        input: (usize, usize, usize),
        n: usize,
        w: usize,
        classes: usize,
    ) -> Self {
        let mut layers = vec![LayerSpec::Conv {
            out: w,
            k: 3,
            pad: 1,
            stride: 1,
            bn: true,
            relu: true,
        }];
        for (stage, width) in [w, 2 * w, 4 * w].into_iter().enumerate() {
            for b in 0..n.max(1) {
                layers.push(LayerSpec::Residual {
                    out: width,
                    mid: width,
                    stride: if stage > 0 && b == 0 { 2 } else { 1 },
                    bn: true,
                });
            }
        }
        layers.push(LayerSpec::GlobalAvgPool);
        layers.push(LayerSpec::Dense {
            out: classes,
            relu: false,
        });
        ArchSpec {
            name: name.into(),
            input,
            layers,
        }
    }

    /// A MobileNetV2-style net for small images: conv3×3(w)–BN–ReLU, inverted residual stages
    /// (expansion t, width, repeats, first stride) (1, w/2, 1, 1), (6, 3w/4, 2, 2), (6, w, 2, 2),
    /// (6, 3w/2, 1, 1), a 1×1 conv to 4w–BN–ReLU, global average pooling, a dense classifier.
    /// `w` = 16 gives 19,578 parameters (10 classes); every 3×3 after the stem is depthwise.
    pub fn mobilenet_v2(
        name: &str,
        input: (usize, usize, usize),
        w: usize,
        classes: usize,
    ) -> Self {
        let w = w.max(4);
        let mut layers = vec![LayerSpec::Conv {
            out: w,
            k: 3,
            pad: 1,
            stride: 1,
            bn: true,
            relu: true,
        }];
        for (t, c, n, s) in [
            (1, w / 2, 1, 1),
            (6, 3 * w / 4, 2, 2),
            (6, w, 2, 2),
            (6, 3 * w / 2, 1, 1),
        ] {
            for i in 0..n {
                layers.push(LayerSpec::InvertedResidual {
                    expand: t,
                    out: c,
                    stride: if i == 0 { s } else { 1 },
                    bn: true,
                });
            }
        }
        layers.push(LayerSpec::Conv {
            out: 4 * w,
            k: 1,
            pad: 0,
            stride: 1,
            bn: true,
            relu: true,
        });
        layers.push(LayerSpec::GlobalAvgPool);
        layers.push(LayerSpec::Dense {
            out: classes,
            relu: false,
        });
        ArchSpec {
            name: name.into(),
            input,
            layers,
        }
    }

    /// DenseNet-BC for small images (Huang et al. 2017): conv3×3(2k)–BN–ReLU, three dense
    /// blocks of (`depth` − 4)/6 bottleneck layers of growth rate k = `growth` (bottleneck
    /// 4k), between blocks a transition conv1×1 halving the channels (compression θ = 0.5)
    /// then 2×2 average pooling; global average pooling, a dense classifier. Unlike the
    /// paper's pre-activation BN–ReLU–conv order, every convolution is followed by its batch
    /// norm and ReLU, so batch norm folds into the convolutions for export and int8 (the
    /// runtime then sees Conv–ReLU and Concat only). The paper's DenseNet-BC (L = 100,
    /// k = 12) is `depth` 100, `growth` 12; `depth` 10, `growth` 4 has 2,484 parameters.
    pub fn densenet_bc(
        name: &str,
        input: (usize, usize, usize),
        depth: usize,
        growth: usize,
        classes: usize,
    ) -> Self {
        let n = (depth.saturating_sub(4) / 6).max(1);
        let k = growth.max(1);
        let mut c = 2 * k;
        let mut layers = vec![LayerSpec::Conv {
            out: c,
            k: 3,
            pad: 1,
            stride: 1,
            bn: true,
            relu: true,
        }];
        for block in 0..3 {
            for _ in 0..n {
                layers.push(LayerSpec::DenseLayer {
                    mid: 4 * k,
                    growth: k,
                    bn: true,
                });
                c += k;
            }
            if block < 2 {
                c /= 2;
                layers.push(LayerSpec::Conv {
                    out: c,
                    k: 1,
                    pad: 0,
                    stride: 1,
                    bn: true,
                    relu: true,
                });
                layers.push(LayerSpec::AvgPool2);
            }
        }
        layers.push(LayerSpec::GlobalAvgPool);
        layers.push(LayerSpec::Dense {
            out: classes,
            relu: false,
        });
        ArchSpec {
            name: name.into(),
            input,
            layers,
        }
    }

    /// The same architecture with batch norm folded into the convolutions (what is exported
    /// and what quantization-aware training fine-tunes).
    pub fn folded(&self) -> ArchSpec {
        let mut s = self.clone();
        for l in &mut s.layers {
            match l {
                LayerSpec::Conv { bn, .. }
                | LayerSpec::Residual { bn, .. }
                | LayerSpec::InvertedResidual { bn, .. }
                | LayerSpec::DenseLayer { bn, .. } => *bn = false,
                _ => {}
            }
        }
        s
    }

    /// Whether any layer has batch norm.
    pub fn has_bn(&self) -> bool {
        self.layers.iter().any(|l| {
            matches!(
                l,
                LayerSpec::Conv { bn: true, .. }
                    | LayerSpec::Residual { bn: true, .. }
                    | LayerSpec::InvertedResidual { bn: true, .. }
                    | LayerSpec::DenseLayer { bn: true, .. }
            )
        })
    }

    /// Shapes (C, H, W) after each layer, with C = features after Flatten/Dense/GlobalAvgPool
    /// (H = W = 1).
    pub fn shapes(&self) -> Vec<(usize, usize, usize)> {
        let mut s = self.input;
        let mut out = Vec::new();
        for l in &self.layers {
            s = match *l {
                LayerSpec::Conv {
                    out,
                    k,
                    pad,
                    stride,
                    ..
                } => (
                    out,
                    conv_out(s.1, k, pad, stride),
                    conv_out(s.2, k, pad, stride),
                ),
                LayerSpec::Residual { out, stride, .. }
                | LayerSpec::InvertedResidual { out, stride, .. } => (
                    out,
                    conv_out(s.1, 3, 1, stride),
                    conv_out(s.2, 3, 1, stride),
                ),
                LayerSpec::DenseLayer { growth, .. } => (s.0 + growth, s.1, s.2),
                LayerSpec::MaxPool2 | LayerSpec::AvgPool2 => (s.0, s.1 / 2, s.2 / 2),
                LayerSpec::GlobalAvgPool => (s.0, 1, 1),
                LayerSpec::Flatten => (s.0 * s.1 * s.2, 1, 1),
                LayerSpec::Dense { out, .. } => (out, 1, 1),
            };
            out.push(s);
        }
        out
    }

    /// Names of the layers distillation and reports can refer to, in order — `conv1`, …,
    /// `block1`, …, `fc1`, … (convolutions; residual, inverted residual and DenseNet
    /// bottleneck blocks; dense layers).
    pub fn layer_names(&self) -> Vec<String> {
        let (mut convs, mut blocks, mut fcs) = (0, 0, 0);
        self.layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { .. } => {
                    convs += 1;
                    Some(format!("conv{convs}"))
                }
                LayerSpec::Residual { .. }
                | LayerSpec::InvertedResidual { .. }
                | LayerSpec::DenseLayer { .. } => {
                    blocks += 1;
                    Some(format!("block{blocks}"))
                }
                LayerSpec::Dense { .. } => {
                    fcs += 1;
                    Some(format!("fc{fcs}"))
                }
                _ => None,
            })
            .collect()
    }

    /// Shape (C, H, W) of each named layer's feature (before its final ReLU; H = W = 1 for
    /// dense layers; a DenseNet layer's input followed by its new channels before their
    /// ReLU), in the order of [`ArchSpec::layer_names`].
    pub fn feature_shapes(&self) -> Vec<(usize, usize, usize)> {
        self.layers
            .iter()
            .zip(self.shapes())
            .filter(|(l, _)| {
                matches!(
                    l,
                    LayerSpec::Conv { .. }
                        | LayerSpec::Residual { .. }
                        | LayerSpec::InvertedResidual { .. }
                        | LayerSpec::DenseLayer { .. }
                        | LayerSpec::Dense { .. }
                )
            })
            .map(|(_, s)| s)
            .collect()
    }

    /// The activation quantization points in forward order, each flagged when it follows a
    /// ReLU: the input; each conv and dense output; in a residual block the first conv's
    /// output, the second conv's (before the sum), the projection shortcut's, and the block
    /// output; in a DenseNet layer both convolutions' outputs and the concatenation; each
    /// average-pool output. The int8 export and fake quantization share this order.
    pub fn quant_points(&self) -> Vec<bool> {
        let mut c = self.input.0;
        let mut pts = vec![false];
        // Whether the current activation is non-negative (a concatenation or a pooling of
        // non-negative tensors is too).
        let nonneg = |pts: &Vec<bool>| *pts.last().expect("the input point");
        for (l, s) in self.layers.iter().zip(self.shapes()) {
            match *l {
                LayerSpec::Conv { relu, .. } | LayerSpec::Dense { relu, .. } => pts.push(relu),
                LayerSpec::Residual { out, stride, .. } => {
                    pts.extend([true, false]);
                    if stride != 1 || c != out {
                        pts.push(false);
                    }
                    pts.push(true);
                }
                LayerSpec::InvertedResidual {
                    expand,
                    out,
                    stride,
                    ..
                } => {
                    // expansion (ReLU), depthwise (ReLU), projection, then the sum.
                    if expand != 1 {
                        pts.push(true);
                    }
                    pts.extend([true, false]);
                    if stride == 1 && c == out {
                        pts.push(false);
                    }
                }
                LayerSpec::DenseLayer { .. } => {
                    let concat = nonneg(&pts);
                    pts.extend([true, true, concat]);
                }
                LayerSpec::AvgPool2 => pts.push(nonneg(&pts)),
                LayerSpec::GlobalAvgPool => pts.push(false),
                LayerSpec::MaxPool2 | LayerSpec::Flatten => {}
            }
            c = s.0;
        }
        pts
    }

    /// Number of trainable parameters (batch-norm scale and shift included, running
    /// statistics not).
    pub fn param_count(&self) -> usize {
        self.count(false)
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        self.count(true)
    }

    /// Parameters, or (with `macs`) weights times the output positions they are applied at.
    fn count(&self, macs: bool) -> usize {
        let mut c = self.input.0;
        let mut n = 0;
        let extra = |out: usize, bn: bool| match (macs, bn) {
            (true, _) => 0,
            (false, true) => 2 * out,
            (false, false) => out,
        };
        let mut prev = self.input;
        for (l, s) in self.layers.iter().zip(self.shapes()) {
            let at = if macs { s.1 * s.2 } else { 1 };
            let at_in = if macs { prev.1 * prev.2 } else { 1 };
            prev = s;
            match *l {
                LayerSpec::Conv { out, k, bn, .. } => n += out * c * k * k * at + extra(out, bn),
                LayerSpec::Residual {
                    out,
                    mid,
                    stride,
                    bn,
                } => {
                    n += (mid * c * 9 + out * mid * 9) * at + extra(mid, bn) + extra(out, bn);
                    if stride != 1 || c != out {
                        n += out * c * at + extra(out, bn);
                    }
                }
                LayerSpec::InvertedResidual {
                    expand, out, bn, ..
                } => {
                    let hid = c * expand;
                    if expand != 1 {
                        n += hid * c * at_in + extra(hid, bn);
                    }
                    n += hid * 9 * at + extra(hid, bn) + out * hid * at + extra(out, bn);
                }
                LayerSpec::DenseLayer { mid, growth, bn } => {
                    n += (mid * c + growth * mid * 9) * at + extra(mid, bn) + extra(growth, bn);
                }
                LayerSpec::Dense { out, .. } => n += out * c + extra(out, false),
                _ => {}
            }
            c = s.0;
        }
        n
    }
}

/// A convolution's trained weights (OIHW) and bias, batch norm folded in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// Weights, `out · in · k · k`.
    pub w: Vec<f32>,
    /// Bias, `out`.
    pub b: Vec<f32>,
}

/// Trained weights of one layer, row-major as ONNX stores them, batch norm folded in.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerWeights {
    /// OIHW weights and bias.
    Conv {
        /// Weights, `out · in · k · k`.
        w: Vec<f32>,
        /// Bias, `out`.
        b: Vec<f32>,
    },
    /// A residual block's convolutions: first, second, and the projection shortcut if any.
    Residual {
        /// conv3×3 (stride).
        c1: ConvWeights,
        /// conv3×3.
        c2: ConvWeights,
        /// conv1×1 shortcut.
        shortcut: Option<ConvWeights>,
    },
    /// A DenseNet bottleneck layer's convolutions.
    DenseLayer {
        /// conv1×1 to the bottleneck.
        c1: ConvWeights,
        /// conv3×3 to the growth channels.
        c2: ConvWeights,
    },
    /// An inverted residual block's convolutions.
    InvertedResidual {
        /// 1×1 expansion (absent when the factor is 1).
        expand: Option<ConvWeights>,
        /// 3×3 depthwise, weights `hidden × 1 × 3 × 3`.
        dw: ConvWeights,
        /// 1×1 projection.
        project: ConvWeights,
    },
    /// Weights `out × in` (ONNX Gemm with transB = 1) and bias.
    Dense {
        /// Weights.
        w: Vec<f32>,
        /// Bias.
        b: Vec<f32>,
    },
    /// A layer without weights.
    None,
}

impl LayerWeights {
    /// Every weight and bias value of the layer.
    pub fn values(&self) -> Vec<&[f32]> {
        match self {
            LayerWeights::Conv { w, b } | LayerWeights::Dense { w, b } => vec![w, b],
            LayerWeights::Residual { c1, c2, shortcut } => {
                let mut v: Vec<&[f32]> = vec![&c1.w, &c1.b, &c2.w, &c2.b];
                if let Some(s) = shortcut {
                    v.extend([s.w.as_slice(), s.b.as_slice()]);
                }
                v
            }
            LayerWeights::DenseLayer { c1, c2 } => vec![&c1.w, &c1.b, &c2.w, &c2.b],
            LayerWeights::InvertedResidual {
                expand,
                dw,
                project,
            } => expand
                .iter()
                .chain([dw, project])
                .flat_map(|c| [c.w.as_slice(), c.b.as_slice()])
                .collect(),
            LayerWeights::None => vec![],
        }
    }
}

/// A convolution with its optional batch norm.
struct ConvUnit {
    conv: candle_nn::Conv2d,
    bn: Option<BatchNorm>,
}

impl ConvUnit {
    #[allow(clippy::too_many_arguments)]
    fn new(
        c: usize,
        out: usize,
        (k, pad, stride, groups): (usize, usize, usize, usize),
        bn: bool,
        vb: VarBuilder,
        name: &str,
    ) -> Result<Self> {
        let cfg = Conv2dConfig {
            padding: pad,
            stride,
            groups,
            ..Default::default()
        };
        Ok(if bn {
            ConvUnit {
                conv: candle_nn::conv2d_no_bias(c, out, k, cfg, vb.pp(name))?,
                bn: Some(candle_nn::batch_norm(
                    out,
                    1e-5,
                    vb.pp(format!("{name}_bn")),
                )?),
            }
        } else {
            ConvUnit {
                conv: candle_nn::conv2d(c, out, k, cfg, vb.pp(name))?,
                bn: None,
            }
        })
    }

    /// Convolution (+ bias) and batch norm, with sprig's kernels or candle's ops.
    fn forward(
        &self,
        x: &Tensor,
        train: bool,
        kernels: Kernels,
        j: &mut usize,
        hooks: &mut dyn ForwardHooks,
    ) -> Result<Tensor> {
        let w = hooks.weight(*j, self.conv.weight())?;
        *j += 1;
        let cfg = self.conv.config();
        let bias = self.conv.bias();
        let z = match kernels {
            Kernels::Sprig => train_ops::conv2d(x, &w, bias, cfg.padding, cfg.stride, cfg.groups)?,
            Kernels::Candle => {
                let z = x.conv2d(&w, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
                match bias {
                    Some(b) => z.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?,
                    None => z,
                }
            }
        };
        match &self.bn {
            Some(bn) if train && kernels == Kernels::Sprig => {
                let (g, b) = bn.weight_and_bias().expect("affine batch norm");
                train_ops::batch_norm_train(
                    &z,
                    g,
                    b,
                    bn.running_mean(),
                    bn.running_var(),
                    bn.momentum(),
                    bn.eps(),
                )
            }
            Some(bn) => bn.forward_t(&z, train),
            None => Ok(z),
        }
    }

    /// Weights and bias with the batch norm folded in:
    /// `w' = w·γ/√(σ²+ε)`, `b' = β + (b − μ)·γ/√(σ²+ε)`.
    fn folded(&self) -> Result<ConvWeights> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> { t.flatten_all()?.to_vec1::<f32>() };
        let mut w = flat(self.conv.weight())?;
        let oc = self.conv.weight().dim(0)?;
        let mut b = match self.conv.bias() {
            Some(b) => flat(b)?,
            None => vec![0.0; oc],
        };
        if let Some(bn) = &self.bn {
            let (g, beta) = bn.weight_and_bias().expect("affine batch norm");
            let (g, beta) = (flat(g)?, flat(beta)?);
            let (mean, var) = (flat(bn.running_mean())?, flat(bn.running_var())?);
            let per = w.len() / oc;
            for c in 0..oc {
                let s = g[c] / (var[c] + bn.eps() as f32).sqrt();
                w[c * per..(c + 1) * per].iter_mut().for_each(|v| *v *= s);
                b[c] = beta[c] + (b[c] - mean[c]) * s;
            }
        }
        Ok(ConvWeights { w, b })
    }
}

#[allow(clippy::large_enum_variant)] // a handful per model: boxing would buy nothing
enum CLayer {
    Conv(ConvUnit, bool),
    Residual {
        c1: ConvUnit,
        c2: ConvUnit,
        shortcut: Option<ConvUnit>,
    },
    InvertedResidual {
        expand: Option<ConvUnit>,
        dw: ConvUnit,
        project: ConvUnit,
        skip: bool,
    },
    DenseLayer {
        c1: ConvUnit,
        c2: ConvUnit,
    },
    Pool,
    AvgPool,
    Gap,
    Flatten,
    Dense(candle_nn::Linear, bool),
}

/// Where training code may step into the forward pass — fake quantization for
/// quantization-aware training and calibration use these hooks. The defaults leave everything
/// unchanged.
pub trait ForwardHooks {
    /// The weight tensor convolution or dense layer `j` (counted in forward order, shortcut
    /// convolutions included) computes with.
    fn weight(&mut self, _j: usize, w: &Tensor) -> Result<Tensor> {
        Ok(w.clone())
    }
    /// The activation at quantization point `p` ([`ArchSpec::quant_points`] order).
    fn activation(&mut self, _p: usize, a: Tensor) -> Result<Tensor> {
        Ok(a)
    }
}

/// The plain forward pass.
pub struct NoHooks;
impl ForwardHooks for NoHooks {}

/// The candle module of an [`ArchSpec`].
pub struct CnnModel {
    /// The architecture.
    pub spec: ArchSpec,
    layers: Vec<CLayer>,
    kernels: Kernels,
}

impl CnnModel {
    /// Creates the layers with parameters from `vb` (variables `l<i>.…`).
    pub fn new(spec: &ArchSpec, vb: VarBuilder) -> Result<Self> {
        let mut c = spec.input.0;
        let mut layers = Vec::new();
        for (i, (l, s)) in spec.layers.iter().zip(spec.shapes()).enumerate() {
            let vb = vb.pp(format!("l{i}"));
            layers.push(match *l {
                LayerSpec::Conv {
                    out,
                    k,
                    pad,
                    stride,
                    bn,
                    relu,
                } => CLayer::Conv(
                    ConvUnit::new(c, out, (k, pad, stride, 1), bn, vb, "conv")?,
                    relu,
                ),
                LayerSpec::Residual {
                    out,
                    mid,
                    stride,
                    bn,
                } => CLayer::Residual {
                    c1: ConvUnit::new(c, mid, (3, 1, stride, 1), bn, vb.clone(), "c1")?,
                    c2: ConvUnit::new(mid, out, (3, 1, 1, 1), bn, vb.clone(), "c2")?,
                    shortcut: if stride != 1 || c != out {
                        Some(ConvUnit::new(c, out, (1, 0, stride, 1), bn, vb, "sc")?)
                    } else {
                        None
                    },
                },
                LayerSpec::InvertedResidual {
                    expand,
                    out,
                    stride,
                    bn,
                } => {
                    let hid = c * expand;
                    CLayer::InvertedResidual {
                        expand: if expand != 1 {
                            Some(ConvUnit::new(c, hid, (1, 0, 1, 1), bn, vb.clone(), "exp")?)
                        } else {
                            None
                        },
                        dw: ConvUnit::new(hid, hid, (3, 1, stride, hid), bn, vb.clone(), "dw")?,
                        project: ConvUnit::new(hid, out, (1, 0, 1, 1), bn, vb, "proj")?,
                        skip: stride == 1 && c == out,
                    }
                }
                LayerSpec::DenseLayer { mid, growth, bn } => CLayer::DenseLayer {
                    c1: ConvUnit::new(c, mid, (1, 0, 1, 1), bn, vb.clone(), "c1")?,
                    c2: ConvUnit::new(mid, growth, (3, 1, 1, 1), bn, vb, "c2")?,
                },
                LayerSpec::MaxPool2 => CLayer::Pool,
                LayerSpec::AvgPool2 => CLayer::AvgPool,
                LayerSpec::GlobalAvgPool => CLayer::Gap,
                LayerSpec::Flatten => CLayer::Flatten,
                LayerSpec::Dense { out, relu } => {
                    CLayer::Dense(candle_nn::linear(c, out, vb)?, relu)
                }
            });
            c = s.0;
        }
        Ok(CnnModel {
            spec: spec.clone(),
            layers,
            kernels: Kernels::default(),
        })
    }

    /// Selects the training kernels (sprig's custom ops by default; candle's own for
    /// comparisons). Both compute the same function.
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// Forward pass (inference mode) returning the logits and each named layer's feature
    /// before its final ReLU (for feature-based distillation).
    pub fn forward_features(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        self.forward_t(x, false, &mut NoHooks)
    }

    /// [`CnnModel::forward_features`] with `hooks` applied to every weight and quantization
    /// point (inference mode).
    pub fn forward_with(
        &self,
        x: &Tensor,
        hooks: &mut dyn ForwardHooks,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        self.forward_t(x, false, hooks)
    }

    /// The forward pass; `train` selects batch statistics (and updates the running ones) in
    /// batch norm.
    pub fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        hooks: &mut dyn ForwardHooks,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let k = self.kernels;
        let relu = |t: Tensor| match k {
            Kernels::Sprig => train_ops::relu(&t),
            Kernels::Candle => t.relu(),
        };
        let mut h = hooks.activation(0, x.clone())?;
        let mut feats = Vec::new();
        let (mut p, mut j) = (1usize, 0usize);
        let act = |p: &mut usize, a: Tensor, hooks: &mut dyn ForwardHooks| {
            let r = hooks.activation(*p, a);
            *p += 1;
            r
        };
        for l in &self.layers {
            h = match l {
                CLayer::Conv(unit, on) => {
                    let z = unit.forward(&h, train, k, &mut j, hooks)?;
                    feats.push(z.clone());
                    act(&mut p, if *on { relu(z)? } else { z }, hooks)?
                }
                CLayer::Residual { c1, c2, shortcut } => {
                    let a1 = relu(c1.forward(&h, train, k, &mut j, hooks)?)?;
                    let a1 = act(&mut p, a1, hooks)?;
                    let z2 = c2.forward(&a1, train, k, &mut j, hooks)?;
                    let z2 = act(&mut p, z2, hooks)?;
                    let s = match shortcut {
                        Some(sc) => {
                            let s = sc.forward(&h, train, k, &mut j, hooks)?;
                            act(&mut p, s, hooks)?
                        }
                        None => h.clone(),
                    };
                    let sum = (z2 + s)?;
                    feats.push(sum.clone());
                    act(&mut p, relu(sum)?, hooks)?
                }
                CLayer::InvertedResidual {
                    expand,
                    dw,
                    project,
                    skip,
                } => {
                    let mut a = h.clone();
                    if let Some(e) = expand {
                        let z = relu(e.forward(&a, train, k, &mut j, hooks)?)?;
                        a = act(&mut p, z, hooks)?;
                    }
                    let z = relu(dw.forward(&a, train, k, &mut j, hooks)?)?;
                    let a = act(&mut p, z, hooks)?;
                    let z = project.forward(&a, train, k, &mut j, hooks)?;
                    let z = act(&mut p, z, hooks)?;
                    let out = if *skip { (z + &h)? } else { z };
                    feats.push(out.clone());
                    if *skip {
                        act(&mut p, out, hooks)?
                    } else {
                        out
                    }
                }
                CLayer::DenseLayer { c1, c2 } => {
                    let a1 = relu(c1.forward(&h, train, k, &mut j, hooks)?)?;
                    let a1 = act(&mut p, a1, hooks)?;
                    let z2 = c2.forward(&a1, train, k, &mut j, hooks)?;
                    feats.push(Tensor::cat(&[&h, &z2], 1)?);
                    let a2 = act(&mut p, relu(z2)?, hooks)?;
                    act(&mut p, Tensor::cat(&[&h, &a2], 1)?, hooks)?
                }
                CLayer::Pool => match k {
                    Kernels::Sprig => train_ops::max_pool2x2(&h)?,
                    Kernels::Candle => h.max_pool2d(2)?,
                },
                CLayer::AvgPool => act(&mut p, h.avg_pool2d(2)?, hooks)?,
                CLayer::Gap => {
                    let g = h.mean(D::Minus1)?.mean(D::Minus1)?;
                    act(&mut p, g, hooks)?
                }
                CLayer::Flatten => h.flatten_from(1)?,
                CLayer::Dense(d, on) => {
                    let w = hooks.weight(j, d.weight())?;
                    j += 1;
                    let b = d.bias().expect("dense has bias");
                    let z = h.matmul(&w.t()?)?.broadcast_add(b)?;
                    feats.push(z.clone());
                    act(&mut p, if *on { relu(z)? } else { z }, hooks)?
                }
            };
        }
        Ok((h, feats))
    }

    /// Trained weights, layer by layer, batch norm folded in.
    pub fn weights(&self) -> Result<Vec<LayerWeights>> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        self.layers
            .iter()
            .map(|l| {
                Ok(match l {
                    CLayer::Conv(u, _) => {
                        let ConvWeights { w, b } = u.folded()?;
                        LayerWeights::Conv { w, b }
                    }
                    CLayer::DenseLayer { c1, c2 } => LayerWeights::DenseLayer {
                        c1: c1.folded()?,
                        c2: c2.folded()?,
                    },
                    CLayer::Residual { c1, c2, shortcut } => LayerWeights::Residual {
                        c1: c1.folded()?,
                        c2: c2.folded()?,
                        shortcut: shortcut.as_ref().map(|s| s.folded()).transpose()?,
                    },
                    CLayer::InvertedResidual {
                        expand,
                        dw,
                        project,
                        ..
                    } => LayerWeights::InvertedResidual {
                        expand: expand.as_ref().map(|e| e.folded()).transpose()?,
                        dw: dw.folded()?,
                        project: project.folded()?,
                    },
                    CLayer::Dense(d, _) => LayerWeights::Dense {
                        w: flat(d.weight())?,
                        b: flat(d.bias().expect("dense has bias"))?,
                    },
                    _ => LayerWeights::None,
                })
            })
            .collect()
    }
}

/// Writes `weights` (batch norm folded) into the variables of a model of `spec.folded()`
/// created on `vars` — how a trained model becomes the starting point of quantization-aware
/// fine-tuning.
pub fn load_folded(spec: &ArchSpec, weights: &[LayerWeights], vars: &VarMap) -> Result<()> {
    let data = vars.data().lock().expect("var map lock");
    let set = |name: String, v: &[f32]| -> Result<()> {
        let var = data
            .get(&name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))?;
        var.set(&Tensor::from_slice(v, var.shape(), var.device())?)
    };
    for (i, (l, w)) in spec.layers.iter().zip(weights).enumerate() {
        match (l, w) {
            (LayerSpec::Conv { .. }, LayerWeights::Conv { w, b }) => {
                set(format!("l{i}.conv.weight"), w)?;
                set(format!("l{i}.conv.bias"), b)?;
            }
            (LayerSpec::Dense { .. }, LayerWeights::Dense { w, b }) => {
                set(format!("l{i}.weight"), w)?;
                set(format!("l{i}.bias"), b)?;
            }
            (LayerSpec::Residual { .. }, LayerWeights::Residual { c1, c2, shortcut }) => {
                for (name, cw) in [
                    ("c1", Some(c1)),
                    ("c2", Some(c2)),
                    ("sc", shortcut.as_ref()),
                ] {
                    if let Some(cw) = cw {
                        set(format!("l{i}.{name}.weight"), &cw.w)?;
                        set(format!("l{i}.{name}.bias"), &cw.b)?;
                    }
                }
            }
            (LayerSpec::DenseLayer { .. }, LayerWeights::DenseLayer { c1, c2 }) => {
                for (name, cw) in [("c1", c1), ("c2", c2)] {
                    set(format!("l{i}.{name}.weight"), &cw.w)?;
                    set(format!("l{i}.{name}.bias"), &cw.b)?;
                }
            }
            (
                LayerSpec::InvertedResidual { .. },
                LayerWeights::InvertedResidual {
                    expand,
                    dw,
                    project,
                },
            ) => {
                for (name, cw) in [
                    ("exp", expand.as_ref()),
                    ("dw", Some(dw)),
                    ("proj", Some(project)),
                ] {
                    if let Some(cw) = cw {
                        set(format!("l{i}.{name}.weight"), &cw.w)?;
                        set(format!("l{i}.{name}.bias"), &cw.b)?;
                    }
                }
            }
            (_, LayerWeights::None) => {}
            _ => {
                return Err(candle_core::Error::Msg(format!(
                    "weights do not match layer {i}"
                )))
            }
        }
    }
    Ok(())
}

impl Module for CnnModel {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_features(x)?.0)
    }
}

/// Softmax over the last dimension (helper shared by losses and evaluation).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// The CPU device.
pub fn cpu() -> Device {
    Device::Cpu
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_shapes_and_counts() {
        let r = ArchSpec::resnet("r8", (1, 28, 28), 1, 16, 10);
        let s = r.shapes();
        assert_eq!(s[1], (16, 28, 28));
        assert_eq!(s[2], (32, 14, 14));
        assert_eq!(s[3], (64, 7, 7));
        assert_eq!(*s.last().unwrap(), (10, 1, 1));
        assert_eq!(
            r.layer_names(),
            ["conv1", "block1", "block2", "block3", "fc1"]
        );
        // conv 144+32; block1 2304+32, 2304+32; block2 4608+64, 9216+64, 512+64;
        // block3 18432+128, 36864+128, 2048+128; fc 650.
        assert_eq!(r.param_count(), 77_754);
        // input, conv1, block1 (3 points), block2 and block3 (4 each), GAP, fc.
        assert_eq!(r.quant_points().len(), 1 + 1 + 3 + 4 + 4 + 1 + 1);
        assert!(r.has_bn() && !r.folded().has_bn());
    }

    /// A training step's logits, every gradient and the updated running statistics are the
    /// same with sprig's kernels and candle's ops (ResNet: convolutions with stride and
    /// shortcut, batch norm, residual adds, global pooling; MobileNetV2: 1×1 and depthwise
    /// convolutions, linear bottlenecks).
    #[test]
    fn sprig_kernels_train_like_candle_ops() {
        for spec in [
            ArchSpec::resnet("r", (2, 10, 10), 1, 4, 3),
            ArchSpec::mobilenet_v2("m", (2, 10, 10), 8, 3),
            ArchSpec::densenet_bc("d", (2, 10, 10), 10, 3, 3),
        ] {
            same_training_step(&spec);
        }
    }

    fn same_training_step(spec: &ArchSpec) {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (5, 2, 10, 10), &dev).unwrap();
        let y = Tensor::new(&[0u32, 1, 2, 1, 0], &dev).unwrap();
        let vars = VarMap::new();
        let mut m = CnnModel::new(spec, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        // Both sides start from the same initial values.
        let start: Vec<(String, Tensor)> = vars
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
            .collect();
        let mut run = |k: Kernels| {
            for (n, t) in &start {
                vars.data().lock().unwrap()[n].set(t).unwrap();
            }
            m.set_kernels(k);
            let logits = m.forward_t(&x, true, &mut NoHooks).unwrap().0;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).unwrap();
            let grads = loss.backward().unwrap();
            let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut named: Vec<(String, Vec<f32>, Option<Vec<f32>>)> = vars
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), flat(v.as_tensor()), grads.get(v).map(flat)))
                .collect();
            named.sort_by(|a, b| a.0.cmp(&b.0));
            (flat(&logits), named)
        };
        let (la, va) = run(Kernels::Sprig);
        let (lb, vb) = run(Kernels::Candle);
        let close = |a: &[f32], b: &[f32], tol: f32| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
        };
        assert!(close(&la, &lb, 1e-4), "logits {la:?} vs {lb:?}");
        assert_eq!(va.len(), vb.len());
        for ((name, a, ga), (_, b, gb)) in va.iter().zip(&vb) {
            assert!(close(a, b, 1e-4), "{name} after the step");
            match (ga, gb) {
                (Some(ga), Some(gb)) => assert!(close(ga, gb, 1e-3), "{name} gradient"),
                (None, None) => assert!(name.contains("running")),
                _ => panic!("{name}: gradient on one side only"),
            }
        }
    }

    /// Trainable values of the candle model of `spec` (BN γ, β counted; running statistics are
    /// not parameters) — what `param_count` must equal.
    fn trainable(spec: &ArchSpec) -> usize {
        let vars = VarMap::new();
        CnnModel::new(
            spec,
            VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let n = vars
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| !n.contains("running"))
            .map(|(_, v)| v.elem_count())
            .sum();
        n
    }

    #[test]
    fn mobilenet_shapes_and_counts() {
        let m = ArchSpec::mobilenet_v2("m", (1, 28, 28), 16, 10);
        let s = m.shapes();
        assert_eq!(s[1], (8, 28, 28));
        assert_eq!(s[3], (12, 14, 14));
        assert_eq!(s[5], (16, 7, 7));
        assert_eq!(s[6], (24, 7, 7));
        assert_eq!(s[7], (64, 7, 7));
        // stem 144+32; b1 dw 144+32, proj 128+16; b2 exp 384+96, dw 432+96, proj 576+24;
        // b3 exp 864+144, dw 648+144, proj 864+24; b4 exp 864+144, dw 648+144, proj 1152+32;
        // b5 exp 1536+192, dw 864+192, proj 1536+32; b6 exp 1536+192, dw 864+192, proj 2304+48;
        // conv 1536+128; fc 650.
        assert_eq!(m.param_count(), 19_578);
        // The candle model has exactly those trainable values (BN γ, β counted; running
        // statistics are not parameters).
        assert_eq!(trainable(&m), 19_578);
        // input, stem; b1: dw, proj; b2: exp, dw, proj; b3: + sum; b4; b5 (+ sum); b6; conv;
        // GAP; fc.
        assert_eq!(
            m.quant_points().len(),
            1 + 1 + 2 + 3 + 4 + 3 + 4 + 3 + 1 + 1 + 1
        );
        assert_eq!(m.layer_names()[1..3], ["block1", "block2"]);
    }

    #[test]
    fn densenet_shapes_and_counts() {
        let d = ArchSpec::densenet_bc("d", (1, 8, 8), 10, 4, 10);
        let s = d.shapes();
        // stem 8; block 8 → 12; transition 6, pool; block → 10; transition 5, pool; block → 9.
        assert_eq!(
            s[..8],
            [
                (8, 8, 8),
                (12, 8, 8),
                (6, 8, 8),
                (6, 4, 4),
                (10, 4, 4),
                (5, 4, 4),
                (5, 2, 2),
                (9, 2, 2)
            ]
        );
        assert_eq!(
            d.layer_names(),
            ["conv1", "block1", "conv2", "block2", "conv3", "block3", "fc1"]
        );
        // stem 72+16; layer 1: 1×1 128+32, 3×3 576+8; transition 72+12; layer 2: 96+32,
        // 576+8; transition 50+10; layer 3: 80+32, 576+8; fc 90+10.
        assert_eq!(d.param_count(), 2_484);
        assert_eq!(trainable(&d), 2_484);
        // input; stem; 3 per dense layer (both convolutions, the concatenation), all after
        // ReLU; transition conv and its pool; GAP; fc.
        let q = d.quant_points();
        assert_eq!(q.len(), 1 + 1 + 3 + 2 + 3 + 2 + 3 + 1 + 1);
        assert_eq!(q[..6], [false, true, true, true, true, true]);
        // The features of a dense layer: its input then the new channels.
        assert_eq!(d.feature_shapes()[1], (12, 8, 8));
    }

    #[test]
    fn folding_batch_norm_preserves_the_function() {
        for spec in [
            ArchSpec::resnet("r", (1, 8, 8), 1, 4, 3),
            ArchSpec::mobilenet_v2("m", (1, 8, 8), 8, 3),
            ArchSpec::densenet_bc("d", (1, 8, 8), 10, 4, 3),
        ] {
            folding_preserves(&spec);
        }
    }

    fn folding_preserves(spec: &ArchSpec) {
        let dev = Device::Cpu;
        let vars = VarMap::new();
        let m = CnnModel::new(spec, VarBuilder::from_varmap(&vars, DType::F32, &dev)).unwrap();
        let x = Tensor::randn(0f32, 1.0, (6, 1, 8, 8), &dev).unwrap();
        // A few training-mode passes move the running statistics away from (0, 1).
        for _ in 0..3 {
            m.forward_t(&x, true, &mut NoHooks).unwrap();
        }
        let want = m.forward_features(&x).unwrap().0;
        let folded = spec.folded();
        let fvars = VarMap::new();
        let f = CnnModel::new(&folded, VarBuilder::from_varmap(&fvars, DType::F32, &dev)).unwrap();
        load_folded(&folded, &m.weights().unwrap(), &fvars).unwrap();
        let got = f.forward_features(&x).unwrap().0;
        let d = (want - got)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-4, "folded model differs by {d}");
    }
}
