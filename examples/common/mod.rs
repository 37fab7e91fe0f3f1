//! Helpers shared by the benchmark examples: `--key value` flags, RSS from
//! `/proc/self/status`, `RESULT` lines in the format of `../shared/anchors`
//! (so `summarize.py` can put them beside Erlang and tokio), and the local
//! increment server of W3a and W3b with its hand-written client and W3b's
//! clients.
#![allow(dead_code)]

pub mod rng;

use std::collections::BTreeMap;
use std::time::Duration;

/// Command-line flags: `--key value` pairs and bare `--switch`es.
pub struct Flags {
    values: BTreeMap<String, String>,
    pub positional: Vec<String>,
}

impl Flags {
    /// Parses `std::env::args()`; exits with a message on malformed input.
    pub fn parse(usage: &str) -> Flags {
        let mut values = BTreeMap::new();
        let mut positional = Vec::new();
        let mut args = std::env::args().skip(1).peekable();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                std::process::exit(0);
            }
            if let Some(key) = arg.strip_prefix("--") {
                if let Some((k, v)) = key.split_once('=') {
                    values.insert(k.to_string(), v.to_string());
                } else if args.peek().is_some_and(|next| !next.starts_with("--")) {
                    values.insert(key.to_string(), args.next().unwrap());
                } else {
                    values.insert(key.to_string(), String::new());
                }
            } else {
                positional.push(arg);
            }
        }
        Flags { values, positional }
    }

    /// A numeric flag with a default; exits with a message if malformed.
    pub fn usize(&self, key: &str, default: usize) -> usize {
        match self.values.get(key) {
            None => default,
            Some(v) => v.replace('_', "").parse().unwrap_or_else(|_| {
                eprintln!("--{key}: expected a number, got {v:?}");
                std::process::exit(2)
            }),
        }
    }

    /// A string flag.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Whether a switch was given.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }
}

fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// Current resident set size in KiB (VmRSS).
pub fn rss_kb() -> u64 {
    status_kb("VmRSS")
}

/// Peak resident set size in KiB (VmHWM).
pub fn peak_rss_kb() -> u64 {
    status_kb("VmHWM")
}

/// Nanoseconds per item.
pub fn ns_per(d: Duration, count: usize) -> f64 {
    d.as_nanos() as f64 / count.max(1) as f64
}

/// Formats a metric like the anchors do (3 decimals below 10, 1 below 1000).
pub fn fmt_num(x: f64) -> String {
    if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// Prints one `RESULT workload=.. impl=krarup k=v ...` line.
pub fn result(workload: &str, fields: &[(&str, String)]) {
    let mut line = format!("RESULT workload={workload} impl=krarup");
    for (k, v) in fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
}

/// The local increment server of W3a and W3b: receives `(From, N)`, sends
/// `N + 1` to `From`.
pub async fn increment_server() {
    use krarup::prelude::*;
    loop {
        let (from, n): (Pid, u64) = recv().await;
        from.send(n + 1);
    }
}

/// The hand-written client of [`increment_server`]: `calls` sequential round
/// trips, each sending the previous reply; the last reply.
pub async fn increment_calls(server: krarup::Pid, calls: usize) -> u64 {
    use krarup::prelude::*;
    let me = self_pid();
    let mut n = 0u64;
    for _ in 0..calls {
        server.send((me, n));
        n = recv::<u64>().await;
    }
    n
}

/// Tells a W3b client to start.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Go;

/// A W3b client's last reply, to main.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ClientDone(pub u64);

/// W3b as the anchors define it: spawns `clients` processes, each waiting
/// for [`Go`] and then running `client()`, which makes `calls` sequential
/// calls and returns the last reply; the time from the first `Go` to the
/// last [`ClientDone`]. Checks that every client's last reply is `calls`.
pub async fn w3b_clients<F>(clients: usize, calls: usize, client: impl Fn() -> F) -> Duration
where
    F: std::future::Future<Output = u64> + Send + 'static,
{
    use krarup::prelude::*;
    let main = self_pid();
    let pids: Vec<Pid> = (0..clients)
        .map(|_| {
            let calls = client();
            spawn(async move {
                let Go = recv::<Go>().await;
                main.send(ClientDone(calls.await));
            })
        })
        .collect();
    let t0 = std::time::Instant::now();
    for pid in &pids {
        pid.send(Go);
    }
    for _ in 0..clients {
        let ClientDone(n) = recv::<ClientDone>().await;
        assert_eq!(n, calls as u64);
    }
    t0.elapsed()
}

/// The second node of a two-process benchmark: this program run again with
/// `args`, which prints `NODE <name>` once its node is up (see
/// [`serve_until_parent_leaves`]). Dropping it closes the child's standard
/// input, which ends it, and waits for it (at most 10 s, then kills it).
pub struct ChildNode {
    child: std::process::Child,
    /// The child's node name, with its real port.
    pub name: String,
}

impl ChildNode {
    /// Starts the child and waits for its node's name.
    pub fn start(args: &[&str]) -> ChildNode {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the second node");
        let stdout = child.stdout.take().expect("child stdout");
        let name = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("NODE ").map(str::to_owned))
            .expect("the second node did not start");
        ChildNode { child, name }
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.wait();
    }
}

/// The child's side of [`ChildNode`]: prints `NODE <name>`, then returns
/// when the parent closes our standard input. A watchdog ends the program
/// after `watchdog` in any case, so a child never outlives a stuck parent.
pub fn serve_until_parent_leaves(name: &str, program: &'static str, watchdog: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(watchdog);
        eprintln!("{program} child: watchdog, exiting");
        std::process::exit(2);
    });
    println!("NODE {name}");
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
}
