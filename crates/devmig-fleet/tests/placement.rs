//! Placement end to end, on SQLite and PostgreSQL: a real fleet server, real agents on
//! loopback (one per simulated host), step a in the database, step b and claims via agents.
mod common;

use std::collections::BTreeSet;

use common::{Backend, lab};
use devmig_fleet::placement::{PlacementRequest, SourceRef};
use devmig_fleet::{FleetError, now_ms};

fn one(host: &str, device: &str) -> SourceRef {
    SourceRef { host: Some(host.into()), device: Some(device.into()), version: None }
}

fn request(sources: Vec<SourceRef>) -> PlacementRequest {
    PlacementRequest {
        sources,
        claim: false,
        migration_id: None,
        exclude_hosts: vec![],
        max_hosts: None,
        ttl_seconds: None,
    }
}

async fn places_and_claims(backend: Backend) {
    let lab = lab(backend.url(), 12, 8, 7).await;
    let store = lab.fleet.store.clone();
    let devices =
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|_| true).expect("devices")).await.expect("join");
    let src =
        devices.iter().find(|d| d.kind == devmig_core::DeviceKind::Mdev && d.model == "i915").expect("a vGPU source");
    let nvme = devices
        .iter()
        .find(|d| d.kind == devmig_core::DeviceKind::SriovVf && d.model == "nvme" && d.host == src.host)
        .expect("an NVMe VF");

    // One device: placed on another host, the verdict of every tried host listed.
    let p = lab.fleet.place(request(vec![one(&src.host, &src.device)])).await.expect("placement");
    assert!(p.placed, "{p:#?}");
    let host = p.host.clone().expect("host");
    assert_ne!(host, src.host);
    assert!(p.tried.iter().any(|t| t.host == host && t.outcome == devmig_fleet::placement::HostOutcome::Accepted));
    let target = &p.assignments[0].target;
    // Cross-check with the vendor model on the target host's facts (the agent's own records).
    let agent = &lab.sim.hosts.iter().find(|h| h.name == host).expect("sim host").agent;
    let rec = agent.device_records().expect("records").into_iter().find(|r| &r.id == target).expect("target record");
    assert_eq!(lab.fleet.registry.decide(&src.version, &rec.facts).expect("decide"), None);

    // Two devices, claimed: distinct targets on one host, claims visible on that agent.
    let mut req = request(vec![one(&src.host, &src.device), one(&nvme.host, &nvme.device)]);
    req.claim = true;
    req.migration_id = Some("vm-42".parse().expect("id"));
    let p = lab.fleet.place(req.clone()).await.expect("placement");
    assert!(p.placed, "{p:#?}");
    {
        let host = p.host.clone().expect("host");
        let targets: BTreeSet<_> = p.assignments.iter().map(|a| a.target.clone()).collect();
        assert_eq!(targets.len(), 2);
        let agent = &lab.sim.hosts.iter().find(|h| h.name == host).expect("sim host").agent;
        let claims: Vec<_> = agent.claims().expect("claims").into_iter().map(|c| (c.migration_id, c.device)).collect();
        assert!(claims.contains(&("vm-42.0".to_string(), p.assignments[0].target.clone())), "{claims:?}");
        assert!(claims.contains(&("vm-42.1".to_string(), p.assignments[1].target.clone())), "{claims:?}");
        // The same migration again: refused, nothing claimed twice.
        match lab.fleet.place(req).await {
            Err(FleetError::Conflict(m)) => assert!(m.contains("already placed"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    // A version no host accepts: explained, counted by rule.
    let alien = SourceRef { host: None, device: None, version: Some(src.version.replace("i915-v1.", "i915-v9.")) };
    let p = lab.fleet.place(request(vec![alien])).await.expect("placement");
    assert!(!p.placed);
    let e = p.explanation.expect("explanation");
    let total: usize =
        e.groups.iter().filter(|g| g.code.starts_with("rule:") || g.code == "no_device").map(|g| g.hosts).sum();
    assert_eq!(total, 12, "{e:#?}");
    assert!(e.groups.iter().any(|g| g.code == "rule:i915.gvt_version"), "{e:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn places_and_claims_sqlite() {
    places_and_claims(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn places_and_claims_postgres() {
    places_and_claims(tokio::task::spawn_blocking(Backend::postgres).await.expect("join")).await;
}

fn domain(name: &str, hostdevs: &str) -> String {
    format!("<domain type='kvm'><name>{name}</name><devices>{hostdevs}</devices></domain>")
}

/// `POST /api/v1/vms` over HTTP: a host's VMs by their domain XML get a verdict each, their
/// devices' versions from the host's report; bad XML and bad hosts are 400s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hosts_vms_get_verdicts_over_http() {
    let lab = lab(Backend::sqlite().url(), 6, 8, 7).await;
    let store = lab.fleet.store.clone();
    let devices =
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|_| true).expect("devices")).await.expect("join");
    let src =
        devices.iter().find(|d| d.kind == devmig_core::DeviceKind::Mdev && d.model == "mtty").expect("an mtty mdev");
    let mdev = |uuid: &str| {
        format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{uuid}'/></source></hostdev>"
        )
    };
    let body = serde_json::json!({
        "host": src.host,
        "domains": [domain("vm-a", &mdev(&src.device)), domain("vm-gone", &mdev("ffffffff-ffff-4fff-bfff-ffffffffffff")), domain("vm-none", "")],
    });
    let c = reqwest::Client::new();
    let post = |b: serde_json::Value| {
        c.post(format!("{}/api/v1/vms", lab.url)).bearer_auth(common::READ_SECRET).json(&b).send()
    };
    let resp = post(body).await.expect("send");
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(v["schema"], "devmig.vms/v1");
    let vms = v["vms"].as_array().expect("vms");
    assert_eq!(vms[0]["verdict"], "migratable", "{v}");
    assert_eq!(vms[0]["devices"][0]["version"], src.version.as_str());
    assert!(vms[0]["hosts"].as_u64().is_some_and(|n| (1..=5).contains(&n)), "never its own host: {v}");
    assert_eq!(vms[1]["verdict"], "unreadable", "{v}");
    assert!(vms[1]["devices"][0]["error"].as_str().is_some_and(|e| e.contains("reported no device")), "{v}");
    assert_eq!(vms[2]["verdict"], "no_devices");
    for bad in [
        serde_json::json!({ "host": src.host, "domains": ["<domain><devices>"] }),
        serde_json::json!({ "host": "bad host", "domains": [domain("x", "")] }),
        serde_json::json!({ "host": src.host, "domains": [] }),
    ] {
        let r = post(bad.clone()).await.expect("send");
        assert_eq!(r.status(), 400, "{bad}");
    }
    let anonymous = c.post(format!("{}/api/v1/vms", lab.url)).json(&serde_json::json!({})).send().await.expect("send");
    assert_eq!(anonymous.status(), 401);
}

/// Candidates (step a alone) and the compatibility map agree with the model and with each
/// other: every candidate's targets pass the model's step a, the candidates and the explained
/// hosts add up to the fleet, and each class's accepting hosts are baseline's count and the sum
/// of its pools.
async fn candidates_and_the_map_agree(backend: Backend) {
    let lab = lab(backend.url(), 12, 8, 11).await;
    let store = lab.fleet.store.clone();
    let devices =
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|_| true).expect("devices")).await.expect("join");
    let src = devices.iter().find(|d| d.kind == devmig_core::DeviceKind::SriovVf).expect("a VF source");
    let fleet = lab.fleet.clone();
    let req = devmig_fleet::placement::CandidatesRequest {
        sources: vec![one(&src.host, &src.device)],
        exclude_hosts: vec![],
        limit: Some(3),
    };
    let c = tokio::task::spawn_blocking(move || fleet.candidates(&req)).await.expect("join").expect("candidates");
    assert_eq!(c.sources[0].version, src.version);
    assert!(c.candidates.len() <= 3 && c.more == (c.candidate_hosts > 3), "{c:#?}");
    let req = lab.fleet.registry.requirement(&src.version).expect("requirement");
    for h in &c.candidates {
        assert_ne!(h.host, src.host);
        for t in &h.targets[0] {
            let d = devices.iter().find(|d| d.host == h.host && &d.device == t).expect("target row");
            assert!(req.satisfied_by(&d.attributes) && d.free, "{t} on {}", h.host);
        }
    }
    let explained: usize = c.explanation.groups.iter().map(|g| g.hosts).sum();
    assert_eq!(c.candidate_hosts + explained, 11, "{c:#?}");
    // Bad input is refused, never an empty answer.
    let fleet = lab.fleet.clone();
    let bad = devmig_fleet::placement::CandidatesRequest { sources: vec![], exclude_hosts: vec![], limit: None };
    assert!(matches!(
        tokio::task::spawn_blocking(move || fleet.candidates(&bad)).await.expect("join"),
        Err(FleetError::BadRequest(_))
    ));

    let fleet = lab.fleet.clone();
    let map = tokio::task::spawn_blocking(move || devmig_fleet::compat::compatibility(&fleet))
        .await
        .expect("join")
        .expect("map");
    assert_eq!((map.fresh_hosts, map.stale_hosts), (12, 0));
    assert_eq!(map.pools.iter().map(|p| p.hosts).sum::<usize>(), 12);
    let baseline = devmig_fleet::plans::baseline(&lab.fleet, "*", &|_, _| {}).await.expect("baseline");
    for (i, class) in map.classes.iter().enumerate() {
        let in_pools: usize = map.pools.iter().filter(|p| p.accepts.contains(&i)).map(|p| p.hosts).sum();
        assert_eq!(in_pools, class.hosts, "{class:?}");
        let b = baseline
            .everywhere
            .iter()
            .chain(&baseline.partial)
            .find(|a| a.version == class.version)
            .unwrap_or_else(|| panic!("baseline has {}", class.version));
        assert_eq!(b.hosts, class.hosts, "{}", class.version);
    }
    assert_eq!(map.classes.len(), baseline.everywhere.len() + baseline.partial.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn candidates_and_the_map_agree_sqlite() {
    candidates_and_the_map_agree(Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn candidates_and_the_map_agree_postgres() {
    candidates_and_the_map_agree(tokio::task::spawn_blocking(Backend::postgres).await.expect("join")).await;
}
