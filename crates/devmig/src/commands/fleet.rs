//! `devmig fleet ...`: the fleet server, and the fleet's queries run against its database.
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use devmig_fleet::agents::AgentCredentials;
use devmig_fleet::db::DbUrl;
use devmig_fleet::now_ms;
use devmig_fleet::placement::{Fleet, Placement, PlacementRequest, SourceRef};
use devmig_fleet::plans::{self, DriverChange};
use devmig_fleet::server::FleetOptions;
use devmig_vendors::Registry;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{FleetCommand, FleetDbArgs, Output};
use crate::error::CliError;
use crate::output::{json, line, table};

/// The fleet options these flags give.
pub fn options(db: &FleetDbArgs, pool_size: usize, needs_agents: bool) -> Result<FleetOptions, CliError> {
    let url: DbUrl = db.db.parse()?;
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

fn age(ms: i64) -> String {
    format!("{}s", (now_ms() - ms).max(0) / 1000)
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
        FleetCommand::Hosts { db } => {
            let fleet = options(db, 1, false)?.open_existing(registry.clone())?;
            let hosts = fleet.store.hosts(now_ms())?;
            if o == Output::Json {
                return json(out, "devmig.fleet-hosts/v1", &serde_json::json!({ "hosts": hosts })).map(|()| 0);
            }
            let rows = hosts.iter().map(|h| {
                let state = if h.stale { "stale (excluded)" } else { "fresh" };
                vec![
                    h.name.clone(),
                    h.url.clone(),
                    if h.identity.is_empty() { "-".into() } else { h.identity.clone() },
                    h.generation.to_string(),
                    age(h.last_seen_ms),
                    h.devices.to_string(),
                    state.into(),
                ]
            });
            table(out, &["HOST", "AGENT", "IDENTITY", "GENERATION", "LAST REPORT", "DEVICES", "STATE"], rows)?;
            Ok(0)
        }
        FleetCommand::Forget { db, host } => {
            host.parse::<devmig_api::HostName>()?;
            let fleet = options(db, 1, false)?.open_existing(registry.clone())?;
            if !fleet.store.forget(host)? {
                return Err(CliError::Usage(format!("the fleet knows no host {host:?}")));
            }
            if o == Output::Json {
                return json(out, "devmig.fleet-forget/v1", &serde_json::json!({ "forgotten": host })).map(|()| 0);
            }
            line(out, format!("forgot {host}: its next report registers it anew"))?;
            Ok(0)
        }
        FleetCommand::Devices { db, hosts } => {
            let fleet = options(db, 1, false)?.open_existing(registry.clone())?;
            let pattern = plans::host_pattern(hosts)?;
            let devices = fleet.store.devices(now_ms(), &|h| pattern.matches(h))?;
            if o == Output::Json {
                return json(out, "devmig.fleet-devices/v1", &serde_json::json!({ "devices": devices })).map(|()| 0);
            }
            let rows = devices.iter().map(|d| {
                let state = match (&d.held_by, d.free, d.stale) {
                    (_, _, true) => "stale host".to_string(),
                    (Some(m), _, _) => format!("held by {m}"),
                    (None, true, _) => "free".into(),
                    (None, false, _) => "in use".into(),
                };
                vec![d.host.clone(), d.device.clone(), d.kind.to_string(), d.version.clone(), state]
            });
            table(out, &["HOST", "DEVICE", "KIND", "VERSION", "STATE"], rows)?;
            Ok(0)
        }
        FleetCommand::Place { db, sources, source_versions, claim, migration_id, exclude_hosts, max_hosts } => {
            let mut refs: Vec<SourceRef> = sources.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
            refs.extend(source_versions.iter().map(|v| SourceRef {
                host: None,
                device: None,
                version: Some(v.clone()),
            }));
            if refs.is_empty() {
                return Err(CliError::Usage("give at least one --source HOST:DEVICE or --source-version".into()));
            }
            let req = PlacementRequest {
                sources: refs,
                claim: *claim,
                migration_id: migration_id.clone(),
                exclude_hosts: exclude_hosts.clone(),
                max_hosts: Some(*max_hosts),
                ttl_seconds: None,
            };
            let fleet = options(db, 2, true)?.open_existing(registry.clone())?;
            let p = runtime()?.block_on(fleet.place(req))?;
            if o == Output::Json {
                json(out, "devmig.placement/v1", &p)?;
            } else {
                render_placement(&p, out)?;
            }
            Ok(if p.placed { 0 } else { 1 })
        }
        FleetCommand::Evacuate { db, host, claim, migration_prefix, vms } => {
            let fleet = options(db, 2, true)?.open_existing(registry.clone())?;
            let prefix = migration_prefix.clone().unwrap_or_else(|| format!("evacuate-{host}-{}", now_ms()));
            let domains = vms.iter().map(|f| CliError::read_input(f, "domain XML")).collect::<Result<Vec<_>, _>>()?;
            let b = bar("evacuating");
            let e = if domains.is_empty() {
                runtime()?.block_on(plans::evacuate(&fleet, host, *claim, &prefix, &progress(&b)))?
            } else {
                runtime()?.block_on(plans::evacuate_vms(&fleet, host, &domains, *claim, &prefix, &progress(&b)))?
            };
            b.finish_and_clear();
            if o == Output::Json {
                json(out, "devmig.evacuation/v1", &e)?;
            } else {
                let rows = e.moves.iter().map(|m| {
                    let p = &m.placement;
                    match (&p.host, p.assignments.first()) {
                        (Some(h), Some(_)) => vec![
                            m.vm.clone().map_or_else(|| m.device.clone(), |vm| format!("{vm} ({})", m.device)),
                            p.assignments.iter().map(|a| format!("{h}:{}", a.target)).collect::<Vec<_>>().join(" "),
                            p.assignments
                                .iter()
                                .map(|a| format!("{:?}", a.verdict).to_lowercase())
                                .collect::<Vec<_>>()
                                .join(" "),
                        ],
                        _ => vec![
                            m.vm.clone().map_or_else(|| m.device.clone(), |vm| format!("{vm} ({})", m.device)),
                            "-".into(),
                            summary(p),
                        ],
                    }
                });
                table(out, &["DEVICE", "TARGET", "VERDICT"], rows)?;
                line(out, format!("{}: {} of {} devices placed", e.host, e.placed, e.placed + e.unplaced))?;
            }
            Ok(if e.unplaced == 0 { 0 } else { 1 })
        }
        FleetCommand::Baseline { db, hosts } => {
            let fleet = options(db, 1, false)?.open_existing(registry.clone())?;
            let b = bar("versions");
            let r = runtime()?.block_on(plans::baseline(&fleet, hosts, &progress(&b)))?;
            b.finish_and_clear();
            if o == Output::Json {
                return json(out, "devmig.baseline/v1", &r).map(|()| 0);
            }
            line(out, format!("{} fresh hosts match {hosts}", r.pool_hosts))?;
            let rows = r.everywhere.iter().map(|a| vec![a.version.clone(), "every host".into()]).chain(
                r.partial.iter().map(|a| vec![a.version.clone(), format!("{} of {} hosts", a.hosts, r.pool_hosts)]),
            );
            table(out, &["SOURCE VERSION", "ACCEPTED BY"], rows)?;
            Ok(0)
        }
        FleetCommand::WhatIf { db, hosts, driver } => {
            let change: DriverChange = driver.parse()?;
            let fleet = options(db, 1, false)?.open_existing(registry.clone())?;
            let b = bar("source versions");
            let r = runtime()?.block_on(plans::what_if(&fleet, hosts, change, &progress(&b)))?;
            b.finish_and_clear();
            if o == Output::Json {
                return json(out, "devmig.what-if/v1", &r).map(|()| 0);
            }
            line(
                out,
                format!(
                    "{}={} on {} hosts ({hosts}): {} devices change version",
                    r.change.model, r.change.version, r.pool_hosts, r.devices_changed
                ),
            )?;
            let rows = r
                .into_pool
                .iter()
                .map(|s| vec!["into pool".into(), s.version.clone(), format!("{} -> {} hosts", s.before, s.after)]);
            let rows = rows.chain(r.out_of_pool.iter().map(|s| {
                vec!["out of pool".into(), s.version.clone(), format!("{} hosts outside the pool accept it", s.after)]
            }));
            table(out, &["MIGRATIONS", "SOURCE VERSION", "CHANGE"], rows)?;
            Ok(0)
        }
    }
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
        Some(e) => e.groups.first().map_or("no host fits".into(), |g| format!("{} hosts: {}", g.hosts, g.detail)),
        None => "every candidate was rejected in step b".into(),
    }
}

fn render_placement(p: &Placement, out: &mut dyn Write) -> Result<(), CliError> {
    match (&p.host, &p.url) {
        (Some(h), Some(u)) => line(out, format!("placed on {h} ({u})"))?,
        _ => line(out, format!("not placed: {} hosts passed step a with distinct targets", p.candidate_hosts))?,
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
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
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
        line(out, format!("devmig fleet listening on {scheme}://{addr} (database {})", db.db))?;
        out.flush().map_err(crate::output::write_err)?;
        devmig_fleet::server::serve(listener, fleet, tokens, tls, crate::commands::agent::shutdown_signal())
            .await
            .map_err(|e| CliError::Io { what: "serving".into(), source: e })
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(0)
}
