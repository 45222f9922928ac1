//! Pedestrian hazard-zone alerts on the device, without a heap: detections → [`tracker`] →
//! trajectory [`predict`]ion → [`geometry`] zone-entry test → [`alert`] policy.
//!
//! ```
//! use sprig_runtime::hazard::{
//!     AlertPolicy, ConstantVelocity, HazardPipeline, Point, TrackerConfig, Zone,
//! };
//! let zones = [Zone::new("crossing", &[[2.0, 3.0], [5.0, 3.0], [5.0, 4.5], [2.0, 4.5]]).unwrap()];
//! let mut p = HazardPipeline::<_, 64>::new(
//!     ConstantVelocity, &zones, TrackerConfig::default(), AlertPolicy::default(),
//! ).unwrap();
//! let mut alerts = heapless::Vec::new();
//! let mut raised = 0;
//! for k in 0..20 {
//!     // One pedestrian walking towards the crossing at 1 m/s.
//!     let x = -8.0 + 0.4 * k as f32;
//!     p.process(k as f64 * 0.4, &[Point::new(x, 3.7)], &mut alerts)?;
//!     raised += alerts.len();
//! }
//! assert_eq!(raised, 1);
//! # Ok::<(), sprig_runtime::hazard::HazardError>(())
//! ```

pub mod alert;
pub mod geometry;
pub mod io;
pub mod pipeline;
pub mod predict;
#[cfg(feature = "std")]
pub mod stream;
pub mod tracker;
#[cfg(feature = "zones-toml")]
pub mod zones_toml;

pub use alert::AlertPolicy;
pub use geometry::{Zone, ZoneError};
pub use pipeline::{Alert, HazardError, HazardPipeline};
pub use predict::{ConstantVelocity, Decode, ModelPredictor, Predictor};
pub use tracker::{FrameCounts, FrameError, Tracker, TrackerConfig};

/// A point on the ground plane, metres.
pub type Point = nalgebra::Vector2<f32>;

/// Observed steps a prediction needs (3.2 s at 0.4 s).
pub const OBS_STEPS: usize = 8;
/// Predicted steps (4.8 s at 0.4 s).
pub const PRED_STEPS: usize = 12;
/// The trajectory model's time step, s (ETH/UCY annotation rate, 2.5 Hz).
pub const STEP_S: f32 = 0.4;
/// Most zones one pipeline checks.
pub const MAX_ZONES: usize = 8;
