//! Two fleet replicas on one PostgreSQL, an agent that never answers, and the HTTP API's auth.
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{ADMIN_SECRET, Backend, READ_SECRET, lab, options};
use devmig_fleet::placement::{PlacementRequest, SourceRef};
use devmig_fleet::{ReportOutcome, now_ms};
use devmig_vendors::{Catalog, Registry};

fn version_request(version: &str, migration_id: &str) -> PlacementRequest {
    PlacementRequest {
        sources: vec![SourceRef { host: None, device: None, version: Some(version.into()) }],
        claim: true,
        migration_id: Some(migration_id.parse().expect("id")),
        exclude_hosts: vec![],
        max_hosts: Some(16),
        ttl_seconds: Some(devmig_api::Ttl::DEFAULT),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_claim_one_device_twice() {
    let backend = tokio::task::spawn_blocking(Backend::postgres).await.expect("join");
    let lab = lab(backend.url(), 6, 8, 11).await;
    let opts = options(backend.url());
    let replica = tokio::task::spawn_blocking(move || opts.open(Registry::new(Catalog::embedded())))
        .await
        .expect("join")
        .expect("second replica");
    // The most common mtty version: many VMs race for its few free instances.
    let store = lab.fleet.store.clone();
    let devices =
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|_| true).expect("devices")).await.expect("join");
    let mut counts = std::collections::BTreeMap::new();
    for d in devices.iter().filter(|d| d.model == "mtty" && d.free) {
        *counts.entry(d.version.clone()).or_insert(0) += 1;
    }
    let (version, _) = counts.into_iter().max_by_key(|(_, n)| *n).expect("an mtty version");
    let mut tasks = Vec::new();
    for k in 0..24 {
        let f = if k % 2 == 0 { lab.fleet.clone() } else { replica.clone() };
        let req = version_request(&version, &format!("race-{k}"));
        tasks.push(tokio::spawn(async move { f.place(req).await }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        let p = t.await.expect("join").expect("placement answers");
        if p.placed {
            placed.push((p.host.clone().expect("host"), p.assignments[0].target.clone()));
        }
    }
    let distinct: BTreeSet<_> = placed.iter().cloned().collect();
    assert_eq!(distinct.len(), placed.len(), "a device was placed twice: {placed:?}");
    // The agents agree: one active claim per device, and exactly the placed ones.
    let mut claimed = BTreeSet::new();
    for h in &lab.sim.hosts {
        for c in h.agent.claims().expect("claims") {
            assert!(claimed.insert((h.name.clone(), c.device.clone())), "double claim of {}:{}", h.name, c.device);
        }
    }
    assert_eq!(claimed, distinct);
    assert!(!placed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reports_through_two_replicas_keep_the_newest() {
    let backend = tokio::task::spawn_blocking(Backend::postgres).await.expect("join");
    let url = backend.url();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (devmig_fleet::Store::open(&url, 2).expect("a"), devmig_fleet::Store::open(&url, 2).expect("b"))
    })
    .await
    .expect("join");
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let reg = Registry::new(Catalog::embedded());
    let mut handles = Vec::new();
    for g in 1..=40u64 {
        let store = if g % 2 == 0 { a.clone() } else { b.clone() };
        // Generation g carries g mod 7 + 1 devices: the survivor's device count names its generation.
        let mut r = devmig_fleet::sim::HostPlan::draw(1, 0, 16).report(&reg, "sim", "http://127.0.0.1:9", g);
        r.devices.truncate((g % 7 + 1) as usize);
        handles.push(tokio::task::spawn_blocking(move || store.apply_report(&r, now_ms()).expect("report")));
    }
    let mut applied = 0;
    for h in handles {
        if h.await.expect("join") != ReportOutcome::Stale {
            applied += 1;
        }
    }
    assert!(applied >= 1);
    let store = a.clone();
    let (hosts, devices) = tokio::task::spawn_blocking(move || {
        (store.hosts(now_ms()).expect("hosts"), store.devices(now_ms(), &|_| true).expect("devices"))
    })
    .await
    .expect("join");
    assert_eq!(hosts[0].generation, 40);
    assert_eq!(devices.len() as u64, 40 % 7 + 1, "devices of another generation survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_agent_costs_one_timeout_then_the_next_host_is_tried() {
    let backend = Backend::sqlite();
    let lab = lab(backend.url(), 4, 8, 3).await;
    // A host whose agent accepts connections and never answers, reported as holding exact
    // copies of host 1's devices, under a name that ranks it first.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let reg = Registry::new(Catalog::embedded());
    let mut r = devmig_fleet::sim::HostPlan::draw(3, 1, 8).report(&reg, "sim", &silent_url, 1);
    r.host = "aaa-silent".into();
    let store = lab.fleet.store.clone();
    let src = r.devices.iter().find(|d| d.free && d.model == "nvme").expect("an nvme VF").clone();
    tokio::task::spawn_blocking(move || store.apply_report(&r, now_ms()).expect("report")).await.expect("join");
    let req = common::look_for(&src.version, vec![]);
    let mut fleet = lab.fleet.clone();
    fleet.concurrency = 1;
    let started = Instant::now();
    let p = fleet.place(req).await.expect("placement");
    let took = started.elapsed();
    assert_eq!(p.tried[0].host, "aaa-silent", "{p:#?}");
    assert_eq!(p.tried[0].outcome, devmig_fleet::placement::HostOutcome::Unreachable);
    assert!(p.placed, "{p:#?}");
    assert_ne!(p.host.as_deref(), Some("aaa-silent"));
    // Agent timeout is 2 s in these tests: one timeout, not one per device or retry.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "took {took:?}");
    // With every other host excluded, nothing fits, and the answer says the one candidate's
    // agent did not answer.
    let only_silent = common::look_for(&src.version, lab.sim.hosts.iter().map(|h| h.name.clone()).collect());
    let p = fleet.place(only_silent).await.expect("placement");
    assert!(!p.placed);
    let groups = p.explanation.expect("explanation").groups;
    assert!(groups.iter().any(|g| g.code == "unreachable" && g.hosts == 1), "{groups:#?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_checks_tokens_and_input() {
    let backend = Backend::sqlite();
    let lab = lab(backend.url(), 3, 8, 5).await;
    let c = reqwest::Client::new();
    let hosts = format!("{}/api/v1/hosts", lab.url);
    assert_eq!(c.get(&hosts).send().await.expect("send").status(), 401);
    assert_eq!(c.get(&hosts).bearer_auth("not-a-token-at-all").send().await.expect("send").status(), 401);
    let r = c.get(&hosts).bearer_auth(READ_SECRET).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["hosts"].as_array().expect("hosts").len(), 3);
    // A report token may push and nothing else; a read token may not push.
    let token = common::report_token("sim-r00-0000");
    assert_eq!(c.get(&hosts).bearer_auth(&token).send().await.expect("send").status(), 403);
    let put = format!("{}/api/v1/hosts/sim-r00-0000/report", lab.url);
    let reg = Registry::new(Catalog::embedded());
    let now_ns = u64::try_from(now_ms()).expect("clock") * 1_000_000;
    let url0 = lab.sim.hosts[0].url.clone();
    let report = devmig_fleet::sim::HostPlan::draw(5, 0, 8).report(&reg, "sim", &url0, now_ns - 60_000_000_000);
    assert_eq!(c.put(&put).bearer_auth(READ_SECRET).json(&report).send().await.expect("send").status(), 403);
    // The agent already pushed a newer generation: this old one is ignored.
    let r = c.put(&put).bearer_auth(&token).json(&report).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.expect("json")["outcome"], "stale");
    // Path and body must name the same host; device ids are validated before anything is stored.
    let other = format!("{}/api/v1/hosts/sim-r00-0001/report", lab.url);
    assert_eq!(c.put(&other).bearer_auth(ADMIN_SECRET).json(&report).send().await.expect("send").status(), 400);
    let mut bad = report.clone();
    bad.generation = now_ns + 1_000;
    bad.devices[0].id = "../../etc".into();
    let r = c.put(&put).bearer_auth(&token).json(&bad).send().await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("../../etc"));
    let mut twice = report.clone();
    twice.generation = now_ns + 2_000;
    twice.devices.push(twice.devices[0].clone());
    let r = c.put(&put).bearer_auth(&token).json(&twice).send().await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("listed twice"));
    // Placements need admin; a malformed one is a 400 naming the field.
    let place = format!("{}/api/v1/placements", lab.url);
    let body = serde_json::json!({"sources": [{"host": "sim-r00-0000", "device": "0000:3d:00.1"}], "bogus": 1});
    assert_eq!(c.post(&place).bearer_auth(READ_SECRET).json(&body).send().await.expect("send").status(), 403);
    let r = c.post(&place).bearer_auth(ADMIN_SECRET).json(&body).send().await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("bogus"));
    let body = serde_json::json!({"sources": [{"host": "sim-r00-0000", "device": "0000:3d:00.1"}]});
    let r = c.post(&place).bearer_auth(ADMIN_SECRET).json(&body).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let p: serde_json::Value = r.json().await.expect("json");
    assert_eq!(p["schema"], "devmig.placement/v1");
    // The OpenAPI document comes from the router's own table: every route, its statuses, auth.
    let doc = common::get_json(&c, &format!("{}/api/v1/openapi.json", lab.url), READ_SECRET).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let place_op = &doc["paths"]["/api/v1/placements"]["post"];
    for code in ["200", "400", "401", "403", "404", "409"] {
        assert!(place_op["responses"][code].is_object(), "placements lacks {code}");
    }
    assert_eq!(place_op["security"][0]["bearer"][0], "admin");
    assert_eq!(doc["paths"]["/api/v1/hosts/{host}/report"]["put"]["security"][0]["bearer"][0], "report");
    assert_eq!(doc["paths"]["/healthz"]["get"]["security"], serde_json::json!([]));
    // Metrics: reports by outcome, placements, hosts by state.
    let metrics = format!("{}/metrics", lab.url);
    assert_eq!(c.get(&metrics).send().await.expect("send").status(), 401);
    let text = c.get(&metrics).bearer_auth(READ_SECRET).send().await.expect("send").text().await.expect("text");
    assert!(text.contains("devmig_fleet_reports_total{outcome=\"applied\"} 3"), "{text}");
    assert!(text.contains("devmig_fleet_reports_total{outcome=\"stale\"} 1"), "{text}");
    assert!(text.contains("devmig_fleet_hosts{state=\"fresh\"} 3"), "{text}");
    assert!(text.contains("devmig_fleet_placements_total{outcome=\"placed\"}"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_refreshes_through_two_replicas_keep_every_hosts_newest_generation() {
    let backend = tokio::task::spawn_blocking(Backend::postgres).await.expect("join");
    let url = backend.url();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (devmig_fleet::Store::open(&url, 4).expect("a"), devmig_fleet::Store::open(&url, 4).expect("b"))
    })
    .await
    .expect("join");
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let reg = Registry::new(Catalog::embedded());
    let reports: Vec<_> = (0..24)
        .map(|i| devmig_fleet::sim::HostPlan::draw(3, i, 8).report(&reg, "sim", "http://127.0.0.1:9", 1))
        .collect();
    for r in &reports {
        assert_eq!(a.apply_report(r, now_ms()).expect("first"), ReportOutcome::Applied);
    }
    // 8 pushers, each refreshing every host with rising generations through either replica:
    // unchanged reports go through the batches, and none may be lost or reordered.
    let mut handles = Vec::new();
    for p in 0..8u64 {
        let (store, reports) = (if p % 2 == 0 { a.clone() } else { b.clone() }, reports.clone());
        handles.push(tokio::task::spawn_blocking(move || {
            let mut outcomes = Vec::new();
            for round in 0..10u64 {
                for r in &reports {
                    let mut r = r.clone();
                    r.generation = 2 + round * 8 + p;
                    outcomes.push(store.apply_report(&r, now_ms()).expect("refresh"));
                }
            }
            outcomes
        }));
    }
    let mut unchanged = 0;
    for h in handles {
        for o in h.await.expect("join") {
            assert_ne!(o, ReportOutcome::Applied, "an unchanged report rewrote devices");
            unchanged += usize::from(o == ReportOutcome::Unchanged);
        }
    }
    assert!(unchanged >= 24, "{unchanged} refreshes written");
    let store = a.clone();
    let hosts = tokio::task::spawn_blocking(move || store.hosts(now_ms()).expect("hosts")).await.expect("join");
    assert_eq!(hosts.len(), 24);
    for h in hosts {
        assert_eq!(h.generation, 2 + 9 * 8 + 7, "{} lost its newest refresh", h.name);
    }
}
