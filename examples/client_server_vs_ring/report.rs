//! The measurements as a table, `RESULT` lines, CSV, and the closing
//! paragraph, which is read off the figures (nothing in it is canned but the
//! reasoning).

use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Topology {
    ClientServer,
    Ring,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    Local,
    Nodes,
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Topology::ClientServer => "client-server",
            Topology::Ring => "ring",
        })
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Placement::Local => "local",
            Placement::Nodes => "nodes",
        })
    }
}

/// One measured configuration (the median run of its repetitions).
pub struct Row {
    pub topology: Topology,
    pub placement: Placement,
    pub n: usize,
    pub m: usize,
    /// Messages counted by the processes: 2·N·M or N·M.
    pub messages: u64,
    pub time: Duration,
}

impl Row {
    pub fn us_per_msg(&self) -> f64 {
        self.time.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.time.as_secs_f64().max(1e-9)
    }

    pub fn progress(&self) -> String {
        format!(
            "{:<13} {:<5} N={:<5} M={:<6} {:>9} msgs in {:>9.3} ms: {:>8.3} µs/msg",
            self.topology,
            self.placement,
            self.n,
            self.m,
            self.messages,
            self.time.as_secs_f64() * 1e3,
            self.us_per_msg()
        )
    }
}

/// The table and the `RESULT` lines (with `hogs=H` when busy threads competed for the cores).
pub fn print(rows: &[Row], hogs: usize) {
    println!();
    println!(
        "{:<13} {:<9} {:>6} {:>7} {:>10} {:>10} {:>9} {:>12}",
        "topology", "placement", "N", "M", "messages", "time ms", "µs/msg", "msgs/s"
    );
    for row in rows {
        println!(
            "{:<13} {:<9} {:>6} {:>7} {:>10} {:>10.3} {:>9.3} {:>12.0}",
            row.topology,
            row.placement,
            row.n,
            row.m,
            row.messages,
            row.time.as_secs_f64() * 1e3,
            row.us_per_msg(),
            row.msgs_per_s()
        );
    }
    println!();
    for row in rows {
        let mut fields = vec![
            ("n", row.n.to_string()),
            ("m", row.m.to_string()),
            ("msgs", row.messages.to_string()),
            ("time_ms", crate::common::fmt_num(row.time.as_secs_f64() * 1e3)),
            ("us_per_msg", crate::common::fmt_num(row.us_per_msg())),
            ("msgs_per_s", crate::common::fmt_num(row.msgs_per_s())),
        ];
        if hogs > 0 {
            fields.push(("hogs", hogs.to_string()));
        }
        crate::common::result(&format!("CSR-{}-{}", row.topology, row.placement), &fields);
    }
}

/// The rows as CSV, with a header line.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("topology,placement,n,m,messages,time_s,us_per_msg,msgs_per_s\n");
    for row in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{:.9},{:.6},{:.1}\n",
            row.topology,
            row.placement,
            row.n,
            row.m,
            row.messages,
            row.time.as_secs_f64(),
            row.us_per_msg(),
            row.msgs_per_s()
        ));
    }
    out
}

fn series(rows: &[Row], topology: Topology, placement: Placement) -> Vec<&Row> {
    let mut series: Vec<&Row> = rows.iter().filter(|r| r.topology == topology && r.placement == placement).collect();
    series.sort_by_key(|r| r.n);
    series
}

/// The closing paragraph: where the server saturates, how latency grows
/// round the ring, what crossing the network costs — with this run's numbers.
pub fn conclusions(rows: &[Row]) -> String {
    let mut out = Vec::new();
    for placement in [Placement::Local, Placement::Nodes] {
        let cs = series(rows, Topology::ClientServer, placement);
        if let (Some(first), Some(best)) =
            (cs.first(), cs.iter().max_by(|a, b| a.msgs_per_s().total_cmp(&b.msgs_per_s())))
        {
            // The first N within 10% of the best throughput: where the server is saturated.
            let knee = cs.iter().find(|r| r.msgs_per_s() >= 0.9 * best.msgs_per_s()).unwrap_or(best);
            let last = cs.last().unwrap_or(best);
            let saturation = if knee.n == last.n && cs.len() > 1 {
                format!(
                    "throughput still grows at the largest N measured ({} msgs/s at N={}): within these sizes the \
                     server is not saturated yet, more clients keep more of its time busy",
                    rate(last.msgs_per_s()),
                    last.n
                )
            } else {
                format!(
                    "the one server saturates at about {} msgs/s, reached from N={} on; beyond that, more clients \
                     only queue at the server: it is the bottleneck, every message passes through it",
                    rate(best.msgs_per_s()),
                    knee.n
                )
            };
            out.push(format!(
                "Client-server ({placement}): with N={} clients it moves {} msgs/s ({} µs per message, a round trip \
                 is two); {saturation}.",
                first.n,
                rate(first.msgs_per_s()),
                us(first.us_per_msg()),
            ));
        }
        let ring = series(rows, Topology::Ring, placement);
        if let (Some(small), Some(large)) = (ring.first(), ring.last()) {
            let lo = ring.iter().map(|r| r.us_per_msg()).fold(f64::INFINITY, f64::min);
            let hi = ring.iter().map(|r| r.us_per_msg()).fold(0.0, f64::max);
            out.push(format!(
                "Ring ({placement}): one hop costs {}–{} µs whatever N is, because there is one token and each \
                 message waits for the one before it, so throughput stays flat while the latency of one trip round \
                 the ring grows with N: {} µs for N={} and {} µs for N={}.",
                us(lo),
                us(hi),
                us(small.us_per_msg() * small.n as f64),
                small.n,
                us(large.us_per_msg() * large.n as f64),
                large.n
            ));
        }
    }
    let pair = |topology| {
        let local = series(rows, topology, Placement::Local);
        let nodes = series(rows, topology, Placement::Nodes);
        // The largest N measured both ways; for the ring an even one, where every hop crosses.
        nodes
            .iter()
            .rev()
            .filter(|r| topology != Topology::Ring || r.n % 2 == 0)
            .find_map(|r| local.iter().find(|l| l.n == r.n && l.m == r.m).map(|l| (*l, *r)))
    };
    match (pair(Topology::ClientServer), pair(Topology::Ring)) {
        (None, None) => {}
        (cs, ring) => {
            let mut text = String::from("Crossing the network:");
            if let Some((l, r)) = ring {
                text.push_str(&format!(
                    " a ring hop between nodes costs {} µs against {} µs on one node ({:.0}×, N={}): the hop now \
                     includes encoding, a TCP write and read through two I/O threads, and waking the receiving side;",
                    us(r.us_per_msg()),
                    us(l.us_per_msg()),
                    r.us_per_msg() / l.us_per_msg(),
                    r.n
                ));
            }
            if let Some((l, r)) = cs {
                text.push_str(&format!(
                    " client-server with N={} moves {} msgs/s across nodes against {} on one node — many \
                     clients keep many messages in flight, so the network's latency is overlapped and frames are \
                     batched, which the ring's single token can never do.",
                    r.n,
                    rate(r.msgs_per_s()),
                    rate(l.msgs_per_s())
                ));
            }
            out.push(text);
        }
    }
    out.join("\n\n")
}

/// A rate for prose: 84 k, 5.49 M.
fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.0} k", per_s / 1e3)
    } else {
        format!("{per_s:.0}")
    }
}

/// Microseconds for prose, with three significant digits.
fn us(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}
