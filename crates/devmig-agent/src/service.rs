//! The agent's operations, free of HTTP: what the routes call (on blocking threads).
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use devmig_core::AttributesReport;
use devmig_core::{
    CheckReport, Checker, CoreError, Device, DeviceId, FastCheck, Inventory, IoFailure, MatchContext, MatchReport,
    Refusal, SysfsIo, SysfsRoot, VersionReport,
};
use devmig_vendors::Registry;
use devmig_vendors::models::CURRENT_TYPE;
use parking_lot::Mutex;

use crate::claims::{Claim, ClaimState, ClaimStore};
use crate::error::AgentError;
use crate::keyed_locks::{KeyLock, KeyedLocks};
use crate::metrics::Metrics;

/// How long a type node's facts are reused (a driver reload shows within this).
const TYPE_FACTS_TTL: Duration = Duration::from_secs(10);

/// What the agent serves.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where /sys hangs.
    pub sysfs_root: PathBuf,
    /// Where claims.db lives.
    pub state_dir: PathBuf,
    /// Bound on each sysfs operation (and on waiting for a busy device).
    pub timeout: Duration,
    /// sysfs I/O worker threads.
    pub io_workers: usize,
    /// Share this I/O pool instead of starting `io_workers` threads (many agents in one process).
    pub shared_io: Option<SysfsIo>,
}

pub use devmig_api::{ClaimRequest, ClaimTarget};

/// The agent.
#[derive(Debug)]
pub struct Agent {
    checker: Checker,
    store: Mutex<ClaimStore>,
    /// One lock per device for claiming it: check-then-insert is atomic per device, claims of
    /// different devices run in parallel (the database's unique indexes are the last word).
    claim_locks: KeyedLocks,
    device_locks: KeyedLocks,
    /// Facts of mdev type nodes, briefly cached: a type claim needs them for its
    /// dynamic resources, and re-discovering the node costs a dozen sysfs reads.
    type_facts: Mutex<HashMap<String, (Instant, devmig_vendors::DeviceFacts)>>,
    timeout: Duration,
    /// Metrics.
    pub metrics: Metrics,
    /// Signalled whenever a claim starts or ends (the fleet link pushes then).
    pub changes: tokio::sync::Notify,
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A target a claim created: an mdev (its node) or an SR-IOV vGPU VF's type (its type file).
#[derive(Debug, Clone)]
struct CreatedTarget {
    /// The mdev's node, or the VF's `nvidia/current_vgpu_type`.
    file: PathBuf,
    /// True for a VF's type.
    vf: bool,
}

impl CreatedTarget {
    /// Whether it is still there: the mdev's node exists, the VF has a type other than 0.
    fn exists(&self) -> bool {
        if self.vf { std::fs::read_to_string(&self.file).is_ok_and(|t| t.trim() != "0") } else { self.file.exists() }
    }

    /// What undoing it writes, and where: `1` to the mdev's `remove`, `0` to the VF's type.
    fn undo(&self) -> (PathBuf, &'static [u8]) {
        if self.vf { (self.file.clone(), b"0") } else { (self.file.join("remove"), b"1") }
    }
}

impl Agent {
    /// Opens the claim store and reconciles it with the devices present now.
    pub fn open(o: &AgentOptions, registry: Registry) -> Result<Self, AgentError> {
        std::fs::create_dir_all(&o.state_dir)
            .map_err(|e| AgentError::Internal(format!("state dir {}: {e}", o.state_dir.display())))?;
        let io = o.shared_io.clone().unwrap_or_else(|| SysfsIo::with_workers(o.timeout, o.io_workers));
        let agent = Agent {
            checker: Checker::with_io(SysfsRoot::new(&o.sysfs_root), registry, io),
            store: Mutex::new(ClaimStore::open(&o.state_dir)?),
            claim_locks: KeyedLocks::default(),
            device_locks: KeyedLocks::default(),
            type_facts: Mutex::new(HashMap::new()),
            timeout: o.timeout,
            metrics: Metrics::default(),
            changes: tokio::sync::Notify::new(),
        };
        agent.restore()?;
        Ok(agent)
    }

    /// Removes mdevs a claim was creating when the agent died (no claim holds them), and marks
    /// active claims whose device vanished as orphaned (reported, never dropped).
    fn restore(&self) -> Result<(), AgentError> {
        let pending = self.store.lock().pending_mdevs()?;
        for uuid in pending {
            let claimed = self.store.lock().active_on_device(&uuid)?.is_some();
            let target = self.created_target(&uuid);
            let (node, probe) = (target.file.clone(), target.clone());
            // Through the I/O pool: a hung sysfs costs one timeout here (then removal is tried).
            let exists = self.checker.io().run_on(&node, move || probe.exists()).unwrap_or(true);
            if claimed || !exists {
                self.store.lock().settle_mdev(&uuid)?;
            } else if let Some(why) = self.remove_mdev(&uuid) {
                tracing::warn!(mdev = %uuid, why, "an mdev created for a claim the agent never stored is still there");
            } else {
                tracing::warn!(mdev = %uuid, "removed an mdev created for a claim the agent never stored (it died)");
            }
        }
        let store = self.store.lock();
        for c in store.current()?.into_iter().filter(|c| c.state == ClaimState::Active) {
            let gone = match c.device.parse::<DeviceId>() {
                Ok(id) => matches!(self.checker.device(&id), Err(CoreError::DeviceNotFound { .. })),
                Err(_) => true,
            };
            if gone {
                store.finish(&c.id, ClaimState::Orphaned, Some("the device vanished while the agent was down"))?;
                tracing::warn!(claim = %c.id, device = %c.device, "claim orphaned: device vanished");
            }
        }
        self.metrics.set_claims(&store.counts()?);
        Ok(())
    }

    /// The checker.
    pub fn checker(&self) -> &Checker {
        &self.checker
    }

    /// Runs `f` holding `device`'s write lock, waiting at most the timeout for it.
    fn with_device<R>(&self, device: &str, f: impl FnOnce() -> R) -> Result<R, AgentError> {
        let entry = self.device_locks.get(device);
        let _held = entry
            .mutex()
            .try_lock_for(self.timeout)
            .ok_or_else(|| AgentError::Timeout(format!("device {device} stayed busy for {:?}", self.timeout)))?;
        Ok(f())
    }

    /// Every device.
    pub fn devices(&self) -> Result<Inventory, AgentError> {
        Ok(self.checker.inventory()?)
    }

    /// One device.
    pub fn device(&self, id: &str) -> Result<Device, AgentError> {
        Ok(self.checker.device(&id.parse()?)?)
    }

    /// A device's version.
    pub fn version(&self, id: &str) -> Result<VersionReport, AgentError> {
        Ok(self.checker.version(&id.parse()?)?)
    }

    /// A device's step-a attributes.
    pub fn attributes(&self, id: &str) -> Result<AttributesReport, AgentError> {
        Ok(self.checker.attributes(&id.parse()?)?)
    }

    /// Step b of `version` on `id` (writes are serialised per device).
    pub fn check(&self, id: &str, version: &str) -> Result<CheckReport, AgentError> {
        let target: DeviceId = id.parse()?;
        devmig_core::validate_version(version)?;
        let started = Instant::now();
        let report = self.with_device(&target.to_string(), || self.checker.check_version(version, &target))??;
        self.metrics.observe_check(&report, started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// [`Agent::check`] for async callers: the kernel exchange, awaited on the I/O pool with no
    /// thread blocked. [`FastCheck::Untried`] when the device is busy or nothing was written
    /// (then call [`Agent::check`]); [`FastCheck::Refused`] when the target said no (then call
    /// [`Agent::check_refused`], which adds the model's reasons without writing again).
    pub async fn check_fast(&self, id: &str, version: &str) -> Result<FastCheck, AgentError> {
        let target: DeviceId = id.parse()?;
        devmig_core::validate_version(version)?;
        let entry = self.device_locks.get(&target.to_string());
        let Some(_held) = entry.mutex().try_lock_arc() else { return Ok(FastCheck::Untried) };
        let started = Instant::now();
        let fast = self.checker.check_version_fast(version, &target).await?;
        if let FastCheck::Settled(report) = &fast {
            self.metrics.observe_check(report, started.elapsed().as_secs_f64());
        }
        Ok(fast)
    }

    /// The report of a check whose write the target refused: discovery and the model's
    /// reasons, no second write.
    pub fn check_refused(&self, id: &str, refusal: &Refusal) -> Result<CheckReport, AgentError> {
        let target: DeviceId = id.parse()?;
        let started = Instant::now();
        let report = self.checker.check_version_refused(refusal, &target)?;
        self.metrics.observe_check(&report, started.elapsed().as_secs_f64());
        Ok(report)
    }

    /// Adds every vendor rule to a report (what `explain` shows): no write.
    pub fn with_rules(&self, report: CheckReport, id: &str) -> Result<CheckReport, AgentError> {
        Ok(self.checker.with_rules(report, &id.parse()?)?)
    }

    /// Local targets passing step a, then step b: each write under the device's lock, claimed
    /// devices listed as such and not written to.
    pub fn match_version(&self, version: &str) -> Result<MatchReport, AgentError> {
        let claimed = self.claimed_devices()?;
        let is_claimed = |id: &DeviceId| claimed.contains(&id.to_string());
        let exclusive = |id: &DeviceId, run: &mut dyn FnMut() -> CheckReport| {
            let entry = self.device_locks.get(&id.to_string());
            let _held = entry.mutex().try_lock_for(self.timeout)?;
            Some(run())
        };
        let cx = MatchContext { claimed: &is_claimed, exclusive: &exclusive };
        Ok(self.checker.match_version_in(version, &cx)?)
    }

    /// The devices active claims hold.
    pub fn claimed_devices(&self) -> Result<std::collections::HashSet<String>, AgentError> {
        Ok(self.claims()?.into_iter().filter(|c| c.state == ClaimState::Active).map(|c| c.device).collect())
    }

    /// Current claims (active and orphaned).
    pub fn claims(&self) -> Result<Vec<Claim>, AgentError> {
        Ok(self.store.lock().current()?)
    }

    /// Creates (or, for a known migration id, returns) a claim. `true` when created.
    pub fn claim(&self, req: &ClaimRequest, who: &str) -> Result<(Claim, bool), AgentError> {
        // The migration id and the ttl were validated when the request was built or decoded.
        devmig_core::validate_version(&req.source_version)?;
        let request = match &req.target {
            ClaimTarget::Device(d) => format!("device:{}", d.parse::<DeviceId>()?),
            ClaimTarget::Type(t) => match t.parse::<DeviceId>()? {
                id @ DeviceId::MdevType { .. } => format!("type:{id}"),
                _ => return Err(AgentError::BadRequest(format!("{t} is not PARENT/TYPE-ID"))),
            },
            ClaimTarget::Any => "any".to_string(),
        };
        self.expire_due(now())?;
        if let Some(existing) = self.idempotent(req.migration_id.as_str(), &request, &req.source_version)? {
            return Ok((existing, false));
        }
        let t = now();
        let claim = |device: String, created_mdev: bool| Claim {
            id: uuid::Uuid::new_v4().to_string(),
            migration_id: req.migration_id.to_string(),
            device,
            created_mdev,
            source_version: req.source_version.clone(),
            request: request.clone(),
            state: ClaimState::Active,
            created_at: t,
            expires_at: t.saturating_add(i64::try_from(req.ttl_seconds.seconds()).unwrap_or(i64::MAX)),
            note: None,
        };
        let (c, created) = match &req.target {
            ClaimTarget::Device(d) => {
                let key = d.parse::<DeviceId>()?.to_string();
                let lock = self.claim_lock(&key);
                let _held = lock.mutex().lock();
                self.verify_unclaimed(&key, &req.source_version)?;
                self.insert(claim(key, false))?
            }
            ClaimTarget::Type(t) => self.insert(claim(self.create_target(t, &req.source_version)?, true))?,
            ClaimTarget::Any => self.claim_any(&req.source_version, |device| claim(device, false))?,
        };
        if created {
            tracing::info!(who, claim = %c.id, migration = %c.migration_id, device = %c.device, "claimed");
        }
        Ok((c, created))
    }

    /// The active claim of `migration_id` when it asked for the same thing; a conflict when it asked for another.
    fn idempotent(&self, migration_id: &str, request: &str, version: &str) -> Result<Option<Claim>, AgentError> {
        match self.store.lock().active_for_migration(migration_id)? {
            Some(existing) if existing.request == request && existing.source_version == version => Ok(Some(existing)),
            Some(existing) => Err(AgentError::Conflict {
                code: "migration_id_conflict",
                detail: format!(
                    "migration {migration_id} already holds claim {} for {}",
                    existing.id, existing.request
                ),
            }),
            None => Ok(None),
        }
    }

    fn claim_lock(&self, device: &str) -> KeyLock<'_> {
        self.claim_locks.get(device)
    }

    /// Per-device state the agent holds now (locks in use, devices the I/O pool tracks):
    /// bounded by the devices in use, not by every id ever named.
    pub fn tracked_devices(&self) -> usize {
        self.device_locks.len() + self.claim_locks.len() + self.checker.io().tracked_devices()
    }

    /// Devices (paths under the sysfs root) with a sysfs operation stuck in the kernel: they
    /// answer `error` at once until it returns.
    pub fn stuck_devices(&self) -> Vec<String> {
        let root = self.checker.root().path().to_path_buf();
        self.checker
            .io()
            .stuck_devices()
            .into_iter()
            .map(|p| p.strip_prefix(&root).map_or_else(|_| p.display().to_string(), |r| format!("/{}", r.display())))
            .collect()
    }

    /// The Prometheus text, with the gauges read now.
    pub fn metrics_text(&self) -> String {
        let io = self.checker.io();
        self.metrics.set_stuck(io.stuck_devices().len(), io.stuck());
        self.metrics.render()
    }

    /// Inserts an active claim. When a concurrent claim won the race (a unique index said no),
    /// answers as that claim dictates and removes an mdev this claim created.
    fn insert(&self, claim: Claim) -> Result<(Claim, bool), AgentError> {
        let inserted = self.store.lock().insert(&claim);
        match inserted {
            Ok(()) => {
                self.metrics.claim_moved(None, ClaimState::Active);
                self.changes.notify_one();
                Ok((claim, true))
            }
            Err(e) => {
                if claim.created_mdev {
                    self.remove_mdev(&claim.device);
                }
                let constraint = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation);
                if !constraint {
                    return Err(e.into());
                }
                if let Some(won) = self.idempotent(&claim.migration_id, &claim.request, &claim.source_version)? {
                    return Ok((won, false));
                }
                Err(AgentError::Conflict {
                    code: "target_claimed",
                    detail: format!("{} was claimed concurrently", claim.device),
                })
            }
        }
    }

    /// Fails unless `key` (a canonical device id) is unclaimed and accepts `version` (step b).
    fn verify_unclaimed(&self, key: &str, version: &str) -> Result<(), AgentError> {
        if let Some(c) = self.store.lock().active_on_device(key)? {
            return Err(AgentError::Conflict {
                code: "target_claimed",
                detail: format!("{key} is held by claim {} (migration {})", c.id, c.migration_id),
            });
        }
        let report = self.check(key, version)?;
        match report.verdict {
            v if v.is_compatible() => Ok(()),
            devmig_core::Verdict::Error => Err(AgentError::Timeout(format!(
                "could not decide on {key}: {}",
                report.reasons.first().map_or("", |r| r.message.as_str())
            ))),
            _ => Err(AgentError::Rejected(Box::new(report))),
        }
    }

    /// Claims the first unclaimed local device (not a type) that step b accepted.
    fn claim_any(&self, version: &str, claim: impl Fn(String) -> Claim) -> Result<(Claim, bool), AgentError> {
        let m = self.match_version(version)?;
        let mut candidates = 0;
        for c in m.accepted() {
            if matches!(c.device.parse::<DeviceId>(), Ok(DeviceId::MdevType { .. }) | Err(_)) {
                continue;
            }
            candidates += 1;
            let lock = self.claim_lock(&c.device);
            let _held = lock.mutex().lock();
            if self.store.lock().active_on_device(&c.device)?.is_some() {
                continue;
            }
            match self.insert(claim(c.device.clone())) {
                Err(AgentError::Conflict { code: "target_claimed", .. }) => continue,
                other => return other,
            }
        }
        Err(AgentError::Conflict {
            code: "no_free_target",
            detail: format!("{candidates} local devices accept the source and all are claimed"),
        })
    }

    /// Creates an mdev of type `t` for `version`, carrying the source's per-instance settings;
    /// for a type target of an SR-IOV vGPU VF, gives the VF that type.
    fn create_target(&self, t: &str, version: &str) -> Result<String, AgentError> {
        let ty: DeviceId = t.parse()?;
        let report = self.check(&ty.to_string(), version)?;
        if !report.verdict.is_compatible() {
            return Err(AgentError::Rejected(Box::new(report)));
        }
        // Through the I/O pool: telling a VF's type from an mdev type stats sysfs files.
        let (root, probe) = (self.checker.root().clone(), ty.clone());
        let vf_file = self
            .checker
            .io()
            .run_on(&root.join(ty.node_path()), move || devmig_core::vf_vgpu::type_file(&root, &probe))
            .map_err(|f| sysfs_error("looking at the type target", f))?;
        if let Some(file) = vf_file {
            return self.set_vf_type(&ty, &file, version);
        }
        let facts = self.type_facts(&ty)?;
        let settings = self.checker.registry().dynamic_resources(version, &facts).map_err(CoreError::Vendor)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let root = self.checker.root();
        let io = self.checker.io();
        // Written ahead: should the agent die before the claim is stored, the next start removes it.
        self.store.lock().intend_mdev(&uuid, now())?;
        if let Err(f) = io.write(&root.join(ty.node_path()).join("create"), uuid.as_bytes()) {
            // A create that timed out may still happen: leave the row for the next start then.
            if !matches!(f, IoFailure::Timeout { .. }) {
                self.store.lock().settle_mdev(&uuid)?;
            }
            return Err(match f.errno() {
                // The mdev core answers EUSERS; drivers that count instances themselves fail
                // their probe, mtty with ENOSPC (Linux 6.1).
                Some(libc::EUSERS | libc::ENOSPC) => {
                    AgentError::Conflict { code: "no_free_instance", detail: format!("{ty} has no free instance") }
                }
                _ => sysfs_error("creating the target mdev", f),
            });
        }
        let mdev = DeviceId::Mdev(uuid.clone());
        for (attr, value) in &settings {
            if let Err(f) = io.write(&root.join(mdev.node_path()).join(attr), value.as_bytes()) {
                self.remove_mdev(&uuid);
                return Err(match f.errno() {
                    Some(libc::EUSERS | libc::ENOSPC) => AgentError::Conflict {
                        code: "no_free_instance",
                        detail: format!("{ty} cannot hold {attr}={value}"),
                    },
                    _ => sysfs_error(&format!("setting {attr} on the new mdev"), f),
                });
            }
        }
        self.verify_created(&uuid, version)?;
        tracing::info!(mdev = %uuid, r#type = %ty, ?settings, "created target mdev");
        Ok(uuid)
    }

    /// Checks a target a claim just created (an mdev, or a VF given a type) as it now is; one
    /// that fails the check, or cannot be checked, is undone.
    fn verify_created(&self, key: &str, version: &str) -> Result<(), AgentError> {
        let report = match self.check(key, version) {
            Ok(r) => r,
            Err(e) => {
                self.remove_mdev(key);
                return Err(e);
            }
        };
        if !report.verdict.is_compatible() {
            self.remove_mdev(key);
            return Err(AgentError::Rejected(Box::new(report)));
        }
        Ok(())
    }

    /// Writes the type number of `ty` (`<VF>/nvidia-<n>`) to the VF's `file`, then checks the
    /// VF as it now is; the VF's address is the claimed device.
    fn set_vf_type(&self, ty: &DeviceId, file: &std::path::Path, version: &str) -> Result<String, AgentError> {
        let DeviceId::MdevType { parent: vf, type_id } = ty else {
            return Err(AgentError::BadRequest(format!("{ty} is not VF/nvidia-<number>")));
        };
        let n = devmig_core::vf_vgpu::type_number(type_id)
            .ok_or_else(|| AgentError::BadRequest(format!("{ty} is not VF/nvidia-<number>")))?;
        // Written ahead: should the agent die before the claim is stored, the next start clears it.
        // A row for this VF already there is another claim giving it a type right now.
        if let Err(e) = self.store.lock().intend_mdev(vf, now()) {
            let busy = matches!(&e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation);
            return Err(if busy {
                AgentError::Conflict {
                    code: "no_free_instance",
                    detail: format!("{vf} is being given a vGPU type for another claim"),
                }
            } else {
                e.into()
            });
        }
        if let Err(f) = self.checker.io().write(file, n.to_string().as_bytes()) {
            if !matches!(f, IoFailure::Timeout { .. }) {
                self.store.lock().settle_mdev(vf)?;
            }
            return Err(match f.errno() {
                // The vGPU Manager: EPERM when the VF already has a type; the RFC driver: EINVAL
                // for another type than the GPU's, ENOSPC when the type's instances ran out.
                Some(libc::EPERM | libc::EINVAL | libc::ENOSPC) => AgentError::Conflict {
                    code: "no_free_instance",
                    detail: format!("{vf} cannot take vGPU type {n} now ({f})"),
                },
                _ => sysfs_error("setting the VF's vGPU type", f),
            });
        }
        self.verify_created(vf, version)?;
        tracing::info!(vf = %vf, r#type = n, "set the VF's vGPU type");
        Ok(vf.clone())
    }

    /// A target a claim created, by its key in the pending table: a VF's address (its type
    /// file) or an mdev's UUID (its node).
    fn created_target(&self, key: &str) -> CreatedTarget {
        let root = self.checker.root();
        match key.parse::<DeviceId>() {
            Ok(id @ DeviceId::Pci(_)) => CreatedTarget { file: root.join(id.node_path()).join(CURRENT_TYPE), vf: true },
            _ => CreatedTarget { file: root.join(DeviceId::Mdev(key.to_string()).node_path()), vf: false },
        }
    }

    /// The facts of a type node, from a cache younger than [`TYPE_FACTS_TTL`] or from sysfs.
    fn type_facts(&self, ty: &DeviceId) -> Result<devmig_vendors::DeviceFacts, AgentError> {
        let key = ty.to_string();
        if let Some((at, facts)) = self.type_facts.lock().get(&key) {
            if at.elapsed() < TYPE_FACTS_TTL {
                return Ok(facts.clone());
            }
        }
        let facts = self.checker.device(ty)?.facts.ok_or(CoreError::Vendor(devmig_vendors::VendorError::NoModel))?;
        self.type_facts.lock().insert(key, (Instant::now(), facts.clone()));
        Ok(facts)
    }

    /// Removes an mdev the agent created (clears the type it gave an SR-IOV vGPU VF); failures
    /// are logged and returned as a note.
    fn remove_mdev(&self, uuid: &str) -> Option<String> {
        let (path, undo) = self.created_target(uuid).undo();
        match self.checker.io().write(&path, undo) {
            Ok(()) => {
                if let Err(e) = self.store.lock().settle_mdev(uuid) {
                    tracing::warn!(mdev = uuid, error = %e, "could not settle the removed mdev");
                }
                None
            }
            Err(f) => {
                tracing::warn!(mdev = uuid, failure = %f, "could not remove the claim's mdev");
                Some(format!("removing {uuid} (the claim's target) failed: {f}"))
            }
        }
    }

    /// Releases a claim (removing an mdev it created). Releasing twice returns the claim as it is.
    pub fn release(&self, id: &str, who: &str) -> Result<Claim, AgentError> {
        let claim = self.store.lock().get(id)?.ok_or_else(|| AgentError::ClaimNotFound(id.to_string()))?;
        if claim.state == ClaimState::Active && self.finish(&claim, ClaimState::Released)? {
            tracing::info!(who, claim = id, device = %claim.device, "released");
        }
        self.store.lock().get(id)?.ok_or_else(|| AgentError::ClaimNotFound(id.to_string()))
    }

    /// Ends an active claim because its migration used the device: the device stays (an mdev the
    /// claim created is the VM's now). Completing a claim that is no longer active changes
    /// nothing and answers it as it is.
    pub fn complete(&self, id: &str, who: &str) -> Result<Claim, AgentError> {
        let claim = self.store.lock().get(id)?.ok_or_else(|| AgentError::ClaimNotFound(id.to_string()))?;
        if claim.state == ClaimState::Active && self.store.lock().finish(&claim.id, ClaimState::Completed, None)? {
            self.metrics.claim_moved(Some(ClaimState::Active), ClaimState::Completed);
            self.changes.notify_one();
            tracing::info!(who, claim = id, device = %claim.device, "completed: the device is the VM's");
        }
        self.store.lock().get(id)?.ok_or_else(|| AgentError::ClaimNotFound(id.to_string()))
    }

    /// Moves an active claim to `state`; only the caller that wins the transition removes its
    /// mdev (and notes a failure to). False when another caller had already moved it.
    fn finish(&self, claim: &Claim, state: ClaimState) -> Result<bool, AgentError> {
        if !self.store.lock().finish(&claim.id, state, None)? {
            return Ok(false);
        }
        self.metrics.claim_moved(Some(ClaimState::Active), state);
        self.changes.notify_one();
        if claim.created_mdev {
            if let Some(note) = self.remove_mdev(&claim.device) {
                self.store.lock().annotate(&claim.id, &note)?;
            }
        }
        Ok(true)
    }

    /// Expires claims whose ttl passed; returns how many.
    pub fn expire(&self) -> Result<usize, AgentError> {
        self.expire_due(now())
    }

    fn expire_due(&self, at: i64) -> Result<usize, AgentError> {
        let due = self.store.lock().due(at)?;
        let mut n = 0;
        for c in &due {
            if self.finish(c, ClaimState::Expired)? {
                tracing::info!(claim = %c.id, device = %c.device, "expired");
                n += 1;
            }
        }
        Ok(n)
    }
}

fn sysfs_error(what: &str, f: IoFailure) -> AgentError {
    match f {
        IoFailure::Timeout { .. } => AgentError::Timeout(format!("{what}: {f}")),
        _ => AgentError::Internal(format!("{what}: {f}")),
    }
}
