//! A device's step-a attributes as the fleet indexes them: from the kernel's own string where
//! the kernel exposes `migration_version`, from facts where it does not, and opaque where no
//! vendor model knows the driver.
use serde::{Deserialize, Serialize};

use crate::models::MODEL_ATTR;
use crate::{AttrValue, Attributes, Constraint, DeviceFacts, DriverVersion, Requirement};

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

/// Where `from_string` (facts as the kernel's string describes the device) disagrees with
/// `facts` (as sysfs shows it), one line per field.
pub fn conflicts(facts: &DeviceFacts, from_string: &DeviceFacts) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |field: &str, facts: String, string: String| {
        out.push(format!("{field}: the kernel's string says {string}, sysfs says {facts}"));
    };
    if let (Some(f), Some(s)) = (&facts.driver_version, &from_string.driver_version) {
        let (pf, ps) = (f.parse::<DriverVersion>(), s.parse::<DriverVersion>());
        if pf.is_err() || pf != ps {
            note("driver_version", f.clone(), s.clone());
        }
    }
    if let (Some(f), Some(s)) = (facts.pci_id, from_string.pci_id) {
        if f != s {
            note("pci_id", f.to_string(), s.to_string());
        }
    }
    if let (Some(f), Some(s)) = (&facts.mdev_type, &from_string.mdev_type) {
        if f != s {
            note("mdev_type", f.clone(), s.clone());
        }
    }
    if facts.aggregator != from_string.aggregator {
        note("aggregator", facts.aggregator.to_string(), from_string.aggregator.to_string());
    }
    for (k, s) in &from_string.params {
        if let Some(f) = facts.params.get(k).filter(|f| *f != s) {
            note(k, f.clone(), s.clone());
        }
    }
    out
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
    fn conflicts_name_each_field_that_disagrees() {
        let facts = DeviceFacts::mdev("mtty", "", "mtty", Some("0.2"), "mtty-2", 1);
        let same = DeviceFacts { driver_version: Some("0.2.0".into()), ..facts.clone() };
        assert!(conflicts(&facts, &same).is_empty(), "0.2 and 0.2.0 are one version");
        let other =
            DeviceFacts { driver_version: Some("0.1.0".into()), mdev_type: Some("mtty-1".into()), ..facts.clone() };
        let c = conflicts(&facts, &other);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].contains("says 0.1.0, sysfs says 0.2"), "{c:?}");
    }
}
