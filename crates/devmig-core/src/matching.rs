//! `match`: local targets that pass step a, then verified by step b.
use devmig_vendors::{Requirement, Unmet};
use serde::{Deserialize, Serialize};

use crate::device::MigrationSupport;
use crate::verdict::{Reason, ReasonCode, Side};
use crate::{CheckReport, Checker, CoreError, DeviceId, Verdict, validate_version};

/// Step a's outcome for one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepA {
    /// Every constraint holds.
    Passed,
    /// A constraint fails (`unmet` says which).
    Excluded,
    /// A kernel attribute but no model: step a cannot judge it.
    Unfiltered,
}

impl StepA {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepA::Passed => "passed",
            StepA::Excluded => "excluded",
            StepA::Unfiltered => "unfiltered",
        }
    }
}

/// Why a candidate cannot be claimed now, whatever step b says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unusable {
    /// An mdev type with no free instance left.
    NoFreeInstance,
    /// A device an active claim holds.
    Claimed,
}

/// One local device considered as a target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MatchCandidate {
    /// The device.
    pub device: String,
    /// Step a's outcome.
    pub step_a: StepA,
    /// Why the device cannot take the source now (it is then not written to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unusable: Option<Unusable>,
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
    /// Every migratable local device: usable ones step b accepted first, then by id.
    pub candidates: Vec<MatchCandidate>,
}

impl MatchReport {
    /// Usable devices step b accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &MatchCandidate> {
        self.candidates.iter().filter(|c| c.unusable.is_none() && c.verdict.is_some_and(Verdict::is_compatible))
    }
}

/// Runs one step b (the closure) serialised with every other writer of the device, or
/// answers `None` when the device stayed busy.
pub type Exclusive<'a> = &'a dyn Fn(&DeviceId, &mut dyn FnMut() -> CheckReport) -> Option<CheckReport>;

/// What a caller that shares the devices adds to `match` (the agent: its claims and locks).
pub struct MatchContext<'a> {
    /// Devices an active claim holds: listed as [`Unusable::Claimed`], never written to.
    pub claimed: &'a dyn Fn(&DeviceId) -> bool,
    /// Runs one candidate's step b serialised with every other writer of the device;
    /// `None` when the device stayed busy (the candidate's verdict is then `error`).
    pub exclusive: Exclusive<'a>,
}

impl Default for MatchContext<'_> {
    fn default() -> Self {
        MatchContext { claimed: &|_| false, exclusive: &|_, run| Some(run()) }
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
        self.match_impl(read.side, &version, Some(source), &MatchContext::default())
    }

    /// Matches a version string that came from elsewhere.
    pub fn match_version(&self, version: &str) -> Result<MatchReport, CoreError> {
        self.match_version_in(version, &MatchContext::default())
    }

    /// [`Checker::match_version`] for a caller that holds claims and serialises writes.
    pub fn match_version_in(&self, version: &str, cx: &MatchContext<'_>) -> Result<MatchReport, CoreError> {
        validate_version(version)?;
        self.match_impl(Side { version: Some(version.to_string()), ..Side::default() }, version, None, cx)
    }

    fn match_impl(
        &self,
        from: Side,
        version: &str,
        exclude: Option<&DeviceId>,
        cx: &MatchContext<'_>,
    ) -> Result<MatchReport, CoreError> {
        let requirement = self.registry().requirement(version)?;
        let inventory = self.inventory()?;
        let mut candidates = Vec::new();
        for dev in inventory.devices.iter().filter(|d| {
            !matches!(d.migration.support, MigrationSupport::None | MigrationSupport::Unknown) && Some(&d.id) != exclude
        }) {
            // The attributes the fleet indexes: from the kernel's string where there is one.
            let attrs = self.describe(dev).ok().map(|d| d.attributes);
            let (step_a, unmet) = match &attrs {
                Some(a) => {
                    let unmet = requirement.unmet(a);
                    (if unmet.is_empty() { StepA::Passed } else { StepA::Excluded }, unmet)
                }
                None => (StepA::Unfiltered, Vec::new()),
            };
            let unusable = if dev.available_instances == Some(0) {
                Some(Unusable::NoFreeInstance)
            } else if (cx.claimed)(&dev.id) {
                Some(Unusable::Claimed)
            } else {
                None
            };
            let mut c = MatchCandidate {
                device: dev.id.to_string(),
                step_a,
                unusable,
                unmet,
                verdict: None,
                reasons: Vec::new(),
            };
            if step_a != StepA::Excluded && unusable.is_none() {
                let report = (cx.exclusive)(&dev.id, &mut || self.judge(from.clone(), version, dev, None))
                    .unwrap_or_else(|| {
                        let to = Side { device: Some(dev.id.to_string()), ..Side::default() };
                        let why = "another write to the device did not finish in time";
                        CheckReport::new(from.clone(), to).error(Reason::new(ReasonCode::DeviceBusy, why))
                    });
                c.verdict = Some(report.verdict);
                c.reasons = report.reasons;
            }
            candidates.push(c);
        }
        // Usable accepted targets first, identical strings before compatible ones (by id, as
        // discovery lists them), then the rest.
        candidates.sort_by_key(|c| {
            (
                c.unusable.is_some() || !c.verdict.is_some_and(Verdict::is_compatible),
                c.verdict != Some(Verdict::Identical),
            )
        });
        Ok(MatchReport { from, requirement, candidates })
    }
}
