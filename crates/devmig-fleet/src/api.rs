//! The fleet's REST API under `/api/v1`, behind bearer tokens (`report` for agents pushing,
//! `read` for queries, `admin` for placements and evacuations).
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use devmig_agent::{HostReport, Scope, Tokens};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::placement::{Fleet, PlacementRequest};
use crate::plans::{self, DriverChange};
use crate::{FleetError, blocking, now_ms};

/// Shared state of the routes.
#[derive(Debug, Clone)]
pub struct FleetState {
    /// The fleet.
    pub fleet: Fleet,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
}

/// Host reports carry up to a few thousand devices.
const BODY_LIMIT: usize = 8 << 20;

/// Devices one report may list.
const MAX_DEVICES: usize = 4096;

/// (method, route, scope): the one table the auth check reads.
const SCOPES: &[(Method, &str, Option<Scope>)] = &[
    (Method::PUT, "/api/v1/hosts/{host}/report", Some(Scope::Report)),
    (Method::GET, "/api/v1/hosts", Some(Scope::Read)),
    (Method::GET, "/api/v1/devices", Some(Scope::Read)),
    (Method::POST, "/api/v1/placements", Some(Scope::Admin)),
    (Method::POST, "/api/v1/evacuations", Some(Scope::Admin)),
    (Method::POST, "/api/v1/baseline", Some(Scope::Read)),
    (Method::POST, "/api/v1/what-if", Some(Scope::Read)),
    (Method::GET, "/metrics", Some(Scope::Read)),
    (Method::GET, "/healthz", None),
];

/// The router.
pub fn app(state: FleetState) -> Router {
    Router::new()
        .route("/api/v1/hosts/{host}/report", put(put_report))
        .route("/api/v1/hosts", get(list_hosts))
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/placements", post(create_placement))
        .route("/api/v1/evacuations", post(create_evacuation))
        .route("/api/v1/baseline", post(baseline))
        .route("/api/v1/what-if", post(what_if))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn authorize(State(state): State<FleetState>, req: Request, next: Next) -> Result<Response, FleetError> {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let needed = SCOPES.iter().find(|(m, p, _)| m == req.method() && *p == path).map_or(Some(Scope::Admin), |e| e.2);
    let Some(needed) = needed else { return Ok(next.run(req).await) };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| FleetError::Unauthorized("a bearer token is required".into()))?;
    let (_, have) =
        state.tokens.authorize(presented.as_bytes()).ok_or_else(|| FleetError::Unauthorized("unknown token".into()))?;
    if !have.allows(needed) {
        return Err(FleetError::Forbidden(format!("this route needs a {needed:?} token").to_lowercase()));
    }
    Ok(next.run(req).await)
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, FleetError> {
    b.map(|Json(v)| v).map_err(|e| FleetError::BadRequest(e.body_text()))
}

fn to_json(v: impl serde::Serialize) -> Result<Json<Value>, FleetError> {
    serde_json::to_value(v).map(Json).map_err(|e| FleetError::Internal(e.to_string()))
}

/// A host name as agents and `HOST:DEVICE` use it.
pub fn valid_host_name(h: &str) -> bool {
    !h.is_empty() && h.len() <= 253 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn put_report(
    State(s): State<FleetState>,
    Path(host): Path<String>,
    b: Result<Json<HostReport>, JsonRejection>,
) -> Result<Response, FleetError> {
    let report = body(b)?;
    if !valid_host_name(&host) || report.host != host {
        return Err(FleetError::BadRequest(format!(
            "host {host:?}: must be 1..253 of [A-Za-z0-9._-] and equal the report's host {:?}",
            report.host
        )));
    }
    if !(report.url.starts_with("http://") || report.url.starts_with("https://")) {
        return Err(FleetError::BadRequest(format!("url {:?}: must be http:// or https://", report.url)));
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvacuationBody {
    host: String,
    #[serde(default)]
    claim: bool,
    #[serde(default)]
    migration_prefix: Option<String>,
}

async fn create_evacuation(
    State(s): State<FleetState>,
    b: Result<Json<EvacuationBody>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    let prefix = b.migration_prefix.unwrap_or_else(|| format!("evacuate-{}-{}", b.host, now_ms()));
    to_json(plans::evacuate(&s.fleet, &b.host, b.claim, &prefix, &|_, _| {}).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolBody {
    hosts: String,
    #[serde(default)]
    driver: Option<DriverChange>,
}

async fn baseline(
    State(s): State<FleetState>,
    b: Result<Json<PoolBody>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    to_json(plans::baseline(&s.fleet, &b.hosts, &|_, _| {}).await?)
}

async fn what_if(
    State(s): State<FleetState>,
    b: Result<Json<PoolBody>, JsonRejection>,
) -> Result<Json<Value>, FleetError> {
    let b = body(b)?;
    let change = b.driver.ok_or_else(|| FleetError::BadRequest("what-if needs driver {model, version}".into()))?;
    to_json(plans::what_if(&s.fleet, &b.hosts, change, &|_, _| {}).await?)
}
