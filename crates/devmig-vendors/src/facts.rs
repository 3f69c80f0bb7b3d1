use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PciId;

/// What kind of node the facts describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactsKind {
    /// A PCI function (a plain device, an SR-IOV PF or a VF).
    PciFunction {
        /// True for an SR-IOV virtual function.
        virtual_function: bool,
    },
    /// An mdev type of a parent, before any target mdev exists.
    MdevType,
    /// A created mdev.
    Mdev,
}

/// What a vendor model needs to know about one device; gathered by discovery
/// (or by the emulator) and handed to the model, which does no I/O itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// Node kind.
    pub kind: FactsKind,
    /// The function's vendor:device, or for an mdev (type) its parent's.
    pub pci_id: Option<PciId>,
    /// The mdev parent's name (a PCI address or a virtual device name).
    pub parent: Option<String>,
    /// Driver bound to the function, or to the mdev's parent.
    pub driver: Option<String>,
    /// That driver's module version, as the module reports it.
    pub driver_version: Option<String>,
    /// The mdev type id (`i915-GVTg_V5_4`).
    pub mdev_type: Option<String>,
    /// How many type instances one mdev aggregates (1 unless configured).
    pub aggregator: u32,
    /// Per-device configuration a model reads (see [`crate::VendorModel::param_files`]).
    pub params: BTreeMap<String, String>,
}

impl DeviceFacts {
    /// Facts of a PCI function.
    pub fn pci_function(id: &str, virtual_function: bool, driver: &str, driver_version: Option<&str>) -> Self {
        DeviceFacts {
            kind: FactsKind::PciFunction { virtual_function },
            pci_id: id.parse().ok(),
            parent: None,
            driver: Some(driver.to_string()),
            driver_version: driver_version.map(str::to_string),
            mdev_type: None,
            aggregator: 1,
            params: BTreeMap::new(),
        }
    }

    /// Facts of a created mdev.
    pub fn mdev(
        parent: &str,
        parent_id: &str,
        driver: &str,
        driver_version: Option<&str>,
        mdev_type: &str,
        aggregator: u32,
    ) -> Self {
        DeviceFacts {
            kind: FactsKind::Mdev,
            pci_id: parent_id.parse().ok(),
            parent: Some(parent.to_string()),
            driver: Some(driver.to_string()),
            driver_version: driver_version.map(str::to_string),
            mdev_type: Some(mdev_type.to_string()),
            aggregator,
            params: BTreeMap::new(),
        }
    }

    /// Facts of an mdev type node (the target mdev does not exist yet).
    pub fn mdev_type(
        parent: &str,
        parent_id: &str,
        driver: &str,
        driver_version: Option<&str>,
        mdev_type: &str,
    ) -> Self {
        DeviceFacts { kind: FactsKind::MdevType, ..Self::mdev(parent, parent_id, driver, driver_version, mdev_type, 1) }
    }

    /// Adds one configuration parameter.
    pub fn with_param(mut self, name: &str, value: &str) -> Self {
        self.params.insert(name.to_string(), value.to_string());
        self
    }

    /// True for a created mdev or an mdev type.
    pub fn is_mdev_like(&self) -> bool {
        matches!(self.kind, FactsKind::Mdev | FactsKind::MdevType)
    }

    /// True for an SR-IOV virtual function.
    pub fn is_vf(&self) -> bool {
        matches!(self.kind, FactsKind::PciFunction { virtual_function: true })
    }
}
