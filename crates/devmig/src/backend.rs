//! Where a verb gets its answers: this host's sysfs, or an agent.
use devmig_api::{CheckBody, MatchBody, segment};
use devmig_core::{AttributesReport, CheckReport, Checker, Device, DeviceId, Inventory, MatchReport, VersionReport};
use serde::Deserialize;

use crate::error::CliError;
use crate::remote::Remote;

/// This host or an agent.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Local sysfs.
    Local(Checker),
    /// A devmig agent.
    Remote(Remote),
}

#[derive(Deserialize)]
struct ShowBody {
    device: Device,
}

impl Backend {
    /// Every device.
    pub fn inventory(&self) -> Result<Inventory, CliError> {
        match self {
            Backend::Local(c) => Ok(c.inventory()?),
            Backend::Remote(r) => r.get("/api/v1/devices"),
        }
    }

    /// One device.
    pub fn device(&self, id: &DeviceId) -> Result<Device, CliError> {
        match self {
            Backend::Local(c) => Ok(c.device(id)?),
            Backend::Remote(r) => {
                Ok(r.get::<ShowBody>(&format!("/api/v1/devices/{}", segment(&id.to_string())))?.device)
            }
        }
    }

    /// A device's version.
    pub fn version(&self, id: &DeviceId) -> Result<VersionReport, CliError> {
        match self {
            Backend::Local(c) => Ok(c.version(id)?),
            Backend::Remote(r) => r.get(&format!("/api/v1/devices/{}/migration-version", segment(&id.to_string()))),
        }
    }

    /// A device's step-a attributes.
    pub fn attributes(&self, id: &DeviceId) -> Result<AttributesReport, CliError> {
        match self {
            Backend::Local(c) => Ok(c.attributes(id)?),
            Backend::Remote(r) => r.get(&format!("/api/v1/devices/{}/attributes", segment(&id.to_string()))),
        }
    }

    /// Step b of a version string on a target; `explain` adds every vendor rule.
    pub fn check_version(&self, version: &str, target: &DeviceId, explain: bool) -> Result<CheckReport, CliError> {
        match self {
            Backend::Local(c) => {
                let report = c.check_version(version, target)?;
                Ok(if explain { c.with_rules(report, target)? } else { report })
            }
            Backend::Remote(r) => r.check(&target.to_string(), &CheckBody { version: version.to_string(), explain }),
        }
    }

    /// Reads the source's version and has the target judge it (both on this backend).
    pub fn check(&self, source: &DeviceId, target: &DeviceId, explain: bool) -> Result<CheckReport, CliError> {
        match self {
            Backend::Local(c) => {
                let report = c.check(source, target)?;
                Ok(if explain { c.with_rules(report, target)? } else { report })
            }
            Backend::Remote(_) => cross(self, source, self, target, explain),
        }
    }

    /// Local targets for a version string.
    pub fn match_version(&self, version: &str) -> Result<MatchReport, CliError> {
        match self {
            Backend::Local(c) => Ok(c.match_version(version)?),
            Backend::Remote(r) => r.post("/api/v1/match", &MatchBody { version: version.to_string() }),
        }
    }

    /// Targets for a local source device.
    pub fn match_device(&self, source: &DeviceId) -> Result<MatchReport, CliError> {
        match self {
            Backend::Local(c) => Ok(c.match_device(source)?),
            Backend::Remote(_) => {
                let v = self.version(source)?;
                let version =
                    v.side.version.clone().ok_or_else(|| CliError::Usage(format!("source {source} has no version")))?;
                let mut m = self.match_version(&version)?;
                m.candidates.retain(|c| c.device != source.to_string());
                m.from = v.side;
                Ok(m)
            }
        }
    }
}

/// A check across two backends: the source's version read on one, judged on the other.
pub fn cross(
    src: &Backend,
    source: &DeviceId,
    dst: &Backend,
    target: &DeviceId,
    explain: bool,
) -> Result<CheckReport, CliError> {
    let v = src.version(source)?;
    let Some(version) = v.side.version.clone() else {
        return Ok(CheckReport::without_source(v, target.to_string()));
    };
    let report = dst.check_version(&version, target, explain)?;
    Ok(CheckReport { from: v.side, ..report })
}
