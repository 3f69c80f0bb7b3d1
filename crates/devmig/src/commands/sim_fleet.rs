//! `devmig sim fleet`: a fleet server and one agent per simulated host, all in this process.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devmig_agent::{Scope, Tokens};
use devmig_fleet::db::DbUrl;
use devmig_fleet::now_ms;
use devmig_fleet::placement::Fleet;
use devmig_fleet::server::FleetOptions;
use devmig_fleet::sim::{SimFleet, SimLinks, SimSpec, host_name, report_secret, report_tokens};
use devmig_vendors::Registry;

use crate::error::CliError;
use crate::output::line;

/// Secrets of a simulated lab, also written to files in its directory.
#[derive(Debug, Clone)]
pub struct LabSecrets {
    /// Each host's report token derives from it (`sim::report_secret`).
    pub report: String,
    /// Read-only fleet queries.
    pub read: String,
    /// Placements through the fleet API.
    pub admin: String,
    /// The fleet (and CLI) presents it to agents.
    pub agent: String,
}

fn secret() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Writes a file only its owner may read (every file here holds secrets).
fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, CliError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let p = dir.join(name);
    let io = |e| CliError::Io { what: format!("writing {}", p.display()), source: e };
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&p).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    Ok(p)
}

/// A running lab: the fleet server (on `url`) and the simulated agents reporting to it.
pub struct Lab {
    /// The fleet.
    pub fleet: Fleet,
    /// Its URL.
    pub url: String,
    /// The agents.
    pub sim: SimFleet,
    /// Secrets.
    pub secrets: LabSecrets,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Writes token files into `dir`, starts a fleet on `listen` over `db` and `spec.hosts` agents
/// reporting to it, and waits (bounded) until every host reported once. The fleet accepts
/// reports for the first `report_hosts` hosts of the spec's prefix (at least its own hosts).
pub async fn start_lab(
    spec: &SimSpec,
    report_hosts: usize,
    db: DbUrl,
    dir: &Path,
    listen: std::net::SocketAddr,
    stale_after: Duration,
    registry: &Registry,
) -> Result<Lab, CliError> {
    let secrets = LabSecrets { report: secret(), read: secret(), admin: secret(), agent: secret() };
    // One report token per host, bound to it (a host's agent may report that host only).
    let entries: Vec<_> = [
        ("reader".to_string(), Scope::Read, None, secrets.read.clone()),
        ("admin".to_string(), Scope::Admin, None, secrets.admin.clone()),
    ]
    .into_iter()
    .chain(report_tokens(&secrets.report, &spec.prefix, report_hosts.max(spec.hosts)))
    .collect();
    let mut fleet_tokens = String::new();
    for (name, scope, host, secret) in &entries {
        let scope = format!("{scope:?}").to_lowercase();
        let host = host.as_ref().map(|h| format!("host = \"{h}\"\n")).unwrap_or_default();
        fleet_tokens
            .push_str(&format!("[[token]]\nname = \"{name}\"\nscope = \"{scope}\"\n{host}secret = \"{secret}\"\n\n"));
    }
    write(dir, "fleet-tokens.toml", &fleet_tokens)?;
    let agent_tokens = format!("[[token]]\nname = \"fleet\"\nscope = \"admin\"\nsecret = \"{}\"\n", secrets.agent);
    write(dir, "agent-tokens.toml", &agent_tokens)?;
    write(dir, "agent-token", &secrets.agent)?;
    write(dir, "read-token", &secrets.read)?;
    write(dir, "admin-token", &secrets.admin)?;
    if let Some(first) = (spec.hosts > 0).then(|| host_name(&spec.prefix, 0)) {
        write(dir, "report-token", &report_secret(&secrets.report, &first))?;
    }
    let opts = FleetOptions {
        db,
        pool_size: 8,
        stale_after,
        agent_timeout: Duration::from_secs(2),
        concurrency: 4,
        agent_credentials: devmig_fleet::agents::AgentCredentials::single(secrets.agent.clone()),
        agent_tls: None,
    };
    let reg = registry.clone();
    let fleet = tokio::task::spawn_blocking(move || opts.open(reg))
        .await
        .map_err(|e| CliError::Usage(format!("opening the fleet: {e}")))??;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Io { what: format!("binding {listen}"), source: e })?;
    let addr =
        listener.local_addr().map_err(|e| CliError::Io { what: "reading the bound address".into(), source: e })?;
    let url = format!("http://{addr}");
    let tokens = Arc::new(Tokens::from_entries(entries)?);
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let f = fleet.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = devmig_fleet::server::serve(listener, f, tokens, None, shutdown).await {
            tracing::error!(error = %e, "fleet server stopped");
        }
    });
    let links = SimLinks {
        fleet_url: Some(url.clone()),
        report_secret_base: secrets.report.clone(),
        agent_tokens: Arc::new(Tokens::from_toml(&agent_tokens, "generated")?),
        interval: Duration::from_secs(30),
        agent_tls: None,
        fleet_client: reqwest::Client::new(),
    };
    let sim = SimFleet::start(spec, registry.clone(), links).await?;
    let lab = Lab { fleet, url, sim, secrets, stop };
    let deadline = Instant::now() + Duration::from_secs(120 + spec.hosts as u64 / 10);
    loop {
        let store = lab.fleet.store.clone();
        let n = tokio::task::spawn_blocking(move || store.hosts(now_ms()).map(|h| h.len()))
            .await
            .map_err(|e| CliError::Usage(format!("counting hosts: {e}")))??;
        if n >= spec.hosts {
            return Ok(lab);
        }
        if Instant::now() > deadline {
            return Err(CliError::Usage(format!("only {n} of {} simulated hosts reported in time", spec.hosts)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the simulated fleet until SIGINT/SIGTERM.
pub fn sim_fleet(
    spec: &SimSpec,
    dir: Option<&Path>,
    db: Option<&str>,
    listen: std::net::SocketAddr,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let temp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| CliError::Io { what: format!("creating {}", d.display()), source: e })?;
            d.to_path_buf()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("devmig-sim-fleet-")
                .tempdir()
                .map_err(|e| CliError::Io { what: "creating a temporary directory".into(), source: e })?;
            temp.path().to_path_buf()
        }
    };
    let db_text = db.map_or_else(|| format!("sqlite:{}", dir.join("fleet.db").display()), str::to_string);
    let db_url: DbUrl = db_text.parse()?;
    let rt = crate::commands::fleet::runtime()?;
    rt.block_on(async {
        let started = Instant::now();
        let lab = start_lab(spec, 0, db_url, &dir, listen, Duration::from_secs(90), registry).await?;
        line(
            out,
            format!(
                "fleet: {} ({} hosts x {} devices reported in {:.1} s)",
                lab.url,
                spec.hosts,
                spec.devices,
                started.elapsed().as_secs_f64()
            ),
        )?;
        line(out, format!("database: {db_text}"))?;
        line(
            out,
            format!("tokens: {}/fleet-tokens.toml (fleet), {}/agent-token (agents)", dir.display(), dir.display()),
        )?;
        let first = &lab.sim.hosts[0];
        line(out, format!("web view: {}/ui (paste the token in {}/read-token)", lab.url, dir.display()))?;
        line(out, format!("try: devmig fleet hosts --db {db_text}"))?;
        line(
            out,
            format!("     devmig fleet hosts --fleet {} --fleet-token-file {}/read-token", lab.url, dir.display()),
        )?;
        line(
            out,
            format!(
                "     devmig fleet place --db {db_text} --agent-token-file {}/agent-token --source {}:0000:3d:00.1",
                dir.display(),
                first.name
            ),
        )?;
        out.flush().map_err(crate::output::write_err)?;
        crate::commands::agent::shutdown_signal().await;
        // Exit at once: thousands of hosts' trees are removed by a detached process.
        let mut lab = lab;
        lab.sim.stop_and_clean_up_in_background();
        drop(lab);
        Ok::<(), CliError>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(0)
}
