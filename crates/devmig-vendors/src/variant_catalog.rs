//! The catalog of the kernel's VFIO migration variant drivers (`mlx5_vfio_pci`, ...): which
//! functions each binds, which host facts must relate how, and what only the destination
//! driver's resume decides. One row per driver; an operator's `--catalog` adds rows, or replaces
//! the row of the same name.
use std::collections::BTreeSet;

use serde::Deserialize;

use crate::{Catalog, IdRule, PciId, VendorError};

/// How a fact of the source and the same fact of the target must relate.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FactRule {
    /// The same text (firmware versions, board ids).
    Equal,
    /// The same set of tokens, in any order (`sym;asym` is `asym;sym`).
    SameSet,
    /// The target's tokens include every source token.
    Superset,
}

/// One host fact a variant driver's migration depends on, read from sysfs.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariantFact {
    /// Short name (`[a-z0-9_]+`): the rule is `vfio_variant.<name>`.
    pub name: String,
    /// The file, relative to the VF's sysfs directory; a `*` component stands for the one entry
    /// of that directory (`physfn/infiniband/*/fw_ver`).
    pub file: String,
    /// How the two values must relate.
    pub rule: FactRule,
    /// What the rule requires, in one sentence.
    pub why: String,
    /// Where the requirement is stated.
    pub source: String,
}

/// A condition on one host file without which the driver offers no migration at all (the VF
/// then has no version and is no target): a number at least some value, or an exact text.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariantRequirement {
    /// The file, relative to the VF's sysfs directory (as [`VariantFact::file`]).
    pub file: String,
    /// The lowest accepted number (`0x30` or decimal), compared as a number.
    pub at_least: Option<String>,
    /// The one accepted text.
    pub equals: Option<String>,
    /// Why the driver needs it, in one sentence.
    pub why: String,
    /// Where that is stated.
    pub source: String,
}

/// A `0x`-prefixed hex or a decimal number.
pub(crate) fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl VariantRequirement {
    /// Whether `value` (the file's text) meets it.
    pub fn met_by(&self, value: &str) -> bool {
        let at_least = match &self.at_least {
            Some(min) => parse_number(value).zip(parse_number(min)).is_some_and(|(v, m)| v >= m),
            None => true,
        };
        at_least && self.equals.as_deref().is_none_or(|want| value.trim() == want)
    }
}

/// What only the destination's resume can tell (firmware or device checks no host file shows).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AtResume {
    /// What is checked there.
    pub what: String,
    /// Where that is stated.
    pub source: String,
}

/// One in-kernel VFIO migration variant driver.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariantDriver {
    /// The registered driver name (`mlx5_vfio_pci`), as the VF's `driver` link shows it.
    pub name: String,
    /// The devices it serves, in a few words.
    pub title: String,
    /// VF ids in the driver's id table.
    #[serde(deserialize_with = "crate::catalog::pci_ids")]
    pub ids: Vec<PciId>,
    /// Where the id table is.
    pub source: String,
    /// Id edges beyond "the same id": the driver's resume does not compare these ids.
    #[serde(default)]
    pub migrations: Vec<IdRule>,
    /// Host facts that must relate.
    #[serde(default)]
    pub facts: Vec<VariantFact>,
    /// Conditions each end must meet for the driver to offer migration at all.
    #[serde(default)]
    pub requires: Vec<VariantRequirement>,
    /// What only the destination's resume decides.
    #[serde(default)]
    pub at_resume: Vec<AtResume>,
}

/// Variant-driver knowledge.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VariantCatalog {
    /// One row per driver.
    #[serde(default)]
    pub drivers: Vec<VariantDriver>,
}

/// True for a driver or fact name (`[a-z0-9_]+`, at most 64 bytes).
pub(crate) fn is_snake_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// True for a fact file: relative components of `[A-Za-z0-9_.-]` (not `.`/`..`) or `*`.
pub(crate) fn is_fact_file(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|c| {
            c == "*"
                || (!c.is_empty()
                    && c != "."
                    && c != ".."
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)))
        })
}

impl VariantCatalog {
    /// The row of driver `name`.
    pub fn driver(&self, name: &str) -> Option<&VariantDriver> {
        self.drivers.iter().find(|d| d.name == name)
    }

    pub(crate) fn validate(&self, bad: &dyn Fn(String) -> VendorError) -> Result<(), VendorError> {
        let mut names = BTreeSet::new();
        for (i, d) in self.drivers.iter().enumerate() {
            let at = format!("variant.drivers[{i}]");
            if !is_snake_name(&d.name) || !names.insert(d.name.as_str()) {
                return Err(bad(format!("{at}.name {:?} must be a unique [a-z0-9_]+ driver name", d.name)));
            }
            if d.ids.is_empty() {
                return Err(bad(format!("{at} ({}): ids must list the driver's VF ids", d.name)));
            }
            for (j, e) in d.migrations.iter().enumerate() {
                if let Some(id) = e.from.iter().chain(&e.to).find(|id| !d.ids.contains(id)) {
                    return Err(bad(format!("{at}.migrations[{j}] names {id}, which is not in {}'s ids", d.name)));
                }
            }
            for (j, r) in d.requires.iter().enumerate() {
                if !is_fact_file(&r.file) {
                    return Err(bad(format!("{at}.requires[{j}].file {:?} is not a relative path", r.file)));
                }
                let number_ok = r.at_least.as_deref().is_none_or(|n| parse_number(n).is_some());
                if !number_ok || (r.at_least.is_none() && r.equals.is_none()) {
                    return Err(bad(format!(
                        "{at}.requires[{j}] needs at_least (a number: 0x30 or 48) or equals (a text)"
                    )));
                }
            }
            let mut facts = BTreeSet::new();
            for (j, f) in d.facts.iter().enumerate() {
                if !is_snake_name(&f.name) || !facts.insert(f.name.as_str()) {
                    return Err(bad(format!("{at}.facts[{j}].name {:?} must be a unique [a-z0-9_]+ name", f.name)));
                }
                if !is_fact_file(&f.file) {
                    return Err(bad(format!(
                        "{at}.facts[{j}].file {:?} must be a relative path of [A-Za-z0-9_.-] components or *",
                        f.file
                    )));
                }
            }
        }
        Ok(())
    }

    /// Every id group the driver rows' edges give (for Placement traits).
    pub fn id_groups(&self) -> Vec<BTreeSet<String>> {
        self.drivers.iter().flat_map(|d| Catalog::id_groups(&d.migrations)).collect()
    }
}
