//! PCI functions with state, as Linux 6.1 runs them (drivers/pci/{pci-sysfs,pci-driver,iov}.c,
//! drivers/base/bus.c): driver binding (`driver_override`, a driver's `bind`, `unbind`, `new_id`
//! and `remove_id`, the bus's `drivers_probe`), SR-IOV (`sriov_numvfs` creates and removes VFs)
//! and config space writes. Layout goes through core's `TreeBuilder`, at build time and for each
//! VF a write enables, so both paths give the same tree.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;

use devmig_core::tree::{PciSpec, SriovCap, TreeBuilder, TreeSink, reg};
use devmig_core::{DeviceId, PciAddress};
use devmig_vendors::{DeviceFacts, PciId};

use crate::host::{Errno, Host};
use crate::nodes::{DriverAttr, FileKind, MemSink, PciAttr};
use crate::spec::{PciDeviceSpec, SystemSpec};

const EINVAL: Errno = Errno(libc::EINVAL);
const ENODEV: Errno = Errno(libc::ENODEV);

/// One PCI function's state.
#[derive(Debug, Clone)]
pub(crate) struct Function {
    /// What it is: ids, class, the driver whose id table matches it, parameters.
    pub spec: PciDeviceSpec,
    /// Its ids, parsed once from the spec: vendor, device, subsystem vendor and device, class.
    pub ids: [u32; 5],
    /// Its directory.
    pub dir: String,
    /// The driver bound now.
    pub bound: Option<String>,
    /// `driver_override`.
    pub driver_override: Option<String>,
    /// A VF's PF.
    pub physfn: Option<String>,
    /// pci_enable_device's count (`enable`).
    pub enable_cnt: u32,
    /// Configuration space.
    pub config: Vec<u8>,
    /// Its IOMMU group.
    pub iommu_group: Option<u32>,
    /// A PF's SR-IOV state.
    pub sriov: Option<Sriov>,
    /// A VF of an SR-IOV vGPU PF: its vGPU type number (0: none).
    pub vgpu: Option<u32>,
}

/// A PF's SR-IOV state.
#[derive(Debug, Clone)]
pub(crate) struct Sriov {
    pub total: u16,
    pub offset: u16,
    pub stride: u16,
    pub vf_device: u16,
    pub autoprobe: bool,
    /// Enabled VFs' addresses, `virtfn<i>` order.
    pub vfs: Vec<String>,
    /// What VF `i` is when enabled.
    pub templates: Vec<PciDeviceSpec>,
}

/// A loaded PCI driver.
#[derive(Debug, Clone)]
pub(crate) struct PciDriver {
    pub module: String,
    pub version: Option<String>,
    /// Ids added through `new_id`.
    pub dynids: Vec<DynId>,
}

/// One `new_id` entry (PCI_ANY_ID = u32::MAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DynId {
    vendor: u32,
    device: u32,
    subvendor: u32,
    subdevice: u32,
    class: u32,
    class_mask: u32,
}

const ANY: u32 = u32::MAX;

impl DynId {
    fn matches(&self, ids: [u32; 5]) -> bool {
        let [vendor, device, subvendor, subdevice, class] = ids;
        (self.vendor == ANY || self.vendor == vendor)
            && (self.device == ANY || self.device == device)
            && (self.subvendor == ANY || self.subvendor == subvendor)
            && (self.subdevice == ANY || self.subdevice == subdevice)
            && (self.class ^ class) & self.class_mask == 0
    }
}

/// Up to `max` hex numbers the way sscanf("%x %x ...") reads them: each may start with `0x`,
/// ends at the first non-hex character; the count read stops at the first that fails.
fn scan_hex(data: &[u8], max: usize) -> Vec<u64> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while out.len() < max {
        rest = rest.trim_start();
        let body = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")).unwrap_or(rest);
        let n = body.bytes().take_while(u8::is_ascii_hexdigit).count();
        let Some(v) = (n > 0).then(|| u64::from_str_radix(&body[..n.min(16)], 16).ok()).flatten() else { break };
        out.push(v);
        rest = &body[n..];
    }
    out
}

/// The domain and routing id (bus << 8 | device << 3 | function) of `DDDD:BB:DD.F`.
pub(crate) fn routing_id(addr: &str) -> Option<(u32, u32)> {
    let (domain, rest) = addr.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (device, function) = rest.split_once('.')?;
    let hex = |t: &str| u32::from_str_radix(t, 16).ok();
    let (d, f) = (hex(device)?, hex(function)?);
    (d < 32 && f < 8).then_some((hex(domain)?, (hex(bus)? << 8) | (d << 3) | f))
}

/// The address of routing id `rid` in `domain` (None past bus 255).
pub(crate) fn address_of(domain: u32, rid: u32) -> Option<String> {
    (rid <= 0xffff).then(|| format!("{domain:04x}:{:02x}:{:02x}.{}", rid >> 8, (rid >> 3) & 0x1f, rid & 7))
}

/// kstrtoul(buf, 0) with one trailing newline; shared with mdev `remove`.
pub(crate) fn kstrtoul(data: &[u8]) -> Result<u64, Errno> {
    let text = std::str::from_utf8(data.strip_suffix(b"\n").unwrap_or(data)).map_err(|_| EINVAL)?;
    let text = text.strip_prefix('+').unwrap_or(text);
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None if text.len() > 1 && text.starts_with('0') => (&text[1..], 8),
        None => (text, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(EINVAL);
    }
    u64::from_str_radix(digits, radix).map_err(|_| Errno(libc::ERANGE))
}

/// A device name as bus_find_device_by_name compares it (sysfs_streq: one newline ignored).
fn device_name(data: &[u8]) -> String {
    String::from_utf8_lossy(data.strip_suffix(b"\n").unwrap_or(data)).into_owned()
}

/// The CPUs of NUMA node `node` (-1: every CPU); CPUs are split among nodes in order.
pub(crate) fn local_cpus(system: &SystemSpec, node: i32) -> Vec<u32> {
    let nodes = system.numa_nodes.max(1);
    (0..system.cpus)
        .filter(|c| node < 0 || u64::from(*c) * u64::from(nodes) / u64::from(system.cpus) == node as u64)
        .collect()
}

/// The ids of a function: vendor, device, subsystem vendor and device, class.
fn ids_of(d: &PciDeviceSpec) -> io::Result<(PciId, (u16, u16), u32)> {
    let id: PciId = d.id.parse().map_err(io::Error::other)?;
    let sub = match &d.subsystem {
        Some(s) => s.parse::<PciId>().map(|s| (s.vendor, s.device)).map_err(io::Error::other)?,
        None => (id.vendor, id.device),
    };
    let class = u32::from_str_radix(d.class.trim_start_matches("0x"), 16).map_err(io::Error::other)?;
    Ok((id, sub, class))
}

/// The driver bound to a function as its spec states it.
fn bound_of(d: &PciDeviceSpec) -> Option<String> {
    match d.bound_driver.as_deref() {
        Some("") => None,
        Some(other) => Some(other.to_string()),
        None => d.driver.clone(),
    }
}

/// Where a function sits in the tree, for the layout of one function.
pub(crate) struct Placement<'a> {
    /// Its PF and index, for a VF.
    pub vf_of: Option<(&'a str, usize)>,
    /// Its IOMMU group (None: the spec's, else none).
    pub iommu_group: Option<u32>,
    /// A PF's SR-IOV capability.
    pub sriov: Option<SriovCap>,
}

impl Host {
    /// Registers a loaded PCI driver and lays its directory out (once).
    pub(crate) fn load_pci_driver(&mut self, name: &str, module: &str, version: Option<&str>) -> io::Result<()> {
        if self.pci_drivers.contains_key(name) {
            return Ok(());
        }
        let dir = TreeBuilder::with_sink(MemSink(RefCell::new(&mut self.nodes))).pci_driver(name, module, version)?;
        for (file, attr) in [
            ("bind", DriverAttr::Bind),
            ("unbind", DriverAttr::Unbind),
            ("new_id", DriverAttr::NewId),
            ("remove_id", DriverAttr::RemoveId),
        ] {
            self.nodes.put_file(&format!("{dir}/{file}"), FileKind::PciDriver(name.to_string(), attr))?;
        }
        self.nodes.put_file(&format!("{dir}/uevent"), FileKind::Uevent(None))?;
        crate::spec::lay_out_module_state(&mut self.nodes, module)?;
        self.nodes.put_file("sys/bus/pci/drivers_probe", FileKind::PciProbe)?;
        self.nodes.put_file("sys/bus/pci/rescan", FileKind::Unemulated)?;
        self.nodes.put_file("sys/bus/pci/uevent", FileKind::Uevent(None))?;
        self.nodes.put_file("sys/bus/pci/drivers_autoprobe", FileKind::Autoprobe(true))?;
        self.pci_drivers.insert(
            name.to_string(),
            PciDriver { module: module.to_string(), version: version.map(str::to_string), dynids: Vec::new() },
        );
        Ok(())
    }

    /// Lays one function out and records its state (at build time, and for each enabled VF).
    pub(crate) fn lay_out_function(&mut self, d: &PciDeviceSpec, at: Placement<'_>) -> io::Result<()> {
        let (id, subsystem, class) = ids_of(d)?;
        let addr = d.address.to_ascii_lowercase();
        let bound = bound_of(d);
        let driver =
            bound.as_deref().and_then(|b| self.pci_drivers.get(b).map(|p| (b, p.module.clone(), p.version.clone())));
        let params: Vec<(&str, &str)> = d.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let numa_node = d.numa_node.unwrap_or(-1);
        let cpus = local_cpus(&self.system, numa_node);
        let group = at.iommu_group.or(d.iommu_group);
        let spec = PciSpec {
            subsystem,
            revision: d.revision,
            driver: driver.as_ref().map(|(b, m, v)| (*b, m.as_str(), v.as_deref())),
            iommu_group: group,
            params: &params,
            numa_node,
            local_cpus: &cpus,
            link: Some(d.link.map_or((3, 4), |l| (l.generation, l.width))),
            sriov: at.sriov,
            is_vf: at.vf_of.is_some(),
            ..PciSpec::new(&addr, id.vendor, id.device, class)
        };
        let dir = {
            let b = TreeBuilder::with_sink(MemSink(RefCell::new(&mut self.nodes)));
            let dir = b.pci(&spec)?;
            if let Some((pf, i)) = at.vf_of {
                let pf_dir = b.sink().resolve(&format!("sys/bus/pci/devices/{pf}"))?;
                b.link(&format!("{pf_dir}/virtfn{i}"), &dir)?;
                b.link(&format!("{dir}/physfn"), &pf_dir)?;
            }
            dir
        };
        let config = match self.nodes.lookup(&format!("{dir}/config"), false).and_then(|i| self.nodes.get(i)) {
            Some(crate::nodes::Node::File(FileKind::Static(bytes))) => bytes.clone(),
            _ => return Err(io::Error::other(format!("{dir}/config missing"))),
        };
        let mut dynamic = vec![
            ("uevent", FileKind::Pci(addr.clone(), PciAttr::Uevent)),
            ("driver_override", FileKind::Pci(addr.clone(), PciAttr::DriverOverride)),
            ("enable", FileKind::Pci(addr.clone(), PciAttr::Enable)),
            ("config", FileKind::Pci(addr.clone(), PciAttr::Config)),
            ("reset", FileKind::Pci(addr.clone(), PciAttr::Reset)),
            ("msi_bus", FileKind::Flag(true)),
            ("broken_parity_status", FileKind::Flag(false)),
            ("power/control", FileKind::PowerControl(false)),
        ];
        if at.vf_of.is_none() {
            dynamic.push(("remove", FileKind::Unemulated));
            dynamic.push(("rescan", FileKind::Unemulated));
        }
        let pf_vgpu = at.vf_of.and_then(|(pf, _)| self.pci.get(pf)).is_some_and(|p| p.spec.vgpu.is_some());
        if pf_vgpu {
            dynamic.push(("nvidia/creatable_vgpu_types", FileKind::Pci(addr.clone(), PciAttr::VgpuTypes)));
            dynamic.push(("nvidia/current_vgpu_type", FileKind::Pci(addr.clone(), PciAttr::VgpuType)));
        }
        if at.sriov.is_some() {
            dynamic.push(("sriov_numvfs", FileKind::Pci(addr.clone(), PciAttr::SriovNumvfs)));
            dynamic.push(("sriov_drivers_autoprobe", FileKind::Pci(addr.clone(), PciAttr::SriovAutoprobe)));
        }
        for (name, kind) in dynamic {
            self.nodes.put_file(&format!("{dir}/{name}"), kind)?;
        }
        let sriov = match (&d.sriov, at.sriov) {
            (Some(s), Some(cap)) => Some(Sriov {
                total: cap.total,
                offset: cap.offset,
                stride: cap.stride,
                vf_device: cap.vf_device,
                autoprobe: s.drivers_autoprobe,
                vfs: Vec::new(),
                templates: s.vfs.clone(),
            }),
            _ => None,
        };
        let function = Function {
            ids: [u32::from(id.vendor), u32::from(id.device), u32::from(subsystem.0), u32::from(subsystem.1), class],
            spec: d.clone(),
            dir,
            bound: driver.map(|(b, ..)| b.to_string()),
            driver_override: d.driver_override.clone(),
            physfn: at.vf_of.map(|(pf, _)| pf.to_string()),
            enable_cnt: u32::from(bound.is_some()),
            config,
            iommu_group: group,
            sriov,
            vgpu: pf_vgpu.then(|| d.vgpu_type.unwrap_or(0)),
        };
        self.pci.insert(addr.clone(), function);
        if let Some((pf, _)) = at.vf_of {
            if let Some(s) = self.pci.get_mut(pf).and_then(|f| f.sriov.as_mut()) {
                s.vfs.push(addr.clone());
            }
        }
        let pf_params = at.vf_of.and_then(|(pf, _)| self.pci.get(pf)).map(|f| f.spec.params.clone());
        let facts = d.driver.as_deref().map(|drv| {
            let mut f = DeviceFacts::pci_function(&d.id, at.vf_of.is_some(), drv, d.driver_version.as_deref());
            f.params = d.params.clone();
            // What the VF's model reads through `physfn` (a variant driver's PF facts).
            for (k, v) in pf_params.iter().flatten() {
                f.params.insert(format!("physfn/{k}"), v.clone());
            }
            let files = self.registry.model_for_device(&f).map(|m| m.param_files(&f)).unwrap_or_default();
            for file in files.iter().filter(|file| file.split('/').any(|c| c == "*")) {
                let matching = f.params.iter().find(|(k, _)| globs(file, k)).map(|(_, v)| v.clone());
                if let Some(v) = matching {
                    f.params.insert(file.clone(), v);
                }
            }
            f
        });
        let support = crate::spec::resolve(d.migration, &self.registry, facts.as_ref());
        let device = DeviceId::Pci(addr.parse::<PciAddress>().map_err(io::Error::other)?);
        crate::spec::add_migratable(self, &device, &addr, facts, support)
    }

    /// A PCI attribute's content now.
    pub(crate) fn pci_read(&self, addr: &str, attr: PciAttr) -> Result<Vec<u8>, Errno> {
        let f = self.pci.get(addr).ok_or(ENODEV)?;
        Ok(match attr {
            PciAttr::Uevent => {
                let [vendor, device, sub_vendor, sub_device, _] = f.ids.map(|x| x as u16);
                let spec =
                    PciSpec { subsystem: (sub_vendor, sub_device), ..PciSpec::new(addr, vendor, device, f.ids[4]) };
                spec.uevent(f.bound.as_deref()).into_bytes()
            }
            PciAttr::DriverOverride => format!("{}\n", f.driver_override.as_deref().unwrap_or("(null)")).into_bytes(),
            PciAttr::Enable => format!("{}\n", u8::from(f.enable_cnt > 0)).into_bytes(),
            PciAttr::Config => f.config.clone(),
            PciAttr::SriovNumvfs => format!("{}\n", f.sriov.as_ref().map_or(0, |s| s.vfs.len())).into_bytes(),
            PciAttr::SriovAutoprobe => {
                format!("{}\n", u8::from(f.sriov.as_ref().is_some_and(|s| s.autoprobe))).into_bytes()
            }
            PciAttr::Reset => return Err(Errno(libc::EACCES)),
            PciAttr::VgpuTypes => self.vgpu_listing(addr)?.into_bytes(),
            PciAttr::VgpuType => format!("{}\n", f.vgpu.ok_or(ENODEV)?).into_bytes(),
        })
    }

    /// One write(2) to a PCI attribute; `offset` matters only for `config`.
    pub(crate) fn pci_write(&mut self, addr: &str, attr: PciAttr, data: &[u8], offset: u64) -> Result<usize, Errno> {
        let f = self.pci.get_mut(addr).ok_or(ENODEV)?;
        match attr {
            PciAttr::Uevent => crate::host::uevent_write(data)?,
            PciAttr::DriverOverride => {
                // driver_set_override: a page or more is EINVAL; the string ends at a NUL or a
                // newline; empty or "\n" clears.
                if data.len() >= crate::host::STORE_LIMIT - 1 {
                    return Err(EINVAL);
                }
                let text = &data[..data.iter().position(|b| *b == 0).unwrap_or(data.len())];
                let line = &text[..text.iter().position(|b| *b == b'\n').unwrap_or(text.len())];
                f.driver_override = (!line.is_empty()).then(|| String::from_utf8_lossy(line).into_owned());
            }
            PciAttr::Enable => match kstrtoul(data)? {
                0 if f.enable_cnt == 0 => return Err(Errno(libc::EIO)),
                0 => f.enable_cnt -= 1,
                _ => f.enable_cnt += 1,
            },
            PciAttr::Config => {
                // pci_write_config: nothing past the space; a write running over it is cut.
                let size = f.config.len();
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                if start >= size {
                    return Ok(0);
                }
                let n = data.len().min(size - start);
                // Only the command register is writable here; other registers keep their value
                // as a device's read-only ones do.
                for (i, b) in data[..n].iter().enumerate() {
                    if (reg::COMMAND..reg::COMMAND + 2).contains(&(start + i)) {
                        f.config[start + i] = *b;
                    }
                }
                return Ok(n);
            }
            PciAttr::SriovNumvfs => self.set_numvfs(addr, data)?,
            PciAttr::SriovAutoprobe => {
                let on = kstrtobool(data)?;
                if let Some(s) = f.sriov.as_mut() {
                    s.autoprobe = on;
                }
            }
            PciAttr::Reset => {
                if kstrtoul(data)? != 1 {
                    return Err(EINVAL);
                }
            }
            PciAttr::VgpuTypes => return Err(Errno(libc::EACCES)),
            PciAttr::VgpuType => self.set_vgpu_type(addr, data)?,
        }
        Ok(data.len())
    }

    /// Whether `driver` matches function `addr` (pci_bus_match): an override names the one
    /// driver; else a `new_id` entry or the driver's own id table (the spec's `driver`).
    fn driver_matches(&self, driver: &str, addr: &str) -> bool {
        let (Some(f), Some(d)) = (self.pci.get(addr), self.pci_drivers.get(driver)) else { return false };
        if let Some(o) = &f.driver_override {
            return o == driver;
        }
        d.dynids.iter().any(|x| x.matches(f.ids)) || f.spec.driver.as_deref() == Some(driver)
    }

    /// pci_device_can_probe: a VF probes only with its PF's autoprobe on or an override set.
    fn can_probe(&self, addr: &str) -> bool {
        let Some(f) = self.pci.get(addr) else { return false };
        match &f.physfn {
            Some(pf) if f.driver_override.is_none() => {
                self.pci.get(pf).and_then(|p| p.sriov.as_ref()).is_some_and(|s| s.autoprobe)
            }
            _ => true,
        }
    }

    fn attach(&mut self, driver: &str, addr: &str) -> Result<(), Errno> {
        let f = self.pci.get_mut(addr).ok_or(ENODEV)?;
        if f.bound.is_some() {
            return Err(Errno(libc::EBUSY));
        }
        f.bound = Some(driver.to_string());
        f.enable_cnt += 1;
        let cmd = u16::from_le_bytes([f.config[reg::COMMAND], f.config[reg::COMMAND + 1]])
            | reg::COMMAND_MEMORY
            | reg::COMMAND_MASTER;
        f.config[reg::COMMAND..reg::COMMAND + 2].copy_from_slice(&cmd.to_le_bytes());
        f.config[reg::MSIX_FLAGS + 1] |= 0x80;
        let dir = f.dir.clone();
        let drv = format!("sys/bus/pci/drivers/{driver}");
        let b = TreeBuilder::with_sink(MemSink(RefCell::new(&mut self.nodes)));
        b.link(&format!("{dir}/driver"), &drv).map_err(|_| Errno(libc::EIO))?;
        b.link(&format!("{drv}/{addr}"), &dir).map_err(|_| Errno(libc::EIO))?;
        Ok(())
    }

    fn detach(&mut self, addr: &str) -> Result<(), Errno> {
        // A PF driver's remove() disables SR-IOV first, as drivers that enable it do.
        if self.pci.get(addr).and_then(|f| f.sriov.as_ref()).is_some_and(|s| !s.vfs.is_empty()) {
            self.disable_vfs(addr)?;
        }
        let f = self.pci.get_mut(addr).ok_or(ENODEV)?;
        let Some(driver) = f.bound.take() else { return Ok(()) };
        f.enable_cnt = f.enable_cnt.saturating_sub(1);
        let cmd = u16::from_le_bytes([f.config[reg::COMMAND], f.config[reg::COMMAND + 1]]) & !reg::COMMAND_MASTER;
        f.config[reg::COMMAND..reg::COMMAND + 2].copy_from_slice(&cmd.to_le_bytes());
        f.config[reg::MSIX_FLAGS + 1] &= !0x80;
        let dir = f.dir.clone();
        for rel in [format!("{dir}/driver"), format!("sys/bus/pci/drivers/{driver}/{addr}")] {
            if let Ok(gone) = self.nodes.remove(&rel) {
                self.invalidations.push(gone);
            }
        }
        Ok(())
    }

    /// device_attach: the first loaded driver that matches, if the function may probe.
    fn probe(&mut self, addr: &str) -> Result<(), Errno> {
        if self.pci.get(addr).ok_or(ENODEV)?.bound.is_some() || !self.can_probe(addr) {
            return Ok(());
        }
        let found = self.pci_drivers.keys().find(|d| self.driver_matches(d, addr)).cloned();
        match found {
            Some(driver) => self.attach(&driver, addr),
            None => Ok(()),
        }
    }

    /// A write to a driver's `bind`, `unbind`, `new_id` or `remove_id`.
    pub(crate) fn pci_driver_write(&mut self, driver: &str, attr: DriverAttr, data: &[u8]) -> Result<usize, Errno> {
        match attr {
            DriverAttr::Bind => {
                let addr = device_name(data);
                if !self.pci.contains_key(&addr) || !self.driver_matches(driver, &addr) {
                    return Err(ENODEV);
                }
                if self.pci.get(&addr).is_some_and(|f| f.bound.is_some()) {
                    return Err(Errno(libc::EBUSY));
                }
                // pci_device_probe refuses a VF its PF does not let probe.
                if !self.can_probe(&addr) {
                    return Err(ENODEV);
                }
                self.attach(driver, &addr)?;
            }
            DriverAttr::Unbind => {
                let addr = device_name(data);
                if self.pci.get(&addr).and_then(|f| f.bound.as_deref()) != Some(driver) {
                    return Err(ENODEV);
                }
                self.detach(&addr)?;
            }
            DriverAttr::NewId => {
                let v = scan_hex(data, 7);
                if v.len() < 2 {
                    return Err(EINVAL);
                }
                let field = |i: usize, default: u32| v.get(i).map_or(default, |x| *x as u32);
                let id = DynId {
                    vendor: field(0, 0),
                    device: field(1, 0),
                    subvendor: field(2, ANY),
                    subdevice: field(3, ANY),
                    class: field(4, 0),
                    class_mask: field(5, 0),
                };
                // Without driver_data, an id the driver's own table has is EEXIST.
                if v.len() != 7 && self.static_table_has(driver, &id) {
                    return Err(Errno(libc::EEXIST));
                }
                self.pci_drivers.get_mut(driver).ok_or(ENODEV)?.dynids.push(id);
                // driver_attach: every unbound function that now matches.
                let unbound: Vec<String> =
                    self.pci.iter().filter(|(_, f)| f.bound.is_none()).map(|(a, _)| a.clone()).collect();
                for addr in unbound {
                    if self.can_probe(&addr) && self.driver_matches(driver, &addr) {
                        self.attach(driver, &addr)?;
                    }
                }
            }
            DriverAttr::RemoveId => {
                let v = scan_hex(data, 6);
                if v.len() < 2 {
                    return Err(EINVAL);
                }
                let field = |i: usize, default: u32| v.get(i).map_or(default, |x| *x as u32);
                let (subvendor, subdevice, class, class_mask) =
                    (field(2, ANY), field(3, ANY), field(4, 0), field(5, 0));
                let d = self.pci_drivers.get_mut(driver).ok_or(ENODEV)?;
                let at = d
                    .dynids
                    .iter()
                    .position(|x| {
                        x.vendor == field(0, 0)
                            && x.device == field(1, 0)
                            && (subvendor == ANY || x.subvendor == subvendor)
                            && (subdevice == ANY || x.subdevice == subdevice)
                            && (x.class ^ class) & class_mask == 0
                    })
                    .ok_or(ENODEV)?;
                d.dynids.remove(at);
            }
        }
        Ok(data.len())
    }

    /// Whether `driver`'s own id table (the functions whose spec names it) has `id`.
    fn static_table_has(&self, driver: &str, id: &DynId) -> bool {
        self.pci.values().filter(|f| f.spec.driver.as_deref() == Some(driver)).any(|f| id.matches(f.ids))
    }

    /// A write to the bus's `drivers_probe`.
    pub(crate) fn pci_probe_write(&mut self, data: &[u8]) -> Result<usize, Errno> {
        let addr = device_name(data);
        if !self.pci.contains_key(&addr) {
            return Err(ENODEV);
        }
        self.probe(&addr)?;
        Ok(data.len())
    }

    /// sriov_numvfs_store.
    fn set_numvfs(&mut self, pf: &str, data: &[u8]) -> Result<(), Errno> {
        let n = u16::try_from(kstrtoul(data).map_err(|_| EINVAL)?).map_err(|_| EINVAL)?;
        let f = self.pci.get(pf).ok_or(ENODEV)?;
        let s = f.sriov.as_ref().ok_or(ENODEV)?;
        if n > s.total {
            return Err(Errno(libc::ERANGE));
        }
        if usize::from(n) == s.vfs.len() {
            return Ok(());
        }
        // The PF's own driver configures SR-IOV; another (vfio-pci without enable_sriov) cannot.
        match f.bound.as_deref() {
            Some(d) if f.spec.driver.as_deref() == Some(d) => {}
            _ => return Err(Errno(libc::ENOENT)),
        }
        if n == 0 {
            return self.disable_vfs(pf);
        }
        if !s.vfs.is_empty() {
            return Err(Errno(libc::EBUSY));
        }
        self.enable_vfs(pf, n, None, true).map_err(|_| Errno(libc::EIO))
    }

    /// What VF `i` of `pf` is: its template, or the last template's ids and driver (or the PF's)
    /// without parameters; at the address offset and stride give.
    pub(crate) fn vf_spec(&self, pf: &str, i: usize) -> Result<PciDeviceSpec, Errno> {
        let f = self.pci.get(pf).ok_or(ENODEV)?;
        let s = f.sriov.as_ref().ok_or(ENODEV)?;
        let (domain, rid) = routing_id(pf).ok_or(ENODEV)?;
        let index = u32::try_from(i).map_err(|_| EINVAL)?;
        let address = address_of(domain, rid + u32::from(s.offset) + u32::from(s.stride) * index).ok_or(EINVAL)?;
        let mut d = match s.templates.get(i) {
            Some(t) => t.clone(),
            None => {
                let vendor = f.ids[0];
                let mut t = s.templates.last().cloned().unwrap_or_else(|| PciDeviceSpec {
                    id: format!("{vendor:04x}:{:04x}", s.vf_device),
                    sriov: None,
                    mdev: None,
                    ..f.spec.clone()
                });
                t.params = BTreeMap::new();
                t
            }
        };
        d.address = address;
        d.iommu_group = None;
        Ok(d)
    }

    /// Enables `n` VFs of `pf`. A spec's listed VFs come with their IOMMU groups (`groups`)
    /// and bindings; other VFs get the lowest free groups (where the PF has one: the IOMMU is
    /// on) and are probed, as are all VFs a write enables (`probe`).
    pub(crate) fn enable_vfs(
        &mut self,
        pf: &str,
        n: u16,
        groups: Option<&[Option<u32>]>,
        probe: bool,
    ) -> io::Result<()> {
        let iommu = self.pci.get(pf).is_some_and(|f| f.iommu_group.is_some());
        for i in 0..usize::from(n) {
            let mut d = self.vf_spec(pf, i).map_err(|e| io::Error::from_raw_os_error(e.0))?;
            // A listed VF's group is the spec's; any other gets the lowest free one.
            let group = match groups.and_then(|g| g.get(i)) {
                Some(listed) => *listed,
                None => iommu.then(|| crate::spec::lowest_free(&self.nodes, "sys/kernel/iommu_groups", "")),
            };
            // A VF a write creates, or one the spec does not list, starts unbound without an
            // override: probing decides its driver.
            let unlisted = probe || groups.is_none_or(|g| i >= g.len());
            if unlisted {
                d.bound_driver = Some(String::new());
                d.driver_override = None;
            }
            self.lay_out_function(&d, Placement { vf_of: Some((pf, i)), iommu_group: group, sriov: None })?;
            if unlisted {
                self.probe(&d.address.to_ascii_lowercase()).map_err(|e| io::Error::from_raw_os_error(e.0))?;
            }
        }
        self.sync_sriov_config(pf);
        Ok(())
    }

    /// Removes every VF of `pf` (sriov_numvfs = 0), last first.
    fn disable_vfs(&mut self, pf: &str) -> Result<(), Errno> {
        let vfs = self.pci.get(pf).and_then(|f| f.sriov.as_ref()).map(|s| s.vfs.clone()).unwrap_or_default();
        for (i, vf) in vfs.iter().enumerate().rev() {
            self.detach(vf)?;
            let f = self.pci.remove(vf).ok_or(ENODEV)?;
            self.migratable.remove(vf);
            let mut gone = vec![format!("sys/bus/pci/devices/{vf}"), f.dir.clone()];
            let pf_dir = self.pci.get(pf).map(|p| p.dir.clone()).unwrap_or_default();
            gone.push(format!("{pf_dir}/virtfn{i}"));
            if let Some(g) = f.iommu_group {
                gone.push(format!("sys/kernel/iommu_groups/{g}/devices/{vf}"));
            }
            for rel in gone {
                if let Ok(entry) = self.nodes.remove(&rel) {
                    self.invalidations.push(entry);
                }
            }
            // A group left without devices goes away with its last member.
            if let Some(g) = f.iommu_group {
                let dir = format!("sys/kernel/iommu_groups/{g}/devices");
                let empty = matches!(
                    self.nodes.lookup(&dir, true).and_then(|i| self.nodes.get(i)),
                    Some(crate::nodes::Node::Dir(e)) if e.is_empty()
                );
                if empty {
                    if let Ok(entry) = self.nodes.remove(&format!("sys/kernel/iommu_groups/{g}")) {
                        self.invalidations.push(entry);
                    }
                }
            }
        }
        if let Some(s) = self.pci.get_mut(pf).and_then(|f| f.sriov.as_mut()) {
            s.vfs.clear();
        }
        self.faults.retain(|ino, _| self.nodes.get(*ino).is_some());
        self.sync_sriov_config(pf);
        Ok(())
    }

    /// The SR-IOV capability's NumVFs and VF Enable follow the enabled VFs.
    fn sync_sriov_config(&mut self, pf: &str) {
        let Some(f) = self.pci.get_mut(pf) else { return };
        let n = f.sriov.as_ref().map_or(0, |s| s.vfs.len() as u16);
        if f.config.len() > reg::SRIOV_NUM_VF + 1 {
            f.config[reg::SRIOV_NUM_VF..reg::SRIOV_NUM_VF + 2].copy_from_slice(&n.to_le_bytes());
            let ctrl: u16 = if n > 0 { 0x0009 } else { 0 };
            f.config[reg::SRIOV_CTRL..reg::SRIOV_CTRL + 2].copy_from_slice(&ctrl.to_le_bytes());
        }
    }
}

/// kstrtobool: y/Y/1/on and n/N/0/off (the first characters decide, as the kernel reads them).
fn kstrtobool(data: &[u8]) -> Result<bool, Errno> {
    match data {
        [b'y' | b'Y' | b'1', ..] => Ok(true),
        [b'n' | b'N' | b'0', ..] => Ok(false),
        [b'o' | b'O', b'n' | b'N', ..] => Ok(true),
        [b'o' | b'O', b'f' | b'F', ..] => Ok(false),
        _ => Err(EINVAL),
    }
}

/// Whether `path` matches `pattern`, whose `*` components match any one component.
fn globs(pattern: &str, path: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == k.len() && p.iter().zip(&k).all(|(a, b)| *a == "*" || a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_fields_read_like_sscanf() {
        assert_eq!(scan_hex(b"8086 10fb\n", 7), vec![0x8086, 0x10fb]);
        assert_eq!(scan_hex(b"0x144d 0xa824 ffffffff", 7), vec![0x144d, 0xa824, 0xffff_ffff]);
        assert_eq!(scan_hex(b"8086 zz", 7), vec![0x8086]);
        assert!(scan_hex(b"", 7).is_empty());
    }

    #[test]
    fn cpus_split_among_nodes_in_order() {
        let s = SystemSpec { cpus: 4, numa_nodes: 2 };
        assert_eq!(local_cpus(&s, 0), vec![0, 1]);
        assert_eq!(local_cpus(&s, 1), vec![2, 3]);
        assert_eq!(local_cpus(&s, -1), vec![0, 1, 2, 3]);
    }

    #[test]
    fn booleans_read_like_kstrtobool() {
        assert_eq!(kstrtobool(b"0\n"), Ok(false));
        assert_eq!(kstrtobool(b"on"), Ok(true));
        assert_eq!(kstrtobool(b"x"), Err(EINVAL));
    }
}
