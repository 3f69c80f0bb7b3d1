//! Which Placement provider stands for which device, and the devmig traits each should carry.
//!
//! Nova names the provider of an mdev-capable parent `<node>_<libvirt node device name>`, and
//! libvirt names a PCI device `pci_<domain>_<bus>_<slot>_<function>` (Nova 34.0.0,
//! nova/virt/libvirt/driver.py `_ensure_pgpu_providers`; `compute1_pci_0000_81_00_0`). Nova's
//! PCI-in-Placement providers are `<node>_<PF ADDRESS>` (nova/compute/pci_placement_translator.py).
//! A target for Nova is a new mdev of a type on that parent, so each of the parent's
//! `mdev_type` devices adds its traits there (the union: the parent accepts a source when one
//! of its types does). Created mdevs are instances' devices, not targets. PCI functions (VFs)
//! get their Placement providers, and those providers' traits, from Nova's `[pci] device_spec`,
//! which Nova rewrites on every update: their traits are printed as device spec entries instead.
use std::collections::{BTreeMap, BTreeSet};

use devmig_core::{DeviceKind, PciAddress};
use devmig_vendors::placement_traits::target_traits;
use devmig_vendors::{Attributes, Registry};
use serde::Serialize;

use crate::OpenStackError;

/// One device as its host reports it (an agent's device record).
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Device id (PCI address, mdev UUID or PARENT/TYPE-ID).
    pub id: &'a str,
    /// Its kind.
    pub kind: DeviceKind,
    /// Its step-a attributes.
    pub attributes: &'a Attributes,
    /// A VF's PF (its `physfn`), where known.
    pub pf: Option<&'a str>,
}

/// The devmig traits one provider should carry, and the devices they come from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ProviderTraits {
    /// Every `CUSTOM_DEVMIG_*` trait.
    pub traits: BTreeSet<String>,
    /// The devices (mdev types) whose traits these are.
    pub devices: Vec<String>,
}

/// A `[pci] device_spec` entry for a PCI function: Nova puts `traits` on its provider. Nova
/// keeps one provider per PF for all its VFs and refuses VFs of one PF with different traits
/// (`PlacementPciMixedTraitsException`), so each VF carries the union over its PF's VFs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceSpecEntry {
    /// The function's PCI address.
    pub address: String,
    /// Its devmig traits (the union over the VFs of its PF).
    pub traits: BTreeSet<String>,
    /// True when the VFs of its PF accept different sources, so Placement admits the whole PF
    /// for a source any one of them accepts (step b decides between them).
    pub coarse: bool,
    /// True for a function whose driver migrates it (a VFIO variant driver, NVIDIA's SR-IOV
    /// vGPU): Nova (2025.1, "migrate VFIO devices using kernel variant drivers") live-migrates
    /// only devices its `device_spec` tags `live_migratable`.
    pub live_migratable: bool,
}

impl DeviceSpecEntry {
    /// The entry as nova.conf takes it (one JSON object; `traits` comma-separated).
    pub fn to_nova_conf(&self) -> String {
        let traits = self.traits.iter().map(String::as_str).collect::<Vec<_>>().join(",");
        let mut entry = serde_json::json!({ "address": self.address, "traits": traits });
        if self.live_migratable {
            entry["live_migratable"] = "yes".into();
        }
        entry.to_string()
    }
}

/// Where one host's devices go in Placement.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Desired {
    /// Nova's compute node name (the name of the tree's root provider).
    pub node: String,
    /// mdev parents' providers, by provider name.
    pub providers: BTreeMap<String, ProviderTraits>,
    /// PCI functions, for `[pci] device_spec`.
    pub device_spec: Vec<DeviceSpecEntry>,
    /// Devices that map to no provider, with why.
    pub skipped: Vec<(String, String)>,
}

/// Checks a compute node name: what Nova reports as `hypervisor_hostname` (1..=150 printable
/// characters, so that `<node>_pci_...` stays within Placement's 200 for a provider name).
pub fn check_node(node: &str) -> Result<(), OpenStackError> {
    if node.is_empty() || node.len() > 150 || !node.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OpenStackError::Config(format!(
            "compute node name {node:?} must be 1..=150 printable characters without spaces"
        )));
    }
    Ok(())
}

/// libvirt's node device name of an mdev parent: `pci_0000_81_00_0` for a PCI address, else the
/// parent's name with characters other than letters, digits and `_` as `_`.
pub fn nodedev_name(parent: &str) -> String {
    let clean = |s: &str| s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if parent.parse::<PciAddress>().is_ok() { format!("pci_{}", clean(parent)) } else { clean(parent) }
}

/// Nova's provider name of the mdev parent `parent` on `node`.
pub fn parent_provider(node: &str, parent: &str) -> String {
    format!("{node}_{}", nodedev_name(parent))
}

/// The providers and device spec entries of `node`'s `targets`, with their devmig traits.
pub fn desired<'a>(registry: &Registry, node: &str, targets: impl IntoIterator<Item = Target<'a>>) -> Desired {
    let mut out = Desired { node: node.to_string(), ..Desired::default() };
    // PCI functions by their PF (a function without one is its own), in order.
    // Functions by PF: address, devmig traits, whether their driver migrates them.
    let mut by_pf: BTreeMap<String, Vec<(String, BTreeSet<String>, bool)>> = BTreeMap::new();
    for t in targets {
        match t.kind {
            DeviceKind::MdevType => {
                let Some((parent, _)) = t.id.split_once('/') else {
                    out.skipped.push((t.id.to_string(), "an mdev type id names its parent (PARENT/TYPE)".into()));
                    continue;
                };
                let entry = out.providers.entry(parent_provider(node, parent)).or_default();
                entry.traits.extend(target_traits(registry, t.attributes));
                entry.devices.push(t.id.to_string());
            }
            DeviceKind::SriovVf | DeviceKind::Pci => by_pf.entry(t.pf.unwrap_or(t.id).to_string()).or_default().push((
                t.id.to_string(),
                target_traits(registry, t.attributes),
                migrated_by_its_driver(t.attributes),
            )),
            DeviceKind::Mdev => {
                out.skipped.push((t.id.to_string(), "a created mdev: Nova's targets are new mdevs of a type".into()))
            }
            DeviceKind::SriovPf => {
                out.skipped.push((t.id.to_string(), "an SR-IOV PF is not a migration target".into()))
            }
        }
    }
    for functions in by_pf.into_values() {
        let union: BTreeSet<String> = functions.iter().flat_map(|(_, t, _)| t.iter().cloned()).collect();
        let coarse = functions.iter().any(|(_, t, _)| *t != union);
        out.device_spec.extend(functions.into_iter().map(|(address, _, live_migratable)| DeviceSpecEntry {
            address,
            traits: union.clone(),
            coarse,
            live_migratable,
        }));
    }
    out
}

/// Whether a function's driver carries its state in a live migration: a VF of a VFIO variant
/// driver (devmig's `vfio_variant` model), or an SR-IOV vGPU (`nvidia.framework` = `sriov`).
fn migrated_by_its_driver(attributes: &Attributes) -> bool {
    let text = |name: &str| match attributes.get(name) {
        Some(devmig_vendors::AttrValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    text("model") == Some("vfio_variant") || text("nvidia.framework") == Some("sriov")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_named_as_nova_names_pgpu_providers() {
        assert_eq!(parent_provider("compute1", "0000:81:00.0"), "compute1_pci_0000_81_00_0");
        assert_eq!(parent_provider("c", "mtty"), "c_mtty");
        assert_eq!(nodedev_name("0000:zz:00.0"), "0000_zz_00_0");
    }

    #[test]
    fn node_names_are_checked() {
        assert!(check_node("compute-1.example").is_ok());
        for bad in ["", "a b", &"x".repeat(151)] {
            assert!(check_node(bad).is_err(), "{bad:?}");
        }
    }
}
