//! Timers: `sleep`, `send_after` and its cancellation, from processes and
//! from plain threads.
//!
//! Lower bounds on elapsed time are safe to assert (timers never fire
//! early); upper bounds are not, on a loaded machine, so none is asserted
//! beyond the usual bounded waits.

mod util;

use std::time::{Duration, Instant};

use krarup_runtime::{self_pid, send_after, sleep, sleep_until, spawn, try_recv};
use serde::{Deserialize, Serialize};
use util::{expect_msg, recv_bounded, runtime, TIMEOUT};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Tick(u32);

/// The delay of a timer that is cancelled: long enough that a stalled
/// thread does not let it fire before the cancel.
const CANCELLED_DELAY: Duration = Duration::from_millis(50);

/// A later timer that shows the cancelled one's time has passed.
const SENTINEL_DELAY: Duration = Duration::from_millis(100);

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Cancelled;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Sentinel;

#[test]
fn sleep_waits_at_least_its_duration() {
    let rt = runtime(2);
    rt.block_on(async {
        for ms in [0, 1, 5, 20] {
            let duration = Duration::from_millis(ms);
            let started = Instant::now();
            sleep(duration).await;
            assert!(started.elapsed() >= duration, "sleep({duration:?}) returned after {:?}", started.elapsed());
        }
        let at = Instant::now() + Duration::from_millis(10);
        sleep_until(at).await;
        assert!(Instant::now() >= at);
    });
}

#[test]
fn a_sleeping_process_does_not_hold_up_its_worker() {
    let rt = runtime(1);
    rt.block_on(async {
        let me = self_pid();
        spawn(async move {
            sleep(Duration::from_secs(60)).await;
            me.send(Tick(0));
        });
        spawn(async move { me.send(Tick(1)) });
        assert_eq!(recv_bounded::<Tick>().await, Tick(1));
    });
}

#[test]
fn many_sleeping_processes_all_wake() {
    const SLEEPERS: u32 = 1_000;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        for n in 0..SLEEPERS {
            spawn(async move {
                sleep(Duration::from_millis(u64::from(n % 50))).await;
                me.send(Tick(n));
            });
        }
        let mut woke = vec![false; SLEEPERS as usize];
        for _ in 0..SLEEPERS {
            let Tick(n) = recv_bounded().await;
            assert!(!woke[n as usize], "sleeper {n} woke twice");
            woke[n as usize] = true;
        }
    });
}

#[test]
fn send_after_delivers_after_the_delay() {
    let rt = runtime(2);
    rt.block_on(async {
        let delay = Duration::from_millis(20);
        let started = Instant::now();
        let timer = send_after(delay, self_pid(), Tick(1));
        assert_eq!(try_recv::<Tick>(), None, "delivered before the delay");
        assert_eq!(recv_bounded::<Tick>().await, Tick(1));
        assert!(started.elapsed() >= delay, "delivered after {:?}", started.elapsed());
        assert!(!timer.is_pending());
    });
}

#[test]
fn send_after_can_target_another_process() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let echo = spawn(async move {
            let tick: Tick = recv_bounded().await;
            me.send(tick);
        });
        send_after(Duration::from_millis(5), echo, Tick(9));
        assert_eq!(recv_bounded::<Tick>().await, Tick(9));
    });
}

#[test]
fn cancel_before_firing_returns_true_and_the_message_never_arrives() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let timer = send_after(CANCELLED_DELAY, me, Cancelled);
        assert!(timer.is_pending());
        assert!(timer.cancel());
        assert!(!timer.is_pending());
        assert!(!timer.cancel(), "a second cancel finds nothing to cancel");
        // A later timer: it fires after the cancelled one would have.
        send_after(SENTINEL_DELAY, me, Sentinel);
        assert_eq!(recv_bounded::<Sentinel>().await, Sentinel);
        assert_eq!(try_recv::<Cancelled>(), None, "a cancelled timer delivered its message");
    });
}

#[test]
fn cancel_after_delivery_returns_false() {
    let rt = runtime(2);
    rt.block_on(async {
        let timer = send_after(Duration::from_millis(1), self_pid(), Tick(1));
        assert_eq!(recv_bounded::<Tick>().await, Tick(1));
        assert!(!timer.is_pending());
        assert!(!timer.cancel());
    });
}

#[test]
fn dropping_a_timer_handle_does_not_cancel_it() {
    let rt = runtime(2);
    rt.block_on(async {
        drop(send_after(Duration::from_millis(1), self_pid(), Tick(2)));
        assert_eq!(recv_bounded::<Tick>().await, Tick(2));
    });
}

#[test]
fn cancel_from_another_process_stops_the_timer() {
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let timer = send_after(CANCELLED_DELAY, me, Cancelled);
        spawn(async move { me.send(timer.cancel()) });
        assert!(recv_bounded::<bool>().await, "cancelled before it fired");
        send_after(SENTINEL_DELAY, me, Sentinel);
        assert_eq!(recv_bounded::<Sentinel>().await, Sentinel);
        assert_eq!(try_recv::<Cancelled>(), None);
    });
}

#[test]
fn many_timers_each_deliver_once() {
    const TIMERS: u32 = 10_000;
    let rt = runtime(2);
    rt.block_on(async {
        let me = self_pid();
        let mut cancelled = Vec::new();
        for n in 0..TIMERS {
            let timer = send_after(Duration::from_millis(u64::from(n % 40)), me, Tick(n));
            // Cancel every tenth, if it has not fired yet.
            if n % 10 == 0 && timer.cancel() {
                cancelled.push(n);
            }
        }
        let expected = TIMERS as usize - cancelled.len();
        let mut seen = vec![false; TIMERS as usize];
        for _ in 0..expected {
            let Tick(n) = recv_bounded().await;
            assert!(!seen[n as usize], "timer {n} delivered twice");
            assert!(!cancelled.contains(&n), "cancelled timer {n} delivered");
            seen[n as usize] = true;
        }
        send_after(Duration::from_millis(60), me, Sentinel);
        let _: Sentinel = recv_bounded().await;
        assert_eq!(try_recv::<Tick>(), None);
    });
}

#[test]
fn runtime_send_after_delivers_from_a_plain_thread() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let delay = Duration::from_millis(20);
    let started = Instant::now();
    let timer = rt.send_after(delay, mailbox.pid(), Tick(3));
    assert_eq!(expect_msg::<Tick>(&mut mailbox), Tick(3));
    assert!(started.elapsed() >= delay);
    assert!(!timer.cancel());

    // To a process, too.
    let report = mailbox.pid();
    let echo = rt.spawn(async move {
        let tick: Tick = recv_bounded().await;
        report.send(tick);
    });
    rt.send_after(Duration::from_millis(5), echo, Tick(4));
    assert_eq!(expect_msg::<Tick>(&mut mailbox), Tick(4));
}

#[test]
fn runtime_send_after_can_be_cancelled_from_a_plain_thread() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let timer = rt.send_after(CANCELLED_DELAY, mailbox.pid(), Cancelled);
    assert!(timer.cancel());
    rt.send_after(SENTINEL_DELAY, mailbox.pid(), Sentinel);
    assert_eq!(expect_msg::<Sentinel>(&mut mailbox), Sentinel);
    assert_eq!(mailbox.try_recv::<Cancelled>(), None);
}

#[test]
fn a_timer_to_an_exited_process_is_dropped() {
    let rt = runtime(2);
    let mut mailbox = rt.mailbox();
    let report = mailbox.pid();
    let before = rt.stats().dropped_messages;
    rt.block_on(async move {
        let child = spawn(async {});
        util::exit_reason(child).await;
        send_after(Duration::from_millis(1), child, Tick(5));
        send_after(Duration::from_millis(20), report, Sentinel);
    });
    let _: Sentinel = mailbox.blocking_recv_timeout(TIMEOUT).expect("sentinel");
    assert_eq!(rt.stats().dropped_messages, before + 1);
}
