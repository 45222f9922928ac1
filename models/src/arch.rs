//! Architectures as layer lists. One [`ArchSpec`] builds the candle module for training
//! ([`CnnModel`]) and, through the trained weights ([`LayerWeights`]), the ONNX export.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Conv2dConfig, VarBuilder};

/// One layer of a plain feed-forward classifier.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerSpec {
    /// 2-D convolution, stride 1, `k`×`k`, zero padding `pad`, optional ReLU.
    Conv {
        /// Output channels.
        out: usize,
        /// Kernel size.
        k: usize,
        /// Padding on each side.
        pad: usize,
        /// ReLU after the convolution.
        relu: bool,
    },
    /// 2×2 max pooling, stride 2.
    MaxPool2,
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
            LayerSpec::Conv {
                out: c1,
                k: 3,
                pad: 1,
                relu: true,
            },
            LayerSpec::MaxPool2,
            LayerSpec::Conv {
                out: c2,
                k: 3,
                pad: 1,
                relu: true,
            },
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

    /// Shapes (C, H, W) after each layer, with C = features after Flatten/Dense (H = W = 1).
    pub fn shapes(&self) -> Vec<(usize, usize, usize)> {
        let mut s = self.input;
        let mut out = Vec::new();
        for l in &self.layers {
            s = match *l {
                LayerSpec::Conv { out, k, pad, .. } => {
                    (out, s.1 + 2 * pad + 1 - k, s.2 + 2 * pad + 1 - k)
                }
                LayerSpec::MaxPool2 => (s.0, s.1 / 2, s.2 / 2),
                LayerSpec::Flatten => (s.0 * s.1 * s.2, 1, 1),
                LayerSpec::Dense { out, .. } => (out, 1, 1),
            };
            out.push(s);
        }
        out
    }

    /// Number of trainable parameters.
    pub fn param_count(&self) -> usize {
        let mut c = self.input.0;
        let mut n = 0;
        for (l, s) in self.layers.iter().zip(self.shapes()) {
            match *l {
                LayerSpec::Conv { out, k, .. } => n += out * c * k * k + out,
                LayerSpec::Dense { out, .. } => n += out * c + out,
                _ => {}
            }
            c = s.0;
        }
        n
    }

    /// Names of the weighted layers in order — `conv1`, `conv2`, …, `fc1`, … — as recipes and
    /// reports refer to them.
    pub fn layer_names(&self) -> Vec<String> {
        let (mut convs, mut fcs) = (0, 0);
        self.layers
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv { .. } => {
                    convs += 1;
                    Some(format!("conv{convs}"))
                }
                LayerSpec::Dense { .. } => {
                    fcs += 1;
                    Some(format!("fc{fcs}"))
                }
                _ => None,
            })
            .collect()
    }

    /// Shape (C, H, W) of each weighted layer's output (H = W = 1 for dense layers), in the order
    /// of [`ArchSpec::layer_names`].
    pub fn feature_shapes(&self) -> Vec<(usize, usize, usize)> {
        self.layers
            .iter()
            .zip(self.shapes())
            .filter(|(l, _)| matches!(l, LayerSpec::Conv { .. } | LayerSpec::Dense { .. }))
            .map(|(_, s)| s)
            .collect()
    }

    /// Multiply-accumulates of one inference.
    pub fn macs(&self) -> usize {
        let mut c = self.input.0;
        let mut n = 0;
        for (l, s) in self.layers.iter().zip(self.shapes()) {
            match *l {
                LayerSpec::Conv { out, k, .. } => n += out * c * k * k * s.1 * s.2,
                LayerSpec::Dense { out, .. } => n += out * c,
                _ => {}
            }
            c = s.0;
        }
        n
    }
}

/// Trained weights of one layer, row-major as ONNX stores them.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerWeights {
    /// OIHW weights and bias.
    Conv {
        /// Weights, `out · in · k · k`.
        w: Vec<f32>,
        /// Bias, `out`.
        b: Vec<f32>,
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

enum CLayer {
    Conv(candle_nn::Conv2d, bool),
    Pool,
    Flatten,
    Dense(candle_nn::Linear, bool),
}

/// Where training code may step into the forward pass — fake quantization for
/// quantization-aware training uses both hooks. The defaults leave everything unchanged.
pub trait ForwardHooks {
    /// The weight tensor weighted layer `j` computes with.
    fn weight(&mut self, _j: usize, w: &Tensor) -> Result<Tensor> {
        Ok(w.clone())
    }
    /// The activation at quantization point `p`: 0 is the model input, `j + 1` the output of
    /// weighted layer `j` after its ReLU (the points the int8 export quantizes).
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
}

impl CnnModel {
    /// Creates the layers with parameters from `vb` (initialised by candle's defaults).
    pub fn new(spec: &ArchSpec, vb: VarBuilder) -> Result<Self> {
        let mut c = spec.input.0;
        let mut layers = Vec::new();
        for (i, (l, s)) in spec.layers.iter().zip(spec.shapes()).enumerate() {
            let vb = vb.pp(format!("l{i}"));
            layers.push(match *l {
                LayerSpec::Conv { out, k, pad, relu } => CLayer::Conv(
                    candle_nn::conv2d(
                        c,
                        out,
                        k,
                        Conv2dConfig {
                            padding: pad,
                            ..Default::default()
                        },
                        vb,
                    )?,
                    relu,
                ),
                LayerSpec::MaxPool2 => CLayer::Pool,
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
        })
    }

    /// Forward pass returning the logits and the pre-activation output of every layer that has
    /// weights (for feature-based distillation).
    pub fn forward_features(&self, x: &Tensor) -> Result<(Tensor, Vec<Tensor>)> {
        self.forward_with(x, &mut NoHooks)
    }

    /// [`CnnModel::forward_features`] with `hooks` applied to every weight and quantization
    /// point.
    pub fn forward_with(
        &self,
        x: &Tensor,
        hooks: &mut dyn ForwardHooks,
    ) -> Result<(Tensor, Vec<Tensor>)> {
        let mut h = hooks.activation(0, x.clone())?;
        let mut feats = Vec::new();
        for l in &self.layers {
            let (z, relu) = match l {
                CLayer::Conv(c, relu) => {
                    let j = feats.len();
                    let w = hooks.weight(j, c.weight())?;
                    let cfg = c.config();
                    let z = h.conv2d(&w, cfg.padding, cfg.stride, cfg.dilation, cfg.groups)?;
                    let b = c.bias().expect("conv has bias");
                    (z.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?, *relu)
                }
                CLayer::Dense(d, relu) => {
                    let j = feats.len();
                    let w = hooks.weight(j, d.weight())?;
                    let b = d.bias().expect("dense has bias");
                    (h.matmul(&w.t()?)?.broadcast_add(b)?, *relu)
                }
                CLayer::Pool => {
                    h = h.max_pool2d(2)?;
                    continue;
                }
                CLayer::Flatten => {
                    h = h.flatten_from(1)?;
                    continue;
                }
            };
            feats.push(z.clone());
            let a = if relu { z.relu()? } else { z };
            h = hooks.activation(feats.len(), a)?;
        }
        Ok((h, feats))
    }

    /// Trained weights, layer by layer.
    pub fn weights(&self) -> Result<Vec<LayerWeights>> {
        let flat = |t: &Tensor| -> Result<Vec<f32>> {
            t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
        };
        self.layers
            .iter()
            .map(|l| {
                Ok(match l {
                    CLayer::Conv(c, _) => LayerWeights::Conv {
                        w: flat(c.weight())?,
                        b: flat(c.bias().expect("conv has bias"))?,
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
