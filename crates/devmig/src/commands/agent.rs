//! `devmig agent`: configuration, logging, the server until SIGTERM.
use std::io::Write;
use std::time::Duration;

use devmig_agent::AgentConfig;
use devmig_core::DeviceKind;
use devmig_vendors::Registry;

use crate::cli::{AgentArgs, Cli};
use crate::error::CliError;
use crate::output::line;

fn config(cli: &Cli, args: &AgentArgs) -> Result<AgentConfig, CliError> {
    let mut c = match &args.config {
        Some(path) => {
            let text = CliError::read_input(path, "agent config")?;
            AgentConfig::from_toml(&text, &path.display().to_string())?
        }
        None => {
            let token_file =
                args.token_file.clone().ok_or_else(|| CliError::Usage("give --config or --token-file".into()))?;
            AgentConfig::from_toml(&format!("token_file = {:?}", token_file.display().to_string()), "flags")?
        }
    };
    // Flags win over the file; the global --sysfs-root and --timeout-ms count when not left at their defaults.
    if let Some(l) = args.listen {
        c.listen = l;
    }
    if let Some(t) = &args.token_file {
        c.token_file = t.clone();
    }
    if let Some(d) = &args.state_dir {
        c.state_dir = d.clone();
    }
    if let Some(n) = args.io_workers {
        c.io_workers = n.max(1);
    }
    if cli.sysfs_root.as_os_str() != "/" {
        c.sysfs_root = cli.sysfs_root.clone();
    }
    if cli.timeout_ms != 5000 {
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
    Ok(c)
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

/// The fleet link the flags ask for, if any.
fn fleet_link(
    args: &AgentArgs,
    own_url: &str,
    state_dir: &std::path::Path,
) -> Result<Option<devmig_agent::FleetLink>, CliError> {
    let Some(fleet) = &args.fleet else { return Ok(None) };
    if !(fleet.starts_with("http://") || fleet.starts_with("https://")) {
        return Err(CliError::Usage(format!("--fleet {fleet:?}: expected http(s)://host:port")));
    }
    let token_file =
        args.fleet_token_file.as_deref().ok_or_else(|| CliError::Usage("--fleet needs --fleet-token-file".into()))?;
    let host = match &args.host_name {
        Some(h) => h.clone(),
        None => super::kernel_host_name()?,
    };
    host.parse::<devmig_api::HostName>()?;
    if args.report_interval_s == 0 {
        return Err(CliError::Usage("--report-interval-s must be at least 1".into()));
    }
    let identity = devmig_agent::identity::load_or_create(state_dir).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Some(devmig_agent::FleetLink {
        fleet_url: fleet.clone(),
        token: crate::remote::read_token(token_file)?,
        host,
        identity,
        advertise: args.advertise.clone().unwrap_or_else(|| own_url.to_string()),
        interval: Duration::from_secs(args.report_interval_s),
        timeout: Duration::from_secs(30),
        generation_file: Some(state_dir.join("fleet-generation")),
    }))
}

/// The Placement link these flags ask for, and its node name.
fn placement_link(args: &AgentArgs) -> Result<Option<(devmig_openstack::PlacementLink, String)>, CliError> {
    let (Some(url), Some(token_file)) = (&args.placement, &args.placement_token_file) else { return Ok(None) };
    if args.placement_interval_s == 0 {
        return Err(CliError::Usage("--placement-interval-s must be at least 1".into()));
    }
    let node = super::placement::this_node(args.placement_node.as_deref().or(args.host_name.as_deref()))?;
    let placement = super::placement::placement_client(url, token_file, args.placement_ca_file.as_deref())?;
    let link = devmig_openstack::PlacementLink::new(
        devmig_openstack::Syncer::new(placement),
        Duration::from_secs(args.placement_interval_s),
        10,
    );
    Ok(Some((link, node)))
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
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
                "devmig agent listening on {url} [{scheme}] (sysfs root {}, state {})",
                c.sysfs_root.display(),
                c.state_dir.display()
            ),
        )?;
        out.flush().map_err(crate::output::write_err)?;
        tracing::info!(%addr, "listening");
        if let Some(link) = fleet_link(args, &url, &c.state_dir)? {
            line(
                out,
                format!("reporting to the fleet at {} as {} (identity {})", link.fleet_url, link.host, link.identity),
            )?;
            let client =
                reqwest::Client::builder().build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
            tokio::spawn(link.run(std::sync::Arc::clone(&state.agent), client));
        }
        if let Some(link) = placement_link(args)? {
            line(
                out,
                format!("keeping Placement traits of node {} in sync (every {} s)", link.1, args.placement_interval_s),
            )?;
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
