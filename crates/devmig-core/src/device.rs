use devmig_vendors::DeviceFacts;
use serde::{Deserialize, Serialize};

use crate::DeviceId;

/// What a discovered node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// A PCI function that is neither a PF with VFs nor a VF.
    Pci,
    /// An SR-IOV physical function.
    SriovPf,
    /// An SR-IOV virtual function.
    SriovVf,
    /// An mdev type of a parent.
    MdevType,
    /// A created mdev.
    Mdev,
}

impl DeviceKind {
    /// Every kind.
    pub const ALL: [DeviceKind; 5] =
        [DeviceKind::Pci, DeviceKind::SriovPf, DeviceKind::SriovVf, DeviceKind::MdevType, DeviceKind::Mdev];

    /// The kind as JSON and the fleet's store spell it (`mdev_type`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Pci => "pci",
            DeviceKind::SriovPf => "sriov_pf",
            DeviceKind::SriovVf => "sriov_vf",
            DeviceKind::MdevType => "mdev_type",
            DeviceKind::Mdev => "mdev",
        }
    }

    /// The kind [`DeviceKind::as_str`] spells `name`.
    pub fn from_name(name: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// PCI identification of a function, as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciInfo {
    /// `vendor:device` (`8086:591d`).
    pub id: String,
    /// `subsystem_vendor:subsystem_device`, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem_id: Option<String>,
    /// Class code (`0x030000`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// Revision (`0x04`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// SR-IOV capability of a PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sriov {
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
    /// The VFs' addresses, from `virtfn<i>` links in index order.
    pub vfs: Vec<String>,
}

/// How a device takes part in migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationSupport {
    /// The kernel driver exposes `migration_version`.
    Kernel,
    /// No kernel attribute; devmig's vendor model computes the version and the decision.
    Model,
    /// Neither: the device cannot be a migration source or target.
    None,
    /// Not known: reading the device did not finish (a hung or failing attribute). Never a
    /// verdict: a check involving it is an `error`.
    Unknown,
}

/// Migration support and where the version comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Kernel, model or none.
    pub support: MigrationSupport,
    /// The vendor model recognising the device, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Why there is no support, or what the model could not derive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One discovered device; fields that do not apply to its kind are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its id.
    pub id: DeviceId,
    /// Its kind.
    pub kind: DeviceKind,
    /// PCI ids (PCI functions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciInfo>,
    /// Bound driver (for mdevs and types: the parent's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The driver's module.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_module: Option<String>,
    /// `/sys/module/<module>/version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// IOMMU group number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<u32>,
    /// For a VF: its PF.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physfn: Option<String>,
    /// For a PF: its SR-IOV state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sriov: Option<Sriov>,
    /// For an mdev parent: its supported types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mdev_types: Vec<String>,
    /// For an mdev or type: the parent's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// For an mdev: its type id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdev_type: Option<String>,
    /// For a type: `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For a type: `description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For a type: `device_api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_api: Option<String>,
    /// For a type: `available_instances`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_instances: Option<u32>,
    /// For an mdev: instances it aggregates (when the driver shows `aggregator`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<u32>,
    /// Migration support.
    pub migration: Migration,
    /// Entries that were malformed or unreadable, one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// What the vendor models see of the device.
    #[serde(skip)]
    pub facts: Option<DeviceFacts>,
}

impl Device {
    pub(crate) fn new(id: DeviceId, kind: DeviceKind) -> Self {
        Device {
            id,
            kind,
            pci: None,
            driver: None,
            driver_module: None,
            driver_version: None,
            iommu_group: None,
            physfn: None,
            sriov: None,
            mdev_types: Vec::new(),
            parent: None,
            mdev_type: None,
            name: None,
            description: None,
            device_api: None,
            available_instances: None,
            aggregator: None,
            migration: Migration { support: MigrationSupport::None, model: None, detail: None },
            problems: Vec::new(),
            facts: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeviceKind;

    #[test]
    fn kind_names_are_the_json_names() {
        for k in DeviceKind::ALL {
            assert_eq!(serde_json::to_value(k).expect("json"), k.as_str());
            assert_eq!(DeviceKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(DeviceKind::from_name("gpu"), None);
    }
}
