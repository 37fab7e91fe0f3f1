//! The typed errors of a [`SupervisorRef`](super::SupervisorRef)'s
//! requests about children.

use std::fmt;

use crate::call::CallError;
use crate::exit::ExitReason;
use crate::pid::Pid;

/// Why [`SupervisorRef::start_child`](super::SupervisorRef::start_child) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartChildError {
    /// A child with that id is running.
    AlreadyStarted {
        /// The id.
        id: String,
        /// The running child.
        pid: Pid,
    },
    /// A child with that id exists but is not running: restart or delete it.
    AlreadyPresent(String),
    /// The child's start failed with this reason; its spec was not kept.
    Failed {
        /// The id.
        id: String,
        /// Why it did not start.
        reason: ExitReason,
    },
    /// The supervisor is not running, or exited during the request.
    Call(CallError),
}

impl fmt::Display for StartChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartChildError::AlreadyStarted { id, pid } => write!(f, "child {id:?} is already running as {pid}"),
            StartChildError::AlreadyPresent(id) => {
                write!(f, "child {id:?} already exists and is stopped; restart or delete it")
            }
            StartChildError::Failed { id, reason } => write!(f, "child {id:?} failed to start ({reason})"),
            StartChildError::Call(e) => write!(f, "the supervisor did not answer ({e})"),
        }
    }
}

impl std::error::Error for StartChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartChildError::Call(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`SupervisorRef::terminate_child`](super::SupervisorRef::terminate_child), [`SupervisorRef::restart_child`](super::SupervisorRef::restart_child)
/// or [`SupervisorRef::delete_child`](super::SupervisorRef::delete_child) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildError {
    /// The supervisor has no child with that id.
    NotFound(String),
    /// The child is running (restart and delete need a stopped child).
    Running(String),
    /// The child is being restarted after a failed start.
    Restarting(String),
    /// Restarting the child failed with this reason; it stays stopped.
    Failed {
        /// The id.
        id: String,
        /// Why it did not start.
        reason: ExitReason,
    },
    /// The supervisor is not running, or exited during the request.
    Call(CallError),
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::NotFound(id) => write!(f, "the supervisor has no child {id:?}"),
            ChildError::Running(id) => write!(f, "child {id:?} is running; terminate it first"),
            ChildError::Restarting(id) => write!(f, "child {id:?} is being restarted"),
            ChildError::Failed { id, reason } => write!(f, "child {id:?} failed to start ({reason})"),
            ChildError::Call(e) => write!(f, "the supervisor did not answer ({e})"),
        }
    }
}

impl std::error::Error for ChildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ChildError::Call(e) => Some(e),
            _ => None,
        }
    }
}
