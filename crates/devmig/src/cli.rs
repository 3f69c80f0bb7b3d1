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
    #[arg(
        long,
        global = true,
        env = "DEVMIG_SYSFS_ROOT",
        default_value = "/",
        value_name = "DIR",
        help_heading = "Global options",
        hide_short_help = true
    )]
    pub sysfs_root: PathBuf,
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = Output::Table, help_heading = "Global options", hide_short_help = true)]
    pub output: Output,
    /// Product catalog to merge into the embedded one.
    #[arg(
        long,
        global = true,
        env = "DEVMIG_CATALOG",
        value_name = "FILE",
        help_heading = "Global options",
        hide_short_help = true
    )]
    pub catalog: Option<PathBuf>,
    /// Switch a vendor model off (repeatable; i915, nvme, qat, mtty, nvidia): its devices are then
    /// opaque where the kernel shows migration_version (step a by the string's driver prefix,
    /// step b by the driver's write) and unknown where it does not.
    #[arg(
        long = "no-model",
        global = true,
        env = "DEVMIG_NO_MODEL",
        value_delimiter = ',',
        value_name = "MODEL",
        help_heading = "Global options",
        hide_short_help = true
    )]
    pub no_models: Vec<String>,
    /// Bound on each sysfs operation, in milliseconds.
    #[arg(
        long,
        global = true,
        env = "DEVMIG_TIMEOUT_MS",
        default_value_t = 5000,
        value_name = "MS",
        help_heading = "Global options",
        hide_short_help = true
    )]
    pub timeout_ms: u64,
    /// Ask this agent instead of the local sysfs (every inspection and check verb).
    #[arg(long, env = "DEVMIG_AGENT", value_name = "URL")]
    pub agent: Option<String>,
    /// The bearer token for --agent (and for agents named by URL): a file holding the secret alone.
    #[arg(long, env = "DEVMIG_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Named agents, for HOST:DEVICE and HOST arguments: `[agents.<name>]` with `url` and
    /// `token_file` (relative paths from the file's directory).
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
    /// Which of the global options were given (flag or variable), not left at their defaults.
    #[arg(skip)]
    pub given: Given,
}

/// Global options given explicitly: they override a config file's values even when equal to
/// the defaults.
#[derive(Debug, Default, Clone, Copy)]
pub struct Given {
    /// `--sysfs-root` or DEVMIG_SYSFS_ROOT.
    pub sysfs_root: bool,
    /// `--timeout-ms` or DEVMIG_TIMEOUT_MS.
    pub timeout_ms: bool,
}

/// The footer of every subcommand's help: where the global options are.
const GLOBALS_FOOTER: &str = "Global options (-o/--output, --sysfs-root, --catalog, --no-model, --timeout-ms) go anywhere \
                              on the line; --help lists them, -h leaves them out.";

/// Adds [`GLOBALS_FOOTER`] to every subcommand below `cmd`.
fn with_footer(cmd: clap::Command) -> clap::Command {
    let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
    names.into_iter().fold(cmd, |cmd, name| cmd.mut_subcommand(name, |sub| with_footer(sub.after_help(GLOBALS_FOOTER))))
}

/// The command line grammar: `-h` shows a subcommand's own options, `--help` the global ones too.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    with_footer(Cli::command()).after_help(GLOBALS_FOOTER)
}

impl Cli {
    /// Parses the process's arguments, noting which global options were given.
    pub fn parse_noting_given() -> Cli {
        use clap::{FromArgMatches, parser::ValueSource};
        let matches = command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let given =
            |id: &str| matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        cli.given = Given { sysfs_root: given("sysfs_root"), timeout_ms: given("timeout_ms") };
        cli
    }
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
    ///
    /// Example: devmig --sysfs-root /mnt/hostA list
    List,
    /// Show one device.
    ///
    /// Example: devmig show 0000:3d:00.1; devmig --agents agents.toml show hostB:4b20d080-1b54-4048-85b3-a6a62d165c01
    Show {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Print the migration_version string of a device or mdev type.
    ///
    /// Example: devmig version 4b20d080-1b54-4048-85b3-a6a62d165c01 > v
    Version {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Read the source's version and write it into the target: exit 0 compatible, 1 incompatible.
    ///
    /// Example: devmig check --version-file v 0000:5e:00.2; devmig --agents agents.toml check hostA:0000:3d:01.1 hostB:0000:5e:00.2
    Check(CheckArgs),
    /// Like check, field by field: which rule accepted or rejected, with both values.
    ///
    /// Example: devmig explain 4b20d080-1b54-4048-85b3-a6a62d165c01 0000:00:02.0/i915-GVTg_V5_4
    Explain(CheckArgs),
    /// The typed step-a attributes of a device (for pre-filtering).
    ///
    /// Example: devmig -o json attributes 0000:3d:00.1
    Attributes {
        /// PCI address, mdev UUID, or PARENT/TYPE-ID.
        device: String,
    },
    /// Local targets that pass step a, then verified by step b.
    ///
    /// Example: devmig match --version-file v
    Match(MatchArgs),
    /// Tour a built-in emulated lab: two hosts mounted with simfs (needs root).
    ///
    /// Example: sudo devmig demo
    Demo,
    /// The sysfs emulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Run the host agent (REST API, claims, metrics) on this host's sysfs.
    ///
    /// Example: devmig agent --config /etc/devmig/agent.toml
    Agent(AgentArgs),
    /// Verify and reserve a target on HOST's agent for a migration.
    ///
    /// Example: devmig --agents agents.toml claim hostB --migration-id m1 --version-file v --any
    Claim(ClaimArgs),
    /// Release a claim on HOST's agent, or every active claim of a migration (`<id>` and its
    /// targets `<id>.<n>`): a created mdev is removed.
    ///
    /// Example: devmig --agents agents.toml release hostB m1
    Release {
        /// Agent name (from --agents) or URL.
        host: String,
        /// A claim id, or a migration id.
        #[arg(value_name = "CLAIM-OR-MIGRATION")]
        id: String,
    },
    /// List HOST's active and orphaned claims.
    ///
    /// Example: devmig --agents agents.toml claims hostB --migration m1
    Claims {
        /// Agent name (from --agents) or URL.
        host: String,
        /// Only this migration's claims (`<id>` and `<id>.<n>`).
        #[arg(long, value_name = "ID")]
        migration: Option<String>,
    },
    /// The fleet service: host reports, fleet-wide step a, placement, evacuation, planning.
    #[command(subcommand)]
    Fleet(FleetCommand),
    /// OpenStack Placement: step a as CUSTOM_DEVMIG_* traits on the providers Nova creates.
    #[command(subcommand)]
    Placement(PlacementCommand),
    /// libvirt: the host devices a domain assigns, and its XML for the destination.
    #[command(subcommand)]
    Libvirt(LibvirtCommand),
    /// Kubernetes Dynamic Resource Allocation: this host's devices as ResourceSlices, a source's
    /// step a as a CEL selector and a ResourceClaim.
    #[command(subcommand)]
    Dra(DraCommand),
    /// Which VMs can migrate: each domain XML's assigned devices with their versions and, with a
    /// fleet database, the hosts whose devices step a admits for all of them (or why none).
    ///
    /// Example: virsh dumpxml vm1 > vm1.xml; devmig vms vm1.xml --fleet-db sqlite:/var/lib/devmig/fleet.db --host hostA
    Vms(VmsArgs),
    /// Load harnesses for the figures in BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Arguments of `vms`.
#[derive(Debug, Args)]
pub struct VmsArgs {
    /// Domain XML files (`virsh dumpxml` of the VMs on this host, or on the agent's host).
    #[arg(value_name = "DOMAIN.xml", required_unless_present = "connect")]
    pub files: Vec<PathBuf>,
    /// Read every domain of this libvirt connection instead (`qemu:///system`), through virsh.
    #[arg(long, value_name = "URI", conflicts_with = "files")]
    pub connect: Option<String>,
    /// The fleet database: each VM gets the hosts that could take all its devices.
    #[arg(long, value_name = "URL")]
    pub fleet_db: Option<String>,
    /// The VMs' own host in the fleet (never counted as a destination).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
}

/// The DRA verbs (resource.k8s.io/v1, JSON).
#[derive(Debug, Subcommand)]
pub enum DraCommand {
    /// This host's migratable devices as ResourceSlices (driver and attribute domain devmig.io,
    /// at most 128 devices each), one JSON document each, separated by `---` (a YAML stream).
    ///
    /// Example: devmig dra slices --node worker-1 | kubectl apply -f -
    Slices {
        /// The Kubernetes node (default: the kernel's host name).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// The CEL selector that is true exactly on the devices step a admits for a source.
    ///
    /// Example: devmig dra selector --version 'mtty-v1-0.2.0-mtty-2'
    Selector(MatchArgs),
    /// A ResourceClaim for a migration target of a source (device class devmig.io).
    ///
    /// Example: devmig dra claim 4b20d080-1b54-4048-85b3-a6a62d165c01 --name vm1-vgpu
    Claim {
        /// The source options.
        #[command(flatten)]
        source: MatchArgs,
        /// The claim's name.
        #[arg(long, default_value = "devmig-target", value_name = "NAME")]
        name: String,
    },
}

/// The libvirt verbs.
#[derive(Debug, Subcommand)]
pub enum LibvirtCommand {
    /// Print the domain XML read from stdin with each assigned mdev and PCI function pointed at
    /// the target a fleet placement chose; nothing else changes. A host device the placement
    /// has no target for (or one of another kind) is refused, and nothing is printed.
    ///
    /// Example: devmig fleet -o json place --source hostA:UUID --claim --migration-id m1 > p.json;
    /// virsh dumpxml vm1 | devmig libvirt rewrite --placement p.json > vm1-dest.xml
    Rewrite {
        /// A placement as `devmig -o json fleet place` (or `POST /api/v1/placements`) answers it.
        #[arg(long, value_name = "FILE")]
        placement: PathBuf,
    },
    /// The mdevs and PCI functions the domain XML read from stdin assigns, as devmig names them.
    ///
    /// Example: virsh dumpxml vm1 | devmig libvirt hostdevs
    Hostdevs,
    /// libvirt's qemu hook on the destination (`/etc/libvirt/hooks/qemu DOMAIN OP SUBOP EXTRA`,
    /// with --agent naming this host's agent): on `migrate begin` it reads the incoming domain
    /// XML, looks up the agent's claims `<domain uuid>.<n>` (the target of the domain's n-th
    /// hostdev, as `fleet place --migration-id <uuid>` claims them in hostdev order), checks
    /// each target again with its claim's source version, and prints the XML pointed at them;
    /// a missing claim or a refusal exits 1 (libvirt then cancels the migration). Other
    /// operations, and domains without claims, pass unchanged.
    ///
    /// Example (the hook script): exec devmig --agent https://127.0.0.1:7070 --token-file /etc/devmig/hook-token --ca-file /etc/devmig/ca.pem libvirt hook "$@"
    Hook {
        /// The domain's name.
        domain: String,
        /// The operation (`migrate`, `prepare`, `start`, ...).
        op: String,
        /// Its sub-operation (`begin`, ...).
        subop: String,
        /// libvirt's extra argument (`-`).
        extra: Option<String>,
    },
    /// The node device XML libvirt shows for these devices (PCI functions with their SR-IOV and
    /// mdev type capabilities, mdevs of a PCI parent); every such device without arguments.
    ///
    /// Example: devmig --sysfs-root /mnt/hostA libvirt nodedev --node > host.xml; virsh -c test:///$PWD/host.xml nodedev-dumpxml pci_0000_00_02_0
    Nodedev {
        /// PCI addresses or mdev UUIDs.
        #[arg(value_name = "DEVICE")]
        devices: Vec<String>,
        /// Print one `<node>` document (what libvirt's test driver loads) instead.
        #[arg(long)]
        node: bool,
    },
}

/// The Placement verbs.
#[derive(Debug, Subcommand)]
pub enum PlacementCommand {
    /// Set each provider's CUSTOM_DEVMIG_* traits to the sources its devices accept (this
    /// host's, or every fresh host's of a fleet database); other traits are kept.
    ///
    /// Example: devmig placement sync --placement http://controller:8778 --placement-token-file /etc/devmig/placement-token --node compute1
    Sync(PlacementSyncArgs),
    /// The flavor extra specs (or PCI alias traits) a source device needs, so that Placement
    /// offers only targets devmig's step a admits.
    ///
    /// Example: devmig placement requirements 6f3e4a52-5b0e-4c7a-9d2b-0c1f5a6e7d80
    Requirements(PlacementRequirementsArgs),
    /// `[pci] device_spec` entries with devmig's traits for this host's PCI functions (VFs):
    /// Nova sets the traits of PCI providers itself, from these entries.
    ///
    /// Example: devmig placement device-spec
    DeviceSpec,
}

/// Arguments of `placement sync`.
#[derive(Debug, Args)]
pub struct PlacementSyncArgs {
    /// Placement's base URL (the `placement` endpoint in Keystone's catalog).
    #[arg(long, env = "DEVMIG_PLACEMENT_URL", value_name = "URL", required_unless_present = "dry_run")]
    pub placement: Option<String>,
    /// A file holding the token to send as X-Auth-Token (a Keystone token with the admin or
    /// service role; `openstack token issue -f value -c id`).
    #[arg(long, env = "DEVMIG_PLACEMENT_TOKEN_FILE", value_name = "FILE", required_unless_present = "dry_run")]
    pub placement_token_file: Option<PathBuf>,
    /// CA bundle (PEM) for an https:// Placement.
    #[arg(long, env = "DEVMIG_PLACEMENT_CA_FILE", value_name = "FILE")]
    pub placement_ca_file: Option<PathBuf>,
    /// Nova's name for this compute node (its hypervisor_hostname); default: the kernel's host name.
    #[arg(long, value_name = "NAME", conflicts_with = "fleet_db")]
    pub node: Option<String>,
    /// Sync every fresh host of this fleet database (sqlite:PATH or postgres://...) instead of
    /// this host; each host's name is its compute node's name.
    #[arg(long, value_name = "URL")]
    pub fleet_db: Option<String>,
    /// Hosts synced at once (with --fleet-db).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
    /// Print the providers and traits devmig would set; call nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `placement requirements`.
#[derive(Debug, Args)]
pub struct PlacementRequirementsArgs {
    /// The local source device (or use --version/--version-file).
    #[arg(value_name = "SOURCE")]
    pub device: Option<String>,
    /// Source string options.
    #[command(flatten)]
    pub source: SourceArgs,
    /// The resource class a target of an mdev source is requested as (Nova's default for
    /// mdev types is VGPU; `[mdev_<type>] mdev_class` changes it).
    #[arg(long, default_value = "VGPU", value_name = "CLASS")]
    pub resource_class: String,
    /// The request group number the flavor uses for the device.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub group: u32,
}

/// Where the fleet's database is and how the fleet reaches agents.
#[derive(Debug, Args, Clone)]
pub struct FleetDbArgs {
    /// The fleet database: sqlite:PATH or postgres://USER@HOST/DB [default: sqlite:/var/lib/devmig/fleet.db].
    #[arg(long, env = "DEVMIG_FLEET_DB", value_name = "URL")]
    pub db: Option<String>,
    /// The token the fleet presents to agents (a file holding the secret; an admin token there).
    #[arg(long, env = "DEVMIG_AGENT_TOKEN_FILE", value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Bound on each call to an agent, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub agent_timeout_ms: u64,
    /// Hosts whose last report is older than this are stale (excluded).
    #[arg(long, default_value_t = 90, value_name = "SECONDS")]
    pub stale_after_s: u64,
    /// Hosts verified by their agents at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    /// CA bundle that signs https:// agents' certificates.
    #[arg(long, value_name = "FILE")]
    pub agent_ca_file: Option<PathBuf>,
    /// Client certificate for agents that require one (mTLS).
    #[arg(long, value_name = "FILE", requires_all = ["agent_client_key", "agent_ca_file"])]
    pub agent_client_cert: Option<PathBuf>,
    /// Its key.
    #[arg(long, value_name = "FILE", requires = "agent_client_cert")]
    pub agent_client_key: Option<PathBuf>,
}

/// How a fleet query reaches the fleet: its database (on the fleet's machine), or its API
/// (from anywhere, with a token).
#[derive(Debug, Args, Clone)]
pub struct FleetAccessArgs {
    /// Database and agent access (without --fleet).
    #[command(flatten)]
    pub db: FleetDbArgs,
    /// Ask this fleet's API (`devmig fleet serve`) instead of opening its database.
    #[arg(long, env = "DEVMIG_FLEET_URL", value_name = "URL", help_heading = "Remote fleet")]
    pub fleet: Option<String>,
    /// The fleet token (a file holding the secret): read scope for queries, admin for place,
    /// evacuate and forget.
    #[arg(long, env = "DEVMIG_FLEET_TOKEN_FILE", value_name = "FILE", help_heading = "Remote fleet")]
    pub fleet_token_file: Option<PathBuf>,
    /// CA bundle (PEM) that signs an https:// fleet's certificate.
    #[arg(long, env = "DEVMIG_FLEET_CA_FILE", value_name = "FILE", help_heading = "Remote fleet")]
    pub fleet_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for a fleet that requires one (mTLS).
    #[arg(long, value_name = "FILE", requires_all = ["fleet_client_key", "fleet_ca_file"], help_heading = "Remote fleet")]
    pub fleet_client_cert: Option<PathBuf>,
    /// Its key.
    #[arg(long, value_name = "FILE", requires = "fleet_client_cert", help_heading = "Remote fleet")]
    pub fleet_client_key: Option<PathBuf>,
}

/// A VM's source devices, for `fleet place` and `fleet candidates`.
#[derive(Debug, Args, Clone)]
pub struct VmSourcesArgs {
    /// A source device, HOST:DEVICE (repeat for a VM with several devices).
    #[arg(long = "source", value_name = "HOST:DEVICE")]
    pub sources: Vec<String>,
    /// A source given by its version string alone (repeatable).
    #[arg(long = "source-version", value_name = "STRING")]
    pub source_versions: Vec<String>,
}

/// `devmig fleet ...`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Serve the fleet API (agents push reports to it; schedulers place through it).
    ///
    /// Example: devmig fleet serve --token-file fleet-tokens.toml --agent-token-file agent-token --db sqlite:/var/lib/devmig/fleet.db
    Serve {
        /// Tokens the fleet accepts (`[[token]]` with scope report, read or admin).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Database and agent access.
        #[command(flatten)]
        db: FleetDbArgs,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7080", value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Database connections.
        #[arg(long, default_value_t = 8, value_name = "N")]
        pool_size: usize,
        /// Serve HTTPS with this certificate chain (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this CA bundle (PEM): mTLS.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
    },
    /// Hosts the fleet knows, with their generation and staleness.
    ///
    /// Example: devmig fleet hosts --fleet https://fleet:7080 --fleet-token-file read-token --fleet-ca-file ca.pem
    Hosts {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
    },
    /// Forget a host and its devices: the next report registers it anew, at the agent URL it
    /// then gives (how an operator accepts an agent that moved, or removes a ghost).
    ///
    /// Example: devmig fleet forget hostA
    Forget {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
        /// The host's name.
        #[arg(value_name = "HOST")]
        host: String,
    },
    /// Devices the fleet knows.
    ///
    /// Example: devmig fleet devices --hosts 'rack1-*'
    Devices {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
        /// Only hosts matching this pattern (`rack1-*`).
        #[arg(long, default_value = "*", value_name = "GLOB")]
        hosts: String,
    },
    /// Find (and with --claim, reserve) targets on one host for all of a VM's devices.
    ///
    /// Example: devmig fleet place --source hostA:0000:3d:00.1 --claim --migration-id m1 --agent-token-file agent-token
    Place {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
        /// The VM's devices.
        #[command(flatten)]
        vm: VmSourcesArgs,
        /// Claim the targets through the chosen host's agent (all or nothing).
        #[arg(long, requires = "migration_id")]
        claim: bool,
        /// The migration id (claims are <id>.<n> on the agent).
        #[arg(long, value_name = "ID")]
        migration_id: Option<devmig_api::MigrationId>,
        /// Never use this host (repeatable; source hosts are always excluded).
        #[arg(long = "exclude-host", value_name = "HOST")]
        exclude_hosts: Vec<String>,
        /// Ranked hosts to verify at most.
        #[arg(long, default_value_t = 8, value_name = "N")]
        max_hosts: usize,
    },
    /// Step a alone: the hosts where every source has a distinct target, ranked as `place`
    /// ranks them, and why not the others (nothing is verified or claimed: what a scheduler's
    /// filter asks).
    ///
    /// Example: devmig fleet candidates --source hostA:4b20d080-1b54-4048-85b3-a6a62d165c01 --limit 5
    Candidates {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
        /// The VM's devices.
        #[command(flatten)]
        vm: VmSourcesArgs,
        /// Never offer this host (repeatable; source hosts are always excluded).
        #[arg(long = "exclude-host", value_name = "HOST")]
        exclude_hosts: Vec<String>,
        /// Ranked hosts to list at most.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
    /// A target for every mdev and VF of HOST (each its own VM), targets distinct.
    ///
    /// Example: devmig fleet evacuate hostA --vms vm1.xml vm2.xml --agent-token-file agent-token
    Evacuate {
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
        /// The host to empty.
        host: String,
        /// Claim each target (migration ids <prefix>-<n>).
        #[arg(long)]
        claim: bool,
        /// Migration id prefix for claims.
        #[arg(long, value_name = "PREFIX")]
        migration_prefix: Option<String>,
        /// Move these VMs (their domain XML files), each as one, instead of every device alone.
        #[arg(long, value_name = "DOMAIN.xml", num_args = 1..)]
        vms: Vec<PathBuf>,
    },
    /// Source configurations every host of a pool accepts.
    ///
    /// Example: devmig fleet baseline --hosts 'rack1-*'
    Baseline {
        /// The pool (`rack1-*`).
        #[arg(long, value_name = "GLOB")]
        hosts: String,
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
    },
    /// Which migrations a driver upgrade on a pool would break or enable.
    ///
    /// Example: devmig fleet what-if --hosts 'rack2-*' --driver i915=2.0.0
    WhatIf {
        /// The pool (`rack2-*`).
        #[arg(long, value_name = "GLOB")]
        hosts: String,
        /// MODEL=VERSION: the driver version after the upgrade (i915=1.4.0).
        #[arg(long, value_name = "MODEL=VERSION")]
        driver: String,
        /// The fleet (its database, or its API with --fleet).
        #[command(flatten)]
        at: FleetAccessArgs,
    },
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
        /// Also measure the agent's own overhead: one client alternates agent checks, bare
        /// checks in this process on the agent's sysfs root (DIR) and /healthz calls.
        #[arg(long, value_name = "DIR")]
        baseline_root: Option<PathBuf>,
        /// Rounds of the overhead measurement.
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        /// Calls of each kind in a row per round.
        #[arg(long, default_value_t = 100)]
        per_round: usize,
    },
    /// One check (read the target's attribute, write the source's string) repeated in this
    /// process under each sysfs root in turn (a real kernel's /sys beside an emulated host's):
    /// medians of each and their ratio to the first root.
    Check {
        /// The source version string to check.
        #[arg(long)]
        version: String,
        /// The target device, the same id under every root.
        #[arg(long)]
        target: String,
        /// sysfs roots to compare (the directory holding sys/), the first is the baseline.
        #[arg(long = "root", required = true, value_name = "DIR")]
        roots: Vec<PathBuf>,
        /// Rounds; each runs --per-round checks under every root.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Checks in a row per root and round.
        #[arg(long, default_value_t = 50)]
        per_round: usize,
    },
    /// The fleet figures: report ingestion, step a, full placements, the exhaustive alternative.
    Fleet(BenchFleetArgs),
    /// The OpenStack figures against a Placement devmig may fill (an empty test one): Nova-shaped
    /// trees for simulated hosts, `placement sync` (first, unchanged, one host changed), and
    /// `allocation_candidates` with devmig's traits beside devmig's own step a.
    Placement(BenchPlacementArgs),
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

/// `devmig agent`: a config file, flags, or both (a flag given always wins).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent config (TOML): every option below by its name with `_` for `-`
    /// (`token_file`, `fleet`, `host_name`, `report_interval_s`, ...), plus `sysfs_root`,
    /// `timeout_ms` and a `[tls]` table; relative paths are from the file's directory.
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
    /// Push this host's report to the fleet at URL (on every claim change and periodically).
    #[arg(long, value_name = "URL")]
    pub fleet: Option<String>,
    /// The report token for the fleet (a file holding the secret).
    #[arg(long, value_name = "FILE")]
    pub fleet_token_file: Option<PathBuf>,
    /// CA bundle that signs an https:// fleet's certificate.
    #[arg(long, value_name = "FILE")]
    pub fleet_ca_file: Option<PathBuf>,
    /// Client certificate for a fleet that requires one (mTLS).
    #[arg(long, value_name = "FILE")]
    pub fleet_client_cert: Option<PathBuf>,
    /// Its key.
    #[arg(long, value_name = "FILE")]
    pub fleet_client_key: Option<PathBuf>,
    /// This host's name in the fleet (default: the kernel's hostname).
    #[arg(long, value_name = "NAME")]
    pub host_name: Option<String>,
    /// The URL the fleet calls this agent at (default: the listening address).
    #[arg(long, value_name = "URL")]
    pub advertise: Option<String>,
    /// Seconds between unprompted reports [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub report_interval_s: Option<u64>,
    /// Keep this host's Placement providers' CUSTOM_DEVMIG_* traits in sync with its devices
    /// (as `devmig placement sync`): Placement's base URL.
    #[arg(long, value_name = "URL")]
    pub placement: Option<String>,
    /// A file holding the token the agent sends to Placement (X-Auth-Token).
    #[arg(long, value_name = "FILE")]
    pub placement_token_file: Option<PathBuf>,
    /// CA bundle (PEM) for an https:// Placement.
    #[arg(long, value_name = "FILE")]
    pub placement_ca_file: Option<PathBuf>,
    /// Nova's name for this compute node (default: --host-name, else the kernel's host name).
    #[arg(long, value_name = "NAME")]
    pub placement_node: Option<String>,
    /// Seconds between looks at the devices for Placement: a look with no change makes no
    /// call; every tenth syncs anyway, putting back what someone removed [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub placement_interval_s: Option<u64>,
}

/// `devmig claim`.
#[derive(Debug, Args)]
pub struct ClaimArgs {
    /// Agent name (from --agents) or URL.
    pub host: String,
    /// The migration id (claiming again with it returns the same claim).
    #[arg(long, value_name = "ID")]
    pub migration_id: devmig_api::MigrationId,
    /// Source string options.
    #[command(flatten)]
    pub source: SourceArgs,
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
    #[arg(long, default_value = "600", value_name = "SECONDS")]
    pub ttl: devmig_api::Ttl,
}

/// The embedded example host specs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExampleSpec {
    /// The demo's host A (GVT-g, NVMe and QAT VFs, mtty).
    HostA,
    /// The demo's host B.
    HostB,
    /// NVIDIA mdev vGPUs (M60, P40).
    Nvidia,
    /// An L40S with SR-IOV vGPUs (vGPU 17 and later).
    L40s,
    /// ConnectX-7, QAT and virtio-net VFs on the kernel's VFIO variant drivers.
    Nic,
}

impl ExampleSpec {
    /// The spec's TOML text.
    pub fn text(self) -> &'static str {
        use devmig_simfs::spec::*;
        match self {
            ExampleSpec::HostA => EXAMPLE_HOST_A,
            ExampleSpec::HostB => EXAMPLE_HOST_B,
            ExampleSpec::Nvidia => EXAMPLE_HOST_NVIDIA,
            ExampleSpec::L40s => EXAMPLE_HOST_L40S,
            ExampleSpec::Nic => EXAMPLE_HOST_NIC,
        }
    }
}

/// `devmig sim ...`
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Print an embedded example host spec, commented (the starting point of your own).
    ///
    /// Example: devmig sim spec nic > nic.toml
    Spec {
        /// Which example: the demo's host A (default) or B, an NVIDIA mdev vGPU host, an L40S
        /// with SR-IOV vGPUs, or a NIC host whose VFs are on VFIO variant drivers.
        #[arg(value_enum, default_value = "host-a")]
        which: ExampleSpec,
        /// The embedded example (kept for scripts that pass it).
        #[arg(long)]
        example: bool,
    },
    /// Validate a host spec without mounting it.
    ///
    /// Example: devmig sim validate lab.toml
    Validate {
        /// The spec file.
        spec: PathBuf,
    },
    /// Run a simulated fleet in this process: a fleet server and one agent per host on
    /// loopback, reporting to it, until SIGINT/SIGTERM.
    Fleet {
        /// Hosts.
        #[arg(long, default_value_t = 100)]
        hosts: usize,
        /// Migratable devices per host (4..=64).
        #[arg(long, default_value_t = 16)]
        devices: usize,
        /// Seed of the fleet's hardware and driver versions.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Where the database and token files go (default: a new temporary directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The fleet database (default: sqlite in DIR).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// The fleet's address.
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
        listen: std::net::SocketAddr,
    },
    /// Probe a sysfs tree, real or emulated, with a script of list/read/write/mkdir/rmdir/unlink/creat
    /// operations on paths below ROOT; prints one line per node or operation, naming paths relative
    /// to ROOT, so the output for a real kernel and for simfs can be diffed
    /// (example: `devmig sim probe --root /sys kernel/vm/guest/probe-mtty.txt`).
    Probe {
        /// The tree's root: /sys, or an emulated host's <mountpoint>/sys.
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// The probe script.
        script: PathBuf,
    },
    /// Mount an emulated host on DIR in the foreground; unmount on SIGINT/SIGTERM (needs root).
    ///
    /// Example: mkdir -p /mnt/lab && devmig sim mount --spec lab.toml /mnt/lab
    Mount {
        /// The host spec (default: the embedded example).
        #[arg(long, value_name = "FILE")]
        spec: Option<PathBuf>,
        /// The mountpoint (an existing directory).
        dir: PathBuf,
        /// Never poll the FUSE device: session threads sleep between requests (slower round
        /// trips; no CPU spent polling while the mount is busy).
        #[arg(long)]
        no_busy_poll: bool,
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

/// `devmig bench placement`.
#[derive(Debug, Args)]
pub struct BenchPlacementArgs {
    /// Placement's base URL (an empty, disposable Placement: the benchmark creates providers).
    #[arg(long, value_name = "URL")]
    pub placement: String,
    /// A file holding the token (`admin` for a Placement with auth_strategy = noauth2).
    #[arg(long, value_name = "FILE")]
    pub placement_token_file: PathBuf,
    /// Simulated hosts (compute nodes).
    #[arg(long, default_value_t = 1000)]
    pub hosts: usize,
    /// Devices per host.
    #[arg(long, default_value_t = 16)]
    pub devices: usize,
    /// Calls to Placement at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Step-a queries to time on each side.
    #[arg(long, default_value_t = 50)]
    pub queries: usize,
    /// Seed (the same as `bench fleet`'s gives the same hosts).
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `devmig bench fleet`.
#[derive(Debug, Args)]
pub struct BenchFleetArgs {
    /// The fleet database to load (default: sqlite in a temporary directory).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Hosts whose reports are pushed over HTTP (0: skip ingestion and step a).
    #[arg(long, default_value_t = 10_000)]
    pub hosts: usize,
    /// Devices per host.
    #[arg(long, default_value_t = 16)]
    pub devices: usize,
    /// Concurrent pushers.
    #[arg(long, default_value_t = 16)]
    pub pushers: usize,
    /// Step-a queries to time.
    #[arg(long, default_value_t = 300)]
    pub queries: usize,
    /// Simulated agents for the placement figures (0: skip them).
    #[arg(long, default_value_t = 0)]
    pub agents: usize,
    /// Placements to time.
    #[arg(long, default_value_t = 100)]
    pub placements: usize,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}
