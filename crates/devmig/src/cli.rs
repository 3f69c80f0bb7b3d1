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
