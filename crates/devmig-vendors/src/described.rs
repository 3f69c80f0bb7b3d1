//! A device's step-a attributes as the fleet indexes them: from the kernel's own string where
//! the kernel exposes `migration_version`, from facts where it does not, and opaque where no
//! vendor model knows the driver.
use serde::{Deserialize, Serialize};

use crate::models::MODEL_ATTR;
use crate::{AttrValue, Attributes, Constraint, Requirement};

/// The model name of devices whose kernel shows a `migration_version` no vendor model knows.
pub const OPAQUE_MODEL: &str = "opaque";
/// Attribute: the driver-name prefix of the kernel's string (`mtty` of `mtty-v1-...`).
pub const KERNEL_PREFIX_ATTR: &str = "kernel.prefix";
/// Attribute: the kernel's whole string.
pub const KERNEL_VERSION_ATTR: &str = "kernel.version";
/// Attribute: the driver bound to the device (or its parent), where known.
pub const KERNEL_DRIVER_ATTR: &str = "kernel.driver";

/// The driver-name prefix of a version string: up to its first `-` (the proposal asks vendors to
/// start their strings with the driver's name), or the whole string when it has none.
pub fn version_prefix(version: &str) -> &str {
    version.split_once('-').map_or(version, |(p, _)| p)
}

/// Where a device's attributes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributeSource {
    /// The model parsed the string the kernel showed (facts filled the rest).
    KernelString,
    /// The kernel has no attribute here: the model read sysfs facts.
    Facts,
    /// No model knows the device: only the kernel's string, indexed as it is.
    Opaque,
}

/// A device's step-a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The model (`mtty`), or [`OPAQUE_MODEL`].
    pub model: String,
    /// The typed attributes.
    pub attributes: Attributes,
    /// Where they came from.
    pub source: AttributeSource,
    /// Where the kernel's string and the sysfs facts disagree, one line each (the string wins).
    pub conflicts: Vec<String>,
}

/// The `kernel.*` attributes of a device whose kernel shows `version`.
pub fn kernel_attributes(version: &str, driver: Option<&str>) -> Attributes {
    let mut a = Attributes::from([
        (KERNEL_PREFIX_ATTR.to_string(), AttrValue::String(version_prefix(version).to_string())),
        (KERNEL_VERSION_ATTR.to_string(), AttrValue::String(version.to_string())),
    ]);
    if let Some(d) = driver {
        a.insert(KERNEL_DRIVER_ATTR.to_string(), AttrValue::String(d.to_string()));
    }
    a
}

/// The attributes of an opaque device.
pub fn opaque_attributes(version: &str, driver: Option<&str>) -> Attributes {
    let mut a = kernel_attributes(version, driver);
    a.insert(MODEL_ATTR.to_string(), AttrValue::String(OPAQUE_MODEL.to_string()));
    a
}

/// Step a for a source string no model knows: any device whose kernel shows a string with the
/// same driver prefix (sound for any vendor: only the vendor's write can judge the rest).
pub fn opaque_requirement(source: &str) -> Requirement {
    Requirement {
        all: vec![Constraint::Equals {
            attr: KERNEL_PREFIX_ATTR.to_string(),
            value: AttrValue::String(version_prefix(source).to_string()),
        }],
    }
}

/// The requirement step a applies to a device of `device_model` for a source of `source_model`
/// (`req` is the source's own): `req` for devices of the source's model, and for devices of
/// any model when the source is opaque; the source's driver prefix for an opaque device (one
/// a host reported with that model switched off), so step a stays sound in fleets that mix
/// `--no-model`; `None` when the device cannot be a target.
pub fn requirement_for<'r>(
    (source_model, source_version): (&str, &str),
    req: &'r Requirement,
    device_model: &str,
) -> Option<std::borrow::Cow<'r, Requirement>> {
    if source_model == OPAQUE_MODEL || device_model == source_model {
        Some(std::borrow::Cow::Borrowed(req))
    } else if device_model == OPAQUE_MODEL {
        Some(std::borrow::Cow::Owned(opaque_requirement(source_version)))
    } else {
        None
    }
}

/// Where the attributes read from the kernel's string (`from_string`) and those read from
/// sysfs facts (`from_facts`) disagree, one line per attribute.
pub fn conflicts(from_facts: &Attributes, from_string: &Attributes) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = from_facts.keys().chain(from_string.keys()).collect();
    let shown = |v: Option<&AttrValue>| v.map_or_else(|| "nothing".to_string(), ToString::to_string);
    keys.into_iter()
        .filter(|k| from_facts.get(*k) != from_string.get(*k))
        .map(|k| {
            format!(
                "{k}: the kernel's string gives {}, sysfs gives {}",
                shown(from_string.get(k)),
                shown(from_facts.get(k))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_the_text_before_the_first_dash() {
        assert_eq!(version_prefix("mtty-v1-0.1.0-mtty-2"), "mtty");
        assert_eq!(version_prefix("8086-591d-GVTg_V5_8-01020000"), "8086");
        assert_eq!(version_prefix("nodash"), "nodash");
    }

    #[test]
    fn an_opaque_source_requires_only_the_prefix() {
        let req = opaque_requirement("acme-3.1-x");
        assert!(req.satisfied_by(&opaque_attributes("acme-9-y", Some("acme"))));
        assert!(!req.satisfied_by(&opaque_attributes("other-3.1-x", None)));
        assert!(req.satisfied_by(&kernel_attributes("acme-3.1-x", None)), "a device with a model and the prefix");
    }

    #[test]
    fn a_model_source_may_take_an_opaque_device_of_its_prefix_and_nothing_of_another_model() {
        let req = Requirement {
            all: vec![Constraint::Equals { attr: "model".into(), value: AttrValue::String("mtty".into()) }],
        };
        let source = ("mtty", "mtty-v1-0.1.0-mtty-2");
        assert_eq!(requirement_for(source, &req, "mtty").as_deref(), Some(&req));
        assert!(requirement_for(source, &req, "i915").is_none());
        let opaque = requirement_for(source, &req, OPAQUE_MODEL).expect("an opaque device");
        assert!(opaque.satisfied_by(&opaque_attributes("mtty-v1-0.2.0-mtty-1", None)));
        assert!(!opaque.satisfied_by(&opaque_attributes("acme-1", None)));
        let any = opaque_requirement("acme-1");
        assert_eq!(requirement_for((OPAQUE_MODEL, "acme-1"), &any, "i915").as_deref(), Some(&any));
    }

    #[test]
    fn conflicts_name_each_attribute_that_disagrees() {
        let facts =
            Attributes::from([("a".to_string(), AttrValue::Int(1)), ("b".to_string(), AttrValue::String("x".into()))]);
        let string = Attributes::from([
            ("a".to_string(), AttrValue::Int(2)),
            ("b".to_string(), AttrValue::String("x".into())),
            ("c".to_string(), AttrValue::Int(3)),
        ]);
        assert_eq!(
            conflicts(&facts, &string),
            ["a: the kernel's string gives 2, sysfs gives 1", "c: the kernel's string gives 3, sysfs gives nothing"]
        );
        assert!(conflicts(&facts, &facts).is_empty());
    }
}
