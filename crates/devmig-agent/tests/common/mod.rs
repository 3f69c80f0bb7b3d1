//! The agent's API tests use devmig-testkit's labs; these are the names they know them by.
#![allow(dead_code, unused_imports)]
use std::time::Duration;

use axum::http::{Method, StatusCode};
pub use devmig_testkit::agent_lab::{
    ADMIN, MountedLab as Lab, READ, call, call_raw, mounted_lab as lab, options, plain_lab, tokens,
};
use serde_json::Value;

/// Example host A, mounted.
pub fn host_a() -> Lab {
    lab(devmig_simfs::spec::EXAMPLE_HOST_A, Duration::from_secs(5))
}

/// Example host B, mounted.
pub fn host_b() -> Lab {
    lab(devmig_simfs::spec::EXAMPLE_HOST_B, Duration::from_secs(5))
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
