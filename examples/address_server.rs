// ANCHOR: all
//! The address server: the client-server exercise, three times over.
//!
//! A server process manages an address database: `insert(name, address)`,
//! `delete(name)`, `lookup(name) -> Option<address>`, `stop()`. A client
//! adds, retrieves and deletes addresses and checks every answer; an
//! interactive front end takes the same requests from the keyboard. The
//! exercise builds it in three steps, and so does this program:
//!
//! 1. **With plain messages** (`--plain`): a request enum and a reply enum
//!    written by hand, a server loop that receives a request and sends the
//!    reply, and a client function that sends and receives. In Erlang:
//!
//!    ```erlang
//!    loop(Db) ->
//!        receive
//!            {From, Ref, {insert, Name, Address}} -> From ! {Ref, ok}, loop(Db#{Name => Address});
//!            {From, Ref, {delete, Name}} -> From ! {Ref, ok}, loop(maps:remove(Name, Db));
//!            {From, Ref, {lookup, Name}} -> From ! {Ref, maps:find(Name, Db)}, loop(Db);
//!            {From, Ref, stop} -> From ! {Ref, ok}
//!        end.
//!
//!    call(Server, Request) ->
//!        Ref = make_ref(),
//!        Server ! {self(), Ref, Request},
//!        receive {Ref, Reply} -> Reply after 5000 -> timeout end.
//!    ```
//!
//!    `plain_server` is `loop/1` (the map is a `HashMap` inside
//!    `Database`), `PlainClient::call` is `call/2`: the reference is a
//!    number from a counter, since Rust has no `make_ref()`, and `timeout`
//!    is `Err(CallError::Timeout)`.
//! 2. **With the generated stubs** (the default): the interface is the
//!    trait `AddressBook`; `#[krarup::service]` writes the request and reply
//!    enums, the server loop (`AddressBookServer::serve`) and the client
//!    (`AddressBookClient`) that steps 1 wrote by hand. The database is the
//!    same `Database`: in step 1 the hand-written loop calls it, here the
//!    generated one does.
//! 3. **With timeouts** (`--timeout-ms N`, and `--slow-ms M` to make the
//!    server take M milliseconds per request): the client gives up on a call
//!    after N milliseconds, and must then decide what to do.
//!
//! # How do timeouts affect the RPC interface?
//!
//! The exercise's question. Without failures, `lookup(name) -> Option<Address>`
//! could pass for a local function. With them it cannot, and the interface
//! changes in four ways:
//!
//! 1. **Every call is fallible.** A call can end without a reply, so every
//!    procedure returns `Result<T, CallError>`, even `insert`, which has
//!    nothing to return. The error says why, as far as the client can know:
//!    `Timeout` (no reply in time: the server may be slow or dead, the
//!    request or the reply lost), `NoProc` (no server), `NoConnection` (its
//!    node became unreachable), `Exited(reason)` (it died during the call),
//!    `Undecodable`. The stubs tell them apart because each call monitors the
//!    server; the hand-written client of step 1 knows only one: no answer
//!    in time.
//! 2. **A timeout does not say whether the call happened.** A timed-out
//!    `insert` may have been done (the server was slow, and its reply came
//!    too late and was dropped) or not (the server died first, or the request
//!    still waits behind others). A client that wants to be sure asks again,
//!    and that is safe only if asking twice is the same as asking once. So
//!    the interface is designed to be **idempotent** and says so with
//!    `#[idempotent]`: `insert` sets an address (it is not "add, and fail if
//!    present"), and deleting a name that is not there is not an error. A
//!    procedure that cannot be idempotent (the increment server's `inc`)
//!    needs **at-most-once** execution instead: every call carries a
//!    **request id**, a retry repeats it, and the server answers a repeated
//!    id from a cache of its recent replies without running the procedure
//!    again. The stubs do this for the retries they make themselves.
//! 3. **The interface grows a policy.** How long to wait (`with_timeout`),
//!    whether and how to retry (`with_retry(Retry)`: only `#[idempotent]`
//!    procedures, only after a lost connection, with exponential back-off),
//!    and what a caller does with each error are now part of the contract.
//!    A timeout is *not* retried by the stubs, because a slow call is not a
//!    lost one: this client's `patiently` retries a timed-out call itself,
//!    waiting twice as long, because it knows the procedure is idempotent.
//! 4. **Replies must be matched to calls.** A reply that comes after its
//!    call timed out must not be taken for the answer to the next call: the
//!    request carries a reference (`Ref`) and the receive matches it. In
//!    step 1 the late reply still stays in the client's mailbox for ever
//!    (nothing matches it; Erlang had the same problem until the process
//!    aliases of OTP 24); the stubs' calls turn it away.
//!
//! What a timeout looks like to the caller (`--timeout-ms 20 --slow-ms 50`):
//!
//! ```text
//! insert alice "12 Rue des Lilas, Paris" -> no reply within 20ms (call timed out): done or not, nobody can tell; insert is idempotent, so ask again, waiting 40ms
//! insert alice "12 Rue des Lilas, Paris" -> no reply within 40ms (call timed out): done or not, nobody can tell; insert is idempotent, so ask again, waiting 80ms
//! insert alice "12 Rue des Lilas, Paris" -> no reply within 80ms (call timed out): done or not, nobody can tell; insert is idempotent, so ask again, waiting 160ms
//! insert alice "12 Rue des Lilas, Paris" -> ok
//! insert bob "3 Abbey Road, London" -> ok
//! ```
//!
//! Each repeated request queues behind the ones the client gave up on, so
//! asking again too soon makes the wait longer: a small picture of why
//! retries need back-off. With `--plain`, the client ends by counting the
//! late replies left in its mailbox.
//!
//! ```text
//! cargo run --release --example address_server -- [--plain] [--timeout-ms N] [--slow-ms M]
//! cargo run --release --example address_server -- --interactive [--plain] [--timeout-ms N] [--slow-ms M]
//! ```
//!
//! The first runs the scripted client against a server in the same runtime,
//! prints each request and its outcome, and exits non-zero on the first
//! unexpected answer or failed call; it ends with
//! `every answer as expected`. The second reads commands from stdin, one a
//! line: `insert NAME ADDRESS` (the address is the rest of the line),
//! `lookup NAME`, `delete NAME`, `stop`, `quit`, `help`.
//!
//! # Distributed
//!
//! The server on one node, the client (scripted or interactive) on another,
//! with the flags of `increment_server`:
//!
//! ```text
//! cargo run --release --example address_server -- server --name b@127.0.0.1:9102 --cookie secret \
//!     [--plain] [--slow-ms M]
//! cargo run --release --example address_server -- client --name a@127.0.0.1:0 \
//!     --server b@127.0.0.1:9102 --cookie secret [--plain] [--timeout-ms N] [--stop] [--interactive]
//! ```
//!
//! The server is registered as `addresses`; both sides must agree on
//! `--plain`. `--stop` ends the script with `stop`, which ends the server
//! program. `both` runs the two nodes in one OS process, on ports the
//! system picks. The client code is the same as the local one: only the way
//! it finds the server differs (`AddressBookClient::named_at(NAME, node)`,
//! or `send_named_at` in the plain version).

mod common;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use krarup::net::{Node, NodeConfig};
use krarup::prelude::*;
use krarup::rpc::Retry;
use serde::{Deserialize, Serialize};

const USAGE: &str = "\
usage: address_server [--plain] [--timeout-ms N] [--slow-ms M] [--interactive]
       address_server server --name NAME@HOST:PORT --cookie SECRET [--plain] [--slow-ms M]
       address_server client --name NAME@HOST:PORT --server NAME@HOST:PORT --cookie SECRET
                             [--plain] [--timeout-ms N] [--stop] [--interactive]
       address_server both [--cookie SECRET] [--plain] [--timeout-ms N] [--slow-ms M]";

/// The commands of the interactive front end.
const HELP: &str = "insert NAME ADDRESS, lookup NAME, delete NAME, stop, quit, help";

/// The name the server is registered under on its node.
const NAME: &str = "addresses";

/// An address: free text.
type Address = String;

// ANCHOR: database
/// The address database: what the server process owns.
struct Database {
    entries: HashMap<String, Address>,
    /// How long each request takes (`--slow-ms`), to make calls time out.
    slowness: Duration,
}

impl Database {
    fn new(slowness: Duration) -> Database {
        Database { entries: HashMap::new(), slowness }
    }

    async fn work(&self) {
        if !self.slowness.is_zero() {
            sleep(self.slowness).await;
        }
    }
}
// ANCHOR_END: database

// ---------------------------------------------------------------- step 1: plain messages

// ANCHOR: plain_protocol
/// What a client asks: `{insert, Name, Address}`, `{delete, Name}`,
/// `{lookup, Name}`, `stop`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Request {
    Insert(String, Address),
    Delete(String),
    Lookup(String),
    Stop,
}

/// What the server answers: `ok`, or what a lookup found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Reply {
    Done,
    Found(Option<Address>),
}
// ANCHOR_END: plain_protocol

// ANCHOR: plain_server
/// `loop(Db)`: receive a request, do it, send the reply tagged with the
/// request's reference.
async fn plain_server(mut db: Database) {
    loop {
        receive! {
            (from, reference, request): (Pid, u64, Request) => {
                let reply = match request {
                    Request::Insert(name, address) => {
                        db.insert(name, address).await;
                        Reply::Done
                    }
                    Request::Delete(name) => {
                        db.delete(name).await;
                        Reply::Done
                    }
                    Request::Lookup(name) => Reply::Found(db.lookup(name).await),
                    Request::Stop => {
                        from.send((reference, Reply::Done));
                        return;
                    }
                };
                from.send((reference, reply));
            },
        }
    }
}
// ANCHOR_END: plain_server

// ANCHOR: plain_client
/// The client side by hand: where the server is, and how long to wait.
#[derive(Clone, Debug)]
struct PlainClient {
    server: Location,
    timeout: Duration,
}

impl PlainClient {
    /// `call(Server, Request)`: send the request with a fresh reference,
    /// receive the reply with that reference, or give up.
    async fn call(&self, request: Request) -> Result<Reply, CallError> {
        static REFERENCES: AtomicU64 = AtomicU64::new(1);
        let reference = REFERENCES.fetch_add(1, Ordering::Relaxed);
        let message = (self_pid(), reference, request);
        match &self.server {
            Location::Pid(pid) => pid.send(message),
            Location::Node(node) => send_named_at(NAME, node, message),
        }
        receive! {
            (r, reply): (u64, Reply) if r == reference => Ok(reply),
            // The only failure it can see: no answer in time.
            after self.timeout => Err(CallError::Timeout),
        }
    }
}
// ANCHOR_END: plain_client

/// Where a client finds the server: a Pid in hand, or the name
/// [`NAME`] on another node.
#[derive(Clone, Debug)]
enum Location {
    Pid(Pid),
    Node(String),
}

// ---------------------------------------------------------------- step 2: generated stubs

// ANCHOR: service
/// The interface definition: the stubs are generated from it.
#[krarup::service]
pub trait AddressBook {
    /// Records `address` for `name`, replacing an earlier one.
    #[idempotent]
    async fn insert(&mut self, name: String, address: Address);
    /// Forgets `name`; nothing happens if it is not there.
    #[idempotent]
    async fn delete(&mut self, name: String);
    /// The address recorded for `name`, if any.
    #[idempotent]
    async fn lookup(&mut self, name: String) -> Option<Address>;
    /// Stops the server, after answering.
    #[stop]
    fn stop(&mut self);
}
// ANCHOR_END: service

// ANCHOR: implementation
/// The implementation the server stub calls (the plain server calls it too).
impl AddressBook for Database {
    async fn insert(&mut self, name: String, address: Address) {
        self.work().await;
        self.entries.insert(name, address);
    }

    async fn delete(&mut self, name: String) {
        self.work().await;
        self.entries.remove(&name);
    }

    async fn lookup(&mut self, name: String) -> Option<Address> {
        self.work().await;
        self.entries.get(&name).cloned()
    }

    fn stop(&mut self) {}
}
// ANCHOR_END: implementation

// ANCHOR: start
/// Spawns the server: the hand-written loop, or the generated one.
fn start(plain: bool, db: Database) -> Pid {
    if plain {
        spawn(plain_server(db))
    } else {
        spawn(AddressBookServer::serve(db))
    }
}

/// A client of the generated stub, retrying idempotent calls after a lost
/// connection.
fn stub_client(server: Location, timeout: Duration) -> AddressBookClient {
    let client = match server {
        Location::Pid(pid) => AddressBookClient::new(pid),
        Location::Node(node) => AddressBookClient::named_at(NAME, node),
    };
    client.with_timeout(timeout).with_retry(Retry::default())
}
// ANCHOR_END: start

// ---------------------------------------------------------------- the client, for either

// ANCHOR: book
/// The server as the scripted client and the front end use it: a request
/// in, its reply out. Implemented by the hand-written client and by the
/// generated one.
trait Book: Clone + Send + Sync + 'static {
    /// Sends `request` and waits for its reply, at most the timeout.
    fn ask(&self, request: Request) -> impl Future<Output = Result<Reply, CallError>> + Send;
    /// The same client with another timeout.
    fn waiting(&self, timeout: Duration) -> Self;
}

impl Book for PlainClient {
    async fn ask(&self, request: Request) -> Result<Reply, CallError> {
        self.call(request).await
    }

    fn waiting(&self, timeout: Duration) -> Self {
        PlainClient { timeout, ..self.clone() }
    }
}

/// With the stubs, each request is one typed call.
impl Book for AddressBookClient {
    async fn ask(&self, request: Request) -> Result<Reply, CallError> {
        Ok(match request {
            Request::Insert(name, address) => {
                self.insert(name, address).await?;
                Reply::Done
            }
            Request::Delete(name) => {
                self.delete(name).await?;
                Reply::Done
            }
            Request::Lookup(name) => Reply::Found(self.lookup(name).await?),
            Request::Stop => {
                self.stop().await?;
                Reply::Done
            }
        })
    }

    fn waiting(&self, timeout: Duration) -> Self {
        self.clone().with_timeout(timeout)
    }
}
// ANCHOR_END: book

// ANCHOR: script
/// The scripted client: each request, and the reply it must get.
fn script() -> Vec<(Request, Reply)> {
    use Reply::{Done, Found};
    use Request::{Delete, Insert, Lookup};
    let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
    let paris = "12 Rue des Lilas, Paris".to_owned();
    let london = "3 Abbey Road, London".to_owned();
    let turin = "7 Via Roma, Turin".to_owned();
    vec![
        (Insert(alice.clone(), paris.clone()), Done),
        (Insert(bob.clone(), london.clone()), Done),
        (Lookup(alice.clone()), Found(Some(paris))),
        (Lookup("carol".to_owned()), Found(None)),
        (Insert(alice.clone(), turin.clone()), Done), // alice moves
        (Lookup(alice.clone()), Found(Some(turin))),
        (Delete(alice.clone()), Done),
        (Lookup(alice.clone()), Found(None)),
        (Delete(alice), Done), // again: nothing to delete, not an error
        (Lookup(bob.clone()), Found(Some(london))),
        (Delete(bob.clone()), Done),
        (Lookup(bob), Found(None)),
    ]
}

/// Runs the script (and `stop`, if asked) against `book`; fails on the
/// first failed call or unexpected reply.
async fn run_script(book: &impl Book, timeout: Duration, stop: bool) -> Result<(), String> {
    let mut timeout = timeout;
    let mut steps = script();
    if stop {
        steps.push((Request::Stop, Reply::Done));
    }
    for (request, expected) in steps {
        let reply = patiently(book, &request, &mut timeout).await?;
        println!("{request} -> {reply}");
        if reply != expected {
            return Err(format!("{request}: expected {expected}, got {reply}"));
        }
    }
    println!("every answer as expected");
    Ok(())
}
// ANCHOR_END: script

// ANCHOR: patiently
/// Asks `request`; after a timeout, asks again waiting twice as long (and
/// keeps that timeout for later requests). Safe because every request but
/// `stop` is idempotent: done twice is done once.
async fn patiently(book: &impl Book, request: &Request, timeout: &mut Duration) -> Result<Reply, String> {
    const ATTEMPTS: u32 = 4;
    for attempt in 1.. {
        match book.waiting(*timeout).ask(request.clone()).await {
            Ok(reply) => return Ok(reply),
            Err(CallError::Timeout) if *request != Request::Stop && attempt < ATTEMPTS => {
                let (verb, again) = (request.verb(), *timeout * 2);
                println!(
                    "{request} -> no reply within {timeout:?} ({}): done or not, nobody can tell; \
                     {verb} is idempotent, so ask again, waiting {again:?}",
                    CallError::Timeout
                );
                *timeout = again;
            }
            Err(e) => return Err(format!("{request}: {e}")),
        }
    }
    unreachable!("the last attempt returns")
}
// ANCHOR_END: patiently

impl Request {
    /// The command's name.
    fn verb(&self) -> &'static str {
        match self {
            Request::Insert(..) => "insert",
            Request::Delete(_) => "delete",
            Request::Lookup(_) => "lookup",
            Request::Stop => "stop",
        }
    }
}

/// A request as the front end's command for it.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Insert(name, address) => write!(f, "insert {name} {address:?}"),
            Request::Delete(name) | Request::Lookup(name) => write!(f, "{} {name}", self.verb()),
            Request::Stop => f.write_str("stop"),
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Done => f.write_str("ok"),
            Reply::Found(Some(address)) => write!(f, "{address:?}"),
            Reply::Found(None) => f.write_str("not found"),
        }
    }
}

// ---------------------------------------------------------------- the interactive front end

// ANCHOR: interactive
/// A line of the front end: a request, or something for the front end itself.
#[derive(Debug, PartialEq)]
enum Command {
    Ask(Request),
    Help,
    Quit,
    Nothing,
}

/// Parses one line; the error says what is wrong and what would be right.
fn parse(line: &str) -> Result<Command, String> {
    let line = line.trim();
    let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let one_name = |usage: &str| match rest.split_whitespace().count() {
        1 => Ok(rest.to_owned()),
        0 => Err(format!("{verb} needs a name: {usage}")),
        _ => Err(format!("a name is one word: {usage}")),
    };
    match verb {
        "" => Ok(Command::Nothing),
        "insert" => match rest.split_once(char::is_whitespace) {
            Some((name, address)) => Ok(Command::Ask(Request::Insert(name.to_owned(), address.trim().to_owned()))),
            None => Err("insert needs a name and an address: insert NAME ADDRESS".to_owned()),
        },
        "lookup" => one_name("lookup NAME").map(|name| Command::Ask(Request::Lookup(name))),
        "delete" => one_name("delete NAME").map(|name| Command::Ask(Request::Delete(name))),
        "stop" | "quit" | "help" if !rest.is_empty() => Err(format!("{verb} takes nothing after it")),
        "stop" => Ok(Command::Ask(Request::Stop)),
        "quit" => Ok(Command::Quit),
        "help" => Ok(Command::Help),
        other => Err(format!("unknown command {other:?}; the commands are: {HELP}")),
    }
}

/// `--interactive`: reads commands from stdin until `quit` or the end of
/// the input; each request is one call, made from a process of `rt`.
fn interactive(rt: &Runtime, book: impl Book) -> Result<(), String> {
    let stdin = std::io::stdin();
    let prompt = || {
        if stdin.is_terminal() {
            print!("> ");
            let _ = std::io::stdout().flush();
        }
    };
    println!("address book; commands: {HELP}");
    prompt();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("cannot read stdin: {e}"))?;
        match parse(&line) {
            Ok(Command::Ask(request)) => {
                let book = book.clone();
                let asked = request.clone();
                match rt.block_on(async move { book.ask(asked).await }) {
                    Ok(Reply::Found(found)) => match found {
                        Some(address) => println!("{}: {address}", request_name(&request)),
                        None => println!("{}: not found", request_name(&request)),
                    },
                    Ok(Reply::Done) if request == Request::Stop => println!("the server stopped"),
                    Ok(Reply::Done) => println!("ok"),
                    Err(e) => eprintln!("error: {request}: {e}"),
                }
            }
            Ok(Command::Help) => println!("commands: {HELP}"),
            Ok(Command::Quit) => return Ok(()),
            Ok(Command::Nothing) => {}
            Err(problem) => eprintln!("error: {problem}"),
        }
        prompt();
    }
    println!("end of input");
    Ok(())
}
// ANCHOR_END: interactive

fn request_name(request: &Request) -> &str {
    match request {
        Request::Insert(name, _) | Request::Delete(name) | Request::Lookup(name) => name,
        Request::Stop => "",
    }
}

// ---------------------------------------------------------------- main and the modes

/// The flags every mode reads.
#[derive(Clone, Copy)]
struct Settings {
    plain: bool,
    timeout: Duration,
    slowness: Duration,
    interactive: bool,
}

// ANCHOR: main
fn main() {
    let flags = common::Flags::parse(USAGE);
    let settings = Settings {
        plain: flags.has("plain"),
        timeout: Duration::from_millis(flags.usize("timeout-ms", 5000) as u64),
        slowness: Duration::from_millis(flags.usize("slow-ms", 0) as u64),
        interactive: flags.has("interactive"),
    };
    let outcome = match flags.positional.first().map(String::as_str) {
        None => local(&settings),
        Some(mode) => distributed(mode, &flags, &settings),
    };
    if let Err(error) = outcome {
        eprintln!("address_server: {error}");
        std::process::exit(1);
    }
}

/// Server and client in one runtime.
fn local(settings: &Settings) -> Result<(), String> {
    let rt = Runtime::new();
    let (plain, slowness) = (settings.plain, settings.slowness);
    let server = rt.block_on(async move { start(plain, Database::new(slowness)) });
    let location = Location::Pid(server);
    if settings.plain {
        client(&rt, PlainClient { server: location, timeout: settings.timeout }, settings, true)?;
    } else {
        client(&rt, stub_client(location, settings.timeout), settings, true)?;
    }
    if settings.interactive {
        return Ok(());
    }
    // The script ended with `stop`: the server must be gone, normally.
    let reason = rt.block_on(async move {
        monitor(server);
        recv_timeout::<Down>(Duration::from_secs(5)).await.map(|down| down.reason)
    });
    match reason {
        Some(ExitReason::Normal | ExitReason::NoProc) => Ok(()),
        other => Err(format!("expected the server to end normally, got {other:?}")),
    }
}
// ANCHOR_END: main

/// The scripted client or the front end, with `book`; `stop` ends the
/// script with `stop`.
fn client(rt: &Runtime, book: impl Book, settings: &Settings, stop: bool) -> Result<(), String> {
    if settings.interactive {
        return interactive(rt, book);
    }
    let (timeout, plain) = (settings.timeout, settings.plain);
    rt.block_on(async move {
        let outcome = run_script(&book, timeout, stop).await;
        if plain {
            count_late_replies();
        }
        outcome
    })
}

/// After the plain client's timeouts: the replies that came too late are
/// still in this process's mailbox, and nothing would ever take them out.
fn count_late_replies() {
    let mut late = 0;
    while try_recv::<(u64, Reply)>().is_some() {
        late += 1;
    }
    if late > 0 {
        println!("{late} late replies were left in the client's mailbox (the stubs' calls leave none)");
    }
}

/// The distributed modes.
fn distributed(mode: &str, flags: &common::Flags, settings: &Settings) -> Result<(), String> {
    let cookie = flags.str("cookie");
    match (mode, cookie) {
        ("server", Some(cookie)) => serve(flags.str("name").unwrap_or("b@127.0.0.1:9102"), cookie, settings, None),
        ("client", Some(cookie)) => {
            let name = flags.str("name").unwrap_or("a@127.0.0.1:0");
            let server = flags.str("server").unwrap_or("b@127.0.0.1:9102");
            client_node(name, server, cookie, settings, flags.has("stop"))
        }
        ("both", cookie) => both(cookie.unwrap_or("secret"), settings),
        ("server" | "client", None) => usage_error("--cookie SECRET is required"),
        (other, _) => usage_error(&format!("unknown mode {other:?}")),
    }
}

fn usage_error(problem: &str) -> ! {
    eprintln!("address_server: {problem}\n{USAGE}");
    std::process::exit(2);
}

// ANCHOR: server_node
/// `server` mode: node `name` with the server registered as [`NAME`];
/// serves until a client stops the server. The node's real name goes to
/// `announce` if given.
fn serve(name: &str, cookie: &str, settings: &Settings, announce: Option<mpsc::Sender<String>>) -> Result<(), String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    let kind = if settings.plain { "plain messages" } else { "generated stubs" };
    println!("node {} serves {NAME} ({kind})", node.name());
    if let Some(announce) = announce {
        let _ = announce.send(node.name().to_owned());
    }
    let (plain, slowness) = (settings.plain, settings.slowness);
    let reason = rt.block_on(async move {
        let server = start(plain, Database::new(slowness));
        register(NAME, server).map_err(|e| format!("cannot register the server as `{NAME}`: {e}"))?;
        monitor(server);
        Ok::<_, String>(recv::<Down>().await.reason)
    })?;
    println!("{NAME} ended: {reason}");
    // Let the connections carry the last frames (the reply to `stop`).
    let deadline = Instant::now() + Duration::from_secs(1);
    while node.stats().pending_bytes > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    node.shutdown();
    match reason {
        ExitReason::Normal => Ok(()),
        reason => Err(format!("the server ended with {reason}")),
    }
}
// ANCHOR_END: server_node

// ANCHOR: client_node
/// `client` mode: node `name` runs the script (or the front end) against
/// the server registered as [`NAME`] on node `server`.
fn client_node(name: &str, server: &str, cookie: &str, settings: &Settings, stop: bool) -> Result<(), String> {
    let rt = Runtime::new();
    let node = Node::start(&rt, NodeConfig::new(name, cookie)).map_err(|e| e.to_string())?;
    node.connect(server).map_err(|e| format!("cannot reach {server}: {e}"))?;
    let location = Location::Node(server.to_owned());
    if settings.plain {
        client(&rt, PlainClient { server: location, timeout: settings.timeout }, settings, stop)
    } else {
        client(&rt, stub_client(location, settings.timeout), settings, stop)
    }
}
// ANCHOR_END: client_node

/// `both` mode: the server node (on a thread of its own) and the client
/// node in this OS process, on ports the system picks; the client stops
/// the server at the end.
fn both(cookie: &str, settings: &Settings) -> Result<(), String> {
    let (announce, name) = mpsc::channel();
    let server_cookie = cookie.to_owned();
    let server_settings = *settings;
    let server = std::thread::spawn(move || serve("b@127.0.0.1:0", &server_cookie, &server_settings, Some(announce)));
    let served = move || server.join().unwrap_or_else(|_| Err("the server node panicked".to_owned()));
    let Ok(name) = name.recv() else {
        return served(); // it failed before it had a name: its error says why
    };
    // If the client fails, the server is not stopped: the program ends here.
    client_node("a@127.0.0.1:0", &name, cookie, settings, !settings.interactive)?;
    if settings.interactive {
        return Ok(()); // the server runs until the program ends
    }
    served()
}
// ANCHOR_END: all
