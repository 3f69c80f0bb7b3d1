//! The agent's API through its router, over mounted simfs hosts.
mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{ADMIN, READ, call, call_raw, check, host_a, host_b, lab, plain_lab, seg};
use devmig_core::tree::ExampleHost;
use devmig_core::tree::example_uuids::{A_MTTY, A_VGPU, B_VGPU_EIGHTH, B_VGPU_HALF};
use serde_json::{Value, json};

async fn version_on(l: &common::Lab, device: &str) -> String {
    let (s, v) =
        call(l, Method::GET, &format!("/api/v1/devices/{}/migration-version", seg(device)), Some(READ), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["version"].as_str().expect("version").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_anonymous_and_scopes_hold() {
    // A plain tree: no root, no FUSE needed for what this checks.
    let b = plain_lab(ExampleHost::B);
    let (s, p) = call(&b, Method::GET, "/api/v1/devices", None, None).await;
    assert_eq!(
        (s, p["code"].as_str(), p["type"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"), Some("urn:devmig:problem:unauthorized"))
    );
    assert_eq!(
        call(&b, Method::GET, "/api/v1/devices", Some("wrong-token-0123456789"), None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, list) = call(&b, Method::GET, "/api/v1/devices", Some(READ), None).await;
    assert_eq!((s, list["schema"].as_str()), (StatusCode::OK, Some("devmig.list/v1")));
    let body = json!({"version": "mtty-v1-0.1.0-mtty-2"});
    let (s, p) = call(
        &b,
        Method::POST,
        &format!("/api/v1/devices/{}/check", seg("mtty/mtty-2")),
        Some(READ),
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert!(!p["detail"].as_str().unwrap_or("").contains(READ), "no token leaks");
    assert_eq!(call(&b, Method::GET, "/api/v1/claims", Some(READ), None).await.0, StatusCode::OK);
    assert_eq!(call(&b, Method::GET, "/metrics", None, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&b, Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    assert_eq!(call(&b, Method::GET, "/readyz", None, None).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_it_reaches_sysfs() {
    // A plain tree: no root, no FUSE needed for what this checks.
    let b = plain_lab(ExampleHost::B);
    for id in ["..%2F..%2Fetc", "0000:00:02.0%2F..", "%2E%2E", "x%00y"] {
        let (s, p) = call(&b, Method::GET, &format!("/api/v1/devices/{id}"), Some(READ), None).await;
        assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_device_id")), "{id}: {p}");
    }
    // Unknown paths and methods, and path segments that are not UTF-8, answer problem documents too.
    let (s, p) = call(&b, Method::GET, "/api/v1/devices/%FF%FE", Some(READ), None).await;
    assert_eq!((s, p["type"].as_str()), (StatusCode::BAD_REQUEST, Some("urn:devmig:problem:bad_request")), "{p}");
    let (s, p) = call(&b, Method::GET, "/api/v1/nope", Some(READ), None).await;
    assert_eq!((s, p["type"].as_str()), (StatusCode::NOT_FOUND, Some("urn:devmig:problem:no_route")), "{p}");
    let (s, p) = call(&b, Method::PATCH, "/api/v1/devices", Some(ADMIN), None).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")), "{p}");
    let target = format!("/api/v1/devices/{}/check", seg("mtty/mtty-2"));
    let (s, p) = call(&b, Method::POST, &target, Some(ADMIN), Some(json!({"version": "caf\u{e9}"}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_version")));
    let (s, p) = call(&b, Method::POST, &target, Some(ADMIN), Some(json!({"version": "x".repeat(4096)}))).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_version")));
    let (s, _) =
        call_raw(&b, Method::POST, &target, ADMIN, format!("{{\"version\": \"{}\"}}", "y".repeat(20_000)).into_bytes())
            .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, p) =
        call(&b, Method::POST, &target, Some(ADMIN), Some(json!({"version": "mtty-v1-0.1.0-mtty-2", "extra": 1})))
            .await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_request")));
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("extra")), "{p}");
    let (s, p) = call(&b, Method::GET, "/api/v1/devices/0000:99:00.0", Some(READ), None).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::NOT_FOUND, Some("device_not_found")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_host_check_through_two_agents() {
    let (a, b) = (host_a(), host_b());
    let v = version_on(&a, A_VGPU).await;
    let (s, r) = check(&b, B_VGPU_HALF, &v).await;
    assert_eq!(
        (s, r["verdict"].as_str(), r["to"]["source"].as_str()),
        (StatusCode::OK, Some("compatible"), Some("kernel")),
        "{r}"
    );
    let (s, r) = check(&b, B_VGPU_EIGHTH, &v).await;
    assert_eq!((s, r["verdict"].as_str()), (StatusCode::OK, Some("incompatible")));
    let codes: Vec<&str> =
        r["reasons"].as_array().expect("reasons").iter().filter_map(|x| x["code"].as_str()).collect();
    assert!(codes.contains(&"target_rejected") && codes.contains(&"i915.share"), "{codes:?}");
    let (s, m) = call(&b, Method::POST, "/api/v1/match", Some(ADMIN), Some(json!({"version": v}))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        m["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .any(|c| c["device"] == B_VGPU_HALF && c["verdict"] == "compatible")
    );
    let text = b.state.agent.metrics.render();
    assert!(text.contains("devmig_agent_checks_total{verdict=\"compatible\"} 1"), "{text}");
    assert!(text.contains("devmig_agent_checks_total{verdict=\"incompatible\"} 1"), "{text}");
    assert!(text.contains("devmig_agent_check_duration_seconds_count 2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_attribute_answers_504_error_and_blocks_nothing_else() {
    let h = lab(&devmig_testkit::hung_mtty_spec("migration_version", "write"), Duration::from_millis(400));
    let (u1, u2) = (
        format!("/api/v1/devices/{}/check", seg("mtty/mtty-1")),
        format!("/api/v1/devices/{}/check", seg("mtty/mtty-2")),
    );
    let hung = call(&h, Method::POST, &u1, Some(ADMIN), Some(json!({"version": "mtty-v1-0.1.0-mtty-1"})));
    let other = call(&h, Method::POST, &u2, Some(ADMIN), Some(json!({"version": "mtty-v1-0.1.0-mtty-2"})));
    let ((s1, r1), (s2, r2)) = tokio::join!(hung, other);
    assert_eq!((s1, r1["verdict"].as_str()), (StatusCode::GATEWAY_TIMEOUT, Some("error")), "{r1}");
    assert_eq!((s2, r2["verdict"].as_str()), (StatusCode::OK, Some("identical")), "{r2}");
    let text = h.state.agent.metrics.render();
    assert!(text.contains("devmig_agent_sysfs_timeouts_total 1"), "{text}");
}

async fn claim(l: &common::Lab, migration: &str, version: &str, target: Value) -> (StatusCode, Value) {
    call(
        l,
        Method::POST,
        "/api/v1/claims",
        Some(ADMIN),
        Some(json!({"migration_id": migration, "source_version": version, "target": target, "ttl_seconds": 600})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_verified_exclusive_idempotent_and_released() {
    let (a, b) = (host_a(), host_b());
    let v = version_on(&a, A_VGPU).await;
    let (s, c) = claim(&b, "m-1", &v, json!({"device": B_VGPU_HALF})).await;
    assert_eq!(
        (s, c["state"].as_str(), c["device"].as_str()),
        (StatusCode::CREATED, Some("active"), Some(B_VGPU_HALF)),
        "{c}"
    );
    let (s, again) = claim(&b, "m-1", &v, json!({"device": B_VGPU_HALF})).await;
    assert_eq!((s, &again["id"]), (StatusCode::OK, &c["id"]), "idempotent on the migration id");
    let (s, p) = claim(&b, "m-2", &v, json!({"device": B_VGPU_HALF})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("target_claimed")));
    let (s, p) = claim(&b, "m-1", &v, json!({"device": B_VGPU_EIGHTH})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("migration_id_conflict")));
    let (s, p) = claim(&b, "m-3", &v, json!({"device": B_VGPU_EIGHTH})).await;
    assert_eq!(
        (s, p["code"].as_str(), p["report"]["verdict"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("target_rejected"), Some("incompatible"))
    );
    let id = c["id"].as_str().expect("id");
    let (s, r) = call(&b, Method::DELETE, &format!("/api/v1/claims/{id}"), Some(ADMIN), None).await;
    assert_eq!((s, r["state"].as_str()), (StatusCode::OK, Some("released")));
    assert_eq!(claim(&b, "m-2", &v, json!({"device": B_VGPU_HALF})).await.0, StatusCode::CREATED, "free again");
    let text = b.state.agent.metrics.render();
    assert!(
        text.contains("devmig_agent_claims{state=\"active\"} 1")
            && text.contains("devmig_agent_claims{state=\"released\"} 1"),
        "{text}"
    );
    assert_eq!(call(&b, Method::DELETE, "/api/v1/claims/nope", Some(ADMIN), None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_claim_creates_the_target_with_the_sources_share() {
    let a = host_a();
    let v = version_on(&a, A_VGPU).await; // half a GPU; host A has half free
    let (s, c) = claim(&a, "m-gvt", &v, json!({"type": "0000:00:02.0/i915-GVTg_V5_8"})).await;
    assert_eq!((s, c["created_mdev"].as_bool()), (StatusCode::CREATED, Some(true)), "{c}");
    let uuid = c["device"].as_str().expect("uuid").to_string();
    let dir = a.mounted.path().join(format!("sys/bus/mdev/devices/{uuid}"));
    assert_eq!(std::fs::read_to_string(dir.join("aggregator")).expect("aggregator").trim(), "4", "V5_8 x4 == V5_4 x2");
    // The GPU is now full: a second one does not fit.
    let (s, p) = claim(&a, "m-gvt-2", &v, json!({"type": "0000:00:02.0/i915-GVTg_V5_8"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("no_free_instance")), "{p}");
    let (s, _) =
        call(&a, Method::DELETE, &format!("/api/v1/claims/{}", c["id"].as_str().expect("id")), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!dir.exists(), "releasing removes the mdev the claim created");
    let m = version_on(&a, A_MTTY).await;
    let (s, c) = claim(&a, "m-mtty", &m, json!({"type": "mtty/mtty-2"})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_claim_ends_and_keeps_the_mdev_it_created() {
    let a = host_a();
    let m = version_on(&a, A_MTTY).await;
    let (s, c) = claim(&a, "m-done", &m, json!({"type": "mtty/mtty-2"})).await;
    assert_eq!((s, c["created_mdev"].as_bool()), (StatusCode::CREATED, Some(true)), "{c}");
    let (id, uuid) = (c["id"].as_str().expect("id"), c["device"].as_str().expect("uuid"));
    let dir = a.mounted.path().join(format!("sys/bus/mdev/devices/{uuid}"));
    let complete = format!("/api/v1/claims/{id}/complete");
    assert_eq!(call(&a, Method::POST, &complete, Some(READ), None).await.0, StatusCode::FORBIDDEN, "admin only");
    let (s, done) = call(&a, Method::POST, &complete, Some(ADMIN), None).await;
    assert_eq!((s, done["state"].as_str()), (StatusCode::OK, Some("completed")), "{done}");
    assert!(dir.exists(), "the VM's mdev stays");
    // Neither a release nor a second completion touches it now.
    let (s, r) = call(&a, Method::DELETE, &format!("/api/v1/claims/{id}"), Some(ADMIN), None).await;
    assert_eq!((s, r["state"].as_str()), (StatusCode::OK, Some("completed")), "{r}");
    assert_eq!(call(&a, Method::POST, &complete, Some(ADMIN), None).await.1["state"], "completed");
    assert!(dir.exists(), "a late release does not remove the VM's mdev");
    let (s, list) = call(&a, Method::GET, "/api/v1/claims", Some(READ), None).await;
    assert!(s == StatusCode::OK && list["claims"].as_array().expect("claims").is_empty(), "no longer listed: {list}");
    assert_eq!(
        call(&a, Method::POST, "/api/v1/claims/nope/complete", Some(ADMIN), None).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(a.state.agent.metrics.render().contains("devmig_agent_claims{state=\"completed\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_one_target_exactly_one_wins_and_any_gives_k() {
    let (a, b) = (host_a(), host_b());
    let v = version_on(&a, A_VGPU).await;
    let races =
        (0..16).map(|i| claim(&b, Box::leak(format!("race-{i}").into_boxed_str()), &v, json!({"device": B_VGPU_HALF})));
    let results = futures::future::join_all(races).await;
    let won = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    let lost = results.iter().filter(|(s, p)| *s == StatusCode::CONFLICT && p["code"] == "target_claimed").count();
    assert_eq!((won, lost), (1, 15));

    // Host B has exactly two targets for host A's NVMe VF: its own 3d:00.1 and 5e:00.2 (model-decided).
    let nv = version_on(&a, "0000:3d:00.1").await;
    let any = (0..8).map(|i| claim(&b, Box::leak(format!("any-{i}").into_boxed_str()), &nv, json!("any")));
    let results = futures::future::join_all(any).await;
    let mut devices: Vec<&str> =
        results.iter().filter(|(s, _)| *s == StatusCode::CREATED).filter_map(|(_, c)| c["device"].as_str()).collect();
    devices.sort();
    assert_eq!(devices, ["0000:3d:00.1", "0000:5e:00.2"]);
    assert_eq!(results.iter().filter(|(s, p)| *s == StatusCode::CONFLICT && p["code"] == "no_free_target").count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_survive_a_restart_orphans_are_reported_and_ttls_expire() {
    let a = host_a();
    let v = version_on(&a, A_VGPU).await;
    let (_, kept) = claim(&a, "m-keep", &v, json!({"device": "0000:00:02.0/i915-GVTg_V5_4"})).await;
    let m = version_on(&a, A_MTTY).await;
    let (_, made) = claim(&a, "m-orphan", &m, json!({"type": "mtty/mtty-2"})).await;
    // The agent goes away; someone removes the mdev behind its back; a new agent starts on the same state.
    let root = a.mounted.path().to_path_buf();
    let state = a.state_dir.path().to_path_buf();
    std::fs::write(root.join(format!("sys/bus/mdev/devices/{}/remove", made["device"].as_str().expect("uuid"))), "1")
        .expect("remove");
    let again = devmig_agent::Agent::open(
        &common::options(&root, &state, Duration::from_secs(5)),
        devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded()),
    )
    .expect("reopen");
    let claims = again.claims().expect("claims");
    let by_id =
        |c: &Value| claims.iter().find(|x| x.id == c["id"].as_str().expect("id")).map(|x| (x.state, x.note.clone()));
    assert_eq!(by_id(&kept).map(|(s, _)| s), Some(devmig_agent::claims::ClaimState::Active));
    let (state_o, note) = by_id(&made).expect("orphan listed, not dropped");
    assert_eq!(state_o, devmig_agent::claims::ClaimState::Orphaned);
    assert!(note.is_some_and(|n| n.contains("vanished")));

    // A claim with a one-second ttl expires, and its created mdev goes with it.
    let req = devmig_agent::ClaimRequest {
        migration_id: "m-ttl".parse().expect("id"),
        source_version: m.clone(),
        target: devmig_agent::ClaimTarget::Type("mtty/mtty-2".into()),
        ttl_seconds: devmig_api::Ttl::try_from(1).expect("ttl"),
    };
    let (c, _) = again.claim(&req, "test").expect("claim");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while again.expire().expect("expire") == 0 {
        assert!(std::time::Instant::now() < deadline, "the claim never expired");
        std::thread::yield_now();
    }
    assert!(!root.join(format!("sys/bus/mdev/devices/{}", c.device)).exists());
}

#[test]
fn the_openapi_document_covers_every_route_and_status() {
    let doc = devmig_agent::api::openapi();
    for r in devmig_agent::api::routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", r.method, r.path);
        let mut expected: Vec<u16> = r.responses.iter().map(|(c, _)| *c).collect();
        if r.scope.is_some() {
            expected.extend([401, 403]);
        }
        for code in expected {
            assert!(op["responses"][code.to_string()].is_object(), "{} {} lacks {code}", r.method, r.path);
        }
    }
    let path: std::path::PathBuf = [env!("CARGO_MANIFEST_DIR"), "openapi.json"].iter().collect();
    devmig_testkit::assert_committed_json(&path, &doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_with_one_migration_id_make_one_claim_and_leave_no_stray_mdev() {
    let a = host_a();
    let m = version_on(&a, A_MTTY).await;
    let devices = a.mounted.path().join("sys/bus/mdev/devices");
    let before = std::fs::read_dir(&devices).expect("dir").count();
    let same = (0..8).map(|_| claim(&a, "vm-same", &m, json!({"type": "mtty/mtty-2"})));
    let results = futures::future::join_all(same).await;
    let created: Vec<&Value> = results.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, c)| c).collect();
    assert_eq!(created.len(), 1, "{results:?}");
    let id = &created[0]["id"];
    assert!(
        results.iter().all(|(s, c)| (*s == StatusCode::CREATED || *s == StatusCode::OK) && &c["id"] == id),
        "{results:?}"
    );
    assert_eq!(
        std::fs::read_dir(&devices).expect("dir").count(),
        before + 1,
        "exactly one new mdev; the losers removed theirs"
    );
}

/// The auth matrix over every route the OpenAPI document lists: no token, each scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_scopes_its_document_names() {
    // A plain tree: no root, no FUSE needed for what this checks.
    let b = plain_lab(ExampleHost::B);
    let ops = devmig_testkit::openapi_operations(&devmig_agent::api::openapi());
    for (path, method, needed) in &ops {
        let uri = path.replace("{id}", "0000:00:02.0");
        let method: Method = method.parse().expect("method");
        for (token, scope) in [(None, None), (Some(READ), Some("read")), (Some(ADMIN), Some("admin"))] {
            let body = (method == Method::POST).then(|| json!({}));
            let (s, _) = call(&b, method.clone(), &uri, token, body).await;
            let refused = s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;
            let admitted = devmig_testkit::scope_admits(needed.as_deref(), scope);
            assert_eq!(!refused, admitted, "{method} {path} with {scope:?} (needs {needed:?}): {s}");
            if token.is_none() && needed.is_some() {
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{method} {path} without a token");
            }
        }
    }
    assert!(ops.len() >= 13, "{} routes in the document", ops.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_writes_the_target_once_and_match_takes_the_devices_lock() {
    let a = host_a();
    // Host B, with a driver that takes 1.5 s to answer a write to the half-GPU's attribute.
    let spec = format!(
        "{}\n[[fault]]\ndevice = \"{B_VGPU_HALF}\"\nattribute = \"migration_version\"\nop = \"write\"\ndelay_ms = 1500\n",
        devmig_simfs::spec::EXAMPLE_HOST_B
    );
    let b = lab(&spec, Duration::from_secs(10));
    let v = version_on(&a, A_VGPU).await;
    let writes = |device: &str| b.mounted.host().version_writes(device);
    let (s, r) = check(&b, B_VGPU_EIGHTH, &v).await;
    assert_eq!((s, r["verdict"].as_str()), (StatusCode::OK, Some("incompatible")), "{r}");
    assert_eq!(writes(B_VGPU_EIGHTH), 1, "a refused check is one write(2), its reasons come from the model");

    // A check and a match at once (two requests, two tasks): the match's write to the
    // half-GPU waits for the check's.
    let (state, body) = (b.state.clone(), json!({"version": v}));
    let check = tokio::spawn(async move {
        let uri = format!("/api/v1/devices/{B_VGPU_HALF}/check");
        common::call(&state, Method::POST, &uri, Some(ADMIN), Some(body)).await
    });
    let (state, body) = (b.state.clone(), json!({"version": v}));
    let matching = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        common::call(&state, Method::POST, "/api/v1/match", Some(ADMIN), Some(body)).await
    });
    let ((cs, c), (ms, m)) = (check.await.expect("check task"), matching.await.expect("match task"));
    assert_eq!((cs, c["verdict"].as_str()), (StatusCode::OK, Some("compatible")), "{c}");
    assert_eq!(ms, StatusCode::OK, "{m}");
    let host = b.mounted.host();
    assert_eq!(host.version_writes(B_VGPU_HALF), 2, "the check's write and the match's: {m}");
    assert_eq!(host.concurrent_version_writes(B_VGPU_HALF), 1, "writes to one device never overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_marks_claimed_devices_and_full_types_and_writes_neither() {
    let a = host_a();
    let v = version_on(&a, A_VGPU).await; // half a GPU; host A has half free
    let (s, c) = claim(&a, "m-fill", &v, json!({"type": "0000:00:02.0/i915-GVTg_V5_8"})).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let created = c["device"].as_str().expect("uuid").to_string();
    let before = a.mounted.host().version_writes(&created);
    let (s, m) = call(&a, Method::POST, "/api/v1/match", Some(ADMIN), Some(json!({"version": v}))).await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let candidates = m["candidates"].as_array().expect("candidates");
    let of =
        |device: &str| candidates.iter().find(|c| c["device"] == device).unwrap_or_else(|| panic!("{device}: {m}"));
    for ty in ["0000:00:02.0/i915-GVTg_V5_2", "0000:00:02.0/i915-GVTg_V5_4", "0000:00:02.0/i915-GVTg_V5_8"] {
        assert_eq!(of(ty)["unusable"], "no_free_instance", "{ty}");
        assert!(of(ty).get("verdict").is_none(), "a full type is not written to: {}", of(ty));
    }
    assert_eq!(of(&created)["unusable"], "claimed");
    assert_eq!(a.mounted.host().version_writes(&created), before, "a claimed device is not written to");
    // Usable accepted targets come first; none of the marked ones is among them.
    let first_unusable = candidates.iter().position(|c| c.get("unusable").is_some()).expect("some are unusable");
    assert!(candidates[..first_unusable].iter().all(|c| c["verdict"] == "compatible" || c["verdict"] == "identical"));
    // So "any" never picks them: the only usable match is A's own vGPU, and claiming it works.
    let (s, c) = claim(&a, "m-any", &v, json!("any")).await;
    assert_eq!((s, c["device"].as_str()), (StatusCode::CREATED, Some(A_VGPU)), "{c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_claim_on_an_sriov_vgpu_vf_sets_its_type_and_a_release_clears_it() {
    let l = lab(devmig_simfs::spec::EXAMPLE_HOST_L40S, Duration::from_secs(5));
    let v = version_on(&l, "0000:41:00.4").await; // an L40S-2Q vGPU on a VF
    assert_eq!(v, "nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q");
    let file = |vf: &str| l.mounted.path().join(format!("sys/bus/pci/devices/{vf}/nvidia/current_vgpu_type"));
    let read = |vf: &str| std::fs::read_to_string(file(vf)).expect("current_vgpu_type").trim().to_string();
    // Another profile is refused by the model before anything is written.
    let (s, p) = claim(&l, "m-4q", &v, json!({"type": "0000:41:00.7/nvidia-1150"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{p}");
    assert_eq!(read("0000:41:00.7"), "0", "nothing written");
    let (s, c) = claim(&l, "m-vf", &v, json!({"type": "0000:41:00.6/nvidia-1148"})).await;
    assert_eq!(
        (s, c["created_mdev"].as_bool(), c["device"].as_str()),
        (StatusCode::CREATED, Some(true), Some("0000:41:00.6")),
        "{c}"
    );
    assert_eq!(read("0000:41:00.6"), "1148", "the claim gave the VF the source's type");
    // The VF has a type now: a second type claim on it finds no free instance.
    let (s, p) = claim(&l, "m-vf-2", &v, json!({"type": "0000:41:00.6/nvidia-1148"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("no_free_instance")), "{p}");
    let (s, _) =
        call(&l, Method::DELETE, &format!("/api/v1/claims/{}", c["id"].as_str().expect("id")), Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(read("0000:41:00.6"), "0", "releasing clears the type the claim set");
}

/// An agent that died between giving a VF a type and storing the claim: the next start clears
/// the type (no claim holds the VF), as it removes such an mdev.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_clears_a_vf_type_no_claim_holds() {
    let l = lab(devmig_simfs::spec::EXAMPLE_HOST_L40S, Duration::from_secs(5));
    let file = l.mounted.path().join("sys/bus/pci/devices/0000:41:00.7/nvidia/current_vgpu_type");
    std::fs::write(&file, "1148").expect("set the type as the agent would");
    let db = rusqlite::Connection::open(l.state_dir.path().join("claims.db")).expect("claims.db");
    db.execute("INSERT INTO pending_mdevs(uuid, created_at) VALUES ('0000:41:00.7', 0)", []).expect("pending row");
    drop(db);
    let opts = common::options(l.mounted.path(), l.state_dir.path(), Duration::from_secs(5));
    let _again = devmig_agent::Agent::open(&opts, devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded()))
        .expect("restart");
    assert_eq!(std::fs::read_to_string(&file).expect("read").trim(), "0", "the orphaned type is cleared");
}

/// A type claim on a VF that another claim is giving a type right now (its pending row is
/// there) is a conflict, not an internal error, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_claim_racing_another_on_one_vf_is_a_conflict() {
    let l = lab(devmig_simfs::spec::EXAMPLE_HOST_L40S, Duration::from_secs(5));
    let v = version_on(&l, "0000:41:00.4").await;
    let db = rusqlite::Connection::open(l.state_dir.path().join("claims.db")).expect("claims.db");
    db.execute("INSERT INTO pending_mdevs(uuid, created_at) VALUES ('0000:41:00.6', 0)", []).expect("pending row");
    let (s, p) = claim(&l, "m-race", &v, json!({"type": "0000:41:00.6/nvidia-1148"})).await;
    assert_eq!((s, p["code"].as_str()), (StatusCode::CONFLICT, Some("no_free_instance")), "{p}");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("another claim")), "{p}");
    let file = l.mounted.path().join("sys/bus/pci/devices/0000:41:00.6/nvidia/current_vgpu_type");
    assert_eq!(std::fs::read_to_string(file).expect("read").trim(), "0", "nothing written");
}
