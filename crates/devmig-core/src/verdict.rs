use devmig_vendors::FieldCheck;
use serde::{Deserialize, Serialize};

use crate::{IoFailure, Provenance, errno_name};

/// The answer for one (source, target) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Accepted, and the target's own version string equals the source's.
    Identical,
    /// Accepted.
    Compatible,
    /// Not compatible; `reasons` say why.
    Incompatible,
    /// Could not decide (I/O failure, timeout). Never treat as compatible.
    Error,
}

impl Verdict {
    /// The verdict of an accepted version: `identical` when the target's own string is the
    /// source's, else `compatible`. The one place that tells the two apart.
    pub fn accepted(target_version: Option<&str>, source_version: &str) -> Self {
        if target_version == Some(source_version) { Verdict::Identical } else { Verdict::Compatible }
    }

    /// True for `identical` and `compatible`.
    pub fn is_compatible(self) -> bool {
        matches!(self, Verdict::Identical | Verdict::Compatible)
    }

    /// The CLI exit code: 0 compatible, 1 incompatible, 3 could not decide.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Identical | Verdict::Compatible => 0,
            Verdict::Incompatible => 1,
            Verdict::Error => 3,
        }
    }
}

/// A machine-readable reason with a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Stable code: a protocol code (`target_rejected`) or a vendor rule (`i915.share`).
    pub code: String,
    /// One human sentence.
    pub message: String,
    /// The errno, for syscall failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
    /// Its symbolic name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno_name: Option<String>,
    /// The field a vendor rule read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The source's value of that field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_value: Option<String>,
    /// The target's value of that field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_value: Option<String>,
}

impl Reason {
    /// A reason with only a code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Reason {
            code: code.to_string(),
            message: message.into(),
            errno: None,
            errno_name: None,
            field: None,
            source_value: None,
            target_value: None,
        }
    }

    /// A reason for a failed syscall or timeout.
    pub fn io(code: &str, what: &str, failure: IoFailure) -> Self {
        let mut r = Reason::new(code, format!("{what}: {failure}"));
        if let Some(e) = failure.errno() {
            r.errno = Some(e);
            r.errno_name = Some(errno_name(e));
        }
        r
    }

    /// The reason for a failed vendor rule.
    pub fn from_check(c: &FieldCheck) -> Self {
        Reason {
            code: c.rule.clone(),
            message: format!("{}: {} (source {}, target {})", c.field, c.message, c.source_value, c.target_value),
            errno: None,
            errno_name: None,
            field: Some(c.field.clone()),
            source_value: Some(c.source_value.clone()),
            target_value: Some(c.target_value.clone()),
        }
    }
}

/// One side of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Side {
    /// The device, when the side is a local device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its version string, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Where the version (or the decision) came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
    /// The vendor model that recognises the device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The full answer of a check: verdict, both sides, reasons and every vendor rule evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The verdict.
    pub verdict: Verdict,
    /// The source side (`source` = where its string came from).
    pub from: Side,
    /// The target side (`source` = who decided: the kernel's write, or the model).
    pub to: Side,
    /// Why not compatible, or what could not be decided (empty when compatible).
    pub reasons: Vec<Reason>,
    /// Every vendor rule evaluated, passed or failed (empty when no model knows the target).
    pub checks: Vec<FieldCheck>,
}

impl CheckReport {
    pub(crate) fn new(from: Side, to: Side) -> Self {
        CheckReport { verdict: Verdict::Error, from, to, reasons: Vec::new(), checks: Vec::new() }
    }

    /// The report when the source yielded no version: `incompatible`, or `error` when the
    /// failure was transient (timeout, transient errno).
    pub fn without_source(read: crate::VersionReport, target: String) -> Self {
        let reason = read.reason.unwrap_or_else(|| Reason::new("source_unsupported", "no version"));
        let report = CheckReport::new(read.side, Side { device: Some(target), ..Side::default() });
        if read.transient { report.error(reason) } else { report.incompatible(reason) }
    }

    /// Sets an incompatible verdict with `reason`.
    pub(crate) fn incompatible(mut self, reason: Reason) -> Self {
        self.verdict = Verdict::Incompatible;
        self.reasons.push(reason);
        self
    }

    /// Sets an error verdict with `reason`.
    pub(crate) fn error(mut self, reason: Reason) -> Self {
        self.verdict = Verdict::Error;
        self.reasons.push(reason);
        self
    }
}
