//! An agent over a mounted simfs host, called through its router.
#![allow(dead_code)]
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use devmig_agent::api::{AppState, app};
use devmig_agent::{Agent, AgentOptions, Tokens};
use devmig_simfs::{HostSpec, Mounted, mount};
use devmig_vendors::{Catalog, Registry};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN: &str = "admin-secret-0123456789";
pub const READ: &str = "read-secret-0123456789";

pub struct Lab {
    pub state: AppState,
    pub mounted: Mounted,
    pub state_dir: tempfile::TempDir,
    _mnt: tempfile::TempDir,
}

pub fn tokens() -> Tokens {
    Tokens::from_toml(
        &format!("[[token]]\nname = \"nova\"\nscope = \"admin\"\nsecret = \"{ADMIN}\"\n[[token]]\nname = \"monitor\"\nscope = \"read\"\nsecret = \"{READ}\"\n"),
        "test",
    )
    .expect("tokens")
}

pub fn options(root: &std::path::Path, state: &std::path::Path, timeout: Duration) -> AgentOptions {
    AgentOptions { sysfs_root: root.into(), state_dir: state.into(), timeout, io_workers: 4, shared_io: None }
}

pub fn lab(spec: &str, timeout: Duration) -> Lab {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "agent tests mount simfs and must run as root");
    let mnt = tempfile::Builder::new().prefix("devmig-agent-test-").tempdir().expect("mnt");
    let host = HostSpec::from_toml(spec, "test", &Catalog::embedded())
        .expect("spec")
        .build(Registry::new(Catalog::embedded()), "test")
        .expect("build");
    let mounted = mount(host, mnt.path()).expect("mount");
    let state_dir = tempfile::tempdir().expect("state");
    let agent = Agent::open(&options(mnt.path(), state_dir.path(), timeout), Registry::new(Catalog::embedded()))
        .expect("agent");
    Lab { state: AppState { agent: Arc::new(agent), tokens: Arc::new(tokens()) }, mounted, state_dir, _mnt: mnt }
}

pub fn host_a() -> Lab {
    lab(devmig_simfs::spec::EXAMPLE_HOST_A, Duration::from_secs(5))
}

pub fn host_b() -> Lab {
    lab(devmig_simfs::spec::EXAMPLE_HOST_B, Duration::from_secs(5))
}

/// One request through the router; the status and the JSON body (Null when not JSON).
pub async fn call(
    lab: &Lab,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_state(&lab.state, method, uri, token, body).await
}

/// [`call`] on an agent's state (what a spawned task can own).
pub async fn call_state(
    state: &AppState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&b).expect("json"))
        }
        None => Body::empty(),
    };
    let res = app(state.clone()).oneshot(req.body(body).expect("request")).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A raw body (for malformed and oversize requests).
pub async fn call_raw(lab: &Lab, method: Method, uri: &str, token: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app(lab.state.clone()).oneshot(req).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The URI path segment of a device id (a type's slash encoded): the API crate's encoder.
pub fn seg(id: &str) -> String {
    devmig_api::segment(id)
}

/// `POST /api/v1/devices/{device}/check` of `version` as an admin.
pub async fn check(lab: &Lab, device: &str, version: &str) -> (StatusCode, Value) {
    let uri = format!("/api/v1/devices/{}/check", seg(device));
    call(lab, Method::POST, &uri, Some(ADMIN), Some(serde_json::json!({ "version": version }))).await
}
