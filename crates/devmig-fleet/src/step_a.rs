//! Step a in SQL: a source's [`Requirement`] becomes joins on the indexed `attrs` table.
//!
//! The SQL is never stricter than [`Requirement::satisfied_by`] (constraints it cannot express,
//! such as set equality, are left to the post-filter), and every row it returns is re-checked
//! with `satisfied_by`, so the database and the vendor model's step a agree exactly.
use devmig_vendors::{AttrValue, Attributes, Constraint, Requirement};

use crate::db::Val;

/// The indexed key of a string value.
fn string_key(s: &str) -> String {
    format!("s:{s}")
}

/// The indexed key of a set member.
fn member_key(m: &str) -> String {
    format!("m:{m}")
}

/// The indexed key of a semver: zero-padded, so keys of one major sort by minor, then bugfix.
fn semver_key(major: u32, minor: u32, bugfix: u32) -> String {
    format!("v:{major:010}.{minor:010}.{bugfix:010}")
}

/// Rows of `attrs` for one device's attributes: (name, key). Every typed value becomes one
/// text key (a set one per member) in one index, `(name, akey, device_id)`.
pub fn attr_rows(attrs: &Attributes) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for (name, value) in attrs {
        match value {
            AttrValue::String(s) => rows.push((name.clone(), string_key(s))),
            AttrValue::Int(i) => rows.push((name.clone(), format!("i:{i}"))),
            AttrValue::Semver(v) => rows.push((name.clone(), semver_key(v.major, v.minor, v.bugfix))),
            AttrValue::Set(set) => rows.extend(set.iter().map(|m| (name.clone(), member_key(m)))),
        }
    }
    rows
}

/// A compiled step-a query: joins and their parameters, starting at `$first`.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// `JOIN attrs aN ON ...` clauses (on `d.id`).
    pub joins: String,
    /// Parameters, in placeholder order.
    pub params: Vec<Val>,
    /// False when some constraint can never hold (an empty `OneOf`): no row can match.
    pub satisfiable: bool,
}

/// Compiles `req` into joins whose placeholders start at `$first`.
pub fn compile(req: &Requirement, first: usize) -> Compiled {
    let mut c = Compiled { satisfiable: true, ..Compiled::default() };
    let mut alias = 0;
    let mut join = |c: &mut Compiled, attr: &str, cond: &str, vals: Vec<String>| {
        let a = format!("a{alias}");
        alias += 1;
        let n = first + c.params.len();
        c.params.push(Val::from(attr));
        let mut cond = cond.replace("{a}", &a);
        for (k, v) in vals.into_iter().enumerate() {
            cond = cond.replacen(&format!("{{{k}}}"), &format!("${}", n + 1 + k), 1);
            c.params.push(Val::Text(v));
        }
        c.joins.push_str(&format!(" JOIN attrs {a} ON {a}.device_id = d.id AND {a}.name = ${n} AND {cond}"));
    };
    for constraint in &req.all {
        match constraint {
            Constraint::Equals { attr, value } => match value {
                AttrValue::String(s) => join(&mut c, attr, "{a}.akey = {0}", vec![string_key(s)]),
                AttrValue::Int(i) => join(&mut c, attr, "{a}.akey = {0}", vec![format!("i:{i}")]),
                AttrValue::Semver(v) => {
                    join(&mut c, attr, "{a}.akey = {0}", vec![semver_key(v.major, v.minor, v.bugfix)])
                }
                // Set equality: not indexed; the post-filter decides.
                AttrValue::Set(_) => {}
            },
            Constraint::OneOf { attr, values } => {
                if values.is_empty() {
                    c.satisfiable = false;
                    continue;
                }
                let list: Vec<String> = (0..values.len()).map(|k| format!("{{{k}}}")).collect();
                let cond = format!("{{a}}.akey IN ({})", list.join(", "));
                join(&mut c, attr, &cond, values.iter().map(|v| string_key(v)).collect());
            }
            Constraint::Contains { attr, value } => join(&mut c, attr, "{a}.akey = {0}", vec![member_key(value)]),
            Constraint::Superset { attr, values } => {
                for v in values {
                    join(&mut c, attr, "{a}.akey = {0}", vec![member_key(v)]);
                }
            }
            Constraint::SemverCompatible { attr, major, min_minor } => {
                // Same major, minor at least min_minor: one key range.
                let low = semver_key(*major, *min_minor, 0);
                let high = format!("v:{:010}", u64::from(*major) + 1);
                join(&mut c, attr, "{a}.akey >= {0} AND {a}.akey < {1}", vec![low, high]);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_in_order_of_first_use() {
        let req = Requirement {
            all: vec![
                Constraint::OneOf { attr: "x".into(), values: ["a".to_string(), "b".to_string()].into() },
                Constraint::Contains { attr: "y".into(), value: "z".into() },
            ],
        };
        let c = compile(&req, 3);
        assert!(c.joins.contains("a0.name = $3") && c.joins.contains("IN ($4, $5)"));
        assert!(c.joins.contains("a1.name = $6") && c.joins.contains("a1.akey = $7"));
        assert_eq!(c.params[4], Val::Text("m:z".into()));
        assert_eq!(c.params.len(), 5);
    }

    #[test]
    fn semver_keys_sort_by_minor_within_a_major() {
        assert!(semver_key(1, 9, 0) < semver_key(1, 10, 0));
        assert!(semver_key(1, u32::MAX, u32::MAX) < format!("v:{:010}", 2));
        assert!(semver_key(2, 0, 0) >= format!("v:{:010}", 2));
    }

    #[test]
    fn empty_one_of_is_unsatisfiable() {
        let req = Requirement { all: vec![Constraint::OneOf { attr: "x".into(), values: Default::default() }] };
        assert!(!compile(&req, 1).satisfiable);
    }
}
