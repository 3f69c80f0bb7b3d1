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
    /// Starting the agent here failed (its config, tokens, TLS files, state).
    #[error(transparent)]
    Agent(#[from] devmig_agent::AgentError),
    /// A fleet verb run against the database here failed.
    #[error("fleet: {0}")]
    Fleet(#[from] devmig_fleet::FleetError),
    /// An agent or the fleet answered with an error (or could not be reached: status 0).
    #[error("{peer}: {detail} ({code}, HTTP {status})")]
    Remote {
        /// Who answered: `agent` or `fleet`.
        peer: &'static str,
        /// HTTP status (0 when unreachable).
        status: u16,
        /// The problem's stable code.
        code: String,
        /// The problem's detail.
        detail: String,
    },
    /// A file the user named (spec, token, config, agents, version file) could not be read:
    /// bad input (exit 2), not a runtime failure.
    #[error("{what}")]
    Input {
        /// What was being read, naming the file.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing to stdout failed.
    #[error("writing output")]
    Output(#[source] std::io::Error),
    /// Reading input or writing a file failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The exit code of an agent's or the fleet's answer: refused input 2, a conflict or a refused
/// claim 1, anything else (no answer, a 5xx) 3.
fn exit_for_status(status: u16) -> i32 {
    match status {
        400 | 401 | 403 | 404 | 405 | 413 => 2,
        409 | 422 => 1,
        _ => 3,
    }
}

impl From<devmig_api::ApiError> for CliError {
    fn from(e: devmig_api::ApiError) -> Self {
        use devmig_api::ApiError as A;
        match e {
            A::Invalid { .. } => CliError::Usage(e.to_string()),
            A::Unreachable { .. } => {
                CliError::Remote { peer: "agent", status: 0, code: "unreachable".into(), detail: e.to_string() }
            }
            A::BadResponse { status, detail } => {
                CliError::Remote { peer: "agent", status, code: "bad_response".into(), detail }
            }
            A::Refused { problem } => {
                CliError::Remote { peer: "agent", status: problem.status, code: problem.code, detail: problem.detail }
            }
        }
    }
}

impl CliError {
    /// 2 for bad usage or input, 1 when a device cannot migrate at all, 3 for runtime errors.
    pub fn exit_code(&self) -> i32 {
        use devmig_vendors::VendorError as V;
        match self {
            CliError::Usage(_) | CliError::Input { .. } => 2,
            CliError::Core(e) if e.is_bad_input() => 2,
            CliError::Core(devmig_core::CoreError::Vendor(V::NoModel | V::Unsupported { .. })) => 1,
            CliError::Vendor(V::Catalog { .. } | V::UnknownVersion(_) | V::BadVersion { .. }) => 2,
            CliError::Vendor(V::NoModel | V::Unsupported { .. }) => 1,
            CliError::Sim(devmig_simfs::SimError::Spec { .. } | devmig_simfs::SimError::Probe { .. }) => 2,
            CliError::Agent(devmig_agent::AgentError::Config(_)) => 2,
            CliError::Fleet(devmig_fleet::FleetError::Config(_)) => 2,
            CliError::Remote { status, .. } => exit_for_status(*status),
            CliError::Fleet(e) => exit_for_status(e.status().as_u16()),
            _ => 3,
        }
    }

    /// Reads a file the user named; `what` says which ("host spec").
    pub fn read_input(path: &std::path::Path, what: &str) -> Result<String, CliError> {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Input { what: format!("reading {what} {}", path.display()), source: e })
    }

    /// True when writing the output failed because its reader closed the pipe.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The message with its whole cause chain.
    pub fn chain(&self) -> String {
        devmig_core::error_chain(self)
    }
}
