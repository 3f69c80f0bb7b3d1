//! A simulated fleet in one process: seeded host trees laid out on disk by core's
//! `TreeBuilder` (no kernel `migration_version`: versions and decisions come from the vendor
//! models, through the agent's userspace adapter) and one production agent per host, each
//! on its own loopback port, all sharing one sysfs I/O pool, pushing reports to a fleet.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devmig_agent::api::AppState;
use devmig_agent::{Agent, AgentOptions, DeviceRecord, FleetLink, HostReport, Tokens};
use devmig_core::tree::{PciSpec, SriovCap, TreeBuilder};
use devmig_core::{DeviceKind, SysfsIo};
use devmig_vendors::models::{CREATABLE_TYPES, CURRENT_TYPE};
use devmig_vendors::{DeviceFacts, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;

use crate::FleetError;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Hosts.
    pub hosts: usize,
    /// Migratable devices per host (vGPUs, NVMe and QAT VFs, mtty instances), 4..=64; one host
    /// in three also has two ConnectX-7 VFs on mlx5_vfio_pci, another in three an L40S with four
    /// SR-IOV vGPU VFs (two vGPUs, two free VFs offering their type).
    pub devices: usize,
    /// Seed: the same seed lays out the same fleet.
    pub seed: u64,
    /// Host names are `<prefix>-<rack>-<n>` (`sim-r03-0042`), 40 hosts per rack.
    pub prefix: String,
}

/// How many hosts a rack holds in simulated names.
pub const RACK_SIZE: usize = 40;

/// A simulated agent's identity: fixed per host name (a real agent generates its own).
pub fn sim_identity(host: &str) -> String {
    let id: String = host.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).take(60).collect();
    format!("sim-{id}")
}

/// The name of simulated host `i`.
pub fn host_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-r{:02}-{i:04}", i / RACK_SIZE)
}

fn pick<'a, T>(rng: &mut StdRng, weighted: &'a [(u32, T)]) -> &'a T {
    let total: u32 = weighted.iter().map(|w| w.0).sum();
    let mut x = rng.random_range(0..total);
    for (w, v) in weighted {
        if x < *w {
            return v;
        }
        x -= w;
    }
    &weighted[weighted.len() - 1].1
}

fn vf_addr(bus: &str, j: usize) -> String {
    format!("0000:{bus}:{:02x}.{}", (j + 1) / 8, (j + 1) % 8)
}

/// A PF's SR-IOV capability with `num` of its 64 VFs enabled, laid out by [`vf_addr`].
fn sriov_cap(num: usize, vf_device: u16) -> SriovCap {
    SriovCap { total: 64, num: u16::try_from(num).unwrap_or(u16::MAX), offset: 1, stride: 1, vf_device }
}

/// A function's bound driver as `PciSpec` takes it: driver, module, module version.
type BoundDriver<'a> = Option<(&'a str, &'a str, Option<&'a str>)>;

/// Lays out `pf` with SR-IOV on and its VFs (address and parameter files), each a function of
/// the PF's vendor and class with device id and driver `vf`, in IOMMU groups from
/// `first_group` on, then links them as PF and VFs.
fn lay_out_vfs(
    b: &TreeBuilder,
    pf: PciSpec<'_>,
    vf: (u16, BoundDriver<'_>),
    first_group: u32,
    vfs: &[(&str, Vec<(&str, &str)>)],
) -> std::io::Result<()> {
    let (vf_device, driver) = vf;
    b.pci(&PciSpec { sriov: Some(sriov_cap(vfs.len(), vf_device)), ..pf })?;
    for (j, (addr, params)) in vfs.iter().enumerate() {
        b.pci(&PciSpec {
            driver,
            iommu_group: Some(first_group + u32::try_from(j).unwrap_or(0)),
            params,
            is_vf: true,
            ..PciSpec::new(addr, pf.vendor, vf_device, pf.class)
        })?;
    }
    let refs: Vec<&str> = vfs.iter().map(|(addr, _)| *addr).collect();
    b.sriov(pf.addr, &refs)
}

fn uuid(host: usize, dev: usize) -> String {
    format!("{host:08x}-0000-4000-8000-{dev:012x}")
}

/// One simulated host's hardware and drivers, drawn from a seed. The same plan is laid out as
/// a sysfs tree (for agents) or turned straight into the report its agent would push (for
/// load generation at a scale no disk holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// Host index.
    pub index: usize,
    /// GPU device id and GVT-g (i915 module) version.
    pub gpu: (u16, &'static str),
    /// vGPUs: uuid, type, aggregator.
    pub vgpus: Vec<(String, &'static str, u32)>,
    /// NVMe PF device id and driver version.
    pub nvme: (u16, &'static str),
    /// NVMe VFs: address, remote storage URL.
    pub nvme_vfs: Vec<(String, String)>,
    /// QAT driver version.
    pub qat: &'static str,
    /// QAT VFs: address, crypto algorithms.
    pub qat_vfs: Vec<(String, &'static str)>,
    /// mtty module version.
    pub mtty: &'static str,
    /// mtty instances: uuid, type.
    pub mttys: Vec<(String, &'static str)>,
    /// A ConnectX-7 NIC whose VFs are on mlx5_vfio_pci (one host in three).
    pub nic: Option<Nic>,
    /// An L40S with SR-IOV vGPUs (another host in three).
    pub sriov_gpu: Option<SriovGpu>,
}

/// An L40S on the vGPU Manager with SR-IOV on (vGPU 17 and later): each VF is a vGPU once a
/// type number is written to its `nvidia/current_vgpu_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SriovGpu {
    /// The vGPU Manager's version.
    pub manager: &'static str,
    /// VFs: address, vGPU type number (0: none yet; such a VF offers the type in use).
    pub vfs: Vec<(String, u32)>,
}

/// The vGPU type the simulated L40S VFs use, and its name.
const SRIOV_TYPE: (u32, &str) = (1148, "NVIDIA L40S-2Q");

/// A ConnectX-7 PF (mlx5_core, its RDMA device showing firmware and PSID) and its VFs on the
/// kernel's `mlx5_vfio_pci` variant driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// The PF's firmware version (`fw_ver`).
    pub firmware: &'static str,
    /// The board's PSID (`board_id`).
    pub psid: &'static str,
    /// VF addresses.
    pub vfs: Vec<String>,
}

/// Where the NIC's facts are, relative to its PF and, through `physfn`, to each VF.
const NIC_FW: &str = "infiniband/mlx5_0/fw_ver";
const NIC_PSID: &str = "infiniband/mlx5_0/board_id";

impl HostPlan {
    /// Draws host `i` of a fleet with `devices` migratable devices per host.
    pub fn draw(seed: u64, i: usize, devices: usize) -> HostPlan {
        let mut rng = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let rng = &mut rng;
        let quarter = devices / 4;
        let gpu = (
            *pick(rng, &[(8, 0x591d_u16), (1, 0x591b), (1, 0x5917)]),
            *pick(rng, &[(6, "1.2.0"), (3, "1.3.0"), (1, "2.0.0")]),
        );
        let vgpus = (0..quarter.min(8))
            .map(|j| {
                let (ty, aggr) = *pick(rng, &[(3, ("i915-GVTg_V5_8", 1)), (1, ("i915-GVTg_V5_4", 1))]);
                (uuid(i, j), ty, aggr)
            })
            .collect::<Vec<_>>();
        let nvme =
            (*pick(rng, &[(3, 0xa824_u16), (1, 0xa825)]), *pick(rng, &[(5, "1.4.0"), (4, "1.5.1"), (1, "2.0.0")]));
        // Each rack reaches one of four storage clusters; VFs are set up for one of two volumes.
        let nvme_vfs = (0..quarter)
            .map(|j| {
                let url =
                    format!("nvme+tcp://storage{}.example:4420/nqn.2026-01.example:vol-{}", (i / RACK_SIZE) % 4, j % 2);
                (vf_addr("3d", j), url)
            })
            .collect();
        let qat = *pick(rng, &[(5, "1.2.0"), (4, "1.2.3"), (1, "1.3.0")]);
        let qat_vfs = (0..quarter)
            .map(|j| {
                (
                    vf_addr("6b", j),
                    *pick(rng, &[(3, "aes-gcm sha256"), (2, "aes-gcm sha256 chacha20-poly1305"), (1, "sha256")]),
                )
            })
            .collect();
        let mtty = *pick(rng, &[(1, "0.1"), (1, "0.2")]);
        let mttys = (vgpus.len()..devices - 2 * quarter)
            .map(|j| (uuid(i, 100 + j), *pick(rng, &[(3, "mtty-1"), (1, "mtty-2")])))
            .collect();
        // Drawn after the rest, so adding the NIC left every other draw of a seed as it was.
        let nic = (i % 3 == 1).then(|| {
            let firmware = *pick(rng, &[(4, "28.41.1000"), (1, "28.42.1000")]);
            let psid = *pick(rng, &[(9, "MT_0000000838"), (1, "MT_0000000891")]);
            Nic { firmware, psid, vfs: (0..2).map(|j| vf_addr("17", j)).collect() }
        });
        let sriov_gpu = (i % 3 == 2).then(|| {
            let manager = *pick(rng, &[(3, "550.54.16"), (1, "550.90.07")]);
            let vfs = (0..4).map(|j| (vf_addr("41", j), if j < 2 { SRIOV_TYPE.0 } else { 0 })).collect();
            SriovGpu { manager, vfs }
        });
        HostPlan { index: i, gpu, vgpus, nvme, nvme_vfs, qat, qat_vfs, mtty, mttys, nic, sriov_gpu }
    }

    /// Lays the plan out under `root` (files go to `root/sys/...`), kernel-shaped, without any
    /// `migration_version` attribute.
    pub fn lay_out(&self, root: &Path) -> std::io::Result<()> {
        let b = TreeBuilder::new(root);
        b.pci(&PciSpec {
            subsystem: (0x8086, 0x2212),
            driver: Some(("i915", "i915", Some(self.gpu.1))),
            iommu_group: Some(0),
            ..PciSpec::new("0000:00:02.0", 0x8086, self.gpu.0, 0x030000)
        })?;
        b.mdev_parent_pci("0000:00:02.0")?;
        for ty in GVT_TYPES {
            b.mdev_type("0000:00:02.0", ty, 0, None)?;
        }
        for (uuid, ty, aggr) in &self.vgpus {
            b.mdev(uuid, "0000:00:02.0", ty, Some(*aggr), None, &[])?;
        }
        let nvme = Some(("nvme", "nvme", Some(self.nvme.1)));
        let pf = PciSpec {
            driver: nvme,
            iommu_group: Some(10),
            ..PciSpec::new("0000:3d:00.0", 0x144d, self.nvme.0, 0x010802)
        };
        let vfs: Vec<_> =
            self.nvme_vfs.iter().map(|(a, url)| (a.as_str(), vec![("remote_storage_url", url.as_str())])).collect();
        lay_out_vfs(&b, pf, (self.nvme.0, nvme), 100, &vfs)?;
        let pf = PciSpec {
            driver: Some(("4xxx", "qat_4xxx", Some(self.qat))),
            iommu_group: Some(20),
            ..PciSpec::new("0000:6b:00.0", 0x8086, 0x4940, 0x0b4000)
        };
        let vfs: Vec<_> =
            self.qat_vfs.iter().map(|(a, algs)| (a.as_str(), vec![("crypto_algorithms", *algs)])).collect();
        lay_out_vfs(&b, pf, (0x4941, Some(("4xxxvf", "qat_4xxxvf", Some(self.qat)))), 200, &vfs)?;
        if let Some(nic) = &self.nic {
            let params = [(NIC_FW, nic.firmware), (NIC_PSID, nic.psid)];
            let pf = PciSpec {
                driver: Some(("mlx5_core", "mlx5_core", None)),
                iommu_group: Some(30),
                params: &params,
                ..PciSpec::new("0000:17:00.0", 0x15b3, 0x1021, 0x020000)
            };
            let vfs: Vec<_> = nic.vfs.iter().map(|a| (a.as_str(), Vec::new())).collect();
            lay_out_vfs(&b, pf, (0x101e, Some(("mlx5_vfio_pci", "mlx5_vfio_pci", None))), 300, &vfs)?;
        }
        if let Some(g) = &self.sriov_gpu {
            let driver = Some(("nvidia", "nvidia", Some(g.manager)));
            let pf =
                PciSpec { driver, iommu_group: Some(40), ..PciSpec::new("0000:41:00.0", 0x10de, 0x26b9, 0x030200) };
            let free_listing = format!("ID    : vGPU Name\n{:<5} : {}", SRIOV_TYPE.0, SRIOV_TYPE.1);
            let types: Vec<String> = g.vfs.iter().map(|(_, ty)| ty.to_string()).collect();
            let vfs: Vec<_> = g
                .vfs
                .iter()
                .zip(&types)
                .map(|((a, ty), current)| {
                    let listing = if *ty == 0 { free_listing.as_str() } else { "ID    : vGPU Name" };
                    (a.as_str(), vec![(CURRENT_TYPE, current.as_str()), (CREATABLE_TYPES, listing)])
                })
                .collect();
            lay_out_vfs(&b, pf, (0x26b9, driver), 400, &vfs)?;
        }
        b.module("mtty", Some(self.mtty))?;
        b.mdev_parent_virtual("mtty", "mtty")?;
        for ty in MTTY_TYPES {
            b.mdev_type("mtty", ty, 0, None)?;
        }
        for (uuid, ty) in &self.mttys {
            b.mdev(uuid, "mtty", ty, None, None, &[])?;
        }
        Ok(())
    }

    /// The facts of every device the plan's agent would report, with their kinds.
    pub fn facts(&self) -> Vec<(String, DeviceKind, DeviceFacts)> {
        let gpu_id = format!("8086:{:04x}", self.gpu.0);
        let mut out = Vec::new();
        for ty in GVT_TYPES {
            let f = DeviceFacts::mdev_type("0000:00:02.0", &gpu_id, "i915", Some(self.gpu.1), ty);
            out.push((format!("0000:00:02.0/{ty}"), DeviceKind::MdevType, f));
        }
        for (uuid, ty, aggr) in &self.vgpus {
            out.push((
                uuid.clone(),
                DeviceKind::Mdev,
                DeviceFacts::mdev("0000:00:02.0", &gpu_id, "i915", Some(self.gpu.1), ty, *aggr),
            ));
        }
        let nvme_id = format!("144d:{:04x}", self.nvme.0);
        for (addr, url) in &self.nvme_vfs {
            let f = DeviceFacts::pci_function(&nvme_id, true, "nvme", Some(self.nvme.1))
                .with_param("remote_storage_url", url);
            out.push((addr.clone(), DeviceKind::SriovVf, f));
        }
        for (addr, algs) in &self.qat_vfs {
            let f = DeviceFacts::pci_function("8086:4941", true, "4xxxvf", Some(self.qat))
                .with_param("crypto_algorithms", algs);
            out.push((addr.clone(), DeviceKind::SriovVf, f));
        }
        for (nic, addr) in self.nic.iter().flat_map(|n| n.vfs.iter().map(move |a| (n, a))) {
            let f = DeviceFacts::pci_function("15b3:101e", true, "mlx5_vfio_pci", None)
                .with_param("physfn/infiniband/*/fw_ver", nic.firmware)
                .with_param("physfn/infiniband/*/board_id", nic.psid);
            out.push((addr.clone(), DeviceKind::SriovVf, f));
        }
        for (g, (addr, ty)) in self.sriov_gpu.iter().flat_map(|g| g.vfs.iter().map(move |v| (g, v))) {
            if *ty == 0 {
                let type_id = format!("nvidia-{}", SRIOV_TYPE.0);
                let f = DeviceFacts::mdev_type(addr, "10de:26b9", "nvidia", Some(g.manager), &type_id)
                    .with_param(CURRENT_TYPE, "0")
                    .with_param("name", SRIOV_TYPE.1)
                    .with_param("physfn/device", "0x26b9");
                out.push((format!("{addr}/{type_id}"), DeviceKind::MdevType, f));
            } else {
                let f = DeviceFacts::pci_function("10de:26b9", true, "nvidia", Some(g.manager))
                    .with_param(CURRENT_TYPE, &ty.to_string())
                    .with_param("physfn/device", "0x26b9");
                out.push((addr.clone(), DeviceKind::SriovVf, f));
            }
        }
        for ty in MTTY_TYPES {
            out.push((
                format!("mtty/{ty}"),
                DeviceKind::MdevType,
                DeviceFacts::mdev_type("mtty", "", "mtty", Some(self.mtty), ty),
            ));
        }
        for (uuid, ty) in &self.mttys {
            out.push((uuid.clone(), DeviceKind::Mdev, DeviceFacts::mdev("mtty", "", "mtty", Some(self.mtty), ty, 1)));
        }
        out
    }

    /// The report this host's agent would push (every device free).
    pub fn report(&self, registry: &Registry, prefix: &str, url: &str, generation: u64) -> HostReport {
        let mut devices = Vec::new();
        for (id, kind, facts) in self.facts() {
            let Some(model) = registry.model_for_device(&facts) else { continue };
            let (Ok(version), Ok(attributes)) = (model.version(&facts), model.attributes(&facts)) else { continue };
            // Simulated mdev types have no free instance; a VF's vGPU type is free while the VF
            // has none (its type file is a plain file here, which a claim writes).
            let free = kind != DeviceKind::MdevType || facts.params.contains_key(CURRENT_TYPE);
            devices.push(DeviceRecord { id, kind, model: model.name().to_string(), version, attributes, facts, free });
        }
        devices.sort_by(|a, b| a.id.cmp(&b.id));
        let host = host_name(prefix, self.index);
        HostReport { identity: sim_identity(&host), host, url: url.to_string(), generation, devices }
    }
}

/// GVT-g types every simulated GPU offers (with no free instance: simulated hosts cannot create mdevs).
const GVT_TYPES: [&str; 2] = ["i915-GVTg_V5_4", "i915-GVTg_V5_8"];
/// mtty types.
const MTTY_TYPES: [&str; 2] = ["mtty-1", "mtty-2"];

/// One running simulated host.
#[derive(Debug, Clone)]
pub struct SimHost {
    /// Its name.
    pub name: String,
    /// Its agent's URL.
    pub url: String,
    /// Its sysfs root.
    pub root: PathBuf,
    /// Its agent.
    pub agent: Arc<Agent>,
}

/// A running simulated fleet of agents; dropping it stops them and deletes the trees.
#[derive(Debug)]
pub struct SimFleet {
    /// The hosts.
    pub hosts: Vec<SimHost>,
    stop: watch::Sender<bool>,
    dir: Option<tempfile::TempDir>,
}

/// Where the simulated agents report, and what they accept.
#[derive(Debug, Clone)]
pub struct SimLinks {
    /// The fleet's URL (`None`: agents do not report).
    pub fleet_url: Option<String>,
    /// What each agent's report token derives from ([`report_secret`]).
    pub report_secret_base: String,
    /// Tokens the agents accept.
    pub agent_tokens: Arc<Tokens>,
    /// How often agents push unprompted.
    pub interval: Duration,
    /// Serve the agents over HTTPS with this configuration (mTLS when it verifies clients).
    pub agent_tls: Option<Arc<rustls::ServerConfig>>,
    /// The client agents push with (its TLS settings for an https:// fleet).
    pub fleet_client: reqwest::Client,
}

/// The report secret of simulated host `host`: each host has its own, bound to it in the fleet.
pub fn report_secret(base: &str, host: &str) -> String {
    format!("{base}.{host}")
}

/// The fleet's report tokens for the first `hosts` hosts named with `prefix`, each bound to its
/// host, as [`Tokens::from_entries`] takes them.
pub fn report_tokens(
    base: &str,
    prefix: &str,
    hosts: usize,
) -> impl Iterator<Item = (String, devmig_agent::Scope, Option<String>, String)> {
    (0..hosts).map(move |i| {
        let host = host_name(prefix, i);
        (host.clone(), devmig_agent::Scope::Report, Some(host.clone()), report_secret(base, &host))
    })
}

pub use devmig_agent::serving::raise_fd_limit;

impl SimFleet {
    /// Lays out and starts `spec.hosts` agents on the current tokio runtime (multi-threaded).
    pub async fn start(spec: &SimSpec, registry: Registry, links: SimLinks) -> Result<SimFleet, FleetError> {
        if !(4..=64).contains(&spec.devices) {
            return Err(FleetError::BadRequest(format!("--devices {}: must be 4..=64", spec.devices)));
        }
        raise_fd_limit();
        let dir = tempfile::Builder::new()
            .prefix("devmig-sim-fleet-")
            .tempdir()
            .map_err(|e| FleetError::Internal(format!("temp dir: {e}")))?;
        let (stop, stop_rx) = watch::channel(false);
        let io = SysfsIo::with_workers(Duration::from_secs(5), 8);
        let mut hosts = Vec::with_capacity(spec.hosts);
        let client = links.fleet_client.clone();
        for i in 0..spec.hosts {
            let name = host_name(&spec.prefix, i);
            let root = dir.path().join(&name).join("root");
            let plan = HostPlan::draw(spec.seed, i, spec.devices);
            let r = root.clone();
            crate::blocking(move || {
                plan.lay_out(&r).map_err(|e| FleetError::Internal(format!("laying out host {i}: {e}")))
            })
            .await?;
            let options = AgentOptions {
                sysfs_root: root.clone(),
                state_dir: dir.path().join(&name).join("state"),
                timeout: Duration::from_secs(5),
                io_workers: 1,
                shared_io: Some(io.clone()),
            };
            let reg = registry.clone();
            let agent = Arc::new(
                crate::blocking(move || Agent::open(&options, reg).map_err(|e| FleetError::Internal(e.to_string())))
                    .await?,
            );
            let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| FleetError::Internal(format!("binding an agent port: {e}")))?;
            let addr = listener.local_addr().map_err(|e| FleetError::Internal(e.to_string()))?;
            let url = format!("{}://{addr}", if links.agent_tls.is_some() { "https" } else { "http" });
            let tls = links.agent_tls.clone();
            let state = AppState { agent: Arc::clone(&agent), tokens: Arc::clone(&links.agent_tokens) };
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let shutdown = async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                if let Err(e) = devmig_agent::run(listener, state, tls, shutdown).await {
                    tracing::error!(error = %e, "simulated agent stopped");
                }
            });
            if let Some(fleet_url) = &links.fleet_url {
                let link = FleetLink {
                    fleet_url: fleet_url.clone(),
                    token: report_secret(&links.report_secret_base, &name),
                    host: name.clone(),
                    identity: sim_identity(&name),
                    advertise: url.clone(),
                    interval: links.interval,
                    timeout: Duration::from_secs(30),
                    generation_file: None,
                };
                let (a, c, mut rx) = (Arc::clone(&agent), client.clone(), stop_rx.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = link.run(a, c) => {}
                        _ = rx.wait_for(|s| *s) => {}
                    }
                });
            }
            hosts.push(SimHost { name, url, root, agent });
        }
        Ok(SimFleet { hosts, stop, dir: Some(dir) })
    }

    /// Stops every agent and its reporting.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops, and leaves the removal of the hosts' trees (hundreds of thousands of files for
    /// thousands of hosts: a minute of unlinks) to a detached `rm -rf`, so that a process can
    /// exit at once. Falls back to removing them here when `rm` cannot start.
    pub fn stop_and_clean_up_in_background(&mut self) {
        self.stop();
        let Some(dir) = self.dir.take() else { return };
        let path = dir.keep();
        let spawned = std::process::Command::new("rm")
            .arg("-rf")
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_err() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

impl Drop for SimFleet {
    fn drop(&mut self) {
        self.stop();
    }
}
