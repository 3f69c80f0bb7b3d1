//! `devmig fleet ...`: the fleet server, and the fleet's queries run against its database.
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use devmig_api::fleet::{Baseline, Candidates, CandidatesRequest, EvacuationRequest, HostRow, PoolRequest};
use devmig_fleet::agents::AgentCredentials;
use devmig_fleet::db::DbUrl;
use devmig_fleet::now_ms;
use devmig_fleet::placement::{Fleet, Placement, PlacementRequest, SourceRef};
use devmig_fleet::plans::{self, DriverChange, Evacuation, WhatIf};
use devmig_fleet::server::FleetOptions;
use devmig_fleet::store::DeviceRow;
use devmig_vendors::Registry;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{FleetAccessArgs, FleetCommand, FleetDbArgs, Output, VmSourcesArgs};
use crate::error::CliError;
use crate::output::{json, line, plural, table};
use crate::remote::{Remote, TlsClient, read_token};

/// The database a fleet verb opens when none is given.
pub const DEFAULT_DB: &str = "sqlite:/var/lib/devmig/fleet.db";

/// The fleet options these flags give.
pub fn options(db: &FleetDbArgs, pool_size: usize, needs_agents: bool) -> Result<FleetOptions, CliError> {
    let url: DbUrl = db.db.as_deref().unwrap_or(DEFAULT_DB).parse()?;
    let agent_credentials = match (&db.agent_token_file, needs_agents) {
        (Some(f), _) => {
            let text = CliError::read_input(f, "agent token file")?;
            AgentCredentials::parse(&text, &f.display().to_string())?
        }
        (None, true) => return Err(CliError::Usage("this verb calls agents: give --agent-token-file".into())),
        (None, false) => AgentCredentials::default(),
    };
    if db.agent_timeout_ms == 0 || db.stale_after_s == 0 {
        return Err(CliError::Usage("--agent-timeout-ms and --stale-after-s must be at least 1".into()));
    }
    Ok(FleetOptions {
        db: url,
        pool_size,
        stale_after: Duration::from_secs(db.stale_after_s),
        agent_timeout: Duration::from_millis(db.agent_timeout_ms),
        concurrency: db.concurrency.max(1),
        agent_credentials,
        agent_tls: db.agent_ca_file.as_ref().map(|ca| devmig_agent::tls::ClientTls {
            ca_file: ca.clone(),
            client_cert: db.agent_client_cert.clone(),
            client_key: db.agent_client_key.clone(),
        }),
    })
}

/// Where a fleet query runs: in this process on the fleet's database, or on a fleet's API.
enum FleetAt {
    /// The database, opened here.
    Local(Fleet),
    /// `--fleet URL`.
    Remote(Remote),
}

/// Database flags that make no sense with --fleet (the remote fleet has its own).
fn local_only_flags(db: &FleetDbArgs) -> Vec<&'static str> {
    let mut given = Vec::new();
    if db.db.is_some() {
        given.push("--db");
    }
    if db.agent_token_file.is_some() {
        given.push("--agent-token-file");
    }
    if db.agent_ca_file.is_some() || db.agent_client_cert.is_some() {
        given.push("--agent-ca-file/--agent-client-cert");
    }
    given
}

impl FleetAt {
    /// Opens the database, or a client of `--fleet`; never both, never one silently instead of the other.
    fn open(at: &FleetAccessArgs, registry: &Registry, pool_size: usize, needs_agents: bool) -> Result<Self, CliError> {
        let Some(url) = &at.fleet else {
            if at.fleet_token_file.is_some() {
                return Err(CliError::Usage("--fleet-token-file is for --fleet URL: give --fleet too".into()));
            }
            return Ok(FleetAt::Local(options(&at.db, pool_size, needs_agents)?.open_existing(registry.clone())?));
        };
        let clash = local_only_flags(&at.db);
        if !clash.is_empty() {
            return Err(CliError::Usage(format!(
                "--fleet {url} asks the fleet's API, which has its own database and agent access: drop {} \
                 (set by a flag or its DEVMIG_* variable)",
                clash.join(", ")
            )));
        }
        devmig_api::ids::check_agent_url(url).map_err(|e| CliError::Usage(format!("--fleet: {e}")))?;
        let tf = at.fleet_token_file.as_deref().ok_or_else(|| {
            CliError::Usage(format!("--fleet {url}: give --fleet-token-file (or DEVMIG_FLEET_TOKEN_FILE)"))
        })?;
        let tls = TlsClient {
            ca_file: at.fleet_ca_file.clone(),
            client_cert: at.fleet_client_cert.clone(),
            client_key: at.fleet_client_key.clone(),
        };
        Ok(FleetAt::Remote(Remote::fleet(url, read_token(tf)?, &tls)?))
    }

    fn hosts(&self) -> Result<Vec<HostRow>, CliError> {
        match self {
            FleetAt::Local(f) => Ok(f.store.hosts(now_ms())?),
            FleetAt::Remote(r) => Ok(r.get::<HostsAnswer>("/api/v1/hosts")?.hosts),
        }
    }

    fn devices(&self, glob: &str) -> Result<Vec<DeviceRow>, CliError> {
        let pattern = plans::host_pattern(glob)?;
        match self {
            FleetAt::Local(f) => Ok(f.store.devices(now_ms(), &|h| pattern.matches(h))?),
            FleetAt::Remote(r) => {
                let q: String =
                    url::form_urlencoded::Serializer::new(String::new()).append_pair("hosts", glob).finish();
                Ok(r.get::<DevicesAnswer>(&format!("/api/v1/devices?{q}"))?.devices)
            }
        }
    }

    fn forget(&self, host: &str) -> Result<bool, CliError> {
        match self {
            FleetAt::Local(f) => Ok(f.store.forget(host)?),
            FleetAt::Remote(r) => match r.delete::<serde_json::Value>(&format!("/api/v1/hosts/{host}")) {
                Ok(_) => Ok(true),
                Err(CliError::Remote { status: 404, .. }) => Ok(false),
                Err(e) => Err(e),
            },
        }
    }

    fn place(&self, req: PlacementRequest) -> Result<Placement, CliError> {
        match self {
            FleetAt::Local(f) => Ok(runtime()?.block_on(f.place(req))?),
            FleetAt::Remote(r) => r.post("/api/v1/placements", &req),
        }
    }

    fn candidates(&self, req: &CandidatesRequest) -> Result<Candidates, CliError> {
        match self {
            FleetAt::Local(f) => Ok(f.candidates(req)?),
            FleetAt::Remote(r) => r.post("/api/v1/candidates", req),
        }
    }

    fn evacuate(&self, req: EvacuationRequest) -> Result<Evacuation, CliError> {
        match self {
            FleetAt::Local(fleet) => {
                let prefix =
                    req.migration_prefix.clone().unwrap_or_else(|| format!("evacuate-{}-{}", req.host, now_ms()));
                with_bar("evacuating", |p| async move {
                    if req.vms.is_empty() {
                        plans::evacuate(fleet, &req.host, req.claim, &prefix, &p).await
                    } else {
                        plans::evacuate_vms(fleet, &req.host, &req.vms, req.claim, &prefix, &p).await
                    }
                })
            }
            FleetAt::Remote(r) => r.post("/api/v1/evacuations", &req),
        }
    }

    fn baseline(&self, hosts: &str) -> Result<Baseline, CliError> {
        match self {
            FleetAt::Local(fleet) => with_bar("versions", |p| async move { plans::baseline(fleet, hosts, &p).await }),
            FleetAt::Remote(r) => r.post("/api/v1/baseline", &PoolRequest { hosts: hosts.into(), driver: None }),
        }
    }

    fn what_if(&self, hosts: &str, change: DriverChange) -> Result<WhatIf, CliError> {
        match self {
            FleetAt::Local(fleet) => {
                with_bar("source versions", |p| async move { plans::what_if(fleet, hosts, change, &p).await })
            }
            FleetAt::Remote(r) => r.post("/api/v1/what-if", &PoolRequest { hosts: hosts.into(), driver: Some(change) }),
        }
    }
}

#[derive(serde::Deserialize)]
struct HostsAnswer {
    hosts: Vec<HostRow>,
}

#[derive(serde::Deserialize)]
struct DevicesAnswer {
    devices: Vec<DeviceRow>,
}

/// The sources of `place` and `candidates`: `HOST:DEVICE`s, then version strings.
fn source_refs(vm: &VmSourcesArgs) -> Result<Vec<SourceRef>, CliError> {
    let mut refs: Vec<SourceRef> = vm.sources.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    refs.extend(vm.source_versions.iter().map(|v| SourceRef { host: None, device: None, version: Some(v.clone()) }));
    if refs.is_empty() {
        return Err(CliError::Usage("give at least one --source HOST:DEVICE or --source-version STRING".into()));
    }
    Ok(refs)
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Io { what: "starting the runtime".into(), source: e })
}

/// A progress bar on stderr (drawn only on a terminal).
fn bar(what: &'static str) -> ProgressBar {
    let b = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)") {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what);
    b
}

/// Runs a fleet verb.
pub fn fleet(cmd: &FleetCommand, registry: &Registry, o: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    match cmd {
        FleetCommand::Serve { db, listen, token_file, pool_size, tls_cert, tls_key, tls_client_ca } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(
                    devmig_agent::tls::TlsFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                        client_ca: tls_client_ca.clone(),
                    }
                    .server_config()?,
                ),
                _ => None,
            };
            serve(db, *listen, token_file, *pool_size, tls, registry, out)
        }
        FleetCommand::Hosts { at } => {
            let hosts = FleetAt::open(at, registry, 1, false)?.hosts()?;
            if o == Output::Json {
                return json(out, "devmig.fleet-hosts/v1", &serde_json::json!({ "hosts": hosts })).map(|()| 0);
            }
            if hosts.is_empty() {
                line(out, "the fleet knows no host yet: agents register by reporting (devmig agent --fleet URL)")?;
                return Ok(0);
            }
            let rows = hosts.iter().map(|h| {
                let state = if h.stale { "stale (excluded)" } else { "fresh" };
                vec![
                    h.name.clone(),
                    h.url.clone(),
                    if h.identity.is_empty() { "-".into() } else { h.identity.clone() },
                    h.generation.to_string(),
                    crate::output::ago(h.last_seen_ms),
                    h.devices.to_string(),
                    h.free.to_string(),
                    state.into(),
                ]
            });
            table(out, &["HOST", "AGENT", "IDENTITY", "GENERATION", "LAST REPORT", "DEVICES", "FREE", "STATE"], rows)?;
            Ok(0)
        }
        FleetCommand::Forget { at, host } => {
            host.parse::<devmig_api::HostName>()?;
            if !FleetAt::open(at, registry, 1, false)?.forget(host)? {
                return Err(CliError::Usage(format!("the fleet knows no host {host:?}")));
            }
            if o == Output::Json {
                return json(out, "devmig.fleet-forget/v1", &serde_json::json!({ "forgotten": host })).map(|()| 0);
            }
            line(out, format!("forgot {host}: its next report registers it anew"))?;
            Ok(0)
        }
        FleetCommand::Devices { at, hosts } => {
            let devices = FleetAt::open(at, registry, 1, false)?.devices(hosts)?;
            if devices.is_empty() && hosts != "*" {
                return Err(CliError::Usage(format!(
                    "no device on a host matching {hosts:?}: the fleet knows no such host, or it reported no \
                     migratable device"
                )));
            }
            if devices.is_empty() && o == Output::Table {
                line(out, "the fleet knows no device yet")?;
                return Ok(0);
            }
            if o == Output::Json {
                return json(out, "devmig.fleet-devices/v1", &serde_json::json!({ "devices": devices })).map(|()| 0);
            }
            let rows = devices.iter().map(|d| {
                let state = match (&d.held_by, d.free, d.stale, d.kind) {
                    (_, _, true, _) => "stale host".to_string(),
                    (Some(m), _, _, _) => format!("held by {m}"),
                    (None, true, _, devmig_core::DeviceKind::MdevType) => "room for more".into(),
                    (None, false, _, devmig_core::DeviceKind::MdevType) => "full".into(),
                    (None, true, _, _) => "free".into(),
                    (None, false, _, _) => "in use".into(),
                };
                vec![d.host.clone(), d.device.clone(), d.kind.to_string(), d.version.clone(), state]
            });
            table(out, &["HOST", "DEVICE", "KIND", "VERSION", "STATE"], rows)?;
            Ok(0)
        }
        FleetCommand::Candidates { at, vm, exclude_hosts, limit } => {
            let req = CandidatesRequest {
                sources: source_refs(vm)?,
                exclude_hosts: exclude_hosts.clone(),
                limit: Some(*limit),
            };
            let c = FleetAt::open(at, registry, 1, false)?.candidates(&req)?;
            if o == Output::Json {
                json(out, "devmig.candidates/v1", &c)?;
            } else {
                render_candidates(&c, out)?;
            }
            Ok(if c.candidate_hosts > 0 { 0 } else { 1 })
        }
        FleetCommand::Place { at, vm, claim, migration_id, exclude_hosts, max_hosts } => {
            let req = PlacementRequest {
                sources: source_refs(vm)?,
                claim: *claim,
                migration_id: migration_id.clone(),
                exclude_hosts: exclude_hosts.clone(),
                max_hosts: Some(*max_hosts),
                ttl_seconds: None,
            };
            let p = FleetAt::open(at, registry, 2, true)?.place(req)?;
            if o == Output::Json {
                json(out, "devmig.placement/v1", &p)?;
            } else {
                render_placement(&p, out)?;
            }
            Ok(if p.placed { 0 } else { 1 })
        }
        FleetCommand::Evacuate { at, host, claim, migration_prefix, vms } => {
            let domains = vms.iter().map(|f| CliError::read_input(f, "domain XML")).collect::<Result<Vec<_>, _>>()?;
            let req = EvacuationRequest {
                host: host.clone(),
                claim: *claim,
                migration_prefix: migration_prefix.clone(),
                vms: domains,
            };
            let e = FleetAt::open(at, registry, 2, true)?.evacuate(req)?;
            if o == Output::Json {
                json(out, "devmig.evacuation/v1", &e)?;
            } else {
                let what = |m: &devmig_fleet::plans::Move| {
                    m.vm.clone().map_or_else(|| m.device.clone(), |vm| format!("{vm} ({})", m.device))
                };
                let rows = e.moves.iter().map(|m| {
                    let p = &m.placement;
                    match (&p.host, p.assignments.first()) {
                        (Some(h), Some(_)) => vec![
                            what(m),
                            p.assignments.iter().map(|a| format!("{h}:{}", a.target)).collect::<Vec<_>>().join(" "),
                            p.assignments
                                .iter()
                                .map(|a| format!("{:?}", a.verdict).to_lowercase())
                                .collect::<Vec<_>>()
                                .join(" "),
                        ],
                        _ => vec![what(m), "-".into(), summary(p)],
                    }
                });
                table(out, &["DEVICE", "TARGET", "VERDICT"], rows)?;
                let n = e.placed + e.unplaced;
                line(out, format!("{}: {} of {} placed", e.host, e.placed, plural(n, "device")))?;
            }
            Ok(if e.unplaced == 0 { 0 } else { 1 })
        }
        FleetCommand::Baseline { at, hosts } => {
            let r = FleetAt::open(at, registry, 1, false)?.baseline(hosts)?;
            if r.pool_hosts == 0 {
                return Err(CliError::Usage(format!("no fresh host the fleet knows matches {hosts:?}")));
            }
            if o == Output::Json {
                return json(out, "devmig.baseline/v1", &r).map(|()| 0);
            }
            line(
                out,
                format!("{} {} {hosts}", plural(r.pool_hosts, "fresh host"), verb(r.pool_hosts, "matches", "match")),
            )?;
            let rows = r.everywhere.iter().map(|a| vec![a.version.clone(), "every host".into()]).chain(
                r.partial
                    .iter()
                    .map(|a| vec![a.version.clone(), format!("{} of {}", a.hosts, plural(r.pool_hosts, "host"))]),
            );
            table(out, &["SOURCE VERSION", "ACCEPTED BY"], rows)?;
            Ok(0)
        }
        FleetCommand::WhatIf { at, hosts, driver } => {
            let change: DriverChange = driver.parse()?;
            let r = FleetAt::open(at, registry, 1, false)?.what_if(hosts, change)?;
            if r.pool_hosts == 0 {
                return Err(CliError::Usage(format!("no fresh host the fleet knows matches {hosts:?}")));
            }
            if o == Output::Json {
                return json(out, "devmig.what-if/v1", &r).map(|()| 0);
            }
            line(
                out,
                format!(
                    "{}={} on {} ({hosts}): {} {} version",
                    r.change.model,
                    r.change.version,
                    plural(r.pool_hosts, "host"),
                    plural(r.devices_changed, "device"),
                    verb(r.devices_changed, "changes", "change"),
                ),
            )?;
            let rows = r.into_pool.iter().map(|s| {
                vec!["into pool".into(), s.version.clone(), format!("{} -> {}", s.before, plural(s.after, "host"))]
            });
            let rows = rows.chain(r.out_of_pool.iter().map(|s| {
                vec![
                    "out of pool".into(),
                    s.version.clone(),
                    format!("{} outside the pool {} it", plural(s.after, "host"), verb(s.after, "accepts", "accept")),
                ]
            }));
            table(out, &["MIGRATIONS", "SOURCE VERSION", "CHANGE"], rows)?;
            Ok(0)
        }
    }
}

/// Runs a local plan on a runtime with a progress bar on stderr, cleared when it ends.
fn with_bar<T, F>(
    what: &'static str,
    plan: impl FnOnce(Box<dyn Fn(u64, u64) + Send + Sync>) -> F,
) -> Result<T, CliError>
where
    F: std::future::Future<Output = Result<T, devmig_fleet::FleetError>>,
{
    let b = bar(what);
    let r = runtime()?.block_on(plan(Box::new(progress(&b))));
    b.finish_and_clear();
    Ok(r?)
}

fn progress(b: &ProgressBar) -> impl Fn(u64, u64) + Send + Sync + use<> {
    let b = b.clone();
    move |done, total| {
        b.set_length(total);
        b.set_position(done);
    }
}

fn summary(p: &Placement) -> String {
    match &p.explanation {
        Some(e) => {
            e.groups.first().map_or("no host fits".into(), |g| format!("{}: {}", plural(g.hosts, "host"), g.detail))
        }
        None => "every candidate was rejected in step b".into(),
    }
}

/// The explanation's groups and closest misses, as `place` and `candidates` print them.
fn render_explanation(e: &devmig_api::fleet::Explanation, out: &mut dyn Write) -> Result<(), CliError> {
    line(out, "why not:")?;
    table(out, &["HOSTS", "REASON"], e.groups.iter().map(|g| vec![g.hosts.to_string(), g.detail.clone()]))?;
    if !e.closest.is_empty() {
        line(out, "closest:")?;
        table(
            out,
            &["HOST", "UNMET", "DETAIL"],
            e.closest.iter().map(|m| vec![m.host.clone(), m.unmet.to_string(), m.detail.join(" / ")]),
        )?;
    }
    Ok(())
}

fn render_candidates(c: &Candidates, out: &mut dyn Write) -> Result<(), CliError> {
    let shown = if c.more { format!(" (the first {} listed)", c.candidates.len()) } else { String::new() };
    line(
        out,
        format!(
            "{} {} step a with distinct targets{shown}",
            plural(c.candidate_hosts, "host"),
            verb(c.candidate_hosts, "passes", "pass")
        ),
    )?;
    if !c.candidates.is_empty() {
        let rows = c.candidates.iter().enumerate().map(|(i, h)| {
            let targets: Vec<String> =
                c.sources.iter().zip(&h.targets).map(|(s, t)| format!("{}: {}", s.label, t.join(" "))).collect();
            vec![
                (i + 1).to_string(),
                h.host.clone(),
                format!("{} of {}", h.identical, c.sources.len()),
                targets.join(" | "),
            ]
        });
        table(out, &["RANK", "HOST", "SAME VERSION", "TARGETS (STEP A)"], rows)?;
    }
    if !c.explanation.groups.is_empty() {
        render_explanation(&c.explanation, out)?;
    }
    Ok(())
}

/// The verb agreeing with `n`.
fn verb(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn render_placement(p: &Placement, out: &mut dyn Write) -> Result<(), CliError> {
    match (&p.host, &p.url) {
        (Some(h), Some(u)) => line(out, format!("placed on {h} ({u})"))?,
        _ => {
            line(out, format!("not placed: {} passed step a with distinct targets", plural(p.candidate_hosts, "host")))?
        }
    }
    if !p.assignments.is_empty() {
        let rows = p.assignments.iter().map(|a| {
            vec![
                a.source.clone(),
                a.target.clone(),
                format!("{:?}", a.verdict).to_lowercase(),
                crate::output::or_dash(a.claim_id.as_ref()),
            ]
        });
        table(out, &["SOURCE", "TARGET", "STEP B", "CLAIM"], rows)?;
        for a in &p.assignments {
            for what in &a.at_resume {
                line(out, format!("at resume ({}): only the destination can tell: {what}", a.target))?;
            }
        }
    }
    if !p.tried.is_empty() {
        line(out, "hosts tried:")?;
        let rows = p.tried.iter().map(|t| {
            let probes: Vec<String> = t
                .probes
                .iter()
                .map(|pr| {
                    let v = pr.verdict.map_or("no verdict".to_string(), |v| format!("{v:?}").to_lowercase());
                    if pr.reasons.is_empty() {
                        format!("{} {v}", pr.target)
                    } else {
                        let why: Vec<String> =
                            pr.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
                        format!("{} {v}: {}", pr.target, why.join("; "))
                    }
                })
                .collect();
            vec![t.host.clone(), t.outcome.as_str().to_string(), probes.join(" | ")]
        });
        table(out, &["HOST", "OUTCOME", "STEP B"], rows)?;
    }
    if let Some(e) = &p.explanation {
        render_explanation(e, out)?;
    }
    let t = &p.timings;
    line(out, format!("step a {:.1} ms, step b {:.1} ms, claims {:.1} ms", t.step_a_ms, t.step_b_ms, t.claim_ms))
}

fn serve(
    db: &FleetDbArgs,
    listen: std::net::SocketAddr,
    token_file: &std::path::Path,
    pool_size: usize,
    tls: Option<Arc<rustls::ServerConfig>>,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DEVMIG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a terminal: a journal or a log file gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let tokens = Arc::new(devmig_agent::Tokens::load(token_file)?);
    let opts = options(db, pool_size.max(1), true)?;
    // Listen first: a fleet that cannot serve creates no database.
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| CliError::Io { what: format!("binding {listen}"), source: e })?;
    let fleet: Fleet = opts.open(registry.clone())?;
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| CliError::Io { what: format!("listening on {listen}"), source: e })?;
        let addr =
            listener.local_addr().map_err(|e| CliError::Io { what: "reading the bound address".into(), source: e })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        line(
            out,
            format!(
                "devmig fleet listening on {scheme}://{addr} (database {})",
                db.db.as_deref().unwrap_or(DEFAULT_DB)
            ),
        )?;
        out.flush().map_err(crate::output::write_err)?;
        devmig_fleet::server::serve(listener, fleet, tokens, tls, crate::commands::agent::shutdown_signal())
            .await
            .map_err(|e| CliError::Io { what: "serving".into(), source: e })
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(0)
}
