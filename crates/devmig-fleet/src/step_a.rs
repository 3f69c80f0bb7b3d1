//! Step a in SQL: a source's [`Requirement`] becomes joins on the indexed `attrs` table.
//!
//! The SQL is never stricter than [`Requirement::satisfied_by`] (constraints it cannot express,
//! such as set equality, are left to the post-filter), and every row it returns is re-checked
//! with `satisfied_by`, so the database and the vendor model's step a agree exactly.
use devmig_vendors::{AttrValue, Attributes, Constraint, Requirement};

use crate::db::Val;

/// Rows of `attrs` for one device's attributes: (name, kind, s, i, major, minor, patch).
pub fn attr_rows(attrs: &Attributes) -> Vec<(String, &'static str, Val, Val, Val, Val, Val)> {
    let mut rows = Vec::new();
    for (name, value) in attrs {
        match value {
            AttrValue::String(s) => {
                rows.push((name.clone(), "s", Val::from(s.as_str()), Val::Null, Val::Null, Val::Null, Val::Null))
            }
            AttrValue::Int(i) => {
                rows.push((name.clone(), "i", Val::Null, Val::Int(*i), Val::Null, Val::Null, Val::Null))
            }
            AttrValue::Semver(v) => rows.push((
                name.clone(),
                "v",
                Val::Null,
                Val::Null,
                Val::Int(v.major.into()),
                Val::Int(v.minor.into()),
                Val::Int(v.bugfix.into()),
            )),
            AttrValue::Set(set) => {
                for m in set {
                    rows.push((name.clone(), "set", Val::from(m.as_str()), Val::Null, Val::Null, Val::Null, Val::Null));
                }
            }
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
    let mut join = |c: &mut Compiled, attr: &str, cond: &str, vals: Vec<Val>| {
        let a = format!("a{alias}");
        alias += 1;
        let n = first + c.params.len();
        c.params.push(Val::from(attr));
        let mut cond = cond.replace("{a}", &a);
        for (k, v) in vals.into_iter().enumerate() {
            cond = cond.replacen(&format!("{{{k}}}"), &format!("${}", n + 1 + k), 1);
            c.params.push(v);
        }
        c.joins.push_str(&format!(" JOIN attrs {a} ON {a}.device_id = d.id AND {a}.name = ${n} AND {cond}"));
    };
    for constraint in &req.all {
        match constraint {
            Constraint::Equals { attr, value } => match value {
                AttrValue::String(s) => join(&mut c, attr, "{a}.kind = 's' AND {a}.s = {0}", vec![s.as_str().into()]),
                AttrValue::Int(i) => join(&mut c, attr, "{a}.kind = 'i' AND {a}.i = {0}", vec![Val::Int(*i)]),
                AttrValue::Semver(v) => join(
                    &mut c,
                    attr,
                    "{a}.kind = 'v' AND {a}.major = {0} AND {a}.minor = {1} AND {a}.patch = {2}",
                    vec![Val::Int(v.major.into()), Val::Int(v.minor.into()), Val::Int(v.bugfix.into())],
                ),
                // Set equality: not indexed; the post-filter decides.
                AttrValue::Set(_) => {}
            },
            Constraint::OneOf { attr, values } => {
                if values.is_empty() {
                    c.satisfiable = false;
                    continue;
                }
                let list: Vec<String> = (0..values.len()).map(|k| format!("{{{k}}}")).collect();
                let cond = format!("{{a}}.kind = 's' AND {{a}}.s IN ({})", list.join(", "));
                join(&mut c, attr, &cond, values.iter().map(|v| Val::from(v.as_str())).collect());
            }
            Constraint::Contains { attr, value } => {
                join(&mut c, attr, "{a}.kind = 'set' AND {a}.s = {0}", vec![value.as_str().into()]);
            }
            Constraint::Superset { attr, values } => {
                for v in values {
                    join(&mut c, attr, "{a}.kind = 'set' AND {a}.s = {0}", vec![v.as_str().into()]);
                }
            }
            Constraint::SemverCompatible { attr, major, min_minor } => join(
                &mut c,
                attr,
                "{a}.kind = 'v' AND {a}.major = {0} AND {a}.minor >= {1}",
                vec![Val::Int((*major).into()), Val::Int((*min_minor).into())],
            ),
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
        assert!(c.joins.contains("a1.name = $6") && c.joins.contains("a1.s = $7"));
        assert_eq!(c.params.len(), 5);
    }

    #[test]
    fn empty_one_of_is_unsatisfiable() {
        let req = Requirement { all: vec![Constraint::OneOf { attr: "x".into(), values: Default::default() }] };
        assert!(!compile(&req, 1).satisfiable);
    }
}
