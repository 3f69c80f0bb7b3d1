//! The agent's errors, their HTTP status (one function) and their RFC 9457 problem documents.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use devmig_core::{CheckReport, CoreError};
use devmig_vendors::VendorError;
use thiserror::Error;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum AgentError {
    /// No or unknown bearer token.
    #[error("authentication required")]
    Unauthorized,
    /// The token's scope does not allow this.
    #[error("this token's scope does not allow the operation")]
    Forbidden,
    /// A malformed request (body, parameter).
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than the agent accepts.
    #[error("request body too large")]
    TooLarge,
    /// No route at this path (the text names it).
    #[error("{0}")]
    NoRoute(String),
    /// The path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// No such claim.
    #[error("no claim {0}")]
    ClaimNotFound(String),
    /// A conflict: target already claimed, migration id bound elsewhere, nothing free.
    #[error("{detail}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// One sentence.
        detail: String,
    },
    /// Step b said no: the report says why.
    #[error("the target rejected the source version")]
    Rejected(Box<CheckReport>),
    /// A sysfs operation (or a wait for a busy device) did not finish in time.
    #[error("{0}")]
    Timeout(String),
    /// The device's driver failed to answer (an errno that says nothing about compatibility).
    #[error("{0}")]
    DeviceFailed(String),
    /// An error of the core library.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The claim store failed.
    #[error("claim store")]
    Store(#[from] rusqlite::Error),
    /// A failure inside the agent (a task that did not finish, bad state).
    #[error("{0}")]
    Internal(String),
    /// A configuration (config file, token file, TLS files) is malformed; the text names the
    /// file and what is wrong. Raised at start, never answered to a request.
    #[error("{0}")]
    Config(String),
}

/// The status code of an error: the one place that decides it.
pub fn status_of(e: &AgentError) -> StatusCode {
    match e {
        AgentError::Unauthorized => StatusCode::UNAUTHORIZED,
        AgentError::Forbidden => StatusCode::FORBIDDEN,
        AgentError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AgentError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        AgentError::ClaimNotFound(_) | AgentError::NoRoute(_) => StatusCode::NOT_FOUND,
        AgentError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        AgentError::Conflict { .. } => StatusCode::CONFLICT,
        AgentError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AgentError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        AgentError::DeviceFailed(_) => StatusCode::BAD_GATEWAY,
        AgentError::Core(c) => match c {
            CoreError::InvalidId { .. } | CoreError::InvalidVersion(_) => StatusCode::BAD_REQUEST,
            CoreError::Vendor(VendorError::UnknownVersion(_) | VendorError::BadVersion { .. }) => {
                StatusCode::BAD_REQUEST
            }
            CoreError::DeviceNotFound { .. } => StatusCode::NOT_FOUND,
            CoreError::Vendor(VendorError::NoModel | VendorError::Unsupported { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            CoreError::Io {
                failure: devmig_core::IoFailure::Timeout { .. } | devmig_core::IoFailure::DeviceStuck,
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            // Another errno, a sysfs root that went away, the agent's own catalog: the agent's fault.
            CoreError::Io { .. }
            | CoreError::Root { .. }
            | CoreError::Vendor(VendorError::Catalog { .. } | VendorError::BadValue { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        AgentError::Store(_) | AgentError::Internal(_) | AgentError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The stable problem code of an error.
pub fn code_of(e: &AgentError) -> &'static str {
    match e {
        AgentError::Unauthorized => "unauthorized",
        AgentError::Forbidden => "forbidden",
        AgentError::BadRequest(_) => "bad_request",
        AgentError::TooLarge => "body_too_large",
        AgentError::ClaimNotFound(_) => "claim_not_found",
        AgentError::NoRoute(_) => "no_route",
        AgentError::MethodNotAllowed(_) => "method_not_allowed",
        AgentError::Conflict { code, .. } => code,
        AgentError::Rejected(_) => "target_rejected",
        AgentError::Timeout(_) => "timeout",
        AgentError::DeviceFailed(_) => "device_failed",
        AgentError::Core(CoreError::InvalidId { .. }) => "invalid_device_id",
        AgentError::Core(CoreError::InvalidVersion(_)) => "invalid_version",
        AgentError::Core(CoreError::DeviceNotFound { .. }) => "device_not_found",
        AgentError::Core(CoreError::Vendor(VendorError::UnknownVersion(_) | VendorError::BadVersion { .. })) => {
            "invalid_version"
        }
        AgentError::Core(CoreError::Vendor(_)) => "unsupported_device",
        AgentError::Core(CoreError::Io {
            failure: devmig_core::IoFailure::Timeout { .. } | devmig_core::IoFailure::DeviceStuck,
            ..
        }) => "timeout",
        AgentError::Core(_) => "sysfs_error",
        AgentError::Store(_) => "store_error",
        AgentError::Internal(_) => "internal_error",
        AgentError::Config(_) => "config_error",
    }
}

pub use devmig_api::Problem;

impl AgentError {
    /// The problem document of this error.
    pub fn problem(self) -> Problem {
        let status = status_of(&self);
        let code = code_of(&self);
        let detail = match &self {
            // Say nothing about which token or why.
            AgentError::Unauthorized | AgentError::Forbidden => self.to_string(),
            // Internals stay in the log.
            AgentError::Store(_) | AgentError::Internal(_) | AgentError::Config(_) => {
                "internal error; see the agent's log".to_string()
            }
            other => devmig_core::error_chain(other),
        };
        let problem = Problem::new(status.as_u16(), code, detail);
        match self {
            AgentError::Rejected(r) => problem.with_report(r),
            _ => problem,
        }
    }
}

impl IntoResponse for AgentError {
    fn into_response(self) -> Response {
        if matches!(self, AgentError::Store(_) | AgentError::Internal(_) | AgentError::Config(_)) {
            tracing::error!(error = %devmig_core::error_chain(&self), "request failed");
        }
        let status = status_of(&self);
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_status() {
        let bad_id = "../x".parse::<devmig_core::DeviceId>().expect_err("invalid");
        let cases: Vec<(AgentError, u16, &str)> = vec![
            (AgentError::Unauthorized, 401, "unauthorized"),
            (AgentError::Forbidden, 403, "forbidden"),
            (AgentError::BadRequest("x".into()), 400, "bad_request"),
            (AgentError::TooLarge, 413, "body_too_large"),
            (AgentError::ClaimNotFound("x".into()), 404, "claim_not_found"),
            (AgentError::Conflict { code: "target_claimed", detail: "x".into() }, 409, "target_claimed"),
            (AgentError::Timeout("x".into()), 504, "timeout"),
            (AgentError::DeviceFailed("x".into()), 502, "device_failed"),
            (AgentError::NoRoute("x".into()), 404, "no_route"),
            (AgentError::MethodNotAllowed("x".into()), 405, "method_not_allowed"),
            (
                AgentError::Core(CoreError::Io {
                    op: "read",
                    path: "/x".into(),
                    failure: devmig_core::IoFailure::DeviceStuck,
                }),
                504,
                "timeout",
            ),
            (AgentError::Core(bad_id), 400, "invalid_device_id"),
            (AgentError::Core(CoreError::InvalidVersion("x".into())), 400, "invalid_version"),
            (AgentError::Core(CoreError::DeviceNotFound { id: "x".into(), root: "/".into() }), 404, "device_not_found"),
            (AgentError::Core(CoreError::Vendor(VendorError::NoModel)), 422, "unsupported_device"),
            (AgentError::Internal("x".into()), 500, "internal_error"),
        ];
        for (e, status, code) in cases {
            assert_eq!((status_of(&e).as_u16(), code_of(&e)), (status, code), "{e:?}");
            let p = e.problem();
            assert_eq!(
                (p.status, p.code.as_str(), p.type_uri.as_str()),
                (status, code, format!("urn:devmig:problem:{code}").as_str())
            );
        }
    }
}
