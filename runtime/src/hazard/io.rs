//! Text in and out of the hazard pipeline, shared by the host CLI, the Jetson daemon and the
//! firmware so every board reads and writes the same lines: detection lines `TIME_S X Y` (or
//! `FRAME ID X Y`) and alerts as JSON lines. No allocation.

use super::pipeline::Alert;
use core::fmt;

/// One parsed detection line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionLine {
    /// Frame time, s.
    pub t: f64,
    /// Identity when the line carries one (`FRAME ID X Y` form).
    pub id: Option<u32>,
    /// Position as written (metres, or pixels when a homography follows).
    pub x: f32,
    /// Position as written.
    pub y: f32,
}

/// Why a line was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// Blank or a `#` comment (not an error; nothing to do).
    Empty,
    /// Wrong field count or a field that is not a number.
    Malformed,
}

fn fields(line: &str) -> impl Iterator<Item = &str> {
    line.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
}

/// Parses `TIME_S X Y` (`with_id = false`) or ETH/UCY `FRAME ID X Y` (`with_id = true`; frames
/// are 10 apart = 0.4 s). Non-finite coordinates are returned as they are (the tracker skips and
/// counts them); a non-finite time is malformed.
pub fn parse_detection_line(line: &str, with_id: bool) -> Result<DetectionLine, LineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Err(LineError::Empty);
    }
    let mut v = [0f64; 4];
    let want = if with_id { 4 } else { 3 };
    let mut n = 0;
    for f in fields(line) {
        if n == want {
            return Err(LineError::Malformed);
        }
        v[n] = f.parse::<f64>().map_err(|_| LineError::Malformed)?;
        n += 1;
    }
    if n != want {
        return Err(LineError::Malformed);
    }
    let d = if with_id {
        if !(v[1] >= 0.0 && v[1] <= u32::MAX as f64) {
            return Err(LineError::Malformed);
        }
        DetectionLine {
            t: v[0] / 10.0 * 0.4, // STEP_S, exactly in f64
            id: Some(v[1] as u32),
            x: v[2] as f32,
            y: v[3] as f32,
        }
    } else {
        DetectionLine {
            t: v[0],
            id: None,
            x: v[1] as f32,
            y: v[2] as f32,
        }
    };
    if d.t.is_finite() {
        Ok(d)
    } else {
        Err(LineError::Malformed)
    }
}

/// Writes one alert as a JSON line (without the newline): time, track, zone name, predicted time
/// to entry and position, rounded to what the sensors resolve.
pub fn write_alert_json(w: &mut impl fmt::Write, a: &Alert, zone: &str) -> fmt::Result {
    write!(
        w,
        "{{\"t\":{:.3},\"track\":{},\"zone\":\"",
        a.time_s, a.track
    )?;
    for c in zone.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(w, "\\u{:04x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    write!(
        w,
        "\",\"time_to_entry_s\":{:.2},\"x\":{:.3},\"y\":{:.3}}}",
        a.time_to_entry_s, a.position.x, a.position.y
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hazard::Point;

    #[test]
    fn lines_parse_or_are_named() {
        assert_eq!(
            parse_detection_line("1.2 3.5 -4", false),
            Ok(DetectionLine {
                t: 1.2,
                id: None,
                x: 3.5,
                y: -4.0
            })
        );
        let d = parse_detection_line("780\t12.0\t8.46\t3.59", true).unwrap();
        assert_eq!((d.id, d.x), (Some(12), 8.46));
        assert!((d.t - 31.2).abs() < 1e-9);
        assert_eq!(
            parse_detection_line("  # comment", false),
            Err(LineError::Empty)
        );
        assert_eq!(
            parse_detection_line("1 2", false),
            Err(LineError::Malformed)
        );
        assert_eq!(
            parse_detection_line("1 2 3 4", false),
            Err(LineError::Malformed)
        );
        assert_eq!(
            parse_detection_line("1 x 3", false),
            Err(LineError::Malformed)
        );
        assert_eq!(
            parse_detection_line("inf 2 3", false),
            Err(LineError::Malformed)
        );
        assert!(parse_detection_line("1 NaN 3", false).unwrap().x.is_nan());
    }

    #[test]
    fn alert_json_is_escaped_and_rounded() {
        let a = Alert {
            track: 7,
            zone: 0,
            time_s: 12.4,
            time_to_entry_s: 2.456,
            position: Point::new(1.0, -2.5),
        };
        let mut s = heapless::String::<160>::new();
        write_alert_json(&mut s, &a, "kerb \"A\"").unwrap();
        assert_eq!(
            s.as_str(),
            r#"{"t":12.400,"track":7,"zone":"kerb \"A\"","time_to_entry_s":2.46,"x":1.000,"y":-2.500}"#
        );
    }
}
