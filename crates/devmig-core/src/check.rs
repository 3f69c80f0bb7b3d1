//! The checker: step b of the proposal, against the kernel or the vendor model.
use std::time::Duration;

use devmig_vendors::{Attributes, Registry, VendorError};
use serde::{Deserialize, Serialize};

use crate::device::{Device, MigrationSupport};
use crate::discovery::{discover, discover_one};
use crate::errno::is_transient;
use crate::protocol::{ReadFailure, read_version, write_version};
use crate::verdict::{Reason, Side};
use crate::{
    CheckReport, CoreError, DeviceId, Inventory, IoFailure, MIGRATION_VERSION, SysfsIo, SysfsRoot, Verdict,
    validate_version,
};

/// Where a version string, or a decision, came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provenance {
    /// The kernel's `migration_version` attribute.
    Kernel,
    /// devmig's vendor model (the userspace adapter), because the kernel lacks the attribute.
    Model,
}

/// A device's version string, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReport {
    /// The device and its version (absent on failure).
    #[serde(flatten)]
    pub side: Side,
    /// Why there is no version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// True when the failure says nothing definitive (timeout, transient errno).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

/// The typed step-a attributes of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributesReport {
    /// The device.
    pub device: String,
    /// The model that derived them.
    pub model: String,
    /// The attributes.
    pub attributes: Attributes,
}

/// Runs discovery and the protocol under one root, with one model registry and one I/O pool.
#[derive(Debug, Clone)]
pub struct Checker {
    root: SysfsRoot,
    io: SysfsIo,
    registry: Registry,
}

impl Checker {
    /// A checker bounding every sysfs operation by `timeout`.
    pub fn new(root: SysfsRoot, registry: Registry, timeout: Duration) -> Self {
        Self::with_io(root, registry, SysfsIo::new(timeout))
    }

    /// A checker on a given I/O pool (a server sizes it for its concurrency).
    pub fn with_io(root: SysfsRoot, registry: Registry, io: SysfsIo) -> Self {
        Checker { root, io, registry }
    }

    /// The sysfs root.
    pub fn root(&self) -> &SysfsRoot {
        &self.root
    }

    /// The model registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The I/O pool.
    pub fn io(&self) -> &SysfsIo {
        &self.io
    }

    /// Every device under the root.
    pub fn inventory(&self) -> Result<Inventory, CoreError> {
        discover(&self.root, &self.io, &self.registry)
    }

    /// One device.
    pub fn device(&self, id: &DeviceId) -> Result<Device, CoreError> {
        discover_one(&self.root, &self.io, &self.registry, id)
    }

    /// The version string of `id`: read from the kernel, or computed by the model.
    pub fn version(&self, id: &DeviceId) -> Result<VersionReport, CoreError> {
        let dev = self.device(id)?;
        Ok(self.version_of(&dev))
    }

    pub(crate) fn version_of(&self, dev: &Device) -> VersionReport {
        let mut side = Side { device: Some(dev.id.to_string()), model: dev.migration.model.clone(), ..Side::default() };
        let fail =
            |side: Side, reason: Reason, transient: bool| VersionReport { side, reason: Some(reason), transient };
        match dev.migration.support {
            MigrationSupport::Kernel => {
                side.source = Some(Provenance::Kernel);
                let attr = self.attr_path(&dev.id);
                match read_version(&self.io, &attr) {
                    Ok(v) => {
                        side.version = Some(v);
                        VersionReport { side, reason: None, transient: false }
                    }
                    Err(ReadFailure::Io(f)) => {
                        let (code, transient) = io_code(FailedOn::SourceRead, f);
                        fail(side, Reason::io(code, "reading migration_version", f), transient)
                    }
                    Err(ReadFailure::Invalid(why)) => fail(
                        side,
                        Reason::new(
                            "source_version_invalid",
                            format!("the driver returned an unusable version: {why}"),
                        ),
                        false,
                    ),
                }
            }
            MigrationSupport::Model => {
                side.source = Some(Provenance::Model);
                let version = dev.facts.as_ref().ok_or(VendorError::NoModel).and_then(|f| self.registry.version(f));
                match version {
                    Ok(v) => {
                        side.version = Some(v);
                        VersionReport { side, reason: None, transient: false }
                    }
                    Err(e) => fail(side, Reason::new("source_unsupported", e.to_string()), false),
                }
            }
            MigrationSupport::None => {
                let why =
                    dev.migration.detail.clone().unwrap_or_else(|| "the device does not support migration".into());
                fail(side, Reason::new("source_unsupported", why), false)
            }
            MigrationSupport::Unknown => {
                let why = dev.migration.detail.clone().unwrap_or_else(|| "discovery did not finish".into());
                fail(side, Reason::new("discovery_incomplete", why), true)
            }
        }
    }

    /// Reads the source's version and has the target judge it.
    pub fn check(&self, source: &DeviceId, target: &DeviceId) -> Result<CheckReport, CoreError> {
        if let (DeviceId::MdevType { type_id: a, .. }, DeviceId::MdevType { type_id: b, .. }) = (source, target) {
            if a != b {
                let side = |id: &DeviceId| Side { device: Some(id.to_string()), ..Side::default() };
                let why = format!("type nodes are only comparable within one type ({a} vs {b})");
                return Ok(CheckReport::new(side(source), side(target)).incompatible(Reason::new("type_mismatch", why)));
            }
        }
        if let Some(report) = self.kernel_fast_path(FastSource::Device(source), target) {
            return Ok(report);
        }
        let src = self.device(source)?;
        let dst = self.device(target)?;
        let read = self.version_of(&src);
        let Some(version) = read.side.version.clone() else {
            return Ok(CheckReport::without_source(read, dst.id.to_string()));
        };
        Ok(self.judge(read.side, &version, &dst))
    }

    /// The `migration_version` path of `id` under the root.
    fn attr_path(&self, id: &DeviceId) -> std::path::PathBuf {
        let mut p = self.root.join(id.node_path());
        p.push(MIGRATION_VERSION);
        p
    }

    /// The target has a kernel attribute and accepts: (read the source,) read
    /// the target, write it, in one pooled job, with no discovery. `None` sends
    /// the caller down the full path (an attribute is absent, or the target
    /// said no and the report needs the model's reasons).
    fn kernel_fast_path(&self, source: FastSource<'_>, target: &DeviceId) -> Option<CheckReport> {
        let src = match source {
            FastSource::Device(id) => Err(self.attr_path(id)),
            FastSource::Version(v) => Ok(v.to_string()),
        };
        let dst_attr = self.attr_path(target);
        let (dst_dir, src_dir) = (self.root.join(target.node_path()), source_dir(&src));
        let devices = exchange_devices(&dst_dir, src_dir.as_deref());
        let outcome = self.io.run_guarded_on(&devices, move |guard| kernel_exchange(src, &dst_attr, guard));
        fast_path_report(source, target, outcome)
    }

    /// [`Checker::check_version`]'s kernel fast path for async callers: the pooled job is
    /// awaited, no thread blocks. `Ok(None)`: take [`Checker::check_version`] (an attribute is
    /// absent, or the target said no and the report needs the model's reasons).
    pub async fn check_version_fast(&self, version: &str, target: &DeviceId) -> Result<Option<CheckReport>, CoreError> {
        validate_version(version)?;
        let (src, dst_attr) = (Ok(version.to_string()), self.attr_path(target));
        let dst_dir = self.root.join(target.node_path());
        let outcome = match self.io.submit_guarded_on(&[&dst_dir], move |guard| kernel_exchange(src, &dst_attr, guard))
        {
            Ok(job) => job.wait().await,
            Err(f) => Err(f),
        };
        Ok(fast_path_report(FastSource::Version(version), target, outcome))
    }

    /// Has the target judge a version string that came from elsewhere.
    pub fn check_version(&self, version: &str, target: &DeviceId) -> Result<CheckReport, CoreError> {
        validate_version(version)?;
        if let Some(report) = self.kernel_fast_path(FastSource::Version(version), target) {
            return Ok(report);
        }
        let dst = self.device(target)?;
        let from = Side { version: Some(version.to_string()), ..Side::default() };
        Ok(self.judge(from, version, &dst))
    }

    /// Step b on one discovered target.
    pub(crate) fn judge(&self, from: Side, version: &str, target: &Device) -> CheckReport {
        let mut to =
            Side { device: Some(target.id.to_string()), model: target.migration.model.clone(), ..Side::default() };
        let decision = target.facts.as_ref().filter(|_| to.model.is_some()).map(|f| self.registry.evaluate(version, f));
        match target.migration.support {
            MigrationSupport::Kernel => {
                to.source = Some(Provenance::Kernel);
                let attr = self.attr_path(&target.id);
                let own = read_version(&self.io, &attr);
                if let Err(ReadFailure::Io(
                    f @ (IoFailure::Timeout { .. } | IoFailure::Overloaded | IoFailure::DeviceStuck),
                )) = own
                {
                    // A target that hangs on read is not written to: its driver is stuck.
                    return CheckReport::new(from, to).error(Reason::io(
                        io_code(FailedOn::Target, f).0,
                        "reading the target's migration_version",
                        f,
                    ));
                }
                to.version = own.ok();
                let write = write_version(&self.io, &attr, version);
                let mut report = CheckReport::new(from, to);
                if let Some(Ok(d)) = &decision {
                    report.checks = d.checks.clone();
                }
                match write {
                    Ok(()) => {
                        report.verdict = if report.to.version.as_deref() == Some(version) {
                            Verdict::Identical
                        } else {
                            Verdict::Compatible
                        };
                        report
                    }
                    Err(f) => {
                        let (code, transient) = match f.errno() {
                            Some(libc::ENODEV) => ("target_unsupported", false),
                            _ => io_code(FailedOn::Target, f),
                        };
                        let report = if transient {
                            report.error(Reason::io(code, "writing migration_version", f))
                        } else {
                            report.incompatible(Reason::io(code, "the target's driver refused the version", f))
                        };
                        with_model_reasons(report, decision.as_ref())
                    }
                }
            }
            MigrationSupport::Model => {
                to.source = Some(Provenance::Model);
                to.version = target.facts.as_ref().and_then(|f| self.registry.version(f).ok());
                let report = CheckReport::new(from, to);
                match decision {
                    Some(Ok(d)) => {
                        let mut report = CheckReport { checks: d.checks.clone(), ..report };
                        if d.accepted() {
                            report.verdict = if report.to.version.as_deref() == Some(version) {
                                Verdict::Identical
                            } else {
                                Verdict::Compatible
                            };
                            report
                        } else {
                            report.verdict = Verdict::Incompatible;
                            report.reasons = d.rejections().map(Reason::from_check).collect();
                            report
                        }
                    }
                    Some(Err(e @ VendorError::BadVersion { .. })) => {
                        report.incompatible(Reason::new("source_version_invalid", e.to_string()))
                    }
                    Some(Err(e)) => report.incompatible(Reason::new("target_unsupported", e.to_string())),
                    None => {
                        report.incompatible(Reason::new("target_unsupported", "no vendor model recognises the target"))
                    }
                }
            }
            MigrationSupport::None => {
                let why =
                    target.migration.detail.clone().unwrap_or_else(|| "the target does not support migration".into());
                CheckReport::new(from, to).incompatible(Reason::new("target_unsupported", why))
            }
            MigrationSupport::Unknown => {
                let why = target.migration.detail.clone().unwrap_or_else(|| "discovery did not finish".into());
                CheckReport::new(from, to).error(Reason::new("discovery_incomplete", why))
            }
        }
    }

    /// The typed step-a attributes of `id`.
    pub fn attributes(&self, id: &DeviceId) -> Result<AttributesReport, CoreError> {
        let dev = self.device(id)?;
        let facts = dev.facts.as_ref().ok_or(VendorError::NoModel)?;
        let model = self.registry.model_for_device(facts).ok_or(VendorError::NoModel)?;
        Ok(AttributesReport {
            device: dev.id.to_string(),
            model: model.name().to_string(),
            attributes: model.attributes(facts)?,
        })
    }
}

/// The report of a fast-path exchange, `None` to go down the full path.
fn fast_path_report(
    source: FastSource<'_>,
    target: &DeviceId,
    outcome: Result<Exchange, IoFailure>,
) -> Option<CheckReport> {
    let kernel =
        |id: &DeviceId| Side { device: Some(id.to_string()), source: Some(Provenance::Kernel), ..Side::default() };
    let from = match source {
        FastSource::Device(id) => kernel(id),
        FastSource::Version(_) => Side::default(),
    };
    match outcome {
        Ok(Exchange::Accepted { version, target_version }) => {
            let identical = target_version.as_deref() == Some(version.as_str());
            let from = Side { version: Some(version), ..from };
            let mut report = CheckReport::new(from, Side { version: target_version, ..kernel(target) });
            report.verdict = if identical { Verdict::Identical } else { Verdict::Compatible };
            Some(report)
        }
        Ok(Exchange::FullPath) => None,
        Err(f) => {
            let reason = Reason::io(io_code(FailedOn::Target, f).0, "exchanging migration_version", f);
            Some(CheckReport::new(from, kernel(target)).error(reason))
        }
    }
}

/// What the fast path's job found.
enum Exchange {
    /// The target took the source's string.
    Accepted { version: String, target_version: Option<String> },
    /// Anything else: decide on the full path.
    FullPath,
}

/// Where the fast path's source string comes from.
#[derive(Clone, Copy)]
enum FastSource<'a> {
    /// A local device's kernel attribute.
    Device(&'a DeviceId),
    /// A string from elsewhere, already validated.
    Version(&'a str),
}

/// The directory of the source's attribute, when the fast path reads one.
fn source_dir(src: &Result<String, std::path::PathBuf>) -> Option<std::path::PathBuf> {
    src.as_ref().err().and_then(|attr| attr.parent()).map(std::path::Path::to_path_buf)
}

/// The devices an exchange works on: the target (where it counts as running), then the source.
fn exchange_devices<'a>(dst: &'a std::path::Path, src: Option<&'a std::path::Path>) -> Vec<&'a std::path::Path> {
    std::iter::once(dst).chain(src).collect()
}

/// (Read source,) read target, write target; stops at anything but success.
/// `src` is the source string (`Ok`) or the source attribute to read (`Err`).
fn kernel_exchange(
    src: Result<String, std::path::PathBuf>,
    dst: &std::path::Path,
    guard: &crate::JobGuard,
) -> Exchange {
    let version = match src {
        Ok(v) => v,
        Err(path) => {
            if path.parent().is_some_and(|dir| guard.at(dir).is_err()) {
                return Exchange::FullPath;
            }
            let Ok(bytes) = crate::io::read_once(&path) else { return Exchange::FullPath };
            match std::str::from_utf8(crate::strip_one_newline(&bytes)) {
                Ok(v) if validate_version(v).is_ok() => v.to_string(),
                _ => return Exchange::FullPath,
            }
        }
    };
    if dst.parent().is_some_and(|dir| guard.at(dir).is_err()) {
        return Exchange::FullPath;
    }
    let target_version = match crate::io::read_once(dst) {
        Ok(bytes) => std::str::from_utf8(crate::strip_one_newline(&bytes)).ok().map(str::to_string),
        Err(_) => return Exchange::FullPath,
    };
    if guard.abandoned() {
        return Exchange::FullPath;
    }
    match crate::io::write_once(dst, version.as_bytes()) {
        Ok(()) => Exchange::Accepted { version, target_version },
        Err(_) => Exchange::FullPath,
    }
}

/// Adds the model's field-level reasons to a kernel rejection: the "why" the errno cannot carry.
fn with_model_reasons(
    mut report: CheckReport,
    decision: Option<&Result<devmig_vendors::Decision, VendorError>>,
) -> CheckReport {
    if report.verdict == Verdict::Incompatible {
        if let Some(Ok(d)) = decision {
            report.reasons.extend(d.rejections().map(Reason::from_check));
        }
    }
    report
}

/// Which side of a check an I/O failure hit.
#[derive(Clone, Copy)]
enum FailedOn {
    /// Reading the source's version.
    SourceRead,
    /// Reading or writing the target's attribute.
    Target,
}

/// The reason code for an I/O failure and whether it is transient (verdict `error`).
fn io_code(on: FailedOn, f: IoFailure) -> (&'static str, bool) {
    use FailedOn::*;
    match (f, on) {
        (IoFailure::Timeout { .. }, _) => ("timeout", true),
        (IoFailure::Overloaded, _) => ("overloaded", true),
        (IoFailure::DeviceStuck, _) => ("device_stuck", true),
        (IoFailure::ShortWrite { .. }, _) => ("target_write_failed", true),
        (IoFailure::Errno { errno }, SourceRead) if errno == libc::ENOENT => ("source_unsupported", false),
        (IoFailure::Errno { errno }, Target) if errno == libc::ENOENT => ("target_unsupported", false),
        (IoFailure::Errno { errno }, SourceRead) if is_transient(errno) => ("source_read_failed", true),
        (IoFailure::Errno { errno }, Target) if is_transient(errno) => ("target_write_failed", true),
        (IoFailure::Errno { .. }, SourceRead) => ("source_read_failed", false),
        (IoFailure::Errno { .. }, Target) => ("target_rejected", false),
    }
}
