//! Hazard zones: simple polygons in world metres, and the test "does this path cross into the
//! zone, and when". Paths are checked segment by segment, so a fast walker whose predicted points
//! straddle a narrow zone still counts as entering it.

use super::Point;
use core::fmt;

/// Most vertices one zone may have (fixed so zones live without a heap).
pub const MAX_VERTICES: usize = 16;
/// Longest zone name in bytes.
pub const MAX_NAME: usize = 32;

/// Why a zone was rejected. The host wraps this with the zone's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneError {
    /// A polygon needs at least three vertices.
    TooFewVertices {
        /// Vertices given.
        count: usize,
    },
    /// More vertices than [`MAX_VERTICES`].
    TooManyVertices {
        /// Vertices given.
        count: usize,
    },
    /// A coordinate is NaN or infinite.
    NonFinite {
        /// Index of the offending vertex.
        vertex: usize,
    },
    /// Two non-adjacent edges touch or cross.
    SelfIntersecting {
        /// Index of the first edge (from vertex `i` to `i + 1`).
        edge_a: usize,
        /// Index of the second edge.
        edge_b: usize,
    },
    /// All vertices lie on one line.
    ZeroArea,
    /// The name is empty or longer than [`MAX_NAME`] bytes.
    BadName,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ZoneError::TooFewVertices { count } => {
                write!(f, "polygon has {count} vertices; at least 3 are needed")
            }
            ZoneError::TooManyVertices { count } => {
                write!(
                    f,
                    "polygon has {count} vertices; at most {MAX_VERTICES} are supported"
                )
            }
            ZoneError::NonFinite { vertex } => write!(f, "vertex {vertex} is not a finite number"),
            ZoneError::SelfIntersecting { edge_a, edge_b } => {
                write!(
                    f,
                    "polygon is not simple: edges {edge_a} and {edge_b} intersect"
                )
            }
            ZoneError::ZeroArea => write!(f, "polygon has zero area (all vertices on one line)"),
            ZoneError::BadName => write!(f, "name must be 1 to {MAX_NAME} bytes"),
        }
    }
}

/// A named hazard zone: a simple polygon, in any vertex order.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    name: heapless::String<MAX_NAME>,
    vertices: heapless::Vec<Point, MAX_VERTICES>,
    min: Point,
    max: Point,
}

fn cross(a: Point, b: Point) -> f32 {
    a.x * b.y - a.y * b.x
}

/// Parameter `t ∈ [0, 1]` along `a→b` where it meets segment `c→d`, if it does (parallel
/// segments never count: a path sliding along an edge has not entered).
fn segment_hit(a: Point, b: Point, c: Point, d: Point) -> Option<f32> {
    let r = b - a;
    let s = d - c;
    let denom = cross(r, s);
    if denom.abs() <= f32::EPSILON * (r.norm_squared() + s.norm_squared()) {
        return None;
    }
    let ca = c - a;
    let t = cross(ca, s) / denom;
    let u = cross(ca, r) / denom;
    ((0.0..=1.0).contains(&t) && (0.0..=1.0).contains(&u)).then_some(t)
}

impl Zone {
    /// Validates and builds a zone: at least 3 finite vertices, non-zero area, no two
    /// non-adjacent edges touching.
    pub fn new(name: &str, vertices: &[[f32; 2]]) -> Result<Self, ZoneError> {
        if name.is_empty() {
            return Err(ZoneError::BadName);
        }
        let name = heapless::String::try_from(name).map_err(|_| ZoneError::BadName)?;
        let n = vertices.len();
        if n < 3 {
            return Err(ZoneError::TooFewVertices { count: n });
        }
        let mut v = heapless::Vec::new();
        for (i, p) in vertices.iter().enumerate() {
            if !(p[0].is_finite() && p[1].is_finite()) {
                return Err(ZoneError::NonFinite { vertex: i });
            }
            v.push(Point::new(p[0], p[1]))
                .map_err(|_| ZoneError::TooManyVertices { count: n })?;
        }
        for i in 0..n {
            for j in i + 1..n {
                let adjacent = j == i + 1 || (i == 0 && j == n - 1);
                if adjacent {
                    continue;
                }
                let (a, b) = (v[i], v[(i + 1) % n]);
                let (c, d) = (v[j], v[(j + 1) % n]);
                if segment_hit(a, b, c, d).is_some() {
                    return Err(ZoneError::SelfIntersecting {
                        edge_a: i,
                        edge_b: j,
                    });
                }
            }
        }
        // Checked after simplicity: a bow tie also has zero signed area.
        let area2: f32 = (0..n).map(|i| cross(v[i], v[(i + 1) % n])).sum();
        let scale = v.iter().map(|p| p.norm_squared()).fold(1.0f32, f32::max);
        if area2.abs() <= 1e-6 * scale {
            return Err(ZoneError::ZeroArea);
        }
        let mut min = v[0];
        let mut max = v[0];
        for p in &v {
            min = min.inf(p);
            max = max.sup(p);
        }
        Ok(Zone {
            name,
            vertices: v,
            min,
            max,
        })
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vertices in the order given.
    pub fn vertices(&self) -> &[Point] {
        &self.vertices
    }

    /// Whether `p` is inside (even–odd rule) or on the boundary. Counting the boundary as
    /// inside makes a path that stops exactly on an edge enter once, not again on its next step.
    pub fn contains(&self, p: Point) -> bool {
        if p.x < self.min.x || p.y < self.min.y || p.x > self.max.x || p.y > self.max.y {
            return false;
        }
        let n = self.vertices.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.vertices[i], self.vertices[j]);
            let (ab, ap) = (b - a, p - a);
            let on_line = cross(ab, ap).abs() <= 1e-6 * ab.norm().max(1.0);
            let within = ap.dot(&ab) >= 0.0 && ap.dot(&ab) <= ab.norm_squared();
            if on_line && within {
                return true;
            }
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// Where along `a→b` (parameter in `[0, 1]`) the segment first crosses into the zone, for a
    /// start point `a` outside it; `None` if `a` is inside or the segment never reaches the zone.
    pub fn segment_entry(&self, a: Point, b: Point) -> Option<f32> {
        if self.contains(a) {
            return None;
        }
        let lo = a.inf(&b);
        let hi = a.sup(&b);
        if hi.x < self.min.x || hi.y < self.min.y || lo.x > self.max.x || lo.y > self.max.y {
            return None;
        }
        let n = self.vertices.len();
        let mut best: Option<f32> = None;
        for i in 0..n {
            if let Some(t) = segment_hit(a, b, self.vertices[i], self.vertices[(i + 1) % n]) {
                best = Some(best.map_or(t, |x: f32| x.min(t)));
            }
        }
        best.or_else(|| self.contains(b).then_some(1.0))
    }

    /// When a pedestrian at `start` (outside) following `path` (one point per step) first enters,
    /// in steps from now (e.g. 2.5 = half-way between the 2nd and 3rd predicted point).
    pub fn path_entry(&self, start: Point, path: &[Point]) -> Option<f32> {
        if self.contains(start) {
            return None;
        }
        let mut prev = start;
        for (i, &p) in path.iter().enumerate() {
            if let Some(t) = self.segment_entry(prev, p) {
                return Some(i as f32 + t);
            }
            prev = p;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Zone {
        Zone::new(
            "crossing",
            &[[2.0, 3.0], [5.0, 3.0], [5.0, 4.5], [2.0, 4.5]],
        )
        .unwrap()
    }

    #[test]
    fn contains_works_in_either_vertex_order() {
        let cw = Zone::new("cw", &[[2.0, 4.5], [5.0, 4.5], [5.0, 3.0], [2.0, 3.0]]).unwrap();
        for z in [square(), cw] {
            assert!(z.contains(Point::new(3.0, 4.0)));
            assert!(!z.contains(Point::new(1.0, 4.0)));
            assert!(!z.contains(Point::new(3.0, 5.0)));
            assert!(
                z.contains(Point::new(2.0, 4.0)),
                "boundary counts as inside"
            );
        }
    }

    #[test]
    fn concave_polygon_contains() {
        // An L shape: the notch at (3, 3) is outside.
        let l = Zone::new(
            "L",
            &[
                [0.0, 0.0],
                [4.0, 0.0],
                [4.0, 2.0],
                [2.0, 2.0],
                [2.0, 4.0],
                [0.0, 4.0],
            ],
        )
        .unwrap();
        assert!(l.contains(Point::new(1.0, 3.0)));
        assert!(l.contains(Point::new(3.0, 1.0)));
        assert!(!l.contains(Point::new(3.0, 3.0)));
    }

    #[test]
    fn segment_that_jumps_over_a_thin_zone_still_enters() {
        let z = Zone::new("thin", &[[0.0, 0.0], [0.2, 0.0], [0.2, 10.0], [0.0, 10.0]]).unwrap();
        // Both end points are outside; the segment crosses the strip.
        let t = z
            .segment_entry(Point::new(-1.0, 5.0), Point::new(1.0, 5.0))
            .unwrap();
        assert!((t - 0.5).abs() < 1e-6, "t = {t}");
        assert_eq!(
            z.segment_entry(Point::new(-1.0, 5.0), Point::new(-0.5, 5.0)),
            None
        );
    }

    #[test]
    fn path_entry_time_is_in_steps() {
        let z = square();
        let start = Point::new(0.0, 3.5);
        // 1 m per step towards +x: enters at x = 2, i.e. after 2 steps.
        let path: [Point; 4] = core::array::from_fn(|i| Point::new(1.0 + i as f32, 3.5));
        let t = z.path_entry(start, &path).unwrap();
        assert!((t - 2.0).abs() < 1e-5, "t = {t}");
        // Already inside: not an entry.
        assert_eq!(z.path_entry(Point::new(3.0, 4.0), &path), None);
        // Walking away never enters.
        let away: [Point; 4] = core::array::from_fn(|i| Point::new(-1.0 - i as f32, 3.5));
        assert_eq!(z.path_entry(start, &away), None);
    }

    #[test]
    fn bad_polygons_are_named_errors() {
        assert_eq!(
            Zone::new("z", &[[0.0, 0.0], [1.0, 0.0]]),
            Err(ZoneError::TooFewVertices { count: 2 })
        );
        // A bow tie: edges 0 and 2 cross.
        assert_eq!(
            Zone::new("z", &[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]),
            Err(ZoneError::SelfIntersecting {
                edge_a: 0,
                edge_b: 2
            })
        );
        assert_eq!(
            Zone::new("z", &[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]),
            Err(ZoneError::ZeroArea)
        );
        assert_eq!(
            Zone::new("z", &[[0.0, f32::NAN], [1.0, 0.0], [0.0, 1.0]]),
            Err(ZoneError::NonFinite { vertex: 0 })
        );
        assert_eq!(
            Zone::new("", &[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
            Err(ZoneError::BadName)
        );
    }
}
