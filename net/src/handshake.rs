//! The handshake: two nodes agree on the protocol version, learn each other's name and
//! incarnation, and prove to each other that they hold the same secret (the *cookie*) without
//! sending it.
//!
//! This is a sans-IO state machine: it reads [`Frame`]s and appends complete frames to an output
//! buffer; the connection owns the socket, the [`FrameReader`](crate::frame::FrameReader) (limited
//! to [`HANDSHAKE_MAX`] until the handshake is done) and the time limit for the whole exchange.
//!
//! # Protocol
//!
//! The node that dials is the *initiator* (A), the node that accepts is the *acceptor* (B).
//! Message bodies are postcard-encoded; the frame kinds are [`HELLO`] to [`REFUSE`].
//!
//! 1. A → B `HELLO { version, name, creation, challenge_a }`, `challenge_a` being 32 bytes from the
//!    operating system's random source.
//! 2. B checks the version (else `REFUSE`, [`HandshakeError::VersionMismatch`]) and the name (else
//!    `REFUSE`, [`HandshakeError::BadName`]), then B → A `CHALLENGE { version, name, creation,
//!    challenge_b, proof_b }`.
//! 3. A checks the version, that B's name is the name it dialed ([`HandshakeError::WrongName`]),
//!    and `proof_b` ([`HandshakeError::WrongCookie`]), refusing on any failure; then A → B
//!    `PROOF { proof_a }`.
//! 4. B checks `proof_a` (else `REFUSE`, [`HandshakeError::WrongCookie`]) and reports
//!    [`Progress::Verified`]. B does not answer by itself: its caller decides (one connection per
//!    pair of nodes: a duplicate is refused) and calls [`Handshake::accept`], which sends
//!    `ACCEPT`, or [`Handshake::refuse`], which sends `REFUSE { reason }`.
//! 5. On `ACCEPT`, A reports [`Progress::Established`]; on `REFUSE`, [`HandshakeError::Refused`].
//!
//! After `ACCEPT` both sides speak the distribution protocol. B may send distribution frames right
//! behind `ACCEPT`; A must not send any before it has received `ACCEPT`. A's reader may therefore
//! already hold distribution frames behind `ACCEPT`: raise its maximum
//! ([`FrameReader::set_max`](crate::frame::FrameReader::set_max)) before taking the next frame.
//!
//! # Proofs
//!
//! `proof = HMAC-SHA256(cookie, label ‖ transcript)`, where the label is `"krarup/1 acceptor"` for
//! `proof_b` and `"krarup/1 initiator"` for `proof_a` (so that neither proof can be replayed as the
//! other), and the transcript is the version, both challenges, the initiator's name and creation,
//! and the acceptor's name and creation, every variable-length field prefixed by its length (so
//! that no two different transcripts hash the same bytes). Each side's challenge is fresh, so a
//! recorded proof is useless in another handshake. Proofs are checked in constant time.
//!
//! # Invariants
//!
//! - The cookie never leaves this module: not on the wire, not in an error, not in `Debug`.
//! - Nothing a peer sends can panic the machine. Every failure is an `Err`, after which the machine
//!   is [failed](HandshakeError::Unexpected) for good and the connection is to be closed; when it
//!   helps the peer (and the peer has not itself refused), a `REFUSE` saying why is written first.
//! - Text a peer sends (its reason for refusing, a bad name) is limited in length and shown escaped.
//! - `version` is the first field of `HELLO` and `CHALLENGE`, and `REFUSE { reason }` keeps its
//!   kind and encoding, in every protocol version: a mismatch is reported as one, by both sides.
//!
//! The handshake authenticates the peers; it does not encrypt, nor protect the frames after it.
#![allow(dead_code)] // TODO(integration): remove once the connection drives the handshake.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::frame::{self, Frame, HANDSHAKE_MAX};
use crate::name::{truncate_for_display, NameError, NodeName};

/// The protocol version this build speaks; both nodes must speak the same.
/// Bumped whenever a frame kind is added or a frame's encoding changes, so
/// that two builds that would not understand each other say so at the
/// handshake, not at the first frame one of them cannot read. History:
/// 1, the first; 2, frame kind 25 (`MONITOR_NAMED`, a monitor of a name on
/// another node).
pub(crate) const PROTOCOL_VERSION: u32 = 2;

/// Frame kind: initiator → acceptor, opens the handshake.
pub(crate) const HELLO: u8 = 1;
/// Frame kind: acceptor → initiator, its identity, its challenge and its proof.
pub(crate) const CHALLENGE: u8 = 2;
/// Frame kind: initiator → acceptor, its proof.
pub(crate) const PROOF: u8 = 3;
/// Frame kind: acceptor → initiator, the connection is established.
pub(crate) const ACCEPT: u8 = 4;
/// Frame kind: either way, the connection is refused, with a reason.
pub(crate) const REFUSE: u8 = 5;

/// The longest refusal reason sent or shown, in characters.
pub(crate) const MAX_REASON_CHARS: usize = 256;

/// What a node says when the peer's proof does not check out.
const WRONG_COOKIE: &str = "wrong cookie (both nodes must be started with the same cookie)";

const ACCEPTOR_LABEL: &[u8] = b"krarup/1 acceptor";
const INITIATOR_LABEL: &[u8] = b"krarup/1 initiator";

type HmacSha256 = Hmac<Sha256>;
type Challenge = [u8; 32];
type ProofBytes = [u8; 32];

/// The shared secret that nodes of one cluster prove to each other that they hold.
///
/// Only the HMAC key state derived from the secret is kept. `Debug` prints `Cookie(..)`.
#[derive(Clone)]
pub(crate) struct Cookie {
    mac: HmacSha256,
}

impl Cookie {
    /// A cookie from secret bytes. Use a long random secret (16 bytes or more), the same on every
    /// node that is to talk to this one.
    ///
    /// # Errors
    ///
    /// [`CookieError::Empty`] for an empty secret, which would authenticate nothing.
    pub(crate) fn new(secret: impl Into<Vec<u8>>) -> Result<Cookie, CookieError> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(CookieError::Empty);
        }
        // HMAC takes keys of any length, so this cannot fail; map it anyway rather than unwrap.
        let mac = HmacSha256::new_from_slice(&secret).map_err(|_| CookieError::Empty)?;
        Ok(Cookie { mac })
    }
}

impl fmt::Debug for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cookie(..)")
    }
}

/// Why a cookie (the shared secret of [`NodeConfig::new`](crate::NodeConfig::new)) could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CookieError {
    /// The secret is empty.
    Empty,
}

impl fmt::Display for CookieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieError::Empty => f.write_str("the cookie is empty: give every node the same non-empty secret"),
        }
    }
}

impl Error for CookieError {}

/// One incarnation of a node: its name and its creation number, which changes every time the node
/// starts, so that Pids of a previous run are recognised as dead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeId {
    /// The node's name.
    pub(crate) name: NodeName,
    /// The incarnation number.
    pub(crate) creation: u32,
}

/// What a step of the handshake achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Nothing to report: wait for the next frame.
    Continue,
    /// Acceptor only: the peer proved it holds the cookie. Decide, then call
    /// [`Handshake::accept`] or [`Handshake::refuse`].
    Verified(NodeId),
    /// Initiator only: the acceptor accepted; speak the distribution protocol from now on.
    Established(NodeId),
}

/// `HELLO` and `CHALLENGE` on the wire: the version first, then the message.
#[derive(Serialize)]
struct Versioned<T> {
    version: u32,
    msg: T,
}

#[derive(Serialize, Deserialize)]
struct HelloMsg<'a> {
    name: &'a str,
    creation: u32,
    challenge: Challenge,
}

#[derive(Serialize, Deserialize)]
struct ChallengeMsg<'a> {
    name: &'a str,
    creation: u32,
    challenge: Challenge,
    proof: ProofBytes,
}

#[derive(Serialize, Deserialize)]
struct ProofMsg {
    proof: ProofBytes,
}

#[derive(Serialize, Deserialize)]
struct RefuseMsg<'a> {
    reason: &'a str,
}

/// Where the handshake is.
enum State {
    /// Initiator: `HELLO` sent.
    AwaitChallenge { dialed: NodeName, challenge_a: Challenge },
    /// Initiator: `PROOF` sent.
    AwaitAccept { peer: NodeId },
    /// Acceptor: nothing received yet.
    AwaitHello { challenge_b: Challenge },
    /// Acceptor: `CHALLENGE` sent.
    AwaitProof { peer: NodeId, challenge_a: Challenge, challenge_b: Challenge },
    /// Acceptor: the peer is authenticated; the caller decides.
    Verified { peer: NodeId },
    /// Done: the distribution protocol takes over.
    Established { peer: NodeId },
    /// Refused or failed; the connection is to be closed.
    Failed,
}

impl State {
    fn describe(&self) -> &'static str {
        match self {
            State::AwaitChallenge { .. } => "waiting for CHALLENGE",
            State::AwaitAccept { .. } => "waiting for ACCEPT",
            State::AwaitHello { .. } => "waiting for HELLO",
            State::AwaitProof { .. } => "waiting for PROOF",
            State::Verified { .. } => "verified, waiting for accept or refuse",
            State::Established { .. } => "established",
            State::Failed => "failed",
        }
    }

    /// Whether the handshake is still going (a `REFUSE` may be sent).
    fn is_active(&self) -> bool {
        !matches!(self, State::Established { .. } | State::Failed)
    }
}

/// One side of one handshake (see the [module docs](self) for the protocol).
pub(crate) struct Handshake {
    me: NodeId,
    cookie: Cookie,
    state: State,
}

impl Handshake {
    /// Starts a handshake as the initiator: appends `HELLO` to `out`.
    ///
    /// `dialed` is the name of the node this one connected to; the acceptor must turn out to have
    /// exactly that name.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::SelfConnection`] if `dialed` is this node's own name;
    /// [`HandshakeError::Randomness`] if the operating system gives no random bytes.
    pub(crate) fn initiate(
        me: &NodeId,
        cookie: &Cookie,
        dialed: &NodeName,
        out: &mut Vec<u8>,
    ) -> Result<Handshake, HandshakeError> {
        if *dialed == me.name {
            return Err(HandshakeError::SelfConnection { name: dialed.clone() });
        }
        Handshake::initiate_with(me, cookie, dialed, random_challenge()?, out)
    }

    /// [`initiate`](Handshake::initiate) with a given challenge (tests make it deterministic).
    fn initiate_with(
        me: &NodeId,
        cookie: &Cookie,
        dialed: &NodeName,
        challenge_a: Challenge,
        out: &mut Vec<u8>,
    ) -> Result<Handshake, HandshakeError> {
        let hello = HelloMsg { name: me.name.as_str(), creation: me.creation, challenge: challenge_a };
        write(out, HELLO, &Versioned { version: PROTOCOL_VERSION, msg: hello })?;
        let state = State::AwaitChallenge { dialed: dialed.clone(), challenge_a };
        Ok(Handshake { me: me.clone(), cookie: cookie.clone(), state })
    }

    /// Starts a handshake as the acceptor of an incoming connection; nothing is sent until the
    /// initiator's `HELLO` arrives.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::Randomness`] if the operating system gives no random bytes.
    pub(crate) fn accept_incoming(me: &NodeId, cookie: &Cookie) -> Result<Handshake, HandshakeError> {
        Ok(Handshake::accept_incoming_with(me, cookie, random_challenge()?))
    }

    /// [`accept_incoming`](Handshake::accept_incoming) with a given challenge.
    fn accept_incoming_with(me: &NodeId, cookie: &Cookie, challenge_b: Challenge) -> Handshake {
        Handshake { me: me.clone(), cookie: cookie.clone(), state: State::AwaitHello { challenge_b } }
    }

    /// Feeds one received frame to the handshake; frames to send are appended to `out`.
    ///
    /// # Errors
    ///
    /// Any [`HandshakeError`] but `Randomness` and `NotVerified`: close the connection (after
    /// sending what was appended to `out`: usually a `REFUSE` that tells the peer why). Once an
    /// error has been returned, every later frame is [`HandshakeError::Unexpected`].
    pub(crate) fn on_frame(&mut self, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<Progress, HandshakeError> {
        if let State::Established { .. } = self.state {
            // The caller's mistake, not the peer's: leave the established connection alone.
            return Err(HandshakeError::Unexpected { kind: frame.kind, state: self.state.describe() });
        }
        let state = std::mem::replace(&mut self.state, State::Failed);
        // Tell the peer why, unless the handshake was already over or the peer itself refused.
        let answer = state.is_active() && frame.kind != REFUSE;
        match self.step(state, frame, out) {
            Ok((state, progress)) => {
                self.state = state;
                Ok(progress)
            }
            Err(error) => {
                if answer {
                    if let Some(reason) = error.refusal() {
                        write_refuse(out, &reason);
                    }
                }
                Err(error)
            }
        }
    }

    /// Acceptor, after [`Progress::Verified`]: appends `ACCEPT` to `out` and returns the peer. The
    /// distribution protocol starts right after it.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::NotVerified`] in any other state; nothing is written and the state stays.
    pub(crate) fn accept(&mut self, out: &mut Vec<u8>) -> Result<NodeId, HandshakeError> {
        match &self.state {
            State::Verified { peer } => {
                let peer = peer.clone();
                frame::push(out, ACCEPT, &[], HANDSHAKE_MAX).map_err(|_| HandshakeError::Encode { kind: ACCEPT })?;
                tracing::debug!(peer = %peer.name, creation = peer.creation, "handshake accepted");
                self.state = State::Established { peer: peer.clone() };
                Ok(peer)
            }
            other => Err(HandshakeError::NotVerified { state: other.describe() }),
        }
    }

    /// Ends the handshake with `REFUSE { reason }` (at most [`MAX_REASON_CHARS`] characters of it
    /// are sent): after [`Progress::Verified`] (e.g. a duplicate connection), or at any point
    /// before. Does nothing once the handshake is established or has failed.
    pub(crate) fn refuse(&mut self, reason: &str, out: &mut Vec<u8>) {
        if self.state.is_active() {
            write_refuse(out, reason);
            self.state = State::Failed;
        }
    }

    /// The authenticated peer, once [verified](Progress::Verified) or
    /// [established](Progress::Established).
    pub(crate) fn peer(&self) -> Option<&NodeId> {
        match &self.state {
            State::Verified { peer } | State::Established { peer } => Some(peer),
            _ => None,
        }
    }

    /// One transition; on `Err` the machine stays [`State::Failed`].
    fn step(&self, state: State, frame: Frame<'_>, out: &mut Vec<u8>) -> Result<(State, Progress), HandshakeError> {
        let Frame { kind, body } = frame;
        if !state.is_active() {
            return Err(HandshakeError::Unexpected { kind, state: state.describe() });
        }
        if body.len() >= HANDSHAKE_MAX as usize {
            return Err(HandshakeError::malformed(kind, "larger than the handshake's frame limit", None));
        }
        match (state, kind) {
            (State::AwaitHello { challenge_b }, HELLO) => self.on_hello(challenge_b, body, out),
            (State::AwaitChallenge { dialed, challenge_a }, CHALLENGE) => {
                self.on_challenge(dialed, challenge_a, body, out)
            }
            (State::AwaitProof { peer, challenge_a, challenge_b }, PROOF) => {
                let ProofMsg { proof } = decode(kind, body)?;
                let transcript = Transcript { initiator: &peer, acceptor: &self.me, challenge_a, challenge_b };
                if !transcript.verify(&self.cookie, INITIATOR_LABEL, &proof) {
                    return Err(HandshakeError::WrongCookie { peer: peer.name });
                }
                tracing::debug!(peer = %peer.name, creation = peer.creation, "handshake verified");
                Ok((State::Verified { peer: peer.clone() }, Progress::Verified(peer)))
            }
            (State::AwaitAccept { peer }, ACCEPT) => {
                if !body.is_empty() {
                    return Err(HandshakeError::malformed(kind, "trailing bytes after the message", None));
                }
                tracing::debug!(peer = %peer.name, creation = peer.creation, "handshake established");
                Ok((State::Established { peer: peer.clone() }, Progress::Established(peer)))
            }
            (
                State::AwaitChallenge { dialed: peer, .. }
                | State::AwaitAccept { peer: NodeId { name: peer, .. } }
                | State::AwaitProof { peer: NodeId { name: peer, .. }, .. }
                | State::Verified { peer: NodeId { name: peer, .. } },
                REFUSE,
            ) => {
                let RefuseMsg { reason } = decode(kind, body)?;
                Err(HandshakeError::Refused { peer, reason: limit_reason(reason).into_owned() })
            }
            (state, kind) => Err(HandshakeError::Unexpected { kind, state: state.describe() }),
        }
    }

    /// Acceptor: the initiator's `HELLO`.
    fn on_hello(
        &self,
        challenge_b: Challenge,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(State, Progress), HandshakeError> {
        let msg: HelloMsg<'_> = decode_versioned(HELLO, body)?;
        let name = NodeName::parse(msg.name)
            .map_err(|error| HandshakeError::BadName { name: truncate_for_display(msg.name, 80), error })?;
        if name == self.me.name {
            return Err(HandshakeError::SelfConnection { name });
        }
        let peer = NodeId { name, creation: msg.creation };
        let challenge_a = msg.challenge;
        let transcript = Transcript { initiator: &peer, acceptor: &self.me, challenge_a, challenge_b };
        let reply = ChallengeMsg {
            name: self.me.name.as_str(),
            creation: self.me.creation,
            challenge: challenge_b,
            proof: transcript.sign(&self.cookie, ACCEPTOR_LABEL),
        };
        write(out, CHALLENGE, &Versioned { version: PROTOCOL_VERSION, msg: reply })?;
        Ok((State::AwaitProof { peer, challenge_a, challenge_b }, Progress::Continue))
    }

    /// Initiator: the acceptor's `CHALLENGE`.
    fn on_challenge(
        &self,
        dialed: NodeName,
        challenge_a: Challenge,
        body: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(State, Progress), HandshakeError> {
        let msg: ChallengeMsg<'_> = decode_versioned(CHALLENGE, body)?;
        let name = NodeName::parse(msg.name)
            .map_err(|error| HandshakeError::BadName { name: truncate_for_display(msg.name, 80), error })?;
        if name != dialed {
            return Err(HandshakeError::WrongName { expected: dialed, got: name });
        }
        let peer = NodeId { name, creation: msg.creation };
        let transcript = Transcript { initiator: &self.me, acceptor: &peer, challenge_a, challenge_b: msg.challenge };
        if !transcript.verify(&self.cookie, ACCEPTOR_LABEL, &msg.proof) {
            return Err(HandshakeError::WrongCookie { peer: peer.name });
        }
        write(out, PROOF, &ProofMsg { proof: transcript.sign(&self.cookie, INITIATOR_LABEL) })?;
        Ok((State::AwaitAccept { peer }, Progress::Continue))
    }
}

impl fmt::Debug for Handshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handshake").field("me", &self.me.name).field("state", &self.state.describe()).finish()
    }
}

/// What both proofs are computed over (see "Proofs" in the module docs).
struct Transcript<'a> {
    initiator: &'a NodeId,
    acceptor: &'a NodeId,
    challenge_a: Challenge,
    challenge_b: Challenge,
}

impl Transcript<'_> {
    fn mac(&self, cookie: &Cookie, label: &[u8]) -> HmacSha256 {
        let mut mac = cookie.mac.clone();
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_le_bytes());
            mac.update(bytes);
        };
        field(label);
        field(&PROTOCOL_VERSION.to_le_bytes());
        field(&self.challenge_a);
        field(&self.challenge_b);
        field(self.initiator.name.as_str().as_bytes());
        field(&self.initiator.creation.to_le_bytes());
        field(self.acceptor.name.as_str().as_bytes());
        field(&self.acceptor.creation.to_le_bytes());
        mac
    }

    fn sign(&self, cookie: &Cookie, label: &[u8]) -> ProofBytes {
        let tag = self.mac(cookie, label).finalize().into_bytes();
        let mut proof = [0; 32];
        proof.copy_from_slice(&tag);
        proof
    }

    /// Constant-time comparison (`hmac`'s `verify_slice`).
    fn verify(&self, cookie: &Cookie, label: &[u8], proof: &ProofBytes) -> bool {
        self.mac(cookie, label).verify_slice(proof).is_ok()
    }
}

fn random_challenge() -> Result<Challenge, HandshakeError> {
    let mut challenge = [0; 32];
    getrandom::fill(&mut challenge).map_err(HandshakeError::Randomness)?;
    Ok(challenge)
}

/// Appends a frame of `kind` holding `msg`.
fn write<T: Serialize>(out: &mut Vec<u8>, kind: u8, msg: &T) -> Result<(), HandshakeError> {
    // Handshake messages are small and rare: an intermediate Vec costs nothing that matters.
    let body = postcard::to_allocvec(msg).map_err(|_| HandshakeError::Encode { kind })?;
    frame::push(out, kind, &body, HANDSHAKE_MAX).map_err(|_| HandshakeError::Encode { kind })
}

/// Appends `REFUSE { reason }`, the reason limited as by [`limit_reason`].
fn write_refuse(out: &mut Vec<u8>, reason: &str) {
    // At most 4 * 256 bytes of text: it always fits the handshake's frame limit.
    let _ = write(out, REFUSE, &RefuseMsg { reason: &limit_reason(reason) });
}

/// `reason` if it has at most [`MAX_REASON_CHARS`] characters, else its first
/// `MAX_REASON_CHARS - 1` and an ellipsis.
fn limit_reason(reason: &str) -> Cow<'_, str> {
    match reason.char_indices().nth(MAX_REASON_CHARS) {
        Some(_) => Cow::Owned(truncate_for_display(reason, MAX_REASON_CHARS - 1)),
        None => Cow::Borrowed(reason),
    }
}

/// Decodes a whole body as one `T`.
fn decode<'a, T: Deserialize<'a>>(kind: u8, body: &'a [u8]) -> Result<T, HandshakeError> {
    let (msg, rest) = postcard::take_from_bytes(body)
        .map_err(|error| HandshakeError::malformed(kind, "the body does not decode", Some(error)))?;
    if !rest.is_empty() {
        return Err(HandshakeError::malformed(kind, "trailing bytes after the message", None));
    }
    Ok(msg)
}

/// Decodes `version` and, if it is ours, the message after it.
fn decode_versioned<'a, T: Deserialize<'a>>(kind: u8, body: &'a [u8]) -> Result<T, HandshakeError> {
    let (version, rest) = postcard::take_from_bytes::<u32>(body)
        .map_err(|error| HandshakeError::malformed(kind, "the version does not decode", Some(error)))?;
    if version != PROTOCOL_VERSION {
        return Err(HandshakeError::VersionMismatch { ours: PROTOCOL_VERSION, theirs: version });
    }
    decode(kind, rest)
}

/// Why a handshake failed. Every variant but `NotVerified` means: close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum HandshakeError {
    /// The peer speaks another protocol version.
    VersionMismatch {
        /// This node's version.
        ours: u32,
        /// The peer's.
        theirs: u32,
    },
    /// The peer's proof does not check out: it holds another cookie.
    WrongCookie {
        /// The name the peer claims (the acceptor's side) or was dialed by (the initiator's).
        peer: NodeName,
    },
    /// Initiator: the node that answered is not the one that was dialed.
    WrongName {
        /// The name dialed.
        expected: NodeName,
        /// The name the acceptor gave.
        got: NodeName,
    },
    /// The peer sent a name that is not a valid node name.
    BadName {
        /// The name as sent (at most 80 characters of it).
        name: String,
        /// What is wrong with it.
        error: NameError,
    },
    /// A node tried to connect to itself.
    SelfConnection {
        /// Its name.
        name: NodeName,
    },
    /// A message that breaks the handshake's format.
    Malformed {
        /// Its frame kind.
        kind: u8,
        /// What is wrong with it.
        problem: &'static str,
        /// The decoder's complaint, if any.
        cause: Option<postcard::Error>,
    },
    /// A message of a kind that does not belong where the handshake is.
    Unexpected {
        /// Its frame kind.
        kind: u8,
        /// Where the handshake was.
        state: &'static str,
    },
    /// The peer refused the connection.
    Refused {
        /// The peer.
        peer: NodeName,
        /// Its reason, at most [`MAX_REASON_CHARS`] characters, unescaped (print it with `{:?}`).
        reason: String,
    },
    /// The operating system gave no random bytes for a challenge.
    Randomness(getrandom::Error),
    /// A handshake message could not be encoded (a bug: they are small and plain).
    Encode {
        /// Its frame kind.
        kind: u8,
    },
    /// [`Handshake::accept`] called before [`Progress::Verified`]: the caller's mistake; nothing
    /// happened.
    NotVerified {
        /// Where the handshake was.
        state: &'static str,
    },
}

impl HandshakeError {
    fn malformed(kind: u8, problem: &'static str, cause: Option<postcard::Error>) -> HandshakeError {
        HandshakeError::Malformed { kind, problem, cause }
    }

    /// What to tell the peer in a `REFUSE`, if anything.
    fn refusal(&self) -> Option<String> {
        Some(match self {
            HandshakeError::VersionMismatch { ours, theirs } => {
                format!("protocol version mismatch: this node speaks version {ours}, yours {theirs}")
            }
            HandshakeError::WrongCookie { .. } => WRONG_COOKIE.to_owned(),
            HandshakeError::WrongName { expected, got } => {
                format!("this node dialed {expected}, but you are {got}")
            }
            HandshakeError::BadName { error, .. } => error.to_string(),
            HandshakeError::SelfConnection { .. } => "a node cannot connect to itself".to_owned(),
            HandshakeError::Malformed { kind, problem, .. } => {
                format!("malformed handshake message of kind {kind}: {problem}")
            }
            HandshakeError::Unexpected { kind, state } => {
                format!("unexpected handshake message of kind {kind} while {state}")
            }
            HandshakeError::Refused { .. }
            | HandshakeError::Randomness(_)
            | HandshakeError::Encode { .. }
            | HandshakeError::NotVerified { .. } => return None,
        })
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::VersionMismatch { ours, theirs } => write!(
                f,
                "protocol version mismatch: this node speaks version {ours}, the peer {theirs} \
                 (run compatible krarup versions on both nodes)"
            ),
            HandshakeError::WrongCookie { peer } => {
                write!(f, "peer {peer} failed the cookie challenge: {WRONG_COOKIE}")
            }
            HandshakeError::WrongName { expected, got } => write!(
                f,
                "dialed {expected} but the node that answered is {got} (check the host and port in the node name)"
            ),
            HandshakeError::BadName { name, error } => write!(f, "peer sent an invalid node name {name:?}: {error}"),
            HandshakeError::SelfConnection { name } => write!(f, "node {name} tried to connect to itself"),
            HandshakeError::Malformed { kind, problem, cause } => {
                write!(f, "malformed handshake message of kind {kind}: {problem}")?;
                match cause {
                    Some(cause) => write!(f, " ({cause})"),
                    None => Ok(()),
                }
            }
            HandshakeError::Unexpected { kind, state } => write!(
                f,
                "unexpected handshake message of kind {kind} while {state} \
                 (is the peer a krarup node of the same version?)"
            ),
            HandshakeError::Refused { peer, reason } => write!(f, "peer {peer} refused the connection: {reason:?}"),
            HandshakeError::Randomness(error) => {
                write!(f, "no random bytes from the operating system for a handshake challenge: {error}")
            }
            HandshakeError::Encode { kind } => {
                write!(f, "could not encode handshake message of kind {kind} (a bug in krarup)")
            }
            HandshakeError::NotVerified { state } => {
                write!(f, "accept called while the handshake is {state}; call it only after Progress::Verified")
            }
        }
    }
}

impl Error for HandshakeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            HandshakeError::BadName { error, .. } => Some(error),
            HandshakeError::Malformed { cause: Some(cause), .. } => Some(cause),
            HandshakeError::Randomness(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::frame::tests::XorShift;
    use crate::frame::FrameReader;

    const SECRET: &[u8] = b"s3cret-cookie-0f9e8d7c6b5a";
    const CH_A: Challenge = [0xA1; 32];
    const CH_B: Challenge = [0xB2; 32];

    fn id(name: &str, creation: u32) -> NodeId {
        NodeId { name: name.parse().unwrap(), creation }
    }

    fn a() -> NodeId {
        id("a@127.0.0.1:9100", 7)
    }

    fn b() -> NodeId {
        id("b@127.0.0.1:9101", 9)
    }

    fn cookie(secret: &[u8]) -> Cookie {
        Cookie::new(secret).unwrap()
    }

    /// How one side of a handshake ended.
    #[derive(Debug, PartialEq)]
    enum Outcome {
        /// Still waiting.
        Pending,
        /// Established with this peer.
        Up(NodeId),
        /// Failed with this error.
        Failed(HandshakeError),
        /// Acceptor only: verified the peer, then refused it as told.
        WeRefused,
    }

    /// Both sides' outcomes and all the bytes either side wrote.
    struct Run {
        initiator: Outcome,
        acceptor: Outcome,
        wire: Vec<u8>,
    }

    /// Feeds a side the bytes in `input`, frame by frame, until it finishes or needs more.
    fn feed(
        hs: &mut Handshake,
        reader: &mut FrameReader,
        input: &mut Vec<u8>,
        out: &mut Vec<u8>,
        outcome: &mut Outcome,
        refuse: Option<&str>,
    ) {
        reader.extend_from_slice(input);
        input.clear();
        while *outcome == Outcome::Pending {
            let Some(frame) = reader.next_frame().unwrap() else { break };
            *outcome = match hs.on_frame(frame, out) {
                Ok(Progress::Continue) => Outcome::Pending,
                Ok(Progress::Verified(peer)) => {
                    assert_eq!(hs.peer(), Some(&peer));
                    match refuse {
                        None => Outcome::Up(hs.accept(out).unwrap()),
                        Some(reason) => {
                            hs.refuse(reason, out);
                            Outcome::WeRefused
                        }
                    }
                }
                Ok(Progress::Established(peer)) => Outcome::Up(peer),
                Err(e) => Outcome::Failed(e),
            };
        }
    }

    /// Runs a whole handshake in memory; the acceptor refuses a verified peer with `refuse`.
    fn run(
        (me_i, cookie_i, dialed): (&NodeId, &Cookie, &NodeName),
        (me_a, cookie_a): (&NodeId, &Cookie),
        refuse: Option<&str>,
    ) -> Run {
        let (mut to_a, mut to_i, mut wire) = (Vec::new(), Vec::new(), Vec::new());
        let mut init = Handshake::initiate(me_i, cookie_i, dialed, &mut to_a).unwrap();
        let mut acc = Handshake::accept_incoming(me_a, cookie_a).unwrap();
        let (mut reader_i, mut reader_a) = (FrameReader::new(HANDSHAKE_MAX), FrameReader::new(HANDSHAKE_MAX));
        let (mut initiator, mut acceptor) = (Outcome::Pending, Outcome::Pending);
        while !to_a.is_empty() || !to_i.is_empty() {
            wire.extend_from_slice(&to_a);
            feed(&mut acc, &mut reader_a, &mut to_a, &mut to_i, &mut acceptor, refuse);
            wire.extend_from_slice(&to_i);
            feed(&mut init, &mut reader_i, &mut to_i, &mut to_a, &mut initiator, None);
        }
        Run { initiator, acceptor, wire }
    }

    /// All frames in `bytes`, which must be whole handshake frames.
    fn frames(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut reader = FrameReader::new(HANDSHAKE_MAX);
        reader.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(f) = reader.next_frame().unwrap() {
            assert!((HELLO..=REFUSE).contains(&f.kind), "kind {}", f.kind);
            frames.push((f.kind, f.body.to_vec()));
        }
        assert!(reader.at_clean_boundary(), "a partial frame was written");
        frames
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// The reason of the one `REFUSE` that `out` must end with.
    fn refuse_reason(out: &[u8]) -> String {
        let frames = frames(out);
        let (kind, body) = frames.last().expect("a REFUSE was written");
        assert_eq!(*kind, REFUSE);
        let RefuseMsg { reason } = decode(REFUSE, body).unwrap();
        reason.to_owned()
    }

    fn frame(kind: u8, body: &[u8]) -> Frame<'_> {
        Frame { kind, body }
    }

    fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
        postcard::to_allocvec(msg).unwrap()
    }

    #[test]
    fn matching_cookies_establish_both_sides() {
        let ck = cookie(SECRET);
        let r = run((&a(), &ck, &b().name), (&b(), &ck), None);
        assert_eq!(r.initiator, Outcome::Up(b()));
        assert_eq!(r.acceptor, Outcome::Up(a()));
        let kinds: Vec<u8> = frames(&r.wire).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [HELLO, CHALLENGE, PROOF, ACCEPT]);
    }

    #[test]
    fn wrong_cookie_fails_on_both_sides() {
        let r = run((&a(), &cookie(SECRET), &b().name), (&b(), &cookie(b"another cookie")), None);
        // The initiator checks first (the acceptor's proof) and refuses; the acceptor hears why.
        assert_eq!(r.initiator, Outcome::Failed(HandshakeError::WrongCookie { peer: b().name }));
        assert_eq!(
            r.acceptor,
            Outcome::Failed(HandshakeError::Refused { peer: a().name, reason: WRONG_COOKIE.into() })
        );
        assert_eq!(
            HandshakeError::Refused { peer: b().name, reason: WRONG_COOKIE.into() }.to_string(),
            "peer b@127.0.0.1:9101 refused the connection: \
             \"wrong cookie (both nodes must be started with the same cookie)\""
        );
        let kinds: Vec<u8> = frames(&r.wire).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, [HELLO, CHALLENGE, REFUSE]);
    }

    #[test]
    fn forged_proof_is_refused_by_the_acceptor() {
        let ck = cookie(SECRET);
        let (mut to_a, mut to_i) = (Vec::new(), Vec::new());
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut to_a).unwrap();
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let hello = frames(&to_a).remove(0);
        assert_eq!(acc.on_frame(frame(HELLO, &hello.1), &mut to_i), Ok(Progress::Continue));
        let forged = encode(&ProofMsg { proof: [0x42; 32] });
        assert_eq!(acc.on_frame(frame(PROOF, &forged), &mut to_i), Err(HandshakeError::WrongCookie { peer: a().name }));
        assert_eq!(refuse_reason(&to_i), WRONG_COOKIE);
        // The initiator, still waiting for CHALLENGE, hears the refusal.
        let refuse = frames(&to_i).pop().unwrap();
        let err = init.on_frame(frame(REFUSE, &refuse.1), &mut to_a).unwrap_err();
        assert_eq!(err, HandshakeError::Refused { peer: b().name, reason: WRONG_COOKIE.into() });
    }

    #[test]
    fn a_proof_is_bound_to_its_handshake() {
        // A PROOF recorded from one handshake does not pass in another (fresh challenge_b).
        let ck = cookie(SECRET);
        let mut to_a = Vec::new();
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut to_a).unwrap();
        let mut first = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let mut to_i = Vec::new();
        let hello = frames(&to_a).remove(0).1;
        first.on_frame(frame(HELLO, &hello), &mut to_i).unwrap();
        let challenge = frames(&to_i).remove(0).1;
        to_a.clear();
        init.on_frame(frame(CHALLENGE, &challenge), &mut to_a).unwrap();
        let proof = frames(&to_a).remove(0).1;
        assert!(matches!(first.on_frame(frame(PROOF, &proof), &mut to_i), Ok(Progress::Verified(_))));

        let mut second = Handshake::accept_incoming_with(&b(), &ck, [0xC3; 32]);
        second.on_frame(frame(HELLO, &hello), &mut Vec::new()).unwrap();
        let err = second.on_frame(frame(PROOF, &proof), &mut Vec::new()).unwrap_err();
        assert_eq!(err, HandshakeError::WrongCookie { peer: a().name });

        // Nor is the acceptor's proof accepted as the initiator's (domain separation).
        let ChallengeMsg { proof: proof_b, .. } = decode_versioned(CHALLENGE, &challenge).unwrap();
        let mut third = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        third.on_frame(frame(HELLO, &hello), &mut Vec::new()).unwrap();
        let err = third.on_frame(frame(PROOF, &encode(&ProofMsg { proof: proof_b })), &mut Vec::new());
        assert_eq!(err, Err(HandshakeError::WrongCookie { peer: a().name }));
    }

    #[test]
    fn version_mismatch_is_refused_and_reported_on_both_sides() {
        let ck = cookie(SECRET);
        // A build of the first version.
        let hello_v1 =
            Versioned { version: 1, msg: HelloMsg { name: "a@127.0.0.1:9100", creation: 7, challenge: CH_A } };
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let mut to_i = Vec::new();
        let err = acc.on_frame(frame(HELLO, &encode(&hello_v1)), &mut to_i).unwrap_err();
        assert_eq!(err, HandshakeError::VersionMismatch { ours: 2, theirs: 1 });
        assert!(err.to_string().contains("this node speaks version 2, the peer 1"), "{err}");
        let reason = refuse_reason(&to_i);
        assert_eq!(reason, "protocol version mismatch: this node speaks version 2, yours 1");

        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let refuse = frames(&to_i).pop().unwrap().1;
        let err = init.on_frame(frame(REFUSE, &refuse), &mut Vec::new()).unwrap_err();
        assert_eq!(err, HandshakeError::Refused { peer: b().name, reason });

        // A future version may change everything after the version: still a version mismatch.
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let future = encode(&Versioned { version: 3, msg: ("entirely", ["different"; 3], 0u64) });
        let err = acc.on_frame(frame(HELLO, &future), &mut Vec::new()).unwrap_err();
        assert_eq!(err, HandshakeError::VersionMismatch { ours: 2, theirs: 3 });

        // And the initiator checks the acceptor's version too.
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let challenge_v0 = Versioned {
            version: 0,
            msg: ChallengeMsg { name: "b@127.0.0.1:9101", creation: 9, challenge: CH_B, proof: [0; 32] },
        };
        let mut to_a = Vec::new();
        let err = init.on_frame(frame(CHALLENGE, &encode(&challenge_v0)), &mut to_a).unwrap_err();
        assert_eq!(err, HandshakeError::VersionMismatch { ours: 2, theirs: 0 });
        assert_eq!(refuse_reason(&to_a), "protocol version mismatch: this node speaks version 2, yours 0");
    }

    #[test]
    fn initiator_refuses_a_node_with_another_name_than_dialed() {
        let ck = cookie(SECRET);
        let c = id("c@127.0.0.1:9101", 1);
        let r = run((&a(), &ck, &b().name), (&c, &ck), None);
        let err = HandshakeError::WrongName { expected: b().name, got: c.name.clone() };
        assert_eq!(
            err.to_string(),
            "dialed b@127.0.0.1:9101 but the node that answered is c@127.0.0.1:9101 \
             (check the host and port in the node name)"
        );
        assert_eq!(r.initiator, Outcome::Failed(err));
        assert_eq!(
            r.acceptor,
            Outcome::Failed(HandshakeError::Refused {
                peer: a().name,
                reason: "this node dialed b@127.0.0.1:9101, but you are c@127.0.0.1:9101".into()
            })
        );
    }

    #[test]
    fn acceptor_refusal_after_verification_reaches_the_initiator() {
        let ck = cookie(SECRET);
        let r = run((&a(), &ck, &b().name), (&b(), &ck), Some("duplicate connection"));
        assert_eq!(r.acceptor, Outcome::WeRefused);
        assert_eq!(
            r.initiator,
            Outcome::Failed(HandshakeError::Refused { peer: b().name, reason: "duplicate connection".into() })
        );
    }

    #[test]
    fn bad_or_own_names_are_refused() {
        let ck = cookie(SECRET);
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let hello =
            Versioned { version: PROTOCOL_VERSION, msg: HelloMsg { name: "no-at-sign", creation: 1, challenge: CH_A } };
        let mut out = Vec::new();
        let err = acc.on_frame(frame(HELLO, &encode(&hello)), &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::BadName { name: "no-at-sign".into(), error: NameError::MissingAt });
        assert!(refuse_reason(&out).starts_with("invalid node name: no '@'"));

        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let hello = Versioned {
            version: PROTOCOL_VERSION,
            msg: HelloMsg { name: "b@127.0.0.1:9101", creation: 1, challenge: CH_A },
        };
        let mut out = Vec::new();
        let err = acc.on_frame(frame(HELLO, &encode(&hello)), &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::SelfConnection { name: b().name });
        assert_eq!(refuse_reason(&out), "a node cannot connect to itself");

        let err = Handshake::initiate(&a(), &ck, &a().name, &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::SelfConnection { name: a().name });
    }

    #[test]
    fn garbage_truncated_oversized_and_trailing_bodies_are_malformed() {
        let ck = cookie(SECRET);
        let mut good = Vec::new();
        Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut good).unwrap();
        let hello = frames(&good).remove(0).1;
        let mut trailing = hello.clone();
        trailing.push(0);
        let bad_utf8 = {
            let mut h = hello.clone();
            h[2] = 0xFF; // inside the name (after the version and the name's length)
            h
        };
        let cases: [(&str, Vec<u8>, &str); 6] = [
            ("empty", vec![], "the version does not decode"),
            ("garbage", vec![0x80; 40], "the version does not decode"),
            ("truncated", hello[..hello.len() - 1].to_vec(), "the body does not decode"),
            ("trailing", trailing, "trailing bytes after the message"),
            ("bad utf-8", bad_utf8, "the body does not decode"),
            ("oversized", vec![1; HANDSHAKE_MAX as usize], "larger than the handshake's frame limit"),
        ];
        for (what, body, problem) in cases {
            let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
            let mut out = Vec::new();
            match acc.on_frame(frame(HELLO, &body), &mut out) {
                Err(HandshakeError::Malformed { kind: HELLO, problem: p, .. }) => assert_eq!(p, problem, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
            assert!(refuse_reason(&out).starts_with("malformed handshake message of kind 1"), "{what}");
        }

        // A garbled REFUSE is malformed too, and is not answered with another REFUSE.
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let mut out = Vec::new();
        let err = init.on_frame(frame(REFUSE, &[0x05, b'a']), &mut out).unwrap_err();
        assert!(matches!(err, HandshakeError::Malformed { kind: REFUSE, .. }), "{err:?}");
        assert!(out.is_empty());

        // ACCEPT has no body.
        let r = {
            let mut to_a = Vec::new();
            let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut to_a).unwrap();
            let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
            let mut to_i = Vec::new();
            acc.on_frame(frame(HELLO, &frames(&to_a)[0].1), &mut to_i).unwrap();
            init.on_frame(frame(CHALLENGE, &frames(&to_i)[0].1), &mut Vec::new()).unwrap();
            init.on_frame(frame(ACCEPT, &[0]), &mut Vec::new())
        };
        assert!(matches!(r, Err(HandshakeError::Malformed { kind: ACCEPT, .. })), "{r:?}");
    }

    #[test]
    fn unexpected_kinds_and_anything_after_failure_are_errors() {
        let ck = cookie(SECRET);
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let mut out = Vec::new();
        let err = acc.on_frame(frame(PROOF, &[0; 32]), &mut out).unwrap_err();
        assert_eq!(err, HandshakeError::Unexpected { kind: PROOF, state: "waiting for HELLO" });
        assert_eq!(refuse_reason(&out), "unexpected handshake message of kind 3 while waiting for HELLO");
        out.clear();
        for kind in [HELLO, REFUSE, 16, 0] {
            let err = acc.on_frame(frame(kind, &[]), &mut out).unwrap_err();
            assert_eq!(err, HandshakeError::Unexpected { kind, state: "failed" });
        }
        acc.refuse("too late", &mut out);
        assert!(out.is_empty(), "nothing is written after failure");
        assert!(matches!(acc.accept(&mut out), Err(HandshakeError::NotVerified { state: "failed" })));

        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let err = init.on_frame(frame(17, b"distribution"), &mut Vec::new()).unwrap_err();
        assert_eq!(err, HandshakeError::Unexpected { kind: 17, state: "waiting for CHALLENGE" });
    }

    #[test]
    fn accept_before_verification_is_refused_and_changes_nothing() {
        let ck = cookie(SECRET);
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let mut out = Vec::new();
        let err = acc.accept(&mut out).unwrap_err();
        assert_eq!(err, HandshakeError::NotVerified { state: "waiting for HELLO" });
        assert!(out.is_empty());
        assert_eq!(acc.peer(), None);
        // Still usable.
        let mut hello = Vec::new();
        Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut hello).unwrap();
        assert_eq!(acc.on_frame(frame(HELLO, &frames(&hello)[0].1), &mut out), Ok(Progress::Continue));
    }

    #[test]
    fn refusal_reasons_are_limited_and_shown_escaped() {
        let ck = cookie(SECRET);
        let long = "é".repeat(1000);
        let mut out = Vec::new();
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        acc.refuse(&long, &mut out);
        let sent = refuse_reason(&out);
        assert_eq!(sent.chars().count(), MAX_REASON_CHARS);
        assert!(sent.ends_with("é…"), "cut short visibly");
        let exact = "x".repeat(MAX_REASON_CHARS);
        assert_eq!(limit_reason(&exact), exact.as_str(), "a reason of exactly the limit is kept whole");

        // A peer that sends a longer reason anyway is cut short.
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let body = encode(&RefuseMsg { reason: &long });
        let Err(HandshakeError::Refused { reason, .. }) = init.on_frame(frame(REFUSE, &body), &mut Vec::new()) else {
            panic!("expected a refusal")
        };
        assert_eq!(reason.chars().count(), MAX_REASON_CHARS);

        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut Vec::new()).unwrap();
        let body = encode(&RefuseMsg { reason: "bad\n\u{1b}[31mred" });
        let err = init.on_frame(frame(REFUSE, &body), &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), r#"peer b@127.0.0.1:9101 refused the connection: "bad\n\u{1b}[31mred""#);
    }

    #[test]
    fn the_cookie_never_appears_on_the_wire_in_errors_or_in_debug() {
        let ck = cookie(SECRET);
        assert_eq!(format!("{ck:?}"), "Cookie(..)");
        let ok = run((&a(), &ck, &b().name), (&b(), &ck), None);
        let wrong = run((&a(), &ck, &b().name), (&b(), &cookie(b"other")), None);
        let reverse = run((&a(), &cookie(b"other"), &b().name), (&b(), &ck), None);
        for r in [ok, wrong, reverse] {
            assert!(!contains(&r.wire, SECRET), "the cookie is on the wire");
            for outcome in [r.initiator, r.acceptor] {
                let text = format!("{outcome:?}");
                assert!(!text.contains(std::str::from_utf8(SECRET).unwrap()), "{text}");
                if let Outcome::Failed(e) = outcome {
                    assert!(!e.to_string().contains(std::str::from_utf8(SECRET).unwrap()));
                }
            }
        }
        let hs = Handshake::accept_incoming(&b(), &ck).unwrap();
        assert!(!format!("{hs:?}").contains("s3cret"));
    }

    #[test]
    fn cookies_must_not_be_empty() {
        assert_eq!(Cookie::new(Vec::new()).unwrap_err(), CookieError::Empty);
        assert!(Cookie::new("x").is_ok());
        assert!(CookieError::Empty.to_string().contains("non-empty"));
    }

    /// One fuzz case: `stream` fed to a fresh machine in random pieces. Returns whether it got
    /// anywhere (verified or established).
    fn fuzz_one(rng: &mut XorShift, stream: &[u8], initiator: bool) -> bool {
        let ck = cookie(SECRET);
        let mut out = Vec::new();
        let mut hs = if initiator {
            Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut out).unwrap()
        } else {
            Handshake::accept_incoming_with(&b(), &ck, CH_B)
        };
        let mut reader = FrameReader::new(HANDSHAKE_MAX);
        let (mut failed, mut reached) = (false, false);
        let mut rest = stream;
        'feed: while !rest.is_empty() {
            let n = (1 + rng.below(64)).min(rest.len());
            reader.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                let frame = match reader.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(_) => break 'feed,
                };
                let result = hs.on_frame(frame, &mut out);
                if failed {
                    assert!(result.is_err(), "a failed handshake went on: {result:?}");
                }
                match result {
                    Ok(Progress::Continue) => {}
                    Ok(Progress::Verified(peer)) => {
                        reached = true;
                        assert_eq!(peer, a());
                        if rng.below(2) == 0 {
                            assert_eq!(hs.accept(&mut out), Ok(a()));
                            break 'feed;
                        }
                        hs.refuse("no", &mut out);
                        failed = true;
                    }
                    Ok(Progress::Established(peer)) => {
                        assert_eq!(peer, b());
                        reached = true;
                        break 'feed;
                    }
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        failed = true;
                    }
                }
            }
        }
        frames(&out); // only whole handshake frames were written
        assert!(!contains(&out, SECRET));
        reached
    }

    /// Applies 1 to 4 random mutations to `bytes`.
    fn mutate(rng: &mut XorShift, bytes: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(4) {
            let len = bytes.len().max(1);
            let at = rng.below(len).min(bytes.len());
            match rng.below(7) {
                0 if !bytes.is_empty() && at < bytes.len() => bytes[at] ^= 1 << rng.below(8),
                1 if at < bytes.len() => bytes[at] = rng.next() as u8,
                2 => {
                    let extra: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                    bytes.splice(at..at, extra);
                }
                3 => {
                    let end = (at + rng.below(16)).min(bytes.len());
                    bytes.drain(at..end);
                }
                4 => bytes.truncate(at),
                5 => {
                    let end = (at + rng.below(40)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                _ => {
                    // A well-framed message of a random kind with a random body.
                    let body: Vec<u8> = (0..rng.below(80)).map(|_| rng.next() as u8).collect();
                    let mut f = Vec::new();
                    frame::push(&mut f, rng.below(8) as u8, &body, HANDSHAKE_MAX).unwrap();
                    bytes.splice(at..at, f);
                }
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_the_frame_reader_or_handshake() {
        // The two valid streams of a deterministic handshake, as seeds for mutation.
        let ck = cookie(SECRET);
        let (mut to_a, mut to_i) = (Vec::new(), Vec::new());
        let mut init = Handshake::initiate_with(&a(), &ck, &b().name, CH_A, &mut to_a).unwrap();
        let mut acc = Handshake::accept_incoming_with(&b(), &ck, CH_B);
        let hello = to_a.clone();
        acc.on_frame(frame(HELLO, &frames(&hello)[0].1), &mut to_i).unwrap();
        let challenge = std::mem::take(&mut to_i);
        let mut proof = Vec::new();
        init.on_frame(frame(CHALLENGE, &frames(&challenge)[0].1), &mut proof).unwrap();
        assert!(matches!(acc.on_frame(frame(PROOF, &frames(&proof)[0].1), &mut to_i), Ok(Progress::Verified(_))));
        acc.accept(&mut to_i).unwrap();
        let to_acceptor = [hello, proof].concat();
        let to_initiator = [challenge, to_i].concat();

        let mut rng = XorShift::new(0x5EED);
        // Unmutated, both streams succeed: mutations start from deep in the protocol.
        assert!(fuzz_one(&mut rng, &to_acceptor, false));
        assert!(fuzz_one(&mut rng, &to_initiator, true));

        let deadline = Instant::now() + Duration::from_millis(1500);
        let (mut cases, mut reached) = (0u32, 0u32);
        while cases < 50_000 && Instant::now() < deadline {
            let initiator = rng.below(2) == 0;
            let stream = match rng.below(4) {
                0 => (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                _ => {
                    let mut s = if initiator { to_initiator.clone() } else { to_acceptor.clone() };
                    mutate(&mut rng, &mut s);
                    s
                }
            };
            reached += u32::from(fuzz_one(&mut rng, &stream, initiator));
            cases += 1;
        }
        assert!(cases > 500, "only {cases} cases ran");
        // Some mutated streams still get through (e.g. a stray frame split differently): the cases
        // reach the end of the protocol, not only its first checks.
        assert!(reached > 0, "no case got past the proofs");
    }
}
