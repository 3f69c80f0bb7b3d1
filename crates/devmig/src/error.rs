//! The CLI's error type and its exit codes.
use thiserror::Error;

/// Everything a command can fail with.
#[derive(Debug, Error)]
pub enum CliError {
    /// Wrong arguments.
    #[error("{0}")]
    Usage(String),
    /// An error from the core library.
    #[error(transparent)]
    Core(#[from] devmig_core::CoreError),
    /// An error from the vendor models or catalog.
    #[error(transparent)]
    Vendor(#[from] devmig_vendors::VendorError),
    /// The emulator failed (bad spec, mount).
    #[error(transparent)]
    Sim(#[from] devmig_simfs::SimError),
    /// An agent answered with an error (or could not be reached: status 0).
    #[error("agent: {detail} ({code}, HTTP {status})")]
    Remote {
        /// HTTP status (0 when unreachable).
        status: u16,
        /// The problem's stable code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
    /// Reading input or writing output failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// 2 for bad usage or input, 1 when a device cannot migrate at all, 3 for runtime errors.
    pub fn exit_code(&self) -> i32 {
        use devmig_vendors::VendorError as V;
        match self {
            CliError::Usage(_) => 2,
            CliError::Core(e) if e.is_bad_input() => 2,
            CliError::Core(devmig_core::CoreError::Vendor(V::NoModel | V::Unsupported { .. })) => 1,
            CliError::Vendor(V::Catalog { .. } | V::UnknownVersion(_) | V::BadVersion { .. }) => 2,
            CliError::Vendor(V::NoModel | V::Unsupported { .. }) => 1,
            CliError::Sim(devmig_simfs::SimError::Spec { .. }) => 2,
            CliError::Remote { status: 400 | 404 | 413, .. } => 2,
            CliError::Remote { status: 409 | 422, .. } => 1,
            _ => 3,
        }
    }

    /// The message with its whole cause chain.
    pub fn chain(&self) -> String {
        devmig_core::error_chain(self)
    }
}
