//! `match`: local targets that pass step a, then verified by step b.
use devmig_vendors::{Requirement, Unmet};
use serde::{Deserialize, Serialize};

use crate::device::MigrationSupport;
use crate::verdict::{Reason, Side};
use crate::{Checker, CoreError, DeviceId, Verdict, validate_version};

/// One local device considered as a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchCandidate {
    /// The device.
    pub device: String,
    /// `passed`, `excluded`, or `unfiltered` (kernel attribute but no model: step a cannot judge it).
    pub step_a: String,
    /// Constraints the device failed in step a.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmet: Vec<Unmet>,
    /// Step b's verdict, for devices that reached it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// Step b's reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

/// The result of `match`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchReport {
    /// The source.
    pub from: Side,
    /// What step a required.
    pub requirement: Requirement,
    /// Every migratable local device, sorted by id.
    pub candidates: Vec<MatchCandidate>,
}

impl MatchReport {
    /// Devices step b accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &MatchCandidate> {
        self.candidates.iter().filter(|c| c.verdict.is_some_and(Verdict::is_compatible))
    }
}

impl Checker {
    /// Matches the version of a local source device against every other local device.
    pub fn match_device(&self, source: &DeviceId) -> Result<MatchReport, CoreError> {
        let dev = self.device(source)?;
        let read = self.version_of(&dev);
        let Some(version) = read.side.version.clone() else {
            let reason = read.reason.map(|r| r.message).unwrap_or_default();
            return Err(CoreError::InvalidVersion(format!("source {source} has no version: {reason}")));
        };
        self.match_impl(read.side, &version, Some(source))
    }

    /// Matches a version string that came from elsewhere.
    pub fn match_version(&self, version: &str) -> Result<MatchReport, CoreError> {
        validate_version(version)?;
        self.match_impl(Side { version: Some(version.to_string()), ..Side::default() }, version, None)
    }

    fn match_impl(&self, from: Side, version: &str, exclude: Option<&DeviceId>) -> Result<MatchReport, CoreError> {
        let requirement = self.registry().requirement(version)?;
        let inventory = self.inventory()?;
        let mut candidates = Vec::new();
        for dev in inventory.devices.iter().filter(|d| {
            !matches!(d.migration.support, MigrationSupport::None | MigrationSupport::Unknown) && Some(&d.id) != exclude
        }) {
            let attrs = dev.facts.as_ref().and_then(|f| self.registry().attributes(f).ok());
            let (step_a, unmet) = match &attrs {
                Some(a) => {
                    let unmet = requirement.unmet(a);
                    (if unmet.is_empty() { "passed" } else { "excluded" }, unmet)
                }
                None => ("unfiltered", Vec::new()),
            };
            let mut c = MatchCandidate {
                device: dev.id.to_string(),
                step_a: step_a.to_string(),
                unmet,
                verdict: None,
                reasons: Vec::new(),
            };
            if step_a != "excluded" {
                let report = self.judge(from.clone(), version, dev);
                c.verdict = Some(report.verdict);
                c.reasons = report.reasons;
            }
            candidates.push(c);
        }
        Ok(MatchReport { from, requirement, candidates })
    }
}
