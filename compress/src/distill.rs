//! The distillation objective of one training run: which [`crate::kd`] losses, with which
//! weights, between which student and teacher layers — checked for connectability before any
//! training starts — and the learned connectors (1×1 conv or linear regressors) that map student
//! features onto the teacher's width where a loss needs equal shapes.

use crate::kd;
use crate::teacher::TeacherLayout;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use sprig_models::arch::{ArchSpec, CnnModel};

/// One distillation loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KdLoss {
    /// Hinton KD on the logits, averaged over all teachers' softened probabilities (an
    /// ensemble of one or more): `T²·KL(mean_k softmax(t_k/T) ‖ softmax(s/T))`.
    Hinton {
        /// Temperature T.
        temperature: f64,
    },
    /// FitNets hint through a learned regressor.
    FitNets,
    /// Attention transfer (conv features of equal H×W).
    Attention,
    /// Activation boundary through a learned connector, with margin.
    ActivationBoundary {
        /// Margin m.
        margin: f64,
    },
    /// RKD distance term on flattened features.
    RkdDistance,
    /// RKD angle term on flattened features.
    RkdAngle,
    /// Area-wise relational KD on a g×g grid of areas.
    AreaRkd {
        /// Grid size g.
        grid: usize,
    },
}

impl KdLoss {
    /// Recipe spelling.
    pub fn name(&self) -> &'static str {
        match self {
            KdLoss::Hinton { .. } => "hinton",
            KdLoss::FitNets => "fitnets",
            KdLoss::Attention => "attention",
            KdLoss::ActivationBoundary { .. } => "activation-boundary",
            KdLoss::RkdDistance => "rkd-distance",
            KdLoss::RkdAngle => "rkd-angle",
            KdLoss::AreaRkd { .. } => "area-rkd",
        }
    }

    fn needs_connector(&self) -> bool {
        matches!(self, KdLoss::FitNets | KdLoss::ActivationBoundary { .. })
    }
}

/// A weighted loss between student layer `student_layer` and layer `teacher_layer` of teacher
/// `teacher` (indices into [`ArchSpec::layer_names`]; unused by Hinton).
#[derive(Debug, Clone, PartialEq)]
pub struct KdTerm {
    /// The loss.
    pub loss: KdLoss,
    /// Its weight in the total.
    pub weight: f64,
    /// Which teacher.
    pub teacher: usize,
    /// Student weighted-layer index.
    pub student_layer: usize,
    /// Teacher weighted-layer index.
    pub teacher_layer: usize,
}

/// Why a term cannot connect `student` to `teacher`, or `None` if it can.
pub fn connect_error(term: &KdTerm, student: &ArchSpec, teacher: &TeacherLayout) -> Option<String> {
    let name = term.loss.name();
    if let KdLoss::Hinton { .. } = term.loss {
        let (so, to) = (student.shapes().last()?.0, teacher.outputs);
        return (so != to).then(|| format!("{name}: student has {so} outputs, teacher {to}"));
    }
    let (Some(&s), Some(&t)) = (
        student.feature_shapes().get(term.student_layer),
        teacher.shapes.get(term.teacher_layer),
    ) else {
        return Some("layer index out of range".into());
    };
    let conv = |x: (usize, usize, usize)| x.1 > 1 || x.2 > 1;
    match term.loss {
        KdLoss::FitNets | KdLoss::ActivationBoundary { .. } | KdLoss::Attention
            if (s.1, s.2) != (t.1, t.2) =>
        {
            Some(format!(
                "{name}: student feature {}×{} and teacher feature {}×{} differ in H×W",
                s.1, s.2, t.1, t.2
            ))
        }
        KdLoss::Attention if !conv(s) => Some(format!("{name} needs convolutional features")),
        KdLoss::AreaRkd { grid } => {
            if !conv(s) || !conv(t) {
                Some(format!("{name} needs convolutional features"))
            } else if grid == 0 || s.1 % grid + s.2 % grid + t.1 % grid + t.2 % grid != 0 {
                Some(format!(
                    "{name}: feature sizes {}×{} and {}×{} are not multiples of grid {grid}",
                    s.1, s.2, t.1, t.2
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A connector from a student feature to the teacher's width.
enum Connector {
    Conv(candle_nn::Conv2d),
    Linear(candle_nn::Linear),
}

/// The objective: cross-entropy weight plus the KD terms with their connectors.
pub struct Distiller {
    /// Weight of the hard-label cross-entropy.
    pub ce_weight: f64,
    terms: Vec<(KdTerm, Option<Connector>)>,
}

impl Distiller {
    /// Builds the connectors (variables `kd_<i>.*` in `vb`'s map, trained with the student,
    /// never exported) after checking every term connects.
    pub fn new(
        ce_weight: f64,
        terms: &[KdTerm],
        student: &ArchSpec,
        teachers: &[TeacherLayout],
        vb: VarBuilder,
    ) -> crate::Result<Self> {
        let mut out = Vec::new();
        for (i, term) in terms.iter().enumerate() {
            let teacher = teachers.get(term.teacher).ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "kd term {i} ({}) names teacher {} but there are {}",
                    term.loss.name(),
                    term.teacher,
                    teachers.len()
                ))
            })?;
            if let Some(e) = connect_error(term, student, teacher) {
                return Err(crate::Error::Invalid(e));
            }
            let conn = if term.loss.needs_connector() {
                let s = student.feature_shapes()[term.student_layer];
                let t = teacher.shapes[term.teacher_layer];
                let vb = vb.pp(format!("kd_{i}"));
                Some(if s.1 > 1 || s.2 > 1 {
                    Connector::Conv(candle_nn::conv2d(s.0, t.0, 1, Default::default(), vb)?)
                } else {
                    Connector::Linear(candle_nn::linear(s.0, t.0, vb)?)
                })
            } else {
                None
            };
            out.push((term.clone(), conn));
        }
        Ok(Distiller {
            ce_weight,
            terms: out,
        })
    }

    /// True when no teacher is needed.
    pub fn is_plain(&self) -> bool {
        self.terms.is_empty()
    }

    /// The KD part of the loss (without cross-entropy): Σ weight·term. `student` and each
    /// `teachers[k]` are (logits, pre-activation features); teachers detached by the caller.
    pub fn kd_loss(
        &self,
        student: &(Tensor, Vec<Tensor>),
        teachers: &[(Tensor, Vec<Tensor>)],
    ) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for (term, conn) in &self.terms {
            let s = &student.1[term.student_layer];
            let t = &teachers[term.teacher].1[term.teacher_layer];
            let regressed = match conn {
                Some(Connector::Conv(c)) => c.forward(s)?,
                Some(Connector::Linear(l)) => l.forward(s)?,
                None => s.clone(),
            };
            let flat = |x: &Tensor| x.flatten_from(1);
            let l = match term.loss {
                KdLoss::Hinton { temperature } => {
                    let logits: Vec<&Tensor> = teachers.iter().map(|t| &t.0).collect();
                    kd::hinton(&student.0, &logits, temperature)?
                }
                KdLoss::FitNets => kd::fitnets(&regressed, t)?,
                KdLoss::Attention => kd::attention_transfer(s, t)?,
                KdLoss::ActivationBoundary { margin } => {
                    kd::activation_boundary(&regressed, t, margin)?
                }
                KdLoss::RkdDistance => kd::rkd_distance(&flat(s)?, &flat(t)?)?,
                KdLoss::RkdAngle => kd::rkd_angle(&flat(s)?, &flat(t)?)?,
                KdLoss::AreaRkd { grid } => kd::area_wise_rkd(s, t, grid)?,
            };
            let l = (l * term.weight)?;
            total = Some(match total {
                Some(acc) => (acc + l)?,
                None => l,
            });
        }
        Ok(total)
    }
}

/// Fraction of samples on which the student's and the first teacher's argmax agree — the
/// "KD moves the student towards the teacher" measure.
pub fn agreement(student: &CnnModel, teacher: &CnnModel, x: &Tensor) -> Result<f64> {
    let a = student.forward(x)?.argmax(1)?.to_vec1::<u32>()?;
    let b = teacher.forward(x)?.argmax(1)?.to_vec1::<u32>()?;
    Ok(a.iter().zip(&b).filter(|(p, q)| p == q).count() as f64 / a.len().max(1) as f64)
}
