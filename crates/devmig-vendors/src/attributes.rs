//! Typed step-a attributes and the requirements a source places on them.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DriverVersion;

/// One typed attribute value, as a scheduler can index it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum AttrValue {
    /// An exact string (ids, normalised URLs, model names).
    String(String),
    /// An integer (port counts, instance counts).
    Int(i64),
    /// A `major.minor.bugfix` version.
    Semver(DriverVersion),
    /// A set of strings (crypto algorithms, achievable resource shares).
    Set(BTreeSet<String>),
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::String(s) => f.write_str(s),
            AttrValue::Int(i) => write!(f, "{i}"),
            AttrValue::Semver(v) => write!(f, "{v}"),
            AttrValue::Set(s) => {
                write!(f, "{{{}}}", s.iter().cloned().collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// A set as one value: its members in order, comma-separated (how Placement traits and DRA
/// carry a whole set, for sources that require that very set).
pub(crate) fn joined(members: &BTreeSet<String>) -> String {
    members.iter().map(String::as_str).collect::<Vec<_>>().join(",")
}

/// The step-a attributes of one device, keyed by namespaced name (`i915.parent_id`).
pub type Attributes = BTreeMap<String, AttrValue>;

/// One condition on one attribute of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Constraint {
    /// The target's value equals this one (strings or integers).
    Equals {
        /// Attribute name.
        attr: String,
        /// Required value.
        value: AttrValue,
    },
    /// The target's string value is one of these.
    OneOf {
        /// Attribute name.
        attr: String,
        /// Accepted values.
        values: BTreeSet<String>,
    },
    /// The target's set contains this value.
    Contains {
        /// Attribute name.
        attr: String,
        /// Required member.
        value: String,
    },
    /// The target's set contains all of these values.
    Superset {
        /// Attribute name.
        attr: String,
        /// Required members.
        values: BTreeSet<String>,
    },
    /// The target's version has this major and at least this minor.
    SemverCompatible {
        /// Attribute name.
        attr: String,
        /// Required major.
        major: u32,
        /// Lowest accepted minor.
        min_minor: u32,
    },
}

impl Constraint {
    /// The attribute this constraint reads.
    pub fn attr(&self) -> &str {
        match self {
            Constraint::Equals { attr, .. }
            | Constraint::OneOf { attr, .. }
            | Constraint::Contains { attr, .. }
            | Constraint::Superset { attr, .. }
            | Constraint::SemverCompatible { attr, .. } => attr,
        }
    }

    /// Whether `value` (the target's, if it has the attribute) meets the constraint.
    pub fn holds(&self, value: Option<&AttrValue>) -> bool {
        match (self, value) {
            (_, None) => false,
            (Constraint::Equals { value: want, .. }, Some(have)) => want == have,
            (Constraint::OneOf { values, .. }, Some(AttrValue::String(s))) => values.contains(s),
            (Constraint::Contains { value: want, .. }, Some(AttrValue::Set(set))) => set.contains(want),
            (Constraint::Superset { values, .. }, Some(AttrValue::Set(set))) => set.is_superset(values),
            (Constraint::SemverCompatible { major, min_minor, .. }, Some(AttrValue::Semver(v))) => {
                v.major == *major && v.minor >= *min_minor
            }
            _ => false,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::Equals { attr, value } => write!(f, "{attr} == {value}"),
            Constraint::OneOf { attr, values } => {
                write!(f, "{attr} in [{}]", values.iter().cloned().collect::<Vec<_>>().join(","))
            }
            Constraint::Contains { attr, value } => write!(f, "{attr} contains {value}"),
            Constraint::Superset { attr, values } => {
                write!(f, "{attr} contains all of [{}]", values.iter().cloned().collect::<Vec<_>>().join(","))
            }
            Constraint::SemverCompatible { attr, major, min_minor } => {
                write!(f, "{attr} is {major}.x with minor >= {min_minor}")
            }
        }
    }
}

/// Everything a target's attributes must satisfy to be worth a step-b check for one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Requirement {
    /// All must hold.
    pub all: Vec<Constraint>,
}

/// A constraint a target failed, with the value it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmet {
    /// The failed constraint.
    pub constraint: Constraint,
    /// The target's value, if it had the attribute.
    pub target_value: Option<AttrValue>,
}

impl Requirement {
    /// The constraints `attrs` fails (empty when the target passes step a).
    pub fn unmet(&self, attrs: &Attributes) -> Vec<Unmet> {
        self.all
            .iter()
            .filter(|c| !c.holds(attrs.get(c.attr())))
            .map(|c| Unmet { constraint: c.clone(), target_value: attrs.get(c.attr()).cloned() })
            .collect()
    }

    /// True when every constraint holds.
    pub fn satisfied_by(&self, attrs: &Attributes) -> bool {
        self.all.iter().all(|c| c.holds(attrs.get(c.attr())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_mistyped_attribute_never_holds() {
        let c = Constraint::Contains { attr: "a".into(), value: "x".into() };
        assert!(!c.holds(None));
        assert!(!c.holds(Some(&AttrValue::String("x".into()))));
        assert!(c.holds(Some(&AttrValue::Set(["x".to_string()].into()))));
    }
}
