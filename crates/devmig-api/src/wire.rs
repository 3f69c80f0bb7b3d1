//! Request and response bodies: Serialize and Deserialize both ways, so the services and every
//! client read and write the same types.
use devmig_core::DeviceKind;
use devmig_vendors::{Attributes, DeviceFacts};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{DEVICE_ID_PATTERN, HOST_NAME_PATTERN, IDENTITY_PATTERN, TYPE_ID_PATTERN, VERSION_PATTERN};
use crate::{MigrationId, Ttl};

/// Most devices one host report may list.
pub const MAX_REPORT_DEVICES: usize = 4096;

/// `POST /api/v1/devices/{id}/check`: step b of `version` on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    /// The source's migration_version (printable ASCII).
    #[schemars(length(min = 1, max = 4095), extend("pattern" = VERSION_PATTERN))]
    pub version: String,
    /// Add every vendor rule with both values (discovery and the model; no extra write).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("default" = false))]
    pub explain: bool,
}

/// `POST /api/v1/match`: every local target for a source version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchBody {
    /// The source's migration_version (printable ASCII).
    #[schemars(length(min = 1, max = 4095), extend("pattern" = VERSION_PATTERN))]
    pub version: String,
}

/// What a claim reserves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ClaimTarget {
    /// This device.
    Device(#[schemars(extend("pattern" = DEVICE_ID_PATTERN))] String),
    /// A new mdev of this type (`PARENT/TYPE-ID`), created for the claim.
    Type(#[schemars(extend("pattern" = TYPE_ID_PATTERN))] String),
    /// Any unclaimed local device that accepts the source.
    Any,
}

/// `POST /api/v1/claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// The caller's migration id: claiming twice with it returns the same claim.
    pub migration_id: MigrationId,
    /// The source's version string.
    #[schemars(length(min = 1, max = 4095), extend("pattern" = VERSION_PATTERN))]
    pub source_version: String,
    /// What to reserve.
    pub target: ClaimTarget,
    /// How long the claim holds.
    pub ttl_seconds: Ttl,
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimState {
    /// The device is reserved.
    Active,
    /// Released by the caller.
    Released,
    /// Its ttl passed.
    Expired,
    /// Its device vanished while the agent was down (reported, not dropped).
    Orphaned,
    /// The migration used the device: the claim ended and the device stays (an mdev the claim
    /// created is kept, now the VM's).
    Completed,
}

impl ClaimState {
    /// The state as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::Active => "active",
            ClaimState::Released => "released",
            ClaimState::Expired => "expired",
            ClaimState::Orphaned => "orphaned",
            ClaimState::Completed => "completed",
        }
    }
}

/// One claim, as the agent stores and answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Claim id (UUID).
    pub id: String,
    /// The caller's migration id (idempotency key).
    pub migration_id: String,
    /// The reserved device.
    pub device: String,
    /// True when the agent created the device for this claim (an mdev, or an SR-IOV vGPU VF's
    /// type) and undoes it on release.
    pub created_mdev: bool,
    /// The source version the device accepted.
    pub source_version: String,
    /// What was asked: `device:<id>`, `type:<parent/type>` or `any`.
    pub request: String,
    /// State.
    pub state: ClaimState,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// What happened to it, when it matters (orphaned, removal failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `GET /api/v1/claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimList {
    /// Active and orphaned claims.
    pub claims: Vec<Claim>,
}

/// One host's devices at one generation (schema `devmig.host-report/v1`), pushed by its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostReport {
    /// The host's name (what `HOST:DEVICE` and the fleet call it).
    #[schemars(extend("pattern" = HOST_NAME_PATTERN))]
    pub host: String,
    /// Where the fleet reaches this host's agent: its base URL, http(s)://host[:port].
    #[schemars(length(max = 2048))]
    pub url: String,
    /// The agent's persistent identity (generated once in its state dir): the fleet refuses a
    /// report for a host name that another identity holds.
    #[schemars(extend("pattern" = IDENTITY_PATTERN))]
    pub identity: String,
    /// Nanoseconds since the epoch, strictly increasing per agent and within 10 minutes of the
    /// fleet's clock: the fleet ignores a report older than what it holds.
    pub generation: u64,
    /// Migratable devices.
    #[schemars(length(max = MAX_REPORT_DEVICES))]
    pub devices: Vec<DeviceRecord>,
}

/// One migratable device as the fleet indexes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Device id (PCI address, mdev UUID or PARENT/TYPE-ID).
    #[schemars(extend("pattern" = DEVICE_ID_PATTERN))]
    pub id: String,
    /// Node kind (`pci`, `sriov_pf`, `sriov_vf`, `mdev_type`, `mdev`).
    #[schemars(with = "String")]
    pub kind: DeviceKind,
    /// The vendor model (`i915`).
    pub model: String,
    /// Its version string (what it would send as a migration source).
    pub version: String,
    /// Typed step-a attributes (what it offers as a target).
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub attributes: Attributes,
    /// What the vendor model read (lets the fleet ask "what if the driver were upgraded").
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub facts: DeviceFacts,
    /// Free to be a target: not claimed (a type: instances available).
    pub free: bool,
}
