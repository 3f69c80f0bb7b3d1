//! Discovery: PCI functions, SR-IOV relations, mdev parents, types and mdevs under a [`SysfsRoot`].
use std::fs;
use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use devmig_vendors::models::{CREATABLE_TYPES, CURRENT_TYPE};
use devmig_vendors::{DeviceFacts, Registry};
use serde::{Deserialize, Serialize};

use crate::device::{Device, DeviceKind, Migration, MigrationSupport, PciInfo, Sriov};
use crate::{CoreError, DeviceId, MIGRATION_VERSION, PciAddress, SysfsIo, SysfsRoot};

/// Everything discovered under one root, sorted by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inventory {
    /// PCI functions, mdev types and mdevs.
    pub devices: Vec<Device>,
    /// mdev parents (PCI or virtual) and their types.
    pub mdev_parents: Vec<MdevParent>,
    /// Entries that could not even be named (bad names, unreadable directories).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// An mdev parent under `/sys/class/mdev_bus`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MdevParent {
    /// Its name (a PCI address or a virtual device name).
    pub name: String,
    /// Its driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Its supported type ids.
    pub types: Vec<String>,
}

impl Inventory {
    /// The device with `id`.
    pub fn get(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.iter().find(|d| &d.id == id)
    }
}

/// Discovers every device under `root`. A malformed or unreadable entry is
/// reported on its device (or in [`Inventory::problems`]); it never aborts the listing.
pub fn discover(root: &SysfsRoot, io: &SysfsIo, registry: &Registry) -> Result<Inventory, CoreError> {
    let root_path = root.path().to_path_buf();
    match io.run(move || fs::metadata(&root_path).map(|m| m.is_dir())) {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => {
            return Err(CoreError::Root {
                path: root.path().into(),
                source: std::io::Error::from(ErrorKind::NotADirectory),
            });
        }
        Ok(Err(e)) => {
            return Err(CoreError::Root { path: root.path().into(), source: e });
        }
        Err(failure) => {
            return Err(CoreError::Io { op: "stat", path: root.path().into(), failure });
        }
    }
    let mut inv = Inventory { devices: Vec::new(), mdev_parents: Vec::new(), problems: Vec::new() };
    for name in list_dir(root, io, "sys/bus/pci/devices", &mut inv.problems) {
        match name.parse::<PciAddress>() {
            Ok(addr) => inv.devices.push(discover_in_job(root, io, registry, DeviceId::Pci(addr))),
            Err(_) => inv.problems.push(format!("/sys/bus/pci/devices/{name}: ignored, not a PCI address")),
        }
    }
    // SR-IOV vGPU VFs without a type: one type target per type each lists (read in its job).
    let free_vfs: Vec<String> = inv
        .devices
        .iter()
        .filter(|d| d.kind == DeviceKind::SriovVf)
        .filter(|d| d.facts.as_ref().and_then(|f| f.params.get(CURRENT_TYPE)).is_some_and(|t| t.trim() == "0"))
        .map(|d| d.id.to_string())
        .collect();
    for vf in free_vfs {
        let dir = root.join(format!("sys/bus/pci/devices/{vf}"));
        let listed = io.run_on(&dir, {
            let dir = dir.clone();
            move || {
                let mut problems = Vec::new();
                (crate::vf_vgpu::listed_types(&dir, &mut problems), problems)
            }
        });
        let (types, problems) = match listed {
            Ok(found) => found,
            Err(failure) => (Vec::new(), vec![format!("{vf}/{CREATABLE_TYPES}: {failure}")]),
        };
        inv.problems.extend(problems);
        for ty in types {
            let id = DeviceId::MdevType { parent: vf.clone(), type_id: ty };
            inv.devices.push(discover_in_job(root, io, registry, id));
        }
    }
    for parent in list_dir(root, io, "sys/class/mdev_bus", &mut inv.problems) {
        if !parent_name_ok(&parent) {
            inv.problems.push(format!("/sys/class/mdev_bus/{parent}: ignored, not a valid parent name"));
            continue;
        }
        let types_rel = format!("sys/class/mdev_bus/{parent}/mdev_supported_types");
        let mut types = Vec::new();
        for ty in list_dir(root, io, &types_rel, &mut inv.problems) {
            match format!("{parent}/{ty}").parse::<DeviceId>() {
                Ok(id) => {
                    types.push(ty);
                    inv.devices.push(discover_in_job(root, io, registry, id));
                }
                Err(_) => inv.problems.push(format!("/{types_rel}/{ty}: ignored, not a valid type id")),
            }
        }
        // The parent's driver as its types saw it (read inside their timed jobs).
        let driver =
            inv.devices.iter().rev().find(|d| d.parent.as_deref() == Some(&parent)).and_then(|d| d.driver.clone());
        inv.mdev_parents.push(MdevParent { name: parent, driver, types });
    }
    for uuid in list_dir(root, io, "sys/bus/mdev/devices", &mut inv.problems) {
        match uuid.parse::<DeviceId>() {
            Ok(id @ DeviceId::Mdev(_)) => inv.devices.push(discover_in_job(root, io, registry, id)),
            _ => inv.problems.push(format!("/sys/bus/mdev/devices/{uuid}: ignored, not an mdev UUID")),
        }
    }
    inv.devices.sort_by_key(|d| (d.id.to_string(), d.kind));
    inv.mdev_parents.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(inv)
}

/// Discovers one device; [`CoreError::DeviceNotFound`] when its node does not exist.
pub(crate) fn discover_one(
    root: &SysfsRoot,
    io: &SysfsIo,
    registry: &Registry,
    id: &DeviceId,
) -> Result<Device, CoreError> {
    let device = root.join(id.node_path());
    let (r, probe) = (root.clone(), id.clone());
    match io.run_on(&device, move || node_dir(&r, &probe).is_dir()) {
        Ok(true) => Ok(discover_in_job(root, io, registry, id.clone())),
        Ok(false) => Err(CoreError::DeviceNotFound { id: id.to_string(), root: root.path().into() }),
        Err(failure) => Err(CoreError::Io { op: "stat", path: root.join(id.node_path()), failure }),
    }
}

/// Runs the discovery of one device on the I/O pool, so a hung attribute costs one timeout.
fn discover_in_job(root: &SysfsRoot, io: &SysfsIo, registry: &Registry, id: DeviceId) -> Device {
    let (r, reg, job_id) = (root.clone(), registry.clone(), id.clone());
    match io.run_on(&root.join(id.node_path()), move || discover_device(&r, &reg, job_id)) {
        Ok(d) => d,
        Err(failure) => {
            let kind = match &id {
                DeviceId::Pci(_) => DeviceKind::Pci,
                DeviceId::Mdev(_) => DeviceKind::Mdev,
                DeviceId::MdevType { .. } => DeviceKind::MdevType,
            };
            let mut d = Device::new(id, kind);
            d.problems.push(format!("discovery did not finish: {failure}"));
            d.migration.support = MigrationSupport::Unknown;
            d.migration.detail = Some(format!("unknown: discovery did not finish: {failure}"));
            d
        }
    }
}

/// The directory a device's attributes are in: its sysfs node, or for a type target of an
/// SR-IOV vGPU VF the VF's own directory. It stats files: call it inside an I/O job.
fn node_dir(root: &SysfsRoot, id: &DeviceId) -> PathBuf {
    crate::vf_vgpu::vf_dir(root, id).unwrap_or_else(|| root.join(id.node_path()))
}

fn discover_device(root: &SysfsRoot, registry: &Registry, id: DeviceId) -> Device {
    let vf_type_dir = crate::vf_vgpu::vf_dir(root, &id);
    let dir = vf_type_dir.clone().unwrap_or_else(|| root.join(id.node_path()));
    let mut d = match &id {
        DeviceId::MdevType { parent, type_id } if vf_type_dir.is_some() => {
            crate::vf_vgpu::type_device(root, &dir, parent, type_id, id.clone())
        }
        DeviceId::Pci(_) => pci_device(root, &dir, id.clone()),
        DeviceId::MdevType { parent, type_id } => mdev_type(root, &dir, parent.clone(), type_id.clone(), id.clone()),
        DeviceId::Mdev(_) => mdev(root, &dir, id.clone()),
    };
    if let Some(facts) = d.facts.as_mut() {
        // The configuration the device's own model reads (none for a device no model knows).
        let files = registry.model_for_device(facts).map(|m| m.param_files(facts)).unwrap_or_default();
        for name in files {
            let value = expand(&dir, &name, &mut d.problems).and_then(|rel| text(&dir, &rel, &mut d.problems));
            if let Some(v) = value {
                facts.params.insert(name, v);
            }
        }
    }
    // A VF's own migration_version is not its type target's: look where none can be.
    let attr_dir = if vf_type_dir.is_some() { dir.join("nvidia") } else { dir };
    d.migration = migration_of(&attr_dir, registry, d.facts.as_ref());
    d
}

/// Whether the kernel attribute exists, else whether a model can stand in.
pub(crate) fn migration_of(dir: &Path, registry: &Registry, facts: Option<&DeviceFacts>) -> Migration {
    let model = facts.and_then(|f| registry.model_for_device(f));
    let name = model.map(|m| m.name().to_string());
    // An attribute is anything but a directory (sysfs attributes are files; tests link devices here).
    if fs::metadata(dir.join(MIGRATION_VERSION)).is_ok_and(|m| !m.is_dir()) {
        return Migration { support: MigrationSupport::Kernel, model: name, detail: None };
    }
    match (model, facts) {
        (Some(m), Some(f)) => match m.version(f) {
            Ok(_) => Migration { support: MigrationSupport::Model, model: name, detail: None },
            Err(e) => Migration { support: MigrationSupport::None, model: name, detail: Some(e.to_string()) },
        },
        _ => Migration {
            support: MigrationSupport::None,
            model: None,
            detail: Some("no migration_version attribute and no vendor model".into()),
        },
    }
}

fn pci_device(root: &SysfsRoot, dir: &Path, id: DeviceId) -> Device {
    let mut d = Device::new(id.clone(), DeviceKind::Pci);
    let p = &mut d.problems;
    let vendor = hex(dir, "vendor", 4, p);
    let device = hex(dir, "device", 4, p);
    let sub_v = hex(dir, "subsystem_vendor", 4, p);
    let sub_d = hex(dir, "subsystem_device", 4, p);
    let class = hex(dir, "class", 6, p);
    let revision = hex(dir, "revision", 2, p);
    if let (Some(v), Some(dv)) = (vendor, device) {
        d.pci = Some(PciInfo {
            id: format!("{v:04x}:{dv:04x}"),
            subsystem_id: sub_v.zip(sub_d).map(|(a, b)| format!("{a:04x}:{b:04x}")),
            class: class.map(|c| format!("0x{c:06x}")),
            revision: revision.map(|r| format!("0x{r:02x}")),
        });
    }
    (d.driver, d.driver_module, d.driver_version) = driver_of(root, dir, p);
    d.iommu_group = link_name(dir, "iommu_group", p).and_then(|g| g.parse().ok());
    d.physfn = link_name(dir, "physfn", p);
    if let Some(total) = number(dir, "sriov_totalvfs", p) {
        let num = number(dir, "sriov_numvfs", p).unwrap_or(0);
        let mut vfs: Vec<(u32, String)> = entries(dir, p)
            .into_iter()
            .filter_map(|n| n.strip_prefix("virtfn").and_then(|i| i.parse().ok()).map(|i: u32| (i, n)))
            .filter_map(|(i, n)| link_name(dir, &n, p).map(|t| (i, t)))
            .collect();
        vfs.sort();
        d.sriov = Some(Sriov { total_vfs: total, num_vfs: num, vfs: vfs.into_iter().map(|(_, t)| t).collect() });
    }
    d.kind = if d.physfn.is_some() {
        DeviceKind::SriovVf
    } else if d.sriov.is_some() {
        DeviceKind::SriovPf
    } else {
        DeviceKind::Pci
    };
    let types_dir = dir.join("mdev_supported_types");
    if types_dir.is_dir() {
        d.mdev_types = entries(&types_dir, p);
        d.mdev_types.sort();
    }
    if let (Some(info), Some(driver)) = (&d.pci, &d.driver) {
        d.facts = Some(DeviceFacts::pci_function(&info.id, d.physfn.is_some(), driver, d.driver_version.as_deref()));
    }
    d
}

/// PCI id, driver, module and module version of an mdev parent.
fn parent_info(
    root: &SysfsRoot,
    parent: &str,
    p: &mut Vec<String>,
) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
    let dir = root.join(format!("sys/class/mdev_bus/{parent}"));
    let id = match (hex(&dir, "vendor", 4, &mut Vec::new()), hex(&dir, "device", 4, &mut Vec::new())) {
        (Some(v), Some(d)) => Some(format!("{v:04x}:{d:04x}")),
        _ => None,
    };
    let (mut driver, mut module, mut version) = driver_of(root, &dir, p);
    if driver.is_none() {
        // A virtual parent (mtty) has no driver link: its class names the module.
        if let Some(class) = virtual_class(root, &dir) {
            version = text(&root.join(format!("sys/module/{class}")), "version", p);
            if root.join(format!("sys/module/{class}")).is_dir() {
                module = Some(class.clone());
            }
            driver = Some(class);
        }
    }
    (id, driver, module, version)
}

/// `<class>` when `dir` resolves to `/sys/devices/virtual/<class>/<name>` under the root.
fn virtual_class(root: &SysfsRoot, dir: &Path) -> Option<String> {
    let real = fs::canonicalize(dir).ok()?;
    let base = fs::canonicalize(root.path()).ok()?;
    let rel: Vec<String> =
        real.strip_prefix(base).ok()?.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match rel.as_slice() {
        [sys, devices, virt, class, _] if sys == "sys" && devices == "devices" && virt == "virtual" => {
            Some(class.clone())
        }
        _ => None,
    }
}

fn mdev_type(root: &SysfsRoot, dir: &Path, parent: String, type_id: String, id: DeviceId) -> Device {
    let mut d = Device::new(id, DeviceKind::MdevType);
    let p = &mut d.problems;
    d.name = text(dir, "name", p);
    d.description = text(dir, "description", p);
    d.device_api = text(dir, "device_api", p);
    d.available_instances = number(dir, "available_instances", p);
    let (pid, driver, module, version) = parent_info(root, &parent, p);
    (d.driver, d.driver_module, d.driver_version) = (driver.clone(), module, version.clone());
    if let Some(drv) = driver {
        d.facts =
            Some(DeviceFacts::mdev_type(&parent, pid.as_deref().unwrap_or(""), &drv, version.as_deref(), &type_id));
    }
    d.parent = Some(parent);
    d
}

fn mdev(root: &SysfsRoot, dir: &Path, id: DeviceId) -> Device {
    let mut d = Device::new(id, DeviceKind::Mdev);
    let p = &mut d.problems;
    d.iommu_group = link_name(dir, "iommu_group", p).and_then(|g| g.parse().ok());
    d.aggregator = number(dir, "aggregator", p);
    // mdev_type -> ../mdev_supported_types/<type>, inside the parent's directory.
    let resolved = fs::canonicalize(dir.join("mdev_type"));
    let parts: Option<(String, String)> = resolved.as_ref().ok().and_then(|t| {
        let names: Vec<String> = t
            .components()
            .filter_map(|c| if let Component::Normal(n) = c { Some(n.to_string_lossy().into_owned()) } else { None })
            .collect();
        match names.as_slice() {
            [.., parent, types, ty] if types == "mdev_supported_types" => Some((parent.clone(), ty.clone())),
            _ => None,
        }
    });
    let Some((parent, ty)) = parts else {
        p.push(match resolved {
            Ok(t) => format!("mdev_type: link resolves to {}, not into mdev_supported_types", t.display()),
            Err(e) => format!("mdev_type: {e}"),
        });
        return d;
    };
    if !parent_name_ok(&parent) {
        p.push(format!("mdev_type: parent {parent:?} is not a valid parent name"));
        return d;
    }
    let (pid, driver, module, version) = parent_info(root, &parent, p);
    (d.driver, d.driver_module, d.driver_version) = (driver.clone(), module, version.clone());
    if let Some(drv) = driver {
        d.facts = Some(DeviceFacts::mdev(
            &parent,
            pid.as_deref().unwrap_or(""),
            &drv,
            version.as_deref(),
            &ty,
            d.aggregator.unwrap_or(1),
        ));
    }
    d.parent = Some(parent);
    d.mdev_type = Some(ty);
    d
}

fn parent_name_ok(name: &str) -> bool {
    format!("{name}/x").parse::<DeviceId>().is_ok()
}

/// Driver name, module name and module version of the device at `dir`.
pub(crate) fn driver_of(
    root: &SysfsRoot,
    dir: &Path,
    p: &mut Vec<String>,
) -> (Option<String>, Option<String>, Option<String>) {
    let driver = link_name(dir, "driver", p);
    let module = driver.as_ref().and_then(|_| link_name(&dir.join("driver"), "module", p));
    let version = module.as_ref().and_then(|m| text(&root.join(format!("sys/module/{m}")), "version", p));
    (driver, module, version)
}

/// Directory entry names of `rel` (empty when it does not exist).
fn list_dir(root: &SysfsRoot, io: &SysfsIo, rel: &str, problems: &mut Vec<String>) -> Vec<String> {
    let dir = root.join(rel);
    match io.run(move || {
        let mut p = Vec::new();
        let names = if dir.exists() { entries(&dir, &mut p) } else { Vec::new() };
        (names, p)
    }) {
        Ok((mut names, p)) => {
            problems.extend(p);
            names.sort();
            names
        }
        Err(failure) => {
            problems.push(format!("/{rel}: {failure}"));
            Vec::new()
        }
    }
}

fn entries(dir: &Path, p: &mut Vec<String>) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(it) => it
            .filter_map(|e| match e {
                Ok(e) => match e.file_name().into_string() {
                    Ok(n) => Some(n),
                    Err(n) => {
                        p.push(format!("{}: ignored entry with a non-UTF-8 name {n:?}", dir.display()));
                        None
                    }
                },
                Err(e) => {
                    p.push(format!("{}: {e}", dir.display()));
                    None
                }
            })
            .collect(),
        Err(e) => {
            p.push(format!("{}: {e}", dir.display()));
            Vec::new()
        }
    }
}

/// The text of an attribute without its trailing newline; `None` when absent.
pub(crate) fn text(dir: &Path, name: &str, p: &mut Vec<String>) -> Option<String> {
    let path: PathBuf = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => match String::from_utf8(crate::strip_one_newline(&bytes).to_vec()) {
            Ok(s) => Some(s),
            Err(_) => {
                p.push(format!("{name}: not UTF-8"));
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            p.push(format!("{name}: {e}"));
            None
        }
    }
}

/// `file` with each `*` component replaced by the one entry of that directory (None when the
/// directory is missing or empty; a problem when it holds several).
fn expand(dir: &Path, file: &str, p: &mut Vec<String>) -> Option<String> {
    let mut rel = PathBuf::new();
    for part in file.split('/') {
        if part != "*" {
            rel.push(part);
            continue;
        }
        let mut names: Vec<String> = fs::read_dir(dir.join(&rel))
            .ok()?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().into_string().ok()))
            .collect();
        match names.len() {
            0 => return None,
            1 => rel.push(names.remove(0)),
            n => {
                p.push(format!("{file}: {n} entries match *, expected one"));
                return None;
            }
        }
    }
    rel.into_os_string().into_string().ok()
}

/// A `0x`-prefixed hex attribute of at most `digits` digits.
pub(crate) fn hex(dir: &Path, name: &str, digits: usize, p: &mut Vec<String>) -> Option<u32> {
    let t = text(dir, name, p)?;
    let parsed = t
        .strip_prefix("0x")
        .filter(|h| !h.is_empty() && h.len() <= digits)
        .and_then(|h| u32::from_str_radix(h, 16).ok());
    if parsed.is_none() {
        p.push(format!("{name}: {t:?} is not 0x-prefixed hex of at most {digits} digits"));
    }
    parsed
}

/// A decimal attribute.
fn number(dir: &Path, name: &str, p: &mut Vec<String>) -> Option<u32> {
    let t = text(dir, name, p)?;
    let parsed = t.trim().parse().ok();
    if parsed.is_none() {
        p.push(format!("{name}: {t:?} is not a number"));
    }
    parsed
}

/// The last component of a symlink's target; `None` when there is no link.
fn link_name(dir: &Path, name: &str, p: &mut Vec<String>) -> Option<String> {
    match fs::read_link(dir.join(name)) {
        Ok(t) => match t.file_name().and_then(|n| n.to_str()) {
            Some(n) => Some(n.to_string()),
            None => {
                p.push(format!("{name}: link {} has no usable name", t.display()));
                None
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            p.push(format!("{name}: {e}"));
            None
        }
    }
}
