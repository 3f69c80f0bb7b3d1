use std::path::PathBuf;

use thiserror::Error;

/// Errors of the core crate: bad input, or a failure outside any one verdict.
#[derive(Debug, Error)]
pub enum CoreError {
    /// A device id that does not follow the grammar.
    #[error("invalid device id {id:?}: {why}")]
    InvalidId {
        /// What was given.
        id: String,
        /// The grammar it broke.
        why: String,
    },
    /// A version string that may not be written into `migration_version`.
    #[error("invalid version string: {0}")]
    InvalidVersion(String),
    /// The id is well-formed but names no device under the root.
    #[error("no device {id} under {root}")]
    DeviceNotFound {
        /// The id.
        id: String,
        /// The sysfs root searched.
        root: PathBuf,
    },
    /// The sysfs root itself is missing or unreadable.
    #[error("sysfs root {path} is not usable")]
    Root {
        /// The root.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A sysfs operation failed or timed out where no verdict could carry it.
    #[error("{op} {path}: {failure}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Path under the root.
        path: PathBuf,
        /// How it failed.
        failure: crate::IoFailure,
    },
    /// A vendor model could not help.
    #[error(transparent)]
    Vendor(#[from] devmig_vendors::VendorError),
}

impl CoreError {
    /// True for errors caused by the caller's input (exit code 2 in the CLI).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CoreError::InvalidId { .. } | CoreError::InvalidVersion(_) | CoreError::DeviceNotFound { .. })
            || matches!(
                self,
                CoreError::Vendor(
                    devmig_vendors::VendorError::UnknownVersion(_) | devmig_vendors::VendorError::BadVersion { .. }
                )
            )
    }
}

/// `e`'s message followed by each cause's, `: `-separated, skipping causes already quoted.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
