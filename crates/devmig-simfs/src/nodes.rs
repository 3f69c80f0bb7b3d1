//! The FUSE-free in-memory tree: directories, symlinks and files by inode number.
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

use devmig_core::tree::TreeSink;

/// An inode number; the root is 1 (FUSE's root id).
pub type Ino = u64;

/// The root's inode number.
pub const ROOT: Ino = 1;

/// What a file does when read or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// Fixed content, read-only.
    Static(Vec<u8>),
    /// `migration_version` of a device node, mdev type or mdev (by its node id).
    MigrationVersion(String),
    /// `available_instances` of an mdev type (`parent/type`).
    AvailableInstances(String),
    /// Write-only `create` of an mdev type (`parent/type`).
    Create(String),
    /// Write-only `remove` of an mdev (uuid).
    Remove(String),
    /// Read-write `aggregator` of an mdev (uuid).
    Aggregator(String),
    /// `uevent`: `Some(content)` reads back (a device's, 0644); `None` is write-only (a bus's,
    /// a driver's or a module's, 0200). A write of a uevent action is taken, anything else is
    /// EINVAL, as kobject_synth_uevent answers (simfs has no netlink listener to tell).
    Uevent(Option<Vec<u8>>),
    /// A bus's `drivers_autoprobe`: "1" or "0" (a write starting with '0' turns it off).
    Autoprobe(bool),
    /// A read-write attribute whose every write the kernel refuses with EINVAL in the states
    /// simfs emulates: an emulated IOMMU group's `type` (it has no default domain to change).
    Refusing(Vec<u8>),
    /// A write-only trigger simfs does not emulate (the mdev bus's `bind`, `unbind` and
    /// `drivers_probe`, a PCI function's `remove` and `rescan`, the PCI bus's `rescan`): every
    /// write answers EOPNOTSUPP (docs/simfs.md lists them).
    Unemulated,
    /// A PCI function's attribute that shows or changes its state (by address).
    Pci(String, PciAttr),
    /// A PCI driver's write-only `bind`, `unbind`, `new_id` or `remove_id` (by driver name).
    PciDriver(String, DriverAttr),
    /// The PCI bus's write-only `drivers_probe`.
    PciProbe,
    /// A numeric flag (`msi_bus`, `broken_parity_status`): shows 0 or 1, takes what kstrtoul does.
    Flag(bool),
    /// `power/control`: "auto" (true) or "on".
    PowerControl(bool),
}

/// The attributes of a PCI function that simfs computes from its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciAttr {
    /// `uevent` (`DRIVER=` while bound).
    Uevent,
    /// `driver_override`.
    DriverOverride,
    /// `enable` (the enable count is above zero).
    Enable,
    /// `config`: the configuration space; writes land at their offset.
    Config,
    /// `sriov_numvfs` of a PF.
    SriovNumvfs,
    /// `sriov_drivers_autoprobe` of a PF.
    SriovAutoprobe,
    /// Write-only `reset`.
    Reset,
    /// An SR-IOV vGPU VF's read-only `nvidia/creatable_vgpu_types`.
    VgpuTypes,
    /// An SR-IOV vGPU VF's `nvidia/current_vgpu_type`.
    VgpuType,
}

/// A PCI driver's write-only attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverAttr {
    /// `bind`.
    Bind,
    /// `unbind`.
    Unbind,
    /// `new_id`.
    NewId,
    /// `remove_id`.
    RemoveId,
}

impl FileKind {
    /// Whether the file can be opened for reading / for writing (else EACCES, as kernfs answers).
    pub fn access(&self) -> (bool, bool) {
        match self {
            FileKind::Static(_) | FileKind::AvailableInstances(_) => (true, false),
            FileKind::MigrationVersion(_)
            | FileKind::Aggregator(_)
            | FileKind::Uevent(Some(_))
            | FileKind::Autoprobe(_)
            | FileKind::Refusing(_)
            | FileKind::Flag(_)
            | FileKind::PowerControl(_) => (true, true),
            FileKind::Pci(_, PciAttr::Reset) => (false, true),
            FileKind::Pci(_, PciAttr::VgpuTypes) => (true, false),
            FileKind::Pci(..) => (true, true),
            FileKind::Create(_)
            | FileKind::Remove(_)
            | FileKind::Uevent(None)
            | FileKind::Unemulated
            | FileKind::PciDriver(..)
            | FileKind::PciProbe => (false, true),
        }
    }
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory: name -> inode.
    Dir(BTreeMap<String, Ino>),
    /// A symlink with its (relative) text.
    Link(PathBuf),
    /// An attribute file.
    File(FileKind),
}

#[derive(Debug, Clone)]
struct Slot {
    node: Node,
    parent: Ino,
    live: bool,
}

/// The tree. Removed nodes keep their slot (marked dead) so stale inode numbers answer ENOENT.
#[derive(Debug, Clone)]
pub struct Nodes {
    slots: Vec<Slot>,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes { slots: vec![Slot { node: Node::Dir(BTreeMap::new()), parent: ROOT, live: true }] }
    }
}

impl Nodes {
    fn slot(&self, ino: Ino) -> Option<&Slot> {
        let i = usize::try_from(ino.checked_sub(1)?).ok()?;
        self.slots.get(i).filter(|s| s.live)
    }

    /// The node at `ino`, if it is live.
    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.slot(ino).map(|s| &s.node)
    }

    /// The parent of `ino` (the root is its own parent).
    pub fn parent(&self, ino: Ino) -> Option<Ino> {
        self.slot(ino).map(|s| s.parent)
    }

    /// The child `name` of directory `dir`.
    pub fn child(&self, dir: Ino, name: &str) -> Option<Ino> {
        match self.get(dir)? {
            Node::Dir(entries) => entries.get(name).copied(),
            _ => None,
        }
    }

    /// Number of live nodes.
    pub fn live(&self) -> usize {
        self.slots.iter().filter(|s| s.live).count()
    }

    fn add(&mut self, dir: Ino, name: &str, node: Node) -> io::Result<Ino> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad name {name:?}")));
        }
        let ino = Ino::try_from(self.slots.len() + 1).map_err(|_| io::Error::other("too many nodes"))?;
        match self.slots.get_mut(usize::try_from(dir - 1).unwrap_or(usize::MAX)).map(|s| &mut s.node) {
            Some(Node::Dir(entries)) => {
                if entries.contains_key(name) {
                    return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} exists")));
                }
                entries.insert(name.to_string(), ino);
            }
            _ => return Err(io::Error::new(io::ErrorKind::NotADirectory, "parent is not a directory")),
        }
        self.slots.push(Slot { node, parent: dir, live: true });
        Ok(ino)
    }

    /// Walks `rel` from the root, following links in every component but (unless `follow_last`) the last.
    pub fn lookup(&self, rel: &str, follow_last: bool) -> Option<Ino> {
        self.walk(ROOT, Path::new(rel), follow_last, 0)
    }

    fn walk(&self, start: Ino, rel: &Path, follow_last: bool, depth: u32) -> Option<Ino> {
        if depth > 32 {
            return None;
        }
        let comps: Vec<Component> = rel.components().collect();
        let mut cur = start;
        for (i, c) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            cur = match c {
                Component::RootDir => ROOT,
                Component::CurDir => cur,
                Component::ParentDir => self.parent(cur)?,
                Component::Normal(n) => {
                    let next = self.child(cur, n.to_str()?)?;
                    match self.get(next)? {
                        Node::Link(target) if !last || follow_last => self.walk(cur, target, true, depth + 1)?,
                        _ => next,
                    }
                }
                Component::Prefix(_) => return None,
            };
        }
        Some(cur)
    }

    /// The path of `ino` from the root (`sys/devices/...`).
    pub fn path_of(&self, mut ino: Ino) -> Option<String> {
        let mut parts = Vec::new();
        while ino != ROOT {
            let parent = self.parent(ino)?;
            let Node::Dir(entries) = self.get(parent)? else { return None };
            parts.push(entries.iter().find(|(_, i)| **i == ino)?.0.clone());
            ino = parent;
        }
        parts.reverse();
        Some(parts.join("/"))
    }

    /// Creates `rel`'s directories as needed; the directory's inode.
    pub fn mkdir_all(&mut self, rel: &str) -> io::Result<Ino> {
        let mut cur = ROOT;
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            cur = match self.child(cur, part) {
                Some(next) => match self.get(next) {
                    Some(Node::Dir(_)) => next,
                    Some(Node::Link(_)) => {
                        self.walk(cur, Path::new(part), true, 0).ok_or_else(|| io::Error::other("dangling link"))?
                    }
                    _ => return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{part} is a file"))),
                },
                None => self.add(cur, part, Node::Dir(BTreeMap::new()))?,
            };
        }
        Ok(cur)
    }

    fn split(rel: &str) -> (&str, &str) {
        rel.rsplit_once('/').unwrap_or(("", rel))
    }

    /// Creates or replaces the file at `rel` (parents created).
    pub fn put_file(&mut self, rel: &str, kind: FileKind) -> io::Result<Ino> {
        let (dir, name) = Self::split(rel);
        let d = self.mkdir_all(dir)?;
        if let Some(existing) = self.child(d, name) {
            let slot = &mut self.slots[usize::try_from(existing - 1).map_err(|_| io::Error::other("ino"))?];
            if !matches!(slot.node, Node::File(_)) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{rel} is not a file")));
            }
            slot.node = Node::File(kind);
            return Ok(existing);
        }
        self.add(d, name, Node::File(kind))
    }

    /// Replaces the kind of the live file at `ino` (a setting a write changed).
    pub fn put_file_at(&mut self, ino: Ino, kind: FileKind) {
        let live = usize::try_from(ino.wrapping_sub(1)).ok().and_then(|i| self.slots.get_mut(i)).filter(|s| s.live);
        if let Some(slot) = live.filter(|s| matches!(s.node, Node::File(_))) {
            slot.node = Node::File(kind);
        }
    }

    /// Creates a symlink at `rel` with text `target`.
    pub fn put_link(&mut self, rel: &str, target: &Path) -> io::Result<Ino> {
        let (dir, name) = Self::split(rel);
        let d = self.mkdir_all(dir)?;
        self.add(d, name, Node::Link(target.to_path_buf()))
    }

    /// Unlinks `rel` (without following a final link) and marks everything under it dead.
    /// Returns the directory it was in and its name (what a kernel cache must forget).
    pub fn remove(&mut self, rel: &str) -> io::Result<(Ino, String)> {
        let ino = self.lookup(rel, false).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, rel.to_string()))?;
        let parent = self.parent(ino).ok_or_else(|| io::Error::other("no parent"))?;
        let mut name = String::new();
        if let Some(Node::Dir(entries)) =
            self.slots.get_mut(usize::try_from(parent - 1).unwrap_or(usize::MAX)).map(|s| &mut s.node)
        {
            if let Some(n) = entries.iter().find(|(_, i)| **i == ino).map(|(n, _)| n.clone()) {
                entries.remove(&n);
                name = n;
            }
        }
        let mut stack = vec![ino];
        while let Some(i) = stack.pop() {
            let Some(slot) = self.slots.get_mut(usize::try_from(i - 1).unwrap_or(usize::MAX)) else { continue };
            slot.live = false;
            if let Node::Dir(entries) = &slot.node {
                stack.extend(entries.values().copied());
            }
        }
        Ok((parent, name))
    }
}

/// Lets core's [`devmig_core::tree::TreeBuilder`] lay the kernel's shapes out into [`Nodes`].
pub struct MemSink<'a>(pub RefCell<&'a mut Nodes>);

impl TreeSink for MemSink<'_> {
    fn mkdir_all(&self, rel: &str) -> io::Result<()> {
        self.0.borrow_mut().mkdir_all(rel).map(|_| ())
    }

    fn write(&self, rel: &str, content: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().put_file(rel, FileKind::Static(content.to_vec())).map(|_| ())
    }

    fn symlink(&self, at: &str, target: &Path) -> io::Result<()> {
        self.0.borrow_mut().put_link(at, target).map(|_| ())
    }

    fn exists(&self, rel: &str) -> bool {
        self.0.borrow().lookup(rel, false).is_some()
    }

    fn resolve(&self, rel: &str) -> io::Result<String> {
        let nodes = self.0.borrow();
        let ino = nodes.lookup(rel, true).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, rel.to_string()))?;
        nodes.path_of(ino).ok_or_else(|| io::Error::other("unreachable node"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_relative_to_their_directory() {
        let mut n = Nodes::default();
        n.put_file("sys/devices/pci0000:00/0000:00:02.0/vendor", FileKind::Static(b"0x8086\n".to_vec())).expect("file");
        n.put_link("sys/bus/pci/devices/0000:00:02.0", Path::new("../../../devices/pci0000:00/0000:00:02.0"))
            .expect("link");
        let v = n.lookup("sys/bus/pci/devices/0000:00:02.0/vendor", true).expect("resolves");
        assert_eq!(n.path_of(v).as_deref(), Some("sys/devices/pci0000:00/0000:00:02.0/vendor"));
        assert!(matches!(
            n.get(n.lookup("sys/bus/pci/devices/0000:00:02.0", false).expect("link")),
            Some(Node::Link(_))
        ));
        n.remove("sys/devices/pci0000:00/0000:00:02.0").expect("rm");
        assert_eq!(n.get(v), None, "stale inode is dead");
        assert_eq!(n.lookup("sys/bus/pci/devices/0000:00:02.0/vendor", true), None, "link now dangles");
    }
}
