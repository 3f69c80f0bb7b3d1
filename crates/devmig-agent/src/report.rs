//! The host report an agent pushes to the fleet: every migratable device with its version
//! string, typed step-a attributes, the facts its vendor model read, and whether it is free.
use std::collections::HashSet;

use devmig_core::{DeviceKind, MigrationSupport};
use devmig_vendors::{Attributes, DeviceFacts};
use serde::{Deserialize, Serialize};

use crate::claims::ClaimState;
use crate::{Agent, AgentError};

/// One host's devices at one generation (schema `devmig.host-report/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostReport {
    /// The host's name (what `DEVICE@HOST` and the fleet call it).
    pub host: String,
    /// Where the fleet reaches this host's agent (`http://10.0.0.7:7070`).
    pub url: String,
    /// The agent's persistent identity ([`crate::identity`]): the fleet refuses a report for a
    /// host name that another identity holds.
    pub identity: String,
    /// Strictly increasing per host: the fleet ignores a report older than what it holds.
    pub generation: u64,
    /// Migratable devices.
    pub devices: Vec<DeviceRecord>,
}

/// One migratable device as the fleet indexes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Device id (PCI address, mdev UUID or PARENT/TYPE-ID).
    pub id: String,
    /// Node kind.
    pub kind: DeviceKind,
    /// The vendor model (`i915`).
    pub model: String,
    /// Its version string (what it would send as a migration source).
    pub version: String,
    /// Typed step-a attributes (what it offers as a target).
    pub attributes: Attributes,
    /// What the vendor model read (lets the fleet ask "what if the driver were upgraded").
    pub facts: DeviceFacts,
    /// Free to be a target: not claimed (a type: instances available).
    pub free: bool,
}

impl Agent {
    /// The devices a vendor model knows, as the fleet indexes them. Devices a model cannot
    /// describe (no facts, no version, no attributes) are left out and logged.
    pub fn device_records(&self) -> Result<Vec<DeviceRecord>, AgentError> {
        let inventory = self.devices()?;
        let claimed: HashSet<String> =
            self.claims()?.into_iter().filter(|c| c.state == ClaimState::Active).map(|c| c.device).collect();
        let registry = self.checker().registry();
        let mut records = Vec::new();
        for dev in inventory.devices {
            if matches!(dev.migration.support, MigrationSupport::None | MigrationSupport::Unknown)
                || matches!(dev.kind, DeviceKind::SriovPf)
            {
                continue;
            }
            let Some(facts) = dev.facts else { continue };
            let Some(model) = registry.model_for_device(&facts) else { continue };
            let id = dev.id.to_string();
            let described = match dev.migration.support {
                MigrationSupport::Kernel => self.version(&id).map(|v| v.side.version),
                _ => Ok(model.version(&facts).ok()),
            }
            .map(|v| v.zip(model.attributes(&facts).ok()));
            let (version, attributes) = match described {
                Ok(Some(va)) => va,
                Ok(None) | Err(_) => {
                    tracing::warn!(device = %id, "left out of the host report: no version or attributes");
                    continue;
                }
            };
            let free = match dev.kind {
                DeviceKind::MdevType => dev.available_instances.unwrap_or(0) > 0,
                _ => !claimed.contains(&id),
            };
            records.push(DeviceRecord {
                id,
                kind: dev.kind,
                model: model.name().to_string(),
                version,
                attributes,
                facts,
                free,
            });
        }
        Ok(records)
    }
}
