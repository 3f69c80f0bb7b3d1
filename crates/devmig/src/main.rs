//! The `devmig` command.
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use devmig_core::{Checker, SysfsRoot};
use devmig_vendors::{Catalog, Registry};

mod backend;
mod cli;
mod commands;
mod error;
mod output;
mod remote;

use backend::Backend;
use cli::{Cli, Command};
use error::CliError;
use remote::Remote;

fn checker(cli: &Cli) -> Result<Checker, CliError> {
    let catalog = match &cli.catalog {
        Some(path) => Catalog::embedded_with_file(path)?,
        None => Catalog::embedded(),
    };
    if cli.timeout_ms == 0 {
        return Err(CliError::Usage("--timeout-ms must be at least 1".into()));
    }
    let mut registry = Registry::new(catalog);
    if !cli.no_models.is_empty() {
        registry = registry.without_models(&cli.no_models).map_err(|e| CliError::Usage(format!("--no-model: {e}")))?;
    }
    Ok(Checker::new(SysfsRoot::new(&cli.sysfs_root), registry, Duration::from_millis(cli.timeout_ms)))
}

fn run(cli: &Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32, CliError> {
    let checker = checker(cli)?;
    let o = cli.output;
    let tls = remote::TlsClient {
        ca_file: cli.ca_file.clone(),
        client_cert: cli.client_cert.clone(),
        client_key: cli.client_key.clone(),
    };
    let remote_for = |host: &str| Remote::resolve(host, cli.agents.as_deref(), cli.token_file.as_deref(), &tls);
    commands::set_hosts(commands::Hosts {
        agents: cli.agents.clone(),
        token_file: cli.token_file.clone(),
        tls: tls.clone(),
        agent_given: cli.agent.is_some(),
    });
    let backend = match &cli.agent {
        Some(url) => Backend::Remote(remote_for(url)?),
        None => Backend::Local(checker.clone()),
    };
    match &cli.command {
        Command::List => commands::inventory::list(&backend, o, out),
        Command::Show { device } => commands::inventory::show(&backend, device, o, out),
        Command::Version { device } => commands::version::version(&backend, device, o, out, err),
        Command::Check(args) => commands::check::check(&backend, args, false, o, out),
        Command::Explain(args) => commands::check::check(&backend, args, true, o, out),
        Command::Attributes { device } => commands::attributes::attributes(&backend, device, o, out),
        Command::Match(args) => commands::matching::matching(&backend, args, o, out),
        Command::Demo => commands::demo::demo(checker.registry(), out),
        Command::Sim(sim) => commands::sim::sim(sim, checker.registry(), out),
        Command::Agent(args) => commands::agent::agent(cli, args, checker.registry(), out),
        Command::Claim(args) => commands::claims::claim(&remote_for(&args.host)?, args, o, out),
        Command::Release { host, id } => commands::claims::release(&remote_for(host)?, id, o, out),
        Command::Fleet(f) => commands::fleet::fleet(f, checker.registry(), o, out),
        Command::Placement(p) => commands::placement::placement(p, &backend, checker.registry(), o, out),
        Command::Libvirt(l) => commands::libvirt::libvirt(l, &backend, &cli.sysfs_root, o, out),
        Command::Dra(d) => commands::dra::dra(d, &backend, checker.registry(), out),
        Command::Vms(args) => commands::vms::vms(args, &backend, checker.registry(), o, out),
        Command::Bench(cli::BenchCommand::Placement(args)) => {
            commands::bench_placement::bench_placement(args, checker.registry(), out)
        }
        Command::Bench(cli::BenchCommand::Fleet(args)) => {
            commands::bench_fleet::bench_fleet(args, checker.registry(), out)
        }
        Command::Bench(cli::BenchCommand::Check { version, target, roots, rounds, per_round }) => {
            commands::bench::check_roots(version, target, roots, (*rounds, *per_round), checker.registry(), out)
        }
        Command::Bench(b) => {
            let url = cli.agent.as_deref().ok_or_else(|| CliError::Usage("devmig bench needs --agent URL".into()))?;
            let tf =
                cli.token_file.as_deref().ok_or_else(|| CliError::Usage("devmig bench needs --token-file".into()))?;
            commands::bench::bench(b, url, &remote::read_token(tf)?, checker.registry(), out)
        }
        Command::Claims { host, migration } => commands::claims::list(&remote_for(host)?, migration.as_deref(), o, out),
    }
}

fn main() -> ExitCode {
    // reqwest builds a rustls config even for http://; every TLS endpoint here uses ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse_noting_given();
    // Unlocked handles: a long-running verb (agent, sim mount) must not hold the
    // stdout/stderr locks, or its other threads' log lines would wait forever.
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let code = match run(&cli, &mut stdout, &mut stderr) {
        Ok(code) => code,
        // A reader that went away (`devmig fleet hosts | head -1`) ends the command quietly
        // with 0, as ripgrep and zoxide do: the output it wanted was written.
        Err(e) if e.is_broken_pipe() => 0,
        Err(e) => {
            let _ = writeln!(stderr, "devmig: {}", e.chain());
            e.exit_code()
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(3))
}
