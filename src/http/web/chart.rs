//! Usage charts as SVG drawn on the server: no script, no external library.

use askama::Template;

use crate::domain::clock::Timestamp;
use crate::store::usage::SeriesPoint;

const W: f64 = 640.0;
const H: f64 = 140.0;
const PAD_LEFT: f64 = 36.0;
const PAD_BOTTOM: f64 = 18.0;

/// A bar chart of requests with errors overlaid. The template escapes the
/// labels; the page embeds the rendered chart with `|safe`.
#[derive(Template)]
#[template(path = "keys/chart.svg")]
pub struct Chart {
    title: String,
    first: String,
    last: String,
    total: u64,
    errors: u64,
    /// The busiest bucket: the top of the scale.
    max: u64,
    bars: Vec<Bar>,
    width: f64,
    height: f64,
    /// Where the plot starts, right of the scale labels.
    left: f64,
    /// The x axis: every bar stands on it.
    baseline: f64,
}

struct Bar {
    x: f64,
    width: f64,
    height: f64,
    error_height: f64,
    requests: u64,
    errors: u64,
    at: Timestamp,
}

/// The chart of `points`, oldest first; `first`/`last` label the time axis.
/// Empty buckets draw nothing.
pub fn requests_chart(points: &[SeriesPoint], title: &str, first: &str, last: &str) -> Chart {
    let max = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1);
    let plot_h = H - PAD_BOTTOM - 6.0;
    let bar = (W - PAD_LEFT) / points.len().max(1) as f64;
    let scale = |n: u64| plot_h * n as f64 / max as f64;
    let bars = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.requests > 0)
        .map(|(i, p)| Bar {
            x: PAD_LEFT + i as f64 * bar,
            width: (bar - 1.0).max(1.0),
            height: scale(p.requests),
            error_height: scale(p.errors.min(p.requests)),
            requests: p.requests,
            errors: p.errors,
            at: p.at,
        })
        .collect();
    Chart {
        title: title.to_owned(),
        first: first.to_owned(),
        last: last.to_owned(),
        total: points.iter().map(|p| p.requests).sum(),
        errors: points.iter().map(|p| p.errors).sum(),
        max,
        bars,
        width: W,
        height: H,
        left: PAD_LEFT,
        baseline: H - PAD_BOTTOM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_busiest_bucket_and_errors_overlay() {
        let points = vec![
            SeriesPoint {
                at: Timestamp::from_micros(0),
                requests: 10,
                errors: 5,
            },
            SeriesPoint {
                at: Timestamp::from_micros(60_000_000),
                requests: 0,
                errors: 0,
            },
            SeriesPoint {
                at: Timestamp::from_micros(120_000_000),
                requests: 5,
                errors: 0,
            },
        ];
        let svg = requests_chart(&points, "Last hour <x>", "a", "b").to_string();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("class=\"req\"").count(),
            2,
            "empty buckets draw nothing"
        );
        assert_eq!(svg.matches("class=\"err\"").count(), 1);
        assert!(svg.contains("15 requests, 5 errors"));
        assert!(
            svg.contains("Last hour &lt;x&gt;") || svg.contains("Last hour &#60;x&#62;"),
            "text is escaped: {svg}"
        );
    }
}
