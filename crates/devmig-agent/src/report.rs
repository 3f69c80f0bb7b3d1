//! The host report an agent pushes to the fleet: every migratable device with its version
//! string, typed step-a attributes, the facts its vendor model read, and whether it is free.

use devmig_core::{DeviceKind, MigrationSupport};
use devmig_vendors::FactsKind;

use crate::{Agent, AgentError};

pub use devmig_api::{DeviceRecord, HostReport};

impl Agent {
    /// The devices the fleet can index: every device a vendor model knows, and every device
    /// whose kernel shows a `migration_version` no model knows (opaque: indexed by its driver,
    /// its string's driver prefix and the string). Where the kernel shows a string, the
    /// attributes come from it. Devices nothing describes are left out and logged.
    pub fn device_records(&self) -> Result<Vec<DeviceRecord>, AgentError> {
        self.device_records_of(self.devices()?)
    }

    /// [`Agent::device_records`] of an inventory the caller already read (one discovery for a
    /// caller that also looks at the inventory itself).
    pub fn device_records_of(&self, inventory: devmig_core::Inventory) -> Result<Vec<DeviceRecord>, AgentError> {
        let claimed = self.claimed_devices()?;
        let registry = self.checker().registry();
        let mut records = Vec::new();
        for dev in inventory.devices {
            if matches!(dev.migration.support, MigrationSupport::None | MigrationSupport::Unknown)
                || matches!(dev.kind, DeviceKind::SriovPf)
            {
                continue;
            }
            let id = dev.id.to_string();
            let model = dev.facts.as_ref().and_then(|f| registry.model_for_device(f));
            let version = match dev.migration.support {
                MigrationSupport::Kernel => self.version(&id).ok().and_then(|v| v.side.version),
                _ => model.zip(dev.facts.as_ref()).and_then(|(m, f)| m.version(f).ok()),
            };
            let kernel = version.as_deref().filter(|_| dev.migration.support == MigrationSupport::Kernel);
            let described = version.as_ref().map(|_| registry.describe(dev.facts.as_ref(), kernel));
            let (version, described) = match (version, described) {
                (Some(v), Some(Ok(d))) => (v, d),
                (_, Some(Err(e))) => {
                    tracing::warn!(device = %id, error = %e, "left out of the host report: no attributes");
                    continue;
                }
                _ => {
                    tracing::warn!(device = %id, "left out of the host report: no version");
                    continue;
                }
            };
            for conflict in &described.conflicts {
                tracing::warn!(device = %id, conflict = %conflict, "the kernel's string and sysfs disagree");
            }
            let free = match dev.kind {
                DeviceKind::MdevType => dev.available_instances.unwrap_or(0) > 0,
                _ => !claimed.contains(&id),
            };
            let facts = dev.facts.unwrap_or_else(|| opaque_facts(&dev.kind));
            records.push(DeviceRecord {
                id,
                kind: dev.kind,
                model: described.model,
                version,
                attributes: described.attributes,
                facts,
                free,
            });
        }
        Ok(records)
    }
}

/// Facts of a device discovery could not describe (an opaque device without a driver link).
fn opaque_facts(kind: &DeviceKind) -> devmig_vendors::DeviceFacts {
    let kind = match kind {
        DeviceKind::MdevType => FactsKind::MdevType,
        DeviceKind::Mdev => FactsKind::Mdev,
        DeviceKind::SriovVf => FactsKind::PciFunction { virtual_function: true },
        _ => FactsKind::PciFunction { virtual_function: false },
    };
    devmig_vendors::DeviceFacts {
        kind,
        pci_id: None,
        parent: None,
        driver: None,
        driver_version: None,
        mdev_type: None,
        aggregator: 1,
        params: Default::default(),
    }
}
