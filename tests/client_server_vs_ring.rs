//! The main job, `examples/client_server_vs_ring`, run as a program in a
//! small configuration: it succeeds, its table's message counts are 2·N·M
//! (client-server) and N·M (ring) as counted by its processes, and the CSV and
//! SVG it writes are well-formed and hold every measured row.
//!
//! `cargo test` builds the examples before it runs the tests; the example's
//! binary is found next to this test's (`target/<profile>/examples/`).

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SIZES: [(u64, u64); 2] = [(2, 40), (5, 12)];

fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("examples").join(format!("client_server_vs_ring{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it (or run `cargo build --example client_server_vs_ring`)",
        path.display()
    );
    path
}

/// Runs the example with `args`; its output, or a failure after 120 s.
fn run(args: &[&str]) -> String {
    let mut child = Command::new(example())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the example") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("client_server_vs_ring {args:?} did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = reader.join().expect("reader").expect("utf-8 output");
    let mut err = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut err).expect("utf-8 errors");
    assert!(status.success(), "client_server_vs_ring {args:?} failed ({status}):\n{out}\n{err}");
    out
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("krarup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn sizes_flag() -> String {
    SIZES.iter().map(|(n, m)| format!("{n}x{m}")).collect::<Vec<_>>().join(",")
}

fn expected_messages(topology: &str, n: u64, m: u64) -> u64 {
    match topology {
        "client-server" => 2 * n * m,
        "ring" => n * m,
        other => panic!("unknown topology {other:?}"),
    }
}

#[test]
fn table_csv_and_result_lines_count_2nm_and_nm_messages() {
    let out_dir = scratch("csr");
    let out = run(&["--sizes", &sizes_flag(), "--reps", "1", "--timeout-s", "30", "--out", out_dir.to_str().unwrap()]);

    let csv = std::fs::read_to_string(out_dir.join("client_server_vs_ring.csv")).expect("the CSV was written");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("topology,placement,n,m,messages,time_s,us_per_msg,msgs_per_s"));
    let mut seen = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 8, "a CSV row has 8 fields: {line}");
        let (topology, placement) = (fields[0], fields[1]);
        let [n, m, messages]: [u64; 3] = [2, 3, 4].map(|i| fields[i].parse().expect("a count"));
        let [time_s, us_per_msg, per_s]: [f64; 3] = [5, 6, 7].map(|i| fields[i].parse().expect("a number"));
        assert_eq!(messages, expected_messages(topology, n, m), "{line}");
        assert!(time_s > 0.0 && per_s > 0.0, "{line}");
        let implied = time_s * 1e6 / messages as f64;
        assert!((us_per_msg - implied).abs() <= 1e-3 * implied.max(1e-3), "{line}: µs/msg is time/messages");
        seen.push((topology.to_owned(), placement.to_owned(), n, m));

        // The printed table has the same row.
        let printed = out.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.len() == 8 && cells[..5] == [topology, placement, fields[2], fields[3], fields[4]]
        });
        assert!(printed, "the table has no row for {line}:\n{out}");
        let result = format!("RESULT workload=CSR-{topology}-{placement} impl=krarup n={n} m={m} msgs={messages} ");
        assert!(out.contains(&result), "no line starting {result:?}:\n{out}");
    }
    for topology in ["client-server", "ring"] {
        for placement in ["local", "nodes"] {
            for (n, m) in SIZES {
                let row = (topology.to_owned(), placement.to_owned(), n, m);
                assert!(seen.contains(&row), "the CSV has no row {row:?}:\n{csv}");
            }
        }
    }
    assert_eq!(seen.len(), 2 * 2 * SIZES.len(), "one row per topology × placement × size:\n{csv}");
    assert!(out.contains("Crossing the network:"), "the closing paragraph is printed:\n{out}");

    let svg = std::fs::read_to_string(out_dir.join("client_server_vs_ring.svg")).expect("the SVG was written");
    let elements = well_formed(&svg).unwrap_or_else(|e| panic!("the SVG is not well-formed XML: {e}\n{svg}"));
    assert_eq!(elements.first().map(String::as_str), Some("svg"), "the root element is <svg>");
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    let polylines: Vec<&str> = svg.lines().filter(|l| l.starts_with("<polyline")).collect();
    assert_eq!(polylines.len(), 4, "one line per topology × placement");
    for line in polylines {
        let points = line.split("points=\"").nth(1).and_then(|p| p.split('"').next()).expect("points");
        assert_eq!(points.split_whitespace().count(), SIZES.len(), "one point per N: {line}");
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn nodes_in_child_os_processes_give_the_same_counts() {
    let out_dir = scratch("csr-spawn");
    let out = run(&[
        "--sizes",
        "4x10",
        "--reps",
        "1",
        "--nodes-only",
        "--spawn-nodes",
        "2",
        "--timeout-s",
        "30",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.contains("RESULT workload=CSR-client-server-nodes impl=krarup n=4 m=10 msgs=80 "), "{out}");
    assert!(out.contains("RESULT workload=CSR-ring-nodes impl=krarup n=4 m=10 msgs=40 "), "{out}");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Checks that `xml` is well-formed enough for any XML reader: one root,
/// every element closed in order, attribute values quoted, no bare `&` or
/// `<` in text. Returns the element names in document order.
fn well_formed(xml: &str) -> Result<Vec<String>, String> {
    let body = match xml.strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").ok_or("unterminated XML declaration")?.1,
        None => xml,
    };
    let mut names = Vec::new();
    let mut open: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        check_text(&rest[..start])?;
        let end = rest[start..].find('>').ok_or("unterminated tag")? + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let top = open.pop().ok_or(format!("</{name}> closes nothing"))?;
            if top != name.trim() {
                return Err(format!("</{name}> closes <{top}>"));
            }
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().ok_or("empty tag")?.to_owned();
        check_attributes(&tag[name.len()..])?;
        if open.is_empty() {
            roots += 1;
        }
        names.push(name.clone());
        if !self_closing {
            open.push(name);
        }
    }
    check_text(rest)?;
    match (open.last(), roots) {
        (Some(name), _) => Err(format!("<{name}> is never closed")),
        (None, 1) => Ok(names),
        (None, n) => Err(format!("{n} root elements")),
    }
}

fn check_text(text: &str) -> Result<(), String> {
    for (i, _) in text.match_indices('&') {
        let entity = &text[i..text[i..].find(';').map_or(text.len(), |e| i + e + 1)];
        if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].contains(&entity) {
            return Err(format!("bare or unknown entity {entity:?}"));
        }
    }
    Ok(())
}

fn check_attributes(mut attrs: &str) -> Result<(), String> {
    loop {
        attrs = attrs.trim_start();
        if attrs.is_empty() {
            return Ok(());
        }
        let (name, after) = attrs.split_once('=').ok_or(format!("attribute without a value: {attrs:?}"))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("malformed attribute name {name:?}"));
        }
        let after = after.strip_prefix('"').ok_or(format!("unquoted value of {name}"))?;
        let (value, next) = after.split_once('"').ok_or(format!("unterminated value of {name}"))?;
        if value.contains('<') {
            return Err(format!("'<' in the value of {name}"));
        }
        check_text(value)?;
        attrs = next;
    }
}
