//! An emulated host: the tree plus device state, with the sysfs semantics
//! of the attributes that matter (FUSE-free; tested without a mount).
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use devmig_core::DeviceId;
use devmig_vendors::{DeviceFacts, Registry, VendorError};

use crate::nodes::{FileKind, Ino, Node, Nodes};
use crate::shape::DriverShape;

/// sysfs hands a store() at most one page.
pub const STORE_LIMIT: usize = 4096;

/// An errno answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Which operations a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// read(2) only.
    Read,
    /// write(2) only.
    Write,
    /// Both.
    Any,
}

/// An injected fault on one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Operations it hits.
    pub op: FaultOp,
    /// Answer only after this long.
    pub delay: Duration,
    /// Answer with this errno instead.
    pub errno: Option<i32>,
    /// Never answer (until unmount).
    pub hang: bool,
}

/// Whether a node with a `migration_version` attribute supports migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// The vendor model shows and judges the string.
    Supported,
    /// The attribute exists, but reads and writes fail with ENODEV.
    Unsupported,
}

/// A node that carries migration state.
#[derive(Debug, Clone)]
pub(crate) struct Migratable {
    pub facts: Option<DeviceFacts>,
    pub support: Support,
}

/// An mdev parent's capacity, in the units its types cost.
#[derive(Debug, Clone)]
pub(crate) struct Parent {
    pub capacity: u32,
    pub pci_id: String,
    pub driver: String,
    pub driver_version: Option<String>,
}

/// An mdev type.
#[derive(Debug, Clone)]
pub(crate) struct MdevType {
    pub parent: String,
    pub type_id: String,
    pub cost: u32,
    pub params: BTreeMap<String, String>,
    pub support: Option<Support>,
}

/// A created mdev.
#[derive(Debug, Clone)]
pub(crate) struct Mdev {
    pub type_key: String,
    pub aggregator: u32,
    /// Its IOMMU group (`/sys/kernel/iommu_groups/<n>`, removed with the mdev).
    pub iommu_group: u32,
    /// Its VFIO device index (`vfio-dev/vfio<n>`, `/sys/class/vfio-dev/vfio<n>`).
    pub vfio_index: u32,
}

/// One emulated host.
#[derive(Debug)]
pub struct Host {
    pub(crate) hostname: String,
    pub(crate) nodes: Nodes,
    pub(crate) registry: Registry,
    /// `migration_version` owners by device id text.
    pub(crate) migratable: BTreeMap<String, Migratable>,
    pub(crate) parents: BTreeMap<String, Parent>,
    /// Types by `parent/type`.
    pub(crate) types: BTreeMap<String, MdevType>,
    pub(crate) mdevs: BTreeMap<String, Mdev>,
    pub(crate) faults: HashMap<Ino, Fault>,
    /// Entries removed and not yet reported by [`Host::take_invalidations`].
    pub(crate) invalidations: Vec<(Ino, String)>,
    /// write(2) calls that reached each device's `migration_version`, by device id text.
    pub(crate) version_writes: HashMap<String, WriteLog>,
    /// PCI functions by address.
    pub(crate) pci: BTreeMap<String, crate::pci::Function>,
    /// Loaded PCI drivers by name.
    pub(crate) pci_drivers: BTreeMap<String, crate::pci::PciDriver>,
    /// CPUs and NUMA nodes.
    pub(crate) system: crate::spec::SystemSpec,
}

/// The write(2) calls one `migration_version` took: how many, and how many ran at once.
#[derive(Debug, Default)]
pub(crate) struct WriteLog {
    count: u64,
    /// When recent writes arrived and were answered (the last [`WriteLog::KEPT`]).
    recent: std::collections::VecDeque<(Instant, Instant)>,
    most_at_once: usize,
}

impl WriteLog {
    const KEPT: usize = 64;

    /// Records a write that arrived at `arrived` and is answered now.
    fn record(&mut self, arrived: Instant) {
        let now = Instant::now();
        // Every write recorded before ended by now; those that ended after this one arrived overlap it.
        let at_once = 1 + self.recent.iter().filter(|(_, ended)| *ended > arrived).count();
        self.most_at_once = self.most_at_once.max(at_once);
        self.count += 1;
        if self.recent.len() == Self::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back((arrived, now));
    }
}

/// What a node is, for getattr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Symlink.
    Link,
    /// Attribute file.
    File,
}

/// getattr's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Kind.
    pub kind: Kind,
    /// Permission bits.
    pub perm: u16,
    /// Size: 4096 for attributes (as sysfs shows), the length for binary files and links.
    pub size: u64,
}

const ENOENT: Errno = Errno(libc::ENOENT);
pub(crate) const EINVAL: Errno = Errno(libc::EINVAL);
pub(crate) const ENODEV: Errno = Errno(libc::ENODEV);
const EACCES: Errno = Errno(libc::EACCES);

pub(crate) fn strip_newline(data: &[u8]) -> &[u8] {
    data.strip_suffix(b"\n").unwrap_or(data)
}

/// What `create` takes: 36 or 37 bytes, the first 36 a UUID (mdev_sysfs.c checks the length,
/// then guid_parse reads 36 characters: a 37th is ignored, newline or not).
fn create_uuid(data: &[u8]) -> Result<&str, Errno> {
    if !(36..=37).contains(&data.len()) {
        return Err(EINVAL);
    }
    std::str::from_utf8(&data[..36]).map_err(|_| EINVAL)
}

/// A write to `uevent`: an action kobject_synth_uevent knows, optionally followed by a UUID
/// and KEY=value arguments.
pub(crate) fn uevent_write(data: &[u8]) -> Result<(), Errno> {
    const ACTIONS: [&str; 8] = ["add", "remove", "change", "move", "online", "offline", "bind", "unbind"];
    let text = std::str::from_utf8(strip_newline(data)).map_err(|_| EINVAL)?;
    let mut words = text.split(' ');
    if !words.next().is_some_and(|a| ACTIONS.contains(&a)) {
        return Err(EINVAL);
    }
    match words.next() {
        None => Ok(()),
        Some(uuid) if matches!(uuid.parse::<DeviceId>(), Ok(DeviceId::Mdev(_))) => Ok(()),
        Some(_) => Err(EINVAL),
    }
}

impl Host {
    /// The host's name.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Live nodes in the tree.
    pub fn node_count(&self) -> usize {
        self.nodes.live()
    }

    /// The tree (read-only).
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(ino).ok_or(ENOENT)
    }

    /// getattr.
    pub fn stat(&self, ino: Ino) -> Result<Stat, Errno> {
        Ok(match self.node(ino)? {
            Node::Dir(_) => Stat { kind: Kind::Dir, perm: 0o755, size: 0 },
            // sysfs reports a symlink's size as 0.
            Node::Link(_) => Stat { kind: Kind::Link, perm: 0o777, size: 0 },
            Node::File(f) => {
                let perm = match f.access() {
                    (true, true) => 0o644,
                    (true, false) => 0o444,
                    _ => 0o200,
                };
                // Text attributes show 4096 as sysfs does; binary ones (config) their length.
                let size = match f {
                    FileKind::Static(data) if data.iter().any(|b| !(b.is_ascii_graphic() || b" \n\t".contains(b))) => {
                        data.len() as u64
                    }
                    FileKind::Pci(addr, crate::nodes::PciAttr::Config) => {
                        self.pci.get(addr).map_or(0, |f| f.config.len() as u64)
                    }
                    _ => 4096,
                };
                Stat { kind: Kind::File, perm, size }
            }
        })
    }

    /// Entries removed since the last call, as (directory, name): what the
    /// kernel's dentry cache must forget.
    pub fn take_invalidations(&mut self) -> Vec<(Ino, String)> {
        std::mem::take(&mut self.invalidations)
    }

    /// lookup.
    pub fn lookup(&self, dir: Ino, name: &str) -> Result<Ino, Errno> {
        match self.node(dir)? {
            Node::Dir(_) => self.nodes.child(dir, name).ok_or(ENOENT),
            _ => Err(Errno(libc::ENOTDIR)),
        }
    }

    /// readdir: (inode, kind, name), `.` and `..` first.
    pub fn readdir(&self, dir: Ino) -> Result<Vec<(Ino, Kind, String)>, Errno> {
        let Node::Dir(entries) = self.node(dir)? else { return Err(Errno(libc::ENOTDIR)) };
        let mut out = vec![
            (dir, Kind::Dir, ".".to_string()),
            (self.nodes.parent(dir).unwrap_or(dir), Kind::Dir, "..".to_string()),
        ];
        for (name, ino) in entries {
            if let Ok(st) = self.stat(*ino) {
                out.push((*ino, st.kind, name.clone()));
            }
        }
        Ok(out)
    }

    /// readlink.
    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        match self.node(ino)? {
            Node::Link(t) => Ok(t.as_os_str().as_encoded_bytes().to_vec()),
            _ => Err(EINVAL),
        }
    }

    /// open: kernfs refuses to open an attribute for a direction it has no handler for.
    pub fn open(&self, ino: Ino, read: bool, write: bool) -> Result<(), Errno> {
        match self.node(ino)? {
            Node::File(f) => {
                let (r, w) = f.access();
                if (read && !r) || (write && !w) { Err(EACCES) } else { Ok(()) }
            }
            Node::Dir(_) if write => Err(Errno(libc::EISDIR)),
            _ => Ok(()),
        }
    }

    /// Lifts every injected fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The fault on `ino` that applies to a read (`write == false`) or a write.
    pub fn fault(&self, ino: Ino, write: bool) -> Option<&Fault> {
        self.faults.get(&ino).filter(|f| match f.op {
            FaultOp::Any => true,
            FaultOp::Read => !write,
            FaultOp::Write => write,
        })
    }

    /// Counts a write(2) on `device`'s `migration_version` (accepted or refused).
    fn record_version_write(&mut self, device: String, arrived: Instant) {
        match self.version_writes.get_mut(&device) {
            Some(log) => log.record(arrived),
            None => self.version_writes.entry(device).or_default().record(arrived),
        }
    }

    /// How many write(2) calls reached `device`'s `migration_version` (accepted or refused).
    pub fn version_writes(&self, device: &str) -> u64 {
        self.version_writes.get(device).map_or(0, |w| w.count)
    }

    /// The most write(2) calls on `device`'s `migration_version` that were in flight at once
    /// (from arrival, a delay fault included, to answer).
    pub fn concurrent_version_writes(&self, device: &str) -> usize {
        self.version_writes.get(device).map_or(0, |w| w.most_at_once)
    }

    /// The whole content of a file, as show() renders it now.
    pub fn read(&self, ino: Ino) -> Result<Vec<u8>, Errno> {
        let Node::File(f) = self.node(ino)? else { return Err(Errno(libc::EISDIR)) };
        match f {
            FileKind::Static(data) => Ok(data.clone()),
            FileKind::MigrationVersion(id) => {
                let m = self.migratable.get(id).ok_or(ENODEV)?;
                if m.support == Support::Unsupported {
                    return Err(ENODEV);
                }
                let facts = m.facts.as_ref().ok_or(ENODEV)?;
                let v = self.registry.version(facts).map_err(|_| ENODEV)?;
                Ok(format!("{v}\n").into_bytes())
            }
            FileKind::AvailableInstances(key) => Ok(format!("{}\n", self.available(key)).into_bytes()),
            FileKind::Aggregator(uuid) => {
                Ok(format!("{}\n", self.mdevs.get(uuid).ok_or(ENODEV)?.aggregator).into_bytes())
            }
            FileKind::Uevent(Some(content)) | FileKind::Refusing(content) => Ok(content.clone()),
            FileKind::Autoprobe(on) | FileKind::Flag(on) => Ok(if *on { b"1\n".to_vec() } else { b"0\n".to_vec() }),
            FileKind::PowerControl(auto) => Ok(if *auto { b"auto\n".to_vec() } else { b"on\n".to_vec() }),
            FileKind::Pci(addr, attr) => self.pci_read(addr, *attr),
            FileKind::Create(_)
            | FileKind::Remove(_)
            | FileKind::Uevent(None)
            | FileKind::Unemulated
            | FileKind::PciDriver(..)
            | FileKind::PciProbe => Err(EACCES),
        }
    }

    /// One write(2), judged alone; the offset plays no part. Returns the bytes taken.
    pub fn write(&mut self, ino: Ino, data: &[u8]) -> Result<usize, Errno> {
        self.write_arrived(ino, 0, data, Instant::now())
    }

    /// [`Host::write`] of a write(2) at `offset` (only binary attributes such as `config` use
    /// it) that arrived at `arrived` (a delay fault held it since).
    pub fn write_arrived(&mut self, ino: Ino, offset: u64, data: &[u8], arrived: Instant) -> Result<usize, Errno> {
        let data = &data[..data.len().min(STORE_LIMIT)];
        let Node::File(f) = self.node(ino)?.clone() else { return Err(Errno(libc::EISDIR)) };
        match f {
            FileKind::MigrationVersion(id) => {
                let stored = self.store_version(&id, data);
                self.record_version_write(id, arrived);
                stored?;
            }
            FileKind::Create(key) => {
                let uuid = create_uuid(data)?;
                self.create_mdev(&key, uuid, 1)?;
            }
            FileKind::Remove(uuid) => {
                if crate::pci::kstrtoul(data)? != 0 {
                    self.remove_mdev(&uuid)?;
                }
            }
            FileKind::Pci(addr, attr) => return self.pci_write(&addr, attr, data, offset),
            FileKind::PciDriver(driver, attr) => return self.pci_driver_write(&driver, attr, data),
            FileKind::PciProbe => return self.pci_probe_write(data),
            FileKind::Flag(_) => {
                let on = crate::pci::kstrtoul(data)? != 0;
                self.nodes.put_file_at(ino, FileKind::Flag(on));
            }
            FileKind::PowerControl(_) => match strip_newline(data) {
                b"on" => self.nodes.put_file_at(ino, FileKind::PowerControl(false)),
                b"auto" => self.nodes.put_file_at(ino, FileKind::PowerControl(true)),
                _ => return Err(EINVAL),
            },
            FileKind::Uevent(_) => uevent_write(data)?,
            FileKind::Autoprobe(_) => {
                let on = data.first() != Some(&b'0');
                self.nodes.put_file_at(ino, FileKind::Autoprobe(on));
            }
            FileKind::Unemulated => return Err(Errno(libc::EOPNOTSUPP)),
            FileKind::Refusing(_) => return Err(EINVAL),
            FileKind::Aggregator(uuid) => {
                let n: u32 =
                    std::str::from_utf8(strip_newline(data)).ok().and_then(|s| s.trim().parse().ok()).ok_or(EINVAL)?;
                self.set_aggregator(&uuid, n)?;
            }
            FileKind::Static(_) | FileKind::AvailableInstances(_) => return Err(EACCES),
        }
        Ok(data.len())
    }

    fn store_version(&self, id: &str, data: &[u8]) -> Result<(), Errno> {
        let m = self.migratable.get(id).ok_or(ENODEV)?;
        if m.support == Support::Unsupported {
            return Err(ENODEV);
        }
        let facts = m.facts.as_ref().ok_or(ENODEV)?;
        // sysfs_streq: one trailing newline does not count.
        let source = std::str::from_utf8(strip_newline(data)).map_err(|_| EINVAL)?;
        match self.registry.decide(source, facts) {
            Ok(None) => Ok(()),
            Ok(Some(_)) | Err(VendorError::BadVersion { .. } | VendorError::UnknownVersion(_)) => Err(EINVAL),
            Err(_) => Err(ENODEV),
        }
    }

    fn used(&self, parent: &str) -> u32 {
        self.mdevs
            .values()
            .filter_map(|m| self.types.get(&m.type_key).filter(|t| t.parent == parent).map(|t| t.cost * m.aggregator))
            .sum()
    }

    /// Free instances of a type (`parent/type`).
    pub fn available(&self, key: &str) -> u32 {
        let Some(t) = self.types.get(key) else { return 0 };
        let Some(p) = self.parents.get(&t.parent) else { return 0 };
        if DriverShape::of(&p.driver).single_type && self.other_type_in_use(&t.parent, key) {
            return 0;
        }
        p.capacity.saturating_sub(self.used(&t.parent)) / t.cost.max(1)
    }

    /// True when an mdev of another type than `key` exists on `parent`.
    fn other_type_in_use(&self, parent: &str, key: &str) -> bool {
        self.mdevs
            .values()
            .any(|m| m.type_key != key && self.types.get(&m.type_key).is_some_and(|t| t.parent == parent))
    }

    /// Creates an mdev of `parent/type` with `uuid` (what a write to `create` does).
    pub fn create_mdev(&mut self, key: &str, uuid: &str, aggregator: u32) -> Result<(), Errno> {
        let id = match uuid.parse::<DeviceId>() {
            Ok(DeviceId::Mdev(u)) => u,
            _ => return Err(EINVAL),
        };
        if self.mdevs.contains_key(&id) {
            return Err(Errno(libc::EEXIST));
        }
        let t = self.types.get(key).ok_or(ENODEV)?.clone();
        if self.available(key) < aggregator {
            let driver = self.parents.get(&t.parent).map_or("", |p| p.driver.as_str());
            return Err(Errno(DriverShape::of(driver).full_errno));
        }
        let params: Vec<(&str, &str)> = t.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::spec::lay_out_mdev(self, &id, (&t.parent, &t.type_id), aggregator, &params, t.support, (None, None))
            .map_err(|_| Errno(libc::EIO))
    }

    fn remove_mdev(&mut self, uuid: &str) -> Result<(), Errno> {
        let m = self.mdevs.remove(uuid).ok_or(ENODEV)?;
        self.migratable.remove(uuid);
        let t = self.types.get(&m.type_key).ok_or(ENODEV)?;
        let dir = self.nodes.lookup(&format!("sys/bus/mdev/devices/{uuid}"), true).and_then(|i| self.nodes.path_of(i));
        let type_dir = self
            .nodes
            .lookup(&format!("sys/class/mdev_bus/{}/mdev_supported_types/{}", t.parent, t.type_id), true)
            .and_then(|i| self.nodes.path_of(i));
        let owned = [
            format!("sys/kernel/iommu_groups/{}", m.iommu_group),
            format!("sys/class/vfio-dev/vfio{}", m.vfio_index),
            format!("sys/bus/mdev/devices/{uuid}"),
        ];
        for rel in owned.into_iter().chain(type_dir.map(|d| format!("{d}/devices/{uuid}"))).chain(dir) {
            // Each is present by construction; a missing one only means less to remove.
            if let Ok(entry) = self.nodes.remove(&rel) {
                self.invalidations.push(entry);
            }
        }
        self.faults.retain(|ino, _| self.nodes.get(*ino).is_some());
        Ok(())
    }

    fn set_aggregator(&mut self, uuid: &str, n: u32) -> Result<(), Errno> {
        let m = self.mdevs.get(uuid).ok_or(ENODEV)?;
        let t = self.types.get(&m.type_key).ok_or(ENODEV)?;
        let p = self.parents.get(&t.parent).ok_or(ENODEV)?;
        if n == 0 || n * t.cost > p.capacity {
            return Err(EINVAL);
        }
        let others = self.used(&t.parent) - m.aggregator * t.cost;
        if others + n * t.cost > p.capacity {
            return Err(Errno(DriverShape::of(&p.driver).full_errno));
        }
        if let Some(m) = self.mdevs.get_mut(uuid) {
            m.aggregator = n;
        }
        if let Some(f) = self.migratable.get_mut(uuid).and_then(|m| m.facts.as_mut()) {
            f.aggregator = n;
        }
        Ok(())
    }
}
