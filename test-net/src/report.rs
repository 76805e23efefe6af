//! Results for people: the summary table, `summary.json`, and SVG plots.
//!
//! The plots are written by hand (a line chart is a few dozen SVG
//! elements), so they need no plotting library and open in any browser or
//! image viewer.

use std::fmt::{self, Write as _};
use std::path::Path;

use crate::experiment::{Strategy, Summary, SweepSummary};
use crate::Error;

/// Plot size in pixels.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
/// Room for the axes' labels.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 56.0;
/// One colour per series.
const COLOURS: [&str; 3] = ["#1f77b4", "#d62728", "#2ca02c"];

/// Writes `summary.json` for a run into `dir`, creating it if needed.
pub fn write_summary(dir: &Path, summary: &Summary) -> Result<(), Error> {
    create(dir)?;
    write(&dir.join("summary.json"), &to_json(summary))
}

/// Writes `summary.json`, `messages.svg` (messages and duplicates per query
/// against TTL) and `success.svg` (success rate against TTL) for a sweep
/// into `dir`, creating it if needed.
pub fn write_sweep(dir: &Path, sweep: &SweepSummary) -> Result<(), Error> {
    create(dir)?;
    write(&dir.join("summary.json"), &to_json(sweep))?;
    let ttl: Vec<f64> = sweep.points.iter().map(|p| f64::from(p.ttl)).collect();
    let series = |f: fn(&Strategy) -> f64| -> Vec<(f64, f64)> {
        ttl.iter().copied().zip(sweep.points.iter().map(|p| f(&p.flood))).collect()
    };
    let caption = format!(
        "{} nodes, {} graph of degree {}, replication {}, {} queries per TTL",
        sweep.network.nodes,
        sweep.network.topology,
        sweep.network.degree,
        sweep.network.replication,
        sweep.network.queries
    );
    let messages = line_chart(&Chart {
        title: "Flooding: Query messages per query",
        caption: &caption,
        x_label: "TTL",
        y_label: "messages per query",
        y_max: None,
        series: &[
            ("Query messages sent", series(|s| s.messages_per_query)),
            ("duplicates dropped", series(|s| s.duplicates_per_query)),
        ],
    });
    write(&dir.join("messages.svg"), &messages)?;
    let success = line_chart(&Chart {
        title: "Flooding: success rate",
        caption: &caption,
        x_label: "TTL",
        y_label: "queries that found their file",
        y_max: Some(1.0),
        series: &[("success rate", series(|s| s.success_rate))],
    });
    write(&dir.join("success.svg"), &success)
}

fn create(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Report { path: dir.to_path_buf(), source })
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Report { path: path.to_path_buf(), source })
}

fn to_json(value: &impl serde::Serialize) -> String {
    // Our own structs of numbers and strings always serialize.
    let mut json = serde_json::to_string_pretty(value).unwrap_or_default();
    json.push('\n');
    json
}

/// A line chart: series of (x, y) points over shared axes.
struct Chart<'a> {
    title: &'a str,
    caption: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    /// The top of the y axis; from the data when `None`.
    y_max: Option<f64>,
    series: &'a [(&'a str, Vec<(f64, f64)>)],
}

/// The chart as an SVG document.
fn line_chart(chart: &Chart<'_>) -> String {
    let points = chart.series.iter().flat_map(|(_, s)| s.iter());
    let (mut x_min, mut x_max, mut y_top) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_top = y_top.max(y);
    }
    if !x_min.is_finite() {
        (x_min, x_max) = (0.0, 1.0);
    }
    if x_max <= x_min {
        x_max = x_min + 1.0;
    }
    let y_step = nice_step(chart.y_max.unwrap_or(y_top));
    let y_max = chart.y_max.unwrap_or((y_top / y_step).ceil().max(1.0) * y_step);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
    let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        WIDTH / 2.0,
        escape(chart.title)
    );
    let _ = writeln!(
        svg,
        r##"<text x="{}" y="36" text-anchor="middle" fill="#555">{}</text>"##,
        WIDTH / 2.0,
        escape(chart.caption)
    );
    // Horizontal grid lines with their values.
    let mut y = 0.0;
    while y <= y_max + y_step / 1000.0 {
        let py = sy(y);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            py + 4.0,
            number(y)
        );
        y += y_step;
    }
    // One tick per whole x value (TTLs are whole).
    let mut x = x_min.ceil();
    while x <= x_max {
        let px = sx(x);
        let _ = writeln!(
            svg,
            r#"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="black"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 19.0,
            number(x)
        );
        x += 1.0;
    }
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{:.1} H{:.1}" fill="none" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0,
        escape(chart.x_label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        escape(chart.y_label)
    );
    for (i, (name, points)) in chart.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        let _ =
            writeln!(svg, r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#, path.join(" "));
        for &(x, y) in points {
            let _ = writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#, sx(x), sy(y));
        }
        let ly = TOP + 12.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT + 12.0,
            LEFT + 36.0,
            LEFT + 42.0,
            ly + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// A step of 1, 2 or 5 times a power of ten that cuts `max` into 4 to 10 parts.
fn nice_step(max: f64) -> f64 {
    if max.is_nan() || max <= 0.0 || max.is_infinite() {
        return 1.0;
    }
    let rough = max / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= rough).unwrap_or(10.0 * power)
}

/// A number as short as it can be said.
fn number(value: f64) -> String {
    if value == value.round() && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Milliseconds, or a dash when there are none.
fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"))
}

fn strategy_row(f: &mut fmt::Formatter<'_>, name: &str, s: &Strategy) -> fmt::Result {
    writeln!(
        f,
        "{name:<16} {:>8.3} {:>12.1} {:>12.1} {:>14} {:>12} {:>10.2}",
        s.success_rate,
        s.messages_per_query,
        s.duplicates_per_query,
        ms(s.median_first_hit_ms),
        ms(s.p95_first_hit_ms),
        s.hits_per_query
    )
}

fn strategy_header(f: &mut fmt::Formatter<'_>, first: &str) -> fmt::Result {
    writeln!(
        f,
        "{first:<16} {:>8} {:>12} {:>12} {:>14} {:>12} {:>10}",
        "success", "msgs/query", "dups/query", "first hit p50", "p95", "hits/query"
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.network;
        writeln!(
            f,
            "{} nodes, {} graph of degree {} ({} links, max degree {}), {} files replicated {} ({}), {} queries, seed {}",
            n.nodes,
            n.topology,
            n.degree,
            n.links,
            n.max_degree,
            n.catalog,
            n.replication,
            n.distribution,
            n.queries,
            n.seed
        )?;
        match n.bytes_per_node {
            Some(bytes) => writeln!(
                f,
                "simulated: setup {:.1} s, heap {:.1} KB per node at its peak, {:.1} s of virtual time",
                n.setup_s,
                bytes as f64 / 1024.0,
                self.wall_s
            )?,
            None => {
                let rss = n.rss_mb_per_node.map_or_else(|| "unknown".to_string(), |mb| format!("{mb:.2} MB"));
                writeln!(f, "setup {:.1} s, memory {rss} per node, wall time {:.1} s", n.setup_s, self.wall_s)?;
            }
        }
        writeln!(f)?;
        strategy_header(f, "strategy")?;
        strategy_row(f, &format!("flood TTL {}", self.ttl), &self.flood)?;
        strategy_row(f, "expanding ring", &self.ring)?;
        writeln!(f)?;
        if let Some(ratio) = self.message_saving_ratio {
            writeln!(
                f,
                "message saving: flooding sends {ratio:.2}× the messages of the expanding ring (success {:.3} vs {:.3})",
                self.flood.success_rate, self.ring.success_rate
            )?;
        }
        let unsettled = self.flood.unsettled + self.ring.unsettled;
        if unsettled > 0 {
            writeln!(f, "{unsettled} searches did not go quiet within the limit; their counts are partial")?;
        }
        let (limited, full) =
            (self.flood.rate_limited + self.ring.rate_limited, self.flood.queue_full + self.ring.queue_full);
        if limited + full > 0 {
            writeln!(
                f,
                "dropped during the queries: {limited} Queries as rate-limited, {full} messages from full queues"
            )?;
        }
        if self.churn > 0.0 {
            writeln!(
                f,
                "churn {}: {} departures, {} returns; the item had a holder up for {:.3} of the queries",
                self.churn, self.departures, self.returns, self.available_rate
            )?;
        }
        if let Some(flooder) = &self.flooder {
            writeln!(
                f,
                "flooder {}: {} searches in {:.1} s, {} Queries written, {} ({:.1} %) dropped as rate-limited by its neighbours, {} messages dropped from full queues",
                flooder.node,
                flooder.searches,
                flooder.duration_s,
                flooder.queries_sent,
                flooder.rate_limited,
                100.0 * flooder.rate_limited_share,
                flooder.queue_full
            )?;
            writeln!(
                f,
                "  meanwhile {} honest queries: success {:.3} (without the flooder {:.3}), first hit p50 {}, p95 {}",
                flooder.queries,
                flooder.success_rate,
                flooder.success_rate_without,
                ms(flooder.median_first_hit_ms),
                ms(flooder.p95_first_hit_ms)
            )?;
        }
        if self.fakers == 0 {
            return writeln!(f, "fakes: none served (no faker in this run; --fakes N adds them), nothing downloaded");
        }
        writeln!(
            f,
            "fakes: {} fakers; {} fake results seen after the floods, {} flagged before download",
            self.fakers, self.fakes_seen, self.fakes_flagged
        )?;
        writeln!(
            f,
            "downloads of the best result (verified only): {} attempted, {} verified, {} refused, {} failed; fakes accepted {}",
            self.downloads_attempted,
            self.downloads_verified,
            self.downloads_refused,
            self.downloads_failed,
            self.fakes_accepted
        )
    }
}

impl fmt::Display for SweepSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.network;
        writeln!(
            f,
            "{} nodes, {} graph of degree {} ({} links), {} files replicated {} ({}), {} queries per TTL, seed {}",
            n.nodes, n.topology, n.degree, n.links, n.catalog, n.replication, n.distribution, n.queries, n.seed
        )?;
        writeln!(f, "setup {:.1} s, wall time {:.1} s", n.setup_s, self.wall_s)?;
        writeln!(f)?;
        strategy_header(f, "flooding")?;
        for point in &self.points {
            strategy_row(f, &format!("TTL {}", point.ttl), &point.flood)?;
        }
        for point in
            self.points.iter().filter(|p| p.flood.unsettled > 0 || p.flood.rate_limited + p.flood.queue_full > 0)
        {
            let s = &point.flood;
            writeln!(
                f,
                "TTL {}: {} searches not quiet in time, {} Queries rate-limited, {} messages dropped from full queues",
                point.ttl, s.unsettled, s.rate_limited, s.queue_full
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(1.0), 0.2);
        assert_eq!(nice_step(5480.0), 2000.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn chart_is_an_svg_with_every_point() {
        let svg = line_chart(&Chart {
            title: "a <b>",
            caption: "c",
            x_label: "TTL",
            y_label: "y",
            y_max: None,
            series: &[("s", vec![(1.0, 0.0), (2.0, 10.0), (3.0, 35.0)])],
        });
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("a &lt;b&gt;"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(0.2 + 0.1), "0.3");
    }
}
