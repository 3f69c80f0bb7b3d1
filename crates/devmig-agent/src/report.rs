//! The host report an agent pushes to the fleet: every migratable device with its version
//! string, typed step-a attributes, the facts its vendor model read, and whether it is free.

use devmig_core::{DeviceKind, MigrationSupport};

use crate::{Agent, AgentError};

pub use devmig_api::{DeviceRecord, HostReport};

impl Agent {
    /// The devices a vendor model knows, as the fleet indexes them. Devices a model cannot
    /// describe (no facts, no version, no attributes) are left out and logged.
    pub fn device_records(&self) -> Result<Vec<DeviceRecord>, AgentError> {
        let inventory = self.devices()?;
        let claimed = self.claimed_devices()?;
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
