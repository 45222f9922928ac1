//! The online pipeline: one call per frame, alerts out, everything in fixed-size tables.

use super::alert::AlertPolicy;
use super::geometry::Zone;
use super::predict::Predictor;
use super::tracker::{FrameCounts, FrameError, Tracker, TrackerConfig};
use super::{Point, MAX_ZONES, PRED_STEPS};
use core::fmt;

/// A warning that a pedestrian is predicted to enter a zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alert {
    /// Track id of the pedestrian.
    pub track: u32,
    /// Index of the zone in the pipeline's zone list.
    pub zone: usize,
    /// Frame time, s.
    pub time_s: f64,
    /// Predicted time until entry, s.
    pub time_to_entry_s: f32,
    /// Where the pedestrian is now, m.
    pub position: Point,
}

/// Sees every prediction: track id, observed points, predicted points (plots, logging).
pub type PredictionHook<'a> = dyn FnMut(u32, &[Point], &[Point; PRED_STEPS]) + 'a;

/// A frame the pipeline could not process.
#[derive(Debug, Clone, PartialEq)]
pub enum HazardError {
    /// The frame's time was bad (the frame was skipped; the pipeline is unchanged).
    Frame(FrameError),
    /// The trajectory model failed.
    Model(crate::Error),
    /// More than [`MAX_ZONES`] zones.
    TooManyZones {
        /// Zones given.
        count: usize,
    },
}

impl From<FrameError> for HazardError {
    fn from(e: FrameError) -> Self {
        HazardError::Frame(e)
    }
}

impl From<crate::Error> for HazardError {
    fn from(e: crate::Error) -> Self {
        HazardError::Model(e)
    }
}

impl fmt::Display for HazardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HazardError::Frame(FrameError::OutOfOrder { t, last }) => {
                write!(
                    f,
                    "frame at {t} s is not after the previous frame at {last} s"
                )
            }
            HazardError::Frame(FrameError::NonFiniteTime) => write!(f, "frame time is not finite"),
            HazardError::Model(e) => write!(f, "trajectory model: {e}"),
            HazardError::TooManyZones { count } => {
                write!(f, "{count} zones given; at most {MAX_ZONES} are supported")
            }
        }
    }
}

/// Tracker + predictor + zones + alert policy, for up to `N` pedestrians at once.
pub struct HazardPipeline<P, const N: usize> {
    tracker: Tracker<N>,
    zones: heapless::Vec<Zone, MAX_ZONES>,
    predictor: P,
    policy: AlertPolicy,
    step_s: f32,
    /// Skipped and dropped input so far.
    pub counts: FrameCounts,
    /// Predictions made so far.
    pub predictions: u64,
}

impl<P: Predictor, const N: usize> HazardPipeline<P, N> {
    /// A pipeline over `zones` (copied in).
    pub fn new(
        predictor: P,
        zones: &[Zone],
        tracker: TrackerConfig,
        policy: AlertPolicy,
    ) -> Result<Self, HazardError> {
        let zones = heapless::Vec::from_slice(zones)
            .map_err(|_| HazardError::TooManyZones { count: zones.len() })?;
        Ok(HazardPipeline {
            step_s: tracker.step_s,
            tracker: Tracker::new(tracker),
            zones,
            predictor,
            policy,
            counts: FrameCounts::default(),
            predictions: 0,
        })
    }

    /// The zones.
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The tracker (live tracks and their histories).
    pub fn tracker(&self) -> &Tracker<N> {
        &self.tracker
    }

    /// One frame of anonymous detections at time `t` (s). `alerts` is cleared and filled with
    /// the alerts raised in this frame.
    pub fn process(
        &mut self,
        t: f64,
        detections: &[Point],
        alerts: &mut heapless::Vec<Alert, N>,
    ) -> Result<(), HazardError> {
        alerts.clear();
        self.counts += self.tracker.update(t, detections)?;
        self.decide(t, alerts, &mut |_, _, _| {})
    }

    /// Like [`process`](Self::process) with detections that carry identities; `on_prediction`
    /// sees every prediction made (track id, observed, predicted), e.g. for plots.
    pub fn process_identified(
        &mut self,
        t: f64,
        detections: &[(u32, Point)],
        alerts: &mut heapless::Vec<Alert, N>,
        on_prediction: &mut PredictionHook<'_>,
    ) -> Result<(), HazardError> {
        alerts.clear();
        self.counts += self.tracker.update_identified(t, detections)?;
        self.decide(t, alerts, on_prediction)
    }

    fn decide(
        &mut self,
        t: f64,
        alerts: &mut heapless::Vec<Alert, N>,
        on_prediction: &mut PredictionHook<'_>,
    ) -> Result<(), HazardError> {
        let mut future = [Point::zeros(); PRED_STEPS];
        let horizon_steps = self.policy.horizon_s / self.step_s;
        for tr in self.tracker.tracks_mut() {
            if !tr.sampled_now() {
                continue;
            }
            let Some(obs) = tr.observed() else { continue };
            let obs = *obs;
            self.predictor.predict(&obs, &mut future)?;
            self.predictions += 1;
            on_prediction(tr.id, &obs, &future);
            let now = obs[obs.len() - 1];
            for (zi, zone) in self.zones.iter().enumerate() {
                let inside = zone.contains(now);
                let entry = zone
                    .path_entry(now, &future)
                    .filter(|&s| s <= horizon_steps)
                    .map(|s| s * self.step_s);
                if self.policy.update(&mut tr.alerts[zi], entry, inside) {
                    // `alerts` holds N entries and a frame raises at most one per track per zone;
                    // with more zones than that a full list drops the rest, never panics.
                    let _ = alerts.push(Alert {
                        track: tr.id,
                        zone: zi,
                        time_s: t,
                        time_to_entry_s: entry.unwrap_or(0.0),
                        position: now,
                    });
                }
            }
        }
        Ok(())
    }
}
