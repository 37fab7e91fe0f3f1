//! The krarup network node (issue 4): a mio event loop that extends `send`,
//! `receive`, links and monitors across TCP.
//!
//! This crate is a placeholder until the network node lands; it exists so the
//! workspace layout is the final one and the facade can already depend on it.
#![forbid(unsafe_code)]

mod frame;
mod handshake;
mod name;
