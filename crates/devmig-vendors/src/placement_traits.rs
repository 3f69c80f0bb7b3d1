//! Step a as OpenStack Placement traits.
//!
//! Placement traits are presence-only names (`^CUSTOM_[A-Z0-9_]+$`, at most 255 characters), and
//! Nova's request groups only say `required=A,B` (all of them): no "any of", no range. So a
//! target carries one trait per *source class it accepts*, and a source requires one trait per
//! constraint of its [`Requirement`]. Per constraint kind (all traits start with
//! [`TRAIT_PREFIX`], then the attribute's name in capitals, `I915_GVT_VERSION`):
//!
//! | constraint | target carries | source requires |
//! |---|---|---|
//! | `Equals` (string, integer) | `<ATTR>_EQ_<value>` | `<ATTR>_EQ_<value>` |
//! | `OneOf` of one value | as `Equals` | as `Equals` |
//! | `OneOf` of a catalog group | `<ATTR>_IN_<group hash>` for each group holding its value | the group's trait |
//! | `Contains`, `Superset` | `<ATTR>_HAS_<member>` per member of its set | one trait per required member |
//! | `Equals` (set) | `<ATTR>_EQ_<members, comma-joined>` for its set | that trait |
//! | `SemverCompatible` | `<ATTR>_V<major>_GE<k>` for every `k` up to its minor (below 32; then 32, 64, 128, ...) | `<ATTR>_V<major>_GE<min_minor>` |
//!
//! A value is written as it is when it is 1..=40 of `[A-Z0-9]`, else as its capitalised,
//! shortened form plus `_H` and 12 hex digits of its SHA-256 (`EQ_I915_GVTG_V5_4_H1A2B…`), so two
//! different values never share a trait. Each model names the groups its `OneOf` constraints
//! take their values from ([`VendorModel::one_of_groups`]: its catalog's compatible-id groups).
//!
//! The law (property-tested in `tests/soundness.rs`): a target carries every trait a source
//! requires exactly when the target's attributes satisfy the source's requirement. Where a
//! constraint cannot be written as traits (a `OneOf` over values that are not one of the model's
//! groups, a minor version of 32 or more between two powers of two) the source requires a
//! coarser trait or none for it, and [`SourceTraits::coarse`] says which: Placement then admits
//! more targets than step a, never fewer.
use serde::Serialize;
use std::collections::BTreeSet;

use crate::attributes::joined;
use crate::described::{KERNEL_DRIVER_ATTR, KERNEL_VERSION_ATTR};
use crate::digest::sha256_hex;
use crate::models::MODEL_ATTR;
use crate::{AttrValue, Attributes, Constraint, Registry, Requirement};

/// The prefix of every trait devmig sets; `placement sync` never touches another.
pub const TRAIT_PREFIX: &str = "CUSTOM_DEVMIG_";
/// Placement's limit on a trait name.
pub const MAX_TRAIT_LEN: usize = 255;
/// Minor versions below this get one trait each; above it, powers of two.
const EXACT_MINORS: u32 = 32;
/// Longest value written as it is.
const PLAIN_VALUE_LEN: usize = 40;
/// Characters of a value's readable part in front of its hash.
const HASHED_VALUE_LEN: usize = 24;
/// Attributes no requirement constrains (the kernel's whole string, the bound driver): no trait.
const UNCONSTRAINED: [&str; 2] = [KERNEL_VERSION_ATTR, KERNEL_DRIVER_ATTR];

/// The traits a target must all carry to be worth step b for one source.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SourceTraits {
    /// Every trait (`required=` in a request group, `trait:X=required` in a flavor).
    pub required: BTreeSet<String>,
    /// The constraints written coarser than step a applies them, with why.
    pub coarse: Vec<Coarse>,
}

/// A constraint Placement checks more loosely than step a.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coarse {
    /// The constraint, as `match` prints it.
    pub constraint: String,
    /// What Placement checks instead.
    pub instead: String,
}

/// True when `name` is a trait name Placement accepts for a custom trait.
pub fn is_custom_trait(name: &str) -> bool {
    name.len() <= MAX_TRAIT_LEN
        && name.strip_prefix("CUSTOM_").is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Every trait a target with `attrs` carries: what it accepts, per the table in the module's
/// documentation. `attrs` are a device's step-a attributes (as the agent reports them).
pub fn target_traits(registry: &Registry, attrs: &Attributes) -> BTreeSet<String> {
    let model = match attrs.get(MODEL_ATTR) {
        Some(AttrValue::String(m)) => registry.model_named(m),
        _ => None,
    };
    let mut out = BTreeSet::new();
    for (attr, value) in attrs.iter().filter(|(a, _)| !UNCONSTRAINED.contains(&a.as_str())) {
        match value {
            AttrValue::String(s) => {
                out.insert(name(attr, "EQ", s));
                for group in model.map(|m| m.one_of_groups(attr)).unwrap_or_default() {
                    if group.contains(s) {
                        out.insert(group_trait(attr, &group));
                    }
                }
            }
            AttrValue::Int(i) => {
                out.insert(name(attr, "EQ", &i.to_string()));
            }
            AttrValue::Set(members) => {
                out.extend(members.iter().map(|m| name(attr, "HAS", m)));
                // The whole set too: what a source requiring the same set asks for.
                out.insert(name(attr, "EQ", &joined(members)));
            }
            AttrValue::Semver(v) => {
                let ks = (0..=v.minor.min(EXACT_MINORS - 1)).chain(
                    std::iter::successors(Some(EXACT_MINORS), |k| k.checked_mul(2)).take_while(|k| *k <= v.minor),
                );
                out.extend(ks.map(|k| semver_trait(attr, v.major, k)));
            }
        }
    }
    out
}

/// The traits a source with requirement `req` (from a string of model `model`, or
/// [`crate::OPAQUE_MODEL`]) requires of a target, and which constraints they check coarsely.
pub fn source_traits(registry: &Registry, model: &str, req: &Requirement) -> SourceTraits {
    let model = registry.model_named(model);
    let mut out = SourceTraits::default();
    let coarse = |c: &Constraint, instead: String| Coarse { constraint: c.to_string(), instead };
    let mut coarse_list = Vec::new();
    for c in &req.all {
        match c {
            Constraint::Equals { attr, value: AttrValue::String(s) } => {
                out.required.insert(name(attr, "EQ", s));
            }
            Constraint::Equals { attr, value: AttrValue::Int(i) } => {
                out.required.insert(name(attr, "EQ", &i.to_string()));
            }
            Constraint::Equals { attr, value: AttrValue::Set(members) } => {
                out.required.insert(name(attr, "EQ", &joined(members)));
            }
            Constraint::Equals { attr, value: AttrValue::Semver(v) } => {
                let k = written_minor(v.minor);
                out.required.insert(semver_trait(attr, v.major, k));
                coarse_list.push(coarse(c, format!("{}.x with minor >= {k}", v.major)));
            }
            Constraint::OneOf { attr, values } if values.len() == 1 => {
                out.required.extend(values.iter().map(|v| name(attr, "EQ", v)));
            }
            Constraint::OneOf { attr, values } => {
                if model.is_some_and(|m| m.one_of_groups(attr).contains(values)) {
                    out.required.insert(group_trait(attr, values));
                } else {
                    coarse_list.push(coarse(c, "nothing: the values are not one of the model's groups".to_string()));
                }
            }
            Constraint::Contains { attr, value } => {
                out.required.insert(name(attr, "HAS", value));
            }
            Constraint::Superset { attr, values } => out.required.extend(values.iter().map(|v| name(attr, "HAS", v))),
            Constraint::SemverCompatible { attr, major, min_minor } => {
                let k = written_minor(*min_minor);
                out.required.insert(semver_trait(attr, *major, k));
                if k != *min_minor {
                    coarse_list.push(coarse(c, format!("{major}.x with minor >= {k}")));
                }
            }
        }
    }
    out.coarse = coarse_list;
    out
}

/// The `GE` trait a target of minor `minor` or more surely carries: `minor` itself below
/// [`EXACT_MINORS`], else the largest power of two not above it.
fn written_minor(minor: u32) -> u32 {
    if minor < EXACT_MINORS { minor } else { 1u32 << (31 - minor.leading_zeros()) }
}

/// `CUSTOM_DEVMIG_<ATTR>_<OP>_<VALUE>`.
fn name(attr: &str, op: &str, value: &str) -> String {
    format!("{TRAIT_PREFIX}{}_{op}_{}", upper(attr), encode_value(value))
}

fn semver_trait(attr: &str, major: u32, k: u32) -> String {
    format!("{TRAIT_PREFIX}{}_V{major}_GE{k}", upper(attr))
}

/// The trait of a `OneOf` group: its members' hash (order-free: the set is sorted).
fn group_trait(attr: &str, group: &BTreeSet<String>) -> String {
    let joined = group.iter().map(String::as_str).collect::<Vec<_>>().join("\n");
    format!("{TRAIT_PREFIX}{}_IN_{}", upper(attr), sha256_hex(&joined, 12).to_ascii_uppercase())
}

/// An attribute name in capitals, other characters as `_` (`i915.gvt_version` -> `I915_GVT_VERSION`).
fn upper(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// A value as it is when it is plain capitals and digits, else readable part + `_H` + hash.
fn encode_value(v: &str) -> String {
    let plain =
        !v.is_empty() && v.len() <= PLAIN_VALUE_LEN && v.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if plain {
        return v.to_string();
    }
    let mut readable: String = upper(v).chars().take(HASHED_VALUE_LEN).collect();
    if !readable.is_empty() {
        readable.push('_');
    }
    format!("{readable}H{}", sha256_hex(v, 12).to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalog, DriverVersion};

    fn registry() -> Registry {
        Registry::new(Catalog::embedded())
    }

    #[test]
    fn plain_values_are_kept_and_others_hashed_apart() {
        assert_eq!(encode_value("4"), "4");
        assert_eq!(encode_value("ABC9"), "ABC9");
        let lower = encode_value("abc9");
        assert!(lower.starts_with("ABC9_H") && lower.len() == "ABC9_H".len() + 12, "{lower}");
        assert_ne!(encode_value("abc9"), encode_value("ABC9"));
        assert_ne!(encode_value("a.b"), encode_value("a_b"));
        assert!(encode_value("").starts_with('H'));
    }

    #[test]
    fn a_minor_past_the_exact_range_is_written_as_the_power_of_two_below_it() {
        let attrs = Attributes::from([
            ("model".to_string(), AttrValue::String("mtty".into())),
            ("x.v".to_string(), AttrValue::Semver(DriverVersion::new(5, 100, 0))),
        ]);
        let have = target_traits(&registry(), &attrs);
        assert!(have.contains("CUSTOM_DEVMIG_X_V_V5_GE31"));
        assert!(have.contains("CUSTOM_DEVMIG_X_V_V5_GE64"));
        assert!(!have.contains("CUSTOM_DEVMIG_X_V_V5_GE128"));
        let req =
            Requirement { all: vec![Constraint::SemverCompatible { attr: "x.v".into(), major: 5, min_minor: 70 }] };
        let want = source_traits(&registry(), "mtty", &req);
        assert_eq!(want.required, BTreeSet::from(["CUSTOM_DEVMIG_X_V_V5_GE64".to_string()]));
        assert_eq!(want.coarse.len(), 1, "{want:?}");
        assert!(want.required.is_subset(&have), "sound: 5.100 meets >= 5.70");
    }

    #[test]
    fn a_one_of_outside_the_models_groups_is_dropped_and_said() {
        let req = Requirement {
            all: vec![Constraint::OneOf {
                attr: "i915.parent_id".into(),
                values: ["8086:0001".to_string(), "8086:0002".to_string()].into(),
            }],
        };
        let want = source_traits(&registry(), "i915", &req);
        assert!(want.required.is_empty());
        assert!(want.coarse[0].instead.contains("not one of the model's groups"), "{want:?}");
    }

    #[test]
    fn trait_names_are_what_placement_accepts() {
        assert!(is_custom_trait("CUSTOM_DEVMIG_MODEL_EQ_H0123"));
        assert!(!is_custom_trait("CUSTOM_"));
        assert!(!is_custom_trait("CUSTOM_a"));
        assert!(!is_custom_trait("HW_CPU_X86_AVX"));
        assert!(!is_custom_trait(&format!("CUSTOM_{}", "A".repeat(250))));
    }
}
