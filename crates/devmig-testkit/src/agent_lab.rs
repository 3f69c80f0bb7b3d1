//! Agent labs for API tests, called through the router with `oneshot` (no socket): an agent
//! over a plain kernel-shaped tree ([`plain_lab`]: no root, no FUSE; attribute writes replace
//! file contents, so no kernel semantics) or over a mounted simfs host ([`mounted_lab`]: root).
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use devmig_agent::api::{AppState, app};
use devmig_agent::{Agent, AgentOptions, Tokens};
use devmig_core::tree::{ExampleHost, TreeBuilder, example_host};
use devmig_simfs::{HostSpec, Mounted, mount};
use devmig_vendors::{Catalog, Registry};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The admin token's secret.
pub const ADMIN: &str = "admin-secret-0123456789";
/// The read token's secret.
pub const READ: &str = "read-secret-0123456789";

/// The agent's tokens: `nova` (admin, [`ADMIN`]) and `monitor` (read, [`READ`]).
pub fn tokens() -> Tokens {
    Tokens::from_toml(
        &format!(
            "[[token]]\nname = \"nova\"\nscope = \"admin\"\nsecret = \"{ADMIN}\"\n\
             [[token]]\nname = \"monitor\"\nscope = \"read\"\nsecret = \"{READ}\"\n"
        ),
        "test",
    )
    .expect("tokens")
}

/// Agent options for `root` and `state` (4 I/O workers, `timeout` per sysfs operation).
pub fn options(root: &std::path::Path, state: &std::path::Path, timeout: Duration) -> AgentOptions {
    AgentOptions { sysfs_root: root.into(), state_dir: state.into(), timeout, io_workers: 4, shared_io: None }
}

fn state(root: &std::path::Path, state_dir: &std::path::Path, timeout: Duration) -> AppState {
    let agent = Agent::open(&options(root, state_dir, timeout), Registry::new(Catalog::embedded())).expect("agent");
    AppState { agent: Arc::new(agent), tokens: Arc::new(tokens()) }
}

/// An agent over a plain tree of one of core's example hosts.
pub struct PlainLab {
    /// The agent and its tokens.
    pub state: AppState,
    /// The tree's root (the agent's sysfs root).
    pub root: tempfile::TempDir,
    /// The agent's state dir.
    pub state_dir: tempfile::TempDir,
}

/// [`PlainLab`] of `which`: runs as any user, without FUSE.
pub fn plain_lab(which: ExampleHost) -> PlainLab {
    let root = tempfile::tempdir().expect("root");
    example_host(&TreeBuilder::new(root.path()), which).expect("tree");
    let state_dir = tempfile::tempdir().expect("state");
    PlainLab { state: state(root.path(), state_dir.path(), Duration::from_secs(5)), root, state_dir }
}

/// An agent over a mounted simfs host (unmounted on drop, also on panic).
pub struct MountedLab {
    /// The agent and its tokens.
    pub state: AppState,
    /// The mount.
    pub mounted: Mounted,
    /// The agent's state dir.
    pub state_dir: tempfile::TempDir,
    _mnt: tempfile::TempDir,
}

/// [`MountedLab`] of the host `spec` (TOML), each sysfs operation bounded by `timeout`.
/// Needs root (it mounts FUSE).
pub fn mounted_lab(spec: &str, timeout: Duration) -> MountedLab {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "a mounted lab mounts simfs and must run as root");
    let mnt = tempfile::Builder::new().prefix("devmig-agent-test-").tempdir().expect("mnt");
    let host = HostSpec::from_toml(spec, "test", &Catalog::embedded())
        .expect("spec")
        .build(Registry::new(Catalog::embedded()), "test")
        .expect("build");
    let mounted = mount(host, mnt.path()).expect("mount");
    let state_dir = tempfile::tempdir().expect("state");
    MountedLab { state: state(mnt.path(), state_dir.path(), timeout), mounted, state_dir, _mnt: mnt }
}

/// What [`call`] sends requests to: a lab, or an agent's state (what a spawned task can own).
pub trait HasAgent {
    /// The agent and its tokens.
    fn agent_state(&self) -> &AppState;
}

impl HasAgent for PlainLab {
    fn agent_state(&self) -> &AppState {
        &self.state
    }
}

impl HasAgent for MountedLab {
    fn agent_state(&self) -> &AppState {
        &self.state
    }
}

impl HasAgent for AppState {
    fn agent_state(&self) -> &AppState {
        self
    }
}

/// One request through the agent's router: the status and the JSON body (Null when not JSON).
pub async fn call(
    lab: &impl HasAgent,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let body = body.map(|b| serde_json::to_vec(&b).expect("json"));
    send(lab.agent_state(), method, uri, token, body).await
}

/// A raw body (for malformed and oversize requests).
pub async fn call_raw(
    lab: &impl HasAgent,
    method: Method,
    uri: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    send(lab.agent_state(), method, uri, Some(token), Some(body)).await
}

async fn send(
    state: &AppState,
    method: Method,
    uri: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b)
        }
        None => Body::empty(),
    };
    let res = app(state.clone()).oneshot(req.body(body).expect("request")).await.expect("response");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Polls `probe` until it answers, for at most `limit` (never a fixed sleep: 20 ms steps).
pub async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
