//! Error types, one per fallible operation.

use std::fmt;

use crate::pid::Pid;

/// Why [`send_named`](crate::send_named) failed; the message is handed back.
#[non_exhaustive]
pub enum SendError<M> {
    /// No process is registered under that name.
    NotRegistered(M),
}

impl<M> SendError<M> {
    /// The message that was not sent.
    pub fn into_inner(self) -> M {
        match self {
            SendError::NotRegistered(msg) => msg,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotRegistered(_) => f.write_str("NotRegistered(..)"),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotRegistered(_) => f.write_str("sending to a name no process is registered under"),
        }
    }
}

impl<M> std::error::Error for SendError<M> {}

/// Why [`register`](crate::register) failed (Erlang's `badarg` cases).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// Another process already has the name.
    NameTaken {
        /// The name asked for.
        name: String,
        /// The process that has it.
        owner: Pid,
    },
    /// The process already has a (different) name; unregister it first.
    AlreadyNamed {
        /// The process.
        pid: Pid,
        /// The name it has.
        name: String,
    },
    /// The process is not alive (or belongs to another runtime).
    NotAlive(Pid),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::NameTaken { name, owner } => write!(f, "name {name:?} is already registered to {owner}"),
            RegisterError::AlreadyNamed { pid, name } => write!(f, "process {pid} is already registered as {name:?}"),
            RegisterError::NotAlive(pid) => write!(f, "process {pid} is not alive"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Why [`unregister`](crate::unregister) failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnregisterError {
    /// No process is registered under that name.
    NotRegistered(String),
}

impl fmt::Display for UnregisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnregisterError::NotRegistered(name) => write!(f, "no process is registered as {name:?}"),
        }
    }
}

impl std::error::Error for UnregisterError {}
