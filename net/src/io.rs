//! The I/O thread: one mio `Poll` per node that accepts, dials, runs handshakes, reads frames
//! into local mailboxes, writes peers' outgoing buffers, sends heartbeats and notices silence.
//!
//! Connections live in a `slab`; a connection's token is its key plus [`FIRST_CONN`]. Sockets are
//! registered once, edge-triggered for reading and writing, and are read and written until
//! `WouldBlock`: many frames per system call both ways.
//!
//! # Invariants
//!
//! - **One connection per pair.** Per peer there is at most one connection `up` and at most one
//!   outgoing attempt `dialing`. When both nodes dial each other at once, the connection dialed
//!   by the node with the smaller name wins, on both sides (the other node's acceptor takes it
//!   and drops its own attempt; this node's acceptor refuses the other, saying why, and the
//!   other node then waits, up to the connect timeout, for this node's attempt instead of
//!   reporting this node unreachable). A verified connection
//!   from a node that is already `up` replaces the old one (the peer evidently lost it, e.g. it
//!   restarted), and the old one is torn down first.
//! - **Loss is reported once, in order.** Tearing down the `up` connection (or the failure of
//!   the attempt when none is up) runs [`Io::peer_down`]: the peer refuses items, its links and
//!   monitors fire with `NoConnection`, node monitors get [`NodeDown`], waiting `connect`s fail,
//!   and only then may a new connection to the peer carry anything.
//! - **Nothing read can panic this thread**: frames are length-checked before they are buffered,
//!   handshake and distribution frames decode into `Result`s, and any error closes only the
//!   connection it came on, with a logged reason.
//! - **Fairness.** One connection's reads stop after [`READ_BUDGET`] bytes per turn; the
//!   connection goes on `unread` and is read again on the next turn of the loop, after the other
//!   connections' events, the commands and the timers (the socket is edge-triggered: no new
//!   event would come for bytes already there). A peer that sends faster than this node can
//!   take its frames cannot starve the thread: its own connection still carries our writes and
//!   heartbeats, and the other connections are served.
//! - **Wake-ups.** The thread polls without sleeping for `spin` after its last piece of work, then
//!   sets `sleeping` and sleeps in `epoll_wait`; a sender wakes it through the `Waker` only if
//!   `sleeping` is set (both `SeqCst`, and the thread re-checks the channel after setting it).
//!   It does not spin while it sees the cores oversubscribed (the runtime's `Contention`).

use std::io::{self, Write};
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use krarup_runtime::__private::Contention;
use krarup_runtime::dist::{Inbound, LocalNode};
use krarup_runtime::Pid;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::config::{ConnectError, NodeConfig};
use crate::frame::{self, FrameReader, HANDSHAKE_MAX};
use crate::handshake::{Cookie, Handshake, HandshakeError, NodeId, Progress};
use crate::outbox::State;
use crate::peer::Peer;
use crate::registry::Registry;
use crate::sync::global::{Arc, AtomicBool, AtomicU64, Ordering};
use crate::{proto, NodeDown};

pub(crate) const WAKER: Token = Token(0);
pub(crate) const LISTENER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Bytes read from one connection before the thread turns to other work (see Fairness).
const READ_BUDGET: usize = 256 << 10;

/// What senders and the node's handle ask of the I/O thread.
pub(crate) enum Command {
    /// Peer `id` has frames in its buffer.
    Flush(usize),
    /// Connect to peer `id` (its state is already `Connecting`).
    Connect(usize),
    /// Connect to peer `id` and report the outcome.
    ConnectWait(usize, Sender<Result<(), ConnectError>>),
    /// Send `NodeDown` to the process when peer `id` is lost (connecting first if need be).
    MonitorNode(usize, Pid),
    /// Close everything and stop.
    Shutdown,
}

/// The way into the I/O thread: its command channel and its waker.
pub(crate) struct Io {
    tx: Sender<Command>,
    waker: Waker,
    sleeping: AtomicBool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io").field("sleeping", &self.sleeping.load(Ordering::Relaxed)).finish()
    }
}

impl Io {
    pub(crate) fn new(waker: Waker) -> (Arc<Io>, Receiver<Command>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Arc::new(Io { tx, waker, sleeping: AtomicBool::new(false) }), rx)
    }

    /// Hands `command` to the I/O thread, waking it if it sleeps.
    pub(crate) fn notify(&self, command: Command) {
        if self.tx.send(command).is_ok() && self.sleeping.load(Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// Counters, shared with the node's handle.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    pub(crate) bad_input: AtomicU64,
}

/// Where a connection is.
enum Phase {
    /// TCP connect in progress (we dialed).
    Dialing,
    /// Handshake in progress.
    Handshake(Box<Handshake>),
    /// Speaking the distribution protocol.
    Up(Inbound),
}

struct Conn {
    socket: TcpStream,
    reader: FrameReader,
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes at `wbuf[wpos..]`'s front that are not counted in the peer's `pending`
    /// (handshake frames).
    uncounted: usize,
    phase: Phase,
    /// The peer this connection is (or is to be) with; None for an incoming one before it is
    /// verified.
    peer: Option<usize>,
    /// When the handshake must be over.
    deadline: Option<Instant>,
    last_read: Instant,
    last_write: Instant,
}

/// Per peer, what only this thread knows.
#[derive(Default)]
struct Link {
    up: Option<usize>,
    dialing: Option<usize>,
    /// Our attempt lost a simultaneous connect: the peer's own connection is on its way, until
    /// this deadline.
    awaiting_theirs: Option<Instant>,
    node_monitors: Vec<Pid>,
    waiters: Vec<Sender<Result<(), ConnectError>>>,
}

/// Why a connection is closed.
struct Close {
    reason: String,
    /// The peer broke the protocol (logged as a warning and counted).
    bad: bool,
    /// Our attempt was refused because the peer's attempt wins a simultaneous connect.
    superseded: bool,
}

/// The reason an acceptor gives when a simultaneous connect is resolved against the attempt it
/// received: the dialing side then waits for the acceptor's own attempt instead of reporting the
/// node unreachable.
const SIMULTANEOUS: &str = "simultaneous connection: the one dialed by the smaller name is kept";

impl Close {
    fn bad(reason: impl ToString) -> Close {
        Close { reason: reason.to_string(), bad: true, superseded: false }
    }

    fn normal(reason: impl ToString) -> Close {
        Close { reason: reason.to_string(), bad: false, superseded: false }
    }
}

/// The I/O thread's state.
pub(crate) struct Reactor {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    /// Connections whose reads stopped at [`READ_BUDGET`] with bytes left to read.
    unread: Vec<usize>,
    links: Vec<Link>,
    rx: Receiver<Command>,
    io: Arc<Io>,
    registry: Arc<Registry>,
    local: LocalNode,
    me: NodeId,
    cookie: Cookie,
    heartbeat: Duration,
    connect_timeout: Duration,
    max_frame: u32,
    spin: Duration,
    /// Write buffers up to this capacity are kept for reuse.
    keep_capacity: usize,
    stats: Arc<Stats>,
}

impl Reactor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        poll: Poll,
        mut listener: TcpListener,
        rx: Receiver<Command>,
        io: Arc<Io>,
        registry: Arc<Registry>,
        local: LocalNode,
        me: NodeId,
        cookie: Cookie,
        config: &NodeConfig,
        stats: Arc<Stats>,
    ) -> io::Result<Reactor> {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Reactor {
            poll,
            listener,
            conns: Slab::new(),
            unread: Vec::new(),
            links: Vec::new(),
            rx,
            io,
            registry,
            local,
            me,
            cookie,
            heartbeat: config.heartbeat,
            connect_timeout: config.connect_timeout,
            max_frame: config.max_frame,
            spin: config.spin,
            keep_capacity: (config.outgoing_limit * 2).max(1 << 20),
            stats,
        })
    }

    /// Runs until the node is shut down or its runtime is.
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let check_every = self.heartbeat / 8;
        let mut next_check = Instant::now() + check_every;
        let mut idle_since = Instant::now();
        let contention = Contention::default();
        loop {
            let now = Instant::now();
            let spinning = now.duration_since(idle_since) < self.spin && contention.may_spin(now);
            let timeout = if spinning || !self.unread.is_empty() {
                Duration::ZERO
            } else {
                self.io.sleeping.store(true, Ordering::SeqCst);
                if self.rx.is_empty() {
                    next_check.saturating_duration_since(now)
                } else {
                    Duration::ZERO
                }
            };
            if spinning {
                // Spinning: give a thread with work (a worker, the peer) the core first. Under
                // CPU contention that costs time slices, and the thread stops spinning a while.
                contention.yield_now();
            }
            let polled = self.poll.poll(&mut events, Some(timeout));
            self.io.sleeping.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "the network node's poller failed; the node stops");
                    return self.shut_down();
                }
            }
            // Connections left with bytes to read last turn; those read now wait for the next.
            let unread = std::mem::take(&mut self.unread);
            let mut busy = false;
            for event in events.iter() {
                busy = true;
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept_all(),
                    Token(t) => self.on_event(
                        t - FIRST_CONN,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                        event.is_writable(),
                    ),
                }
            }
            for key in unread {
                busy = true;
                self.on_event(key, true, false);
            }
            while let Ok(command) = self.rx.try_recv() {
                busy = true;
                if let Command::Shutdown = command {
                    return self.shut_down();
                }
                self.on_command(command);
            }
            let now = Instant::now();
            if busy {
                idle_since = now;
            }
            if now >= next_check {
                next_check = now + check_every;
                self.check_timers(now);
                if self.local.is_shut_down() {
                    return self.shut_down();
                }
            }
        }
    }

    fn link(&mut self, id: usize) -> &mut Link {
        if self.links.len() <= id {
            self.links.resize_with(id + 1, Link::default);
        }
        &mut self.links[id]
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Flush(id) => {
                if let Some(key) = self.links.get(id).and_then(|l| l.up) {
                    self.pump_or_close(key);
                }
            }
            Command::Connect(id) => self.connect(id),
            Command::ConnectWait(id, reply) => {
                if self.link(id).up.is_some() {
                    let _ = reply.send(Ok(()));
                } else {
                    self.link(id).waiters.push(reply);
                    self.connect(id);
                }
            }
            Command::MonitorNode(id, pid) => {
                self.link(id).node_monitors.push(pid);
                if self.link(id).up.is_none() {
                    self.connect(id);
                }
            }
            Command::Shutdown => unreachable!("handled by the loop"),
        }
    }

    /// Starts an attempt to reach peer `id` unless one is up or under way.
    fn connect(&mut self, id: usize) {
        let link = self.link(id);
        if link.up.is_some() || link.dialing.is_some() || link.awaiting_theirs.is_some() {
            return;
        }
        let peer = self.registry.by_id(id);
        if matches!(peer.outbox.start_connecting(), State::Down | State::Closed) {
            return;
        }
        match self.dial(&peer) {
            Ok(key) => self.link(id).dialing = Some(key),
            Err(e) => {
                tracing::info!(peer = %peer.name, error = %e, "cannot connect");
                self.peer_down(id, 0, &format!("cannot connect to {}: {e}", peer.name));
            }
        }
    }

    fn dial(&mut self, peer: &Peer) -> io::Result<usize> {
        let address = peer
            .name
            .address()
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address"))?;
        let socket = TcpStream::connect(address)?;
        let now = Instant::now();
        let conn = Conn {
            socket,
            reader: FrameReader::new(HANDSHAKE_MAX),
            wbuf: Vec::new(),
            wpos: 0,
            uncounted: 0,
            phase: Phase::Dialing,
            peer: Some(peer.id),
            deadline: Some(now + self.connect_timeout),
            last_read: now,
            last_write: now,
        };
        let key = self.conns.insert(conn);
        let conn = &mut self.conns[key];
        if let Err(e) = self.poll.registry().register(
            &mut conn.socket,
            Token(key + FIRST_CONN),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.conns.remove(key);
            return Err(e);
        }
        Ok(key)
    }

    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((socket, from)) => {
                    if let Err(e) = self.admit(socket) {
                        tracing::warn!(%from, error = %e, "cannot take an incoming connection");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors and the like: try again at the next event.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream) -> Result<(), String> {
        socket.set_nodelay(true).map_err(|e| e.to_string())?;
        let handshake = Handshake::accept_incoming(&self.me, &self.cookie).map_err(|e| e.to_string())?;
        let now = Instant::now();
        let key = self.conns.vacant_key();
        self.poll
            .registry()
            .register(&mut socket, Token(key + FIRST_CONN), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        self.conns.insert(Conn {
            socket,
            reader: FrameReader::new(HANDSHAKE_MAX),
            wbuf: Vec::new(),
            wpos: 0,
            uncounted: 0,
            phase: Phase::Handshake(Box::new(handshake)),
            peer: None,
            deadline: Some(now + self.connect_timeout),
            last_read: now,
            last_write: now,
        });
        Ok(())
    }

    fn on_event(&mut self, key: usize, readable: bool, writable: bool) {
        if !self.conns.contains(key) {
            return;
        }
        let result = self.handle(key, readable, writable);
        if let Err(close) = result {
            self.close(key, close);
        }
    }

    fn handle(&mut self, key: usize, readable: bool, writable: bool) -> Result<(), Close> {
        if let Phase::Dialing = self.conns[key].phase {
            if !self.dialed(key)? {
                return Ok(());
            }
        }
        if readable {
            self.read(key)?;
        }
        if (writable || readable) && self.conns.contains(key) {
            self.pump(key)?;
        }
        Ok(())
    }

    /// A dialing socket signalled: connected (handshake started), still connecting, or failed.
    fn dialed(&mut self, key: usize) -> Result<bool, Close> {
        let conn = &mut self.conns[key];
        if let Ok(Some(e)) | Err(e) = conn.socket.take_error() {
            return Err(Close::normal(format!("cannot connect: {e}")));
        }
        match conn.socket.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) => return Err(Close::normal(format!("cannot connect: {e}"))),
        }
        let _ = conn.socket.set_nodelay(true);
        let id = conn.peer.expect("a dialed connection has its peer");
        let dialed = self.registry.by_id(id).name.clone();
        let conn = &mut self.conns[key];
        let handshake = Handshake::initiate(&self.me, &self.cookie, &dialed, &mut conn.wbuf)
            .map_err(|e| Close::normal(format!("handshake: {e}")))?;
        conn.uncounted = conn.wbuf.len() - conn.wpos;
        conn.phase = Phase::Handshake(Box::new(handshake));
        Ok(true)
    }

    /// Reads until `WouldBlock` or [`READ_BUDGET`], applying every complete frame after each read.
    fn read(&mut self, key: usize) -> Result<(), Close> {
        let mut budget = READ_BUDGET;
        loop {
            let conn = &mut self.conns[key];
            match conn.reader.read_from(&mut conn.socket) {
                Ok(0) => {
                    return Err(if conn.reader.at_clean_boundary() {
                        Close::normal("connection closed by the peer")
                    } else {
                        Close::bad("connection closed by the peer in the middle of a frame (truncated frame)")
                    });
                }
                Ok(n) => {
                    conn.last_read = Instant::now();
                    self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    self.frames(key)?;
                    if !self.conns.contains(key) {
                        return Ok(());
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        // More may be waiting: read it on the next turn (see Fairness).
                        self.unread.push(key);
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Close::normal(format!("read failed: {e}"))),
            }
        }
    }

    /// Takes every complete frame out of the connection's reader.
    fn frames(&mut self, key: usize) -> Result<(), Close> {
        enum Step {
            Verified(NodeId),
            Established(NodeId),
        }
        loop {
            let conn = &mut self.conns[key];
            let frame = match conn.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Close::bad(e)),
            };
            let step = match &mut conn.phase {
                Phase::Up(inbound) => {
                    self.stats.frames_in.fetch_add(1, Ordering::Relaxed);
                    proto::apply(inbound, frame).map_err(Close::bad)?;
                    continue;
                }
                Phase::Handshake(handshake) => {
                    let before = conn.wbuf.len();
                    let progress = handshake.on_frame(frame, &mut conn.wbuf);
                    conn.uncounted += conn.wbuf.len() - before;
                    match progress {
                        Ok(Progress::Continue) => continue,
                        Ok(Progress::Verified(peer)) => Step::Verified(peer),
                        Ok(Progress::Established(peer)) => Step::Established(peer),
                        Err(e) => {
                            let _ = self.pump(key);
                            return Err(handshake_failed(e));
                        }
                    }
                }
                Phase::Dialing => return Err(Close::bad("data before the connection was made")),
            };
            match step {
                Step::Verified(peer) => self.verified(key, peer)?,
                Step::Established(peer) => self.established(key, peer)?,
            }
        }
    }

    /// Acceptor: the dialing node proved itself. Decide whether this connection is the pair's.
    fn verified(&mut self, key: usize, peer: NodeId) -> Result<(), Close> {
        let id = self.registry.peer(&peer.name).id;
        self.conns[key].peer = Some(id);
        if let Some(dialing) = self.link(id).dialing {
            if self.me.name < peer.name {
                // Simultaneous connects: the connection this node dialed wins.
                let conn = &mut self.conns[key];
                if let Phase::Handshake(handshake) = &mut conn.phase {
                    let before = conn.wbuf.len();
                    handshake.refuse(SIMULTANEOUS, &mut conn.wbuf);
                    conn.uncounted += conn.wbuf.len() - before;
                }
                conn.peer = None;
                let _ = self.pump(key);
                return Err(Close::normal("simultaneous connection: keeping the one this node dialed"));
            }
            self.link(id).dialing = None;
            self.discard(dialing, "simultaneous connection: keeping the one the peer dialed");
        }
        if let Some(old) = self.link(id).up {
            self.close(
                old,
                Close::normal("replaced by a new connection from the same node (it restarted or lost the old one)"),
            );
        }
        let conn = &mut self.conns[key];
        let Phase::Handshake(handshake) = &mut conn.phase else { unreachable!("verified in a handshake") };
        let before = conn.wbuf.len();
        handshake.accept(&mut conn.wbuf).map_err(handshake_failed)?;
        conn.uncounted += conn.wbuf.len() - before;
        self.up(key, id, peer);
        Ok(())
    }

    /// Initiator: the acceptor accepted.
    fn established(&mut self, key: usize, peer: NodeId) -> Result<(), Close> {
        let id = self.conns[key].peer.expect("a dialed connection has its peer");
        if self.link(id).dialing != Some(key) || self.link(id).up.is_some() {
            return Err(Close::normal("a connection to this node is already up"));
        }
        self.link(id).dialing = None;
        self.up(key, id, peer);
        Ok(())
    }

    /// Connection `key` is the pair's: frames flow.
    fn up(&mut self, key: usize, id: usize, peer: NodeId) {
        let inbound = self.local.inbound(peer.name.as_str(), peer.creation);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Up(inbound);
        conn.reader.set_max(self.max_frame);
        conn.deadline = None;
        self.link(id).up = Some(key);
        self.link(id).awaiting_theirs = None;
        // From here on `nodes()` lists the peer, so a watcher told below finds it there.
        self.registry.by_id(id).outbox.go_up();
        // Now that sends to the peer go out: who watches nodes hears of it (see the runtime's
        // `dist::monitor_nodes`). Before the waiters are answered, so that a `connect` that
        // returns Ok finds the peer in the list `monitor_nodes` returns too.
        self.local.node_up(peer.name.as_str());
        for waiter in self.link(id).waiters.drain(..) {
            let _ = waiter.send(Ok(()));
        }
        tracing::info!(peer = %peer.name, creation = peer.creation, "connected");
    }

    fn pump_or_close(&mut self, key: usize) {
        if let Err(close) = self.pump(key) {
            self.close(key, close);
        }
    }

    /// Writes until `WouldBlock` or until the connection's and its peer's buffers are empty.
    fn pump(&mut self, key: usize) -> Result<(), Close> {
        let conn = &mut self.conns[key];
        let peer = match (&conn.phase, conn.peer) {
            (Phase::Up(_), Some(id)) => Some(self.registry.by_id(id)),
            _ => None,
        };
        let mut wrote = false;
        let result = loop {
            if conn.wpos == conn.wbuf.len() {
                conn.wbuf.clear();
                conn.wpos = 0;
                conn.uncounted = 0;
                if conn.wbuf.capacity() > self.keep_capacity {
                    // A burst left a big buffer: give it back. Below this, buffers are kept
                    // (the two of a pair are swapped back and forth), so a steady stream does
                    // not reallocate and copy its buffer as it grows each time.
                    conn.wbuf = Vec::new();
                }
                let Some(peer) = &peer else { break Ok(()) };
                if !peer.outbox.take_into(&mut conn.wbuf) {
                    break Ok(());
                }
            }
            match conn.socket.write(&conn.wbuf[conn.wpos..]) {
                Ok(0) => break Err(Close::normal("the connection accepts no more bytes")),
                Ok(n) => {
                    wrote = true;
                    conn.wpos += n;
                    let free = n.min(conn.uncounted);
                    conn.uncounted -= free;
                    if let Some(peer) = &peer {
                        peer.outbox.written(n - free);
                    }
                    self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(Close::normal(format!("write failed: {e}"))),
            }
        };
        if wrote {
            conn.last_write = Instant::now();
        }
        result
    }

    /// Closes an attempt that lost to another connection: no loss to report.
    fn discard(&mut self, key: usize, reason: &str) {
        if let Some(mut conn) = self.conns.try_remove(key) {
            tracing::debug!(reason, "connection dropped");
            let _ = self.poll.registry().deregister(&mut conn.socket);
        }
    }

    /// Closes connection `key`; if it was its peer's connection (or its peer's only attempt),
    /// the peer is lost.
    fn close(&mut self, key: usize, close: Close) {
        let Some(mut conn) = self.conns.try_remove(key) else { return };
        let _ = self.poll.registry().deregister(&mut conn.socket);
        self.stats.connections_closed.fetch_add(1, Ordering::Relaxed);
        let peer_name = conn.peer.map(|id| self.registry.by_id(id).name.to_string());
        if close.bad {
            self.stats.bad_input.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = ?peer_name, reason = %close.reason, "connection closed: bad input");
        } else {
            tracing::info!(peer = ?peer_name, reason = %close.reason, "connection closed");
        }
        let Some(id) = conn.peer else { return };
        let wait_for_theirs = Instant::now() + self.connect_timeout;
        let link = self.link(id);
        if link.up == Some(key) {
            link.up = None;
            let unsent = (conn.wbuf.len() - conn.wpos).saturating_sub(conn.uncounted);
            self.peer_down(id, unsent, &close.reason);
        } else if link.dialing == Some(key) {
            link.dialing = None;
            if close.superseded && link.up.is_none() {
                // The peer's own attempt is (or will be) in our accept queue: wait for it.
                link.awaiting_theirs = Some(wait_for_theirs);
            } else if link.up.is_none() {
                self.peer_down(id, 0, &close.reason);
            }
        }
    }

    /// Peer `id` is unreachable: see the module's invariants.
    fn peer_down(&mut self, id: usize, unsent: usize, reason: &str) {
        let peer = self.registry.by_id(id);
        let lost = peer.go_down(unsent, State::Down);
        self.local.lost(lost);
        // Idle again as soon as the scan has collected what fires, before anything fires: who
        // hears of the loss (a Down, an Exit, NodeDown, a failed connect) and sends at once
        // connects again, rather than having the message refused. The connection itself is
        // made only after this function, on this thread.
        self.local.node_down_then(peer.name.as_str(), || peer.outbox.go_idle());
        let link = self.link(id);
        let monitors = std::mem::take(&mut link.node_monitors);
        let waiters = std::mem::take(&mut link.waiters);
        for pid in monitors {
            krarup_runtime::send(pid, NodeDown { node: peer.name.to_string() });
        }
        for waiter in waiters {
            let _ = waiter.send(Err(ConnectError::Failed(reason.to_owned())));
        }
    }

    /// Heartbeats and handshake deadlines.
    fn check_timers(&mut self, now: Instant) {
        let silent = self.heartbeat * 3 / 4;
        let tick = self.heartbeat / 4;
        let mut expired = Vec::new();
        let mut quiet = Vec::new();
        let mut idle = Vec::new();
        for (key, conn) in &self.conns {
            if conn.deadline.is_some_and(|d| now >= d) {
                expired.push((key, Close::normal("connect and handshake timed out")));
            } else if let (Phase::Up(_), Some(id)) = (&conn.phase, conn.peer) {
                if now.duration_since(conn.last_read) > silent {
                    quiet.push(key);
                } else if now.duration_since(conn.last_write) >= tick {
                    idle.push((key, id));
                }
            }
        }
        for (key, close) in expired {
            self.close(key, close);
        }
        for key in quiet {
            if !self.conns.contains(key) {
                continue;
            }
            // This thread may itself have stalled since its last poll, with the peer's ticks
            // waiting unread in the socket: read before calling the peer silent.
            if let Err(close) = self.read(key) {
                self.close(key, close);
                continue;
            }
            let Some(conn) = self.conns.get(key) else { continue };
            let for_how_long = Instant::now().duration_since(conn.last_read);
            if for_how_long > silent {
                self.close(key, Close::normal(format!("heartbeat: nothing from the peer for {for_how_long:?}")));
            }
        }
        let given_up: Vec<usize> = (0..self.links.len())
            .filter(|&id| {
                let link = &self.links[id];
                link.awaiting_theirs.is_some_and(|d| now >= d) && link.up.is_none() && link.dialing.is_none()
            })
            .collect();
        for id in given_up {
            self.links[id].awaiting_theirs = None;
            self.peer_down(id, 0, "the peer refused our connection for its own, which never came");
        }
        for (key, id) in idle {
            let peer = self.registry.by_id(id);
            peer.push_tick();
            self.pump_or_close(key);
        }
    }

    /// Stops: every connection closed, every peer refused for good, links and monitors across
    /// them fired.
    fn shut_down(mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(key, _)| key).collect();
        // What is queued goes out if the sockets take it now (best effort: no waiting).
        for &key in &keys {
            if let Phase::Up(_) = self.conns[key].phase {
                let _ = self.pump(key);
            }
        }
        for key in keys {
            if let Some(mut conn) = self.conns.try_remove(key) {
                let _ = self.poll.registry().deregister(&mut conn.socket);
            }
        }
        for peer in self.registry.all() {
            let lost = peer.go_down(0, State::Closed);
            self.local.lost(lost);
            if !self.local.is_shut_down() {
                self.local.node_down(peer.name.as_str());
            }
            if let Some(link) = self.links.get_mut(peer.id) {
                for pid in link.node_monitors.drain(..) {
                    krarup_runtime::send(pid, NodeDown { node: peer.name.to_string() });
                }
                for waiter in link.waiters.drain(..) {
                    let _ = waiter.send(Err(ConnectError::ShutDown));
                }
            }
        }
        for cmd in self.rx.try_iter() {
            if let Command::ConnectWait(_, reply) = cmd {
                let _ = reply.send(Err(ConnectError::ShutDown));
            }
        }
        tracing::debug!(node = %self.me.name, "network node stopped");
    }
}

fn handshake_failed(e: HandshakeError) -> Close {
    let superseded = matches!(&e, HandshakeError::Refused { reason, .. } if reason == SIMULTANEOUS);
    let bad = !matches!(e, HandshakeError::Randomness(_)) && !superseded;
    Close { reason: format!("handshake failed: {e}"), bad, superseded }
}

/// A TICK frame, for peers to append.
pub(crate) fn tick_frame(buf: &mut Vec<u8>) {
    let _ = frame::push(buf, proto::TICK, &[], HANDSHAKE_MAX);
}
