use std::path::PathBuf;

use thiserror::Error;

/// Errors of the emulator: a bad host spec, or a mount that failed.
#[derive(Debug, Error)]
pub enum SimError {
    /// The host spec is malformed or inconsistent; `why` names the bad key.
    #[error("host spec {origin}: {why}")]
    Spec {
        /// File name or "embedded".
        origin: String,
        /// What is wrong, naming the key.
        why: String,
    },
    /// Mounting or unmounting failed.
    #[error("{what} {path}")]
    Mount {
        /// What was attempted.
        what: &'static str,
        /// The mountpoint.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A probe script is malformed.
    #[error("probe script line {line}: {why}")]
    Probe {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// Building the tree failed.
    #[error("building the emulated tree")]
    Build(#[source] std::io::Error),
}
