//! The fleet's web view at `/ui`: one HTML page, its script and its style sheet, embedded in
//! the binary (no build step, no CDN). The page holds no data: it asks for a read token and
//! calls the API like any client.
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::FleetError;

const INDEX: &str = include_str!("../ui/index.html");
const SCRIPT: &str = include_str!("../ui/app.js");
const STYLE: &str = include_str!("../ui/app.css");

/// Scripts and styles from this origin only, no framing, API calls to this origin only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// `GET /ui`: the page.
pub async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

/// `GET /ui/{asset}`: `app.js` or `app.css`.
pub async fn asset(Path(name): Path<String>) -> Result<Response, FleetError> {
    match name.as_str() {
        "app.js" => Ok(page("text/javascript; charset=utf-8", SCRIPT)),
        "app.css" => Ok(page("text/css; charset=utf-8", STYLE)),
        "" | "index.html" => Ok(page("text/html; charset=utf-8", INDEX)),
        _ => Err(FleetError::NotFound(format!("no asset {name:?} in the web view"))),
    }
}
