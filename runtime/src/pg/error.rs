//! What can go wrong with a `pg` operation.

use std::fmt;

use crate::call::CallError;
use crate::pid::Pid;

/// Why a [`join`](super::join) or [`leave`](super::leave) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PgError {
    /// This Pid is a process of another node: a node's scope joins and
    /// leaves only its own processes (ask that node to do it). Nothing was
    /// changed.
    NotLocal(Pid),
    /// None of the processes was a member of the group (Erlang's
    /// `not_joined`).
    NotJoined,
    /// The scope server did not answer: it has exited (it was killed, or
    /// the runtime is shutting down) and is not restarted.
    Scope(CallError),
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::NotLocal(pid) => {
                write!(f, "{pid} is a process of another node; only its own node can make it join or leave")
            }
            PgError::NotJoined => f.write_str("none of the processes was a member of the group"),
            PgError::Scope(error) => write!(f, "the pg scope server did not answer: {error}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Scope(error) => Some(error),
            _ => None,
        }
    }
}

/// Why [`start`](super::start) could not make the scope reachable from
/// other nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartError {
    /// Another process holds the scope's registered name (`"pg"`): the
    /// scope runs and serves this node, but other nodes' scopes cannot find
    /// it. Unregister that process's name before the scope starts.
    NameTaken {
        /// The process that has the name.
        holder: Pid,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NameTaken { holder } => {
                write!(f, "the name \"pg\" is registered by {holder}, so other nodes cannot find this node's pg scope")
            }
        }
    }
}

impl std::error::Error for StartError {}
