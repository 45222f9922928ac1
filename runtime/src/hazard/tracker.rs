//! Multi-object tracking of pedestrians on the ground plane: one constant-velocity Kalman filter
//! per track, greedy nearest-neighbour association inside a distance gate, birth from unmatched
//! detections and death after a few missed frames. Fixed capacity (`N` tracks), no heap.
//!
//! Each track keeps the last [`OBS_STEPS`] positions sampled on the trajectory model's time step,
//! which is what the predictor consumes; camera frames may come faster than that step.

use super::alert::ZoneAlertState;
use super::geometry::MAX_VERTICES;
use super::{Point, MAX_ZONES, OBS_STEPS};
use nalgebra::{Matrix2, Matrix2x4, Matrix4, Vector4};

/// Most detections one frame may carry; extra ones are dropped and counted.
pub const MAX_DETECTIONS: usize = 256;

// Keeps the zone table and the alert state table the same size.
const _: () = assert!(MAX_ZONES <= MAX_VERTICES);

/// Tracker tuning.
#[derive(Debug, Clone, Copy)]
pub struct TrackerConfig {
    /// Standard deviation of the unmodelled acceleration, m/s².
    pub accel_noise: f32,
    /// Standard deviation of a detection's position error, m.
    pub measurement_noise: f32,
    /// Largest distance between a track's predicted position and a detection it may take, m.
    pub gate_m: f32,
    /// Consecutive missed frames after which a track is dropped.
    pub max_misses: u8,
    /// Time step of the stored history (the trajectory model's step), s.
    pub step_s: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            accel_noise: 1.0,
            measurement_noise: 0.1,
            gate_m: 1.5,
            max_misses: 3,
            step_s: super::STEP_S,
        }
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FrameError {
    /// The frame's time is not after the previous frame's.
    OutOfOrder {
        /// This frame's time, s.
        t: f64,
        /// The previous frame's time, s.
        last: f64,
    },
    /// The frame's time is NaN or infinite.
    NonFiniteTime,
}

/// What happened to one frame's input (for the end-of-run summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounts {
    /// Detections with NaN or infinite coordinates, skipped.
    pub non_finite: u32,
    /// Detections beyond [`MAX_DETECTIONS`], skipped.
    pub over_capacity: u32,
    /// New pedestrians not tracked because the track table was full.
    pub table_full: u32,
}

impl core::ops::AddAssign for FrameCounts {
    fn add_assign(&mut self, o: Self) {
        self.non_finite += o.non_finite;
        self.over_capacity += o.over_capacity;
        self.table_full += o.table_full;
    }
}

/// One tracked pedestrian.
#[derive(Debug, Clone)]
pub struct Track {
    /// Stable identity (the detection's own id in identified mode).
    pub id: u32,
    state: Vector4<f32>,
    cov: Matrix4<f32>,
    misses: u8,
    history: [Point; OBS_STEPS],
    history_len: usize,
    next_sample: f64,
    sampled: bool,
    pub(crate) alerts: [ZoneAlertState; MAX_ZONES],
}

impl Track {
    fn new(id: u32, p: Point, t: f64, cfg: &TrackerConfig) -> Self {
        let r2 = cfg.measurement_noise * cfg.measurement_noise;
        let mut cov = Matrix4::identity() * r2;
        // Unknown velocity: walking speeds are within a few m/s.
        cov[(2, 2)] = 4.0;
        cov[(3, 3)] = 4.0;
        let mut tr = Track {
            id,
            state: Vector4::new(p.x, p.y, 0.0, 0.0),
            cov,
            misses: 0,
            history: [Point::zeros(); OBS_STEPS],
            history_len: 0,
            next_sample: t,
            sampled: false,
            alerts: [ZoneAlertState::default(); MAX_ZONES],
        };
        tr.sample(t, cfg.step_s);
        tr
    }

    /// Current position estimate, m.
    pub fn position(&self) -> Point {
        Point::new(self.state.x, self.state.y)
    }

    /// Current velocity estimate, m/s.
    pub fn velocity(&self) -> Point {
        Point::new(self.state.z, self.state.w)
    }

    /// The last [`OBS_STEPS`] positions on the model's time step, oldest first, once that many
    /// have been collected.
    pub fn observed(&self) -> Option<&[Point; OBS_STEPS]> {
        (self.history_len == OBS_STEPS).then_some(&self.history)
    }

    /// Whether a history sample was taken in the latest frame (a new prediction is due).
    pub fn sampled_now(&self) -> bool {
        self.sampled
    }

    fn sample(&mut self, t: f64, step: f32) {
        // Half a camera frame of slack so 0.4 s steps sampled at 0.39999 s still count.
        let tol = 0.25 * step as f64;
        self.sampled = t + tol >= self.next_sample;
        if !self.sampled {
            return;
        }
        if self.history_len == OBS_STEPS {
            self.history.copy_within(1.., 0);
        } else {
            self.history_len += 1;
        }
        self.history[self.history_len - 1] = self.position();
        self.next_sample = if t - self.next_sample > step as f64 {
            t + step as f64 // after a long gap, restart the grid here
        } else {
            self.next_sample + step as f64
        };
    }

    fn predict(&mut self, dt: f32, q: f32) {
        let mut f = Matrix4::identity();
        f[(0, 2)] = dt;
        f[(1, 3)] = dt;
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt, dt * dt * dt * dt);
        let q2 = q * q;
        let mut qm = Matrix4::zeros();
        for i in 0..2 {
            qm[(i, i)] = dt4 / 4.0 * q2;
            qm[(i, i + 2)] = dt3 / 2.0 * q2;
            qm[(i + 2, i)] = dt3 / 2.0 * q2;
            qm[(i + 2, i + 2)] = dt2 * q2;
        }
        self.state = f * self.state;
        self.cov = f * self.cov * f.transpose() + qm;
    }

    fn correct(&mut self, z: Point, r: f32) {
        let h = Matrix2x4::new(1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0);
        let s = h * self.cov * h.transpose() + Matrix2::identity() * (r * r);
        let Some(s_inv) = s.try_inverse() else {
            // Degenerate covariance: trust the measurement.
            self.state.x = z.x;
            self.state.y = z.y;
            return;
        };
        let k = self.cov * h.transpose() * s_inv;
        let innov = z - Point::new(self.state.x, self.state.y);
        self.state += k * innov;
        self.cov = (Matrix4::identity() - k * h) * self.cov;
    }
}

/// A fixed-capacity multi-object tracker.
#[derive(Debug, Clone)]
pub struct Tracker<const N: usize> {
    tracks: heapless::Vec<Track, N>,
    cfg: TrackerConfig,
    next_id: u32,
    last_t: Option<f64>,
}

impl<const N: usize> Tracker<N> {
    /// An empty tracker.
    pub fn new(cfg: TrackerConfig) -> Self {
        Tracker {
            tracks: heapless::Vec::new(),
            cfg,
            next_id: 0,
            last_t: None,
        }
    }

    /// The live tracks.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    pub(crate) fn tracks_mut(&mut self) -> &mut [Track] {
        &mut self.tracks
    }

    fn advance_clock(&mut self, t: f64) -> Result<f32, FrameError> {
        if !t.is_finite() {
            return Err(FrameError::NonFiniteTime);
        }
        let dt = match self.last_t {
            Some(last) if t <= last => return Err(FrameError::OutOfOrder { t, last }),
            Some(last) => (t - last) as f32,
            None => 0.0,
        };
        self.last_t = Some(t);
        Ok(dt)
    }

    /// One frame of anonymous detections (world points, m) at time `t` (s): predict, associate,
    /// correct, create and drop tracks, then sample histories.
    pub fn update(&mut self, t: f64, detections: &[Point]) -> Result<FrameCounts, FrameError> {
        let dt = self.advance_clock(t)?;
        let mut counts = FrameCounts::default();
        for tr in self.tracks.iter_mut() {
            tr.predict(dt, self.cfg.accel_noise);
        }
        let n_det = detections.len().min(MAX_DETECTIONS);
        counts.over_capacity = (detections.len() - n_det) as u32;
        let mut det_used = [false; MAX_DETECTIONS];
        for (used, d) in det_used.iter_mut().zip(detections) {
            if !(d.x.is_finite() && d.y.is_finite()) {
                *used = true;
                counts.non_finite += 1;
            }
        }
        let mut track_used = [false; N];
        let gate2 = self.cfg.gate_m * self.cfg.gate_m;
        let mut positions = [Point::zeros(); N];
        for (p, tr) in positions.iter_mut().zip(self.tracks.iter()) {
            *p = tr.position();
        }
        let n_tracks = self.tracks.len();
        associate(
            &positions[..n_tracks],
            &detections[..n_det],
            gate2,
            &mut track_used[..n_tracks],
            &mut det_used[..n_det],
            |ti, di| {
                let tr = &mut self.tracks[ti];
                tr.correct(detections[di], self.cfg.measurement_noise);
                tr.misses = 0;
            },
        );
        let max_misses = self.cfg.max_misses;
        let mut i = 0;
        let mut kept = [false; N];
        kept[..self.tracks.len()].copy_from_slice(&track_used[..self.tracks.len()]);
        while i < self.tracks.len() {
            if !kept[i] {
                self.tracks[i].misses = self.tracks[i].misses.saturating_add(1);
                if self.tracks[i].misses > max_misses {
                    self.tracks.swap_remove(i);
                    kept.swap(i, self.tracks.len());
                    continue;
                }
            }
            i += 1;
        }
        // Coasting tracks sample their predicted position, so a brief occlusion does not break
        // the history the predictor needs.
        let step = self.cfg.step_s;
        for tr in self.tracks.iter_mut() {
            tr.sample(t, step);
        }
        // Tracks born now sample themselves at birth.
        for (di, d) in detections[..n_det].iter().enumerate() {
            if det_used[di] {
                continue;
            }
            let tr = Track::new(self.next_id, *d, t, &self.cfg);
            if self.tracks.push(tr).is_err() {
                counts.table_full += 1;
            } else {
                self.next_id = self.next_id.wrapping_add(1);
            }
        }
        Ok(counts)
    }

    /// One frame of detections that already carry identities (ground-truth annotations, or an
    /// upstream tracker): positions are taken as they are, tracks absent from the frame end.
    pub fn update_identified(
        &mut self,
        t: f64,
        detections: &[(u32, Point)],
    ) -> Result<FrameCounts, FrameError> {
        let dt = self.advance_clock(t)?;
        let mut counts = FrameCounts::default();
        let mut seen = [false; N];
        for &(id, p) in detections {
            if !(p.x.is_finite() && p.y.is_finite()) {
                counts.non_finite += 1;
                continue;
            }
            if let Some(i) = self.tracks.iter().position(|tr| tr.id == id) {
                let tr = &mut self.tracks[i];
                let v = if dt > 0.0 {
                    (p - tr.position()) / dt
                } else {
                    tr.velocity()
                };
                tr.state = Vector4::new(p.x, p.y, v.x, v.y);
                tr.sample(t, self.cfg.step_s);
                seen[i] = true;
            } else {
                let tr = Track::new(id, p, t, &self.cfg);
                let i = self.tracks.len();
                if self.tracks.push(tr).is_err() {
                    counts.table_full += 1;
                } else {
                    seen[i] = true;
                }
            }
        }
        let mut i = 0;
        while i < self.tracks.len() {
            if !seen[i] {
                self.tracks.swap_remove(i);
                seen.swap(i, self.tracks.len());
                continue;
            }
            i += 1;
        }
        Ok(counts)
    }
}

/// Gated pairs [`associate`] sorts at once; a frame with more takes the direct search.
const MAX_SORTED_PAIRS: usize = 256;

// Track and detection indices fit the 16 bits each a sort key gives them.
const _: () = assert!(MAX_DETECTIONS <= 1 << 16);

/// Greedy global nearest neighbour: of the free tracks and detections, the closest pair within
/// the gate (squared distance ≤ `gate2`) is matched, then the next closest, until no free pair
/// is in the gate; `matched(track, detection)` hears each match in that order. Ties go to the
/// lower track index, then the lower detection index. Matching a track does not move the others,
/// so this is the same as going once through the gated pairs sorted by (distance, track,
/// detection) and taking every pair whose track and detection are both still free: sorting
/// is O(P log P) for P gated pairs, where searching for each match again is O(T² · D). Frames
/// with more than [`MAX_SORTED_PAIRS`] gated pairs take that direct search.
fn associate(
    tracks: &[Point],
    detections: &[Point],
    gate2: f32,
    track_used: &mut [bool],
    det_used: &mut [bool],
    mut matched: impl FnMut(usize, usize),
) {
    // A non-negative f32's bits order like its value, so (distance, track, detection) is one
    // u64; a distance in the gate is finite.
    let mut keys: heapless::Vec<u64, MAX_SORTED_PAIRS> = heapless::Vec::new();
    // Track indices fit 16 bits of the key too (N is a generic).
    let mut overflow = tracks.len() > 1 << 16;
    'pairs: for (ti, p) in tracks.iter().enumerate() {
        for (di, d) in detections.iter().enumerate() {
            let d2 = (d - p).norm_squared();
            if !overflow && d2 <= gate2 && !det_used[di] {
                let key = (u64::from(d2.to_bits()) << 32) | ((ti as u64) << 16) | di as u64;
                if keys.push(key).is_err() {
                    overflow = true;
                }
            }
            if overflow {
                break 'pairs;
            }
        }
    }
    if overflow {
        return associate_direct(tracks, detections, gate2, track_used, det_used, matched);
    }
    heapsort(&mut keys);
    for key in keys {
        let (ti, di) = ((key >> 16) as u16 as usize, key as u16 as usize);
        if !track_used[ti] && !det_used[di] {
            track_used[ti] = true;
            det_used[di] = true;
            matched(ti, di);
        }
    }
}

/// Sorts `v` ascending in place. A heapsort: O(n log n) in a few hundred bytes of code, where
/// core's `sort_unstable` adds several KB of flash to a firmware at opt-level "z".
fn heapsort(v: &mut [u64]) {
    fn sift_down(v: &mut [u64], mut root: usize) {
        loop {
            let mut child = 2 * root + 1;
            if child >= v.len() {
                return;
            }
            if child + 1 < v.len() && v[child] < v[child + 1] {
                child += 1;
            }
            if v[root] >= v[child] {
                return;
            }
            v.swap(root, child);
            root = child;
        }
    }
    for root in (0..v.len() / 2).rev() {
        sift_down(v, root);
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift_down(&mut v[..end], 0);
    }
}

/// [`associate`] by searching all free pairs for the closest one before each match.
fn associate_direct(
    tracks: &[Point],
    detections: &[Point],
    gate2: f32,
    track_used: &mut [bool],
    det_used: &mut [bool],
    mut matched: impl FnMut(usize, usize),
) {
    loop {
        let mut best: Option<(f32, usize, usize)> = None;
        for (ti, p) in tracks.iter().enumerate() {
            if track_used[ti] {
                continue;
            }
            for (di, d) in detections.iter().enumerate() {
                if det_used[di] {
                    continue;
                }
                let d2 = (d - p).norm_squared();
                if d2 <= gate2 && best.is_none_or(|b| d2 < b.0) {
                    best = Some((d2, ti, di));
                }
            }
        }
        let Some((_, ti, di)) = best else { break };
        track_used[ti] = true;
        det_used[di] = true;
        matched(ti, di);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heapsort_sorts() {
        let mut seed = 3u64;
        for n in [0usize, 1, 2, 3, 7, 64, 255, 256] {
            let mut v: std::vec::Vec<u64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed % 50
                })
                .collect();
            let mut want = v.clone();
            want.sort_unstable();
            heapsort(&mut v);
            assert_eq!(v, want, "n {n}");
        }
    }

    /// [`associate`] or [`associate_direct`] with the callback as a trait object.
    type Associate =
        fn(&[Point], &[Point], f32, &mut [bool], &mut [bool], &mut dyn FnMut(usize, usize));

    /// The sorted association makes the same matches in the same order as the direct search:
    /// random scenes on a coarse grid (so equal distances are common), crowds past
    /// [`MAX_SORTED_PAIRS`] gated pairs, non-finite and already-used detections.
    #[test]
    fn sorted_association_equals_the_direct_search() {
        let mut seed = 7u64;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let (mut sorted_runs, mut overflows) = (0, 0);
        for case in 0..2000 {
            let (nt, nd) = (next(70) as usize, next(90) as usize);
            // Grid steps of 0.25 m in a square that shrinks for crowded cases.
            let side = 1 + next(if case % 4 == 0 { 8 } else { 40 });
            let mut point = || {
                Point::new(
                    next(side) as f32 * 0.25 - 2.0,
                    next(side) as f32 * 0.25 - 2.0,
                )
            };
            let tracks: std::vec::Vec<Point> = (0..nt).map(|_| point()).collect();
            let mut dets: std::vec::Vec<Point> = (0..nd).map(|_| point()).collect();
            if nd > 0 && case % 7 == 0 {
                dets[next(nd as u64) as usize].x = f32::NAN;
            }
            let used0: std::vec::Vec<bool> = (0..nd).map(|_| next(10) == 0).collect();
            let gate2 = [0.3f32, 1.0, 2.25, 9.0][next(4) as usize];
            let pairs = tracks
                .iter()
                .flat_map(|p| dets.iter().zip(&used0).map(move |(d, u)| (d - p, u)))
                .filter(|(v, u)| v.norm_squared() <= gate2 && !**u)
                .count();
            if pairs > MAX_SORTED_PAIRS {
                overflows += 1;
            } else if pairs > 1 {
                sorted_runs += 1;
            }
            let run = |f: Associate| {
                let (mut tu, mut du) = (std::vec![false; nt], used0.clone());
                let mut got = std::vec::Vec::new();
                f(&tracks, &dets, gate2, &mut tu, &mut du, &mut |t, d| {
                    got.push((t, d))
                });
                (got, tu, du)
            };
            let want = run(|t, d, g, tu, du, m| associate_direct(t, d, g, tu, du, m));
            let got = run(|t, d, g, tu, du, m| associate(t, d, g, tu, du, m));
            assert_eq!(
                want, got,
                "case {case}: {nt} tracks, {nd} detections, gate² {gate2}"
            );
        }
        // Both paths of `associate` ran many times.
        assert!(
            sorted_runs > 500 && overflows > 20,
            "{sorted_runs} {overflows}"
        );
    }

    #[test]
    fn two_walkers_keep_their_identities_and_velocities() {
        let mut tr = Tracker::<4>::new(TrackerConfig::default());
        for k in 0..20 {
            let t = k as f64 * 0.4;
            let a = Point::new(0.4 * k as f32, 0.0); // 1 m/s along x
            let b = Point::new(5.0, 10.0 - 0.6 * k as f32); // 1.5 m/s along -y
            let dets = if k % 2 == 0 { [a, b] } else { [b, a] };
            tr.update(t, &dets).unwrap();
        }
        assert_eq!(tr.tracks().len(), 2);
        let mut ids: heapless::Vec<u32, 4> = tr.tracks().iter().map(|t| t.id).collect();
        ids.sort_unstable();
        assert_eq!(&ids[..], &[0, 1]);
        let a = tr.tracks().iter().find(|t| t.id == 0).unwrap();
        assert!(
            (a.velocity() - Point::new(1.0, 0.0)).norm() < 0.05,
            "{:?}",
            a.velocity()
        );
        let hist = a.observed().unwrap();
        // History is on the 0.4 s grid: the last sample is the current position.
        assert!(
            (hist[7] - Point::new(7.6, 0.0)).norm() < 0.05,
            "{:?}",
            hist[7]
        );
        assert!((hist[7] - hist[6] - Point::new(0.4, 0.0)).norm() < 0.05);
    }

    #[test]
    fn missed_frames_coast_then_drop() {
        let mut tr = Tracker::<4>::new(TrackerConfig::default());
        for k in 0..5 {
            tr.update(k as f64 * 0.4, &[Point::new(0.4 * k as f32, 0.0)])
                .unwrap();
        }
        for k in 5..8 {
            tr.update(k as f64 * 0.4, &[]).unwrap();
            assert_eq!(tr.tracks().len(), 1, "coasting through miss {k}");
        }
        tr.update(8.0 * 0.4, &[]).unwrap();
        assert!(tr.tracks().is_empty());
    }

    #[test]
    fn bad_input_is_counted_not_fatal() {
        let mut tr = Tracker::<2>::new(TrackerConfig::default());
        let c = tr
            .update(
                0.0,
                &[
                    Point::new(f32::NAN, 0.0),
                    Point::new(0.0, 0.0),
                    Point::new(10.0, 0.0),
                    Point::new(20.0, 0.0),
                ],
            )
            .unwrap();
        assert_eq!(c.non_finite, 1);
        assert_eq!(c.table_full, 1);
        assert_eq!(tr.tracks().len(), 2);
        assert_eq!(
            tr.update(0.0, &[]),
            Err(FrameError::OutOfOrder { t: 0.0, last: 0.0 })
        );
        assert_eq!(tr.update(f64::NAN, &[]), Err(FrameError::NonFiniteTime));
    }

    #[test]
    fn faster_frames_are_sampled_on_the_model_step() {
        let mut tr = Tracker::<1>::new(TrackerConfig::default());
        // 10 Hz camera, 0.4 s model step: every 4th frame is a sample.
        let mut samples = 0;
        for k in 0..40 {
            tr.update(k as f64 * 0.1, &[Point::new(0.1 * k as f32, 0.0)])
                .unwrap();
            samples += tr.tracks()[0].sampled_now() as usize;
        }
        assert_eq!(samples, 10);
    }
}
