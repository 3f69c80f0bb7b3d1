//! The fleet's one error type, and how it maps to HTTP problems.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// Everything that can go wrong in the fleet.
#[derive(Debug, Error)]
pub enum FleetError {
    /// The request was malformed; the text names what.
    #[error("{0}")]
    BadRequest(String),
    /// No such host, device or placement.
    #[error("{0}")]
    NotFound(String),
    /// The path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Someone else holds it.
    #[error("{0}")]
    Conflict(String),
    /// A report for a host name that another agent identity holds.
    #[error("{0}")]
    IdentityConflict(String),
    /// The database failed: `what` says doing what, `source` is the driver's error.
    #[error("database: {what}")]
    Db {
        /// What failed (`sqlite`, `PostgreSQL 23505`, `the connection thread is gone`).
        what: String,
        /// The driver's or the OS's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An agent failed or answered unexpectedly.
    #[error("agent {host}: {why}")]
    Agent {
        /// Host.
        host: String,
        /// What happened.
        why: String,
    },
    /// A report's generation is too far from the fleet's clock.
    #[error("{0}")]
    GenerationOutOfWindow(String),
    /// The request body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The caller is not authenticated or lacks the scope.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller lacks the scope.
    #[error("{0}")]
    Forbidden(String),
    /// A configuration file (agent token file, TLS files) is malformed; the text names it.
    /// Raised at start, never answered to a request.
    #[error("{0}")]
    Config(String),
    /// A bug or an unexpected state.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<devmig_vendors::VendorError> for FleetError {
    fn from(e: devmig_vendors::VendorError) -> Self {
        FleetError::BadRequest(e.to_string())
    }
}

impl FleetError {
    /// A database failure with nothing below it.
    pub fn db(what: impl Into<String>) -> Self {
        FleetError::Db { what: what.into(), source: None }
    }

    /// A database failure caused by `source`.
    pub fn db_from(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        FleetError::Db { what: what.into(), source: Some(Box::new(source)) }
    }

    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            FleetError::BadRequest(_) | FleetError::GenerationOutOfWindow(_) => StatusCode::BAD_REQUEST,
            FleetError::NotFound(_) => StatusCode::NOT_FOUND,
            FleetError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            FleetError::Conflict(_) | FleetError::IdentityConflict(_) => StatusCode::CONFLICT,
            FleetError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            FleetError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            FleetError::Forbidden(_) => StatusCode::FORBIDDEN,
            FleetError::Agent { .. } => StatusCode::BAD_GATEWAY,
            FleetError::Db { .. } | FleetError::Internal(_) | FleetError::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            FleetError::BadRequest(_) => "bad_request",
            FleetError::GenerationOutOfWindow(_) => "generation_out_of_window",
            FleetError::NotFound(_) => "not_found",
            FleetError::MethodNotAllowed(_) => "method_not_allowed",
            FleetError::Conflict(_) => "conflict",
            FleetError::IdentityConflict(_) => "host_identity_conflict",
            FleetError::TooLarge(_) => "payload_too_large",
            FleetError::Unauthorized(_) => "unauthorized",
            FleetError::Forbidden(_) => "forbidden",
            FleetError::Agent { .. } => "agent_failed",
            FleetError::Db { .. } => "database",
            FleetError::Internal(_) => "internal",
            FleetError::Config(_) => "config_error",
        }
    }
}

impl FleetError {
    /// The problem document of this error (the agent's type: same `type` URIs, same fields).
    /// The log has a database's or a bug's own words; a client gets none of them.
    pub fn problem(&self) -> devmig_api::Problem {
        let detail = match self {
            FleetError::Db { .. } => "the fleet's database failed; its log says why".to_string(),
            FleetError::Internal(_) => "the fleet failed unexpectedly; its log says why".to_string(),
            other => other.to_string(),
        };
        devmig_api::Problem::new(self.status().as_u16(), self.code(), detail)
    }
}

impl IntoResponse for FleetError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %devmig_core::error_chain(&self), "request failed");
        }
        let body = serde_json::to_string(&self.problem()).unwrap_or_default();
        (status, [(axum::http::header::CONTENT_TYPE, "application/problem+json")], body).into_response()
    }
}
