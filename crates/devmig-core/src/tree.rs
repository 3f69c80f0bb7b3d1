//! Writes kernel-shaped sysfs trees into a directory: the same files and
//! relative symlinks the kernel shows, for tests and for the plain-file demo.
//!
//! Plain files accept any write, so a tree built here cannot judge a
//! `migration_version` write the way a driver does; the FUSE emulator can.
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// One PCI function to create.
#[derive(Debug, Clone)]
pub struct PciSpec<'a> {
    /// Address `DDDD:BB:DD.F`.
    pub addr: &'a str,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Subsystem vendor and device.
    pub subsystem: (u16, u16),
    /// Class code.
    pub class: u32,
    /// Revision.
    pub revision: u8,
    /// Bound driver and its module (module version optional).
    pub driver: Option<(&'a str, &'a str, Option<&'a str>)>,
    /// IOMMU group.
    pub iommu_group: Option<u32>,
    /// Content of a kernel `migration_version` attribute, if the driver has one.
    pub migration_version: Option<&'a str>,
    /// Extra attributes (vendor configuration such as `remote_storage_url`).
    pub params: &'a [(&'a str, &'a str)],
}

impl<'a> PciSpec<'a> {
    /// A function with ids and defaults elsewhere.
    pub fn new(addr: &'a str, vendor: u16, device: u16, class: u32) -> Self {
        PciSpec {
            addr,
            vendor,
            device,
            subsystem: (vendor, 0),
            class,
            revision: 0,
            driver: None,
            iommu_group: None,
            migration_version: None,
            params: &[],
        }
    }
}

/// Where a [`TreeBuilder`] puts what it lays out: a directory on disk
/// ([`DiskSink`]) or an in-memory tree (the FUSE emulator's). Paths are
/// relative to the sysfs root (`sys/bus/pci/...`).
pub trait TreeSink {
    /// Creates a directory and its parents.
    fn mkdir_all(&self, rel: &str) -> io::Result<()>;
    /// Creates or replaces a file (parents created).
    fn write(&self, rel: &str, content: &[u8]) -> io::Result<()>;
    /// Creates a symlink at `at` whose text is `target` (relative, as the kernel's are).
    fn symlink(&self, at: &str, target: &Path) -> io::Result<()>;
    /// True when something (even a dangling link) is at `rel`.
    fn exists(&self, rel: &str) -> bool;
    /// The real path of `rel` with every link followed, relative to the root.
    fn resolve(&self, rel: &str) -> io::Result<String>;
}

/// A [`TreeSink`] writing files and links under a directory.
#[derive(Debug, Clone)]
pub struct DiskSink {
    root: PathBuf,
}

impl DiskSink {
    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

impl TreeSink for DiskSink {
    fn mkdir_all(&self, rel: &str) -> io::Result<()> {
        fs::create_dir_all(self.p(rel))
    }

    fn write(&self, rel: &str, content: &[u8]) -> io::Result<()> {
        let path = self.p(rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::write(path, content)
    }

    fn symlink(&self, at: &str, target: &Path) -> io::Result<()> {
        let at_path = self.p(at);
        if let Some(dir) = at_path.parent() {
            fs::create_dir_all(dir)?;
        }
        std::os::unix::fs::symlink(target, at_path)
    }

    fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.p(rel)).is_ok()
    }

    fn resolve(&self, rel: &str) -> io::Result<String> {
        let real = fs::canonicalize(self.p(rel))?;
        let base = fs::canonicalize(&self.root)?;
        real.strip_prefix(base)
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{rel} leaves the tree")))
    }
}

/// Lays out kernel-shaped sysfs trees into a [`TreeSink`].
#[derive(Debug, Clone)]
pub struct TreeBuilder<S: TreeSink = DiskSink> {
    sink: S,
}

impl TreeBuilder<DiskSink> {
    /// A builder writing under `root` (which becomes the sysfs root: files go to `root/sys/...`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        TreeBuilder { sink: DiskSink { root: root.into() } }
    }
}

impl<S: TreeSink> TreeBuilder<S> {
    /// A builder writing into `sink`.
    pub fn with_sink(sink: S) -> Self {
        TreeBuilder { sink }
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Writes `rel` with `content`, creating parent directories.
    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> io::Result<()> {
        self.sink.write(rel, content.as_ref())
    }

    /// Creates a relative symlink at `at` pointing to `target` (both relative to the root).
    pub fn link(&self, at: &str, target: &str) -> io::Result<()> {
        let from_dir = Path::new(at).parent().unwrap_or(Path::new(""));
        self.sink.symlink(at, &relative(from_dir, Path::new(target)))
    }

    /// A loaded module with an optional version.
    pub fn module(&self, name: &str, version: Option<&str>) -> io::Result<()> {
        self.sink.mkdir_all(&format!("sys/module/{name}"))?;
        if let Some(v) = version {
            self.file(&format!("sys/module/{name}/version"), format!("{v}\n"))?;
        }
        Ok(())
    }

    /// A PCI function under `/sys/devices/pci0000:00` with its bus link.
    pub fn pci(&self, s: &PciSpec<'_>) -> io::Result<String> {
        let dir = format!("sys/devices/pci{}:{}/{}", &s.addr[..4], &s.addr[5..7], s.addr);
        self.sink.mkdir_all(&dir)?;
        self.file(&format!("{dir}/vendor"), format!("0x{:04x}\n", s.vendor))?;
        self.file(&format!("{dir}/device"), format!("0x{:04x}\n", s.device))?;
        self.file(&format!("{dir}/subsystem_vendor"), format!("0x{:04x}\n", s.subsystem.0))?;
        self.file(&format!("{dir}/subsystem_device"), format!("0x{:04x}\n", s.subsystem.1))?;
        self.file(&format!("{dir}/class"), format!("0x{:06x}\n", s.class))?;
        self.file(&format!("{dir}/revision"), format!("0x{:02x}\n", s.revision))?;
        self.file(&format!("{dir}/config"), config_space(s))?;
        // What pciutils' sysfs backend reads besides config: no BARs, no interrupt.
        self.file(&format!("{dir}/irq"), "0\n")?;
        self.file(&format!("{dir}/resource"), "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".repeat(13))?;
        let modalias = format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}\n",
            s.vendor,
            s.device,
            s.subsystem.0,
            s.subsystem.1,
            s.class >> 16,
            (s.class >> 8) & 0xff,
            s.class & 0xff
        );
        self.file(&format!("{dir}/modalias"), modalias)?;
        self.link(&format!("sys/bus/pci/devices/{}", s.addr), &dir)?;
        if let Some((driver, module, version)) = s.driver {
            let drv = format!("sys/bus/pci/drivers/{driver}");
            self.sink.mkdir_all(&drv)?;
            self.module(module, version)?;
            if !self.sink.exists(&format!("{drv}/module")) {
                self.link(&format!("{drv}/module"), &format!("sys/module/{module}"))?;
            }
            self.link(&format!("{dir}/driver"), &drv)?;
            if !self.sink.exists(&format!("{drv}/{}", s.addr)) {
                self.link(&format!("{drv}/{}", s.addr), &dir)?;
            }
        }
        if let Some(g) = s.iommu_group {
            self.sink.mkdir_all(&format!("sys/kernel/iommu_groups/{g}/devices"))?;
            self.link(&format!("{dir}/iommu_group"), &format!("sys/kernel/iommu_groups/{g}"))?;
        }
        if let Some(v) = s.migration_version {
            self.file(&format!("{dir}/migration_version"), format!("{v}\n"))?;
        }
        for (k, v) in s.params {
            self.file(&format!("{dir}/{k}"), format!("{v}\n"))?;
        }
        Ok(dir)
    }

    /// Makes `vfs` the enabled VFs of `pf` (`sriov_*`, `virtfn<i>`, `physfn`).
    pub fn sriov(&self, pf: &str, total: u32, vfs: &[&str]) -> io::Result<()> {
        let pf_dir = self.real_dir(&format!("sys/bus/pci/devices/{pf}"))?;
        self.file(&format!("{pf_dir}/sriov_totalvfs"), format!("{total}\n"))?;
        self.file(&format!("{pf_dir}/sriov_numvfs"), format!("{}\n", vfs.len()))?;
        for (i, vf) in vfs.iter().enumerate() {
            let vf_dir = self.real_dir(&format!("sys/bus/pci/devices/{vf}"))?;
            self.link(&format!("{pf_dir}/virtfn{i}"), &vf_dir)?;
            self.link(&format!("{vf_dir}/physfn"), &pf_dir)?;
        }
        Ok(())
    }

    /// Registers a PCI function as an mdev parent.
    pub fn mdev_parent_pci(&self, addr: &str) -> io::Result<String> {
        let dir = self.real_dir(&format!("sys/bus/pci/devices/{addr}"))?;
        self.sink.mkdir_all(&format!("{dir}/mdev_supported_types"))?;
        self.link(&format!("sys/class/mdev_bus/{addr}"), &dir)?;
        Ok(dir)
    }

    /// A virtual mdev parent such as mtty's (`/sys/devices/virtual/<class>/<name>`).
    pub fn mdev_parent_virtual(&self, class: &str, name: &str) -> io::Result<String> {
        let dir = format!("sys/devices/virtual/{class}/{name}");
        self.sink.mkdir_all(&format!("{dir}/mdev_supported_types"))?;
        self.link(&format!("sys/class/mdev_bus/{name}"), &dir)?;
        Ok(dir)
    }

    /// An mdev type of `parent` (a name under `/sys/class/mdev_bus`), named by its id.
    pub fn mdev_type(
        &self,
        parent: &str,
        type_id: &str,
        available: u32,
        migration_version: Option<&str>,
    ) -> io::Result<String> {
        let description = format!("{type_id} instance");
        self.mdev_type_with_text(parent, type_id, (type_id, Some(&description)), available, migration_version)
    }

    /// An mdev type with the driver's `name` and `description` (None: the driver shows none).
    pub fn mdev_type_with_text(
        &self,
        parent: &str,
        type_id: &str,
        (name, description): (&str, Option<&str>),
        available: u32,
        migration_version: Option<&str>,
    ) -> io::Result<String> {
        let pdir = self.real_dir(&format!("sys/class/mdev_bus/{parent}"))?;
        let dir = format!("{pdir}/mdev_supported_types/{type_id}");
        self.sink.mkdir_all(&format!("{dir}/devices"))?;
        self.file(&format!("{dir}/name"), format!("{name}\n"))?;
        if let Some(d) = description {
            self.file(&format!("{dir}/description"), format!("{d}\n"))?;
        }
        self.file(&format!("{dir}/device_api"), "vfio-pci\n")?;
        self.file(&format!("{dir}/available_instances"), format!("{available}\n"))?;
        self.file(&format!("{dir}/create"), "")?;
        if let Some(v) = migration_version {
            self.file(&format!("{dir}/migration_version"), format!("{v}\n"))?;
        }
        Ok(dir)
    }

    /// A created mdev of `parent`'s `type_id`.
    pub fn mdev(
        &self,
        uuid: &str,
        parent: &str,
        type_id: &str,
        aggregator: Option<u32>,
        migration_version: Option<&str>,
        params: &[(&str, &str)],
    ) -> io::Result<String> {
        let pdir = self.real_dir(&format!("sys/class/mdev_bus/{parent}"))?;
        let dir = format!("{pdir}/{uuid}");
        let tdir = format!("{pdir}/mdev_supported_types/{type_id}");
        self.sink.mkdir_all(&dir)?;
        self.link(&format!("{dir}/mdev_type"), &tdir)?;
        self.link(&format!("{tdir}/devices/{uuid}"), &dir)?;
        self.link(&format!("sys/bus/mdev/devices/{uuid}"), &dir)?;
        self.file(&format!("{dir}/remove"), "")?;
        if let Some(a) = aggregator {
            self.file(&format!("{dir}/aggregator"), format!("{a}\n"))?;
        }
        if let Some(v) = migration_version {
            self.file(&format!("{dir}/migration_version"), format!("{v}\n"))?;
        }
        for (k, v) in params {
            self.file(&format!("{dir}/{k}"), format!("{v}\n"))?;
        }
        Ok(dir)
    }

    /// The real directory (relative to the root) a link under the root points to.
    fn real_dir(&self, rel: &str) -> io::Result<String> {
        self.sink.resolve(rel)
    }
}

/// The path from directory `from` to `to`, both relative to one root.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<Component> = from.components().collect();
    let t: Vec<Component> = to.components().collect();
    // As kernfs writes links: the common ancestor is sought among the target's parent and its
    // ancestors, so a link to an ancestor goes up through the ancestor's parent ("../../../x").
    let common = f.iter().zip(&t[..t.len().saturating_sub(1)]).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// The first 64 bytes of config space: ids, class and revision where the spec puts them.
fn config_space(s: &PciSpec<'_>) -> Vec<u8> {
    let mut c = vec![0u8; 64];
    c[0..2].copy_from_slice(&s.vendor.to_le_bytes());
    c[2..4].copy_from_slice(&s.device.to_le_bytes());
    c[8] = s.revision;
    c[9..12].copy_from_slice(&s.class.to_le_bytes()[..3]);
    c[44..46].copy_from_slice(&s.subsystem.0.to_le_bytes());
    c[46..48].copy_from_slice(&s.subsystem.1.to_le_bytes());
    c
}

/// Which of the two example hosts to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleHost {
    /// The source host: older drivers.
    A,
    /// The destination host: newer minor driver versions, other mdevs.
    B,
}

/// mdev UUIDs of the example hosts (also those of simfs's example specs, whose tests use them).
pub mod example_uuids {
    /// Host A: a GVTg_V5_4 x2 vGPU (half a GPU).
    pub const A_VGPU: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";
    /// Host A: an mtty-2 instance.
    pub const A_MTTY: &str = "4b20d080-1b54-4048-85b3-a6a62d165c02";
    /// Host A: a QAT SIOV instance.
    pub const A_QAT: &str = "4b20d080-1b54-4048-85b3-a6a62d165c03";
    /// Host B: a GVTg_V5_8 x4 vGPU (also half a GPU).
    pub const B_VGPU_HALF: &str = "9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a01";
    /// Host B: a GVTg_V5_8 x1 vGPU (an eighth).
    pub const B_VGPU_EIGHTH: &str = "9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a02";
    /// Host B: an mtty-1 instance.
    pub const B_MTTY: &str = "9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a03";
}

/// Builds one of the two example hosts: a GVT-g GPU with types and vGPUs,
/// an NVMe PF with two VFs on remote storage, a QAT PF with a VF and a SIOV
/// type, the mtty sample, and an audio function no model knows. No node has
/// a kernel `migration_version` file: versions and decisions come from the
/// vendor models (devmig's userspace adapter).
pub fn example_host<S: TreeSink>(b: &TreeBuilder<S>, host: ExampleHost) -> io::Result<()> {
    use example_uuids::*;
    let newer = host == ExampleHost::B;
    let v = |a: &'static str, bb: &'static str| if newer { bb } else { a };
    let gpu = PciSpec {
        subsystem: (0x8086, 0x2212),
        revision: 4,
        driver: Some(("i915", "i915", Some(v("1.2.0", "1.3.0")))),
        iommu_group: Some(0),
        ..PciSpec::new("0000:00:02.0", 0x8086, 0x591d, 0x030000)
    };
    b.pci(&gpu)?;
    b.mdev_parent_pci("0000:00:02.0")?;
    for (ty, avail) in [("i915-GVTg_V5_1", 1), ("i915-GVTg_V5_2", 2), ("i915-GVTg_V5_4", 4), ("i915-GVTg_V5_8", 8)] {
        b.mdev_type("0000:00:02.0", ty, avail, None)?;
    }
    let audio = PciSpec {
        driver: Some(("snd_hda_intel", "snd_hda_intel", None)),
        iommu_group: Some(1),
        ..PciSpec::new("0000:00:1f.3", 0x8086, 0xa170, 0x040300)
    };
    b.pci(&audio)?;

    let nvme_driver = Some(("nvme", "nvme", Some(v("1.4.0", "1.5.1"))));
    b.pci(&PciSpec {
        driver: nvme_driver,
        iommu_group: Some(10),
        ..PciSpec::new("0000:3d:00.0", 0x144d, 0xa824, 0x010802)
    })?;
    let url_a = [("remote_storage_url", "nvme+tcp://storage1.example:4420/nqn.2024-01.example:vol-a")];
    let url_b = [("remote_storage_url", "NVMe+TCP://Storage1.Example:4420/nqn.2024-01.example:vol-a")];
    let url_c = [("remote_storage_url", "nvme+tcp://storage2.example:4420/nqn.2024-01.example:vol-c")];
    b.pci(&PciSpec {
        driver: nvme_driver,
        iommu_group: Some(11),
        params: if newer { &url_b } else { &url_a },
        ..PciSpec::new("0000:3d:00.1", 0x144d, 0xa824, 0x010802)
    })?;
    b.pci(&PciSpec {
        driver: nvme_driver,
        iommu_group: Some(12),
        params: &url_c,
        ..PciSpec::new("0000:3d:00.2", 0x144d, 0xa824, 0x010802)
    })?;
    b.sriov("0000:3d:00.0", 8, &["0000:3d:00.1", "0000:3d:00.2"])?;

    b.pci(&PciSpec {
        driver: Some(("4xxx", "qat_4xxx", Some("1.2.0"))),
        iommu_group: Some(20),
        ..PciSpec::new("0000:6b:00.0", 0x8086, 0x4940, 0x0b4000)
    })?;
    let algs_vf = [("crypto_algorithms", if newer { "aes-gcm sha256 chacha20-poly1305" } else { "aes-gcm sha256" })];
    b.pci(&PciSpec {
        driver: Some(("4xxxvf", "qat_4xxxvf", Some(v("1.2.0", "1.2.3")))),
        iommu_group: Some(21),
        params: &algs_vf,
        ..PciSpec::new("0000:6b:00.1", 0x8086, 0x4941, 0x0b4000)
    })?;
    b.sriov("0000:6b:00.0", 16, &["0000:6b:00.1"])?;
    b.mdev_parent_pci("0000:6b:00.0")?;
    let qat_type = b.mdev_type("0000:6b:00.0", "qat_4xxx-vqat", 4, None)?;
    b.file(&format!("{qat_type}/crypto_algorithms"), "aes-gcm sha256\n")?;

    b.module("mtty", Some("0.1"))?;
    b.mdev_parent_virtual("mtty", "mtty")?;
    b.mdev_type("mtty", "mtty-1", 24, None)?;
    b.mdev_type("mtty", "mtty-2", 12, None)?;

    if newer {
        b.mdev(B_VGPU_HALF, "0000:00:02.0", "i915-GVTg_V5_8", Some(4), None, &[])?;
        b.mdev(B_VGPU_EIGHTH, "0000:00:02.0", "i915-GVTg_V5_8", Some(1), None, &[])?;
        b.mdev(B_MTTY, "mtty", "mtty-1", None, None, &[])?;
    } else {
        b.mdev(A_VGPU, "0000:00:02.0", "i915-GVTg_V5_4", Some(2), None, &[])?;
        b.mdev(A_MTTY, "mtty", "mtty-2", None, None, &[])?;
        b.mdev(A_QAT, "0000:6b:00.0", "qat_4xxx-vqat", None, None, &[("crypto_algorithms", "aes-gcm sha256")])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_written_the_way_kernfs_writes_them() {
        let rel = |from: &str, to: &str| relative(Path::new(from), Path::new(to)).display().to_string();
        assert_eq!(rel("sys/d/p/u", "sys/d/p/types/t"), "../types/t");
        assert_eq!(rel("sys/d/p", "sys/d/q"), "../q");
        assert_eq!(rel("sys/d", "sys/d/p"), "p");
        // An ancestor: through its parent, as Linux 6.1 shows vfio-dev/vfio0/device.
        assert_eq!(rel("sys/d/p/u/vfio-dev/vfio0", "sys/d/p/u"), "../../../u");
    }
}
