//! The host spec (TOML): what devices an emulated host has, validated with
//! errors that name the bad key, and laid out with core's `TreeBuilder`.
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use devmig_core::tree::{SriovCap, TreeBuilder, TreeSink};
use devmig_core::{DeviceId, PciAddress};
use devmig_vendors::{Catalog, DeviceFacts, PciId, Registry};
use serde::Deserialize;

use crate::SimError;
use crate::host::{Fault, FaultOp, Host, Mdev, MdevType, Migratable, Parent, Support};
use crate::nodes::{FileKind, MemSink, Nodes};
use crate::pci::{Placement, address_of, routing_id};
use crate::shape::DriverShape;

/// Whether a node gets a `migration_version` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MigrationSpec {
    /// Present when a vendor model recognises the device (the default).
    #[default]
    Auto,
    /// No attribute (what every kernel today shows).
    Absent,
    /// The attribute exists but the driver answers ENODEV.
    Unsupported,
}

/// A PCI function (a VF when nested under `sriov.vfs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PciDeviceSpec {
    /// `DDDD:BB:DD.F`.
    pub address: String,
    /// `vendor:device`.
    pub id: String,
    /// `subsystem_vendor:subsystem_device` (default: vendor:0000).
    pub subsystem: Option<String>,
    /// Class code, `0x` and six hex digits.
    pub class: String,
    /// Revision.
    #[serde(default)]
    pub revision: u8,
    /// Bound driver.
    pub driver: Option<String>,
    /// The driver's module (default: the driver's name).
    pub module: Option<String>,
    /// `/sys/module/<module>/version`.
    pub driver_version: Option<String>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// `migration_version` presence.
    #[serde(default)]
    pub migration: MigrationSpec,
    /// Vendor configuration attributes (`remote_storage_url`, `crypto_algorithms`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// SR-IOV: this is a PF with these VFs.
    pub sriov: Option<SriovSpec>,
    /// This function is an mdev parent.
    pub mdev: Option<MdevParentSpec>,
    /// The driver bound now, when it is not `driver` (whose id table matches the function):
    /// another loaded driver such as `vfio-pci`, or `""` for none.
    pub bound_driver: Option<String>,
    /// `driver_override` (default: none, "(null)").
    pub driver_override: Option<String>,
    /// NUMA node (default -1: the firmware names none).
    pub numa_node: Option<i32>,
    /// PCI Express link (default generation 3, x4).
    pub link: Option<LinkSpec>,
    /// An SR-IOV vGPU PF (NVIDIA vGPU 17 and later): the vGPU types its VFs can take.
    pub vgpu: Option<VgpuSpec>,
    /// A VF of such a PF: its vGPU type number (default 0: none).
    pub vgpu_type: Option<u32>,
}

/// The vGPU types of an SR-IOV vGPU PF.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgpuSpec {
    /// Catalogued type ids (`nvidia-1148`): their numbers, names and instance counts.
    pub types: Vec<String>,
}

/// A PCI Express link, trained at its maximum.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Generation 1-6 (2.5 to 64 GT/s).
    pub generation: u8,
    /// Lanes: 1, 2, 4, 8, 12, 16 or 32.
    pub width: u8,
}

/// A PCI driver loaded without a device of its own id table (`vfio-pci`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverSpec {
    /// Driver name.
    pub name: String,
    /// Its module (default: the name with `-` as `_`).
    pub module: Option<String>,
    /// The module's version.
    pub version: Option<String>,
}

/// The host's CPUs and NUMA nodes (`/sys/devices/system`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemSpec {
    /// Logical CPUs (default 2).
    #[serde(default = "two")]
    pub cpus: u32,
    /// NUMA nodes; CPUs are split among them in order (default 1).
    #[serde(default = "one")]
    pub numa_nodes: u32,
}

impl Default for SystemSpec {
    fn default() -> Self {
        SystemSpec { cpus: 2, numa_nodes: 1 }
    }
}

fn two() -> u32 {
    2
}

fn default_drivers() -> Vec<DriverSpec> {
    vec![DriverSpec { name: "vfio-pci".into(), module: Some("vfio_pci".into()), version: None }]
}

/// A PF's SR-IOV state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SriovSpec {
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// The VFs: the first `enabled` exist now; each is what VF `i` is when enabled (later VFs
    /// copy the last one's ids and driver, without its parameters).
    #[serde(default)]
    pub vfs: Vec<PciDeviceSpec>,
    /// `sriov_numvfs` (default: as many as `vfs` lists).
    pub enabled: Option<u32>,
    /// First VF offset in routing ids (default: from the first VF's address, else 1).
    pub offset: Option<u16>,
    /// VF stride (default: from the first two VFs' addresses, else 1).
    pub stride: Option<u16>,
    /// The VFs' device id, four hex digits (default: the first VF's, else the PF's).
    pub vf_device: Option<String>,
    /// `sriov_drivers_autoprobe` (default true).
    #[serde(default = "yes")]
    pub drivers_autoprobe: bool,
}

fn yes() -> bool {
    true
}

/// An mdev parent's types.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdevParentSpec {
    /// Capacity in type units (default: from the catalog for i915 and mtty, else 8 instances).
    pub capacity: Option<u32>,
    /// Supported types.
    pub types: Vec<TypeSpec>,
}

/// One supported mdev type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeSpec {
    /// Type id.
    pub id: String,
    /// Configuration attributes of the type (copied into mdevs created from it).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// `migration_version` presence on the type node and its mdevs.
    #[serde(default)]
    pub migration: MigrationSpec,
}

/// A virtual mdev parent such as mtty's.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualParentSpec {
    /// Device name (`mtty`).
    pub name: String,
    /// Its class under `/sys/devices/virtual` (default: the name).
    pub class: Option<String>,
    /// Its module's version.
    pub driver_version: Option<String>,
    /// Its types.
    pub mdev: MdevParentSpec,
}

/// An existing mdev.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdevSpec {
    /// UUID.
    pub uuid: String,
    /// Parent name.
    pub parent: String,
    /// Type id.
    #[serde(rename = "type")]
    pub type_id: String,
    /// Instances aggregated (default 1).
    #[serde(default = "one")]
    pub aggregator: u32,
    /// Configuration attributes (default: the type's).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Its IOMMU group (default: the lowest free number, as the kernel assigns).
    pub iommu_group: Option<u32>,
    /// Its VFIO device index, `vfio<n>` (default: the lowest free).
    pub vfio: Option<u32>,
}

fn one() -> u32 {
    1
}

/// A fault on one attribute.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The device (PCI address, mdev UUID or PARENT/TYPE-ID).
    pub device: String,
    /// The attribute's file name.
    pub attribute: String,
    /// `read`, `write` or `any` (default).
    pub op: Option<String>,
    /// Answer only after this many milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer with this errno (`EIO`, `EINVAL`, `ENODEV`, `EBUSY`, `EAGAIN`, `ENOSPC`, `EPERM`, `EACCES`).
    pub error: Option<String>,
    /// Never answer, until unmount.
    #[serde(default)]
    pub hang: bool,
}

/// One emulated host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Host name.
    pub hostname: String,
    /// PCI functions.
    #[serde(default)]
    pub pci: Vec<PciDeviceSpec>,
    /// Virtual mdev parents.
    #[serde(default)]
    pub virtual_parent: Vec<VirtualParentSpec>,
    /// Existing mdevs.
    #[serde(default)]
    pub mdev: Vec<MdevSpec>,
    /// Injected faults.
    #[serde(default)]
    pub fault: Vec<FaultSpec>,
    /// PCI drivers loaded besides those of the functions (default: `vfio-pci`).
    #[serde(default = "default_drivers")]
    pub drivers: Vec<DriverSpec>,
    /// CPUs and NUMA nodes.
    #[serde(default)]
    pub system: SystemSpec,
}

/// Directories of the mdevctl package (empty: no persistent definitions, no callouts).
const MDEVCTL_DIRS: [&str; 3] =
    ["etc/mdevctl.d", "usr/lib/mdevctl/scripts.d/callouts", "usr/lib/mdevctl/scripts.d/notifiers"];

/// The embedded example specs: the demo's two hosts.
pub const EXAMPLE_HOST_A: &str = include_str!("../specs/host-a.toml");
/// Host B of the demo.
pub const EXAMPLE_HOST_B: &str = include_str!("../specs/host-b.toml");
/// An NVIDIA vGPU host (M60 and P40 on the vGPU Manager, no kernel `migration_version`).
pub const EXAMPLE_HOST_NVIDIA: &str = include_str!("../specs/host-nvidia.toml");
/// An SR-IOV vGPU host: an L40S whose VFs take vGPU types through `nvidia/current_vgpu_type`.
pub const EXAMPLE_HOST_L40S: &str = include_str!("../specs/host-l40s.toml");
/// A NIC and accelerator host: VFs on the kernel's VFIO migration variant drivers (mlx5, QAT, virtio).
pub const EXAMPLE_HOST_NIC: &str = include_str!("../specs/host-nic.toml");

fn errno_by_name(name: &str) -> Option<i32> {
    Some(match name {
        "EIO" => libc::EIO,
        "EINVAL" => libc::EINVAL,
        "ENODEV" => libc::ENODEV,
        "EBUSY" => libc::EBUSY,
        "EAGAIN" => libc::EAGAIN,
        "ENOSPC" => libc::ENOSPC,
        "EPERM" => libc::EPERM,
        "EACCES" => libc::EACCES,
        _ => return None,
    })
}

/// Greatest common divisor.
fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl HostSpec {
    /// Parses and validates a spec; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str, catalog: &Catalog) -> Result<Self, SimError> {
        let spec: HostSpec = toml::from_str(text)
            .map_err(|e| SimError::Spec { origin: origin.into(), why: e.to_string().trim().to_string() })?;
        spec.validate(catalog, origin)?;
        Ok(spec)
    }

    /// Every PCI function with its spec key, VFs included: (key, spec, is_vf).
    fn functions(&self) -> Vec<(String, &PciDeviceSpec, bool)> {
        let mut out = Vec::new();
        for (i, d) in self.pci.iter().enumerate() {
            out.push((format!("pci[{i}]"), d, false));
            for (j, vf) in d.sriov.iter().flat_map(|s| s.vfs.iter()).enumerate() {
                out.push((format!("pci[{i}].sriov.vfs[{j}]"), vf, true));
            }
        }
        out
    }

    /// Capacity and per-type cost of a parent's types (cost by type id).
    fn costs(
        driver: Option<&str>,
        name: &str,
        m: &MdevParentSpec,
        catalog: &Catalog,
        bad: &dyn Fn(String) -> SimError,
    ) -> Result<(u32, BTreeMap<String, u32>), SimError> {
        let mut costs = BTreeMap::new();
        if driver == Some("i915") {
            let mut units = 1u32;
            for t in &m.types {
                let n = catalog
                    .gvt_type(&t.id)
                    .ok_or_else(|| bad(format!("type {:?} is not a catalogued i915 type", t.id)))?
                    .instances;
                units = units / gcd(units, n) * n;
            }
            for t in &m.types {
                costs.insert(t.id.clone(), units / catalog.gvt_type(&t.id).map_or(1, |g| g.instances));
            }
            return Ok((m.capacity.unwrap_or(units), costs));
        }
        if driver == Some("nvidia") {
            // A GPU's frame buffer is shared out: a type costs its vGPUs' frame buffer, and the
            // GPU holds the most any one type fills (max_instances x framebuffer).
            let mut units = 0u32;
            for t in &m.types {
                let row = catalog
                    .nvidia_type(&t.id)
                    .ok_or_else(|| bad(format!("type {:?} is not a catalogued nvidia type", t.id)))?;
                costs.insert(t.id.clone(), row.framebuffer_mib);
                units = units.max(row.framebuffer_mib.saturating_mul(row.max_instances));
            }
            return Ok((m.capacity.unwrap_or(units), costs));
        }
        if driver == Some("mtty") || name == "mtty" {
            for t in &m.types {
                costs.insert(
                    t.id.clone(),
                    catalog
                        .mtty_ports(&t.id)
                        .ok_or_else(|| bad(format!("type {:?} is not a catalogued mtty type", t.id)))?,
                );
            }
            return Ok((m.capacity.unwrap_or(24), costs));
        }
        for t in &m.types {
            costs.insert(t.id.clone(), 1);
        }
        Ok((m.capacity.unwrap_or(8), costs))
    }

    fn validate(&self, catalog: &Catalog, origin: &str) -> Result<(), SimError> {
        let bad = |why: String| SimError::Spec { origin: origin.to_string(), why };
        if self.hostname.is_empty() || !self.hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(format!("hostname {:?} must be [A-Za-z0-9._-]+", self.hostname)));
        }
        if !(1..=4096).contains(&self.system.cpus) || !(1..=self.system.cpus).contains(&self.system.numa_nodes) {
            return Err(bad(format!(
                "system: cpus {} must be 1-4096 and numa_nodes {} 1 to cpus",
                self.system.cpus, self.system.numa_nodes
            )));
        }
        let mut loaded: BTreeSet<&str> = self.functions().iter().filter_map(|(_, d, _)| d.driver.as_deref()).collect();
        for (i, d) in self.drivers.iter().enumerate() {
            if !is_attr_name(&d.name) || d.module.as_deref().is_some_and(|m| !is_attr_name(m)) {
                return Err(bad(format!("drivers[{i}]: {:?} is not a valid driver and module name", d.name)));
            }
            loaded.insert(&d.name);
        }
        let mut pfs = Vec::new();
        let mut addresses = BTreeSet::new();
        let mut modules: HashMap<String, (String, Option<String>)> = HashMap::new();
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // Parents whose driver hosts one type at a time (NVIDIA's time-sliced vGPUs).
        let mut single_type = BTreeSet::new();
        for (key, d, is_vf) in self.functions() {
            let addr = d
                .address
                .parse::<PciAddress>()
                .map_err(|_| bad(format!("{key}.address {:?} is not DDDD:BB:DD.F", d.address)))?;
            if !addresses.insert(addr.to_string()) {
                return Err(bad(format!("{key}.address {} is listed twice", d.address)));
            }
            d.id.parse::<PciId>().map_err(|e| bad(format!("{key}.id: {e}")))?;
            if let Some(s) = &d.subsystem {
                s.parse::<PciId>().map_err(|e| bad(format!("{key}.subsystem: {e}")))?;
            }
            let class_ok =
                d.class.strip_prefix("0x").is_some_and(|h| h.len() == 6 && u32::from_str_radix(h, 16).is_ok());
            if !class_ok {
                return Err(bad(format!("{key}.class {:?} is not 0x followed by six hex digits", d.class)));
            }
            for name in d.params.keys() {
                if !name.split('/').all(is_attr_name) {
                    return Err(bad(format!(
                        "{key}.params: {name:?} is not an attribute name or a path of them (qat/cfg_services)"
                    )));
                }
            }
            if let Some(drv) = &d.driver {
                if !is_attr_name(drv) {
                    return Err(bad(format!("{key}.driver {drv:?} is not a valid driver name")));
                }
                let module = d.module.clone().unwrap_or_else(|| drv.clone());
                if !is_attr_name(&module) {
                    return Err(bad(format!("{key}.module {module:?} is not a valid module name")));
                }
                let entry = modules.entry(module.clone()).or_insert_with(|| (key.clone(), d.driver_version.clone()));
                if entry.1 != d.driver_version {
                    return Err(bad(format!(
                        "{key}.driver_version {:?} differs from {}'s for module {module}",
                        d.driver_version, entry.0
                    )));
                }
            } else if d.module.is_some() || d.driver_version.is_some() {
                return Err(bad(format!("{key}: module and driver_version need a driver")));
            }
            if is_vf && (d.sriov.is_some() || d.mdev.is_some() || d.vgpu.is_some()) {
                return Err(bad(format!("{key}: a VF cannot have sriov, mdev or vgpu")));
            }
            if let Some(v) = &d.vgpu {
                Self::validate_vgpu(&key, d, v, catalog, &bad)?;
            } else if let Some(vf) = d.sriov.iter().flat_map(|s| &s.vfs).find(|vf| vf.vgpu_type.is_some()) {
                return Err(bad(format!("{key}: VF {} has a vgpu_type but its PF has no vgpu", vf.address)));
            }
            if !is_vf && d.vgpu_type.is_some() {
                return Err(bad(format!("{key}: vgpu_type is a VF's (of a PF with vgpu)")));
            }
            if let Some(s) = &d.sriov {
                let enabled = s.enabled.unwrap_or(s.vfs.len() as u32);
                if enabled > s.total_vfs {
                    return Err(bad(format!("{key}.sriov: {enabled} enabled VFs exceed total_vfs {}", s.total_vfs)));
                }
                pfs.push((key.clone(), d, s));
            }
            self.validate_binding(&key, d, &loaded, &bad)?;
            if let Some(m) = &d.mdev {
                Self::validate_types(&format!("{key}.mdev"), m, &bad)?;
                Self::costs(d.driver.as_deref(), &addr.to_string(), m, catalog, &|why| {
                    bad(format!("{key}.mdev: {why}"))
                })?;
                parents.insert(addr.to_string(), m.types.iter().map(|t| t.id.clone()).collect());
                if DriverShape::of(d.driver.as_deref().unwrap_or("")).single_type {
                    single_type.insert(addr.to_string());
                }
            }
        }
        // After every address is known good: VFs sit where offset and stride put them.
        for (key, d, s) in pfs {
            sriov_cap(d, s).map_err(|why| bad(format!("{key}.sriov: {why}")))?;
        }
        for (i, v) in self.virtual_parent.iter().enumerate() {
            let key = format!("virtual_parent[{i}]");
            if !is_attr_name(&v.name) || v.name.parse::<PciAddress>().is_ok() || parents.contains_key(&v.name) {
                return Err(bad(format!("{key}.name {:?} must be a unique device name", v.name)));
            }
            if let Some(c) = &v.class {
                if !is_attr_name(c) {
                    return Err(bad(format!("{key}.class {c:?} is not a valid class name")));
                }
            }
            Self::validate_types(&format!("{key}.mdev"), &v.mdev, &bad)?;
            Self::costs(None, &v.name, &v.mdev, catalog, &|why| bad(format!("{key}.mdev: {why}")))?;
            parents.insert(v.name.clone(), v.mdev.types.iter().map(|t| t.id.clone()).collect());
        }
        let mut uuids = BTreeSet::new();
        let mut groups: BTreeSet<u32> = self.functions().iter().filter_map(|(_, d, _)| d.iommu_group).collect();
        let mut vfios = BTreeSet::new();
        for (i, m) in self.mdev.iter().enumerate() {
            let key = format!("mdev[{i}]");
            match m.uuid.parse::<DeviceId>() {
                Ok(DeviceId::Mdev(u)) if uuids.insert(u.clone()) => {}
                Ok(DeviceId::Mdev(_)) => return Err(bad(format!("{key}.uuid {} is listed twice", m.uuid))),
                _ => return Err(bad(format!("{key}.uuid {:?} is not a UUID", m.uuid))),
            }
            let types = parents
                .get(&m.parent)
                .ok_or_else(|| bad(format!("{key}.parent {:?} is not an mdev parent of this host", m.parent)))?;
            if !types.contains(&m.type_id) {
                return Err(bad(format!("{key}.type {:?} is not a type of {}", m.type_id, m.parent)));
            }
            if single_type.contains(&m.parent) {
                let other = self.mdev[..i].iter().find(|o| o.parent == m.parent && o.type_id != m.type_id);
                if let Some(o) = other {
                    return Err(bad(format!(
                        "{key}.type {:?}: {} holds one vGPU type at a time and already has a {}",
                        m.type_id, m.parent, o.type_id
                    )));
                }
            }
            if m.aggregator == 0 {
                return Err(bad(format!("{key}.aggregator must be at least 1")));
            }
            if let Some(g) = m.iommu_group {
                if !groups.insert(g) {
                    return Err(bad(format!("{key}.iommu_group {g} is another device's group")));
                }
            }
            if let Some(v) = m.vfio {
                if !vfios.insert(v) {
                    return Err(bad(format!("{key}.vfio {v} is another mdev's")));
                }
            }
        }
        for (i, f) in self.fault.iter().enumerate() {
            let key = format!("fault[{i}]");
            f.device.parse::<DeviceId>().map_err(|e| bad(format!("{key}.device: {e}")))?;
            if !is_attr_name(&f.attribute) {
                return Err(bad(format!("{key}.attribute {:?} is not a valid attribute name", f.attribute)));
            }
            if let Some(op) = &f.op {
                if !["read", "write", "any"].contains(&op.as_str()) {
                    return Err(bad(format!("{key}.op {op:?} must be read, write or any")));
                }
            }
            if let Some(e) = &f.error {
                errno_by_name(e).ok_or_else(|| {
                    bad(format!("{key}.error {e:?} is not one of EIO EINVAL ENODEV EBUSY EAGAIN ENOSPC EPERM EACCES"))
                })?;
            }
        }
        Ok(())
    }

    /// An SR-IOV vGPU PF's types (catalogued, of its board) and its VFs' type numbers.
    fn validate_vgpu(
        key: &str,
        d: &PciDeviceSpec,
        v: &VgpuSpec,
        catalog: &Catalog,
        bad: &dyn Fn(String) -> SimError,
    ) -> Result<(), SimError> {
        let board: Option<PciId> = d.id.parse().ok();
        // Type numbers of the PF, with their instance counts.
        let mut numbers = BTreeMap::new();
        for (i, ty) in v.types.iter().enumerate() {
            let row = catalog.nvidia_type(ty).ok_or_else(|| {
                bad(format!("{key}.vgpu.types[{i}] {ty:?} is not a catalogued NVIDIA type ([[nvidia.types]])"))
            })?;
            let n = devmig_core::vf_vgpu::type_number(ty)
                .ok_or_else(|| bad(format!("{key}.vgpu.types[{i}] {ty:?} is not nvidia-<number>")))?;
            if Some(row.board) != board {
                return Err(bad(format!("{key}.vgpu.types[{i}] {ty} is a type of {}, not of {}", row.board, d.id)));
            }
            numbers.insert(n, row.max_instances);
        }
        let mut in_use: Vec<u32> = Vec::new();
        for vf in d.sriov.iter().flat_map(|s| &s.vfs) {
            let Some(n) = vf.vgpu_type.filter(|n| *n != 0) else { continue };
            let Some(&max) = numbers.get(&n) else {
                return Err(bad(format!("{key}: VF {} has vgpu_type {n}, not one of vgpu.types", vf.address)));
            };
            // A time-sliced GPU holds one type at a time, up to the type's instance count.
            if let Some(first) = in_use.first().filter(|f| **f != n) {
                return Err(bad(format!(
                    "{key}: VF {} has vgpu_type {n}, another VF {first}: one type per GPU",
                    vf.address
                )));
            }
            in_use.push(n);
            if in_use.len() > max as usize {
                return Err(bad(format!("{key}: more VFs of type {n} than its {max} instances")));
            }
        }
        Ok(())
    }

    /// A function's binding, NUMA node and link.
    fn validate_binding(
        &self,
        key: &str,
        d: &PciDeviceSpec,
        loaded: &BTreeSet<&str>,
        bad: &dyn Fn(String) -> SimError,
    ) -> Result<(), SimError> {
        if let Some(b) = d.bound_driver.as_deref().filter(|b| !b.is_empty()) {
            if !loaded.contains(b) {
                return Err(bad(format!("{key}.bound_driver {b:?} is not a loaded driver (add it to drivers)")));
            }
        }
        if let Some(o) = &d.driver_override {
            if !is_attr_name(o) {
                return Err(bad(format!("{key}.driver_override {o:?} is not a valid driver name")));
            }
        }
        let nodes = i32::try_from(self.system.numa_nodes).unwrap_or(i32::MAX);
        if let Some(n) = d.numa_node.filter(|n| !(-1..nodes).contains(n)) {
            return Err(bad(format!("{key}.numa_node {n} must be -1 or a node below {nodes}")));
        }
        if let Some(l) = d.link {
            if !(1..=6).contains(&l.generation) || ![1, 2, 4, 8, 12, 16, 32].contains(&l.width) {
                return Err(bad(format!(
                    "{key}.link: generation {} must be 1-6 and width {} one of 1 2 4 8 12 16 32",
                    l.generation, l.width
                )));
            }
        }
        Ok(())
    }

    fn validate_types(key: &str, m: &MdevParentSpec, bad: &dyn Fn(String) -> SimError) -> Result<(), SimError> {
        let mut seen = BTreeSet::new();
        for (j, t) in m.types.iter().enumerate() {
            if !is_attr_name(&t.id) || !seen.insert(&t.id) {
                return Err(bad(format!("{key}.types[{j}].id {:?} must be a unique type id", t.id)));
            }
        }
        Ok(())
    }

    /// Builds the emulated host. Faults naming an attribute that does not exist are an error.
    pub fn build(&self, registry: Registry, origin: &str) -> Result<Host, SimError> {
        self.validate(registry.catalog(), origin)?;
        let mut host = Host {
            hostname: self.hostname.clone(),
            nodes: Nodes::default(),
            registry,
            migratable: BTreeMap::new(),
            parents: BTreeMap::new(),
            types: BTreeMap::new(),
            mdevs: BTreeMap::new(),
            faults: HashMap::new(),
            invalidations: Vec::new(),
            version_writes: HashMap::new(),
            pci: BTreeMap::new(),
            pci_drivers: BTreeMap::new(),
            system: self.system,
        };
        self.lay_out_pci(&mut host).map_err(SimError::Build)?;
        lay_out_system(&mut host.nodes, &self.system).map_err(SimError::Build)?;
        self.lay_out_static(&mut host.nodes, host.registry.catalog()).map_err(SimError::Build)?;
        self.lay_out_mdev_bus(&mut host).map_err(SimError::Build)?;
        // What an installed mdevctl package adds outside /sys: mdevctl checks for these
        // directories and then runs unchanged with MDEVCTL_ENV_ROOT at the mount.
        for dir in MDEVCTL_DIRS {
            host.nodes.mkdir_all(dir).map_err(SimError::Build)?;
        }
        self.record_parents(&mut host).map_err(SimError::Build)?;
        for m in &self.mdev {
            let key = format!("{}/{}", m.parent, m.type_id);
            let type_params = host.types.get(&key).map(|t| t.params.clone()).unwrap_or_default();
            let params = if m.params.is_empty() { type_params } else { m.params.clone() };
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let support = host.types.get(&key).and_then(|t| t.support);
            let uuid = m.uuid.to_ascii_lowercase();
            lay_out_mdev(
                &mut host,
                &uuid,
                (&m.parent, &m.type_id),
                m.aggregator,
                &params,
                support,
                (m.iommu_group, m.vfio),
            )
            .map_err(SimError::Build)?;
        }
        // The mdevs listed must fit their parents, as the kernel would have refused the rest.
        let mut used: BTreeMap<&str, u64> = BTreeMap::new();
        for m in host.mdevs.values() {
            if let Some(t) = host.types.get(&m.type_key) {
                *used.entry(t.parent.as_str()).or_default() += u64::from(t.cost) * u64::from(m.aggregator);
            }
        }
        for (parent, units) in used {
            let capacity = host.parents.get(parent).map_or(0, |p| u64::from(p.capacity));
            if units > capacity {
                return Err(SimError::Spec {
                    origin: origin.into(),
                    why: format!(
                        "the mdevs of parent {parent} take {units} units of its capacity of {capacity}: \
                         the kernel would have refused the ones past it"
                    ),
                });
            }
        }
        for (i, f) in self.fault.iter().enumerate() {
            let id: DeviceId = f
                .device
                .parse()
                .map_err(|e| SimError::Spec { origin: origin.into(), why: format!("fault[{i}].device: {e}") })?;
            let rel = format!("{}/{}", id.node_path().display(), f.attribute);
            let ino = host
                .nodes
                .lookup(&rel, true)
                .filter(|i| matches!(host.nodes.get(*i), Some(crate::nodes::Node::File(_))));
            let ino = ino.ok_or_else(|| SimError::Spec {
                origin: origin.into(),
                why: format!("fault[{i}]: /{rel} does not exist on this host"),
            })?;
            let op = match f.op.as_deref() {
                Some("read") => FaultOp::Read,
                Some("write") => FaultOp::Write,
                _ => FaultOp::Any,
            };
            let fault = Fault {
                op,
                delay: Duration::from_millis(f.delay_ms),
                errno: f.error.as_deref().and_then(errno_by_name),
                hang: f.hang,
            };
            host.faults.insert(ino, fault);
        }
        Ok(host)
    }

    /// The PCI drivers, then every function and the enabled VFs, with their state.
    fn lay_out_pci(&self, host: &mut Host) -> std::io::Result<()> {
        let mut drivers: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
        for d in self.pci.iter().chain(self.pci.iter().flat_map(|p| p.sriov.iter().flat_map(|s| s.vfs.iter()))) {
            if let Some(drv) = &d.driver {
                let module = d.module.clone().unwrap_or_else(|| drv.clone());
                drivers.entry(drv.clone()).or_insert((module, d.driver_version.clone()));
            }
        }
        for d in &self.drivers {
            let module = d.module.clone().unwrap_or_else(|| d.name.replace('-', "_"));
            drivers.entry(d.name.clone()).or_insert((module, d.version.clone()));
        }
        for (name, (module, version)) in &drivers {
            host.load_pci_driver(name, module, version.as_deref())?;
        }
        for d in &self.pci {
            let cap = d.sriov.as_ref().map(|s| sriov_cap(d, s)).transpose().map_err(std::io::Error::other)?;
            host.lay_out_function(d, Placement { vf_of: None, iommu_group: None, sriov: cap })?;
            if let Some(s) = &d.sriov {
                let enabled = s.enabled.unwrap_or(s.vfs.len() as u32);
                let groups: Vec<Option<u32>> = s.vfs.iter().map(|v| v.iommu_group).collect();
                let n = u16::try_from(enabled).map_err(std::io::Error::other)?;
                host.enable_vfs(&d.address.to_ascii_lowercase(), n, Some(&groups), false)?;
            }
        }
        Ok(())
    }

    /// Files and links, as the kernel lays them out (dynamic files come after).
    fn lay_out_static(&self, nodes: &mut Nodes, catalog: &Catalog) -> std::io::Result<()> {
        let b = TreeBuilder::with_sink(MemSink(RefCell::new(nodes)));
        for d in &self.pci {
            if let Some(m) = &d.mdev {
                b.mdev_parent_pci(&d.address)?;
                lay_out_types(&b, (&d.address, d.driver.as_deref().unwrap_or_default()), m, catalog)?;
            }
        }
        for v in &self.virtual_parent {
            let class = v.class.as_deref().unwrap_or(&v.name);
            b.module(class, v.driver_version.as_deref())?;
            let dir = b.mdev_parent_virtual(class, &v.name)?;
            // A class device: /sys/class/<class>/<name> and its subsystem link.
            b.link(&format!("sys/class/{class}/{}", v.name), &dir)?;
            b.link(&format!("{dir}/subsystem"), &format!("sys/class/{class}"))?;
            lay_out_types(&b, (&v.name, class), &v.mdev, catalog)?;
        }
        Ok(())
    }

    /// The mdev bus, present from the moment the mdev core and a parent's driver are loaded
    /// (before any mdev), and what each mdev driver adds to it and to its module.
    fn lay_out_mdev_bus(&self, host: &mut Host) -> std::io::Result<()> {
        let mut drivers = BTreeSet::new();
        for d in &self.pci {
            if let (Some(_), Some(drv)) = (&d.mdev, &d.driver) {
                drivers.insert((drv.clone(), d.module.clone().unwrap_or_else(|| drv.clone())));
            }
        }
        for v in &self.virtual_parent {
            let class = v.class.clone().unwrap_or_else(|| v.name.clone());
            drivers.insert((class.clone(), class));
        }
        if drivers.is_empty() {
            return Ok(());
        }
        let nodes = &mut host.nodes;
        // VFIO's device class and the IOMMU groups' directory exist before any mdev.
        nodes.mkdir_all("sys/class/vfio-dev")?;
        nodes.mkdir_all("sys/kernel/iommu_groups")?;
        nodes.mkdir_all("sys/bus/mdev/devices")?;
        nodes.put_file("sys/bus/mdev/drivers_autoprobe", FileKind::Autoprobe(true))?;
        nodes.put_file("sys/bus/mdev/drivers_probe", FileKind::Unemulated)?;
        nodes.put_file("sys/bus/mdev/uevent", FileKind::Uevent(None))?;
        // The mdev core (mdev_core.c's DRIVER_VERSION), a module even when built in.
        nodes.put_file("sys/module/mdev/version", FileKind::Static(b"0.1\n".to_vec()))?;
        nodes.put_file("sys/module/mdev/uevent", FileKind::Uevent(None))?;
        for v in &self.virtual_parent {
            let class = v.class.as_deref().unwrap_or(&v.name);
            nodes.put_file(
                &format!("sys/devices/virtual/{class}/{}/uevent", v.name),
                FileKind::Uevent(Some(Vec::new())),
            )?;
        }
        for (driver, module) in drivers {
            let mdev_driver = DriverShape::of(&driver).mdev_driver;
            let dir = format!("sys/bus/mdev/drivers/{mdev_driver}");
            for (name, kind) in
                [("bind", FileKind::Unemulated), ("unbind", FileKind::Unemulated), ("uevent", FileKind::Uevent(None))]
            {
                nodes.put_file(&format!("{dir}/{name}"), kind)?;
            }
            let b = TreeBuilder::with_sink(MemSink(RefCell::new(&mut *nodes)));
            if !b.sink().exists(&format!("{dir}/module")) {
                b.link(&format!("{dir}/module"), &format!("sys/module/{module}"))?;
                b.link(&format!("sys/module/{module}/drivers/mdev:{mdev_driver}"), &dir)?;
            }
            lay_out_module_state(nodes, &module)?;
        }
        Ok(())
    }

    fn record_parents(&self, host: &mut Host) -> std::io::Result<()> {
        let catalog = host.registry.catalog().clone();
        let mut all = Vec::new();
        for d in &self.pci {
            if let Some(m) = &d.mdev {
                let (name, pci_id) = (d.address.to_ascii_lowercase(), d.id.clone());
                all.push(ParentRow {
                    name,
                    pci_id,
                    driver: d.driver.clone(),
                    version: d.driver_version.clone(),
                    mdev: m,
                });
            }
        }
        for v in &self.virtual_parent {
            let class = v.class.clone().unwrap_or_else(|| v.name.clone());
            let (name, version) = (v.name.clone(), v.driver_version.clone());
            all.push(ParentRow { name, pci_id: String::new(), driver: Some(class), version, mdev: &v.mdev });
        }
        for ParentRow { name, pci_id, driver, version, mdev: m } in all {
            let (capacity, costs) =
                Self::costs(driver.as_deref(), &name, m, &catalog, &|why| SimError::Spec { origin: name.clone(), why })
                    .map_err(std::io::Error::other)?;
            let driver_name = driver.clone().unwrap_or_default();
            host.parents.insert(
                name.clone(),
                Parent {
                    capacity,
                    pci_id: pci_id.clone(),
                    driver: driver_name.clone(),
                    driver_version: version.clone(),
                },
            );
            for t in &m.types {
                let key = format!("{name}/{}", t.id);
                let mut facts = DeviceFacts::mdev_type(&name, &pci_id, &driver_name, version.as_deref(), &t.id);
                facts.params = t.params.clone();
                let facts = driver.as_ref().map(|_| facts);
                let support = resolve(t.migration, &host.registry, facts.as_ref());
                let type_dir = host
                    .nodes
                    .lookup(
                        &format!(
                            "sys/class/mdev_bus/{key_dir}",
                            key_dir = key.replacen('/', "/mdev_supported_types/", 1)
                        ),
                        true,
                    )
                    .and_then(|i| host.nodes.path_of(i))
                    .ok_or_else(|| std::io::Error::other(format!("type dir of {key} missing")))?;
                host.nodes
                    .put_file(&format!("{type_dir}/available_instances"), FileKind::AvailableInstances(key.clone()))?;
                host.nodes.put_file(&format!("{type_dir}/create"), FileKind::Create(key.clone()))?;
                let cost = costs.get(&t.id).copied().unwrap_or(1);
                host.types.insert(
                    key.clone(),
                    MdevType { parent: name.clone(), type_id: t.id.clone(), cost, params: t.params.clone(), support },
                );
                let id = DeviceId::MdevType { parent: name.clone(), type_id: t.id.clone() };
                add_migratable(host, &id, &key, facts, support)?;
            }
        }
        Ok(())
    }
}

/// What every loaded module shows besides its version: its state, no holders, no taint.
pub(crate) fn lay_out_module_state(nodes: &mut Nodes, module: &str) -> std::io::Result<()> {
    let dir = format!("sys/module/{module}");
    nodes.mkdir_all(&format!("{dir}/holders"))?;
    nodes.mkdir_all(&format!("{dir}/drivers"))?;
    for (name, content) in [("initstate", "live\n"), ("refcnt", "0\n"), ("taint", "\n")] {
        nodes.put_file(&format!("{dir}/{name}"), FileKind::Static(content.as_bytes().to_vec()))?;
    }
    nodes.put_file(&format!("{dir}/uevent"), FileKind::Uevent(None))?;
    Ok(())
}

/// One mdev parent, PCI or virtual, as the host records it.
struct ParentRow<'a> {
    name: String,
    pci_id: String,
    driver: Option<String>,
    version: Option<String>,
    mdev: &'a MdevParentSpec,
}

fn lay_out_types<S: devmig_core::tree::TreeSink>(
    b: &TreeBuilder<S>,
    (parent, driver): (&str, &str),
    m: &MdevParentSpec,
    catalog: &Catalog,
) -> std::io::Result<()> {
    for t in &m.types {
        let (name, description) = DriverShape::type_text(driver, &t.id, catalog);
        let dir = b.mdev_type_with_text(parent, &t.id, (&name, description.as_deref()), 0, None)?;
        for (k, v) in &t.params {
            b.file(&format!("{dir}/{k}"), format!("{v}\n"))?;
        }
    }
    Ok(())
}

fn is_attr_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

pub(crate) fn resolve(m: MigrationSpec, registry: &Registry, facts: Option<&DeviceFacts>) -> Option<Support> {
    match m {
        MigrationSpec::Auto => facts.and_then(|f| registry.model_for_device(f)).map(|_| Support::Supported),
        MigrationSpec::Absent => None,
        MigrationSpec::Unsupported => Some(Support::Unsupported),
    }
}

/// The SR-IOV capability a PF's spec describes (VFs disabled: enabling them sets NumVFs), with
/// offset, stride and VF device id defaulting from the listed VFs.
fn sriov_cap(d: &PciDeviceSpec, s: &SriovSpec) -> Result<SriovCap, String> {
    let (_, pf) = routing_id(&d.address.to_ascii_lowercase()).ok_or("not DDDD:BB:DD.F")?;
    let rid = |v: &PciDeviceSpec| routing_id(&v.address.to_ascii_lowercase()).map(|r| r.1);
    let first = s.vfs.first().and_then(rid);
    let offset = match (s.offset, first) {
        (Some(o), _) => o,
        (None, Some(f)) if f > pf => u16::try_from(f - pf).map_err(|_| "VF offset past 65535")?,
        (None, Some(_)) => return Err("the first VF's address must come after the PF's".into()),
        (None, None) => 1,
    };
    let second = s.vfs.get(1).and_then(rid);
    let stride = match (s.stride, first, second) {
        (Some(st), ..) => st,
        (None, Some(a), Some(b)) if b > a => u16::try_from(b - a).map_err(|_| "VF stride past 65535")?,
        (None, Some(_), Some(_)) => return Err("VF addresses must ascend".into()),
        _ => 1,
    };
    let vf_device = match (&s.vf_device, s.vfs.first()) {
        (Some(h), _) => u16::from_str_radix(h, 16).map_err(|_| format!("vf_device {h:?} is not four hex digits"))?,
        (None, Some(v)) => v.id.parse::<PciId>().map_err(|e| e.to_string())?.device,
        (None, None) => d.id.parse::<PciId>().map_err(|e| e.to_string())?.device,
    };
    let total = u16::try_from(s.total_vfs).map_err(|_| format!("total_vfs {} is past 65535", s.total_vfs))?;
    for (i, v) in s.vfs.iter().enumerate() {
        let want = pf + u32::from(offset) + u32::from(stride) * i as u32;
        if rid(v) != Some(want) {
            return Err(format!(
                "vfs[{i}].address must be {} (offset {offset}, stride {stride}), not {}",
                address_of(0, want).map_or("past bus ff".into(), |a| a[5..].to_string()),
                v.address
            ));
        }
    }
    if total > 0 && address_of(0, pf + u32::from(offset) + u32::from(stride) * (u32::from(total) - 1)).is_none() {
        return Err(format!("{total} VFs at offset {offset}, stride {stride} run past bus ff"));
    }
    Ok(SriovCap { total, num: 0, offset, stride, vf_device })
}

/// `/sys/devices/system/{cpu,node}`: the CPUs (all online) and the NUMA nodes with their CPUs.
fn lay_out_system(nodes: &mut Nodes, system: &SystemSpec) -> std::io::Result<()> {
    use devmig_core::tree::{cpu_list, cpu_mask};
    let b = TreeBuilder::with_sink(MemSink(RefCell::new(nodes)));
    let all: Vec<u32> = (0..system.cpus).collect();
    let every = format!("{}\n", cpu_list(&all));
    for name in ["online", "possible", "present"] {
        b.file(&format!("sys/devices/system/cpu/{name}"), &every)?;
    }
    b.file("sys/devices/system/cpu/offline", "\n")?;
    let per_node: Vec<Vec<u32>> =
        (0..system.numa_nodes).map(|n| crate::pci::local_cpus(system, i32::try_from(n).unwrap_or(i32::MAX))).collect();
    for c in &all {
        let node = per_node.iter().position(|cpus| cpus.contains(c)).unwrap_or(0);
        let dir = format!("sys/devices/system/cpu/cpu{c}");
        // One thread per core, one package per node.
        for (name, content) in [
            ("physical_package_id", node.to_string()),
            ("die_id", "0".into()),
            ("core_id", c.to_string()),
            ("thread_siblings", cpu_mask(&[*c])),
            ("thread_siblings_list", c.to_string()),
            ("core_siblings", cpu_mask(&per_node[node])),
            ("core_siblings_list", cpu_list(&per_node[node])),
            ("package_cpus", cpu_mask(&per_node[node])),
            ("package_cpus_list", cpu_list(&per_node[node])),
        ] {
            b.file(&format!("{dir}/topology/{name}"), format!("{content}\n"))?;
        }
        if *c > 0 {
            b.file(&format!("{dir}/online"), "1\n")?;
        }
        b.link(&format!("{dir}/node{node}"), &format!("sys/devices/system/node/node{node}"))?;
        b.link(&format!("sys/devices/system/node/node{node}/cpu{c}"), &dir)?;
    }
    let nodes_all: Vec<u32> = (0..system.numa_nodes).collect();
    for name in ["online", "possible", "has_cpu", "has_memory", "has_normal_memory"] {
        b.file(&format!("sys/devices/system/node/{name}"), format!("{}\n", cpu_list(&nodes_all)))?;
    }
    for (n, cpus) in per_node.iter().enumerate() {
        let dir = format!("sys/devices/system/node/node{n}");
        b.file(&format!("{dir}/cpulist"), format!("{}\n", cpu_list(cpus)))?;
        b.file(&format!("{dir}/cpumap"), format!("{}\n", cpu_mask(cpus)))?;
        let distance: Vec<&str> = (0..per_node.len()).map(|m| if m == n { "10" } else { "20" }).collect();
        b.file(&format!("{dir}/distance"), format!("{}\n", distance.join(" ")))?;
    }
    Ok(())
}

/// Records a node's migration state and, when supported, its `migration_version` file.
pub(crate) fn add_migratable(
    host: &mut Host,
    id: &DeviceId,
    key: &str,
    facts: Option<DeviceFacts>,
    support: Option<Support>,
) -> std::io::Result<()> {
    let Some(support) = support else { return Ok(()) };
    let dir = host
        .nodes
        .lookup(&id.node_path().to_string_lossy(), true)
        .and_then(|i| host.nodes.path_of(i))
        .ok_or_else(|| std::io::Error::other(format!("node of {id} missing")))?;
    host.nodes
        .put_file(&format!("{dir}/{}", devmig_core::MIGRATION_VERSION), FileKind::MigrationVersion(key.to_string()))?;
    host.migratable.insert(key.to_string(), Migratable { facts, support });
    Ok(())
}

/// The lowest `n` for which `<dir>/<prefix><n>` does not exist (the kernel's ida), from one
/// listing of `dir`.
pub(crate) fn lowest_free(nodes: &Nodes, dir: &str, prefix: &str) -> u32 {
    let taken: BTreeSet<u32> = match nodes.lookup(dir, true).and_then(|i| nodes.get(i)) {
        Some(crate::nodes::Node::Dir(entries)) => {
            entries.keys().filter_map(|k| k.strip_prefix(prefix)?.parse().ok()).collect()
        }
        _ => BTreeSet::new(),
    };
    (0u32..).find(|n| !taken.contains(n)).unwrap_or(u32::MAX)
}

/// Lays out one mdev and records it (at build time, and for each write to `create`).
pub(crate) fn lay_out_mdev(
    host: &mut Host,
    uuid: &str,
    (parent, type_id): (&str, &str),
    aggregator: u32,
    params: &[(&str, &str)],
    support: Option<Support>,
    (group, vfio): (Option<u32>, Option<u32>),
) -> std::io::Result<()> {
    let p = host.parents.get(parent).cloned().ok_or_else(|| std::io::Error::other(format!("no parent {parent}")))?;
    let shape = DriverShape::of(&p.driver);
    // The kernel gives each mdev its own (emulated) IOMMU group and a VFIO device, each
    // numbered with the lowest free id (a spec may state them).
    let group = group.unwrap_or_else(|| lowest_free(&host.nodes, "sys/kernel/iommu_groups", ""));
    let vfio = vfio.unwrap_or_else(|| lowest_free(&host.nodes, "sys/class/vfio-dev", "vfio"));
    let dir = {
        let b = TreeBuilder::with_sink(MemSink(RefCell::new(&mut host.nodes)));
        let dir = b.mdev(uuid, parent, type_id, shape.aggregates.then_some(aggregator), None, params)?;
        b.link(&format!("{dir}/driver"), &format!("sys/bus/mdev/drivers/{}", shape.mdev_driver))?;
        b.link(&format!("{dir}/subsystem"), "sys/bus/mdev")?;
        b.link(&format!("{dir}/iommu_group"), &format!("sys/kernel/iommu_groups/{group}"))?;
        b.link(&format!("sys/kernel/iommu_groups/{group}/devices/{uuid}"), &dir)?;
        b.file(&format!("sys/kernel/iommu_groups/{group}/name"), "vfio-noiommu\n")?;
        b.file(&format!("sys/kernel/iommu_groups/{group}/reserved_regions"), "")?;
        let vdir = format!("{dir}/vfio-dev/vfio{vfio}");
        b.link(&format!("{vdir}/device"), &dir)?;
        b.link(&format!("{vdir}/subsystem"), "sys/class/vfio-dev")?;
        b.link(&format!("sys/class/vfio-dev/vfio{vfio}"), &vdir)?;
        for (rel, content) in shape.mdev_files {
            b.file(&format!("{dir}/{rel}"), content.replace("{uuid}", uuid))?;
        }
        dir
    };
    host.nodes.put_file(&format!("sys/kernel/iommu_groups/{group}/type"), FileKind::Refusing(b"unknown\n".to_vec()))?;
    host.nodes.put_file(&format!("{dir}/vfio-dev/vfio{vfio}/uevent"), FileKind::Uevent(Some(Vec::new())))?;
    let uevent = format!("DRIVER={}\n", shape.mdev_driver).into_bytes();
    host.nodes.put_file(&format!("{dir}/uevent"), FileKind::Uevent(Some(uevent)))?;
    host.nodes.put_file(&format!("{dir}/remove"), FileKind::Remove(uuid.to_string()))?;
    if shape.aggregates {
        host.nodes.put_file(&format!("{dir}/aggregator"), FileKind::Aggregator(uuid.to_string()))?;
    }
    let mut facts = DeviceFacts::mdev(parent, &p.pci_id, &p.driver, p.driver_version.as_deref(), type_id, aggregator);
    facts.params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    host.mdevs.insert(
        uuid.to_string(),
        Mdev { type_key: format!("{parent}/{type_id}"), aggregator, iommu_group: group, vfio_index: vfio },
    );
    add_migratable(host, &DeviceId::Mdev(uuid.to_string()), uuid, Some(facts), support)
}
