//! Process groups (Erlang/OTP's `pg`): named groups of processes that
//! span every connected node, for group communication.
//!
//! A process [`join`]s a group by name; [`members`] lists the group's
//! members on every node, [`local_members`] those of this node, and
//! [`broadcast`] sends a message to each member. A member that exits is
//! removed from all its groups; when a node goes down (or its scope server
//! exits), all its members disappear from the other nodes' view.
//!
//! ```
//! use krarup_runtime::{pg, recv, self_pid, spawn, Pid, Runtime};
//!
//! let rt = Runtime::new();
//! let heard = rt.block_on(async {
//!     let me = self_pid();
//!     // Two listeners join the room, then tell us they have.
//!     for _ in 0..2 {
//!         spawn(async move {
//!             pg::join("room", self_pid()).await.unwrap();
//!             me.send(self_pid());
//!             let text: String = recv().await;
//!             me.send((self_pid(), text));
//!         });
//!     }
//!     let (_a, _b): (Pid, Pid) = (recv().await, recv().await);
//!     assert_eq!(pg::members("room").len(), 2);
//!     let sent_to = pg::broadcast("room", String::from("hello"));
//!     assert_eq!(sent_to.len(), 2);
//!     let mut heard = Vec::new();
//!     for _ in 0..2 {
//!         let (_who, text): (Pid, String) = recv().await;
//!         heard.push(text);
//!     }
//!     heard
//! });
//! assert_eq!(heard, ["hello", "hello"]);
//! ```
//!
//! # The scope
//!
//! Each runtime has one *scope*: a server process, registered as `"pg"`,
//! that owns the runtime's membership table (see `scope.rs` for its
//! protocol). It is the only writer of the table; [`join`] and [`leave`]
//! ask it and wait for its answer, so once they return the change is
//! visible to every reader on this node. Reads ([`members`],
//! [`local_members`], [`which_groups`]) do not ask the server: they read
//! the table, as Erlang's `get_members` reads an ETS table.
//!
//! The scope is not restarted: if it exits (it is killed; it does not
//! fail by itself), [`join`] and [`leave`] on that runtime return
//! [`PgError::Scope`] from then on, the reads find no members on this
//! node (rather than the members as they were when it died), and other
//! nodes drop its members.
//!
//! The scope starts on first use: the first `pg` call in a process of a
//! runtime starts that runtime's scope. Why lazily: a runtime whose
//! processes never use `pg` pays nothing (no process, no registered name),
//! and a program cannot forget to start it, so every call can assume a
//! scope exists (no "not started" error on every function). Nothing is lost
//! by starting late: a scope, when it starts, discovers the scopes of the
//! nodes already connected. [`start`] starts it eagerly — from outside any
//! process, and so that a node that only reads sees the other nodes' groups
//! as soon as it connects, and to learn whether its name was free.
//!
//! # Across nodes
//!
//! Each node's scope is authoritative for its own processes and
//! replicates their memberships to the scopes of the other nodes: on
//! connection, a scope sends its local memberships to the other node's
//! scope, and then every local join and leave. So a join on node B is seen
//! on node A shortly after `join` returns on B, not at once: the view of
//! other nodes' members is eventually consistent, as in Erlang. Only the
//! node itself can make its processes join or leave ([`PgError::NotLocal`]
//! otherwise).
//!
//! As in Erlang, the view is not transitive: a node sees the members of
//! the nodes it is connected to (krarup does not connect nodes
//! transitively either).
//!
//! Scopes find each other through the runtime's node events
//! ([`dist::monitor_nodes`](crate::dist::monitor_nodes)), which the network
//! layer (`krarup-net`) reports; with no network node, `pg` works within
//! the runtime alone.
//!
//! # Semantics, and where they differ from Erlang's `pg`
//!
//! - **As in Erlang:** a process may join a group several times and is
//!   then listed once per join, and each [`leave`] removes one of its
//!   memberships; a dead member is removed from all its groups (its
//!   monitor fires); a group exists while it has members ([`which_groups`]
//!   lists those); membership of other nodes' processes is eventually
//!   consistent; the groups' order of members is unspecified.
//! - **Broadcast** is not in Erlang's `pg`, where one writes
//!   `[Pid ! Msg || Pid <- pg:get_members(G)]`. [`broadcast`] sends to each
//!   *distinct* member once, even one that joined twice, and returns whom
//!   it sent to. Each member receives messages from one sender in the order
//!   they were sent (the runtime's order between two processes); there is
//!   no order across senders.
//! - **One scope per runtime**, named `"pg"`: Erlang lets a program start
//!   further scopes (`pg:start_link(Scope)`); krarup has only the default
//!   one.
//! - **Group monitors** as in Erlang (`pg:monitor/1`,
//!   `pg:monitor_scope/0`, `pg:demonitor/1`): [`monitor`] and
//!   [`monitor_scope`] return the members as of now, and the watcher then
//!   gets a [`GroupEvent`] for every change, where Erlang sends
//!   `{Ref, join | leave, Group, Pids}`. [`demonitor`] also removes the
//!   monitor's events still in the mailbox (Erlang's leaves them).
//! - **Typed results:** [`join`] and [`leave`] are `async` (they wait for
//!   the scope's answer, like Erlang's `gen_server:call`) and return a
//!   [`PgError`] where Erlang returns `not_joined` or crashes the caller.
//! - **Groups are strings**, where Erlang allows any term.

mod error;
mod scope;
mod table;

use std::fmt;
use std::time::Duration;

pub use self::error::{PgError, StartError};

use serde::{Deserialize, Serialize};

use self::scope::{Answer, Request, Watch, Watching};
use self::table::Members;
use crate::pid::Pid;
use crate::runtime::{Runtime, Shared};
use crate::send::Message;
use crate::sync::global::Arc;

/// How long [`join`] and [`leave`] wait for the scope: it answers at once
/// unless it has exited (which the call notices without waiting), so this
/// only bounds a scope stuck behind a flood of messages.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A runtime's `pg` scope: its server process and its membership table,
/// which this handle reads from any thread.
#[derive(Clone)]
pub struct Scope {
    server: Pid,
    members: Arc<Members>,
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope").field("server", &self.server).finish_non_exhaustive()
    }
}

impl Scope {
    /// The scope server's Pid.
    pub fn pid(&self) -> Pid {
        self.server
    }

    /// As [`members`]: every member of `group`, on every node.
    pub fn members(&self, group: &str) -> Vec<Pid> {
        self.members.members(group)
    }

    /// As [`local_members`]: the members of `group` on this node.
    pub fn local_members(&self, group: &str) -> Vec<Pid> {
        self.members.local_members(group)
    }

    /// As [`which_groups`]: the groups with members, on any node.
    pub fn which_groups(&self) -> Vec<String> {
        self.members.which_groups()
    }

    /// As [`which_local_groups`]: the groups with members on this node.
    pub fn which_local_groups(&self) -> Vec<String> {
        self.members.which_local_groups()
    }
}

/// The scope of runtime `shared`, started if it was not (see the module docs).
fn scope_of(shared: &Arc<Shared>) -> &Scope {
    shared.pg.get_or_init(|| {
        let members = Arc::new(Members::default());
        let serve = scope::serve(members.clone());
        let server = crate::scheduler::worker::with_worker(|w| match w {
            Some(w) if Arc::ptr_eq(&w.shared, shared) => w.spawn(serve),
            _ => shared.spawn_external(serve),
        });
        if let Err(error) = shared.register(scope::NAME, server) {
            tracing::warn!(%error, "krarup pg: the scope cannot take its name; other nodes will not find it");
        }
        Scope { server, members }
    })
}

/// The scope of the calling process's runtime.
fn current(what: &str) -> Scope {
    crate::scheduler::worker::with_current(what, |worker, _, _| scope_of(&worker.shared).clone())
}

/// Starts `runtime`'s scope now, if it has not started yet, and returns it
/// (see the module docs for why this is optional). Works from any thread.
///
/// # Errors
/// [`StartError::NameTaken`] if another process holds the name `"pg"`:
/// the scope serves this node and still finds the other nodes' scopes
/// itself (its own discover messages), but discovery started by another
/// node reaches the process holding the name, not this scope.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{pg, Runtime};
///
/// let rt = Runtime::new();
/// let scope = pg::start(&rt).unwrap();
/// assert_eq!(rt.whereis("pg"), Some(scope.pid()));
/// assert!(scope.which_groups().is_empty());
/// ```
pub fn start(runtime: &Runtime) -> Result<Scope, StartError> {
    let shared = runtime.shared();
    let scope = scope_of(shared).clone();
    match shared.whereis(scope::NAME) {
        Some(holder) if holder != scope.server => Err(StartError::NameTaken { holder }),
        _ => Ok(scope),
    }
}

/// The calling process's runtime's scope (started if need be): a handle
/// that reads the groups from any thread.
///
/// # Panics
/// If called outside a krarup process.
pub fn scope() -> Scope {
    current("pg::scope")
}

/// Process `pid` joins `group` (once more, if it is a member already);
/// returns once the change is visible on this node. Other nodes see it
/// shortly after.
///
/// # Errors
/// [`PgError::NotLocal`] if `pid` is a process of another node;
/// [`PgError::Scope`] if the scope server has exited.
///
/// # Panics
/// If called outside a krarup process.
pub async fn join(group: &str, pid: Pid) -> Result<(), PgError> {
    join_many(group, &[pid]).await
}

/// [`join`] for several processes at once: each joins `group` once, in one
/// change (seen whole, on every node).
///
/// # Errors
/// As [`join`]; if one Pid is not local, none joins.
///
/// # Panics
/// If called outside a krarup process.
pub async fn join_many(group: &str, pids: &[Pid]) -> Result<(), PgError> {
    let scope = current("pg::join");
    ask(scope.server, Request::Join { group: group.to_owned(), pids: pids.to_vec() }).await
}

/// Process `pid` leaves `group` once (a process that joined twice is still
/// a member once); returns once the change is visible on this node.
///
/// # Errors
/// [`PgError::NotJoined`] if `pid` was not a member; [`PgError::NotLocal`]
/// if it is a process of another node; [`PgError::Scope`] if the scope
/// server has exited.
///
/// # Panics
/// If called outside a krarup process.
pub async fn leave(group: &str, pid: Pid) -> Result<(), PgError> {
    leave_many(group, &[pid]).await
}

/// [`leave`] for several processes at once: each that is a member leaves
/// `group` once, in one change.
///
/// # Errors
/// [`PgError::NotJoined`] if none of them was a member; otherwise as
/// [`leave`].
///
/// # Panics
/// If called outside a krarup process.
pub async fn leave_many(group: &str, pids: &[Pid]) -> Result<(), PgError> {
    let scope = current("pg::leave");
    ask(scope.server, Request::Leave { group: group.to_owned(), pids: pids.to_vec() }).await
}

async fn ask(server: Pid, request: Request) -> Result<(), PgError> {
    match crate::call::call_local::<Request, Answer>(server, request, CALL_TIMEOUT).await {
        Ok(answer) => answer,
        Err(error) => Err(PgError::Scope(error)),
    }
}

/// Every member of `group` on every node (Erlang's `pg:get_members/1`):
/// this node's as of now, other nodes' as last replicated. A process that
/// joined twice is listed twice; an unknown group has no members.
///
/// # Panics
/// If called outside a krarup process (use [`Scope::members`] there).
pub fn members(group: &str) -> Vec<Pid> {
    current("pg::members").members(group)
}

/// The members of `group` on this node (Erlang's `pg:get_local_members/1`).
///
/// # Panics
/// If called outside a krarup process (use [`Scope::local_members`] there).
pub fn local_members(group: &str) -> Vec<Pid> {
    current("pg::local_members").local_members(group)
}

/// The groups that have members, on any node, in name order (Erlang's
/// `pg:which_groups/0`).
///
/// # Panics
/// If called outside a krarup process (use [`Scope::which_groups`] there).
pub fn which_groups() -> Vec<String> {
    current("pg::which_groups").which_groups()
}

/// The groups that have members on this node, in name order.
///
/// # Panics
/// If called outside a krarup process (use [`Scope::which_local_groups`] there).
pub fn which_local_groups() -> Vec<String> {
    current("pg::which_local_groups").which_local_groups()
}

/// Sends `msg` to each distinct member of `group`, on every node, once
/// (the calling process too, if it is a member); returns the members it
/// was sent to. Never blocks, like [`send`](crate::send()): a member that has
/// just exited drops its copy.
///
/// # Panics
/// If called outside a krarup process.
pub fn broadcast<M: Message + Clone>(group: &str, msg: M) -> Vec<Pid> {
    let mut to = members(group);
    to.sort_unstable();
    to.dedup();
    if let Some((last, rest)) = to.split_last() {
        for &pid in rest {
            crate::send::send(pid, msg.clone());
        }
        crate::send::send(*last, msg);
    }
    to
}

/// A group monitor: the watcher gets a [`GroupEvent`] carrying it for every
/// change to the watched group (or groups) until [`demonitor`]. Made by
/// [`monitor`] and [`monitor_scope`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupMonitor {
    scope: Pid,
    id: u64,
}

/// Whether a [`GroupEvent`]'s processes joined or left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GroupChange {
    /// They joined the group (once each).
    Joined,
    /// They left it (once each), or exited, or their node or its scope
    /// went away.
    Left,
}

/// What a group monitor's watcher receives: `pids` joined or left `group`
/// (a process listed twice joined or left twice). Events come in the order
/// the scope made the changes, after the members that [`monitor`] returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEvent {
    /// The monitor this event is for.
    pub monitor: GroupMonitor,
    /// The group that changed.
    pub group: String,
    /// Joined or left.
    pub change: GroupChange,
    /// Who joined or left; never empty.
    pub pids: Vec<Pid>,
}

impl GroupEvent {
    /// Applies the event to `members`, a list of the group's members (as
    /// [`monitor`] returned it, with the earlier events applied): adds each
    /// process that joined, removes one membership of each that left. See
    /// [`monitor`] for an example.
    pub fn apply(&self, members: &mut Vec<Pid>) {
        match self.change {
            GroupChange::Joined => members.extend_from_slice(&self.pids),
            GroupChange::Left => {
                table::remove_each(members, &self.pids);
            }
        }
    }
}

/// The calling process watches `group` (Erlang's `pg:monitor/1`): returns
/// the monitor and the group's members as of now, on every node; from then
/// on the process receives a [`GroupEvent`] for each change, so the
/// members plus the events are the group's members at every point (other
/// nodes' members as this node learns of them). Several monitors of one
/// group are independent; each ends with [`demonitor`] or when the
/// watcher exits.
///
/// # Errors
/// [`PgError::Scope`] if the scope server has exited.
///
/// # Panics
/// If called outside a krarup process.
///
/// # Examples
///
/// ```
/// use krarup_runtime::pg::{self, GroupChange, GroupEvent};
/// use krarup_runtime::{recv, self_pid, spawn, Runtime};
///
/// let rt = Runtime::new();
/// rt.block_on(async {
///     let (watch, mut members) = pg::monitor("room").await.unwrap();
///     assert!(members.is_empty());
///     let guest = spawn(async move {
///         pg::join("room", self_pid()).await.unwrap();
///         let () = recv().await; // stays until told
///     });
///     let event: GroupEvent = recv().await;
///     assert_eq!((event.monitor, event.change), (watch, GroupChange::Joined));
///     event.apply(&mut members);
///     assert_eq!(members, [guest]);
///     guest.send(());
///     let event: GroupEvent = recv().await; // it exited
///     assert_eq!((event.change, &event.pids), (GroupChange::Left, &vec![guest]));
///     event.apply(&mut members);
///     assert!(members.is_empty());
///     assert!(pg::demonitor(watch).await.unwrap());
/// });
/// ```
pub async fn monitor(group: &str) -> Result<(GroupMonitor, Vec<Pid>), PgError> {
    let scope = current("pg::monitor");
    let (monitor, mut groups) = start_watch(scope.server, Some(group.to_owned())).await?;
    Ok((monitor, groups.pop().map(|(_, pids)| pids).unwrap_or_default()))
}

/// The calling process watches every group (Erlang's
/// `pg:monitor_scope/0`): as [`monitor`], for all groups at once; returns
/// each group that has members, with its members.
///
/// # Errors
/// [`PgError::Scope`] if the scope server has exited.
///
/// # Panics
/// If called outside a krarup process.
pub async fn monitor_scope() -> Result<(GroupMonitor, Vec<(String, Vec<Pid>)>), PgError> {
    let scope = current("pg::monitor_scope");
    start_watch(scope.server, None).await
}

async fn start_watch(server: Pid, group: Option<String>) -> Result<(GroupMonitor, Vec<(String, Vec<Pid>)>), PgError> {
    let watcher = crate::send::self_pid();
    match crate::call::call_local::<Watch, Watching>(server, Watch::Start { watcher, group }, CALL_TIMEOUT).await {
        Ok(Watching::Started(monitor, groups)) => Ok((monitor, groups)),
        Ok(Watching::Stopped(_)) => unreachable!("the scope answers Start with Started"),
        Err(error) => Err(PgError::Scope(error)),
    }
}

/// Ends a group monitor of the calling process (Erlang's `pg:demonitor/1`)
/// and removes its events that are still in the mailbox: none arrives
/// after this returns. Returns whether the monitor was active (false for
/// one already ended, made by another process, or on another runtime; it
/// is then left as it was).
///
/// # Errors
/// [`PgError::Scope`] if the scope server has exited.
///
/// # Panics
/// If called outside a krarup process.
pub async fn demonitor(monitor: GroupMonitor) -> Result<bool, PgError> {
    let scope = current("pg::demonitor");
    let stop = Watch::Stop { monitor, by: crate::send::self_pid() };
    let active = match crate::call::call_local::<Watch, Watching>(scope.server, stop, CALL_TIMEOUT).await {
        Ok(Watching::Stopped(active)) => active,
        Ok(Watching::Started(..)) => unreachable!("the scope answers Stop with Stopped"),
        Err(error) => return Err(PgError::Scope(error)),
    };
    // The scope sends nothing for it after its answer, which came after
    // every earlier event: what is left is in the mailbox now.
    loop {
        crate::receive! {
            event: GroupEvent if event.monitor == monitor => drop(event),
            after Duration::ZERO => break,
        }
    }
    Ok(active)
}
