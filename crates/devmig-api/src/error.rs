//! The crate's one error: a value that breaks its type's rule, or a call that did not end well.
use thiserror::Error;

use crate::Problem;

/// Everything this crate fails with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// A value that is not what its type allows.
    #[error("{what} {value:?}: must be {rule}")]
    Invalid {
        /// The field (`migration_id`, `host`, `ttl_seconds`).
        what: &'static str,
        /// The offending value (cut to 64 characters).
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// No answer: connection refused, TLS failure, timeout.
    #[error("{base}: {detail}")]
    Unreachable {
        /// The agent's base URL.
        base: String,
        /// What happened.
        detail: String,
    },
    /// The agent answered with a problem document.
    #[error("{} (HTTP {}, {})", problem.detail, problem.status, problem.code)]
    Refused {
        /// What it said.
        problem: Box<Problem>,
    },
    /// The agent answered something that is not what the route documents.
    #[error("unexpected answer (HTTP {status}): {detail}")]
    BadResponse {
        /// HTTP status.
        status: u16,
        /// What did not fit.
        detail: String,
    },
}

impl ApiError {
    pub(crate) fn invalid(what: &'static str, value: &str, rule: &'static str) -> Self {
        ApiError::Invalid { what, value: value.chars().take(64).collect(), rule }
    }

    /// The HTTP status of the answer (0 when there was none, or for an invalid value).
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Refused { problem } => problem.status,
            ApiError::BadResponse { status, .. } => *status,
            ApiError::Invalid { .. } | ApiError::Unreachable { .. } => 0,
        }
    }

    /// The problem code (`unreachable`, `bad_response` and `invalid` for the local cases).
    pub fn code(&self) -> &str {
        match self {
            ApiError::Refused { problem } => &problem.code,
            ApiError::BadResponse { .. } => "bad_response",
            ApiError::Unreachable { .. } => "unreachable",
            ApiError::Invalid { .. } => "invalid",
        }
    }
}
