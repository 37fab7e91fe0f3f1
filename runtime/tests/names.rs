//! Registered names: `register`, `whereis`, `unregister`, `send_named`,
//! and names released when their process exits.

mod util;

use krarup_runtime::{
    monitor, register, registered, self_pid, send_named, spawn, unregister, whereis, ExitReason, Pid, RegisterError,
    SendError, UnregisterError,
};
use serde::{Deserialize, Serialize};
use util::{down_of, exit_reason, expect_msg, recv_bounded, release, runtime, spawn_held, Dropping, SlowDrop, TIMEOUT};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Quit;

/// A process that waits (bounded) for `Quit`.
async fn idle() {
    let _ = krarup_runtime::recv_timeout::<Quit>(TIMEOUT).await;
}

#[test]
fn register_whereis_and_unregister() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        assert_eq!(whereis("server"), None);
        register("server", me).unwrap();
        assert_eq!(whereis("server"), Some(me));
        assert_eq!(registered(), vec!["server".to_string()]);
        assert_eq!(unregister("server"), Ok(me));
        assert_eq!(whereis("server"), None);
        assert!(registered().is_empty());
        assert_eq!(unregister("server"), Err(UnregisterError::NotRegistered("server".into())));
        // Unregistered, the process can take a name again.
        register("other", me).unwrap();
        assert_eq!(whereis("other"), Some(me));
    });
}

#[test]
fn registering_a_taken_name_fails_with_name_taken() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let other = spawn(idle());
        register("server", me).unwrap();
        assert_eq!(register("server", other), Err(RegisterError::NameTaken { name: "server".into(), owner: me }));
        assert_eq!(whereis("server"), Some(me), "the failed register changed nothing");
        other.send(Quit);
    });
}

#[test]
fn a_process_can_hold_only_one_name() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        register("first", me).unwrap();
        assert_eq!(register("second", me), Err(RegisterError::AlreadyNamed { pid: me, name: "first".into() }));
        assert_eq!(whereis("second"), None);
    });
}

#[test]
fn registering_a_dead_process_fails_with_not_alive() {
    let rt = runtime(2);
    rt.block_on(async {
        let child = spawn(async {});
        exit_reason(child).await;
        assert_eq!(register("ghost", child), Err(RegisterError::NotAlive(child)));
        assert_eq!(whereis("ghost"), None);
        // A Pid that never existed, in this runtime or in none.
        let never = Pid::from_parts(self_pid().node(), 1_000_000, 1);
        assert_eq!(register("ghost", never), Err(RegisterError::NotAlive(never)));
        let nowhere = Pid::from_parts(u32::MAX - 1, 0, 0);
        assert_eq!(register("ghost", nowhere), Err(RegisterError::NotAlive(nowhere)));
        // The name is still free.
        register("ghost", self_pid()).unwrap();
    });
}

/// Registers a held process as `name`, lets it exit the way `body` does,
/// and checks that the name is free as soon as the `Down` is here.
async fn name_is_released_when_it_exits<F>(name: &str, body: F, expected: ExitReason)
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let child = spawn_held(body);
    register(name, child).unwrap();
    let reference = monitor(child);
    release(child);
    assert_eq!(down_of(reference).await.reason, expected);
    assert_eq!(whereis(name), None, "{name} outlived its process");
    assert!(!registered().contains(&name.to_string()));
    register(name, self_pid()).expect("the name can be registered again at once");
    unregister(name).unwrap();
}

#[test]
fn a_name_is_released_when_its_process_exits_normally() {
    let rt = runtime(2);
    rt.block_on(name_is_released_when_it_exits("normal", async { Ok(()) }, ExitReason::Normal));
}

#[test]
fn a_name_is_released_when_its_process_panics() {
    let rt = runtime(2);
    rt.block_on(name_is_released_when_it_exits(
        "crasher",
        async { panic!("crash") },
        ExitReason::Panic("crash".into()),
    ));
}

#[test]
fn a_name_is_released_when_its_process_fails() {
    let rt = runtime(2);
    rt.block_on(name_is_released_when_it_exits(
        "failer",
        async { Err("failed".to_string()) },
        ExitReason::Error("failed".into()),
    ));
}

#[test]
fn a_name_is_released_when_its_mailbox_is_dropped() {
    let rt = runtime(2);
    let mailbox = rt.mailbox();
    let pid = mailbox.pid();
    rt.block_on(async move { register("outside", pid).unwrap() });
    assert_eq!(rt.block_on(async { whereis("outside") }), Some(pid));
    drop(mailbox);
    assert_eq!(rt.block_on(async { whereis("outside") }), None);
}

#[test]
fn send_named_reaches_the_registered_process() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    rt.block_on(async move {
        let server = spawn(async move {
            let n: u32 = recv_bounded().await;
            report.send(n + 1);
        });
        register("server", server).unwrap();
        send_named("server", 41u32).unwrap();
    });
    assert_eq!(expect_msg::<u32>(&mut mailbox), 42);
}

#[test]
fn send_named_to_an_unknown_name_hands_the_message_back() {
    let rt = runtime(2);
    rt.block_on(async {
        let err = send_named("nobody", "hello".to_string()).unwrap_err();
        assert!(matches!(err, SendError::NotRegistered(_)));
        assert_eq!(err.to_string(), "sending to a name no process is registered under");
        assert_eq!(err.into_inner(), "hello");
    });
}

#[test]
fn names_register_and_exit_concurrently_without_leaking() {
    // Many short-lived processes each take a name and exit; every name must
    // be gone once every Down is in.
    const PROCESSES: usize = 500;
    let rt = runtime(2);
    rt.block_on(async {
        let mut references = Vec::new();
        for n in 0..PROCESSES {
            let child = spawn_held(async move {
                register(&format!("p{n}"), self_pid()).unwrap();
            });
            references.push(monitor(child));
            release(child);
        }
        for reference in references {
            assert_eq!(down_of(reference).await.reason, ExitReason::Normal);
        }
        assert_eq!(registered(), Vec::<String>::new());
    });
}

#[test]
fn a_name_is_gone_once_a_noproc_down_says_its_process_is_dead() {
    // A process that exits with an unread message that is slow to drop is
    // dead while its mailbox is being dropped: monitoring it then answers
    // `NoProc` at once. Whoever reacts to that Down must find the name
    // free, as after any other Down.
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let child = spawn_held(async {});
        register("slow", child).unwrap();
        let resume = SlowDrop::send_to(child);
        release(child);
        let _: Dropping = recv_bounded().await;
        let down = down_of(monitor(child)).await;
        let whereis_slow = whereis("slow");
        let again = register("slow", me);
        resume.send(()).unwrap();
        assert_eq!(down.reason, ExitReason::NoProc);
        assert_eq!(whereis_slow, None, "the name outlived its process");
        assert_eq!(again, Ok(()), "the name can be registered again at once");
    });
}
