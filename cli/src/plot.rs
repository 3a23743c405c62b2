//! Graphs as SVG files: memory over time (`texcache stats --plot`, `texcache demo`) and the
//! miss-ratio curve of `texcache tune --plot`. Drawn with `plotters` (its SVG backend only: no
//! fonts or bitmaps to build), so the files are plain SVG any browser shows.

use crate::error::{Error, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;
use texcache::observe::history::Sample;
use texcache::TierKind;

const MIB: f64 = (1u64 << 20) as f64;

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |detail| Error::Plot {
        path: path.into(),
        detail,
    }
}

/// One named line of a chart.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// A chart of numbers over numbers, on an SVG file.
type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Draws `series` on `c` (solid, or dashed for budgets) with their legend at `legend`.
fn draw_lines<'a, 'b: 'a>(
    c: &mut Chart<'a, 'b>,
    series: &[Series],
    legend: SeriesLabelPosition,
    err: &dyn Fn(String) -> Error,
) -> Result<()> {
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    for s in series {
        let color = s.color;
        let style = color.stroke_width(if s.dashed { 2 } else { 3 });
        let drawn = if s.dashed {
            c.draw_series(DashedLineSeries::new(
                s.points.iter().copied(),
                10,
                6,
                style,
            ))
        } else {
            c.draw_series(LineSeries::new(s.points.iter().copied(), style))
        };
        drawn
            .map_err(|x| e(&x))?
            .label(s.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    c.configure_series_labels()
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// Draws `series` on one chart with a legend.
fn chart(path: &Path, title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Result<()> {
    let err = plot_err(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x_max, mut y_max) = (0f64, 0f64);
    for &(x, y) in all {
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    let x_max = if x_max > 0.0 { x_max * 1.02 } else { 1.0 };
    let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut c = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|x| e(&x))?;
    c.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()
        .map_err(|x| e(&x))?;
    draw_lines(&mut c, series, SeriesLabelPosition::UpperLeft, &err)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// A phase of a run, marked on the memory graph: where it starts (milliseconds, on the
/// samples' clock) and its name.
pub type Phase<'a> = (u64, &'a str);

/// Writes the memory graph of `samples` to `path`: four panels over one time axis, each on its
/// own scale, so that no line hides another: the CPU tier (used and budget), the GPU tier
/// (used and budget), video, and the process's RSS. `phases` are marked in every panel.
pub fn memory_svg(path: &Path, samples: &[Sample], title: &str, phases: &[Phase]) -> Result<()> {
    let err = plot_err(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let t0 = samples.first().map_or(0, |s| s.t_ms);
    let secs = |t: u64| t.saturating_sub(t0) as f64 / 1000.0;
    let line = |f: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| (secs(s.t_ms), f(s) as f64 / MIB))
            .collect()
    };
    let (blue, red, green, gray) = (
        RGBColor(31, 119, 180),
        RGBColor(214, 39, 40),
        RGBColor(44, 160, 44),
        RGBColor(90, 90, 90),
    );
    let series = |name, color, dashed, points| Series {
        name,
        color,
        dashed,
        points,
    };
    let panels = [
        (
            "CPU tier: decoded bitmaps",
            vec![
                series("cpu used", blue, false, line(|s| s.cpu_used)),
                series("cpu budget", blue, true, line(|s| s.cpu_budget)),
            ],
        ),
        (
            "GPU tier: textures",
            vec![
                series("gpu used", red, false, line(|s| s.gpu_used)),
                series("gpu budget", red, true, line(|s| s.gpu_budget)),
            ],
        ),
        (
            "video nodes: frames and textures",
            vec![series("video", green, false, line(|s| s.video_bytes))],
        ),
        (
            "process: resident memory (RSS)",
            vec![series("process RSS", gray, false, line(|s| s.rss))],
        ),
    ];
    let x_max = samples.last().map_or(0.0, |s| secs(s.t_ms));
    // Room on the right for the legends, past the last sample.
    let x_max = if x_max > 0.0 { x_max * 1.2 } else { 1.0 };
    let root = SVGBackend::new(path, (1000, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(title, ("sans-serif", 26)).map_err(|x| e(&x))?;
    let areas = root.split_evenly((panels.len(), 1));
    for (area, (name, lines)) in areas.iter().zip(&panels) {
        let y_max = lines
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0f64, f64::max);
        let y_max = if y_max > 0.0 { y_max * 1.25 } else { 1.0 };
        let mut c = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|x| e(&x))?;
        c.configure_mesh()
            .x_desc("seconds")
            .y_desc("MiB")
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()
            .map_err(|x| e(&x))?;
        for (i, &(t, phase)) in phases.iter().enumerate() {
            let x = secs(t);
            // Labels on three heights, so that close phases do not write over each other.
            let y = y_max * (0.96 - 0.09 * (i % 3) as f64);
            let mark = BLACK.mix(0.35).stroke_width(1);
            c.draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, y_max)],
                mark,
            )))
            .map_err(|x| e(&x))?;
            c.draw_series(std::iter::once(Text::new(
                phase.to_string(),
                (x + x_max * 0.004, y),
                ("sans-serif", 15).into_font().color(&BLACK.mix(0.7)),
            )))
            .map_err(|x| e(&x))?;
        }
        draw_lines(&mut c, lines, SeriesLabelPosition::LowerRight, &err)?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// One row of a budget sweep (`texcache tune`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TunePoint {
    /// Which tier.
    pub tier: &'static str,
    /// Bytes this tier may hold (§2).
    pub budget: u64,
    /// hits / (hits + misses).
    pub hit_ratio: f64,
    /// Loads (§3.1).
    pub misses: u64,
    /// Entries evicted (§3.4).
    pub evictions: u64,
    /// The highest `used` at the end of any operation.
    pub peak_used: u64,
    /// The most bytes in use (held by live handles) at the end of any operation.
    pub peak_in_use: u64,
}

/// Writes the miss-ratio curve of a budget sweep to `path`: miss ratio over budget (MiB), one
/// line per tier swept.
pub fn miss_ratio_svg(path: &Path, points: &[TunePoint], title: &str) -> Result<()> {
    let series: Vec<Series> = [
        (TierKind::Cpu, "cpu miss ratio", RGBColor(31, 119, 180)),
        (TierKind::Gpu, "gpu miss ratio", RGBColor(214, 39, 40)),
    ]
    .into_iter()
    .filter_map(|(tier, name, color)| {
        let mut pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.tier == tier.name())
            .map(|p| (p.budget as f64 / MIB, 1.0 - p.hit_ratio))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!pts.is_empty()).then_some(Series {
            name,
            color,
            dashed: false,
            points: pts,
        })
    })
    .collect();
    chart(path, title, "budget (MiB)", "miss ratio", &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_graph_names_its_series() {
        let tmp = std::env::temp_dir().join(format!("texcache-plot-{}.svg", std::process::id()));
        let s = |t, used| Sample {
            t_ms: t,
            cpu_used: used,
            cpu_budget: 4 << 20,
            ..Sample::default()
        };
        memory_svg(
            &tmp,
            &[s(0, 0), s(1000, 3 << 20)],
            "test",
            &[(500, "phase two")],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&tmp).unwrap();
        std::fs::remove_file(&tmp).unwrap();
        assert!(
            svg.contains("cpu budget")
                && svg.contains("gpu used")
                && svg.contains("process RSS")
                && svg.contains("phase two"),
            "{svg}"
        );
    }
}
