//! loom models of every protocol the runtime's synchronization implements.
//!
//! Run them with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p krarup-runtime --release loom_`.
//! They drive the real types (`Slot`, `Registry`, `Idle`, `send_after`'s
//! cell, a worker's `Readings`) through `crate::sync`, which is loom's under `--cfg loom`.

mod loom_call;
mod loom_exit;
mod loom_idle;
mod loom_link;
mod loom_mailbox;
mod loom_monitor;
mod loom_registry;
mod loom_stamp;
mod loom_timer;
