//! Finding a server by name on another node: an unreachable node is reported at once.

use std::time::{Duration, Instant};

use krarup_net::{Node, NodeConfig};
use krarup_rpc::{CallError, Retry};
use krarup_runtime::Runtime;

#[krarup_rpc::service(krate = krarup_rpc)]
pub trait Work {
    #[idempotent]
    fn work(&mut self, n: i64) -> i64;
}

/// A port nothing listens on: bound, then released.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_named_client_of_an_unreachable_node_fails_with_noconnection_before_its_timeout() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let _node = Node::start(&rt, NodeConfig::new("a@127.0.0.1:0", "secret")).unwrap();
    let nowhere = format!("b@127.0.0.1:{}", dead_port());
    let timeout = Duration::from_secs(10);
    let (result, took) = rt.block_on(async move {
        let started = Instant::now();
        let result = WorkClient::named_at("worker", nowhere).with_timeout(timeout).work(3).await;
        (result, started.elapsed())
    });
    assert_eq!(result, Err(CallError::NoConnection));
    assert!(took < timeout / 2, "reported after {took:?}, not after the timeout");
}

#[test]
fn an_idempotent_call_to_an_unreachable_node_is_retried_then_fails_with_noconnection() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let _node = Node::start(&rt, NodeConfig::new("a@127.0.0.1:0", "secret")).unwrap();
    let nowhere = format!("b@127.0.0.1:{}", dead_port());
    let retry = Retry { attempts: 3, initial: Duration::from_millis(10), max: Duration::from_millis(20) };
    let result = rt.block_on(async move {
        WorkClient::named_at("worker", nowhere).with_timeout(Duration::from_secs(10)).with_retry(retry).work(3).await
    });
    assert_eq!(result, Err(CallError::NoConnection));
}
