//! Step a for Kubernetes Dynamic Resource Allocation (`resource.k8s.io/v1`).
//!
//! A ResourceSlice lists devices with typed attributes under a domain; a claim selects them
//! with CEL over `device.driver` and `device.attributes["<domain>"].<name>`. devmig's typed
//! attributes map onto DRA's (its API reference for ResourceSlice and CELDeviceSelector):
//!
//! | devmig | DRA attribute (under [`DOMAIN`]) | selector for a constraint |
//! |---|---|---|
//! | string | `string` (values over 64 characters: readable part + SHA-256 prefix) | `a.x == "v"`, `a.x in [...]` |
//! | integer | `int` | `a.x == 4` |
//! | semver | `version` | `a.x.major() == M && a.x.minor() >= m` (Kubernetes' semver library) |
//! | set | one `bool` per member, `<name>_<8 hex of the member's SHA-256>` (DRA has no sets) | `("x_h" in a) && a.x_h` per member |
//!
//! Names are C identifiers of at most 32 characters (`i915.gvt_version` -> `i915_gvt_version`).
//! A missing attribute is a runtime error that aborts the allocation, so every selector starts
//! with `device.driver == "<domain>"` and the model (or an opaque source's driver prefix), and
//! every attribute is tested with `"x" in a` before it is read: a device without it is simply not
//! selected. The law, property-tested against Google's CEL (`cel-expr-python`):
//! a selector is true on a device exactly when step a admits it.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::attributes::joined;
use crate::digest::sha256_hex;
use crate::{AttrValue, Attributes, Constraint, Requirement};

/// The attribute domain and the driver name devmig's devices carry.
pub const DOMAIN: &str = "devmig.io";
/// DRA's limits (resource.k8s.io/v1): attributes and capacities per device.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute name.
pub const MAX_NAME: usize = 32;
/// Longest string value.
pub const MAX_STRING: usize = 64;
/// Longest selector expression (10 KiB).
pub const MAX_EXPRESSION: usize = 10 * 1024;

/// One DRA attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraValue {
    /// `string`.
    String(String),
    /// `int`.
    Int(i64),
    /// `bool`.
    Bool(bool),
    /// `version` (semver).
    Version(String),
}

/// What cannot be written for DRA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraLimit(pub String);

impl std::fmt::Display for DraLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An attribute name as DRA takes it: letters, digits and `_`, starting with a letter, at most
/// 32 characters (longer names keep 23 and a hash).
pub fn name(attr: &str) -> String {
    let mut n: String =
        attr.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !n.starts_with(|c: char| c.is_ascii_alphabetic()) {
        n.insert(0, 'a');
    }
    if n.len() > MAX_NAME {
        n = format!("{}_{}", &n[..23], sha256_hex(attr, 8));
    }
    n
}

/// The bool attribute of one set member.
fn member(attr: &str, value: &str) -> String {
    let base = name(attr);
    let base = &base[..base.len().min(MAX_NAME - 9)];
    format!("{base}_{}", sha256_hex(value, 8))
}

/// A string value as DRA takes it (at most 64 characters; longer ones keep 47 and a hash).
fn string_value(s: &str) -> String {
    if s.len() <= MAX_STRING {
        return s.to_string();
    }
    let mut cut = 47;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}#{}", &s[..cut], sha256_hex(s, 16))
}

/// A device's attributes for a ResourceSlice, by name under [`DOMAIN`].
pub fn attributes(attrs: &Attributes) -> Result<BTreeMap<String, DraValue>, DraLimit> {
    let mut out = BTreeMap::new();
    for (attr, value) in attrs {
        match value {
            AttrValue::String(s) => {
                out.insert(name(attr), DraValue::String(string_value(s)));
            }
            AttrValue::Int(i) => {
                out.insert(name(attr), DraValue::Int(*i));
            }
            AttrValue::Semver(v) => {
                out.insert(name(attr), DraValue::Version(v.to_string()));
            }
            AttrValue::Set(members) => {
                for m in members {
                    out.insert(member(attr, m), DraValue::Bool(true));
                }
                // The whole set as one string too: what a source requiring the same set compares
                // (CEL in DRA tests members by name; it cannot count them).
                out.insert(name(attr), DraValue::String(string_value(&joined(members))));
            }
        }
    }
    if out.len() > MAX_ATTRIBUTES {
        return Err(DraLimit(format!(
            "{} attributes, DRA takes at most {MAX_ATTRIBUTES} per device (a set counts one per member and one)",
            out.len()
        )));
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The CEL selector of a source whose requirement is `req` (of model `model`, or opaque).
pub fn selector(req: &Requirement) -> Result<String, DraLimit> {
    let a = format!("device.attributes[{}]", quote(DOMAIN));
    let mut parts = vec![format!("device.driver == {}", quote(DOMAIN))];
    // The model (or, for an opaque source, the driver prefix) first: it guards the rest.
    let mut constraints: Vec<&Constraint> = req.all.iter().collect();
    constraints
        .sort_by_key(|c| !matches!(c, Constraint::Equals { attr, .. } if attr == "model" || attr == "kernel.prefix"));
    for c in constraints {
        let n = name(c.attr());
        // Every attribute is tested for presence first: a device without it is simply not
        // selected (a missing attribute would abort the whole allocation).
        let has = format!("{} in {a}", quote(&n));
        parts.push(match c {
            Constraint::Equals { value: AttrValue::String(s), .. } => {
                format!("({has} && {a}.{n} == {})", quote(&string_value(s)))
            }
            Constraint::Equals { value: AttrValue::Int(i), .. } => format!("({has} && {a}.{n} == {i})"),
            Constraint::Equals { value: AttrValue::Semver(v), .. } => format!(
                "({has} && {a}.{n}.major() == {} && {a}.{n}.minor() == {} && {a}.{n}.patch() == {})",
                v.major, v.minor, v.bugfix
            ),
            Constraint::Equals { value: AttrValue::Set(members), .. } => {
                format!("({has} && {a}.{n} == {})", quote(&string_value(&joined(members))))
            }
            Constraint::OneOf { values, .. } => {
                let list: Vec<String> = values.iter().map(|v| quote(&string_value(v))).collect();
                format!("({has} && {a}.{n} in [{}])", list.join(", "))
            }
            Constraint::Contains { attr, value } => members_test(&a, attr, std::iter::once(value)),
            Constraint::Superset { attr, values } => members_test(&a, attr, values.iter()),
            Constraint::SemverCompatible { major, min_minor, .. } => {
                format!("({has} && {a}.{n}.major() == {major} && {a}.{n}.minor() >= {min_minor})")
            }
        });
    }
    let expr = parts.join(" && ");
    if expr.len() > MAX_EXPRESSION {
        return Err(DraLimit(format!("the selector is {} bytes, DRA takes at most {MAX_EXPRESSION}", expr.len())));
    }
    Ok(expr)
}

fn members_test<'a>(a: &str, attr: &str, members: impl Iterator<Item = &'a String>) -> String {
    let tests: Vec<String> = members
        .map(|m| {
            let n = member(attr, m);
            format!("({} in {a} && {a}.{n})", quote(&n))
        })
        .collect();
    if tests.is_empty() { "true".to_string() } else { tests.join(" && ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_c_identifiers_within_the_limit() {
        assert_eq!(name("i915.gvt_version"), "i915_gvt_version");
        assert_eq!(name("9x"), "a9x");
        let long = name("a.very_long_attribute_name_beyond_the_limit");
        assert!(long.len() <= MAX_NAME && long.starts_with("a_very_long_attribute_n"), "{long}");
        let m = member("qat.crypto", "chacha20-poly1305");
        assert!(m.len() <= MAX_NAME && m.starts_with("qat_crypto_"), "{m}");
    }

    #[test]
    fn a_device_over_dras_attribute_limit_is_refused_naming_the_count() {
        let members: std::collections::BTreeSet<String> = (0..40).map(|i| format!("alg{i}")).collect();
        let attrs = Attributes::from([("qat.crypto".to_string(), AttrValue::Set(members))]);
        let e = attributes(&attrs).expect_err("40 members");
        assert!(e.0.contains("41 attributes") && e.0.contains("at most 32"), "{e}");
    }

    #[test]
    fn long_strings_are_shortened_apart() {
        let a = "x".repeat(70);
        let b = format!("{}y", "x".repeat(69));
        assert!(string_value(&a).len() <= MAX_STRING);
        assert_ne!(string_value(&a), string_value(&b));
        assert_eq!(string_value("short"), "short");
    }

    #[test]
    fn the_guard_comes_first_and_strings_are_quoted() {
        let req = Requirement {
            all: vec![
                Constraint::Equals { attr: "x".into(), value: AttrValue::String("a\"b".into()) },
                Constraint::Equals { attr: "model".into(), value: AttrValue::String("mtty".into()) },
            ],
        };
        let s = selector(&req).expect("selector");
        let a = "device.attributes[\"devmig.io\"]";
        assert!(
            s.starts_with(&format!("device.driver == \"devmig.io\" && (\"model\" in {a} && {a}.model == \"mtty\")")),
            "{s}"
        );
        assert!(s.ends_with(".x == \"a\\\"b\")"), "{s}");
    }
}
