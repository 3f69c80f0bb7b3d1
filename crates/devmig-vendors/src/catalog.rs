//! The product catalog: compatible id groups and type shares, from TOML.
use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::{PciId, VariantCatalog, VendorError};

const EMBEDDED: &str = include_str!("../catalog/default.toml");

/// A directional edge set: devices with an id in `from` may migrate to devices with an id in `to`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdRule {
    /// Source ids.
    #[serde(deserialize_with = "pci_ids")]
    pub from: Vec<PciId>,
    /// Target ids.
    #[serde(deserialize_with = "pci_ids")]
    pub to: Vec<PciId>,
}

/// An Intel GVT-g vGPU type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GvtType {
    /// Type id as in `mdev_supported_types` (`i915-GVTg_V5_4`).
    pub name: String,
    /// Instances that fit on one GPU: one instance holds 1/instances of it.
    pub instances: u32,
}

/// Intel GVT-g knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GvtCatalog {
    /// Parent GPU compatibility edges.
    #[serde(default)]
    pub parents: Vec<IdRule>,
    /// Known vGPU types.
    #[serde(default)]
    pub types: Vec<GvtType>,
}

/// NVMe VF knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NvmeCatalog {
    /// VF id compatibility edges.
    #[serde(default)]
    pub functions: Vec<IdRule>,
}

/// A QAT family: VFs and SIOV mdev types that share one migration format.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QatFamily {
    /// Family name (`[a-z0-9_]+`), carried in version strings.
    pub name: String,
    /// VF ids in the family.
    #[serde(default, deserialize_with = "pci_ids")]
    pub vf_ids: Vec<PciId>,
    /// mdev types in the family, as `parent-vendor:parent-device/type-id`.
    #[serde(default)]
    pub mdev_types: Vec<String>,
}

/// A directional QAT family edge.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QatMigration {
    /// Source family.
    pub from: String,
    /// Target families.
    pub to: Vec<String>,
}

/// QAT knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QatCatalog {
    /// Families.
    #[serde(default)]
    pub families: Vec<QatFamily>,
    /// Edges between families (each family always reaches itself).
    #[serde(default)]
    pub migrations: Vec<QatMigration>,
}

/// An mtty type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MttyType {
    /// Type id (`mtty-2`).
    pub name: String,
    /// Serial ports per instance.
    pub ports: u32,
}

/// mtty knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MttyCatalog {
    /// Known types.
    #[serde(default)]
    pub types: Vec<MttyType>,
}

/// How the vGPU Manager (NVIDIA's host driver) versions of a source and a target must relate.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ManagerRule {
    /// Equal versions (NVIDIA's rule on RHEL KVM 9.4; Red Hat: migration fails when they differ).
    #[default]
    Identical,
    /// Same branch (major), the target's minor at least the source's: where NVIDIA supports
    /// differing Manager versions (its release notes for the hypervisor say so).
    SameBranch,
}

/// An NVIDIA GPU board.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NvidiaBoard {
    /// PCI vendor:device.
    #[serde(deserialize_with = "pci_id")]
    pub id: PciId,
    /// Its name (`Tesla M60`).
    pub name: String,
    /// Where the row comes from.
    pub source: String,
}

/// An NVIDIA vGPU type (an mdev type `nvidia-<n>`, or an SR-IOV vGPU type id `<n>`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NvidiaType {
    /// Type id as in `mdev_supported_types` (`nvidia-11`).
    pub id: String,
    /// The board it belongs to.
    #[serde(deserialize_with = "pci_id")]
    pub board: PciId,
    /// The vGPU profile (`M60-0B`): the type's `name` without its `GRID `/`NVIDIA ` prefix.
    pub profile: String,
    /// Frame buffer per vGPU, MiB.
    pub framebuffer_mib: u32,
    /// vGPUs of this type one GPU holds.
    pub max_instances: u32,
    /// Display heads.
    #[serde(default)]
    pub heads: u32,
    /// Frame rate limiter (fps).
    #[serde(default)]
    pub frl: u32,
    /// Largest resolution (`5120x2880`).
    #[serde(default)]
    pub max_resolution: String,
    /// Where the row comes from.
    pub source: String,
}

/// Boards NVIDIA documents as unable to migrate to each other (both directions).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NvidiaNever {
    /// One side.
    #[serde(deserialize_with = "pci_ids")]
    pub between: Vec<PciId>,
    /// The other side.
    #[serde(deserialize_with = "pci_ids")]
    pub and: Vec<PciId>,
    /// What the vendor says, in a few words.
    pub why: String,
    /// Where it says so.
    pub source: String,
}

/// NVIDIA vGPU knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NvidiaCatalog {
    /// The vGPU Manager version rule (a later file's value wins).
    #[serde(default)]
    pub manager_versions: Option<ManagerRule>,
    /// Known boards.
    #[serde(default)]
    pub boards: Vec<NvidiaBoard>,
    /// Board edges beyond "the same board" (none by default: NVIDIA documents none).
    #[serde(default)]
    pub migrations: Vec<IdRule>,
    /// Board pairs NVIDIA documents as not migratable: an edge between them is refused.
    #[serde(default)]
    pub never: Vec<NvidiaNever>,
    /// Known vGPU types.
    #[serde(default)]
    pub types: Vec<NvidiaType>,
}

fn pci_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PciId, D::Error> {
    String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

/// All product knowledge the vendor models use.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Intel GVT-g.
    #[serde(default)]
    pub i915: GvtCatalog,
    /// NVMe VFs.
    #[serde(default)]
    pub nvme: NvmeCatalog,
    /// QAT VFs and SIOV mdevs.
    #[serde(default)]
    pub qat: QatCatalog,
    /// The kernel's mtty sample.
    #[serde(default)]
    pub mtty: MttyCatalog,
    /// NVIDIA vGPUs.
    #[serde(default)]
    pub nvidia: NvidiaCatalog,
    /// The kernel's VFIO migration variant drivers.
    #[serde(default)]
    pub variant: VariantCatalog,
}

/// True for a vGPU profile name (`M60-0B`, `A100D-1-10C`).
pub fn is_profile(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl NvidiaCatalog {
    /// The documented incompatibility between two boards, if any (either direction).
    pub fn never_between(&self, a: PciId, b: PciId) -> Option<&NvidiaNever> {
        self.never
            .iter()
            .find(|n| (n.between.contains(&a) && n.and.contains(&b)) || (n.between.contains(&b) && n.and.contains(&a)))
    }

    /// A board's name, if catalogued.
    pub fn board_name(&self, id: PciId) -> Option<&str> {
        self.boards.iter().find(|b| b.id == id).map(|b| b.name.as_str())
    }

    /// The rule in force (identical unless a catalog says otherwise).
    pub fn manager_rule(&self) -> ManagerRule {
        self.manager_versions.unwrap_or_default()
    }
}

pub(crate) fn pci_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PciId>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts.iter().map(|t| t.parse().map_err(serde::de::Error::custom)).collect()
}

impl Catalog {
    /// The catalog compiled into devmig.
    pub fn embedded() -> Self {
        // The embedded text is checked by a unit test; failing here is a build defect.
        Self::from_toml(EMBEDDED, "embedded").unwrap_or_default()
    }

    /// The embedded catalog's TOML text.
    pub fn embedded_text() -> &'static str {
        EMBEDDED
    }

    /// Parses and validates a catalog; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, VendorError> {
        let catalog: Catalog = toml::from_str(text)
            .map_err(|e| VendorError::Catalog { origin: origin.to_string(), why: e.to_string().trim().to_string() })?;
        catalog.validate(origin)?;
        Ok(catalog)
    }

    /// The embedded catalog extended with the file at `path`.
    pub fn embedded_with_file(path: &Path) -> Result<Self, VendorError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| VendorError::Catalog { origin: origin.clone(), why: e.to_string() })?;
        let extra = Self::from_toml(&text, &origin)?;
        let mut merged = Self::embedded();
        merged.extend(extra);
        merged.validate(&origin)?;
        Ok(merged)
    }

    /// Appends every list of `other` to this catalog.
    pub fn extend(&mut self, other: Catalog) {
        self.i915.parents.extend(other.i915.parents);
        self.i915.types.extend(other.i915.types);
        self.nvme.functions.extend(other.nvme.functions);
        self.qat.families.extend(other.qat.families);
        self.qat.migrations.extend(other.qat.migrations);
        self.mtty.types.extend(other.mtty.types);
        if other.nvidia.manager_versions.is_some() {
            self.nvidia.manager_versions = other.nvidia.manager_versions;
        }
        self.nvidia.boards.extend(other.nvidia.boards);
        self.nvidia.migrations.extend(other.nvidia.migrations);
        self.nvidia.never.extend(other.nvidia.never);
        self.nvidia.types.extend(other.nvidia.types);
        // A driver row named like an earlier one replaces it (an operator's narrower or wider rules).
        for row in other.variant.drivers {
            match self.variant.drivers.iter_mut().find(|d| d.name == row.name) {
                Some(earlier) => *earlier = row,
                None => self.variant.drivers.push(row),
            }
        }
    }

    fn validate(&self, origin: &str) -> Result<(), VendorError> {
        let bad = |why: String| VendorError::Catalog { origin: origin.to_string(), why };
        let mut seen = BTreeSet::new();
        for (i, t) in self.i915.types.iter().enumerate() {
            if t.instances == 0 {
                return Err(bad(format!("i915.types[{i}].instances must be at least 1")));
            }
            if !is_type_id(&t.name) {
                return Err(bad(format!("i915.types[{i}].name {:?} is not a valid type id", t.name)));
            }
            if !seen.insert(t.name.as_str()) {
                return Err(bad(format!("i915.types[{i}].name {:?} is listed twice", t.name)));
            }
        }
        let mut families = BTreeSet::new();
        for (i, f) in self.qat.families.iter().enumerate() {
            if f.name.is_empty() || !f.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(bad(format!("qat.families[{i}].name {:?} must match [a-z0-9_]+", f.name)));
            }
            if !families.insert(f.name.as_str()) {
                return Err(bad(format!("qat.families[{i}].name {:?} is listed twice", f.name)));
            }
            for (j, m) in f.mdev_types.iter().enumerate() {
                let ok = m.split_once('/').is_some_and(|(id, ty)| id.parse::<PciId>().is_ok() && is_type_id(ty));
                if !ok {
                    return Err(bad(format!(
                        "qat.families[{i}].mdev_types[{j}] {m:?} is not parent-vendor:parent-device/type-id"
                    )));
                }
            }
        }
        for (i, m) in self.qat.migrations.iter().enumerate() {
            for name in std::iter::once(&m.from).chain(&m.to) {
                if !families.contains(name.as_str()) {
                    return Err(bad(format!("qat.migrations[{i}] names unknown family {name:?}")));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.mtty.types.iter().enumerate() {
            if t.ports == 0 || !is_type_id(&t.name) || !seen.insert(t.name.as_str()) {
                return Err(bad(format!("mtty.types[{i}] {:?} needs a unique valid name and ports >= 1", t.name)));
            }
        }
        self.validate_nvidia(&bad)?;
        self.variant.validate(&bad)
    }

    fn validate_nvidia(&self, bad: &dyn Fn(String) -> VendorError) -> Result<(), VendorError> {
        let n = &self.nvidia;
        let mut seen = BTreeSet::new();
        for (i, t) in n.types.iter().enumerate() {
            if !is_type_id(&t.id) || !seen.insert(t.id.as_str()) {
                return Err(bad(format!("nvidia.types[{i}].id {:?} must be a unique valid type id", t.id)));
            }
            if t.max_instances == 0 || t.framebuffer_mib == 0 || !is_profile(&t.profile) {
                return Err(bad(format!(
                    "nvidia.types[{i}] ({}): profile [A-Za-z0-9_.-]+, framebuffer_mib and max_instances >= 1",
                    t.id
                )));
            }
        }
        for (i, e) in n.migrations.iter().enumerate() {
            for from in &e.from {
                for to in &e.to {
                    if let Some(never) = n.never_between(*from, *to) {
                        return Err(bad(format!(
                            "nvidia.migrations[{i}] lets {from} migrate to {to}, which {} ({})",
                            never.why, never.source
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Target ids reachable from `source` under `rules`, always including `source` itself.
    pub fn targets_of(rules: &[IdRule], source: PciId) -> BTreeSet<PciId> {
        let mut out: BTreeSet<PciId> =
            rules.iter().filter(|r| r.from.contains(&source)).flat_map(|r| r.to.iter().copied()).collect();
        out.insert(source);
        out
    }

    /// Every group [`Catalog::targets_of`] can answer for a source id with an edge, as strings.
    pub fn id_groups(rules: &[IdRule]) -> Vec<BTreeSet<String>> {
        let sources: BTreeSet<PciId> = rules.iter().flat_map(|r| r.from.iter().copied()).collect();
        let groups: BTreeSet<BTreeSet<String>> =
            sources.into_iter().map(|s| Self::targets_of(rules, s).iter().map(PciId::to_string).collect()).collect();
        groups.into_iter().collect()
    }

    /// True when `to` is `from` or an edge of `rules` leads from `from` to `to` (no allocation).
    pub fn reaches(rules: &[IdRule], from: PciId, to: PciId) -> bool {
        from == to || rules.iter().any(|r| r.from.contains(&from) && r.to.contains(&to))
    }

    /// True when QAT family `from` may migrate to family `to`.
    pub fn qat_reaches(&self, from: &str, to: &str) -> bool {
        from == to || self.qat.migrations.iter().any(|m| m.from == from && m.to.iter().any(|t| t == to))
    }

    /// The GVT-g type named `name`.
    pub fn gvt_type(&self, name: &str) -> Option<&GvtType> {
        self.i915.types.iter().find(|t| t.name == name)
    }

    /// The QAT family of a VF id.
    pub fn qat_family_of_vf(&self, id: PciId) -> Option<&QatFamily> {
        self.qat.families.iter().find(|f| f.vf_ids.contains(&id))
    }

    /// The QAT family of an mdev type on a parent with `parent_id`.
    pub fn qat_family_of_mdev(&self, parent_id: PciId, type_id: &str) -> Option<&QatFamily> {
        let key = format!("{parent_id}/{type_id}");
        self.qat.families.iter().find(|f| f.mdev_types.contains(&key))
    }

    /// QAT families `family` may migrate to (always including itself).
    pub fn qat_targets(&self, family: &str) -> BTreeSet<String> {
        let mut out: BTreeSet<String> =
            self.qat.migrations.iter().filter(|m| m.from == family).flat_map(|m| m.to.iter().cloned()).collect();
        out.insert(family.to_string());
        out
    }

    /// Every group [`Catalog::qat_targets`] can answer for a family with an edge.
    pub fn qat_groups(&self) -> Vec<BTreeSet<String>> {
        let groups: BTreeSet<BTreeSet<String>> =
            self.qat.migrations.iter().map(|m| self.qat_targets(&m.from)).collect();
        groups.into_iter().collect()
    }

    /// An NVIDIA vGPU type by id.
    pub fn nvidia_type(&self, id: &str) -> Option<&NvidiaType> {
        self.nvidia.types.iter().find(|t| t.id == id)
    }

    /// Ports per instance of an mtty type.
    pub fn mtty_ports(&self, type_id: &str) -> Option<u32> {
        self.mtty.types.iter().find(|t| t.name == type_id).map(|t| t.ports)
    }
}

/// An mdev type id as the kernel names them: `[A-Za-z0-9_.-]+`, not `.` or `..`.
pub(crate) fn is_type_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid() {
        let c = Catalog::from_toml(EMBEDDED, "embedded").expect("embedded catalog parses");
        assert_eq!(c.gvt_type("i915-GVTg_V5_4").map(|t| t.instances), Some(4));
        assert_eq!(c, Catalog::embedded());
    }

    #[test]
    fn errors_name_the_bad_key() {
        let e = Catalog::from_toml("[i915]\n[[i915.types]]\nname = \"x\"\ninstances = 0\n", "t").unwrap_err();
        assert!(e.to_string().contains("i915.types[0].instances"), "{e}");
        let e = Catalog::from_toml("[nvme]\nfunctions = [{ from = [\"zz:1\"], to = [] }]\n", "t").unwrap_err();
        assert!(e.to_string().contains("zz:1"), "{e}");
        let e = Catalog::from_toml("[qat]\nbogus = 1\n", "t").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Catalog::from_toml("[[qat.migrations]]\nfrom = \"a\"\nto = []\n", "t").unwrap_err();
        assert!(e.to_string().contains("unknown family \"a\""), "{e}");
    }

    #[test]
    fn id_rules_are_directional() {
        let c = Catalog::embedded();
        let kbl: PciId = "8086:591b".parse().expect("id");
        let kblr: PciId = "8086:5917".parse().expect("id");
        assert!(Catalog::targets_of(&c.i915.parents, kbl).contains(&kblr));
        assert!(!Catalog::targets_of(&c.i915.parents, kblr).contains(&kbl));
    }
}
