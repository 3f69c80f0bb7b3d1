//! devmig for libvirt: which assigned devices a domain's XML names (`<hostdev>` of type `mdev`
//! and `pci`), the same XML with each pointed at the target devmig placed for it, nothing
//! else changed ([`rewrite`]), and the node device XML libvirt shows for devmig's devices
//! ([`nodedev`]).
//!
//! libvirt's forms (domain XML, "Host device assignment"): an mdev is
//! `<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='...'/></source>`,
//! a PCI function `<hostdev mode='subsystem' type='pci'><source><address domain='0x0000'
//! bus='0x3d' slot='0x00' function='0x1'/></source>`. Only the `<address>` inside `<source>`
//! names the host's device; the guest-side `<address>` after it is the guest's and stays, as
//! Nova's `_update_mdev_xml` and `_update_pci_dev_xml` leave it.
#![deny(missing_docs)]

mod error;
mod hostdev;
pub mod nodedev;
mod rewrite;

pub use error::LibvirtError;
pub use hostdev::{Domain, Hostdev, domain, hostdevs};
pub use nodedev::{NodeDevice, node_xml, nodedev_xml};
pub use rewrite::rewrite;
