//! NVIDIA vGPUs (driver `nvidia`, the vGPU Manager), both generations: mdev types `nvidia-<n>`,
//! and SR-IOV vGPUs (vGPU 17 and later, the "vendor-specific VFIO framework"), where a VF of
//! the GPU becomes vGPU type `<n>` when `<n>` is written to its `nvidia/current_vgpu_type`
//! (which reads 0 while it has none) and `nvidia/creatable_vgpu_types` lists the types it can
//! take now. The kernel shows no `migration_version` for either: devmig answers as the
//! userspace adapter, before the memory copy, what today only the destination driver's resume
//! finds out.
//!
//! The rules, as NVIDIA and the hypervisor vendors state them (sources in the catalog):
//! the same vGPU profile (NVIDIA, Nova: the destination must offer the source's type), the
//! same board unless the catalog lists an edge (NVIDIA documents none, and documents some pairs
//! that never migrate), and vGPU Manager versions that are identical (NVIDIA's rule on RHEL KVM
//! 9.4; Red Hat: migration fails when they differ) or, where the catalog says the hypervisor
//! allows it, of one branch with the target's at least the source's. ECC mode and the guest
//! driver also matter; sysfs shows neither, so only the destination driver's resume can tell.
//! Both ends must also hand the vGPU to the VM the same way: an mdev hostdev cannot become a
//! PCI hostdev (the SR-IOV VF) during a live migration.
use std::sync::Arc;

use crate::catalog::{ManagerRule, is_profile};
use crate::models::{
    driver_version, fields, model_attr, model_constraint, parse_pci_id, parse_version_field, pci_id,
    version_constraint, version_outcomes,
};
use crate::{
    AttrValue, Attributes, Catalog, Constraint, Decision, DeviceFacts, DriverVersion, FactsKind, Outcome, PciId,
    Requirement, VendorError, VendorModel, first_failure,
};

const NAME: &str = "nvidia";
const PROFILE: &str = "nvidia.profile";
const BOARD: &str = "nvidia.board";
const MANAGER: &str = "nvidia.manager_version";
const FRAMEWORK: &str = "nvidia.framework";
/// An SR-IOV vGPU VF's type number (0: none): written to set the VF's type, 0 to clear it.
pub const CURRENT_TYPE: &str = "nvidia/current_vgpu_type";
/// The types an SR-IOV vGPU VF can take now: a header, then `<number> : <name>` lines.
pub const CREATABLE_TYPES: &str = "nvidia/creatable_vgpu_types";
/// The PF's device id: the board of an SR-IOV vGPU's VF.
const PF_DEVICE: &str = "physfn/device";
/// The sysfs files holding a type's name: the type node's own, and an mdev's through its
/// `mdev_type` link.
const NAME_FILES: [&str; 2] = ["mdev_type/name", "name"];

/// How a vGPU reaches the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// An mdev of the GPU (`<hostdev type='mdev'>`).
    Mdev,
    /// An SR-IOV VF of the GPU set to a vGPU type (a PCI hostdev).
    Sriov,
}

impl Framework {
    fn as_str(self) -> &'static str {
        match self {
            Framework::Mdev => "mdev",
            Framework::Sriov => "sriov",
        }
    }
}

/// A parsed NVIDIA vGPU version: `nvidia-v1-[vf-]<vGPU Manager version>-<vendor>-<device>-<profile>`
/// (`nvidia-v1-535.161.5-10de-13f2-M60-0B`; `vf-` marks an SR-IOV vGPU).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvidiaVersion {
    /// How the vGPU reaches the VM.
    pub framework: Framework,
    /// The vGPU Manager (host driver) version.
    pub manager: DriverVersion,
    /// The board's PCI vendor:device.
    pub board: PciId,
    /// The vGPU profile (`M60-0B`).
    pub profile: String,
}

impl NvidiaVersion {
    /// Parses the emitted form.
    pub fn parse(s: &str) -> Result<Self, VendorError> {
        let rest = s
            .strip_prefix("nvidia-v1-")
            .ok_or_else(|| VendorError::bad_version(NAME, s, "expected prefix nvidia-v1-"))?;
        let (framework, rest) = match rest.strip_prefix("vf-") {
            Some(rest) => (Framework::Sriov, rest),
            None => (Framework::Mdev, rest),
        };
        let f = fields(NAME, rest, 4)?;
        if !is_profile(f[3]) {
            return Err(VendorError::bad_version(NAME, s, format!("{:?} is not a vGPU profile", f[3])));
        }
        Ok(NvidiaVersion {
            framework,
            manager: parse_version_field(NAME, s, f[0])?,
            board: parse_pci_id(NAME, s, &format!("{}:{}", f[1], f[2]))?,
            profile: f[3].to_string(),
        })
    }

    /// The emitted form.
    pub fn render(&self) -> String {
        let vf = if self.framework == Framework::Sriov { "vf-" } else { "" };
        let (vendor, device) = (self.board.vendor, self.board.device);
        format!("nvidia-v1-{vf}{}-{vendor:04x}-{device:04x}-{}", self.manager, self.profile)
    }
}

/// The profile a type's `name` file names: `GRID M60-0B` and `NVIDIA L40S-2Q` name `M60-0B` and
/// `L40S-2Q` (the name's last word).
pub fn profile_of_name(name: &str) -> Option<&str> {
    name.split_whitespace().last().filter(|p| is_profile(p))
}

/// The NVIDIA vGPU model.
#[derive(Debug)]
pub struct NvidiaModel {
    catalog: Arc<Catalog>,
}

impl NvidiaModel {
    /// A model reading `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Self {
        NvidiaModel { catalog }
    }

    /// The profile of `dev`: from the type's `name` as sysfs shows it, else the catalog's row
    /// for the type id.
    /// A type number names a profile on its own board only (NVIDIA's device plugin treats the
    /// numbers as unique within one card), so a catalog row of another board is not used.
    fn profile(&self, dev: &DeviceFacts, ty: &str, board: PciId) -> Result<String, VendorError> {
        let shown = NAME_FILES.iter().find_map(|f| dev.params.get(*f));
        match shown {
            Some(name) => profile_of_name(name)
                .map(str::to_string)
                .ok_or_else(|| VendorError::unsupported(NAME, format!("type {ty} is named {name:?}: no vGPU profile"))),
            None => match self.catalog.nvidia_type(ty) {
                Some(t) if t.board == board => Ok(t.profile.clone()),
                Some(t) => Err(VendorError::unsupported(
                    NAME,
                    format!("type {ty}: sysfs names none, and the catalog's row is for board {}, not {board}", t.board),
                )),
                None => {
                    Err(VendorError::unsupported(NAME, format!("type {ty}: no name in sysfs and none in the catalog")))
                }
            },
        }
    }

    fn target(&self, dev: &DeviceFacts) -> Result<NvidiaVersion, VendorError> {
        let (framework, ty) = if dev.is_vf() {
            (Framework::Sriov, format!("nvidia-{}", vf_type(dev)?))
        } else {
            let ty = dev
                .mdev_type
                .clone()
                .filter(|_| dev.is_mdev_like())
                .ok_or_else(|| VendorError::unsupported(NAME, "not an mdev, an mdev type or an SR-IOV vGPU VF"))?;
            // A type an SR-IOV VF can take is listed with the VF's type file.
            let framework = if dev.params.contains_key(CURRENT_TYPE) { Framework::Sriov } else { Framework::Mdev };
            (framework, ty)
        };
        let board = board(dev)?;
        Ok(NvidiaVersion {
            framework,
            manager: driver_version(NAME, dev)?,
            board,
            profile: self.profile(dev, &ty, board)?,
        })
    }

    fn outcomes(&self, s: &NvidiaVersion, t: &NvidiaVersion) -> Vec<Outcome> {
        let mut out = vec![
            Outcome::new(
                FRAMEWORK,
                "framework",
                s.framework == t.framework,
                "the target must reach the VM as the source does (an mdev, or an SR-IOV VF)",
            ),
            Outcome::new(
                "nvidia.profile",
                "profile",
                s.profile == t.profile,
                "the target must offer the source's vGPU profile",
            ),
            Outcome::new(
                "nvidia.board",
                "board",
                Catalog::reaches(&self.catalog.nvidia.migrations, s.board, t.board),
                "the target must be the source's board (or one the catalog lets it migrate to)",
            ),
        ];
        match self.catalog.nvidia.manager_rule() {
            ManagerRule::Identical => out.push(Outcome::new(
                "nvidia.manager_version",
                "manager_version",
                s.manager == t.manager,
                "the vGPU Manager versions must be identical",
            )),
            ManagerRule::SameBranch => out.extend(version_outcomes(
                ["nvidia.manager_version_major", "nvidia.manager_version_minor"],
                "manager_version",
                s.manager,
                t.manager,
            )),
        }
        out
    }

    /// A board as explanations show it: id, name, and what NVIDIA says of the pair.
    fn board_text(&self, id: PciId, other: PciId) -> String {
        let n = &self.catalog.nvidia;
        let mut text = match n.board_name(id) {
            Some(name) => format!("{id} ({name})"),
            None => id.to_string(),
        };
        if let Some(never) = n.never_between(other, id) {
            text.push_str(&format!("; NVIDIA: {}", never.why));
        }
        text
    }
}

impl VendorModel for NvidiaModel {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognizes(&self, dev: &DeviceFacts) -> bool {
        dev.driver.as_deref() == Some(NAME)
            && (dev.is_vf()
                || (dev.is_mdev_like() && dev.mdev_type.as_deref().is_some_and(|t| t.starts_with("nvidia-"))))
    }

    fn claims_version(&self, version: &str) -> bool {
        version.starts_with("nvidia-")
    }

    fn version(&self, dev: &DeviceFacts) -> Result<String, VendorError> {
        Ok(self.target(dev)?.render())
    }

    fn evaluate(&self, source: &str, target: &DeviceFacts) -> Result<Decision, VendorError> {
        let (s, t) = (NvidiaVersion::parse(source)?, self.target(target)?);
        Ok(Decision::from_outcomes(NAME, &self.outcomes(&s, &t), |o| match o.field {
            "framework" => (s.framework.as_str().to_string(), t.framework.as_str().to_string()),
            "profile" => (s.profile.clone(), t.profile.clone()),
            "board" => (self.board_text(s.board, t.board), self.board_text(t.board, s.board)),
            _ => (s.manager.to_string(), t.manager.to_string()),
        }))
    }

    fn decide(&self, source: &str, target: &DeviceFacts) -> Result<Option<&'static str>, VendorError> {
        let (s, t) = (NvidiaVersion::parse(source)?, self.target(target)?);
        Ok(first_failure(&self.outcomes(&s, &t)))
    }

    fn attributes(&self, dev: &DeviceFacts) -> Result<Attributes, VendorError> {
        let t = self.target(dev)?;
        Ok(Attributes::from([
            model_attr(NAME),
            (FRAMEWORK.to_string(), AttrValue::String(t.framework.as_str().to_string())),
            (PROFILE.to_string(), AttrValue::String(t.profile)),
            (BOARD.to_string(), AttrValue::String(t.board.to_string())),
            (MANAGER.to_string(), AttrValue::Semver(t.manager)),
        ]))
    }

    fn requirement(&self, source: &str) -> Result<Requirement, VendorError> {
        let s = NvidiaVersion::parse(source)?;
        let boards = Catalog::targets_of(&self.catalog.nvidia.migrations, s.board);
        let manager = match self.catalog.nvidia.manager_rule() {
            ManagerRule::Identical => {
                Constraint::Equals { attr: MANAGER.to_string(), value: AttrValue::Semver(s.manager) }
            }
            ManagerRule::SameBranch => version_constraint(MANAGER, s.manager),
        };
        Ok(Requirement {
            all: vec![
                model_constraint(NAME),
                Constraint::Equals {
                    attr: FRAMEWORK.to_string(),
                    value: AttrValue::String(s.framework.as_str().to_string()),
                },
                Constraint::Equals { attr: PROFILE.to_string(), value: AttrValue::String(s.profile) },
                Constraint::OneOf { attr: BOARD.to_string(), values: boards.iter().map(PciId::to_string).collect() },
                manager,
            ],
        })
    }

    fn facts_from_version(&self, version: &str, base: &DeviceFacts) -> Result<DeviceFacts, VendorError> {
        let v = NvidiaVersion::parse(version)?;
        let mut facts =
            DeviceFacts { driver_version: Some(v.manager.to_string()), pci_id: Some(v.board), ..base.clone() };
        for f in NAME_FILES.iter().chain([&PF_DEVICE]) {
            facts.params.remove(*f);
        }
        let file = if matches!(base.kind, FactsKind::Mdev) { NAME_FILES[0] } else { NAME_FILES[1] };
        facts.params.insert(file.to_string(), format!("GRID {}", v.profile));
        Ok(facts)
    }

    fn one_of_groups(&self, attr: &str) -> Vec<std::collections::BTreeSet<String>> {
        if attr == BOARD { Catalog::id_groups(&self.catalog.nvidia.migrations) } else { Vec::new() }
    }

    fn param_files(&self, dev: &DeviceFacts) -> Vec<String> {
        // A VF's type target comes with its VF's type and listed name (read by discovery with
        // the listing); only the board is left to read.
        let files: &[&str] = if dev.is_vf() {
            &[CURRENT_TYPE, PF_DEVICE]
        } else if dev.params.contains_key(CURRENT_TYPE) {
            &[PF_DEVICE]
        } else {
            &NAME_FILES
        };
        files.iter().map(|f| f.to_string()).collect()
    }
}

/// The vGPU type number an SR-IOV VF has (never 0).
fn vf_type(dev: &DeviceFacts) -> Result<u32, VendorError> {
    let text = dev.params.get(CURRENT_TYPE).map(|t| t.trim()).ok_or_else(|| {
        VendorError::unsupported(NAME, format!("no {CURRENT_TYPE}: not an SR-IOV vGPU (vGPU 17 or later)"))
    })?;
    match text.parse::<u32>() {
        Ok(0) => Err(VendorError::unsupported(NAME, format!("no vGPU type set on this VF ({CURRENT_TYPE} is 0)"))),
        Ok(n) => Ok(n),
        Err(_) => Err(VendorError::unsupported(NAME, format!("{CURRENT_TYPE} shows {text:?}, not a type number"))),
    }
}

/// The GPU board: the PF's device id for an SR-IOV vGPU (sysfs `physfn/device`), else the
/// device's (an mdev's parent's) id.
fn board(dev: &DeviceFacts) -> Result<PciId, VendorError> {
    let id = pci_id(NAME, dev)?;
    let Some(text) = dev.params.get(PF_DEVICE) else { return Ok(id) };
    let device = text.trim().strip_prefix("0x").and_then(|h| u16::from_str_radix(h, 16).ok());
    let device = device.ok_or_else(|| VendorError::unsupported(NAME, format!("{PF_DEVICE} shows {text:?}")))?;
    Ok(PciId { device, ..id })
}

/// The `(number, name)` lines of a `creatable_vgpu_types` listing (`1148  : NVIDIA L40S-2Q`);
/// the header and lines that are not a number and a name are skipped.
pub fn creatable_types(listing: &str) -> Vec<(u32, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let (n, name) = line.split_once(':')?;
            let n = n.trim().parse().ok().filter(|n| *n != 0)?;
            Some((n, name.trim().to_string())).filter(|(_, name)| !name.is_empty())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_bad_ones_name_the_field() {
        let vf = NvidiaVersion::parse("nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q").expect("parses");
        assert_eq!((vf.framework, vf.profile.as_str()), (Framework::Sriov, "L40S-2Q"));
        assert_eq!(vf.render(), "nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q");
        let listing = "ID    : vGPU Name\n1148  : NVIDIA L40S-2Q\n1150  : NVIDIA L40S-4Q\nbad line\n";
        assert_eq!(creatable_types(listing), vec![(1148, "NVIDIA L40S-2Q".into()), (1150, "NVIDIA L40S-4Q".into())]);
        let v = NvidiaVersion::parse("nvidia-v1-535.161.5-10de-13f2-M60-0B").expect("parses");
        assert_eq!(v.profile, "M60-0B");
        assert_eq!(v.board.to_string(), "10de:13f2");
        assert_eq!(v.render(), "nvidia-v1-535.161.5-10de-13f2-M60-0B");
        for bad in ["nvidia-v1-535-10de-13f2", "nvidia-v2-535.161.5-10de-13f2-M60-0B", "nvidia-v1-x-10de-13f2-M60-0B"] {
            assert!(NvidiaVersion::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(profile_of_name("GRID M60-0B"), Some("M60-0B"));
        assert_eq!(profile_of_name("NVIDIA L40S-2Q"), Some("L40S-2Q"));
        assert_eq!(profile_of_name(""), None);
    }
}
