//! benchmarks.png: replies per second at saturation per responder, ARP and
//! NDP side by side, from a report.
use std::path::Path;

use plotters::prelude::*;

use super::{
    schema::{Capacity, Request, Responder},
    BenchError,
};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The requests drawn, with their bar colors.
const SERIES: [(Request, RGBColor); 2] = [
    (Request::Arp, RGBColor(31, 119, 180)),
    (Request::Ns, RGBColor(255, 127, 14)),
];

/// Per responder that answers (the receive floor left out), a bar per
/// request it handles: median replies/s with a min–max whisker.
pub(super) fn draw(capacity: &Capacity, path: &Path) -> Result<(), BenchError> {
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

    let mut names: Vec<&str> = vec![];
    // A range without values (null in the JSON) is drawn from 0.
    let or_zero = |v: f64| if v.is_nan() { 0.0 } else { v };
    // (group, series, median, min, max)
    let mut bars: Vec<(usize, usize, f64, f64, f64)> = vec![];
    for run in capacity
        .runs
        .iter()
        .filter(|run| run.responder != Responder::Floor)
    {
        let Some(series) = SERIES.iter().position(|(r, _)| *r == run.request) else {
            continue;
        };
        let name = run.responder.name();
        let group = names.iter().position(|n| *n == name).unwrap_or_else(|| {
            names.push(name);
            names.len() - 1
        });
        let r = &run.replies_per_s;
        bars.push((
            group,
            series,
            or_zero(r.median),
            or_zero(r.min),
            or_zero(r.max),
        ));
    }
    let top = bars.iter().map(|b| b.4).fold(1.0, f64::max) * 1.15;
    let root = BitMapBackend::new(path, (1000, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Replies per second at saturation, one node CPU (median, min–max)",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..names.len() as f64, 0f64..top)
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(names.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = (x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                names
                    .get(i as usize)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("replies/s")
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| failed(&e))?;
    let width = 0.8 / SERIES.len() as f64;
    for &(group, series, median, min, max) in &bars {
        let left = group as f64 + 0.1 + series as f64 * width;
        let (middle, color) = (left + width / 2.0, SERIES[series].1);
        chart
            .draw_series([Rectangle::new(
                [(left + 0.02, 0.0), (left + width - 0.02, median)],
                color.filled(),
            )])
            .map_err(|e| failed(&e))?;
        let whisker = |y| {
            PathElement::new(
                vec![(middle - 0.05, y), (middle + 0.05, y)],
                BLACK.stroke_width(2),
            )
        };
        chart
            .draw_series([
                PathElement::new(vec![(middle, min), (middle, max)], BLACK.stroke_width(2)),
                whisker(min),
                whisker(max),
            ])
            .map_err(|e| failed(&e))?;
        chart
            .draw_series([Text::new(
                format!("{:.0}k", median / 1000.0),
                (left + 0.03, max + top * 0.03),
                ("sans-serif", 14),
            )])
            .map_err(|e| failed(&e))?;
    }
    for (i, (request, color)) in SERIES.iter().enumerate() {
        let y = top * (0.95 - 0.06 * i as f64);
        let x = names.len() as f64 - 1.0;
        chart
            .draw_series([Rectangle::new(
                [(x, y), (x + 0.12, y - top * 0.035)],
                color.filled(),
            )])
            .map_err(|e| failed(&e))?;
        chart
            .draw_series([Text::new(
                request.name().to_owned(),
                (x + 0.16, y),
                ("sans-serif", 14),
            )])
            .map_err(|e| failed(&e))?;
    }
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}
