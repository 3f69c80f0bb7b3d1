//! Slow, idle and too many clients cannot take an agent down: a real server on loopback holds
//! hundreds of idle and trickling connections while a well-behaved client is served, closes
//! them after the header timeout, and a full connection budget frees itself.
mod common;

use std::time::{Duration, Instant};

use common::{READ, host_b};
use devmig_agent::serving::{ConnLimits, raise_fd_limit, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Starts the lab's agent on 127.0.0.1:0 within `limits`; its URL and the stop switch.
async fn start(lab: &common::Lab, limits: ConnLimits) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    devmig_agent::tls::ensure_default_provider();
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let router = devmig_agent::api::app(lab.state.clone());
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        serve(listener, router, None, limits, shutdown).await.expect("serve");
    });
    (format!("{addr}"), stop)
}

/// True once the server closed `sock` (EOF or reset), within `within`.
async fn closed_by_server(sock: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or the like before closing: keep reading to the end.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_cut_off_while_a_good_client_is_served() {
    raise_fd_limit();
    let lab = host_b();
    let limits = ConnLimits { header_timeout: Duration::from_secs(1), ..ConnLimits::default() };
    let (addr, _stop) = start(&lab, limits).await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&addr).await.expect("idle connect"));
    }
    // Slow clients: a request line, then one header byte every 200 ms, forever.
    let mut slow = Vec::new();
    for i in 0..100 {
        let mut s = TcpStream::connect(&addr).await.expect("slow connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.expect("write");
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if s.write_all(b"a").await.is_err() {
                    return true; // the server closed it
                }
                tokio::time::sleep(Duration::from_millis(200 + i % 7)).await;
            }
            false
        }));
    }
    let client = reqwest::Client::new();
    let mut worst = Duration::ZERO;
    for i in 0..40 {
        let started = Instant::now();
        let r = client
            .get(format!("http://{addr}/api/v1/devices"))
            .bearer_auth(READ)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(r.status(), 200, "request {i}");
        worst = worst.max(started.elapsed());
    }
    eprintln!("40 requests beside 300 idle and 100 trickling connections: worst {worst:?}");
    // A bound far above a served request (a few ms) and far below a starved one (seconds).
    assert!(worst < Duration::from_millis(1500), "a well-behaved request took {worst:?}");
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(closed_by_server(s, Duration::from_secs(5)).await, "idle connection {i} still open");
    }
    for (i, t) in slow.into_iter().enumerate() {
        assert!(t.await.expect("join"), "slow connection {i} was never closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_budget_frees_itself() {
    let lab = host_b();
    let limits = ConnLimits { header_timeout: Duration::from_millis(500), max_connections: 8, ..ConnLimits::default() };
    let (addr, _stop) = start(&lab, limits).await;
    let mut hogs = Vec::new();
    for _ in 0..8 {
        hogs.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    // Every slot is taken by a client that says nothing: this request waits in the backlog
    // until the header timeout frees a slot, then is served.
    let r = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once a slot freed");
    assert_eq!(r.status(), 200);
    assert!(devmig_agent::serving::connection_budget() >= 16);
}
