//! Pedestrian trajectories: the ETH/UCY text format (`frame  pedestrian  x  y`, metres, 0.4 s
//! between annotated frames), 8 → 12 step windows, the model input/target convention, and a
//! seeded walker simulator for the demo scene that ships with the repository.

use crate::datasets::{DatasetError, Rng};
use std::path::{Path, PathBuf};

/// Observed steps (3.2 s).
pub const OBS: usize = 8;
/// Predicted steps (4.8 s).
pub const PRED: usize = 12;
/// Observed + predicted.
pub const WINDOW: usize = OBS + PRED;
/// Seconds between steps.
pub const STEP_S: f64 = 0.4;

/// One annotated position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Annotation {
    /// Frame number as in the file.
    pub frame: i64,
    /// Pedestrian id.
    pub ped: u32,
    /// Position, metres.
    pub xy: [f32; 2],
}

/// Parses ETH/UCY text (whitespace-separated `frame ped x y`; numbers may be written as
/// floats). `path` only names the source in errors.
pub fn parse_annotations(text: &str, path: &Path) -> Result<Vec<Annotation>, DatasetError> {
    let mut out = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| DatasetError::Corrupt {
            path: path.into(),
            what: format!("line {}: {what}", ln + 1),
        };
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 4 {
            return Err(bad(&format!(
                "expected 4 fields (frame pedestrian x y), found {}",
                f.len()
            )));
        }
        let num = |s: &str, name: &str| -> Result<f64, DatasetError> {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(&format!("{name} '{s}' is not a finite number")))
        };
        let frame = num(f[0], "frame")?;
        let ped = num(f[1], "pedestrian id")?;
        if frame.fract() != 0.0 || ped.fract() != 0.0 || ped < 0.0 {
            return Err(bad("frame and pedestrian id must be whole numbers"));
        }
        out.push(Annotation {
            frame: frame as i64,
            ped: ped as u32,
            xy: [num(f[2], "x")? as f32, num(f[3], "y")? as f32],
        });
    }
    Ok(out)
}

/// Reads one ETH/UCY file.
pub fn load_annotations(path: &Path) -> Result<Vec<Annotation>, DatasetError> {
    let text = std::fs::read_to_string(path).map_err(|err| DatasetError::Io {
        path: path.into(),
        err,
    })?;
    parse_annotations(&text, path)
}

/// A split of one leave-one-out scene folder (`train/`, `val/`, `test/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrajSplit {
    /// The other scenes' training files.
    Train,
    /// The other scenes' validation files.
    Val,
    /// The scene's own test file(s).
    Test,
}

/// The `.txt` files of `scene_dir/<split>/`, sorted.
pub fn split_files(scene_dir: &Path, split: TrajSplit) -> Result<Vec<PathBuf>, DatasetError> {
    let dir = scene_dir.join(match split {
        TrajSplit::Train => "train",
        TrajSplit::Val => "val",
        TrajSplit::Test => "test",
    });
    let rd = std::fs::read_dir(&dir).map_err(|err| DatasetError::Io {
        path: dir.clone(),
        err,
    })?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DatasetError::Corrupt {
            path: dir,
            what: "no .txt trajectory files (expected ETH/UCY frame/pedestrian/x/y files)".into(),
        });
    }
    Ok(files)
}

/// The frame-number step between consecutive annotations (the smallest positive difference).
pub fn frame_step(ann: &[Annotation]) -> i64 {
    let mut frames: Vec<i64> = ann.iter().map(|a| a.frame).collect();
    frames.sort_unstable();
    frames.dedup();
    frames
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(1)
        .max(1)
}

/// Each pedestrian's runs of positions on consecutive annotated frames (a gap starts a new run).
pub fn tracks(ann: &[Annotation]) -> Vec<Vec<[f32; 2]>> {
    let step = frame_step(ann);
    let mut by_ped: std::collections::BTreeMap<u32, Vec<(i64, [f32; 2])>> = Default::default();
    for a in ann {
        by_ped.entry(a.ped).or_default().push((a.frame, a.xy));
    }
    let mut out = Vec::new();
    for (_, mut v) in by_ped {
        v.sort_by_key(|p| p.0);
        let mut run: Vec<[f32; 2]> = Vec::new();
        let mut last = None;
        for (f, xy) in v {
            if last.is_some_and(|l| f - l != step) {
                out.push(std::mem::take(&mut run));
            }
            run.push(xy);
            last = Some(f);
        }
        out.push(run);
    }
    out.retain(|r| !r.is_empty());
    out
}

/// Every 20-step window (stride 1) of every track, absolute positions.
pub fn windows(tracks: &[Vec<[f32; 2]>]) -> Vec<[[f32; 2]; WINDOW]> {
    let mut out = Vec::new();
    for t in tracks {
        for w in t.windows(WINDOW) {
            out.push(std::array::from_fn(|i| w[i]));
        }
    }
    out
}

/// Windows of all files of one split of a scene folder.
pub fn load_windows(
    scene_dir: &Path,
    split: TrajSplit,
) -> Result<Vec<[[f32; 2]; WINDOW]>, DatasetError> {
    let mut out = Vec::new();
    for f in split_files(scene_dir, split)? {
        out.extend(windows(&tracks(&load_annotations(&f)?)));
    }
    Ok(out)
}

/// Constant-velocity extrapolation `k` steps past the last observed point.
pub fn constant_velocity(obs: &[[f32; 2]], k: usize) -> [f32; 2] {
    let n = obs.len();
    let (l, p) = (obs[n - 1], obs[n - 2]);
    [
        l[0] + (l[0] - p[0]) * k as f32,
        l[1] + (l[1] - p[1]) * k as f32,
    ]
}

/// The coordinate frame a trajectory model sees. Both are relative to the last observed point;
/// they differ in orientation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Frame {
    /// World axes (metadata `residual-cv`). Training rotates windows at random, so the model
    /// learns to be orientation-free from data.
    #[default]
    World,
    /// Rotated so the last observed step points along +x (metadata `residual-cv-heading`): the
    /// model is orientation-free by construction and spends no capacity on it, which keeps very
    /// small students (MLP-8) from collapsing to constant velocity. Training mirrors windows at
    /// random (left and right turns are alike).
    Heading,
}

/// Below this last-step length (m) the heading is undefined; the frame is then the world's.
/// `sprig_runtime::hazard::predict` uses the same threshold.
pub const MIN_HEADING_STEP_M: f32 = 1e-3;

impl Frame {
    /// The `sprig.trajectory.output` metadata value that tells the runtime how to decode.
    pub fn decode_key(self) -> &'static str {
        match self {
            Frame::World => "residual-cv",
            Frame::Heading => "residual-cv-heading",
        }
    }

    /// Parses a recipe value (`world` or `heading`).
    pub fn parse(s: &str) -> Option<Frame> {
        match s {
            "world" => Some(Frame::World),
            "heading" => Some(Frame::Heading),
            _ => None,
        }
    }

    /// `(cos, sin)` of the rotation from world axes into this frame, given the observed points
    /// (oldest first). The heading rotation is computed from the last step by division, not by
    /// trigonometry, exactly as the runtime does, so host and device inputs are bit-identical.
    pub fn rotation(self, obs: &[[f32; 2]]) -> (f32, f32) {
        let n = obs.len();
        match self {
            Frame::World => (1.0, 0.0),
            Frame::Heading => {
                let (vx, vy) = (obs[n - 1][0] - obs[n - 2][0], obs[n - 1][1] - obs[n - 2][1]);
                let len = (vx * vx + vy * vy).sqrt();
                if len < MIN_HEADING_STEP_M {
                    (1.0, 0.0)
                } else {
                    (vx / len, -vy / len)
                }
            }
        }
    }
}

/// The model convention (matching `sprig_runtime::hazard::ModelPredictor` with the
/// `residual-cv` decode): input = the 8 observed points relative to the last one (16 values);
/// target = the 12 future points minus the constant-velocity extrapolation (24 values).
/// `angle` rotates the window about the last observed point (training augmentation).
pub fn encode(w: &[[f32; 2]; WINDOW], angle: f32) -> ([f32; 2 * OBS], [f32; 2 * PRED]) {
    let (s, c) = angle.sin_cos();
    encode_rotated(w, c, s, false)
}

/// [`encode`] in `frame`, optionally mirrored (y → −y after the rotation; training
/// augmentation of the heading frame).
pub fn encode_in(
    w: &[[f32; 2]; WINDOW],
    frame: Frame,
    mirror: bool,
) -> ([f32; 2 * OBS], [f32; 2 * PRED]) {
    let (c, s) = frame.rotation(&w[..OBS]);
    encode_rotated(w, c, s, mirror)
}

fn encode_rotated(
    w: &[[f32; 2]; WINDOW],
    c: f32,
    s: f32,
    mirror: bool,
) -> ([f32; 2 * OBS], [f32; 2 * PRED]) {
    let o = w[OBS - 1];
    let sign = if mirror { -1.0 } else { 1.0 };
    let rel: [[f32; 2]; WINDOW] = std::array::from_fn(|i| {
        let (dx, dy) = (w[i][0] - o[0], w[i][1] - o[1]);
        [c * dx - s * dy, sign * (s * dx + c * dy)]
    });
    let mut x = [0f32; 2 * OBS];
    for i in 0..OBS {
        x[2 * i] = rel[i][0];
        x[2 * i + 1] = rel[i][1];
    }
    let mut y = [0f32; 2 * PRED];
    for k in 0..PRED {
        let cv = constant_velocity(&rel[..OBS], k + 1);
        y[2 * k] = rel[OBS + k][0] - cv[0];
        y[2 * k + 1] = rel[OBS + k][1] - cv[1];
    }
    (x, y)
}

/// World positions from a model's output `r` (24 residuals in `frame`) for the observed points
/// `obs` (oldest first, world coordinates): constant velocity plus the residual rotated back.
pub fn decode(obs: &[[f32; 2]], r: &[f32], frame: Frame) -> [[f32; 2]; PRED] {
    let (c, s) = frame.rotation(obs);
    std::array::from_fn(|k| {
        let cv = constant_velocity(obs, k + 1);
        let (rx, ry) = (r[2 * k], r[2 * k + 1]);
        [cv[0] + (c * rx + s * ry), cv[1] + (c * ry - s * rx)]
    })
}

/// Average and final displacement error (m) of `pred` (12 points) against the window's future.
pub fn ade_fde(w: &[[f32; 2]; WINDOW], pred: &[[f32; 2]]) -> (f64, f64) {
    let d: Vec<f64> = (0..PRED)
        .map(|k| {
            let (a, b) = (w[OBS + k], pred[k]);
            (((a[0] - b[0]) as f64).powi(2) + ((a[1] - b[1]) as f64).powi(2)).sqrt()
        })
        .collect();
    (d.iter().sum::<f64>() / PRED as f64, d[PRED - 1])
}

/// A seeded crowd of walkers crossing a `w`×`h` m area, for the demo scene (and the demo's
/// training data). Each enters on one edge heading roughly for the opposite one at a preferred
/// speed (0.8–1.6 m/s) and leaves when outside the area. Walkers curve: the turn rate is
/// piecewise constant (changing now and then, often to zero), so the observed curvature says
/// something about the future that constant velocity ignores; they also slow down briefly now
/// and then. Rows are `frame ped x y` with frames 10 apart (0.4 s), as in ETH/UCY.
pub fn simulate_walkers(
    seed: u64,
    pedestrians: usize,
    frames: usize,
    w: f32,
    h: f32,
) -> Vec<Annotation> {
    let mut rng = Rng(seed);
    let mut u = move || rng.unit() as f32;
    let dt = STEP_S as f32;
    let mut out = Vec::new();
    for ped in 0..pedestrians {
        let edge = (u() * 4.0) as usize % 4;
        let t = 0.1 + 0.8 * u();
        let (mut p, base) = match edge {
            0 => ([0.0, t * h], 0.0f32),
            1 => ([w, t * h], std::f32::consts::PI),
            2 => ([t * w, 0.0], std::f32::consts::FRAC_PI_2),
            _ => ([t * w, h], -std::f32::consts::FRAC_PI_2),
        };
        let mut heading = base + 0.8 * (u() - 0.5);
        let speed = 0.8 + 0.8 * u();
        let start = (u() * frames as f32 * 0.8) as usize;
        let mut turn = 0.0f32;
        let mut slow = 0usize;
        for f in start..frames {
            if p[0] < -0.01 || p[1] < -0.01 || p[0] > w + 0.01 || p[1] > h + 0.01 {
                break;
            }
            out.push(Annotation {
                frame: (f * 10) as i64,
                ped: ped as u32,
                xy: p,
            });
            if u() < 0.06 {
                turn = if u() < 0.4 { 0.0 } else { 0.9 * (u() - 0.5) };
            }
            if slow == 0 && u() < 0.015 {
                slow = 4;
            }
            let v = if slow > 0 {
                slow -= 1;
                0.4 * speed
            } else {
                speed
            };
            heading += turn * dt + 0.03 * (u() - 0.5);
            p = [p[0] + v * dt * heading.cos(), p[1] + v * dt * heading.sin()];
        }
    }
    out.sort_by_key(|a| (a.frame, a.ped));
    out
}

/// Writes annotations in the ETH/UCY text format.
pub fn to_text(ann: &[Annotation]) -> String {
    let mut s = String::new();
    for a in ann {
        s.push_str(&format!(
            "{}\t{}\t{:.3}\t{:.3}\n",
            a.frame, a.ped, a.xy[0], a.xy[1]
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_line_and_field() {
        let p = Path::new("scene.txt");
        let ok = parse_annotations("780\t1.0\t8.46\t3.59\n790.0 1 9.57 3.79\n", p).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].frame, 790);
        let e = parse_annotations("780 1 8.4\n", p).unwrap_err().to_string();
        assert!(
            e.contains("scene.txt") && e.contains("line 1") && e.contains("4 fields"),
            "{e}"
        );
        let e = parse_annotations("780 1 nan 3\n", p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x 'nan'"), "{e}");
    }

    #[test]
    fn gaps_split_tracks_and_windows_have_twenty_steps() {
        let mut ann = Vec::new();
        for f in (0..25).chain(30..40) {
            ann.push(Annotation {
                frame: f * 10,
                ped: 3,
                xy: [f as f32, 0.0],
            });
        }
        let t = tracks(&ann);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].len(), 25);
        assert_eq!(windows(&t).len(), 6); // 25 − 20 + 1; the 10-step run has none
    }

    #[test]
    fn straight_walk_has_zero_residual_under_any_rotation() {
        let w: [[f32; 2]; WINDOW] =
            std::array::from_fn(|i| [1.0 + 0.5 * i as f32, 2.0 - 0.3 * i as f32]);
        for angle in [0.0, 1.0, -2.5] {
            let (x, y) = encode(&w, angle);
            assert!(y.iter().all(|v| v.abs() < 1e-4), "{y:?}");
            assert_eq!(&x[14..], &[0.0, 0.0]);
        }
        let pred: Vec<[f32; 2]> = (0..PRED)
            .map(|k| constant_velocity(&w[..OBS], k + 1))
            .collect();
        let (ade, fde) = ade_fde(&w, &pred);
        assert!(ade < 1e-5 && fde < 1e-5);
    }

    fn curving_walk(turn: f32, heading: f32) -> [[f32; 2]; WINDOW] {
        let mut p = [3.0f32, -1.0];
        std::array::from_fn(|i| {
            let a = heading + turn * i as f32;
            let out = p;
            p = [p[0] + 0.5 * a.cos(), p[1] + 0.5 * a.sin()];
            out
        })
    }

    #[test]
    fn heading_frame_points_the_last_step_along_x_and_ignores_world_orientation() {
        let w = curving_walk(0.08, 0.0);
        let (x0, y0) = encode_in(&w, Frame::Heading, false);
        // The step before the last observed point lies on −x at the step length.
        assert!(x0[13].abs() < 1e-5 && (x0[12] + 0.5).abs() < 1e-4, "{x0:?}");
        for heading in [1.0f32, -2.0, 3.0] {
            let (x, y) = encode_in(&curving_walk(0.08, heading), Frame::Heading, false);
            for (a, b) in x.iter().zip(&x0).chain(y.iter().zip(&y0)) {
                assert!((a - b).abs() < 1e-4, "{heading}: {a} vs {b}");
            }
        }
        // Mirroring a left turn gives the right turn.
        let (xm, ym) = encode_in(&w, Frame::Heading, true);
        let (xr, yr) = encode_in(&curving_walk(-0.08, 0.0), Frame::Heading, false);
        for (a, b) in xm.iter().zip(&xr).chain(ym.iter().zip(&yr)) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn decode_inverts_encode_in_both_frames() {
        for frame in [Frame::World, Frame::Heading] {
            let w = curving_walk(-0.1, 2.2);
            let (_, r) = encode_in(&w, frame, false);
            let back = decode(&w[..OBS], &r, frame);
            for k in 0..PRED {
                for d in 0..2 {
                    assert!((back[k][d] - w[OBS + k][d]).abs() < 1e-4, "{frame:?} {k}");
                }
            }
        }
        // A pedestrian standing still keeps the world frame (no undefined heading).
        let still = [[1.0f32, 1.0]; WINDOW];
        assert_eq!(Frame::Heading.rotation(&still[..OBS]), (1.0, 0.0));
    }
}
