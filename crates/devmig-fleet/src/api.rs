//! The fleet's REST API under `/api/v1`, behind bearer tokens (`report` for agents pushing,
//! `read` for queries, `admin` for placements and evacuations).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use axum::{Json, Router};
use devmig_agent::api::{RouteDoc, method_name, openapi_document};
use devmig_agent::{Caller, Denied, HostReport, Scope, Tokens};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::placement::{Fleet, PlacementRequest};
use crate::plans;
use crate::{FleetError, blocking, now_ms};
use devmig_api::fleet::{EvacuationRequest, PoolRequest};

/// Shared state of the routes.
#[derive(Debug, Clone)]
pub struct FleetState {
    /// The fleet.
    pub fleet: Fleet,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
    /// The last compatibility map and when it was computed.
    compat: Arc<tokio::sync::Mutex<Option<CachedMap>>>,
}

/// A compatibility map (its JSON body) and when it was computed.
type CachedMap = (std::time::Instant, axum::body::Bytes);

impl FleetState {
    /// The state of a fleet accepting `tokens`.
    pub fn new(fleet: Fleet, tokens: Arc<Tokens>) -> FleetState {
        FleetState { fleet, tokens, compat: Arc::default() }
    }
}

/// How long a computed compatibility map is served again (it reads every device).
pub const COMPAT_MAX_AGE: Duration = Duration::from_secs(10);

/// Host reports carry up to a few thousand devices.
const BODY_LIMIT: usize = 8 << 20;

/// Devices one report may list.
const MAX_DEVICES: usize = devmig_api::wire::MAX_REPORT_DEVICES;

/// One route: its documentation (which also gives the auth check its scope) and its handler.
struct FleetRoute {
    doc: RouteDoc,
    handler: fn() -> MethodRouter<FleetState>,
}

fn report_body() -> Value {
    devmig_api::schema::of::<HostReport>()
}

fn placement_body() -> Value {
    devmig_api::schema::of::<PlacementRequest>()
}

fn evacuation_body() -> Value {
    devmig_api::schema::of::<EvacuationRequest>()
}

fn pool_body() -> Value {
    devmig_api::schema::of::<PoolRequest>()
}

fn candidates_body() -> Value {
    devmig_api::schema::of::<devmig_api::fleet::CandidatesRequest>()
}

fn vms_body() -> Value {
    devmig_api::schema::of::<devmig_api::fleet::VmsRequest>()
}

/// Every route the fleet serves.
fn routes() -> Vec<FleetRoute> {
    let r = |method, path, scope, summary, body, responses, handler| FleetRoute {
        doc: RouteDoc { method, path, scope, summary, body, responses },
        handler,
    };
    vec![
        r(
            "PUT",
            "/api/v1/hosts/{host}/report",
            Some(Scope::Report),
            "an agent's host report; stored only when its generation is newer",
            Some(report_body),
            &[
                (200, "applied, unchanged or stale (outcome)"),
                (400, "malformed report, ids, host, URL, or a generation outside the fleet's clock window"),
                (403, "the token is bound to another host"),
                (
                    409,
                    "the report moves the host's agent URL, or comes from another agent identity than the one \
                       holding the host name (host_identity_conflict): an operator must forget the host first",
                ),
                (413, "body too large"),
            ],
            || put(put_report),
        ),
        r(
            "DELETE",
            "/api/v1/hosts/{host}",
            Some(Scope::Admin),
            "forgets a host and its devices (its next report registers it anew, at the URL it then gives)",
            None,
            &[(200, "forgotten"), (404, "unknown host")],
            || delete(forget_host),
        ),
        r(
            "GET",
            "/api/v1/hosts",
            Some(Scope::Read),
            "hosts with generation and staleness",
            None,
            &[(200, "hosts")],
            || get(list_hosts),
        ),
        r(
            "GET",
            "/api/v1/devices",
            Some(Scope::Read),
            "devices, optionally of hosts matching ?hosts=GLOB",
            None,
            &[(200, "devices"), (400, "bad pattern")],
            || get(list_devices),
        ),
        r(
            "POST",
            "/api/v1/placements",
            Some(Scope::Admin),
            "targets on one host for all of a VM's devices: step a, matching, step b, optional claim",
            Some(placement_body),
            &[
                (200, "placed, or not with an explanation (devmig.placement/v1)"),
                (400, "malformed request"),
                (404, "unknown source device"),
                (409, "the migration id is placed or being placed"),
            ],
            || post(create_placement),
        ),
        r(
            "POST",
            "/api/v1/candidates",
            Some(Scope::Read),
            "step a alone: hosts where each source has a distinct target, ranked, and why not the others \
             (devmig.candidates/v1); nothing is verified or claimed",
            Some(candidates_body),
            &[(200, "candidates"), (400, "malformed request"), (404, "unknown source device")],
            || post(candidates),
        ),
        r(
            "GET",
            "/api/v1/compatibility",
            Some(Scope::Read),
            "for each source class in the fleet, the hosts that accept it, grouped into pools that accept \
             the same classes (devmig.compatibility/v1; computed at most every 10 s)",
            None,
            &[(200, "the map")],
            || get(compatibility),
        ),
        r(
            "POST",
            "/api/v1/evacuations",
            Some(Scope::Admin),
            "a target for every mdev and VF of a host (devmig.evacuation/v1)",
            Some(evacuation_body),
            &[(200, "moves"), (400, "malformed request"), (404, "unknown host")],
            || post(create_evacuation),
        ),
        r(
            "POST",
            "/api/v1/baseline",
            Some(Scope::Read),
            "source configurations every host of a pool accepts (devmig.baseline/v1)",
            Some(pool_body),
            &[(200, "baseline"), (400, "malformed request")],
            || post(baseline),
        ),
        r(
            "POST",
            "/api/v1/vms",
            Some(Scope::Read),
            "which of a host's VMs (domain XML) can migrate, where, or why not (devmig.vms/v1)",
            Some(vms_body),
            &[(200, "a verdict per VM"), (400, "malformed request or domain XML")],
            || post(vms),
        ),
        r(
            "POST",
            "/api/v1/what-if",
            Some(Scope::Read),
            "migrations a driver upgrade on a pool would break or enable (devmig.what-if/v1)",
            Some(pool_body),
            &[(200, "shifts"), (400, "malformed request or unknown model")],
            || post(what_if),
        ),
        r("GET", "/api/v1/openapi.json", Some(Scope::Read), "this document", None, &[(200, "OpenAPI 3.1")], || {
            get(openapi_json)
        }),
        r("GET", "/metrics", Some(Scope::Read), "Prometheus text exposition", None, &[(200, "metrics")], || {
            get(metrics)
        }),
        r("GET", "/healthz", None, "liveness (anonymous)", None, &[(200, "alive")], || get(|| async { "ok\n" })),
        r(
            "GET",
            "/ui",
            None,
            "the web view (anonymous: it holds no data; it asks for a read token)",
            None,
            &[(200, "HTML")],
            || get(crate::ui::index),
        ),
        r(
            "GET",
            "/ui/{asset}",
            None,
            "the web view's script and style sheet (anonymous)",
            None,
            &[(200, "the asset"), (404, "no such asset")],
            || get(crate::ui::asset),
        ),
    ]
}

/// The fleet's OpenAPI 3.1 document, built from the same table as its router.
pub fn openapi() -> Value {
    openapi_document(
        "devmig fleet",
        "Host reports, fleet-wide step a, placement verified and claimed through host agents.",
        // The web view's page and assets are not API: served, authorized by the table, not documented.
        routes().into_iter().map(|r| r.doc).filter(|d| !d.path.starts_with("/ui")),
        &[("host", "host name", "^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")],
    )
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

/// The router: every route of the table, behind one auth check that reads the table.
pub fn app(state: FleetState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        router = router.route(route.doc.path, (route.handler)());
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .fallback(|uri: axum::http::Uri| async move { FleetError::NotFound(format!("no route {}", uri.path())) })
        .method_not_allowed_fallback(|method: Method, uri: axum::http::Uri| async move {
            FleetError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
        })
        .layer(middleware::from_fn(devmig_agent::api::problem_bodies))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// The scope a request needs (`None`: anonymous; a route missing from the table: admin).
fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    static SCOPES: std::sync::OnceLock<Vec<(&'static str, &'static str, Option<Scope>)>> = std::sync::OnceLock::new();
    let scopes = SCOPES.get_or_init(|| routes().into_iter().map(|r| (r.doc.method, r.doc.path, r.doc.scope)).collect());
    let method = method_name(method);
    scopes.iter().find(|(m, p, _)| *m == method && *p == path).map_or(Some(Scope::Admin), |e| e.2)
}

async fn authorize(State(state): State<FleetState>, mut req: Request, next: Next) -> Result<Response, FleetError> {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let Some(needed) = needed_scope(req.method(), &path) else { return Ok(next.run(req).await) };
    let caller = state.tokens.admit(req.headers(), needed).map_err(|denied| match denied {
        Denied::NoToken => FleetError::Unauthorized("a bearer token is required".into()),
        Denied::UnknownToken => FleetError::Unauthorized("unknown token".into()),
        Denied::Forbidden(scope) => FleetError::Forbidden(match scope {
            Scope::Admin => "this route needs an admin token".into(),
            Scope::Read => "this route needs a read token (or an admin one)".into(),
            Scope::Report => "this route needs a report token (or an admin one)".into(),
        }),
    })?;
    // The report route checks the caller's host binding.
    req.extensions_mut().insert(caller.clone());
    Ok(next.run(req).await)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, FleetError> {
    b.map(|Json(v)| v).map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            FleetError::TooLarge(format!("the body is larger than {BODY_LIMIT} bytes"))
        } else {
            FleetError::BadRequest(e.body_text())
        }
    })
}

fn to_json(v: impl serde::Serialize) -> Result<Json<Value>, FleetError> {
    serde_json::to_value(v).map(Json).map_err(|e| FleetError::Internal(e.to_string()))
}

/// How far a report's generation (nanoseconds since the epoch, as agents make them) may be from
/// the fleet's clock: a generation far in the future would lock the host's real reports out.
pub const GENERATION_WINDOW: Duration = Duration::from_secs(600);

/// Refuses a generation outside [`GENERATION_WINDOW`] around `now_ms`.
pub fn check_generation(generation: u64, now_ms: i64) -> Result<(), FleetError> {
    let now_ns = i128::from(now_ms) * 1_000_000;
    let skew_s = (i128::from(generation) - now_ns) / 1_000_000_000;
    let window_s = i128::from(GENERATION_WINDOW.as_secs());
    if skew_s.abs() > window_s {
        let side = if skew_s > 0 { "ahead of" } else { "behind" };
        return Err(FleetError::GenerationOutOfWindow(format!(
            "generation {generation} is {} s {side} the fleet's clock (at most {window_s} s): generations are \
             nanoseconds since the epoch; check the agent's clock",
            skew_s.abs()
        )));
    }
    Ok(())
}

async fn put_report(
    State(s): State<FleetState>,
    caller: axum::Extension<Caller>,
    Path(host): Path<String>,
    b: Result<Json<HostReport>, JsonRejection>,
) -> Result<Response, FleetError> {
    host.parse::<devmig_api::HostName>().map_err(|e| FleetError::BadRequest(e.to_string()))?;
    // A report token speaks for its one host (an operator's admin token for any).
    if caller.scope == Scope::Report && caller.host.as_deref() != Some(host.as_str()) {
        return Err(FleetError::Forbidden(format!(
            "token {:?} may report host {:?} only, not {host:?}",
            caller.name,
            caller.host.as_deref().unwrap_or_default()
        )));
    }
    let report = body(b)?;
    if report.host != host {
        return Err(FleetError::BadRequest(format!("host {host:?} must equal the report's host {:?}", report.host)));
    }
    devmig_api::ids::check_agent_url(&report.url).map_err(|e| FleetError::BadRequest(e.to_string()))?;
    if !devmig_agent::identity::valid_identity(&report.identity) {
        return Err(FleetError::BadRequest(format!("identity {:?}: must be 1..64 of [A-Za-z0-9-]", report.identity)));
    }
    check_generation(report.generation, now_ms())?;
    if report.devices.len() > MAX_DEVICES {
        return Err(FleetError::BadRequest(format!(
            "{} devices in one report: at most {MAX_DEVICES}",
            report.devices.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for d in &report.devices {
        d.id.parse::<devmig_core::DeviceId>().map_err(|e| FleetError::BadRequest(format!("device {:?}: {e}", d.id)))?;
        if !seen.insert(d.id.as_str()) {
            return Err(FleetError::BadRequest(format!("device {} is listed twice", d.id)));
        }
        devmig_core::validate_version(&d.version)
            .map_err(|e| FleetError::BadRequest(format!("device {}: version: {e}", d.id)))?;
    }
    let store = Arc::clone(&s.fleet.store);
    let generation = report.generation;
    let outcome = blocking(move || store.apply_report(&report, now_ms())).await?;
    s.fleet.metrics.report(outcome);
    Ok((StatusCode::OK, Json(json!({"outcome": outcome, "generation": generation}))).into_response())
}

async fn forget_host(
    State(s): State<FleetState>,
    caller: axum::Extension<Caller>,
    Path(host): Path<String>,
) -> Result<Json<Value>, FleetError> {
    let store = Arc::clone(&s.fleet.store);
    let name = host.clone();
    if !blocking(move || store.forget(&name)).await? {
        return Err(FleetError::NotFound(format!("no host {host:?}")));
    }
    tracing::warn!(who = caller.name, host, "host forgotten: its next report registers it anew");
    Ok(Json(json!({"forgotten": host})))
}

async fn metrics(State(s): State<FleetState>) -> Result<Response, FleetError> {
    let store = Arc::clone(&s.fleet.store);
    let (fresh, stale) = blocking(move || store.host_counts(now_ms())).await?;
    let text = s.fleet.metrics.render(fresh, stale);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn list_hosts(State(s): State<FleetState>) -> Result<Json<Value>, FleetError> {
    let store = Arc::clone(&s.fleet.store);
    let hosts = blocking(move || store.hosts(now_ms())).await?;
    Ok(Json(json!({"schema": "devmig.fleet-hosts/v1", "hosts": hosts})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
    hosts: Option<String>,
}

async fn list_devices(State(s): State<FleetState>, Query(q): Query<DeviceQuery>) -> Result<Json<Value>, FleetError> {
    let pattern = plans::host_pattern(q.hosts.as_deref().unwrap_or("*"))?;
    let store = Arc::clone(&s.fleet.store);
    let devices = blocking(move || store.devices(now_ms(), &|h| pattern.matches(h))).await?;
    Ok(Json(json!({"schema": "devmig.fleet-devices/v1", "devices": devices})))
}

async fn create_placement(
    State(s): State<FleetState>,
    b: Result<Json<PlacementRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    to_json(s.fleet.place(body(b)?).await?)
}

async fn candidates(
    State(s): State<FleetState>,
    b: Result<Json<devmig_api::fleet::CandidatesRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    let fleet = s.fleet.clone();
    to_json(blocking(move || fleet.candidates(&b)).await?)
}

async fn compatibility(State(s): State<FleetState>) -> Result<Response, FleetError> {
    let json = |body: axum::body::Bytes| ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    // One computation at a time; requests meanwhile wait for it and share its serialized body.
    let mut cached = s.compat.lock().await;
    if let Some((at, body)) = cached.as_ref()
        && at.elapsed() < COMPAT_MAX_AGE
    {
        return Ok(json(body.clone()));
    }
    let fleet = s.fleet.clone();
    let map = blocking(move || crate::compat::compatibility(&fleet)).await?;
    let body = axum::body::Bytes::from(serde_json::to_vec(&map).map_err(|e| FleetError::Internal(e.to_string()))?);
    *cached = Some((std::time::Instant::now(), body.clone()));
    Ok(json(body))
}

async fn create_evacuation(
    State(s): State<FleetState>,
    b: Result<Json<EvacuationRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    let prefix = b.migration_prefix.unwrap_or_else(|| format!("evacuate-{}-{}", b.host, now_ms()));
    if b.vms.len() > 64 {
        return Err(FleetError::BadRequest("give at most 64 domains".into()));
    }
    if b.vms.is_empty() {
        to_json(plans::evacuate(&s.fleet, &b.host, b.claim, &prefix, &|_, _| {}).await?)
    } else {
        to_json(plans::evacuate_vms(&s.fleet, &b.host, &b.vms, b.claim, &prefix, &|_, _| {}).await?)
    }
}

async fn baseline(
    State(s): State<FleetState>,
    b: Result<Json<PoolRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    to_json(plans::baseline(&s.fleet, &b.hosts, &|_, _| {}).await?)
}

async fn vms(
    State(s): State<FleetState>,
    b: Result<Json<devmig_api::fleet::VmsRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    if b.domains.is_empty() || b.domains.len() > 64 {
        return Err(FleetError::BadRequest("give 1 to 64 domains".into()));
    }
    if !devmig_api::valid_host_name(&b.host) {
        return Err(FleetError::BadRequest(format!("host {:?} is not a valid host name", b.host)));
    }
    let fleet = s.fleet.clone();
    let verdicts = crate::blocking(move || plans::vms(&fleet, &b.host, &b.domains)).await?;
    to_json(serde_json::json!({ "schema": "devmig.vms/v1", "vms": verdicts }))
}

async fn what_if(
    State(s): State<FleetState>,
    b: Result<Json<PoolRequest>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    let change = b.driver.ok_or_else(|| FleetError::BadRequest("what-if needs driver {model, version}".into()))?;
    to_json(plans::what_if(&s.fleet, &b.hosts, change, &|_, _| {}).await?)
}
