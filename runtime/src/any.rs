//! A message of any type: what a catch-all receive clause takes (Erlang's
//! `Any -> ...`), and what a `GenServer`'s `handle_info` gets.
//!
//! `receive!` asks for a message by type through `__private::take`; asking
//! for [`AnyMessage`] takes the whole envelope instead of its value. The
//! three helpers below do that switch on the type id, with a safe cast
//! (`same`) that the compiler resolves for each message type.

use std::any::{Any, TypeId};
use std::fmt;

use crate::envelope::Envelope;
use crate::receive::{scan, Scan};
use crate::scheduler::worker::with_owner;

/// A message of some type, not yet looked at: ask what it is and take it
/// as that.
///
/// # Examples
///
/// ```
/// use krarup_runtime::{receive, self_pid, AnyMessage, Runtime};
///
/// let rt = Runtime::new();
/// let names = rt.block_on(async {
///     self_pid().send(1u8);
///     self_pid().send("two".to_string());
///     let mut names = Vec::new();
///     for _ in 0..2 {
///         receive! {
///             n: u8 => names.push(format!("u8 {n}")),
///             other: AnyMessage => names.push(format!("other {}", other.type_name())),
///         }
///     }
///     names
/// });
/// assert_eq!(names, ["u8 1", "other alloc::string::String"]);
/// ```
pub struct AnyMessage(Envelope);

impl AnyMessage {
    /// Whether the message is a `T`.
    pub fn is<T: Send + 'static>(&self) -> bool {
        self.0.is::<T>()
    }

    /// The message as a `T`, or the message back if it is not one.
    ///
    /// # Errors
    /// The message itself, when it is not a `T`.
    pub fn downcast<T: Send + 'static>(self) -> Result<T, AnyMessage> {
        self.0.downcast::<T>().map_err(AnyMessage)
    }

    /// A reference to the message if it is a `T`.
    pub fn downcast_ref<T: Send + 'static>(&self) -> Option<&T> {
        self.0.peek::<T>()
    }

    /// The name of the message's type.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
}

impl fmt::Debug for AnyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyMessage").field(&self.type_name()).finish()
    }
}

#[inline(always)]
fn is_any<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<AnyMessage>()
}

/// `value` as a `U`, if `T` is `U`: a safe cast, which the compiler
/// resolves for each pair of types.
#[inline(always)]
fn same<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let mut value = Some(value);
    match (&mut value as &mut dyn Any).downcast_mut::<Option<U>>() {
        Some(cast) => Ok(cast.take().expect("the value was put there")),
        None => Err(value.expect("the value was not taken")),
    }
}

/// `receive!`'s take: a `T` out of the envelope, or, for `AnyMessage`,
/// the whole envelope.
#[inline]
pub(crate) fn take<T: Send + 'static>(env: &mut Envelope) -> Option<T> {
    if is_any::<T>() {
        return same::<AnyMessage, T>(AnyMessage(std::mem::replace(env, Envelope::taken()))).ok();
    }
    env.take::<T>()
}

/// `receive!`'s put-back after a failed pattern or guard.
#[inline]
pub(crate) fn put<T: Send + 'static>(env: &mut Envelope, value: T) {
    match same::<T, AnyMessage>(value) {
        Ok(any) => *env = any.0,
        Err(value) => env.put(value),
    }
}

/// `receive!`'s unwrap of a message already known to match.
#[inline]
pub(crate) fn unwrap<T: Send + 'static>(env: Envelope) -> T {
    if is_any::<T>() {
        return same::<AnyMessage, T>(AnyMessage(env)).unwrap_or_else(|_| unreachable!("T is AnyMessage"));
    }
    env.downcast::<T>().unwrap_or_else(|_| unreachable!("receive!: matched by type"))
}

/// Takes the oldest message of any type, if there is one; never waits.
///
/// # Panics
/// Outside a krarup process, or from inside a `receive!` guard.
pub fn try_recv_any() -> Option<AnyMessage> {
    with_owner("try_recv_any", |worker, _, own| {
        let hit = scan(own, &mut Scan::default(), worker.book(), |_| Some(0));
        hit.map(|(_, env)| AnyMessage(env))
    })
}
