//! Graphs as SVG files: memory over time (`texcache stats --plot`, `texcache demo`) and the
//! miss-ratio curve of `texcache tune --plot`. Drawn with `plotters` (its SVG backend only: no
//! fonts or bitmaps to build), so the files are plain SVG any browser shows.

use plotters::prelude::*;
use std::path::Path;
use texcache::history::Sample;
use texcache::{Error, Result, TierKind};

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
    for s in series {
        let color = s.color;
        let style = color.stroke_width(2);
        let drawn = if s.dashed {
            c.draw_series(DashedLineSeries::new(s.points.iter().copied(), 8, 5, style))
        } else {
            c.draw_series(LineSeries::new(s.points.iter().copied(), style))
        };
        drawn
            .map_err(|x| e(&x))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Writes the memory graph of `samples` to `path`: used and budget of each tier, and video, in
/// MiB over seconds.
pub fn memory_svg(path: &Path, samples: &[Sample], title: &str) -> Result<()> {
    let t0 = samples.first().map_or(0, |s| s.t_ms);
    let line = |f: fn(&Sample) -> u64| -> Vec<(f64, f64)> {
        samples
            .iter()
            .map(|s| ((s.t_ms - t0) as f64 / 1000.0, f(s) as f64 / MIB))
            .collect()
    };
    let series = [
        (
            "cpu used",
            RGBColor(31, 119, 180),
            false,
            line(|s| s.cpu_used),
        ),
        (
            "cpu budget",
            RGBColor(31, 119, 180),
            true,
            line(|s| s.cpu_budget),
        ),
        (
            "gpu used",
            RGBColor(214, 39, 40),
            false,
            line(|s| s.gpu_used),
        ),
        (
            "gpu budget",
            RGBColor(214, 39, 40),
            true,
            line(|s| s.gpu_budget),
        ),
        (
            "video",
            RGBColor(44, 160, 44),
            false,
            line(|s| s.video_bytes),
        ),
    ]
    .map(|(name, color, dashed, points)| Series {
        name,
        color,
        dashed,
        points,
    });
    chart(path, title, "seconds", "MiB", &series)
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
        memory_svg(&tmp, &[s(0, 0), s(1000, 3 << 20)], "test").unwrap();
        let svg = std::fs::read_to_string(&tmp).unwrap();
        std::fs::remove_file(&tmp).unwrap();
        assert!(
            svg.contains("cpu budget") && svg.contains("gpu used"),
            "{svg}"
        );
    }
}
