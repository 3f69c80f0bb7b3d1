//! The fleet's wire types: placement requests and answers (with the explanation of a
//! placement that found nothing), Serialize and Deserialize both ways.
use devmig_core::{DeviceKind, Reason, Verdict};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ApiError, MigrationId, Ttl};

/// One device of the VM, by where it runs or by its version string alone.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// Its host (with `device`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its device id on that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Its version string (instead of host and device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl std::str::FromStr for SourceRef {
    type Err = ApiError;
    /// `HOST:DEVICE` (the device may itself contain colons: the host is up to the first one).
    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s.split_once(':') {
            Some((h, d)) if !h.is_empty() && !d.is_empty() => {
                Ok(SourceRef { host: Some(h.into()), device: Some(d.into()), version: None })
            }
            _ => Err(ApiError::invalid("source", s, "HOST:DEVICE")),
        }
    }
}

/// `POST /api/v1/placements`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlacementRequest {
    /// The VM's devices (1..=16).
    #[schemars(length(min = 1, max = 16))]
    pub sources: Vec<SourceRef>,
    /// Claim the targets (needs `migration_id`).
    #[serde(default)]
    pub claim: bool,
    /// The caller's migration id (claims are `<id>.<n>` on the agent).
    #[serde(default)]
    pub migration_id: Option<MigrationId>,
    /// Hosts never to use (the source hosts are always excluded).
    #[serde(default)]
    pub exclude_hosts: Vec<String>,
    /// Ranked hosts to verify at most (default 8).
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub max_hosts: Option<usize>,
    /// Claim lifetime in seconds (default 600).
    #[serde(default)]
    pub ttl_seconds: Option<Ttl>,
}

/// One source's target.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Assignment {
    /// The source's label.
    pub source: String,
    /// The target device.
    pub target: String,
    /// Its kind.
    pub kind: DeviceKind,
    /// Step b's verdict.
    pub verdict: Verdict,
    /// The agent's claim id, when claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    /// The device the claim reserved, when it differs from `target` (a type's new mdev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_device: Option<String>,
    /// What only the destination driver's resume decides for this pair (a VFIO variant
    /// driver's firmware checks), as the agent's check named it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_resume: Vec<String>,
}

/// One step-b call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Probe {
    /// Source label.
    pub source: String,
    /// Target device.
    pub target: String,
    /// Verdict, when the agent gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The reasons of a non-accepting verdict (as the agent gave them), or the call's failure
    /// (`agent_unreachable`, `agent_refused`, `claim_failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
    /// What only the destination driver's resume decides (of an accepting verdict).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub at_resume: Vec<String>,
}

/// A host that was verified.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tried {
    /// Host.
    pub host: String,
    /// How verifying (and claiming) on it ended.
    pub outcome: HostOutcome,
    /// Step-b calls made.
    pub probes: Vec<Probe>,
}

/// How a placement's verification of one host ended.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum HostOutcome {
    /// Step b accepted a target for every source.
    Accepted,
    /// Step b rejected (or an agent refused) what the host had.
    Rejected,
    /// Its agent did not answer in time.
    Unreachable,
    /// Step b accepted, then claiming failed on every assignment left.
    ClaimFailed,
    /// Verified in parallel with a better-ranked host that won.
    NotNeeded,
}

impl HostOutcome {
    /// The outcome as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            HostOutcome::Accepted => "accepted",
            HostOutcome::Rejected => "rejected",
            HostOutcome::Unreachable => "unreachable",
            HostOutcome::ClaimFailed => "claim_failed",
            HostOutcome::NotNeeded => "not_needed",
        }
    }
}

/// Milliseconds spent per phase.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Timings {
    /// Step a and matching.
    pub step_a_ms: f64,
    /// Step b.
    pub step_b_ms: f64,
    /// Claims.
    pub claim_ms: f64,
}

/// The answer (schema `devmig.placement/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Placement {
    /// Schema tag (`devmig.placement/v1`).
    pub schema: String,
    /// True when a host took every source.
    pub placed: bool,
    /// That host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its agent's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Targets, in source order.
    pub assignments: Vec<Assignment>,
    /// Hosts passing step a with distinct targets for every source (ranked; at most the
    /// first `max_hosts` are verified).
    pub candidate_hosts: usize,
    /// Every host verified, in the order tried.
    pub tried: Vec<Tried>,
    /// Why nothing fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// Where the time went.
    pub timings: Timings,
}

/// Hosts that failed for one reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Group {
    /// How many hosts.
    pub hosts: usize,
    /// The source it concerns (its label), or `all` for VM-wide reasons.
    pub source: String,
    /// A stable code: `no_device`, `rule:<attribute>`, `none_free`, `no_distinct_targets`,
    /// `rejected_in_step_b`, `unreachable`, `claim_failed`, `not_tried`, `stale`.
    pub code: String,
    /// One sentence.
    pub detail: String,
}

/// A host that came close.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Miss {
    /// Host.
    pub host: String,
    /// Constraints unmet, over all sources.
    pub unmet: usize,
    /// Per source: the closest device and what it lacked.
    pub detail: Vec<String>,
}

/// Why no host could take the VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Explanation {
    /// Groups, largest first.
    pub groups: Vec<Group>,
    /// Up to five hosts with the fewest unmet constraints.
    pub closest: Vec<Miss>,
}

/// `POST /api/v1/evacuations`: a target for every mdev and VF of `host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvacuationRequest {
    /// The host to empty.
    pub host: String,
    /// Claim each target (as `<migration_prefix>-<n>`).
    #[serde(default)]
    pub claim: bool,
    /// Migration ids' prefix (default `evacuate-<host>-<ms>`).
    #[serde(default)]
    pub migration_prefix: Option<String>,
    /// The host's VMs as libvirt domain XML: each moves as one (all its devices to one host);
    /// empty: every device alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub vms: Vec<String>,
}

/// A driver upgrade to plan for: `MODEL=VERSION` on the command line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriverChange {
    /// Vendor model (`i915`).
    pub model: String,
    /// The module version after the upgrade.
    pub version: String,
}

impl std::str::FromStr for DriverChange {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        match s.split_once('=') {
            Some((m, v)) if !m.is_empty() && !v.is_empty() => Ok(DriverChange { model: m.into(), version: v.into() }),
            _ => Err(ApiError::invalid("--driver", s, "MODEL=VERSION (i915=1.4.0)")),
        }
    }
}

/// `POST /api/v1/baseline` and `POST /api/v1/what-if`: a pool of hosts (and, for what-if, the
/// driver change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolRequest {
    /// Host-name glob (`rack1-*`).
    pub hosts: String,
    /// The driver change (what-if only).
    #[serde(default)]
    pub driver: Option<DriverChange>,
}

/// `POST /api/v1/vms`: the VMs of one host, as libvirt's domain XML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmsRequest {
    /// The host the VMs run on (its devices' versions come from its report).
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Each VM's domain XML (`virsh dumpxml`).
    #[schemars(length(min = 1, max = 64))]
    pub domains: Vec<String>,
}

/// One assigned device of a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDevice {
    /// The device (an mdev's UUID, a function's address).
    pub device: String,
    /// `mdev` or `pci`.
    pub kind: String,
    /// Its version string, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A VM's verdict: can it migrate, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmVerdict {
    /// The domain's name.
    pub name: String,
    /// Its UUID, when the XML has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Its mdevs and PCI functions.
    pub devices: Vec<VmDevice>,
    /// `migratable`, `not_migratable`, `unreadable` (a device's version is unknown: never
    /// migratable), `no_devices`, or `unknown` (no fleet asked).
    pub verdict: String,
    /// Fresh hosts whose free devices step a admits for every device, with distinct targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<usize>,
    /// Why none, as the fleet's first explanation group says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// A host as the fleet knows it (`GET /api/v1/hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRow {
    /// Name.
    pub name: String,
    /// Agent URL.
    pub url: String,
    /// The reporting agent's identity ('' until a report carried one).
    pub identity: String,
    /// Last generation stored.
    pub generation: u64,
    /// When its last report arrived (ms since the epoch).
    pub last_seen_ms: i64,
    /// Devices it reported.
    pub devices: i64,
    /// Of those, mdevs, VFs and functions free for a migration (reported free, not held).
    #[serde(default)]
    pub free: i64,
    /// True when it stopped reporting: excluded from placement.
    pub stale: bool,
}

/// One device's evacuation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Move {
    /// The device on the evacuated host (a VM's devices, space-separated, when it moved a VM).
    pub device: String,
    /// The VM that moved as one (all its devices to one host), when VMs were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// Where it goes (or why nowhere).
    pub placement: Placement,
}

/// `devmig fleet evacuate` (schema `devmig.evacuation/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Evacuation {
    /// Schema tag.
    pub schema: String,
    /// The host.
    pub host: String,
    /// Devices with a target.
    pub placed: usize,
    /// Devices without one.
    pub unplaced: usize,
    /// Per device.
    pub moves: Vec<Move>,
}

/// One source configuration and how much of the pool accepts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accepted {
    /// Vendor model.
    pub model: String,
    /// The version string (a source configuration seen in the pool).
    pub version: String,
    /// Pool hosts with a device that passes step a for it.
    pub hosts: usize,
}

/// `devmig fleet baseline` (schema `devmig.baseline/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Baseline {
    /// Schema tag.
    pub schema: String,
    /// Fresh hosts in the pool.
    pub pool_hosts: usize,
    /// Source configurations every pool host accepts (step a; a device's presence, not its availability).
    pub everywhere: Vec<Accepted>,
    /// The others, with how many hosts accept each.
    pub partial: Vec<Accepted>,
}

/// How one source configuration's reach over the pool changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shift {
    /// Vendor model.
    pub model: String,
    /// Source version string.
    pub version: String,
    /// Pool hosts accepting it today.
    pub before: usize,
    /// After the upgrade.
    pub after: usize,
    /// Hosts that would stop accepting it (up to 10).
    pub broken_on: Vec<String>,
    /// Hosts that would start accepting it (up to 10).
    pub enabled_on: Vec<String>,
}

/// `devmig fleet what-if` (schema `devmig.what-if/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WhatIf {
    /// Schema tag.
    pub schema: String,
    /// The change.
    pub change: DriverChange,
    /// Pool hosts.
    pub pool_hosts: usize,
    /// Pool devices whose version string changes.
    pub devices_changed: usize,
    /// Migrations into the pool: sources (every version in the fleet) whose accepting pool hosts change.
    pub into_pool: Vec<Shift>,
    /// Migrations out of the pool: the upgraded versions, and how many fleet hosts outside the pool accept them.
    pub out_of_pool: Vec<Shift>,
}

/// `POST /api/v1/candidates`: step a alone for a VM's devices, nothing verified or claimed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidatesRequest {
    /// The VM's devices (1..=16).
    #[schemars(length(min = 1, max = 16))]
    pub sources: Vec<SourceRef>,
    /// Hosts never to offer (the source hosts are always excluded).
    #[serde(default)]
    pub exclude_hosts: Vec<String>,
    /// Ranked hosts to list at most (default 20, at most 1000).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<usize>,
}

/// A source as the fleet resolved it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResolvedSource {
    /// How answers name it (`HOST:DEVICE`, or the version string).
    pub label: String,
    /// Vendor model (`opaque` when none knows the string).
    pub model: String,
    /// Its version string.
    pub version: String,
}

/// A host where step a admits a distinct target for every source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Candidate {
    /// Host name.
    pub host: String,
    /// Its agent.
    pub url: String,
    /// Sources with a target of the very same version there (the first rank key).
    pub identical: usize,
    /// Distinct free devices step a admits there for any source (the second rank key).
    pub free_targets: usize,
    /// `targets[i]`: the devices step a admits for source `i`.
    pub targets: Vec<Vec<String>>,
}

/// `devmig fleet candidates` (schema `devmig.candidates/v1`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Candidates {
    /// Schema tag.
    pub schema: String,
    /// The sources.
    pub sources: Vec<ResolvedSource>,
    /// Hosts passing step a with distinct targets, in all.
    pub candidate_hosts: usize,
    /// True when `candidates` stops at the limit.
    pub more: bool,
    /// The best hosts, ranked.
    pub candidates: Vec<Candidate>,
    /// Why the other fresh hosts are not candidates, grouped.
    pub explanation: Explanation,
}

/// One source class of the fleet: a version string its devices carry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceClass {
    /// Vendor model.
    pub model: String,
    /// The version string.
    pub version: String,
    /// Devices (mdevs, VFs, functions) on fresh hosts carrying it.
    pub sources: usize,
    /// Fresh hosts with a device that step a admits for it.
    pub hosts: usize,
}

/// Fresh hosts that accept exactly the same source classes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pool {
    /// How many hosts.
    pub hosts: usize,
    /// The classes they accept (indexes into `classes`).
    pub accepts: Vec<usize>,
    /// The first 20 of them by name.
    pub members: Vec<String>,
    /// How many more.
    pub more: usize,
}

/// `GET /api/v1/compatibility` (schema `devmig.compatibility/v1`): for each source class, which
/// hosts accept it, with hosts grouped into pools that accept the same classes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Compatibility {
    /// Schema tag.
    pub schema: String,
    /// Hosts reporting in time.
    pub fresh_hosts: usize,
    /// Hosts that stopped reporting (not in any pool).
    pub stale_hosts: usize,
    /// Source classes, by model then version.
    pub classes: Vec<SourceClass>,
    /// Pools, largest first.
    pub pools: Vec<Pool>,
    /// When it was computed (ms since the epoch): the fleet caches it for a few seconds.
    pub computed_ms: i64,
}
