//! Writes kernel-shaped sysfs trees into a directory: the same files and
//! relative symlinks the kernel shows, for tests and for the plain-file demo.
//!
//! Plain files accept any write, so a tree built here cannot judge a
//! `migration_version` write the way a driver does; the FUSE emulator can.
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

mod config;
pub use config::{ConfigSpec, SriovCap, config_space, cpu_list, cpu_mask, link_speed_text, reg};

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
    /// NUMA node (-1: the firmware names none).
    pub numa_node: i32,
    /// The CPUs local to the device (`local_cpus`, `local_cpulist`).
    pub local_cpus: &'a [u32],
    /// PCI Express link (generation 1-6, width); None for a conventional PCI function.
    pub link: Option<(u8, u8)>,
    /// This is a PF with this SR-IOV capability.
    pub sriov: Option<SriovCap>,
    /// This is a VF.
    pub is_vf: bool,
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
            numa_node: -1,
            local_cpus: &[0],
            link: Some((3, 4)),
            sriov: None,
            is_vf: false,
        }
    }

    /// What `config` shows of this function.
    pub fn config(&self) -> ConfigSpec {
        ConfigSpec {
            ids: (self.vendor, self.device),
            subsystem: self.subsystem,
            class: self.class,
            revision: self.revision,
            is_vf: self.is_vf,
            bound: self.driver.is_some(),
            link: self.link,
            sriov: self.sriov,
        }
    }

    /// `modalias` without its newline (also the uevent's `MODALIAS`).
    pub fn modalias(&self) -> String {
        format!(
            "pci:v{:08X}d{:08X}sv{:08X}sd{:08X}bc{:02X}sc{:02X}i{:02X}",
            self.vendor,
            self.device,
            self.subsystem.0,
            self.subsystem.1,
            self.class >> 16,
            (self.class >> 8) & 0xff,
            self.class & 0xff
        )
    }

    /// The device's `uevent`, with `DRIVER=` while `driver` is bound.
    pub fn uevent(&self, driver: Option<&str>) -> String {
        let mut out = driver.map(|d| format!("DRIVER={d}\n")).unwrap_or_default();
        out.push_str(&format!(
            "PCI_CLASS={:X}\nPCI_ID={:04X}:{:04X}\nPCI_SUBSYS_ID={:04X}:{:04X}\nPCI_SLOT_NAME={}\nMODALIAS={}\n",
            self.class,
            self.vendor,
            self.device,
            self.subsystem.0,
            self.subsystem.1,
            self.addr,
            self.modalias()
        ));
        out
    }

    /// The device's directory, relative to the root.
    pub fn dir(&self) -> String {
        format!("sys/devices/pci{}:{}/{}", &self.addr[..4], &self.addr[5..7], self.addr)
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

    /// A PCI function under `/sys/devices/pci<domain>:<bus>` with its bus link, the attributes
    /// the kernel shows for it (Linux 6.1, kernel/vm), its driver's and its IOMMU group's links.
    pub fn pci(&self, s: &PciSpec<'_>) -> io::Result<String> {
        let dir = s.dir();
        self.sink.mkdir_all(&dir)?;
        let bound = s.driver.map(|d| d.0);
        let local = s.local_cpus;
        let files: [(&str, String); 19] = [
            ("vendor", format!("0x{:04x}\n", s.vendor)),
            ("device", format!("0x{:04x}\n", s.device)),
            ("subsystem_vendor", format!("0x{:04x}\n", s.subsystem.0)),
            ("subsystem_device", format!("0x{:04x}\n", s.subsystem.1)),
            ("class", format!("0x{:06x}\n", s.class)),
            ("revision", format!("0x{:02x}\n", s.revision)),
            // What pciutils' sysfs backend reads besides config: no BARs, no interrupt.
            ("irq", "0\n".into()),
            ("resource", "0x0000000000000000 0x0000000000000000 0x0000000000000000\n".repeat(13)),
            ("modalias", format!("{}\n", s.modalias())),
            ("uevent", s.uevent(bound)),
            ("driver_override", "(null)\n".into()),
            ("enable", if bound.is_some() { "1\n".into() } else { "0\n".into() }),
            ("numa_node", format!("{}\n", s.numa_node)),
            ("local_cpus", format!("{}\n", cpu_mask(local))),
            ("local_cpulist", format!("{}\n", cpu_list(local))),
            ("msi_bus", "1\n".into()),
            ("broken_parity_status", "0\n".into()),
            ("power_state", "D0\n".into()),
            ("reset_method", "flr\n".into()),
        ];
        for (name, content) in files {
            self.file(&format!("{dir}/{name}"), content)?;
        }
        self.file(&format!("{dir}/config"), config_space(&s.config()))?;
        self.file(&format!("{dir}/power/control"), "on\n")?;
        self.file(&format!("{dir}/power/runtime_status"), "active\n")?;
        // Write-only triggers; a VF has no remove or rescan (pci_dev_hp_attrs_are_visible).
        let triggers: &[&str] = if s.is_vf { &["reset"] } else { &["remove", "rescan", "reset"] };
        for name in triggers {
            self.file(&format!("{dir}/{name}"), "")?;
        }
        if let Some((generation, width)) = s.link {
            for (name, content) in [
                ("current_link_speed", link_speed_text(generation).to_string()),
                ("max_link_speed", link_speed_text(generation).to_string()),
                ("current_link_width", width.to_string()),
                ("max_link_width", width.to_string()),
            ] {
                self.file(&format!("{dir}/{name}"), format!("{content}\n"))?;
            }
        }
        if let Some(v) = s.sriov {
            for (name, content) in [
                ("sriov_totalvfs", v.total.to_string()),
                ("sriov_numvfs", v.num.to_string()),
                ("sriov_offset", v.offset.to_string()),
                ("sriov_stride", v.stride.to_string()),
                ("sriov_vf_device", format!("{:x}", v.vf_device)),
                ("sriov_drivers_autoprobe", "1".into()),
            ] {
                self.file(&format!("{dir}/{name}"), format!("{content}\n"))?;
            }
        }
        self.link(&format!("{dir}/subsystem"), "sys/bus/pci")?;
        self.link(&format!("sys/bus/pci/devices/{}", s.addr), &dir)?;
        self.pci_bus()?;
        if let Some((driver, module, version)) = s.driver {
            let drv = self.pci_driver(driver, module, version)?;
            self.link(&format!("{dir}/driver"), &drv)?;
            if !self.sink.exists(&format!("{drv}/{}", s.addr)) {
                self.link(&format!("{drv}/{}", s.addr), &dir)?;
            }
        }
        if let Some(g) = s.iommu_group {
            self.sink.mkdir_all(&format!("sys/kernel/iommu_groups/{g}/devices"))?;
            self.link(&format!("{dir}/iommu_group"), &format!("sys/kernel/iommu_groups/{g}"))?;
            self.link(&format!("sys/kernel/iommu_groups/{g}/devices/{}", s.addr), &dir)?;
        }
        if let Some(v) = s.migration_version {
            self.file(&format!("{dir}/migration_version"), format!("{v}\n"))?;
        }
        for (k, v) in s.params {
            self.file(&format!("{dir}/{k}"), format!("{v}\n"))?;
        }
        Ok(dir)
    }

    /// The PCI bus's own files (once): `drivers_autoprobe`, `drivers_probe`, `rescan`,
    /// `uevent`, `slots/`.
    pub fn pci_bus(&self) -> io::Result<()> {
        if self.sink.exists("sys/bus/pci/drivers_probe") {
            return Ok(());
        }
        self.sink.mkdir_all("sys/bus/pci/slots")?;
        self.sink.mkdir_all("sys/bus/pci/drivers")?;
        self.file("sys/bus/pci/drivers_autoprobe", "1\n")?;
        for name in ["drivers_probe", "rescan", "uevent"] {
            self.file(&format!("sys/bus/pci/{name}"), "")?;
        }
        Ok(())
    }

    /// A loaded PCI driver (once): its directory with `bind`, `unbind`, `new_id`, `remove_id`,
    /// `uevent` and its `module` link, and the module's `drivers/pci:<driver>` link back.
    pub fn pci_driver(&self, driver: &str, module: &str, version: Option<&str>) -> io::Result<String> {
        let drv = format!("sys/bus/pci/drivers/{driver}");
        if self.sink.exists(&format!("{drv}/module")) {
            return Ok(drv);
        }
        self.pci_bus()?;
        for name in ["bind", "unbind", "new_id", "remove_id", "uevent"] {
            self.file(&format!("{drv}/{name}"), "")?;
        }
        self.module(module, version)?;
        self.link(&format!("{drv}/module"), &format!("sys/module/{module}"))?;
        self.link(&format!("sys/module/{module}/drivers/pci:{driver}"), &drv)?;
        Ok(drv)
    }

    /// Links `vfs` as the enabled VFs of `pf` (`virtfn<i>`, `physfn`); the PF's `sriov_*`
    /// attributes come from its [`PciSpec::sriov`].
    pub fn sriov(&self, pf: &str, vfs: &[&str]) -> io::Result<()> {
        let pf_dir = self.real_dir(&format!("sys/bus/pci/devices/{pf}"))?;
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
        sriov: Some(SriovCap { total: 8, num: 2, offset: 1, stride: 1, vf_device: 0xa824 }),
        ..PciSpec::new("0000:3d:00.0", 0x144d, 0xa824, 0x010802)
    })?;
    let url_a = [("remote_storage_url", "nvme+tcp://storage1.example:4420/nqn.2024-01.example:vol-a")];
    let url_b = [("remote_storage_url", "NVMe+TCP://Storage1.Example:4420/nqn.2024-01.example:vol-a")];
    let url_c = [("remote_storage_url", "nvme+tcp://storage2.example:4420/nqn.2024-01.example:vol-c")];
    b.pci(&PciSpec {
        driver: nvme_driver,
        iommu_group: Some(11),
        params: if newer { &url_b } else { &url_a },
        is_vf: true,
        ..PciSpec::new("0000:3d:00.1", 0x144d, 0xa824, 0x010802)
    })?;
    b.pci(&PciSpec {
        driver: nvme_driver,
        iommu_group: Some(12),
        params: &url_c,
        is_vf: true,
        ..PciSpec::new("0000:3d:00.2", 0x144d, 0xa824, 0x010802)
    })?;
    b.sriov("0000:3d:00.0", &["0000:3d:00.1", "0000:3d:00.2"])?;

    b.pci(&PciSpec {
        driver: Some(("4xxx", "qat_4xxx", Some("1.2.0"))),
        iommu_group: Some(20),
        sriov: Some(SriovCap { total: 16, num: 1, offset: 1, stride: 1, vf_device: 0x4941 }),
        ..PciSpec::new("0000:6b:00.0", 0x8086, 0x4940, 0x0b4000)
    })?;
    let algs_vf = [("crypto_algorithms", if newer { "aes-gcm sha256 chacha20-poly1305" } else { "aes-gcm sha256" })];
    b.pci(&PciSpec {
        driver: Some(("4xxxvf", "qat_4xxxvf", Some(v("1.2.0", "1.2.3")))),
        iommu_group: Some(21),
        params: &algs_vf,
        is_vf: true,
        ..PciSpec::new("0000:6b:00.1", 0x8086, 0x4941, 0x0b4000)
    })?;
    b.sriov("0000:6b:00.0", &["0000:6b:00.1"])?;
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
