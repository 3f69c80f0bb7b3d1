//! `devmig bench placement`: the OpenStack figures, each measured in this process against a
//! real Placement the caller runs (an empty, disposable one: this creates providers in it).
//!
//! 1. Nova-shaped trees for `--hosts` simulated hosts (the hosts `bench fleet` simulates): the
//!    compute root and one VGPU provider per mdev parent, as nova-compute creates them.
//! 2. `placement sync` of every host: the first (every provider written), an unchanged one
//!    (same syncer, then a fresh one, as after an agent restart) and one host's driver upgrade.
//! 3. For `--queries` vGPU sources of the fleet: Placement's `GET /allocation_candidates` with
//!    the source's traits (as Nova asks, at most 1,000 candidates) beside devmig's own step a over
//!    the same hosts in its fleet store (SQLite), in one run: medians and their ratio.
use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use devmig_core::DeviceKind;
use devmig_fleet::db::DbUrl;
use devmig_fleet::sim::HostPlan;
use devmig_fleet::{Store, now_ms};
use devmig_openstack::providers::{Desired, Target, desired};
use devmig_openstack::sync::{HostReport as SyncReport, ProviderOutcome};
use devmig_openstack::{Placement, Syncer};
use devmig_vendors::Registry;
use devmig_vendors::placement_traits::source_traits;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::BenchPlacementArgs;
use crate::commands::bench_fleet::summary;
use crate::error::CliError;
use crate::output::line;
use crate::remote::read_token;

/// Host names of the benchmark's compute nodes.
const PREFIX: &str = "pbench";
/// VGPU inventory of each device provider.
const VGPUS: u32 = 8;
/// What Nova asks Placement for by default (`[scheduler] max_placement_results`).
const NOVA_LIMIT: usize = 1000;

fn client(args: &BenchPlacementArgs) -> Result<Placement, CliError> {
    devmig_agent::tls::ensure_default_provider();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()
        .map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
    Ok(Placement::new(&args.placement, &read_token(&args.placement_token_file)?, http)?)
}

fn plan_of(registry: &Registry, report: &devmig_api::HostReport) -> Desired {
    let targets =
        report.devices.iter().map(|d| Target { id: &d.id, kind: d.kind, attributes: &d.attributes, pf: None });
    desired(registry, &report.host, targets)
}

/// Runs the Placement benchmark.
pub fn bench_placement(args: &BenchPlacementArgs, registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    if args.hosts == 0 || args.queries == 0 {
        return Err(CliError::Usage("--hosts and --queries must be at least 1".into()));
    }
    let dir = tempfile::Builder::new()
        .prefix("devmig-bench-placement-")
        .tempdir()
        .map_err(|e| CliError::Io { what: "creating a temporary directory".into(), source: e })?;
    let reports: Vec<devmig_api::HostReport> = (0..args.hosts)
        .map(|i| HostPlan::draw(args.seed, i, args.devices).report(registry, PREFIX, "http://127.0.0.1:9", 1))
        .collect();
    let plans: Vec<Desired> = reports.iter().map(|r| plan_of(registry, r)).collect();
    let rt = crate::commands::fleet::runtime()?;
    rt.block_on(async {
        let setup = client(args)?;
        if setup.provider_named(&reports[0].host).await?.is_some() {
            return Err(CliError::Usage(format!(
                "placement already has a provider named {}: give the benchmark an empty Placement",
                reports[0].host
            )));
        }
        let started = Instant::now();
        let made: Vec<Result<usize, CliError>> = stream::iter(&plans)
            .map(|p| {
                let setup = &setup;
                async move {
                    let root = setup.create_provider(&p.node, None).await?;
                    for name in p.providers.keys() {
                        let uuid = setup.create_provider(name, Some(&root)).await?;
                        setup.set_inventory(&uuid, "VGPU", VGPUS).await?;
                    }
                    Ok(p.providers.len())
                }
            })
            .buffer_unordered(args.concurrency.max(1))
            .collect()
            .await;
        let providers: usize = made.into_iter().collect::<Result<Vec<_>, _>>()?.iter().sum();
        line(
            out,
            format!(
                "Nova-shaped trees: {} compute nodes, {providers} VGPU providers, {} calls in {:.1} s",
                args.hosts,
                setup.calls(),
                started.elapsed().as_secs_f64()
            ),
        )?;
        sync_figures(args, &plans, registry, out).await?;
        query_figures(args, &reports, dir.path(), registry, &setup, out).await
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(0)
}

fn count_written(reports: &[SyncReport]) -> Result<(usize, usize), CliError> {
    let mut written = 0;
    let mut added = 0;
    for r in reports {
        if let Some(e) = &r.error {
            return Err(CliError::Remote {
                peer: "placement",
                status: 0,
                code: "placement".into(),
                detail: format!("{}: {e}", r.node),
            });
        }
        for p in &r.providers {
            match &p.outcome {
                ProviderOutcome::Written { added: a, removed, .. } => {
                    written += 1;
                    added += a.len() + removed.len();
                }
                ProviderOutcome::Failed { error } => {
                    return Err(CliError::Remote {
                        peer: "placement",
                        status: 0,
                        code: "placement".into(),
                        detail: format!("{}: {error}", p.provider),
                    });
                }
                ProviderOutcome::Unchanged | ProviderOutcome::Missing => {}
            }
        }
    }
    Ok((written, added))
}

async fn sync_figures(
    args: &BenchPlacementArgs,
    plans: &[Desired],
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mdev_types: usize = plans.iter().flat_map(|p| p.providers.values()).map(|p| p.devices.len()).sum();
    let syncer = Syncer::new(client(args)?);
    let c = args.concurrency;
    sync_run(&format!("first ({mdev_types} mdev types)"), &syncer, plans, mdev_types, c, out).await?;
    sync_run("no change, same syncer", &syncer, plans, 0, c, out).await?;
    sync_run("no change, fresh syncer (an agent restarted)", &Syncer::new(client(args)?), plans, 0, c, out).await?;
    // One host's GVT-g driver upgraded: its types accept newer sources.
    let mut plan = HostPlan::draw(args.seed, 0, args.devices);
    plan.gpu.1 = if plan.gpu.1 == "1.3.0" { "1.4.0" } else { "1.3.0" };
    let upgraded = plan_of(registry, &plan.report(registry, PREFIX, "http://127.0.0.1:9", 2));
    let changed = upgraded
        .providers
        .values()
        .filter(|p| p.devices.iter().any(|d| d.contains("GVTg")))
        .map(|p| p.devices.len())
        .sum();
    sync_run("one host's i915 upgraded", &syncer, std::slice::from_ref(&upgraded), changed, c, out).await
}

/// One timed sync of `plans`; `changed` devices make the calls-per-device figure.
async fn sync_run(
    what: &str,
    syncer: &Syncer,
    plans: &[Desired],
    changed: usize,
    concurrency: usize,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (c0, w0) = (syncer.placement().calls(), syncer.placement().writes());
    let started = Instant::now();
    let reports = syncer.sync_all(plans, concurrency).await;
    let took = started.elapsed();
    let (written, traits) = count_written(&reports)?;
    let (calls, writes) = (syncer.placement().calls() - c0, syncer.placement().writes() - w0);
    let per = if changed == 0 {
        String::new()
    } else {
        format!(", {:.2} calls per changed device", calls as f64 / changed as f64)
    };
    line(
        out,
        format!(
            "sync, {what}: {} hosts in {:.2} s, {written} providers written ({traits} traits added or removed), {calls} calls, {writes} writes{per}",
            plans.len(),
            took.as_secs_f64()
        ),
    )
}

async fn query_figures(
    args: &BenchPlacementArgs,
    reports: &[devmig_api::HostReport],
    dir: &std::path::Path,
    registry: &Registry,
    placement: &Placement,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let db = DbUrl::Sqlite(dir.join("fleet.db").display().to_string());
    let store = Store::open(&db, 2)?;
    let base = u64::try_from(now_ms()).unwrap_or(0) * 1_000_000;
    for (i, r) in reports.iter().enumerate() {
        let mut r = r.clone();
        r.generation = base + i as u64;
        store.apply_report(&r, now_ms())?;
    }
    store.analyze()?;
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x0905);
    let sources: Vec<&str> = reports
        .iter()
        .flat_map(|r| r.devices.iter().filter(|d| d.kind == DeviceKind::Mdev).map(|d| d.version.as_str()))
        .collect();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_hosts, mut their_providers) = (0usize, 0usize);
    for _ in 0..args.queries {
        let source = sources[rng.random_range(0..sources.len())];
        let model = registry.model_for_version(source).map_or("opaque", |m| m.name());
        let req = registry.requirement(source)?;
        let traits = source_traits(registry, model, &req);
        // Alternate which side goes first, so neither always meets a warm cache.
        let devmig = || -> Result<(Duration, usize), CliError> {
            let started = Instant::now();
            let rows = store.candidates(model, &req, now_ms(), &[], None, None)?;
            let hosts: BTreeSet<&str> = rows.iter().map(|r| r.host.as_str()).collect();
            Ok((started.elapsed(), hosts.len()))
        };
        let theirs_one = || async {
            let started = Instant::now();
            let found = placement.candidate_providers("VGPU:1", &traits.required, NOVA_LIMIT).await?;
            Ok::<_, CliError>((started.elapsed(), found.len()))
        };
        let (a, b) = if ours.len() % 2 == 0 {
            let a = devmig()?;
            (a, theirs_one().await?)
        } else {
            let b = theirs_one().await?;
            (devmig()?, b)
        };
        ours.push(a.0);
        our_hosts += a.1;
        theirs.push(b.0);
        their_providers += b.1;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (m_ours, m_theirs) = (median(&mut ours.clone()), median(&mut theirs.clone()));
    line(
        out,
        summary(&format!("devmig step a (fleet store, SQLite, every admitted host), {} hosts", reports.len()), ours),
    )?;
    line(out, format!("  mean hosts admitted: {:.1}", our_hosts as f64 / args.queries as f64))?;
    line(
        out,
        summary(
            &format!(
                "placement allocation_candidates with devmig's traits (limit {NOVA_LIMIT}), {} hosts",
                reports.len()
            ),
            theirs,
        ),
    )?;
    line(out, format!("  mean providers offered: {:.1}", their_providers as f64 / args.queries as f64))?;
    line(
        out,
        format!("median ratio placement / devmig: {:.1}x", m_theirs.as_secs_f64() / m_ours.as_secs_f64().max(1e-9)),
    )?;
    Ok(())
}
