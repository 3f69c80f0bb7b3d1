//! `devmig agent`: configuration, logging, the server until SIGTERM.
use std::io::Write;
use std::time::Duration;

use devmig_agent::AgentConfig;
use devmig_core::DeviceKind;
use devmig_vendors::Registry;

use crate::cli::{AgentArgs, Cli};
use crate::error::CliError;
use crate::output::line;

/// The configuration: the file's values (relative paths from its directory), each replaced by
/// the flag given for it; a flag always wins, even one equal to the default.
fn config(cli: &Cli, args: &AgentArgs) -> Result<AgentConfig, CliError> {
    let mut c = match &args.config {
        Some(path) => {
            if !path.exists() {
                return Err(CliError::Usage(format!("agent config {}: no such file", path.display())));
            }
            AgentConfig::from_file(path)?
        }
        None => {
            let token_file =
                args.token_file.clone().ok_or_else(|| CliError::Usage("give --config or --token-file".into()))?;
            AgentConfig::from_toml(&format!("token_file = {:?}", token_file.display().to_string()), "flags")?
        }
    };
    fn set<T: Clone>(slot: &mut T, flag: Option<&T>) {
        if let Some(v) = flag {
            *slot = v.clone();
        }
    }
    fn set_opt<T: Clone>(slot: &mut Option<T>, flag: Option<&T>) {
        if let Some(v) = flag {
            *slot = Some(v.clone());
        }
    }
    set(&mut c.listen, args.listen.as_ref());
    set(&mut c.token_file, args.token_file.as_ref());
    set(&mut c.state_dir, args.state_dir.as_ref());
    set(&mut c.io_workers, args.io_workers.as_ref());
    if cli.given.sysfs_root {
        c.sysfs_root = cli.sysfs_root.clone();
    }
    if cli.given.timeout_ms {
        c.timeout_ms = cli.timeout_ms;
    }
    c.log_json |= args.log_json;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        c.tls = Some(devmig_agent::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: args.tls_client_ca.clone(),
        });
    }
    set_opt(&mut c.fleet, args.fleet.as_ref());
    set_opt(&mut c.fleet_token_file, args.fleet_token_file.as_ref());
    set_opt(&mut c.fleet_ca_file, args.fleet_ca_file.as_ref());
    set_opt(&mut c.fleet_client_cert, args.fleet_client_cert.as_ref());
    set_opt(&mut c.fleet_client_key, args.fleet_client_key.as_ref());
    set_opt(&mut c.host_name, args.host_name.as_ref());
    set_opt(&mut c.advertise, args.advertise.as_ref());
    set_opt(&mut c.report_interval_s, args.report_interval_s.as_ref());
    set_opt(&mut c.placement, args.placement.as_ref());
    set_opt(&mut c.placement_token_file, args.placement_token_file.as_ref());
    set_opt(&mut c.placement_ca_file, args.placement_ca_file.as_ref());
    set_opt(&mut c.placement_node, args.placement_node.as_ref());
    set_opt(&mut c.placement_interval_s, args.placement_interval_s.as_ref());
    if c.io_workers == 0 || c.timeout_ms == 0 {
        return Err(CliError::Usage("--io-workers and --timeout-ms must be at least 1".into()));
    }
    check_links(&c)?;
    Ok(c)
}

/// Options that only make sense with another, wherever each was given.
fn check_links(c: &AgentConfig) -> Result<(), CliError> {
    let needs = |set: bool, what: &str, missing: bool, other: &str| {
        if set && missing {
            Err(CliError::Usage(format!("{what} needs {other} (a flag or its config key)")))
        } else {
            Ok(())
        }
    };
    needs(c.fleet.is_some(), "fleet", c.fleet_token_file.is_none(), "fleet_token_file")?;
    let fleet_extra = c.fleet_token_file.is_some()
        || c.fleet_ca_file.is_some()
        || c.fleet_client_cert.is_some()
        || c.advertise.is_some()
        || c.report_interval_s.is_some();
    needs(fleet_extra, "a fleet option", c.fleet.is_none(), "fleet")?;
    needs(
        c.fleet_client_cert.is_some(),
        "fleet_client_cert",
        c.fleet_client_key.is_none() || c.fleet_ca_file.is_none(),
        "fleet_client_key and fleet_ca_file",
    )?;
    needs(c.fleet_client_key.is_some(), "fleet_client_key", c.fleet_client_cert.is_none(), "fleet_client_cert")?;
    needs(c.placement.is_some(), "placement", c.placement_token_file.is_none(), "placement_token_file")?;
    let placement_extra = c.placement_token_file.is_some()
        || c.placement_ca_file.is_some()
        || c.placement_node.is_some()
        || c.placement_interval_s.is_some();
    needs(placement_extra, "a placement option", c.placement.is_none(), "placement")
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
    tracing::info!("shutting down");
}

/// The fleet link the configuration asks for, if any.
fn fleet_link(c: &AgentConfig, own_url: &str) -> Result<Option<(devmig_agent::FleetLink, reqwest::Client)>, CliError> {
    let Some(fleet) = &c.fleet else { return Ok(None) };
    devmig_api::ids::check_agent_url(fleet).map_err(|e| CliError::Usage(format!("fleet {fleet:?}: {e}")))?;
    let token_file =
        c.fleet_token_file.as_deref().ok_or_else(|| CliError::Usage("fleet needs fleet_token_file".into()))?;
    let host = match &c.host_name {
        Some(h) => h.clone(),
        None => super::kernel_host_name()?,
    };
    host.parse::<devmig_api::HostName>()?;
    let interval = c.report_interval_s.unwrap_or(30);
    if interval == 0 {
        return Err(CliError::Usage("report_interval_s must be at least 1".into()));
    }
    let mut client = reqwest::Client::builder();
    if fleet.starts_with("https://") {
        let tls = crate::remote::TlsClient {
            ca_file: c.fleet_ca_file.clone(),
            client_cert: c.fleet_client_cert.clone(),
            client_key: c.fleet_client_key.clone(),
        };
        client = client.tls_backend_preconfigured(
            tls.config().map_err(|e| CliError::Usage(format!("fleet {fleet}: {e} (fleet_ca_file)")))?,
        );
    }
    let client = client.build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
    let identity = devmig_agent::identity::load_or_create(&c.state_dir).map_err(|e| CliError::Usage(e.to_string()))?;
    let link = devmig_agent::FleetLink {
        fleet_url: fleet.clone(),
        token: crate::remote::read_token(token_file)?,
        host,
        identity,
        advertise: c.advertise.clone().unwrap_or_else(|| own_url.to_string()),
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(30),
        generation_file: Some(c.state_dir.join("fleet-generation")),
    };
    Ok(Some((link, client)))
}

/// The Placement link the configuration asks for, its node name and its interval.
fn placement_link(c: &AgentConfig) -> Result<Option<(devmig_openstack::PlacementLink, String, u64)>, CliError> {
    let (Some(url), Some(token_file)) = (&c.placement, &c.placement_token_file) else { return Ok(None) };
    let interval = c.placement_interval_s.unwrap_or(60);
    if interval == 0 {
        return Err(CliError::Usage("placement_interval_s must be at least 1".into()));
    }
    let node = super::placement::this_node(c.placement_node.as_deref().or(c.host_name.as_deref()))?;
    let placement = super::placement::placement_client(url, token_file, c.placement_ca_file.as_deref())?;
    let link = devmig_openstack::PlacementLink::new(
        devmig_openstack::Syncer::new(placement),
        Duration::from_secs(interval),
        10,
    );
    Ok(Some((link, node, interval)))
}

/// This host's providers as Placement should see them, from the agent's device records
/// (`None`, logged, when the devices cannot be read now).
async fn host_providers(
    agent: std::sync::Arc<devmig_agent::Agent>,
    registry: Registry,
    node: String,
) -> Option<devmig_openstack::Desired> {
    let records = move || {
        // A device discovery could not read would be missing from the records, and its
        // provider would lose traits step b may still honour: skip the look instead.
        let inventory = agent.devices()?;
        let unread = inventory.devices.iter().find(|d| {
            d.migration.support == devmig_core::MigrationSupport::Unknown
                && matches!(d.kind, DeviceKind::MdevType | DeviceKind::SriovVf | DeviceKind::Pci)
        });
        match unread {
            Some(d) => Err(devmig_agent::AgentError::Internal(format!("device {} cannot be read now", d.id))),
            None => agent.device_records_of(inventory),
        }
    };
    match tokio::task::spawn_blocking(records).await {
        Ok(Ok(records)) => Some(devmig_openstack::desired(
            &registry,
            &node,
            records.iter().map(|d| devmig_openstack::Target {
                id: &d.id,
                kind: d.kind,
                attributes: &d.attributes,
                pf: None,
            }),
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "devices not read for Placement; the next look tries again");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "Placement link task failed");
            None
        }
    }
}

/// Runs the agent until SIGTERM or SIGINT.
pub fn agent(cli: &Cli, args: &AgentArgs, registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    let c = config(cli, args)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEVMIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: a journal or a log file gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second init (tests in one process) keeps the first subscriber.
    let _ = if c.log_json { builder.json().try_init() } else { builder.try_init() };
    let state = c.open(registry.clone())?;
    let tls = c.tls.as_ref().map(|t| t.server_config()).transpose()?;
    let scheme = match (&tls, c.tls.as_ref().and_then(|t| t.client_ca.as_ref())) {
        (None, _) => "http",
        (Some(_), None) => "https",
        (Some(_), Some(_)) => "https (client certificates required)",
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io { what: "starting the runtime".into(), source: e })?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(c.listen)
            .await
            .map_err(|e| CliError::Io { what: format!("binding {}", c.listen), source: e })?;
        let addr =
            listener.local_addr().map_err(|e| CliError::Io { what: "reading the bound address".into(), source: e })?;
        let url = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        line(
            out,
            format!(
                "devmig agent listening on {url} [{scheme}] (sysfs root {}, state {}, sysfs timeout {} ms)",
                c.sysfs_root.display(),
                c.state_dir.display(),
                c.timeout_ms
            ),
        )?;
        out.flush().map_err(crate::output::write_err)?;
        tracing::info!(%addr, "listening");
        if let Some((link, client)) = fleet_link(&c, &url)? {
            line(
                out,
                format!("reporting to the fleet at {} as {} (identity {})", link.fleet_url, link.host, link.identity),
            )?;
            tokio::spawn(link.run(std::sync::Arc::clone(&state.agent), client));
        }
        if let Some(link) = placement_link(&c)? {
            line(out, format!("keeping Placement traits of node {} in sync (every {} s)", link.1, link.2))?;
            let (agent, registry, node) = (std::sync::Arc::clone(&state.agent), registry.clone(), link.1);
            tokio::spawn(link.0.run(move || host_providers(agent.clone(), registry.clone(), node.clone())));
        }
        devmig_agent::run(listener, state, tls, shutdown_signal())
            .await
            .map_err(|e| CliError::Io { what: "serving".into(), source: e })
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(0)
}
