//! The REST API under `/api/v1`: one route table builds both the router and the OpenAPI document.
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use devmig_api::{CheckBody, MatchBody};
use devmig_core::FastCheck;
use serde_json::{Value, json};

use crate::AgentError;
use crate::service::{Agent, ClaimRequest};
use crate::tokens::{Denied, Scope, Tokens};

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 16 * 1024;

/// Shared state of the routes.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The agent.
    pub agent: Arc<Agent>,
    /// Accepted tokens.
    pub tokens: Arc<Tokens>,
}

/// Who called (the token's name), for the audit log.
#[derive(Clone, Debug)]
struct Caller(String);

/// One route: what builds the router and what documents it.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path under the server root (OpenAPI syntax: `{id}`).
    pub path: &'static str,
    /// Scope needed; `None` for anonymous probes.
    pub scope: Option<Scope>,
    /// One line.
    pub summary: &'static str,
    /// Request body schema, if any.
    pub body: Option<fn() -> Value>,
    /// Status codes it answers with, and what each means.
    pub responses: &'static [(u16, &'static str)],
    handler: fn() -> MethodRouter<AppState>,
}

const AUTH_ERRORS: [(u16, &str); 2] =
    [(401, "no or unknown bearer token"), (403, "the token's scope does not allow this")];

fn version_body() -> Value {
    devmig_api::schema::of::<MatchBody>()
}

fn check_body() -> Value {
    devmig_api::schema::of::<CheckBody>()
}

fn claim_body() -> Value {
    devmig_api::schema::of::<devmig_api::ClaimRequest>()
}

/// Every route the agent serves.
pub fn routes() -> Vec<Route> {
    let r = |method, path, scope, summary, body, responses, handler| Route {
        method,
        path,
        scope,
        summary,
        body,
        responses,
        handler,
    };
    vec![
        r(
            Method::GET,
            "/api/v1/devices",
            Some(Scope::Read),
            "every device (schema devmig.list/v1)",
            None,
            &[(200, "the inventory")],
            || get(list_devices),
        ),
        r(
            Method::GET,
            "/api/v1/devices/{id}",
            Some(Scope::Read),
            "one device",
            None,
            &[(200, "the device"), (400, "malformed id"), (404, "no such device")],
            || get(show_device),
        ),
        r(
            Method::GET,
            "/api/v1/devices/{id}/migration-version",
            Some(Scope::Read),
            "the device's version string and its source (kernel or model)",
            None,
            &[
                (200, "the version, or why the device has none"),
                (400, "malformed id"),
                (404, "no such device"),
                (502, "reading it failed with an errno that says nothing definitive (EIO, EAGAIN, ...)"),
                (504, "reading it did not finish in time, or the device has an operation stuck in the kernel"),
            ],
            || get(device_version),
        ),
        r(
            Method::GET,
            "/api/v1/devices/{id}/attributes",
            Some(Scope::Read),
            "typed step-a attributes",
            None,
            &[
                (200, "the attributes"),
                (400, "malformed id"),
                (404, "no such device"),
                (422, "no vendor model knows the device"),
            ],
            || get(device_attributes),
        ),
        r(
            Method::POST,
            "/api/v1/devices/{id}/check",
            Some(Scope::Admin),
            "step b: the device judges a source version (one write to sysfs)",
            Some(check_body),
            &[
                (200, "a verdict: identical, compatible or incompatible (schema devmig.check/v1)"),
                (400, "malformed id, body or version"),
                (404, "no such device"),
                (413, "body too large"),
                (504, "a sysfs operation timed out: verdict error"),
            ],
            || post(check_device),
        ),
        r(
            Method::POST,
            "/api/v1/match",
            Some(Scope::Admin),
            "local targets passing step a, then step b",
            Some(version_body),
            &[
                (200, "candidates (schema devmig.match/v1)"),
                (400, "malformed body or unknown version format"),
                (413, "body too large"),
            ],
            || post(match_version),
        ),
        r(
            Method::POST,
            "/api/v1/claims",
            Some(Scope::Admin),
            "verify and reserve a target atomically (creating an mdev for a type); idempotent on migration_id",
            Some(claim_body),
            &[
                (200, "the migration already holds this claim"),
                (201, "claimed"),
                (400, "malformed request"),
                (404, "no such device"),
                (409, "target claimed, migration id bound elsewhere, or nothing free"),
                (413, "body too large"),
                (422, "step b rejected the source (report attached)"),
                (504, "a sysfs operation timed out"),
            ],
            || post(create_claim),
        ),
        r(
            Method::GET,
            "/api/v1/claims",
            Some(Scope::Read),
            "active and orphaned claims",
            None,
            &[(200, "claims")],
            || get(list_claims),
        ),
        r(
            Method::DELETE,
            "/api/v1/claims/{id}",
            Some(Scope::Admin),
            "release a claim (removes an mdev it created)",
            None,
            &[(200, "the released claim"), (404, "no such claim")],
            || delete(release_claim),
        ),
        r(
            Method::POST,
            "/api/v1/claims/{id}/complete",
            Some(Scope::Admin),
            "end a claim because the migration used its device (the device, and an mdev the claim created, stay)",
            None,
            &[(200, "the completed claim"), (404, "no such claim")],
            || post(complete_claim),
        ),
        r(
            Method::GET,
            "/api/v1/openapi.json",
            Some(Scope::Read),
            "this document",
            None,
            &[(200, "OpenAPI 3.1")],
            || get(openapi_json),
        ),
        r(Method::GET, "/metrics", Some(Scope::Read), "Prometheus text exposition", None, &[(200, "metrics")], || {
            get(metrics)
        }),
        r(Method::GET, "/healthz", None, "liveness (anonymous, says nothing else)", None, &[(200, "alive")], || {
            get(healthz)
        }),
        r(
            Method::GET,
            "/readyz",
            None,
            "readiness: sysfs root and claim store usable (anonymous); a degraded agent lists its devices with a stuck sysfs operation",
            None,
            &[(200, "ready"), (503, "not ready")],
            || get(readyz),
        ),
    ]
}

/// The router: every route of the table, behind one auth check that reads the table.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        router = router.route(route.path, (route.handler)());
    }
    router
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(problem_bodies))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Turns the plain-text client errors that come from outside the handlers (axum's extractors:
/// a path segment that is not UTF-8, a wrong content type) into problem documents, so every
/// error of the API has one shape. `/readyz` answers plain text by design.
pub async fn problem_bodies(req: Request, next: Next) -> Response {
    let probe = req.uri().path() == "/readyz";
    let res = next.run(req).await;
    let json = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/"));
    if probe || json || !res.status().is_client_error() {
        return res;
    }
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 16 << 10).await.unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        _ => "client_error",
    };
    let problem = json!({
        "type": format!("urn:devmig:problem:{code}"),
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "code": code,
        "detail": String::from_utf8_lossy(&body).trim(),
    });
    (status, [(header::CONTENT_TYPE, "application/problem+json")], problem.to_string()).into_response()
}

/// 404 as a problem document, for any path the table lacks.
pub async fn no_route(uri: axum::http::Uri) -> AgentError {
    AgentError::NoRoute(format!("no route {}", uri.path()))
}

/// 405 as a problem document.
pub async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> AgentError {
    AgentError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// What documents one route (the agent's and the fleet's route tables both provide it).
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// HTTP method.
    pub method: &'static str,
    /// Path (OpenAPI syntax: `{id}`).
    pub path: &'static str,
    /// Scope needed; `None` for anonymous probes.
    pub scope: Option<Scope>,
    /// One line.
    pub summary: &'static str,
    /// Request body schema, if any.
    pub body: Option<fn() -> Value>,
    /// Status codes and what each means.
    pub responses: &'static [(u16, &'static str)],
}

/// An OpenAPI 3.1 document for `routes`: bearer security with the route's scope, RFC 9457
/// problems for errors, path parameters from `params` (name, description).
pub fn openapi_document(
    title: &str,
    description: &str,
    routes: impl IntoIterator<Item = RouteDoc>,
    params: &[(&str, &str, &str)],
) -> Value {
    let mut paths = serde_json::Map::new();
    for route in routes {
        let mut responses = serde_json::Map::new();
        let auth: &[(u16, &str)] = if route.scope.is_some() { &AUTH_ERRORS } else { &[] };
        for (code, what) in route.responses.iter().chain(auth) {
            responses
                .insert(code.to_string(), json!({"description": what, "content": response_content(route.path, *code)}));
        }
        let mut op = json!({"summary": route.summary, "responses": responses});
        let path_params: Vec<Value> = params
            .iter()
            .filter(|(name, _, _)| route.path.contains(&format!("{{{name}}}")))
            .map(|(name, what, pattern)| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "pattern": pattern}, "description": what}))
            .collect();
        if !path_params.is_empty() {
            op["parameters"] = Value::Array(path_params);
        }
        if let Some(body) = route.body {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": body()}}});
        }
        op["security"] = match route.scope {
            Some(s) => json!([{"bearer": [scope_name(s)]}]),
            None => json!([]),
        };
        let entry = paths.entry(route.path.to_string()).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": title, "version": env!("CARGO_PKG_VERSION"), "description": description},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "required": ["type", "title", "status", "detail", "code"], "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "code": {"type": "string"}, "report": {"type": "object"}}}}
        }
    })
}

pub use devmig_api::ids::{DEVICE_ID_PATTERN, TYPE_ID_PATTERN, VERSION_PATTERN};

/// What a route answers with `code`: plain text for the probes and metrics, the check report
/// for a check that timed out (its verdict is `error`), a problem document for other errors.
fn response_content(path: &str, code: u16) -> Value {
    match (path, code) {
        ("/metrics", 200) => json!({"text/plain; version=0.0.4": {"schema": {"type": "string"}}}),
        ("/healthz" | "/readyz", _) => json!({"text/plain": {"schema": {"type": "string"}}}),
        (p, 504) if p.ends_with("/check") => json!({"application/json": {"schema": {"type": "object"}}}),
        (_, c) if c >= 400 => {
            json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
        }
        _ => json!({"application/json": {"schema": {"type": "object"}}}),
    }
}

/// The name of one of the methods the route tables use.
pub fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

fn scope_name(s: Scope) -> &'static str {
    match s {
        Scope::Read => "read",
        Scope::Admin => "admin",
        Scope::Report => "report",
    }
}

/// The OpenAPI 3.1 document, built from [`routes`].
pub fn openapi() -> Value {
    let docs = routes().into_iter().map(|r| RouteDoc {
        method: method_name(&r.method),
        path: r.path,
        scope: r.scope,
        summary: r.summary,
        body: r.body,
        responses: r.responses,
    });
    openapi_document(
        "devmig agent",
        "Checks source migration_version strings against this host's devices and claims targets.",
        docs,
        &[("id", "PCI address, mdev UUID, PARENT/TYPE-ID (URL-encoded), or claim id", DEVICE_ID_PATTERN)],
    )
}

/// The scope a request needs, from the route table (`None`: anonymous). The table is read once.
fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    static SCOPES: std::sync::OnceLock<Vec<(Method, &'static str, Option<Scope>)>> = std::sync::OnceLock::new();
    let scopes = SCOPES.get_or_init(|| routes().into_iter().map(|r| (r.method, r.path, r.scope)).collect());
    scopes.iter().find(|(m, p, _)| m == method && *p == path).and_then(|(_, _, s)| *s)
}

async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Result<Response, AgentError> {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let Some(scope) = needed_scope(req.method(), &path) else { return Ok(next.run(req).await) };
    let caller = state.tokens.admit(req.headers(), scope).map_err(|denied| match denied {
        Denied::NoToken | Denied::UnknownToken => AgentError::Unauthorized,
        Denied::Forbidden(_) => AgentError::Forbidden,
    })?;
    req.extensions_mut().insert(Caller(caller.name.clone()));
    Ok(next.run(req).await)
}

/// Runs a blocking agent operation off the async threads.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, AgentError> + Send + 'static,
) -> Result<R, AgentError> {
    // On a multi-threaded runtime, block this worker in place (tokio moves its other tasks
    // away): two thread hand-offs fewer than spawn_blocking. Elsewhere, a blocking thread.
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => tokio::task::spawn_blocking(f).await.map_err(|e| AgentError::Internal(format!("task: {e}")))?,
    }
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, AgentError> {
    match b {
        Ok(Json(v)) => Ok(v),
        Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(AgentError::TooLarge),
        Err(r) => Err(AgentError::BadRequest(r.body_text())),
    }
}

fn with_schema(schema: &str, v: impl serde::Serialize) -> Result<Json<Value>, AgentError> {
    let mut v = serde_json::to_value(v).map_err(|e| AgentError::Internal(e.to_string()))?;
    if let Value::Object(m) = &mut v {
        m.insert("schema".into(), Value::String(schema.into()));
    }
    Ok(Json(v))
}

async fn list_devices(State(s): State<AppState>) -> Result<Json<Value>, AgentError> {
    let inv = blocking(move || s.agent.devices()).await?;
    with_schema("devmig.list/v1", inv)
}

async fn show_device(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AgentError> {
    let d = blocking(move || s.agent.device(&id)).await?;
    with_schema("devmig.show/v1", json!({"device": d}))
}

async fn device_version(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AgentError> {
    let v = blocking(move || s.agent.version(&id)).await?;
    // A failure that says nothing definitive is not an answer about the device: a 5xx.
    if let Some(reason) = v.reason.as_ref().filter(|_| v.transient) {
        let detail = format!("{}: {}", reason.code, reason.message);
        use devmig_core::ReasonCode as C;
        return Err(match reason.protocol_code() {
            Some(C::Timeout | C::DeviceStuck | C::Overloaded | C::DiscoveryIncomplete) => AgentError::Timeout(detail),
            _ => AgentError::DeviceFailed(detail),
        });
    }
    with_schema("devmig.version/v1", v)
}

async fn device_attributes(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AgentError> {
    let a = blocking(move || s.agent.attributes(&id)).await?;
    with_schema("devmig.attributes/v1", a)
}

async fn check_device(
    State(s): State<AppState>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
    b: Result<Json<CheckBody>, JsonRejection>,
) -> Result<Response, AgentError> {
    let CheckBody { version, explain } = body(b)?;
    let (who, target) = (caller.0.0.clone(), id.clone());
    // The common case (a kernel attribute that accepts) is awaited without blocking a thread.
    let (s2, target2) = (s.clone(), id.clone());
    let report = match s.agent.check_fast(&id, &version).await? {
        FastCheck::Settled(report) => report,
        FastCheck::Refused(refusal) => blocking(move || s.agent.check_refused(&id, &refusal)).await?,
        FastCheck::Untried => blocking(move || s.agent.check(&id, &version)).await?,
    };
    let report = if explain { blocking(move || s2.agent.with_rules(report, &target2)).await? } else { report };
    tracing::info!(who, target, verdict = ?report.verdict, "check (sysfs write)");
    let timed_out = report.verdict == devmig_core::Verdict::Error
        && report.reasons.iter().any(|r| r.is(devmig_core::ReasonCode::Timeout));
    let status = if timed_out { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::OK };
    Ok((status, with_schema("devmig.check/v1", report)?).into_response())
}

async fn match_version(
    State(s): State<AppState>,
    b: Result<Json<MatchBody>, JsonRejection>,
) -> Result<Json<Value>, AgentError> {
    let MatchBody { version } = body(b)?;
    let m = blocking(move || s.agent.match_version(&version)).await?;
    with_schema("devmig.match/v1", m)
}

async fn create_claim(
    State(s): State<AppState>,
    caller: axum::Extension<Caller>,
    b: Result<Json<ClaimRequest>, JsonRejection>,
) -> Result<Response, AgentError> {
    let req = body(b)?;
    let who = caller.0.0.clone();
    let (claim, created) = blocking(move || s.agent.claim(&req, &who)).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(claim)).into_response())
}

async fn list_claims(State(s): State<AppState>) -> Result<Json<Value>, AgentError> {
    let claims = blocking(move || s.agent.claims()).await?;
    Ok(Json(json!({"schema": "devmig.claims/v1", "claims": claims})))
}

async fn release_claim(
    State(s): State<AppState>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AgentError> {
    let who = caller.0.0.clone();
    let claim = blocking(move || s.agent.release(&id, &who)).await?;
    Ok(Json(serde_json::to_value(claim).map_err(|e| AgentError::Internal(e.to_string()))?))
}

async fn complete_claim(
    State(s): State<AppState>,
    caller: axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AgentError> {
    let who = caller.0.0.clone();
    let claim = blocking(move || s.agent.complete(&id, &who)).await?;
    Ok(Json(serde_json::to_value(claim).map_err(|e| AgentError::Internal(e.to_string()))?))
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    (headers, s.agent.metrics_text()).into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> Response {
    let ready = blocking(move || {
        s.agent.claims()?;
        std::fs::metadata(s.agent.checker().root().join("sys"))
            .map_err(|e| AgentError::Internal(format!("sysfs root: {e}")))?;
        Ok(s.agent.stuck_devices())
    })
    .await;
    match ready {
        Ok(stuck) if stuck.is_empty() => (StatusCode::OK, "ready\n").into_response(),
        // Still serving every other device: ready, and saying which devices answer `error`.
        Ok(stuck) => {
            let mut text =
                format!("ready, degraded: {} device(s) with a sysfs operation stuck in the kernel\n", stuck.len());
            for d in stuck {
                text.push_str(&format!("stuck: {d}\n"));
            }
            (StatusCode::OK, text).into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}
