//! A TCP proxy in front of a node, so that a test can cut the connections that pass through it
//! while both nodes stay up.
//!
//! Copied from the network node's tests (`net/tests/common/proxy.rs`), unchanged but for this
//! paragraph: integration tests of two crates cannot share a helper module.
//!
//! The node behind the proxy is named after the proxy's address and listens elsewhere
//! ([`NodeConfig::listen`]): whoever dials the node by its name reaches the proxy, which dials
//! the node's [`listen_address`](krarup_net::Node::listen_address) and copies bytes both ways,
//! one thread per direction. [`Proxy::cut`] shuts down, both ways, every connection it holds
//! at that moment, which is what the two nodes see when the network between them drops the
//! connection; the proxy keeps accepting, so the next connection gets through.
//!
//! The proxy forwards whole frames only (the nodes' `L` u32 LE length prefix, then `L`
//! bytes), and a cut waits for a write in progress to end: so each node finds the connection
//! closed between two frames. A node closes a connection that ends in the middle of a frame as
//! bad input (a truncated frame), which a cut is not meant to test.
//!
//! The proxy is up once [`behind_proxy`] or [`Proxy::start`] returns: its socket is bound and
//! listening, and connections wait in the backlog until its thread accepts them.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use krarup_net::NodeConfig;

use super::{Side, COOKIE, TIMEOUT};

/// A node `short@127.0.0.1:P` listening on another port, and the proxy at port P in front of
/// it: every connection made to the node by its name passes through the proxy.
pub fn behind_proxy(short: &str) -> (Side, Proxy) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("the proxy binds a free port");
    let port = listener.local_addr().expect("a bound socket has an address").port();
    let side = Side::with(NodeConfig::new(format!("{short}@127.0.0.1:{port}"), COOKIE).listen("127.0.0.1:0"));
    let proxy = Proxy::start(listener, side.node.listen_address());
    (side, proxy)
}

/// A running proxy; dropping it stops it and cuts what it holds.
#[derive(Debug)]
pub struct Proxy {
    address: SocketAddr,
    links: Arc<Mutex<Links>>,
}

/// What the proxy forwards, shared by its threads.
#[derive(Debug, Default)]
struct Links {
    /// The connections being forwarded.
    live: Vec<Arc<Link>>,
    /// Set when the proxy is dropped: the accepting thread registers no more links and stops.
    stopped: bool,
}

/// One proxied connection: the socket accepted from the client and the one dialed to the
/// upstream, shared by the two copying threads.
#[derive(Debug)]
struct Link {
    client: TcpStream,
    upstream: TcpStream,
    /// One per direction (client to upstream, upstream to client): held while frames are
    /// written that way, `true` once the link is cut (nothing is written after).
    gates: [Mutex<bool>; 2],
}

impl Link {
    /// Waits for the writes in progress to end, then shuts both sockets down both ways.
    /// Returns whether this call cut the link (false: it was cut already).
    fn cut(&self) -> bool {
        let mut gates = self.gates.each_ref().map(lock);
        let was_cut = *gates[0];
        for gate in &mut gates {
            **gate = true;
        }
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.upstream.shutdown(Shutdown::Both);
        !was_cut
    }
}

impl Proxy {
    /// Forwards every connection made to `listener` to `upstream`, from a thread of its own.
    pub fn start(listener: TcpListener, upstream: SocketAddr) -> Proxy {
        let address = listener.local_addr().expect("a bound socket has an address");
        let links = Arc::new(Mutex::new(Links::default()));
        let accepting = links.clone();
        thread::Builder::new()
            .name(format!("proxy {address}"))
            .spawn(move || accept(listener, upstream, &accepting))
            .expect("the proxy's thread starts");
        Proxy { address, links }
    }

    /// The address the proxy listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many connections the proxy forwards now.
    pub fn connections(&self) -> usize {
        lock(&self.links).live.len()
    }

    /// Shuts down, both ways, every connection the proxy forwards now (each between two
    /// frames); returns how many. Connections made afterwards are forwarded as before.
    pub fn cut(&self) -> usize {
        let links = std::mem::take(&mut lock(&self.links).live);
        links.iter().filter(|link| link.cut()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        lock(&self.links).stopped = true;
        self.cut();
        // Wakes the accepting thread (if it is still waiting), which then sees `stopped`.
        let _ = TcpStream::connect_timeout(&self.address, TIMEOUT);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The accepting thread: dials `upstream` for each client and starts the two copying threads.
fn accept(listener: TcpListener, upstream: SocketAddr, links: &Arc<Mutex<Links>>) {
    for client in listener.incoming() {
        if lock(links).stopped {
            return;
        }
        let client = match client {
            Ok(client) => client,
            Err(e) => {
                eprintln!("proxy {:?}: accept failed, no longer proxying: {e}", listener.local_addr());
                return;
            }
        };
        // The client sees the connection closed if the upstream cannot be reached.
        let Ok(upstream) = TcpStream::connect_timeout(&upstream, TIMEOUT) else { continue };
        for socket in [&client, &upstream] {
            let _ = socket.set_nodelay(true);
            // A node that stops reading fails the write (and ends the link) in bounded time.
            let _ = socket.set_write_timeout(Some(TIMEOUT));
        }
        let link = Arc::new(Link { client, upstream, gates: [Mutex::new(false), Mutex::new(false)] });
        {
            // Registered before a byte is forwarded: once a node has connected through the
            // proxy (a handshake has crossed it), `cut` finds the link.
            let mut links = lock(links);
            if links.stopped {
                return;
            }
            links.live.push(link.clone());
        }
        for direction in 0..2 {
            let (ours, links) = (link.clone(), links.clone());
            let copying = thread::Builder::new().name("proxy copy".into()).spawn(move || {
                let (from, to) =
                    if direction == 0 { (&ours.client, &ours.upstream) } else { (&ours.upstream, &ours.client) };
                forward(from, to, &ours.gates[direction]);
                // Either end closing ends both: the nodes never half-close.
                ours.cut();
                lock(&links).live.retain(|other| !Arc::ptr_eq(other, &ours));
            });
            if copying.is_err() {
                link.cut();
            }
        }
    }
}

/// Copies from `from` to `to` until either fails or `gate` says the link is cut, writing only
/// whole frames, each run of them under `gate`.
fn forward(mut from: &TcpStream, mut to: &TcpStream, gate: &Mutex<bool>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        let whole = whole_frames(&pending);
        if whole == 0 {
            continue;
        }
        let cut = lock(gate);
        if *cut || to.write_all(&pending[..whole]).is_err() {
            return;
        }
        drop(cut);
        pending.drain(..whole);
    }
}

/// The length of the longest prefix of `bytes` made of whole frames.
fn whole_frames(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(prefix) = bytes.get(at..at + 4) {
        let len = u32::from_le_bytes(prefix.try_into().expect("four bytes")) as usize;
        if bytes.len() - at - 4 < len {
            break;
        }
        at += 4 + len;
    }
    at
}
