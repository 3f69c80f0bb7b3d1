//! The vendor models devmig ships.
mod gvt;
mod mtty;
mod nvidia;
mod nvme;
mod qat;
mod variant;

pub use gvt::{GvtModel, GvtVersion};
pub use mtty::{MttyModel, MttyVersion};
pub use nvidia::{
    CREATABLE_TYPES, CURRENT_TYPE, Framework, NvidiaModel, NvidiaVersion, creatable_types, profile_of_name,
};
pub use nvme::{NvmeModel, NvmeVersion, decode_field, encode_field, normalize_url};
pub use qat::{QatModel, QatVersion};
pub use variant::{VariantModel, VariantVersion};

use crate::{AttrValue, Constraint, DeviceFacts, DriverVersion, Outcome, PciId, VendorError};

/// Attribute every model sets: which model owns the device.
pub const MODEL_ATTR: &str = "model";

/// The driver version of `dev`, or why it is missing.
pub(crate) fn driver_version(model: &'static str, dev: &DeviceFacts) -> Result<DriverVersion, VendorError> {
    let text = dev
        .driver_version
        .as_deref()
        .ok_or_else(|| VendorError::unsupported(model, "driver module reports no version"))?;
    text.parse().map_err(|e| VendorError::unsupported(model, format!("driver version: {e}")))
}

/// The PCI id of `dev` (its parent's, for an mdev), or why it is missing.
pub(crate) fn pci_id(model: &'static str, dev: &DeviceFacts) -> Result<PciId, VendorError> {
    dev.pci_id.ok_or_else(|| VendorError::unsupported(model, "no PCI vendor:device id"))
}

/// The two outcomes of the reviewers' version rule (rule codes: `<model>.<field>_major` / `_minor`).
pub(crate) fn version_outcomes(
    rules: [&'static str; 2],
    field: &'static str,
    source: DriverVersion,
    target: DriverVersion,
) -> [Outcome; 2] {
    [
        Outcome::new(rules[0], field, source.major == target.major, "major versions must be equal"),
        Outcome::new(
            rules[1],
            field,
            source.major != target.major || target.minor >= source.minor,
            "target minor version must be at least the source's",
        ),
    ]
}

/// The requirement form of [`version_outcomes`].
pub(crate) fn version_constraint(attr: &str, source: DriverVersion) -> Constraint {
    Constraint::SemverCompatible { attr: attr.to_string(), major: source.major, min_minor: source.minor }
}

/// What an id edge rule requires.
pub(crate) const ID_MESSAGE: &str = "target id must be in the source's compatible group";

/// The model attribute.
pub(crate) fn model_attr(name: &str) -> (String, AttrValue) {
    (MODEL_ATTR.to_string(), AttrValue::String(name.to_string()))
}

/// The model constraint.
pub(crate) fn model_constraint(name: &str) -> Constraint {
    Constraint::Equals { attr: MODEL_ATTR.to_string(), value: AttrValue::String(name.to_string()) }
}

/// Splits `s` on `-` into exactly `n` fields, the last taking the rest.
pub(crate) fn fields<'a>(model: &'static str, s: &'a str, n: usize) -> Result<Vec<&'a str>, VendorError> {
    let parts: Vec<&str> = s.splitn(n, '-').collect();
    if parts.len() != n || parts.iter().any(|p| p.is_empty()) {
        return Err(VendorError::bad_version(model, s, format!("expected {n} non-empty '-'-separated fields")));
    }
    Ok(parts)
}

/// Parses a `vvvv:dddd` field.
pub(crate) fn parse_pci_id(model: &'static str, whole: &str, field: &str) -> Result<PciId, VendorError> {
    field.parse().map_err(|e: VendorError| VendorError::bad_version(model, whole, e))
}

/// Parses a strict `major.minor.bugfix` field (what the models emit).
pub(crate) fn parse_version_field(model: &'static str, whole: &str, field: &str) -> Result<DriverVersion, VendorError> {
    let parts: Vec<&str> = field.split('.').collect();
    let numbers: Option<Vec<u32>> =
        parts
            .iter()
            .map(|p| {
                if p.is_empty() || p.len() > 9 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse().ok()
                }
            })
            .collect();
    match numbers.as_deref() {
        Some([major]) => Ok(DriverVersion::new(*major, 0, 0)),
        Some([major, minor]) => Ok(DriverVersion::new(*major, *minor, 0)),
        Some([major, minor, bugfix]) => Ok(DriverVersion::new(*major, *minor, *bugfix)),
        _ => Err(VendorError::bad_version(model, whole, format!("{field:?} is not major[.minor[.bugfix]]"))),
    }
}
