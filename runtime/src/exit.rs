//! Why a process ended: Erlang's exit reasons as a Rust enum.
//!
//! `Normal` is the only reason that is not a failure. The distribution
//! reasons (`NoProc`, `NoConnection`) are what a monitor or link reports when
//! the other side was already dead or became unreachable.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The reason a process exited (or an exit signal's reason).
///
/// # Examples
///
/// ```
/// use krarup_runtime::ExitReason;
///
/// assert!(ExitReason::Normal.is_normal());
/// assert_eq!(ExitReason::Panic("boom".into()).to_string(), "panic: boom");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExitReason {
    /// The process's future returned: a normal, non-failure exit.
    Normal,
    /// An orderly shutdown requested by a supervisor or the runtime, with an
    /// optional detail (Erlang's `shutdown` and `{shutdown, Term}`).
    Shutdown(Option<String>),
    /// The untrappable kill signal (Erlang's `kill`), as sent.
    Kill,
    /// What a process killed by [`ExitReason::Kill`] exits with.
    Killed,
    /// The process's future panicked; the panic message.
    Panic(String),
    /// An application-defined failure.
    Error(String),
    /// The process was not alive (already dead, or never existed).
    NoProc,
    /// The process's node became unreachable.
    NoConnection,
}

impl ExitReason {
    /// Whether this is [`ExitReason::Normal`].
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown(None) => f.write_str("shutdown"),
            ExitReason::Shutdown(Some(detail)) => write!(f, "shutdown: {detail}"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::Panic(msg) => write!(f, "panic: {msg}"),
            ExitReason::Error(msg) => write!(f, "error: {msg}"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::NoConnection => f.write_str("noconnection"),
        }
    }
}

impl From<String> for ExitReason {
    fn from(msg: String) -> Self {
        ExitReason::Error(msg)
    }
}

impl From<&str> for ExitReason {
    fn from(msg: &str) -> Self {
        ExitReason::Error(msg.to_owned())
    }
}

/// What a process's future may return: `()` exits `Normal`, an
/// [`ExitReason`] exits with that reason, and `Result<(), E>` exits `Normal`
/// on `Ok` or with `E`'s reason on `Err`.
pub trait IntoExitReason {
    /// The exit reason this value stands for.
    fn into_exit_reason(self) -> ExitReason;
}

impl IntoExitReason for () {
    fn into_exit_reason(self) -> ExitReason {
        ExitReason::Normal
    }
}

impl IntoExitReason for ExitReason {
    fn into_exit_reason(self) -> ExitReason {
        self
    }
}

impl<E: Into<ExitReason>> IntoExitReason for Result<(), E> {
    fn into_exit_reason(self) -> ExitReason {
        match self {
            Ok(()) => ExitReason::Normal,
            Err(e) => e.into(),
        }
    }
}

/// The message of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
