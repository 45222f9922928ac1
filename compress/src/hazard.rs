//! Host side of the hazard-zone application: zone files, detection streams, the
//! `sprig hazard run|eval|plot` logic and its metrics. The per-frame work is the device code
//! itself ([`sprig_runtime::hazard::HazardPipeline`]), so what is measured here is what runs on
//! the boards.

use sprig_models::trajectory::{self as traj, Annotation, OBS, PRED, STEP_S};
use sprig_runtime::hazard::stream::{RunSummary, StreamError};
use sprig_runtime::hazard::{
    Alert, AlertPolicy, ConstantVelocity, Decode, HazardPipeline, ModelPredictor, Point, Predictor,
    TrackerConfig, Zone,
};
use std::collections::BTreeMap;
use std::path::Path;

/// Most pedestrians tracked at once (the device table size).
pub const MAX_TRACKS: usize = 64;

/// Parses a zones TOML file (`[[zone]] name = "..." polygon = [[x, y], ...]`, metres).
/// `path` names the file in errors; every zone error names the zone.
pub fn parse_zones(text: &str, path: &Path) -> crate::Result<Vec<Zone>> {
    sprig_runtime::hazard::zones_toml::parse(text)
        .map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))
}

/// Reads a zones file.
pub fn load_zones(path: &Path) -> crate::Result<Vec<Zone>> {
    let bytes = crate::read_file(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| crate::Error::Invalid(format!("{}: not UTF-8 text", path.display())))?;
    parse_zones(&text, path)
}

/// A trajectory predictor chosen at run time: constant velocity or an ONNX model on
/// sprig-runtime (planned once, kept for the whole run).
pub struct AnyPredictor {
    inner: Box<dyn Predictor>,
    /// `cv` or the model path, for reports.
    pub label: String,
}

impl Predictor for AnyPredictor {
    fn predict(
        &mut self,
        observed: &[Point; OBS],
        future: &mut [Point; PRED],
    ) -> sprig_runtime::Result<()> {
        self.inner.predict(observed, future)
    }
}

impl AnyPredictor {
    /// `cv` for constant velocity, otherwise a model file.
    pub fn load(spec: &str) -> crate::Result<Self> {
        if spec == "cv" {
            return Ok(AnyPredictor {
                inner: Box::new(ConstantVelocity),
                label: "constant velocity".into(),
            });
        }
        Self::from_bytes(crate::read_file(Path::new(spec))?, spec)
    }

    /// A model from its bytes. The bytes, the arena and the interpreter live as long as the process (one model
    /// per run), which is what lets the planned interpreter be stored here.
    pub fn from_bytes(bytes: Vec<u8>, label: &str) -> crate::Result<Self> {
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let model = sprig_runtime::Model::parse(bytes)?;
        let arena: &'static mut [u8] =
            Box::leak(vec![0u8; model.arena_bytes()?].into_boxed_slice());
        let it = Box::leak(Box::new(sprig_runtime::Interpreter::new(&model, arena)?));
        Ok(AnyPredictor {
            inner: Box::new(ModelPredictor::new(it, Decode::of(&model))?),
            label: label.into(),
        })
    }
}

/// How detection lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionFormat {
    /// `TIME_S X Y` per detection, anonymous (the tracker assigns identities).
    Points,
    /// ETH/UCY annotations `FRAME ID X Y` (frames 10 apart = 0.4 s); identities are used as given.
    EthUcy,
}

/// A 3×3 homography from image pixels (u, v) to world metres.
#[derive(Debug, Clone, Copy)]
pub struct Homography(pub [[f64; 3]; 3]);

impl Homography {
    /// Nine numbers, row-major, whitespace- or comma-separated (OpenCV's `H.txt` form).
    pub fn parse(text: &str, path: &Path) -> crate::Result<Self> {
        let v: Vec<f64> = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| crate::Error::Invalid(format!("{}: {e}", path.display())))?;
        if v.len() != 9 || v.iter().any(|x| !x.is_finite()) {
            return Err(crate::Error::Invalid(format!(
                "{}: a homography is 9 finite numbers, found {}",
                path.display(),
                v.len()
            )));
        }
        Ok(Homography(std::array::from_fn(|r| {
            std::array::from_fn(|c| v[3 * r + c])
        })))
    }

    /// Maps a pixel to the ground plane (NaN when the point maps to infinity; the tracker then
    /// skips and counts it).
    pub fn apply(&self, u: f32, v: f32) -> Point {
        let h = &self.0;
        let (u, v) = (u as f64, v as f64);
        let w = h[2][0] * u + h[2][1] * v + h[2][2];
        let x = (h[0][0] * u + h[0][1] * v + h[0][2]) / w;
        let y = (h[1][0] * u + h[1][1] * v + h[1][2]) / w;
        if w.abs() < 1e-12 {
            Point::new(f32::NAN, f32::NAN)
        } else {
            Point::new(x as f32, y as f32)
        }
    }
}

/// One alert as a JSON line (the format every board prints).
pub fn alert_json(a: &Alert, zones: &[Zone]) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = sprig_runtime::hazard::io::write_alert_json(&mut s, a, zones[a.zone].name());
    s
}

/// Runs the online pipeline over a detection stream, calling `emit` with every alert (the
/// same loop the Jetson daemon runs: [`sprig_runtime::hazard::stream`]).
pub fn run_stream(
    predictor: AnyPredictor,
    zones: &[Zone],
    input: impl std::io::BufRead,
    format: DetectionFormat,
    homography: Option<Homography>,
    policy: AlertPolicy,
    emit: impl FnMut(&Alert),
) -> crate::Result<RunSummary> {
    let mut p =
        HazardPipeline::<_, MAX_TRACKS>::new(predictor, zones, TrackerConfig::default(), policy)
            .map_err(|e| crate::Error::Invalid(e.to_string()))?;
    let map = move |x: f32, y: f32| match homography {
        Some(h) => h.apply(x, y),
        None => Point::new(x, y),
    };
    sprig_runtime::hazard::stream::run(&mut p, input, format == DetectionFormat::EthUcy, &map, emit)
        .map_err(|e| match e {
            StreamError::Io(err) => crate::Error::Io {
                path: "detections".into(),
                err,
            },
            StreamError::Pipeline(e) => crate::Error::Invalid(e.to_string()),
        })
}

/// Trajectory and hazard figures of one predictor on one scene.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HazardMetrics {
    /// Average displacement error over all 20-step test windows, m.
    pub ade: f64,
    /// Final displacement error, m.
    pub fde: f64,
    /// True alerts / all alerts.
    pub precision: f64,
    /// Entries warned of in time / eligible entries.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Mean time from the first alert to the true entry, s.
    pub mean_lead_time_s: f64,
    /// False alerts per minute of scene.
    pub false_alerts_per_min: f64,
    /// Alerts raised.
    pub alerts: usize,
    /// Alerts followed by a true entry within the horizon.
    pub true_alerts: usize,
    /// Eligible true entries (predictable at least [`MIN_WARNING_S`] before).
    pub entries: usize,
    /// Of those, entries with an alert before them.
    pub warned_entries: usize,
    /// Scene length, minutes.
    pub minutes: f64,
    /// Test windows behind ADE/FDE.
    pub windows: usize,
}

/// A true entry of pedestrian `ped` into zone `zone` at `t` seconds.
#[derive(Debug, Clone, Copy)]
struct Entry {
    ped: u32,
    zone: usize,
    t: f64,
    /// Earliest time a prediction was possible (8 observed steps).
    first_prediction: f64,
}

/// Ground-truth entries: the true path (as segments) crossing into a zone from outside.
fn true_entries(ann: &[Annotation], zones: &[Zone]) -> Vec<Entry> {
    let step = traj::frame_step(ann);
    let mut by_ped: BTreeMap<u32, Vec<(i64, [f32; 2])>> = BTreeMap::new();
    for a in ann {
        by_ped.entry(a.ped).or_default().push((a.frame, a.xy));
    }
    let mut out = Vec::new();
    for (ped, mut v) in by_ped {
        v.sort_by_key(|p| p.0);
        let mut run_start = 0usize;
        for i in 1..v.len() {
            if v[i].0 - v[i - 1].0 != step {
                run_start = i;
                continue;
            }
            let (a, b) = (
                Point::new(v[i - 1].1[0], v[i - 1].1[1]),
                Point::new(v[i].1[0], v[i].1[1]),
            );
            for (zi, z) in zones.iter().enumerate() {
                if let Some(f) = z.segment_entry(a, b) {
                    let t0 = v[i - 1].0 as f64 / step as f64 * STEP_S;
                    let first = (run_start + OBS - 1).min(v.len() - 1);
                    out.push(Entry {
                        ped,
                        zone: zi,
                        t: t0 + f as f64 * STEP_S,
                        first_prediction: v[first].0 as f64 / step as f64 * STEP_S,
                    });
                }
            }
        }
    }
    out
}

/// Entries the pedestrian makes sooner than this after becoming predictable are left out of
/// recall (alerts on them still count as true for precision).
pub const MIN_WARNING_S: f64 = 2.0;

/// How far after an alert a true entry may come (and before an entry its alert), in seconds:
/// the 12 predicted steps of 0.4 s.
pub const EVAL_HORIZON_S: f64 = PRED as f64 * STEP_S;

/// Runs the device pipeline over annotated files (identities as annotated) and scores it:
/// ADE/FDE over the standard windows, and alerts against the true entries. An alert is true
/// when the same pedestrian really enters the same zone within the horizon after it; an entry is
/// warned when an alert for it came within the horizon before it.
pub fn evaluate(
    predictor: &mut AnyPredictor,
    files: &[std::path::PathBuf],
    zones: &[Zone],
    policy: AlertPolicy,
    min_warning_s: f64,
) -> crate::Result<HazardMetrics> {
    let scenes = files
        .iter()
        .map(|f| traj::load_annotations(f))
        .collect::<Result<Vec<_>, _>>()?;
    evaluate_annotations(predictor, &scenes, zones, policy, min_warning_s)
}

/// [`evaluate`] on annotations already in memory (one list per recording).
pub fn evaluate_annotations(
    predictor: &mut AnyPredictor,
    scenes: &[Vec<Annotation>],
    zones: &[Zone],
    policy: AlertPolicy,
    min_warning_s: f64,
) -> crate::Result<HazardMetrics> {
    // The ground truth's horizon is the prediction horizon (4.8 s), whatever the policy's: a
    // policy that only alerts on nearer entries is judged against the same true entries.
    let horizon = EVAL_HORIZON_S;
    let mut m = HazardMetrics::default();
    let (mut ade_sum, mut fde_sum, mut lead_sum) = (0.0, 0.0, 0.0);
    for ann in scenes {
        let ann = ann.as_slice();
        // ADE/FDE on every 20-step window, through the same predictor.
        let mut future = [Point::zeros(); PRED];
        for w in traj::windows(&traj::tracks(ann)) {
            let obs: [Point; OBS] = std::array::from_fn(|i| Point::new(w[i][0], w[i][1]));
            predictor.predict(&obs, &mut future)?;
            let (a, f) = traj::ade_fde(&w, &future.map(|p| [p.x, p.y]));
            ade_sum += a;
            fde_sum += f;
            m.windows += 1;
        }
        // Online pipeline over the file's frames.
        let step = traj::frame_step(ann);
        let mut frames: BTreeMap<i64, Vec<(u32, Point)>> = BTreeMap::new();
        for a in ann {
            frames
                .entry(a.frame)
                .or_default()
                .push((a.ped, Point::new(a.xy[0], a.xy[1])));
        }
        let span = match (frames.keys().next(), frames.keys().next_back()) {
            (Some(a), Some(b)) => (b - a + step) as f64 / step as f64 * STEP_S,
            _ => 0.0,
        };
        m.minutes += span / 60.0;
        let mut p = HazardPipeline::<_, MAX_TRACKS>::new(
            &mut *predictor,
            zones,
            TrackerConfig::default(),
            policy,
        )
        .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        let mut alerts = heapless::Vec::new();
        let mut raised: Vec<Alert> = Vec::new();
        for (frame, dets) in &frames {
            let t = *frame as f64 / step as f64 * STEP_S;
            p.process_identified(t, dets, &mut alerts, &mut |_, _, _| {})
                .map_err(|e| crate::Error::Invalid(e.to_string()))?;
            raised.extend(alerts.iter().copied());
        }
        let entries = true_entries(ann, zones);
        for a in &raised {
            let hit = entries.iter().any(|e| {
                e.ped == a.track && e.zone == a.zone && e.t > a.time_s && e.t <= a.time_s + horizon
            });
            m.alerts += 1;
            m.true_alerts += hit as usize;
        }
        for e in &entries {
            // Eligible only when the pedestrian was predictable (8 observed steps) at least
            // `min_warning_s` before the entry: no system can warn earlier than that.
            if e.first_prediction > e.t - min_warning_s {
                continue;
            }
            m.entries += 1;
            let first_alert = raised
                .iter()
                .filter(|a| {
                    a.track == e.ped
                        && a.zone == e.zone
                        && a.time_s < e.t
                        && a.time_s >= e.t - horizon
                })
                .map(|a| a.time_s)
                .fold(f64::INFINITY, f64::min);
            if first_alert.is_finite() {
                m.warned_entries += 1;
                lead_sum += e.t - first_alert;
            }
        }
    }
    let n = m.windows.max(1) as f64;
    m.ade = ade_sum / n;
    m.fde = fde_sum / n;
    m.precision = ratio(m.true_alerts, m.alerts);
    m.recall = ratio(m.warned_entries, m.entries);
    m.f1 = if m.precision + m.recall > 0.0 {
        2.0 * m.precision * m.recall / (m.precision + m.recall)
    } else {
        0.0
    };
    m.mean_lead_time_s = lead_sum / m.warned_entries.max(1) as f64;
    m.false_alerts_per_min = (m.alerts - m.true_alerts) as f64 / m.minutes.max(1e-9);
    Ok(m)
}

/// Confirmation counts `sprig hazard eval --sweep` tries.
pub const SWEEP_CONFIRM: [u8; 4] = [1, 2, 3, 4];
/// Alert horizons (s) `sprig hazard eval --sweep` tries, from the model's full 4.8 s down.
pub const SWEEP_HORIZON_S: [f32; 7] = [4.8, 4.4, 4.0, 3.6, 3.2, 2.8, 2.4];

/// One policy of a sweep and what it scored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SweepPoint {
    /// Consecutive predictions of entry before an alert.
    pub confirm: u8,
    /// Quiet predictions before a zone re-arms.
    pub rearm: u8,
    /// Alerting horizon, s.
    pub horizon_s: f32,
    /// The figures under that policy (the ground truth is the same for every policy).
    #[serde(flatten)]
    pub metrics: HazardMetrics,
}

impl SweepPoint {
    /// Whether the alert targets hold: recall ≥ 0.95 at precision ≥ 0.90 with a mean
    /// lead time of at least 2 s.
    pub fn meets_targets(&self) -> bool {
        let m = &self.metrics;
        m.recall >= 0.95 && m.precision >= 0.90 && m.mean_lead_time_s >= 2.0
    }
}

/// Evaluates every policy of the [`SWEEP_CONFIRM`] × [`SWEEP_HORIZON_S`] grid (re-arm fixed)
/// on the same files: the operating points a user picks from for a camera. Why a sweep and not
/// one default: fewer false alerts always cost recall or lead time, and how much depends on the
/// scene (a dense plaza against a quiet sidewalk).
pub fn sweep_policies(
    predictor: &mut AnyPredictor,
    files: &[std::path::PathBuf],
    zones: &[Zone],
    rearm: u8,
    min_warning_s: f64,
) -> crate::Result<Vec<SweepPoint>> {
    let scenes = files
        .iter()
        .map(|f| traj::load_annotations(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for confirm in SWEEP_CONFIRM {
        for horizon_s in SWEEP_HORIZON_S {
            let policy = AlertPolicy {
                confirm,
                rearm,
                horizon_s,
            };
            let metrics = evaluate_annotations(predictor, &scenes, zones, policy, min_warning_s)?;
            out.push(SweepPoint {
                confirm,
                rearm,
                horizon_s,
                metrics,
            });
        }
    }
    Ok(out)
}

/// A PNG of a sweep: precision against recall, one line per confirmation count through the
/// horizons, so the trade-off is seen at a glance.
pub fn plot_sweep(out: &Path, title: &str, points: &[SweepPoint]) -> crate::Result<()> {
    let series: Vec<crate::plot::Series> = SWEEP_CONFIRM
        .iter()
        .map(|&c| {
            let pts = points
                .iter()
                .filter(|p| p.confirm == c)
                .map(|p| (p.metrics.recall, p.metrics.precision))
                .collect();
            (format!("confirm {c} (horizon 4.8 → 2.4 s)"), pts)
        })
        .collect();
    crate::plot::chart_png(out, title, "recall", "precision", &series, false)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// What `sprig hazard plot` draws: the scene's true paths, the zones, and for every alert the
/// observed and predicted path that raised it.
#[derive(Debug, Default)]
pub struct SceneTrace {
    /// True paths per pedestrian.
    pub paths: Vec<Vec<[f32; 2]>>,
    /// (alert, observed path, predicted path) for each alert.
    pub alerts: Vec<(Alert, Vec<Point>, Vec<Point>)>,
}

/// Runs the pipeline over one recording's annotations, keeping what [`plot_scene`] draws. `frames`
/// limits the run to a frame range (file frame numbers).
pub fn trace_scene(
    predictor: &mut AnyPredictor,
    mut ann: Vec<Annotation>,
    zones: &[Zone],
    frames: Option<(i64, i64)>,
    policy: AlertPolicy,
) -> crate::Result<SceneTrace> {
    if let Some((a, b)) = frames {
        ann.retain(|x| x.frame >= a && x.frame <= b);
    }
    let step = traj::frame_step(&ann);
    let mut by_frame: BTreeMap<i64, Vec<(u32, Point)>> = BTreeMap::new();
    for a in &ann {
        by_frame
            .entry(a.frame)
            .or_default()
            .push((a.ped, Point::new(a.xy[0], a.xy[1])));
    }
    let mut p = HazardPipeline::<_, MAX_TRACKS>::new(
        &mut *predictor,
        zones,
        TrackerConfig::default(),
        policy,
    )
    .map_err(|e| crate::Error::Invalid(e.to_string()))?;
    let mut out = SceneTrace {
        paths: traj::tracks(&ann),
        ..Default::default()
    };
    let mut alerts = heapless::Vec::new();
    for (frame, dets) in &by_frame {
        let t = *frame as f64 / step as f64 * STEP_S;
        let mut last: BTreeMap<u32, (Vec<Point>, Vec<Point>)> = BTreeMap::new();
        p.process_identified(t, dets, &mut alerts, &mut |id, obs, fut| {
            last.insert(id, (obs.to_vec(), fut.to_vec()));
        })
        .map_err(|e| crate::Error::Invalid(e.to_string()))?;
        for a in &alerts {
            if let Some((o, f)) = last.get(&a.track) {
                out.alerts.push((*a, o.clone(), f.clone()));
            }
        }
    }
    Ok(out)
}

/// Writes a PNG of a scene: true paths (grey), zones (red), and per alert the observed (blue)
/// and predicted (orange) path with the predicted time to entry.
pub fn plot_scene(
    out: &Path,
    title: &str,
    trace: &SceneTrace,
    zones: &[Zone],
) -> crate::Result<()> {
    use plotters::prelude::*;
    crate::plot::register_font();
    let plot_err =
        |e: String| crate::Error::Invalid(format!("{}: plotting failed: {e}", out.display()));
    let (mut lo, mut hi) = ([f32::MAX; 2], [f32::MIN; 2]);
    let pts = trace.paths.iter().flatten().copied().chain(
        zones
            .iter()
            .flat_map(|z| z.vertices().iter().map(|v| [v.x, v.y])),
    );
    for p in pts {
        for k in 0..2 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    if lo[0] > hi[0] {
        return Err(crate::Error::Invalid(
            "nothing to plot: the scene is empty".into(),
        ));
    }
    let pad = 0.5;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|err| crate::Error::Io {
            path: dir.into(),
            err,
        })?;
    }
    let root = BitMapBackend::new(out, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(44)
        .build_cartesian_2d(lo[0] - pad..hi[0] + pad, lo[1] - pad..hi[1] + pad)
        .map_err(|e| plot_err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("x (m)")
        .y_desc("y (m)")
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| plot_err(e.to_string()))?;
    let grey = RGBColor(190, 190, 190);
    for path in &trace.paths {
        chart
            .draw_series(LineSeries::new(path.iter().map(|p| (p[0], p[1])), grey))
            .map_err(|e| plot_err(e.to_string()))?;
    }
    for z in zones {
        let poly: Vec<(f32, f32)> = z.vertices().iter().map(|v| (v.x, v.y)).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(poly.clone(), RED.mix(0.18))))
            .map_err(|e| plot_err(e.to_string()))?;
        let mut closed = poly.clone();
        closed.push(poly[0]);
        chart
            .draw_series(LineSeries::new(closed, RED.stroke_width(2)))
            .map_err(|e| plot_err(e.to_string()))?
            .label(z.name().to_string())
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED.stroke_width(2)));
    }
    let orange = RGBColor(240, 140, 0);
    for (i, (a, obs, fut)) in trace.alerts.iter().enumerate() {
        let o = chart
            .draw_series(LineSeries::new(
                obs.iter().map(|p| (p.x, p.y)),
                BLUE.stroke_width(2),
            ))
            .map_err(|e| plot_err(e.to_string()))?;
        if i == 0 {
            o.label("observed (8 steps)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE.stroke_width(2)));
        }
        let start = obs.last().copied().unwrap_or(a.position);
        let f = chart
            .draw_series(LineSeries::new(
                std::iter::once(start)
                    .chain(fut.iter().copied())
                    .map(|p| (p.x, p.y)),
                orange.stroke_width(2),
            ))
            .map_err(|e| plot_err(e.to_string()))?;
        if i == 0 {
            f.label("predicted (12 steps)").legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], orange.stroke_width(2))
            });
        }
        chart
            .draw_series(std::iter::once(Circle::new(
                (a.position.x, a.position.y),
                5,
                RED.filled(),
            )))
            .map_err(|e| plot_err(e.to_string()))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{} {:.1}s", a.track, a.time_to_entry_s),
                (a.position.x, a.position.y),
                ("sans-serif", 13),
            )))
            .map_err(|e| plot_err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(e.to_string()))?;
    root.present().map_err(|e| plot_err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZONE: &str = "[[zone]]\nname = \"crossing\"\npolygon = [[2.0, 3.0], [5.0, 3.0], [5.0, 4.5], [2.0, 4.5]]\n";

    fn zones_err(text: &str) -> String {
        parse_zones(text, Path::new("z.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn zone_file_errors_name_the_zone() {
        assert_eq!(parse_zones(ZONE, Path::new("z.toml")).unwrap().len(), 1);
        let e = zones_err(&format!("{ZONE}{ZONE}"));
        assert!(
            e.contains("z.toml") && e.contains("'crossing' is defined twice"),
            "{e}"
        );
        let e = zones_err("[[zone]]\nname = \"kerb\"\npolygon = [[0.0, 0.0], [1.0, 0.0]]\n");
        assert!(e.contains("zone 'kerb'") && e.contains("2 vertices"), "{e}");
        let e = zones_err(
            "[[zone]]\nname = \"bow\"\npolygon = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]\n",
        );
        assert!(e.contains("zone 'bow'") && e.contains("not simple"), "{e}");
        let e = zones_err(
            "[[zone]]\nname = \"x\"\npolygon = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]\ncolour = 3\n",
        );
        assert!(e.contains("colour"), "{e}");
        assert!(zones_err("").contains("zone"), "empty file must be refused");
    }

    #[test]
    fn homography_maps_and_validates() {
        let h = Homography::parse("2 0 1\n0 2 0\n0 0 1", Path::new("H.txt")).unwrap();
        assert_eq!(h.apply(1.0, 2.0), Point::new(3.0, 4.0));
        let e = Homography::parse("1 2 3", Path::new("H.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("H.txt") && e.contains("9 finite numbers"), "{e}");
    }

    #[test]
    fn stream_skips_and_counts_bad_input() {
        let zones = parse_zones(ZONE, Path::new("z.toml")).unwrap();
        // One walker heading for the crossing at 1 m/s, plus garbage.
        let mut text = String::new();
        for k in 0..20 {
            let t = k as f64 * 0.4;
            text.push_str(&format!("{t:.1} {:.2} 3.7\n", -8.0 + 0.4 * k as f64));
            if k == 5 {
                text.push_str("not a line\n1.0 2.0\n");
                text.push_str(&format!("{t:.1} NaN 3.0\n"));
            }
        }
        text.push_str("0.4 1.0 1.0\n"); // a frame from the past
        let mut alerts = Vec::new();
        let sum = run_stream(
            AnyPredictor::load("cv").unwrap(),
            &zones,
            std::io::Cursor::new(text),
            DetectionFormat::Points,
            None,
            AlertPolicy::default(),
            |a| alerts.push(*a),
        )
        .unwrap();
        assert_eq!(sum.malformed_lines, 2);
        assert_eq!(sum.non_finite, 1);
        assert_eq!(sum.out_of_order_frames, 1);
        assert_eq!(sum.frames, 20);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(alerts[0].time_to_entry_s > 0.0 && alerts[0].time_to_entry_s <= 4.8);
    }

    #[test]
    fn straight_walkers_score_perfectly_with_constant_velocity() {
        let zones = parse_zones(ZONE, Path::new("z.toml")).unwrap();
        let mut ann = Vec::new();
        // Walker 1 crosses the zone; walker 2 passes 3 m north of it.
        for k in 0..40i64 {
            let x = -10.0 + 0.5 * k as f32;
            ann.push(Annotation {
                frame: k * 10,
                ped: 1,
                xy: [x, 3.7],
            });
            ann.push(Annotation {
                frame: k * 10,
                ped: 2,
                xy: [x, 7.5],
            });
        }
        let m = evaluate_annotations(
            &mut AnyPredictor::load("cv").unwrap(),
            &[ann],
            &zones,
            AlertPolicy::default(),
            MIN_WARNING_S,
        )
        .unwrap();
        assert_eq!((m.entries, m.warned_entries), (1, 1));
        assert_eq!((m.alerts, m.true_alerts), (1, 1));
        assert!(m.ade < 1e-5 && m.fde < 1e-5);
        // Warned as soon as the entry is inside the 4.8 s horizon (confirmed one step later).
        assert!(
            m.mean_lead_time_s > 4.0 && m.mean_lead_time_s <= 4.8,
            "{}",
            m.mean_lead_time_s
        );
        assert_eq!(m.false_alerts_per_min, 0.0);
    }
}
