//! The report's SVG plots, drawn with `plotters` (SVG backend only, no fonts loaded:
//! text is left to the SVG viewer).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::{Results, ThroughputCell};
use crate::latency::{Comparison, SWEEP_LOSS, Setup};

/// A plotting failure, as text.
pub type PlotError = String;

const SIZE: (u32, u32) = (720, 440);
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x88, 0x88, 0x88),
];

/// Writes `throughput-<size>-loss<pct>.svg`: payload throughput against the window for
/// each implementation, one message size and loss rate. Returns the file name.
///
/// # Errors
/// If the file cannot be written.
pub fn throughput(
    dir: &Path,
    results: &Results,
    size: usize,
    loss: f64,
) -> Result<String, PlotError> {
    let cells: Vec<&ThroughputCell> = results
        .throughput
        .iter()
        .filter(|c| c.transfer.message_size == size && c.transfer.loss == loss)
        .collect();
    let name = format!("throughput-{size}-loss{}.svg", (loss * 100.0).round());
    let path = dir.join(&name);
    // Colours by position: ours, C, kcp crate, ours through the copying API.
    let mut series: Vec<Series<'_>> = vec![
        (
            "ours (kcp-core)",
            points(&cells, |c| c.bytes_per_second(c.time.ours)),
        ),
        (
            "C ikcp 1.7.1",
            points(&cells, |c| c.bytes_per_second(c.time.c)),
        ),
        (
            "kcp crate 0.6",
            points(&cells, |c| c.bytes_per_second(c.time.kcp)),
        ),
    ];
    if cells.iter().all(|c| c.time.ours_copying.is_some()) {
        series.push((
            "ours, copying API",
            points(&cells, |c| {
                c.time.ours_copying.map_or(0.0, |m| c.bytes_per_second(m))
            }),
        ));
    }
    let top = highest(&series) * 1.15;
    let caption = format!(
        "Throughput, {size} B messages, {}% loss, fast preset",
        loss * 100.0
    );
    line_chart(
        &path,
        &caption,
        Axis {
            range: (24f64..5500f64).log_scale(),
            desc: "send window (segments, log scale)",
            labels: 8,
            format: |x| format!("{x:.0}"),
        },
        Axis {
            range: 0f64..top.max(1.0),
            desc: "payload GB/s (this machine)",
            labels: DEFAULT_LABELS,
            format: |y| format!("{:.1}", y / 1e9),
        },
        series,
        SeriesLabelPosition::UpperRight,
    )?;
    Ok(name)
}

fn points(cells: &[&ThroughputCell], y: impl Fn(&ThroughputCell) -> f64) -> Vec<(f64, f64)> {
    cells
        .iter()
        .map(|c| (f64::from(c.transfer.window), y(c)))
        .collect()
}

/// Writes `latency-<what>.svg`: an RTT statistic of our engine against the loss rate,
/// one line per setup. `stat` picks the statistic; runs where no seed finished are
/// left out. Returns the file name.
///
/// # Errors
/// If the file cannot be written.
pub fn latency(
    dir: &Path,
    sweep: &[Comparison],
    what: &str,
    title: &str,
    stat: impl Fn(&crate::latency::Summary) -> f64,
) -> Result<String, PlotError> {
    let name = format!("latency-{what}.svg");
    let path = dir.join(&name);
    let lines: Vec<Series<'_>> = Setup::ALL
        .iter()
        .map(|&setup| {
            let pts = sweep
                .iter()
                .filter(|c| c.setup == setup)
                .filter_map(|c| {
                    c.ours
                        .as_ref()
                        .map(|s| (f64::from(c.lost_per_100), stat(s)))
                })
                .collect();
            (setup.name(), pts)
        })
        .collect();
    let top = highest(&lines);
    let max_loss = f64::from(SWEEP_LOSS[SWEEP_LOSS.len() - 1]);
    line_chart(
        &path,
        title,
        Axis {
            range: 0f64..max_loss + 1.0,
            desc: "loss per direction (%)",
            labels: DEFAULT_LABELS,
            format: |x| format!("{x:.0}"),
        },
        Axis {
            range: (40f64..(top * 1.5).max(100.0)).log_scale(),
            desc: "RTT ms (virtual time, log scale)",
            labels: DEFAULT_LABELS,
            format: |y| format!("{y:.0}"),
        },
        lines,
        SeriesLabelPosition::UpperLeft,
    )?;
    Ok(name)
}

/// One line of a chart: its legend label and its points.
type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// The largest y value of any series (0 if there is none).
fn highest(series: &[Series<'_>]) -> f64 {
    series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(_, y)| y))
        .fold(0.0, f64::max)
}

/// Labels on an axis unless said otherwise (`plotters`' default).
const DEFAULT_LABELS: usize = 11;

/// One axis of a [`line_chart`].
struct Axis<R> {
    /// Its range, linear or `.log_scale()`.
    range: R,
    /// Its description.
    desc: &'static str,
    /// How many labels it gets.
    labels: usize,
    /// How a label is written.
    format: fn(&f64) -> String,
}

/// Writes the SVG at `path`: each of `series` as a line with a dot per point, coloured
/// by position, under `caption`, with its legend at `legend`.
fn line_chart<X, Y>(
    path: &Path,
    caption: &str,
    x: Axis<X>,
    y: Axis<Y>,
    series: Vec<Series<'_>>,
    legend: SeriesLabelPosition,
) -> Result<(), PlotError>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x.range, y.range)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x.desc)
        .y_desc(y.desc)
        .x_labels(x.labels)
        .y_labels(y.labels)
        .x_label_formatter(&x.format)
        .y_label_formatter(&y.format)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (label, pts)) in series.into_iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
