//! The checker: step b of the proposal, against the kernel or the vendor model.
use std::time::Duration;

use devmig_vendors::{AttributeSource, Attributes, Described, Registry, VendorError};
use serde::{Deserialize, Serialize};

use crate::device::{Device, MigrationSupport};
use crate::discovery::{discover, discover_one};
use crate::errno::is_transient;
use crate::protocol::{ReadFailure, read_version, write_version};
use crate::verdict::{Reason, ReasonCode, Side};
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
    /// The model that derived them, or `opaque` (the kernel's string, no model).
    pub model: String,
    /// The attributes.
    pub attributes: Attributes,
    /// Where they came from: the kernel's string, sysfs facts, or opaque.
    pub source: AttributeSource,
    /// Where the kernel's string and sysfs facts disagree (the string wins), or why the
    /// kernel's string could not be used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
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
                            ReasonCode::SourceVersionInvalid,
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
                    Err(e) => fail(side, Reason::new(ReasonCode::SourceUnsupported, e.to_string()), false),
                }
            }
            MigrationSupport::None => {
                let why =
                    dev.migration.detail.clone().unwrap_or_else(|| "the device does not support migration".into());
                fail(side, Reason::new(ReasonCode::SourceUnsupported, why), false)
            }
            MigrationSupport::Unknown => {
                let why = dev.migration.detail.clone().unwrap_or_else(|| "discovery did not finish".into());
                fail(side, Reason::new(ReasonCode::DiscoveryIncomplete, why), true)
            }
        }
    }

    /// Reads the source's version and has the target judge it: one write(2) at most.
    pub fn check(&self, source: &DeviceId, target: &DeviceId) -> Result<CheckReport, CoreError> {
        if let (DeviceId::MdevType { type_id: a, .. }, DeviceId::MdevType { type_id: b, .. }) = (source, target) {
            if a != b {
                let side = |id: &DeviceId| Side { device: Some(id.to_string()), ..Side::default() };
                let why = format!("type nodes are only comparable within one type ({a} vs {b})");
                return Ok(CheckReport::new(side(source), side(target))
                    .incompatible(Reason::new(ReasonCode::TypeMismatch, why)));
            }
        }
        let refusal = match self.kernel_fast_path(FastSource::Device(source), target) {
            FastCheck::Settled(report) => return Ok(report),
            FastCheck::Refused(r) => Some(r),
            FastCheck::Untried => None,
        };
        let src = self.device(source)?;
        let dst = self.device(target)?;
        let read = match &refusal {
            // The exchange read the source already: reading it again could disagree.
            Some(r) => VersionReport {
                side: Side {
                    device: Some(src.id.to_string()),
                    model: src.migration.model.clone(),
                    source: Some(Provenance::Kernel),
                    version: Some(r.version.clone()),
                },
                reason: None,
                transient: false,
            },
            None => self.version_of(&src),
        };
        let Some(version) = read.side.version.clone() else {
            return Ok(CheckReport::without_source(read, dst.id.to_string()));
        };
        Ok(self.judge(read.side, &version, &dst, refusal.as_ref()))
    }

    /// The `migration_version` path of `id` under the root.
    fn attr_path(&self, id: &DeviceId) -> std::path::PathBuf {
        let mut p = self.root.join(id.node_path());
        p.push(MIGRATION_VERSION);
        p
    }

    /// The exchange on kernel attributes: (read the source,) read the target, write it, in one
    /// pooled job, with no discovery. The write's raw outcome comes back; a refusal still needs
    /// the model's reasons, which [`Checker::check_version_refused`] adds without writing again.
    fn kernel_fast_path(&self, source: FastSource<'_>, target: &DeviceId) -> FastCheck {
        let src = match source {
            FastSource::Device(id) => Err(self.attr_path(id)),
            FastSource::Version(v) => Ok(v.to_string()),
        };
        let dst_attr = self.attr_path(target);
        let (dst_dir, src_dir) = (self.root.join(target.node_path()), source_dir(&src));
        let devices = exchange_devices(&dst_dir, src_dir.as_deref());
        let outcome = self.io.run_guarded_on(&devices, move |guard| kernel_exchange(src, &dst_attr, guard));
        fast_check(source, target, outcome)
    }

    /// [`Checker::check_version`]'s kernel exchange for async callers: the pooled job is
    /// awaited, no thread blocks. On [`FastCheck::Refused`] call [`Checker::check_version_refused`],
    /// on [`FastCheck::Untried`] [`Checker::check_version`] (no write was made).
    pub async fn check_version_fast(&self, version: &str, target: &DeviceId) -> Result<FastCheck, CoreError> {
        validate_version(version)?;
        let (src, dst_attr) = (Ok(version.to_string()), self.attr_path(target));
        let dst_dir = self.root.join(target.node_path());
        let outcome = match self.io.submit_guarded_on(&[&dst_dir], move |guard| kernel_exchange(src, &dst_attr, guard))
        {
            Ok(job) => job.wait().await,
            Err(f) => Err(f),
        };
        Ok(fast_check(FastSource::Version(version), target, outcome))
    }

    /// Has the target judge a version string that came from elsewhere: one write(2) at most.
    pub fn check_version(&self, version: &str, target: &DeviceId) -> Result<CheckReport, CoreError> {
        validate_version(version)?;
        let refusal = match self.kernel_fast_path(FastSource::Version(version), target) {
            FastCheck::Settled(report) => return Ok(report),
            FastCheck::Refused(r) => Some(r),
            FastCheck::Untried => None,
        };
        let dst = self.device(target)?;
        let from = Side { version: Some(version.to_string()), ..Side::default() };
        Ok(self.judge(from, version, &dst, refusal.as_ref()))
    }

    /// The report of an exchange the target refused: discovery and the model's reasons, no write.
    pub fn check_version_refused(&self, refusal: &Refusal, target: &DeviceId) -> Result<CheckReport, CoreError> {
        let dst = self.device(target)?;
        let from = Side { version: Some(refusal.version.clone()), ..Side::default() };
        Ok(self.judge(from, &refusal.version, &dst, Some(refusal)))
    }

    /// Step b on one discovered target. `refused`: the exchange already wrote, and the target
    /// said no; its outcome stands and nothing is written again.
    pub(crate) fn judge(&self, from: Side, version: &str, target: &Device, refused: Option<&Refusal>) -> CheckReport {
        let mut to =
            Side { device: Some(target.id.to_string()), model: target.migration.model.clone(), ..Side::default() };
        let decision = target.facts.as_ref().filter(|_| to.model.is_some()).map(|f| self.registry.evaluate(version, f));
        let support = if refused.is_some() { MigrationSupport::Kernel } else { target.migration.support };
        match support {
            MigrationSupport::Kernel => {
                to.source = Some(Provenance::Kernel);
                let write = match refused {
                    Some(r) => {
                        to.version = r.target_version.clone();
                        Err(r.failure)
                    }
                    None => {
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
                        write_version(&self.io, &attr, version)
                    }
                };
                let mut report = CheckReport::new(from, to);
                if let Some(Ok(d)) = &decision {
                    report.checks = d.checks.clone();
                    report.at_resume = d.at_resume.clone();
                }
                match write {
                    Ok(()) => {
                        report.verdict = Verdict::accepted(report.to.version.as_deref(), version);
                        report
                    }
                    Err(f) => {
                        let (code, transient) = match f.errno() {
                            Some(libc::ENODEV) => (ReasonCode::TargetUnsupported, false),
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
                        let mut report =
                            CheckReport { checks: d.checks.clone(), at_resume: d.at_resume.clone(), ..report };
                        if d.accepted() {
                            report.verdict = Verdict::accepted(report.to.version.as_deref(), version);
                            report
                        } else {
                            report.verdict = Verdict::Incompatible;
                            report.reasons = d.rejections().map(Reason::from_check).collect();
                            report
                        }
                    }
                    Some(Err(e @ VendorError::BadVersion { .. })) => {
                        report.incompatible(Reason::new(ReasonCode::SourceVersionInvalid, e.to_string()))
                    }
                    Some(Err(e)) => report.incompatible(Reason::new(ReasonCode::TargetUnsupported, e.to_string())),
                    None => report.incompatible(Reason::new(
                        ReasonCode::TargetUnsupported,
                        "no vendor model recognises the target",
                    )),
                }
            }
            MigrationSupport::None => {
                let why =
                    target.migration.detail.clone().unwrap_or_else(|| "the target does not support migration".into());
                CheckReport::new(from, to).incompatible(Reason::new(ReasonCode::TargetUnsupported, why))
            }
            MigrationSupport::Unknown => {
                let why = target.migration.detail.clone().unwrap_or_else(|| "discovery did not finish".into());
                CheckReport::new(from, to).error(Reason::new(ReasonCode::DiscoveryIncomplete, why))
            }
        }
    }

    /// Adds every vendor rule, passed or failed, with both values, to a report that has none
    /// (the kernel's accepting write carries no rules): what `explain` shows. Discovery and the
    /// model only; nothing is written. An `error` report, or a target no model knows, is
    /// returned as it is.
    pub fn with_rules(&self, mut report: CheckReport, target: &DeviceId) -> Result<CheckReport, CoreError> {
        let Some(version) = report.from.version.clone().filter(|_| report.checks.is_empty()) else {
            return Ok(report);
        };
        if report.verdict == Verdict::Error {
            return Ok(report);
        }
        let dst = self.device(target)?;
        let Some(facts) = dst.facts.as_ref().filter(|_| dst.migration.model.is_some()) else { return Ok(report) };
        if let Ok(decision) = self.registry.evaluate(&version, facts) {
            report.checks = decision.checks;
            report.at_resume = decision.at_resume;
            report.to.model = report.to.model.or(dst.migration.model);
        }
        Ok(report)
    }

    /// The typed step-a attributes of `id`: where the kernel shows `migration_version`, the
    /// model reads the kernel's own string; facts are the fallback (a string that cannot be
    /// read is noted in `conflicts`).
    pub fn attributes(&self, id: &DeviceId) -> Result<AttributesReport, CoreError> {
        let dev = self.device(id)?;
        let described = self.describe(&dev)?;
        Ok(AttributesReport {
            device: dev.id.to_string(),
            model: described.model,
            attributes: described.attributes,
            source: described.source,
            conflicts: described.conflicts,
        })
    }

    /// The step-a description of a discovered device (see [`Registry::describe`]); a kernel
    /// string that cannot be read leaves the facts, with the failure among the conflicts.
    pub(crate) fn describe(&self, dev: &Device) -> Result<Described, CoreError> {
        let (kernel, unread) = match dev.migration.support {
            MigrationSupport::Kernel => {
                let v = self.version_of(dev);
                let why = v.reason.map(|r| format!("the kernel's string could not be read: {}", r.message));
                (v.side.version, why)
            }
            _ => (None, None),
        };
        let mut described = self.registry.describe(dev.facts.as_ref(), kernel.as_deref())?;
        described.conflicts.splice(0..0, unread);
        Ok(described)
    }
}

/// What the kernel exchange settled.
#[derive(Debug)]
pub enum FastCheck {
    /// The answer: the target took the string, or the exchange failed transiently.
    Settled(CheckReport),
    /// The target's write refused the string: the answer needs only the model's reasons.
    Refused(Refusal),
    /// Nothing was written (an attribute is absent or unreadable): take the full path.
    Untried,
}

/// A write the target refused: the exchange's raw outcome, so the full path never writes again.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The string written.
    pub version: String,
    /// The target's own string, read before the write.
    pub target_version: Option<String>,
    /// How the write failed.
    pub failure: IoFailure,
}

/// The report of a fast-path exchange.
fn fast_check(source: FastSource<'_>, target: &DeviceId, outcome: Result<Exchange, IoFailure>) -> FastCheck {
    let kernel =
        |id: &DeviceId| Side { device: Some(id.to_string()), source: Some(Provenance::Kernel), ..Side::default() };
    let from = match source {
        FastSource::Device(id) => kernel(id),
        FastSource::Version(_) => Side::default(),
    };
    match outcome {
        Ok(Exchange::Written { version, target_version, write: Ok(()) }) => {
            let verdict = Verdict::accepted(target_version.as_deref(), &version);
            let from = Side { version: Some(version), ..from };
            let mut report = CheckReport::new(from, Side { version: target_version, ..kernel(target) });
            report.verdict = verdict;
            FastCheck::Settled(report)
        }
        Ok(Exchange::Written { version, target_version, write: Err(failure) }) => {
            FastCheck::Refused(Refusal { version, target_version, failure })
        }
        Ok(Exchange::Untried) => FastCheck::Untried,
        Err(f) => {
            let reason = Reason::io(io_code(FailedOn::Target, f).0, "exchanging migration_version", f);
            FastCheck::Settled(CheckReport::new(from, kernel(target)).error(reason))
        }
    }
}

/// What the fast path's job found.
enum Exchange {
    /// The string was written: the write's raw outcome.
    Written { version: String, target_version: Option<String>, write: Result<(), IoFailure> },
    /// Nothing was written.
    Untried,
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
                return Exchange::Untried;
            }
            let Ok(bytes) = crate::io::read_once(&path) else { return Exchange::Untried };
            match std::str::from_utf8(crate::strip_one_newline(&bytes)) {
                Ok(v) if validate_version(v).is_ok() => v.to_string(),
                _ => return Exchange::Untried,
            }
        }
    };
    if dst.parent().is_some_and(|dir| guard.at(dir).is_err()) {
        return Exchange::Untried;
    }
    let target_version = match crate::io::read_once(dst) {
        Ok(bytes) => std::str::from_utf8(crate::strip_one_newline(&bytes)).ok().map(str::to_string),
        Err(_) => return Exchange::Untried,
    };
    if guard.abandoned() {
        return Exchange::Untried;
    }
    let write = crate::io::write_once(dst, version.as_bytes());
    Exchange::Written { version, target_version, write }
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
fn io_code(on: FailedOn, f: IoFailure) -> (ReasonCode, bool) {
    use FailedOn::*;
    match (f, on) {
        (IoFailure::Timeout { .. }, _) => (ReasonCode::Timeout, true),
        (IoFailure::Overloaded, _) => (ReasonCode::Overloaded, true),
        (IoFailure::DeviceStuck, _) => (ReasonCode::DeviceStuck, true),
        (IoFailure::ShortWrite { .. }, _) => (ReasonCode::TargetWriteFailed, true),
        (IoFailure::Errno { errno }, SourceRead) if errno == libc::ENOENT => (ReasonCode::SourceUnsupported, false),
        (IoFailure::Errno { errno }, Target) if errno == libc::ENOENT => (ReasonCode::TargetUnsupported, false),
        (IoFailure::Errno { errno }, SourceRead) if is_transient(errno) => (ReasonCode::SourceReadFailed, true),
        (IoFailure::Errno { errno }, Target) if is_transient(errno) => (ReasonCode::TargetWriteFailed, true),
        (IoFailure::Errno { .. }, SourceRead) => (ReasonCode::SourceReadFailed, false),
        (IoFailure::Errno { .. }, Target) => (ReasonCode::TargetRejected, false),
    }
}
