//! The problem document (RFC 9457) that the agent and the fleet both answer errors with.
use devmig_core::CheckReport;
use serde::{Deserialize, Serialize};

/// An error answer: `type` is `urn:devmig:problem:<code>` on both services, `code` is stable,
/// `detail` says what happened (never a secret, never a database's or a bug's own words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// `urn:devmig:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary (the status's reason phrase).
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: String,
    /// What happened.
    pub detail: String,
    /// The check report, when step b refused a claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<CheckReport>>,
}

impl Problem {
    /// A problem of `status` with `code` and `detail`.
    pub fn new(status: u16, code: &str, detail: String) -> Problem {
        Problem {
            type_uri: format!("urn:devmig:problem:{code}"),
            title: reason_phrase(status).to_string(),
            status,
            code: code.to_string(),
            detail,
            report: None,
        }
    }

    /// The problem with the check report that explains a refusal.
    pub fn with_report(mut self, report: Box<CheckReport>) -> Problem {
        self.report = Some(report);
        self
    }
}

/// The reason phrase of the statuses devmig answers with.
fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error")
}
