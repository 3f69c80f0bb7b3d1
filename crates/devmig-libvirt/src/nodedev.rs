//! Node device XML as libvirt shows it (`virsh nodedev-dumpxml`), for devices devmig discovered:
//! PCI functions (with their SR-IOV and mdev-type capabilities) and mdevs.
//!
//! libvirt's forms (its "Node devices XML format" and `nodedev.rng`): a PCI function is
//! `pci_<dddd>_<bb>_<ss>_<f>` with `<capability type='pci'>` (class, domain/bus/slot/function in
//! decimal, product and vendor ids, `phys_function`, `virt_functions maxCount=`, `mdev_types`,
//! `iommuGroup`); an mdev is `mdev_<uuid with _>_<parent address with _>` with
//! `<capability type='mdev'>` (type, uuid, iommuGroup). [`node_xml`] wraps devices in the
//! `<node>` document libvirt's test driver loads (`test:///abs/path.xml`).
use std::fmt::Write as _;

use crate::hostdev::pci_parts;

/// One mdev type of a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdevTypeCap {
    /// Type id (`i915-GVTg_V5_4`).
    pub id: String,
    /// Its `name` file, when the driver gives one.
    pub name: Option<String>,
    /// Its `device_api`.
    pub device_api: String,
    /// Its `available_instances`.
    pub available: u32,
}

/// A PCI function's capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciCap {
    /// `dddd:bb:ss.f`.
    pub address: String,
    /// Class code (`0x030000`).
    pub class: Option<String>,
    /// Vendor id.
    pub vendor: u16,
    /// Device (product) id.
    pub product: u16,
    /// A VF's PF address.
    pub phys_function: Option<String>,
    /// A PF's `sriov_totalvfs` and its VFs' addresses.
    pub virt_functions: Option<(u32, Vec<String>)>,
    /// Its mdev types, when it is an mdev parent.
    pub mdev_types: Vec<MdevTypeCap>,
    /// Its IOMMU group and the group's functions.
    pub iommu_group: Option<(u32, Vec<String>)>,
}

/// What a node device is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// A PCI function.
    Pci(PciCap),
    /// A mediated device.
    Mdev {
        /// Its type id.
        mdev_type: String,
        /// Its UUID.
        uuid: String,
        /// Its IOMMU group.
        iommu_group: Option<u32>,
    },
}

/// One node device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDevice {
    /// libvirt's name for it ([`pci_name`], [`mdev_name`]).
    pub name: String,
    /// Its sysfs path (`/sys/devices/...`).
    pub path: String,
    /// Its parent's name (`computer` for a function on the root bus).
    pub parent: String,
    /// The bound driver.
    pub driver: Option<String>,
    /// What it is.
    pub capability: Capability,
}

/// `pci_0000_00_02_0` for `0000:00:02.0`.
pub fn pci_name(address: &str) -> String {
    format!("pci_{}", address.replace([':', '.'], "_"))
}

/// `mdev_<uuid with _>_<parent address with _>`.
pub fn mdev_name(uuid: &str, parent_address: &str) -> String {
    format!("mdev_{}_{}", uuid.replace('-', "_"), parent_address.replace([':', '.'], "_"))
}

/// Text for XML (element content and attribute values).
fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

fn address_element(out: &mut String, indent: &str, address: &str) {
    if let Some((d, b, s, f)) = pci_parts(address) {
        let _ =
            writeln!(out, "{indent}<address domain='0x{d:04x}' bus='0x{b:02x}' slot='0x{s:02x}' function='0x{f:x}'/>");
    }
}

/// The device's XML, as `virsh nodedev-dumpxml` prints it.
pub fn nodedev_xml(dev: &NodeDevice) -> String {
    let mut out = String::from("<device>\n");
    let _ = writeln!(out, "  <name>{}</name>", esc(&dev.name));
    let _ = writeln!(out, "  <path>{}</path>", esc(&dev.path));
    let _ = writeln!(out, "  <parent>{}</parent>", esc(&dev.parent));
    if let Some(d) = &dev.driver {
        let _ = writeln!(out, "  <driver>\n    <name>{}</name>\n  </driver>", esc(d));
    }
    match &dev.capability {
        Capability::Pci(p) => {
            out.push_str("  <capability type='pci'>\n");
            if let Some(c) = &p.class {
                let _ = writeln!(out, "    <class>{}</class>", esc(c));
            }
            let (d, b, s, f) = pci_parts(&p.address).unwrap_or_default();
            let _ = writeln!(
                out,
                "    <domain>{d}</domain>\n    <bus>{b}</bus>\n    <slot>{s}</slot>\n    <function>{f}</function>"
            );
            let _ = writeln!(out, "    <product id='0x{:04x}'/>\n    <vendor id='0x{:04x}'/>", p.product, p.vendor);
            if let Some(pf) = &p.phys_function {
                out.push_str("    <capability type='phys_function'>\n");
                address_element(&mut out, "      ", pf);
                out.push_str("    </capability>\n");
            }
            if let Some((max, vfs)) = &p.virt_functions {
                let _ = writeln!(out, "    <capability type='virt_functions' maxCount='{max}'>");
                for vf in vfs {
                    address_element(&mut out, "      ", vf);
                }
                out.push_str("    </capability>\n");
            }
            if !p.mdev_types.is_empty() {
                out.push_str("    <capability type='mdev_types'>\n");
                for t in &p.mdev_types {
                    let _ = writeln!(out, "      <type id='{}'>", esc(&t.id));
                    if let Some(n) = &t.name {
                        let _ = writeln!(out, "        <name>{}</name>", esc(n));
                    }
                    let _ = writeln!(out, "        <deviceAPI>{}</deviceAPI>", esc(&t.device_api));
                    let _ = writeln!(out, "        <availableInstances>{}</availableInstances>", t.available);
                    out.push_str("      </type>\n");
                }
                out.push_str("    </capability>\n");
            }
            if let Some((group, members)) = &p.iommu_group {
                let _ = writeln!(out, "    <iommuGroup number='{group}'>");
                for m in members {
                    address_element(&mut out, "      ", m);
                }
                out.push_str("    </iommuGroup>\n");
            }
            out.push_str("  </capability>\n");
        }
        Capability::Mdev { mdev_type, uuid, iommu_group } => {
            out.push_str("  <capability type='mdev'>\n");
            let _ = writeln!(out, "    <type id='{}'/>", esc(mdev_type));
            let _ = writeln!(out, "    <uuid>{}</uuid>", esc(uuid));
            // libvirt always prints an mdev's group, 0 when it knows none.
            let _ = writeln!(out, "    <iommuGroup number='{}'/>", iommu_group.unwrap_or(0));
            out.push_str("  </capability>\n");
        }
    }
    out.push_str("</device>\n");
    out
}

/// Devices as the `<node>` document libvirt's test driver loads.
pub fn node_xml(devices: &[NodeDevice]) -> String {
    let mut out = String::from("<node>\n");
    for d in devices {
        for line in nodedev_xml(d).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("</node>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_libvirt() {
        assert_eq!(pci_name("0000:3d:00.1"), "pci_0000_3d_00_1");
        assert_eq!(
            mdev_name("4b20d080-1b54-4048-85b3-a6a62d165c01", "0000:00:02.0"),
            "mdev_4b20d080_1b54_4048_85b3_a6a62d165c01_0000_00_02_0"
        );
    }

    #[test]
    fn text_is_escaped() {
        let dev = NodeDevice {
            name: "pci_0000_00_02_0".into(),
            path: "/sys/devices/a&b".into(),
            parent: "computer".into(),
            driver: None,
            capability: Capability::Mdev { mdev_type: "t'1".into(), uuid: "u".into(), iommu_group: None },
        };
        let xml = nodedev_xml(&dev);
        assert!(xml.contains("<path>/sys/devices/a&amp;b</path>") && xml.contains("<type id='t&apos;1'/>"), "{xml}");
    }
}
