//! benchmarks.png: replies per second per responder, from a report.
use std::path::Path;

use plotters::prelude::*;

use super::{
    schema::{Responder, Throughput},
    BenchError,
};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// A bar per responder (nothing answering left out): median replies/s with
/// a min–max whisker.
pub(super) fn draw(throughput: &Throughput, path: &Path) -> Result<(), BenchError> {
    let failed = |e: &dyn std::fmt::Display| BenchError::Chart(path.into(), e.to_string());

    let font = std::fs::read(FONT).map_err(|e| {
        failed(&format!(
            "{FONT} (Debian package fonts-dejavu-core, installed by `cargo xtask setup`): {e}"
        ))
    })?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| failed(&format!("{FONT} is not a usable font")))?;

    // A range without values (null in the JSON) is drawn from 0.
    let or_zero = |v: f64| if v.is_nan() { 0.0 } else { v };
    let bars: Vec<(String, f64, f64, f64)> = throughput
        .modes
        .iter()
        .filter(|m| m.mode != Responder::Nothing)
        .map(|m| {
            let r = &m.replies_per_s;
            (
                m.mode.name().to_owned(),
                r.median,
                or_zero(r.min),
                or_zero(r.max),
            )
        })
        .collect();
    let top = bars.iter().map(|b| b.3).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Replies per second over veth (median, min–max)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..bars.len() as f64, 0f64..top)
        .map_err(|e| failed(&e))?;
    let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("replies/s")
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(255, 127, 14),
        RGBColor(214, 39, 40),
    ];
    for (i, (_, median, min, max)) in bars.iter().enumerate() {
        let x = i as f64;
        let color = colors[i % colors.len()];
        chart
            .draw_series([Rectangle::new(
                [(x + 0.2, 0.0), (x + 0.8, *median)],
                color.filled(),
            )])
            .map_err(|e| failed(&e))?;
        chart
            .draw_series([
                PathElement::new(
                    vec![(x + 0.5, *min), (x + 0.5, *max)],
                    BLACK.stroke_width(2),
                ),
                PathElement::new(
                    vec![(x + 0.42, *min), (x + 0.58, *min)],
                    BLACK.stroke_width(2),
                ),
                PathElement::new(
                    vec![(x + 0.42, *max), (x + 0.58, *max)],
                    BLACK.stroke_width(2),
                ),
            ])
            .map_err(|e| failed(&e))?;
        chart
            .draw_series([Text::new(
                format!("{:.0}k", median / 1000.0),
                (x + 0.3, *max + top * 0.03),
                ("sans-serif", 16),
            )])
            .map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}
