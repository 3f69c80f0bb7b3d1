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
    let app = devmig_fleet::api::app(devmig_fleet::api::FleetState { fleet, tokens: fleet_tokens() });
    let doc = devmig_fleet::api::openapi();
    let report = report_token("sim-r00-0000");
    let mut routes = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        let uri = path.replace("{host}", "sim-r00-0000");
        for (method, op) in ops.as_object().expect("operations") {
            let method: Method = method.to_ascii_uppercase().parse().expect("method");
            let needed = op["security"][0]["bearer"][0].as_str();
            routes += 1;
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
                let admitted = match (needed, scope) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(n), Some(have)) => have == "admin" || have == n,
                };
                let refused = s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN;
                assert_eq!(!refused, admitted, "{method} {path} with {scope:?} (needs {needed:?}): {s}");
            }
        }
    }
    assert!(routes >= 11, "{routes} routes in the document");
}
