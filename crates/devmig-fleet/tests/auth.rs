//! The auth matrix over every route of the fleet's OpenAPI document: no token, read, admin, and
//! a report token (bound to the host in the path).
mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{ADMIN_SECRET, Backend, READ_SECRET, fleet_tokens, options, report_token};
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_the_scopes_its_document_names() {
    let backend = Backend::sqlite();
    let opts = options(backend.url());
    let fleet = tokio::task::spawn_blocking(move || {
        opts.open(devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded()))
    })
    .await
    .expect("join")
    .expect("fleet");
    let app = devmig_fleet::api::app(devmig_fleet::api::FleetState::new(fleet, fleet_tokens()));
    let ops = devmig_testkit::openapi_operations(&devmig_fleet::api::openapi());
    let report = report_token("sim-r00-0000");
    for (path, method, needed) in &ops {
        let uri = path.replace("{host}", "sim-r00-0000");
        let method: Method = method.parse().expect("method");
        for (token, scope) in [
            (None, None),
            (Some(READ_SECRET), Some("read")),
            (Some(ADMIN_SECRET), Some("admin")),
            (Some(report.as_str()), Some("report")),
        ] {
            let mut req = Request::builder().method(method.clone()).uri(&uri);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let body = if matches!(method, Method::POST | Method::PUT) {
                req = req.header("content-type", "application/json");
                Body::from("{}")
            } else {
                Body::empty()
            };
            let s = app.clone().oneshot(req.body(body).expect("request")).await.expect("response").status();
            let refused = s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;
            let admitted = devmig_testkit::scope_admits(needed.as_deref(), scope);
            assert_eq!(!refused, admitted, "{method} {path} with {scope:?} (needs {needed:?}): {s}");
        }
    }
    assert!(ops.len() >= 11, "{} routes in the document", ops.len());
}

#[test]
fn the_openapi_document_is_committed_and_current() {
    let doc = devmig_fleet::api::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let path: std::path::PathBuf = [env!("CARGO_MANIFEST_DIR"), "openapi.json"].iter().collect();
    devmig_testkit::assert_committed_json(&path, &doc);
}
