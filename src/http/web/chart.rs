//! Usage charts as SVG drawn on the server: no script, no external library.

use std::fmt::Write as _;

use crate::store::usage::SeriesPoint;

const W: f64 = 640.0;
const H: f64 = 140.0;
const PAD_LEFT: f64 = 36.0;
const PAD_BOTTOM: f64 = 18.0;

/// A bar chart of requests (errors overlaid) for `points`, oldest first.
/// `first`/`last` label the time axis. Every value in the SVG is a number or
/// text built here, so it is safe to embed unescaped.
pub fn requests_chart(points: &[SeriesPoint], title: &str, first: &str, last: &str) -> String {
    let max = points.iter().map(|p| p.requests).max().unwrap_or(0).max(1);
    let total: u64 = points.iter().map(|p| p.requests).sum();
    let errors: u64 = points.iter().map(|p| p.errors).sum();
    let n = points.len().max(1) as f64;
    let plot_w = W - PAD_LEFT;
    let plot_h = H - PAD_BOTTOM - 6.0;
    let bar = plot_w / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{title}: {total} requests, {errors} errors\">\
         <title>{title}: {total} requests, {errors} errors</title>\
         <line x1=\"{PAD_LEFT}\" y1=\"{y0}\" x2=\"{W}\" y2=\"{y0}\" class=\"axis\"/>\
         <text x=\"{tx}\" y=\"12\" class=\"tick\" text-anchor=\"end\">{max}</text>\
         <text x=\"{tx}\" y=\"{y0}\" class=\"tick\" text-anchor=\"end\">0</text>",
        y0 = H - PAD_BOTTOM,
        tx = PAD_LEFT - 4.0,
        title = crate::http::web::esc(title),
    );
    for (i, p) in points.iter().enumerate() {
        if p.requests == 0 {
            continue;
        }
        let x = PAD_LEFT + i as f64 * bar;
        let h = plot_h * p.requests as f64 / max as f64;
        let eh = plot_h * p.errors.min(p.requests) as f64 / max as f64;
        let y = H - PAD_BOTTOM - h;
        let w = (bar - 1.0).max(1.0);
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" class=\"req\"><title>{} requests, {} errors at {}</title></rect>",
            p.requests, p.errors, p.at
        );
        if eh > 0.0 {
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{eh:.1}\" class=\"err\"/>",
                H - PAD_BOTTOM - eh
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{PAD_LEFT}\" y=\"{H}\" class=\"tick\">{}</text><text x=\"{W}\" y=\"{H}\" class=\"tick\" text-anchor=\"end\">{}</text></svg>",
        crate::http::web::esc(first),
        crate::http::web::esc(last)
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::Timestamp;

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
        let svg = requests_chart(&points, "Last hour <x>", "a", "b");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("class=\"req\"").count(),
            2,
            "empty buckets draw nothing"
        );
        assert_eq!(svg.matches("class=\"err\"").count(), 1);
        assert!(svg.contains("15 requests, 5 errors"));
        assert!(svg.contains("Last hour &lt;x&gt;"), "text is escaped");
    }
}
