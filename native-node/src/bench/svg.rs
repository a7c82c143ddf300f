//! The chart of BENCHMARKS.md, one SVG document made of panels stacked top to bottom
//! ([`document`]); this module draws the bar panels (one group per workload, one bar per
//! system) and holds what every panel shares (colours, legend, escaping). Line panels (a
//! figure against the number of clients) are in [`svg_lines`](super::svg_lines).

use std::fmt::Write;

/// One panel: SVG elements drawn from y = 0, and the height they take.
pub struct Panel {
    pub height_px: f64,
    pub body: String,
}

/// The panels stacked into one standalone SVG document.
pub fn document(panels: &[Panel]) -> String {
    let height: f64 = panels.iter().map(|p| p.height_px).sum::<f64>().max(1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height}" viewBox="0 0 {WIDTH_PX} {height}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let mut y = 0.0;
    for p in panels {
        let _ = writeln!(svg, r#"<g transform="translate(0,{y})">"#);
        svg.push_str(&p.body);
        svg.push_str("</g>\n");
        y += p.height_px;
    }
    svg.push_str("</svg>\n");
    svg
}

/// One group of bars: a workload and each system's value.
pub struct Group {
    pub label: String,
    /// (system, value); systems keep their order and colour across groups.
    pub bars: Vec<(String, f64)>,
}

pub const WIDTH_PX: f64 = 760.0;
pub const LABEL_PX: f64 = 150.0;
const VALUE_PX: f64 = 90.0;
const BAR_PX: f64 = 16.0;
const GAP_PX: f64 = 14.0;
pub const TOP_PX: f64 = 50.0;
const COLOURS: [&str; 4] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];

/// The colour of the `i`-th system (systems keep their order across panels).
pub fn colour(i: usize) -> &'static str {
    COLOURS[i % COLOURS.len()]
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A value with as many digits as it deserves: `25.0k`, `950`, `12.5`, `0.67`.
pub fn human(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The title, and a legend of `(name, colour index, dashed)` entries with the unit at the
/// right, as every panel starts.
pub fn heading(title: &str, unit: &str, legend: &[(String, usize, bool)]) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut x = LABEL_PX;
    for (name, i, dashed) in legend {
        let c = colour(*i);
        if *dashed {
            let _ = writeln!(
                svg,
                r#"<line x1="{x}" y1="36" x2="{}" y2="36" stroke="{c}" stroke-width="2" stroke-dasharray="4 3"/>"#,
                x + 12.0
            );
        } else {
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="30" width="12" height="12" fill="{c}"/>"#
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="40">{}</text>"#,
            x + 16.0,
            escape(name)
        );
        x += 30.0 + 7.0 * name.len() as f64;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="40" text-anchor="end" fill="grey">{}</text>"#,
        WIDTH_PX - 10.0,
        escape(unit)
    );
    svg
}

/// Horizontal grouped bars. `systems` fixes each system's colour (its index).
pub fn bar_chart(title: &str, unit: &str, systems: &[&str], groups: &[Group]) -> Panel {
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|(_, v)| *v))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let plot_px = WIDTH_PX - LABEL_PX - VALUE_PX;
    let group_px = |g: &Group| g.bars.len() as f64 * BAR_PX + GAP_PX;
    let height = TOP_PX + groups.iter().map(group_px).sum::<f64>() + 30.0;
    let present: Vec<(String, usize, bool)> = systems
        .iter()
        .enumerate()
        .filter(|(_, s)| groups.iter().any(|g| g.bars.iter().any(|(b, _)| b == *s)))
        .map(|(i, s)| (s.to_string(), i, false))
        .collect();
    let mut svg = heading(title, unit, &present);
    let mut y = TOP_PX;
    for g in groups {
        let gh = group_px(g) - GAP_PX;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
            LABEL_PX - 8.0,
            y + gh / 2.0,
            escape(&g.label)
        );
        for (s, v) in &g.bars {
            let i = systems.iter().position(|x| x == s).unwrap_or(systems.len());
            let w = (v / max * plot_px).max(1.0);
            let _ = writeln!(
                svg,
                r#"<rect x="{LABEL_PX}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" dominant-baseline="middle">{}</text>"#,
                BAR_PX - 2.0,
                colour(i),
                LABEL_PX + w + 4.0,
                y + BAR_PX / 2.0,
                human(*v)
            );
            y += BAR_PX;
        }
        y += GAP_PX;
    }
    Panel {
        height_px: height,
        body: svg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bar_per_value_scaled_to_the_largest() {
        let groups = vec![
            Group {
                label: "put <64>".into(),
                bars: vec![("A".into(), 100.0), ("B".into(), 50.0)],
            },
            Group {
                label: "get".into(),
                bars: vec![("A".into(), 25_000.0)],
            },
        ];
        let svg = document(&[bar_chart("T & t", "ops/s", &["A", "B"], &groups)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("put &lt;64&gt;") && svg.contains("T &amp; t"));
        // 2 legend squares + 3 bars + background.
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(
            svg.contains(r#"width="520.0""#),
            "the largest bar fills the plot"
        );
        assert!(svg.contains("25.0k"));
    }
}
