//! The line-driven loop around the pipeline (std): read detection lines, group them into frames
//! by time, run each frame, hand out alerts, and count what had to be skipped. The host CLI and
//! the Jetson daemon both run exactly this.

use super::io::{parse_detection_line, LineError};
use super::pipeline::{Alert, HazardError, HazardPipeline};
use super::predict::Predictor;
use super::Point;
use std::vec::Vec;

/// Counts of input problems, reported at the end of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    /// Frames processed.
    pub frames: u64,
    /// Detections read.
    pub detections: u64,
    /// Lines that could not be parsed (skipped).
    pub malformed_lines: u64,
    /// Detections with NaN/inf coordinates (skipped).
    pub non_finite: u64,
    /// Frames whose time was not after the previous frame (skipped).
    pub out_of_order_frames: u64,
    /// New pedestrians not tracked because the table was full.
    pub table_full: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Trajectory predictions made.
    pub predictions: u64,
}

/// Why a stream stopped.
#[derive(Debug)]
pub enum StreamError {
    /// Reading the input failed.
    Io(std::io::Error),
    /// The trajectory model failed (bad frames are skipped, not errors).
    Pipeline(HazardError),
}

/// Runs `p` over `input` lines (`TIME_S X Y`, or `FRAME ID X Y` when `with_id`); `map` turns
/// the two written coordinates into a ground point (identity, or a homography from pixels).
pub fn run<P: Predictor, const N: usize>(
    p: &mut HazardPipeline<P, N>,
    input: impl std::io::BufRead,
    with_id: bool,
    map: &dyn Fn(f32, f32) -> Point,
    emit: impl FnMut(&Alert),
) -> Result<RunSummary, StreamError> {
    run_frames(p, input, with_id, map, emit, |_, _| {})
}

/// [`run`], also calling `on_frame(time, alerts)` after each frame — what drives an alarm
/// output that is on while frames raise alerts.
pub fn run_frames<P: Predictor, const N: usize>(
    p: &mut HazardPipeline<P, N>,
    input: impl std::io::BufRead,
    with_id: bool,
    map: &dyn Fn(f32, f32) -> Point,
    mut emit: impl FnMut(&Alert),
    mut on_frame: impl FnMut(f64, usize),
) -> Result<RunSummary, StreamError> {
    let mut sum = RunSummary::default();
    let mut alerts = heapless::Vec::new();
    let mut frame_t: Option<f64> = None;
    let mut anon: Vec<Point> = Vec::new();
    let mut ided: Vec<(u32, Point)> = Vec::new();
    let mut flush = |p: &mut HazardPipeline<P, N>,
                     t: f64,
                     anon: &mut Vec<Point>,
                     ided: &mut Vec<(u32, Point)>,
                     sum: &mut RunSummary|
     -> Result<(), StreamError> {
        let r = if with_id {
            p.process_identified(t, ided, &mut alerts, &mut |_, _, _| {})
        } else {
            p.process(t, anon, &mut alerts)
        };
        anon.clear();
        ided.clear();
        match r {
            Ok(()) => {
                sum.frames += 1;
                for a in &alerts {
                    emit(a);
                    sum.alerts += 1;
                }
                on_frame(t, alerts.len());
                Ok(())
            }
            Err(HazardError::Frame(_)) => {
                sum.out_of_order_frames += 1;
                Ok(())
            }
            Err(e) => Err(StreamError::Pipeline(e)),
        }
    };
    let start = p.counts;
    let predictions = p.predictions;
    for line in input.lines() {
        let line = line.map_err(StreamError::Io)?;
        let d = match parse_detection_line(&line, with_id) {
            Ok(d) => d,
            Err(LineError::Empty) => continue,
            Err(LineError::Malformed) => {
                sum.malformed_lines += 1;
                continue;
            }
        };
        if let Some(ft) = frame_t.filter(|&ft| ft != d.t) {
            flush(p, ft, &mut anon, &mut ided, &mut sum)?;
        }
        frame_t = Some(d.t);
        sum.detections += 1;
        let pt = map(d.x, d.y);
        match d.id {
            Some(id) => ided.push((id, pt)),
            None => anon.push(pt),
        }
    }
    if let Some(t) = frame_t {
        flush(p, t, &mut anon, &mut ided, &mut sum)?;
    }
    sum.non_finite = (p.counts.non_finite - start.non_finite) as u64;
    sum.table_full = (p.counts.table_full + p.counts.over_capacity
        - start.table_full
        - start.over_capacity) as u64;
    sum.predictions = p.predictions - predictions;
    Ok(sum)
}
