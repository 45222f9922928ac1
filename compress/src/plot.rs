//! Shared plotting set-up: plotters draws text through ab_glyph with a vendored DejaVu Sans
//! (assets/DejaVuSans.LICENSE), so PNG reports need no system font libraries.

use std::sync::Once;

/// Registers the embedded font as "sans-serif" (idempotent).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let font: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // Cannot fail for a valid embedded font; a failure would only drop text from plots.
        let _ =
            plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, font);
    });
}

/// One named series of (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// A PNG chart of `series` as lines (`points: false`) or labelled markers (`points: true`),
/// axes fitted to the data.
pub fn chart_png(
    out: &std::path::Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
    points: bool,
) -> crate::Result<()> {
    use plotters::prelude::*;
    register_font();
    let err = |e: String| crate::Error::Invalid(format!("{}: plotting failed: {e}", out.display()));
    let all = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 {
        return Err(err("no data".into()));
    }
    let (px, py) = (((x1 - x0) * 0.08).max(1e-3), ((y1 - y0) * 0.1).max(1e-3));
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::Io {
            path: dir.into(),
            err: e,
        })?;
    }
    let root = BitMapBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(x0 - px..x1 + px, y0 - py..y1 + py)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let drawn = if points {
            chart
                .draw_series(
                    pts.iter()
                        .map(|&(x, y)| Circle::new((x, y), 6, color.filled())),
                )
                .map_err(|e| err(e.to_string()))?
        } else {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
        };
        drawn.label(name.clone()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(3))
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
