//! Command-line grammar.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// devmig: decide, before a live migration starts, whether a VM's assigned
/// devices can move to another host's devices.
///
/// Exit codes: 0 compatible / success, 1 incompatible (or nothing found),
/// 2 bad usage or bad input, 3 runtime error (I/O, timeout).
#[derive(Debug, Parser)]
#[command(name = "devmig", version)]
pub struct Cli {
    /// Directory under which /sys is found.
    #[arg(long, global = true, env = "DEVMIG_SYSFS_ROOT", default_value = "/", value_name = "DIR")]
    pub sysfs_root: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Product catalog to merge into the embedded one.
    #[arg(long, global = true, env = "DEVMIG_CATALOG", value_name = "FILE")]
    pub catalog: Option<PathBuf>,
    /// Bound on each sysfs operation, in milliseconds.
    #[arg(long, global = true, env = "DEVMIG_TIMEOUT_MS", default_value_t = 5000, value_name = "MS")]
    pub timeout_ms: u64,
    /// Ask this agent instead of the local sysfs (every inspection and check verb).
    #[arg(long, env = "DEVMIG_AGENT", value_name = "URL")]
    pub agent: Option<String>,
    /// The bearer token for --agent (and for agents named by URL): a file holding the secret alone.
    #[arg(long, env = "DEVMIG_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Named agents, for DEVICE@HOST and HOST arguments: `[agents.<name>]` with `url` and `token_file`.
    #[arg(long, env = "DEVMIG_AGENTS", value_name = "FILE")]
    pub agents: Option<PathBuf>,
    /// CA bundle (PEM) that signs agents' certificates, for https:// agents.
    #[arg(long, env = "DEVMIG_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for agents that require one (mTLS).
    #[arg(long, env = "DEVMIG_CLIENT_CERT", value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "DEVMIG_CLIENT_KEY", value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// Stable JSON (sorted keys, with a "schema" field).
    Json,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List every PCI function, SR-IOV PF/VF, mdev parent, mdev type and mdev.
    List,
    /// Show one device.
    Show {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Print the migration_version string of a device or mdev type.
    Version {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Read the source's version and write it into the target: exit 0 compatible, 1 incompatible.
    Check(CheckArgs),
    /// Like check, field by field: which rule accepted or rejected, with both values.
    Explain(CheckArgs),
    /// The typed step-a attributes of a device (for pre-filtering).
    Attributes {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Local targets that pass step a, then verified by step b.
    Match(MatchArgs),
    /// Tour a built-in emulated lab: two hosts mounted with simfs (needs root).
    Demo,
    /// The sysfs emulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Run the host agent (REST API, claims, metrics) on this host's sysfs.
    Agent(AgentArgs),
    /// Verify and reserve a target on HOST's agent for a migration.
    Claim(ClaimArgs),
    /// Release a claim on HOST's agent.
    Release {
        /// Agent name (from --agents) or URL.
        host: String,
        /// The claim id.
        claim_id: String,
    },
    /// List HOST's active and orphaned claims.
    Claims {
        /// Agent name (from --agents) or URL.
        host: String,
    },
    /// Load harnesses for the figures in BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `devmig bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// POST /devices/{id}/check from concurrent clients against --agent.
    Agent {
        /// The source version string to check.
        #[arg(long)]
        version: String,
        /// Target devices; client i uses device i mod n.
        #[arg(long = "device", required = true)]
        devices: Vec<String>,
        /// Client counts to run, one after another.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Seconds per client count.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Also time the bare check in this process on the agent's sysfs root (the overhead baseline).
        #[arg(long, value_name = "DIR")]
        baseline_root: Option<PathBuf>,
    },
    /// Claim and release from concurrent clients against --agent.
    Claims {
        /// The source version string.
        #[arg(long)]
        version: String,
        /// The mdev type each claim creates (PARENT/TYPE-ID).
        #[arg(long = "type", required_unless_present = "devices", conflicts_with = "devices")]
        mdev_type: Option<String>,
        /// Claim these devices instead; client i uses device i mod n.
        #[arg(long = "device")]
        devices: Vec<String>,
        /// Concurrent clients.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

/// `devmig agent`: a config file, flags, or both (flags win).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent config (TOML): listen, sysfs_root, token_file, state_dir, timeout_ms, io_workers, log_json.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7070).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The token file: `[[token]]` tables with name, scope (read|admin) and secret.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Where claims.db lives (default /var/lib/devmig).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// sysfs I/O worker threads (default 8).
    #[arg(long, value_name = "N")]
    pub io_workers: Option<usize>,
    /// Log JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA bundle (PEM): mTLS.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

/// `devmig claim`.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// Agent name (from --agents) or URL.
    pub host: String,
    /// Source string options.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The migration id (claiming again with it returns the same claim).
    #[arg(long, value_name = "ID")]
    pub migration_id: String,
    /// Reserve this device.
    #[arg(long, value_name = "DEVICE", conflicts_with_all = ["mdev_type", "any"])]
    pub device: Option<String>,
    /// Create and reserve a new mdev of this type (PARENT/TYPE-ID).
    #[arg(long = "type", value_name = "PARENT/TYPE", conflicts_with = "any")]
    pub mdev_type: Option<String>,
    /// Reserve any unclaimed device that accepts the source.
    #[arg(long)]
    pub any: bool,
    /// Seconds until the claim expires.
    #[arg(long, default_value_t = 600)]
    pub ttl: u64,
}

/// `devmig sim ...`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Print a host spec.
    Spec {
        /// The embedded example spec, commented.
        #[arg(long, required = true)]
        example: bool,
    },
    /// Validate a host spec without mounting it.
    Validate {
        /// The spec file.
        spec: PathBuf,
    },
    /// Mount an emulated host on DIR in the foreground; unmount on SIGINT/SIGTERM (needs root).
    Mount {
        /// The host spec (default: the embedded example).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// The mountpoint (an existing directory).
        dir: PathBuf,
    },
}

/// Where the source version comes from: a local device, or a string from another host.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The source version string (from another host).
    #[arg(long, value_name = "STRING", conflicts_with_all = ["version_file"])]
    pub version: Option<String>,
    /// Read the source version string from FILE ('-' for stdin); one trailing newline is dropped.
    #[arg(long, value_name = "FILE")]
    pub version_file: Option<PathBuf>,
}

/// Arguments of check and explain.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// SOURCE TARGET, or only TARGET with --version/--version-file.
    #[arg(value_name = "DEVICE", num_args = 1..=2, required = true)]
    pub devices: Vec<String>,
    /// Source string options.
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Arguments of match.
#[derive(Debug, Args)]
pub struct MatchArgs {
    /// The local source device (or use --version/--version-file).
    #[arg(value_name = "SOURCE")]
    pub device: Option<String>,
    /// Source string options.
    #[command(flatten)]
    pub source: SourceArgs,
}

#[cfg(test)]
mod tests {
    #[test]
    fn grammar_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
