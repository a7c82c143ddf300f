//! Line panels of the chart: a figure (throughput, latency) against evenly spaced categories
//! such as 1, 4, 16, 64 and 256 clients, one line per series. Latency spans orders of
//! magnitude between 1 and 256 clients, so the y axis can be logarithmic.

use std::fmt::Write;

use super::svg::{colour, escape, heading, human, Panel, TOP_PX, WIDTH_PX};

/// One line: a value per category (`None` where it was not measured).
pub struct Series {
    pub name: String,
    /// Index of the system's colour (see [`colour`]).
    pub colour: usize,
    pub dashed: bool,
    pub points: Vec<Option<f64>>,
}

const LEFT_PX: f64 = 70.0;
const RIGHT_PX: f64 = 30.0;
const PLOT_PX: f64 = 220.0;
const BOTTOM_PX: f64 = 40.0;

/// Gridlines above zero on a linear axis.
const LINEAR_TICKS: u32 = 4;

/// The smallest round step (1, 2, 2.5, 3, 4 or 5 times a power of ten) at least `raw`, so
/// that gridlines fall on numbers a reader can use.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 3.0, 4.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The y axis: where a value is drawn (0 at the bottom of the plot, 1 at the top) and the
/// ticks to label.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let (mut min, mut max) = (f64::MAX, 0.0f64);
        for v in values.filter(|v| *v > 0.0) {
            min = min.min(v);
            max = max.max(v);
        }
        if max <= 0.0 {
            return Axis {
                log,
                lo: if log { 1.0 } else { 0.0 },
                hi: 10.0,
            };
        }
        if log {
            Axis {
                log,
                lo: 10f64.powf(min.log10().floor()),
                hi: 10f64.powf(max.log10().ceil().max(min.log10().floor() + 1.0)),
            }
        } else {
            Axis {
                log,
                lo: 0.0,
                hi: LINEAR_TICKS as f64 * nice_step(max / LINEAR_TICKS as f64),
            }
        }
    }

    fn fraction(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            (0..=LINEAR_TICKS)
                .map(|k| self.hi * k as f64 / LINEAR_TICKS as f64)
                .collect()
        }
    }
}

fn tick_label(v: f64) -> String {
    if v < 1.0 {
        format!("{v}")
    } else {
        human(v)
    }
}

pub fn line_chart(
    title: &str,
    unit: &str,
    categories: &[String],
    series: &[Series],
    log_y: bool,
) -> Panel {
    let axis = Axis::new(
        series
            .iter()
            .flat_map(|s| s.points.iter().flatten().copied()),
        log_y,
    );
    let legend: Vec<(String, usize, bool)> = series
        .iter()
        .map(|s| (s.name.clone(), s.colour, s.dashed))
        .collect();
    let mut svg = heading(title, unit, &legend);
    let width = WIDTH_PX - LEFT_PX - RIGHT_PX;
    let bottom = TOP_PX + PLOT_PX;
    let x_of = |i: usize| LEFT_PX + width * (i as f64 + 0.5) / categories.len().max(1) as f64;
    let y_of = |v: f64| bottom - PLOT_PX * axis.fraction(v);
    for t in axis.ticks() {
        let y = y_of(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT_PX}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{y:.1}" text-anchor="end" dominant-baseline="middle" fill="grey">{}</text>"##,
            WIDTH_PX - RIGHT_PX,
            LEFT_PX - 6.0,
            tick_label(t)
        );
    }
    for (i, c) in categories.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            x_of(i),
            bottom + 18.0,
            escape(c)
        );
    }
    for s in series {
        let c = colour(s.colour);
        let points: Vec<String> = s
            .points
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| format!("{:.1},{:.1}", x_of(i), y_of(v))))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2"{dash}/>"#,
            points.join(" ")
        );
        for p in &points {
            let (x, y) = p.split_once(',').expect("formatted as x,y");
            let _ = writeln!(svg, r#"<circle cx="{x}" cy="{y}" r="3" fill="{c}"/>"#);
        }
    }
    Panel {
        height_px: bottom + BOTTOM_PX,
        body: svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<Option<f64>>) -> Series {
        Series {
            name: "A".into(),
            colour: 0,
            dashed: false,
            points,
        }
    }

    #[test]
    fn one_point_per_measured_category() {
        let cats: Vec<String> = ["1", "4", "16"].iter().map(|s| s.to_string()).collect();
        let p = line_chart(
            "t",
            "ops/s",
            &cats,
            &[series(vec![Some(100.0), None, Some(400.0)])],
            false,
        );
        assert_eq!(p.body.matches("<circle").count(), 2);
        assert_eq!(p.body.matches("<polyline").count(), 1);
        assert!(p.body.contains(">16<"));
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = Axis::new([0.5, 3.0, 42.0].into_iter(), true);
        assert_eq!((a.lo, a.hi), (0.1, 100.0));
        assert_eq!(a.ticks(), vec![0.1, 1.0, 10.0, 100.0]);
        assert!((a.fraction(10.0) - 2.0 / 3.0).abs() < 1e-9);
        let lin = Axis::new([50.0, 11_242.0].into_iter(), false);
        assert_eq!(lin.ticks(), vec![0.0, 3_000.0, 6_000.0, 9_000.0, 12_000.0]);
        assert_eq!(lin.fraction(0.0), 0.0);
        assert!(lin.fraction(11_242.0) < 1.0);
        assert_eq!(nice_step(2_100.0), 2_500.0);
        assert_eq!(nice_step(0.45), 0.5);
    }
}
