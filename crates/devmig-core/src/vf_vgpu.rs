//! SR-IOV vGPUs (NVIDIA vGPU 17 and later, the "vendor-specific VFIO framework"): a VF of the
//! GPU, bound to `nvidia`, has an `nvidia/` directory whose `current_vgpu_type` reads the VF's
//! vGPU type number (0: none; writing a number gives the VF that type, writing 0 clears it) and
//! whose `creatable_vgpu_types` lists the types it can take now (`ID    : vGPU Name`, then
//! `<number> : <name>` lines). A VF without a type is offered as one type target per listed
//! type, `<VF>/nvidia-<number>`, the way an mdev parent offers its types: checking against it
//! judges the VF as it would be with that type, and a type claim writes the number.
use std::path::{Path, PathBuf};

use devmig_vendors::DeviceFacts;
use devmig_vendors::models::{CREATABLE_TYPES, CURRENT_TYPE, creatable_types};

use crate::device::{Device, DeviceKind};
use crate::discovery::{driver_of, hex, text};
use crate::{DeviceId, PciAddress, SysfsRoot};

/// The type number of a type id `nvidia-<number>`.
pub fn type_number(type_id: &str) -> Option<u32> {
    type_id.strip_prefix("nvidia-")?.parse().ok().filter(|n| *n != 0)
}

/// The VF's directory when `id` is a type target of an SR-IOV vGPU VF: `parent` is a PCI
/// address whose `nvidia/current_vgpu_type` exists and no mdev parent of that name does.
pub fn vf_dir(root: &SysfsRoot, id: &DeviceId) -> Option<PathBuf> {
    let DeviceId::MdevType { parent, type_id } = id else { return None };
    type_number(type_id)?;
    parent.parse::<PciAddress>().ok()?;
    let dir = root.join(format!("sys/bus/pci/devices/{parent}"));
    (dir.join(CURRENT_TYPE).is_file() && !root.join(id.node_path()).exists()).then_some(dir)
}

/// The `current_vgpu_type` file a type claim on `id` writes, when `id` is a VF type target.
pub fn type_file(root: &SysfsRoot, id: &DeviceId) -> Option<PathBuf> {
    vf_dir(root, id).map(|d| d.join(CURRENT_TYPE))
}

/// The types a VF without a vGPU type lists now (`nvidia-<number>`), from its directory.
pub(crate) fn listed_types(vf_dir: &Path, problems: &mut Vec<String>) -> Vec<String> {
    let listing = text(vf_dir, CREATABLE_TYPES, problems).unwrap_or_default();
    creatable_types(&listing).into_iter().map(|(n, _)| format!("nvidia-{n}")).collect()
}

/// The type target `id` (`<VF>/nvidia-<number>`) of the VF in `vf_dir`: its name as the VF
/// lists it, one instance available while the VF has no type and lists this one.
pub(crate) fn type_device(root: &SysfsRoot, vf_dir: &Path, parent: &str, type_id: &str, id: DeviceId) -> Device {
    let mut d = Device::new(id, DeviceKind::MdevType);
    let p = &mut d.problems;
    let current = text(vf_dir, CURRENT_TYPE, p);
    let listing = text(vf_dir, CREATABLE_TYPES, p).unwrap_or_default();
    let listed = creatable_types(&listing).into_iter().find(|(n, _)| Some(*n) == type_number(type_id));
    d.name = listed.as_ref().map(|(_, name)| name.clone());
    d.device_api = Some("vfio-pci".into());
    d.available_instances = Some(u32::from(listed.is_some() && current.as_deref().map(str::trim) == Some("0")));
    let vendor = hex(vf_dir, "vendor", 4, p);
    let device = hex(vf_dir, "device", 4, p);
    let pci_id = vendor.zip(device).map(|(v, dv)| format!("{v:04x}:{dv:04x}")).unwrap_or_default();
    (d.driver, d.driver_module, d.driver_version) = driver_of(root, vf_dir, p);
    if let (Some(drv), Some(current)) = (d.driver.clone(), current) {
        let mut facts = DeviceFacts::mdev_type(parent, &pci_id, &drv, d.driver_version.as_deref(), type_id)
            .with_param(CURRENT_TYPE, &current);
        if let Some(name) = &d.name {
            facts = facts.with_param("name", name);
        }
        d.facts = Some(facts);
    }
    d.parent = Some(parent.to_string());
    d
}
