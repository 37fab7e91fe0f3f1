//! The chart: time per message against N, one line per topology ×
//! placement, as a small hand-written SVG (log scales on both axes; no
//! plotting crate for some lines and circles). All text is escaped, so the
//! file is well-formed XML whatever the data.

use crate::report::{Placement, Row, Topology};

const WIDTH: f64 = 780.0;
const HEIGHT: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 210.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// The lines drawn: (topology, placement, colour, dash pattern).
const LINES: [(Topology, Placement, &str, &str); 4] = [
    (Topology::ClientServer, Placement::Local, "#1f77b4", ""),
    (Topology::ClientServer, Placement::Nodes, "#1f77b4", "6 4"),
    (Topology::Ring, Placement::Local, "#d62728", ""),
    (Topology::Ring, Placement::Nodes, "#d62728", "6 4"),
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A log scale from `[lo, hi]` (data, both > 0) onto `[from, to]` (pixels).
struct LogScale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl LogScale {
    fn at(&self, v: f64) -> f64 {
        let t = (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln());
        self.from + t * (self.to - self.from)
    }
}

/// The SVG document for `rows` (an empty chart with axes if there are none).
pub fn svg(rows: &[Row]) -> String {
    let ns: Vec<f64> = rows.iter().map(|r| r.n as f64).collect();
    let us: Vec<f64> = rows.iter().map(Row::us_per_msg).filter(|v| *v > 0.0).collect();
    let (n_lo, n_hi) = bounds(&ns, 1.0);
    let (mut us_lo, mut us_hi) = bounds(&us, 1.0);
    // Whole decades on the y axis, at least one.
    us_lo = 10f64.powf(us_lo.log10().floor());
    us_hi = 10f64.powf(us_hi.log10().ceil().max(us_lo.log10() + 1.0));
    let (n_lo, n_hi) = if n_hi > n_lo { (n_lo, n_hi) } else { (n_lo / 2.0, n_hi * 2.0) };
    let x = LogScale { lo: n_lo, hi: n_hi, from: LEFT, to: WIDTH - RIGHT };
    let y = LogScale { lo: us_lo, hi: us_hi, from: HEIGHT - BOTTOM, to: TOP };

    let mut out = String::new();
    out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    out.push_str(&format!("<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n"));
    out.push_str(&text(
        WIDTH / 2.0,
        24.0,
        "middle",
        "font-size=\"15\"",
        "Client-server vs ring: time per message against N",
    ));

    // Axes, decade grid lines on y, a tick at every measured N on x.
    let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
    let mut decade = us_lo;
    while decade <= us_hi * 1.0001 {
        let py = y.at(decade);
        out.push_str(&format!("<line x1=\"{x0:.1}\" y1=\"{py:.1}\" x2=\"{x1:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\n"));
        out.push_str(&text(x0 - 6.0, py + 4.0, "end", "", &trim_number(decade)));
        decade *= 10.0;
    }
    let mut ticks = ns.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for n in &ticks {
        let px = x.at(*n);
        out.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{y0:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>\n",
            y0 + 5.0
        ));
        out.push_str(&text(px, y0 + 18.0, "middle", "", &format!("{n}")));
    }
    out.push_str(&format!(
        "<path d=\"M{x0:.1},{y1:.1} L{x0:.1},{y0:.1} L{x1:.1},{y0:.1}\" fill=\"none\" stroke=\"#333\"/>\n"
    ));
    out.push_str(&text(
        (x0 + x1) / 2.0,
        HEIGHT - 18.0,
        "middle",
        "",
        "N (clients, or processes in the ring; log scale)",
    ));
    out.push_str(&format!(
        "<text x=\"18\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {:.1})\">{}</text>\n",
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        escape("µs per message (log scale)")
    ));

    // One polyline per topology × placement, and its legend entry.
    for (i, (topology, placement, colour, dash)) in LINES.iter().enumerate() {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.topology == *topology && r.placement == *placement && r.us_per_msg() > 0.0)
            .map(|r| (x.at(r.n as f64), y.at(r.us_per_msg())))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let dash_attr = if dash.is_empty() { String::new() } else { format!(" stroke-dasharray=\"{dash}\"") };
        if !points.is_empty() {
            let path: Vec<String> = points.iter().map(|(px, py)| format!("{px:.1},{py:.1}")).collect();
            out.push_str(&format!(
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash_attr}/>\n",
                path.join(" ")
            ));
            for (px, py) in &points {
                out.push_str(&format!("<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3\" fill=\"{colour}\"/>\n"));
            }
        }
        let ly = TOP + 10.0 + 22.0 * i as f64;
        let lx = WIDTH - RIGHT + 20.0;
        out.push_str(&format!(
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dash_attr}/>\n",
            lx + 28.0
        ));
        out.push_str(&text(lx + 36.0, ly + 4.0, "start", "", &format!("{topology}, {placement}")));
    }
    out.push_str("</svg>\n");
    out
}

fn text(x: f64, y: f64, anchor: &str, extra: &str, content: &str) -> String {
    format!("<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" {extra}>{}</text>\n", escape(content))
}

/// The smallest and largest of `values`, or `(fallback, fallback)`.
fn bounds(values: &[f64], fallback: f64) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if lo.is_finite() && lo > 0.0 {
        (lo, hi)
    } else {
        (fallback, fallback)
    }
}

/// 0.01, 0.1, 1, 10, ... without trailing zeros.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}
