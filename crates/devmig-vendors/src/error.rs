use thiserror::Error;

/// Everything a vendor model or the catalog can fail with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum VendorError {
    /// The source string is not one this model understands.
    #[error("version string {version:?} is not a valid {model} version: {why}")]
    BadVersion {
        /// Model that tried to parse it.
        model: &'static str,
        /// The offending string (possibly truncated for display).
        version: String,
        /// What was wrong.
        why: String,
    },
    /// No model claims a version string (unknown driver prefix).
    #[error("no vendor model recognises version string {0:?}")]
    UnknownVersion(String),
    /// The device is not one the model can migrate (missing facts, unknown type).
    #[error("device is not supported by the {model} model: {why}")]
    Unsupported {
        /// Model that looked at the device.
        model: &'static str,
        /// What is missing or unknown.
        why: String,
    },
    /// No model recognises the device at all.
    #[error("no vendor model recognises this device")]
    NoModel,
    /// A value (a PCI id, a driver version, an algorithm list, a storage URL) is malformed.
    #[error("{what}: {why}")]
    BadValue {
        /// What kind of value.
        what: &'static str,
        /// What is wrong with it, quoting it.
        why: String,
    },
    /// The product catalog could not be parsed or is inconsistent.
    #[error("catalog {origin}: {why}")]
    Catalog {
        /// Where the catalog came from (file name or "embedded").
        origin: String,
        /// What was wrong, naming the bad key.
        why: String,
    },
}

impl VendorError {
    pub(crate) fn bad_value(what: &'static str, why: impl std::fmt::Display) -> Self {
        VendorError::BadValue { what, why: why.to_string() }
    }

    pub(crate) fn bad_version(model: &'static str, version: &str, why: impl std::fmt::Display) -> Self {
        let mut shown: String = version.chars().take(120).collect();
        if shown.len() < version.len() {
            shown.push('…');
        }
        VendorError::BadVersion { model, version: shown, why: why.to_string() }
    }

    pub(crate) fn unsupported(model: &'static str, why: impl std::fmt::Display) -> Self {
        VendorError::Unsupported { model, why: why.to_string() }
    }
}
