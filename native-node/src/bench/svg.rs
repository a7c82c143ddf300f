//! The throughput chart of BENCHMARKS.md: horizontal grouped bars, one group per workload, one
//! bar per system, drawn as a standalone SVG document.

use std::fmt::Write;

/// One group of bars: a workload and each system's value.
pub struct Group {
    pub label: String,
    /// (system, value); systems keep their order and colour across groups.
    pub bars: Vec<(String, f64)>,
}

const WIDTH_PX: f64 = 760.0;
const LABEL_PX: f64 = 150.0;
const VALUE_PX: f64 = 90.0;
const BAR_PX: f64 = 16.0;
const GAP_PX: f64 = 14.0;
const TOP_PX: f64 = 50.0;
const COLOURS: [&str; 4] = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn human(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

pub fn bar_chart(title: &str, unit: &str, groups: &[Group]) -> String {
    let mut systems: Vec<&str> = Vec::new();
    for g in groups {
        for (s, _) in &g.bars {
            if !systems.contains(&s.as_str()) {
                systems.push(s);
            }
        }
    }
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|(_, v)| *v))
        .fold(0.0f64, f64::max)
        .max(1.0);
    let plot_px = WIDTH_PX - LABEL_PX - VALUE_PX;
    let group_px = |g: &Group| g.bars.len() as f64 * BAR_PX + GAP_PX;
    let height = TOP_PX + groups.iter().map(group_px).sum::<f64>() + 30.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height}" viewBox="0 0 {WIDTH_PX} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="20" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let mut x = LABEL_PX;
    for (i, s) in systems.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="30" width="12" height="12" fill="{colour}"/><text x="{}" y="40">{}</text>"#,
            x + 16.0,
            escape(s)
        );
        x += 30.0 + 8.0 * s.len() as f64;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="40" text-anchor="end" fill="grey">{}</text>"#,
        WIDTH_PX - 10.0,
        escape(unit)
    );
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
            let i = systems.iter().position(|x| x == s).unwrap_or(0);
            let w = (v / max * plot_px).max(1.0);
            let _ = writeln!(
                svg,
                r#"<rect x="{LABEL_PX}" y="{y}" width="{w:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}" dominant-baseline="middle">{}</text>"#,
                BAR_PX - 2.0,
                COLOURS[i % COLOURS.len()],
                LABEL_PX + w + 4.0,
                y + BAR_PX / 2.0,
                human(*v)
            );
            y += BAR_PX;
        }
        y += GAP_PX;
    }
    svg.push_str("</svg>\n");
    svg
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
        let svg = bar_chart("T & t", "ops/s", &groups);
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
