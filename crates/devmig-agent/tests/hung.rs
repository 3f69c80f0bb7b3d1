//! One hung device must not stop an agent: a flood of reads of a hung attribute leaves the
//! other devices served, the hung device answers at once, `/readyz` and `/metrics` say which
//! device is stuck, and the agent recovers when the attribute answers again.
mod common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{ADMIN, READ, call, lab, seg};
use serde_json::json;

/// The body of a plain-text route.
async fn text(l: &common::Lab, uri: &str) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = axum::http::Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {READ}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let res = devmig_agent::api::app(l.state.clone()).oneshot(req).await.expect("response");
    let status = res.status();
    (status, String::from_utf8_lossy(&res.into_body().collect().await.expect("body").to_bytes()).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_reads_of_a_hung_attribute_stops_nothing_else_and_heals() {
    let h = lab(&devmig_testkit::hung_mtty_spec("migration_version", "read"), Duration::from_millis(300));
    let hung = format!("/api/v1/devices/{}/migration-version", seg("mtty/mtty-1"));
    let other = format!("/api/v1/devices/{}/check", seg("mtty/mtty-2"));

    // 64 readers of the hung attribute (a read token suffices), more than the pool has workers.
    let flood: Vec<_> = (0..64)
        .map(|_| {
            let (state, uri) = (h.state.clone(), hung.clone());
            tokio::spawn(async move { common::call(&state, Method::GET, &uri, Some(READ), None).await })
        })
        .collect();
    // Meanwhile, and after, the other type of the same parent keeps answering.
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let (s, r) =
            call(&h, Method::POST, &other, Some(ADMIN), Some(json!({"version": "mtty-v1-0.1.0-mtty-2"}))).await;
        assert_eq!((s, r["verdict"].as_str()), (StatusCode::OK, Some("identical")), "check {i}: {r}");
        worst = worst.max(started.elapsed());
    }
    eprintln!("20 checks of another device during a 64-read flood of a hung one: worst {worst:?}");
    // Below the 300 ms sysfs timeout: no check waited for a worker the hung device held.
    assert!(worst < Duration::from_millis(200), "a check of another device took {worst:?}");
    for f in flood {
        let (s, p) = f.await.expect("join");
        assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{p}");
        assert_eq!(p["code"], "timeout", "{p}");
    }
    // The stuck device answers at once, and says why: no queueing behind its hung read.
    let started = Instant::now();
    let (s, p) = call(&h, Method::GET, &hung, Some(READ), None).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT, "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("stuck")), "{p}");
    eprintln!("a stuck device answered in {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(250), "took {:?}", started.elapsed());
    let (s, ready) = text(&h, "/readyz").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ready.contains("degraded") && ready.contains("mtty-1"), "{ready}");
    let (_, metrics) = text(&h, "/metrics").await;
    assert!(metrics.contains("devmig_agent_stuck_devices 1"), "{metrics}");
    let stuck_ops = h.state.agent.checker().io().stuck();
    let cap = h.state.agent.checker().io().running_per_device();
    assert!((1..=cap).contains(&stuck_ops), "{stuck_ops} operations stuck on one device (cap {cap})");

    // The attribute answers again: the agent recovers by itself.
    h.mounted.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = call(&h, Method::GET, &hung, Some(READ), None).await;
        if s == StatusCode::OK {
            assert_eq!(v["version"], "mtty-v1-0.1.0-mtty-1");
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {s} {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(text(&h, "/readyz").await.1, "ready\n");
    assert!(text(&h, "/metrics").await.1.contains("devmig_agent_stuck_devices 0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_do_not_exist_leave_no_state_behind() {
    let h = lab(&devmig_testkit::hung_mtty_spec("migration_version", "read"), Duration::from_secs(5));
    for i in 0..300 {
        let dev = format!("0000:{:02x}:{:02x}.{}", i / 256, i % 32, i % 8);
        let uri = format!("/api/v1/devices/{}/check", seg(&dev));
        let (s, _) = call(&h, Method::POST, &uri, Some(ADMIN), Some(json!({"version": "mtty-v1-0.1.0-mtty-2"}))).await;
        assert!(s == StatusCode::NOT_FOUND || s == StatusCode::OK, "{s}");
        let claim = json!({"migration_id": format!("m-{i}"), "source_version": "mtty-v1-0.1.0-mtty-2",
                           "target": {"device": dev}, "ttl_seconds": 60});
        let (s, _) = call(&h, Method::POST, "/api/v1/claims", Some(ADMIN), Some(claim)).await;
        assert!(s.is_client_error(), "{s}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.state.agent.tracked_devices() != 0 {
        assert!(Instant::now() < deadline, "{} devices still tracked", h.state.agent.tracked_devices());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
