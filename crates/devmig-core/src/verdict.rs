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

/// The protocol's reason codes (vendor rules, `<model>.<rule>`, are the models' own). On the
/// wire a reason's `code` is the string [`ReasonCode::as_str`] spells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasonCode {
    /// The source has no attribute and no model can produce its version.
    SourceUnsupported,
    /// Reading the source failed.
    SourceReadFailed,
    /// The source string is not a version a model (or the target's model) can use.
    SourceVersionInvalid,
    /// The target has no attribute and no model, or its driver answered `ENODEV`.
    TargetUnsupported,
    /// The target's driver refused the string.
    TargetRejected,
    /// A transient errno or a short write on the target.
    TargetWriteFailed,
    /// Two mdev type nodes of different types.
    TypeMismatch,
    /// A sysfs operation did not answer in time.
    Timeout,
    /// Too many sysfs operations are stuck; not attempted.
    Overloaded,
    /// The device has an operation stuck past its deadline.
    DeviceStuck,
    /// Discovering the device did not finish.
    DiscoveryIncomplete,
    /// Another writer held the device longer than the wait allows.
    DeviceBusy,
    /// The string belongs to another known vendor driver.
    VendorMismatch,
    /// (Fleet) the host's agent did not answer.
    AgentUnreachable,
    /// (Fleet) the host's agent answered with an error.
    AgentRefused,
    /// (Fleet) claiming the target failed.
    ClaimFailed,
}

impl ReasonCode {
    /// Every code.
    pub const ALL: [ReasonCode; 16] = [
        ReasonCode::SourceUnsupported,
        ReasonCode::SourceReadFailed,
        ReasonCode::SourceVersionInvalid,
        ReasonCode::TargetUnsupported,
        ReasonCode::TargetRejected,
        ReasonCode::TargetWriteFailed,
        ReasonCode::TypeMismatch,
        ReasonCode::Timeout,
        ReasonCode::Overloaded,
        ReasonCode::DeviceStuck,
        ReasonCode::DiscoveryIncomplete,
        ReasonCode::DeviceBusy,
        ReasonCode::VendorMismatch,
        ReasonCode::AgentUnreachable,
        ReasonCode::AgentRefused,
        ReasonCode::ClaimFailed,
    ];

    /// The code as the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::SourceUnsupported => "source_unsupported",
            ReasonCode::SourceReadFailed => "source_read_failed",
            ReasonCode::SourceVersionInvalid => "source_version_invalid",
            ReasonCode::TargetUnsupported => "target_unsupported",
            ReasonCode::TargetRejected => "target_rejected",
            ReasonCode::TargetWriteFailed => "target_write_failed",
            ReasonCode::TypeMismatch => "type_mismatch",
            ReasonCode::Timeout => "timeout",
            ReasonCode::Overloaded => "overloaded",
            ReasonCode::DeviceStuck => "device_stuck",
            ReasonCode::DiscoveryIncomplete => "discovery_incomplete",
            ReasonCode::DeviceBusy => "device_busy",
            ReasonCode::VendorMismatch => "vendor_mismatch",
            ReasonCode::AgentUnreachable => "agent_unreachable",
            ReasonCode::AgentRefused => "agent_refused",
            ReasonCode::ClaimFailed => "claim_failed",
        }
    }

    /// The protocol code `code` spells (`None` for a vendor rule).
    pub fn from_name(code: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|c| c.as_str() == code)
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
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Reason {
            code: code.as_str().to_string(),
            message: message.into(),
            errno: None,
            errno_name: None,
            field: None,
            source_value: None,
            target_value: None,
        }
    }

    /// A reason for a failed syscall or timeout.
    pub fn io(code: ReasonCode, what: &str, failure: IoFailure) -> Self {
        let mut r = Reason::new(code, format!("{what}: {failure}"));
        if let Some(e) = failure.errno() {
            r.errno = Some(e);
            r.errno_name = Some(errno_name(e));
        }
        r
    }

    /// The protocol code of this reason (`None` for a vendor rule).
    pub fn protocol_code(&self) -> Option<ReasonCode> {
        ReasonCode::from_name(&self.code)
    }

    /// True when this reason has protocol code `code`.
    pub fn is(&self, code: ReasonCode) -> bool {
        self.code == code.as_str()
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
    /// What the model cannot see and only the destination driver's resume decides (the
    /// firmware checks of a VFIO variant driver): a compatible verdict holds as far as the
    /// host shows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_resume: Vec<String>,
}

impl CheckReport {
    pub(crate) fn new(from: Side, to: Side) -> Self {
        CheckReport {
            verdict: Verdict::Error,
            from,
            to,
            reasons: Vec::new(),
            checks: Vec::new(),
            at_resume: Vec::new(),
        }
    }

    /// The report when the source yielded no version: `incompatible`, or `error` when the
    /// failure was transient (timeout, transient errno).
    pub fn without_source(read: crate::VersionReport, target: String) -> Self {
        let reason = read.reason.unwrap_or_else(|| Reason::new(ReasonCode::SourceUnsupported, "no version"));
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
