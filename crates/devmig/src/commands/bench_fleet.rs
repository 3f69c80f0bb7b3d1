//! `devmig bench fleet`: the fleet's figures, each measured in this process.
//!
//! 1. Ingestion: reports of `--hosts` simulated hosts (built from the same host plans the
//!    simulated agents serve) pushed over HTTP by `--pushers` clients to a fleet server here.
//! 2. Step a for one source over that fleet (`--queries` of them), with the fleet's memory.
//! 3. With `--agents N`: N simulated agents; full placements (step a, step b, claim) of 2-device
//!    VMs, and the exhaustive alternative (step b on every device of every host) for one VM.
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use devmig_fleet::db::DbUrl;
use devmig_fleet::placement::{PlacementRequest, SourceRef};
use devmig_fleet::sim::{HostPlan, SimSpec, host_name, report_secret};
use devmig_fleet::{ReportOutcome, now_ms};
use devmig_vendors::Registry;
use futures::stream::{self, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::BenchFleetArgs;
use crate::commands::sim_fleet::{Lab, start_lab};
use crate::error::CliError;
use crate::output::line;

/// Where the benchmark's fleet listens: any free loopback port.
const LOOPBACK: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

pub(crate) fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

pub(crate) fn summary(name: &str, mut lat: Vec<Duration>) -> String {
    lat.sort();
    format!(
        "{name}: n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    )
}

/// (VmRSS, VmHWM) of this process in MiB.
fn memory() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
}

/// Runs the fleet benchmark.
pub fn bench_fleet(args: &BenchFleetArgs, registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    let dir = tempfile::Builder::new()
        .prefix("devmig-bench-fleet-")
        .tempdir()
        .map_err(|e| CliError::Io { what: "creating a temporary directory".into(), source: e })?;
    let rt = crate::commands::fleet::runtime()?;
    rt.block_on(async {
        if args.hosts > 0 {
            let db: DbUrl = match &args.db {
                Some(d) => d.parse()?,
                None => DbUrl::Sqlite(dir.path().join("fleet.db").display().to_string()),
            };
            ingest_and_query(args, db, dir.path(), registry, out).await?;
        }
        if args.agents > 0 {
            let db = DbUrl::Sqlite(dir.path().join("agents.db").display().to_string());
            placements(args, db, dir.path(), registry, out).await?;
        }
        Ok::<(), CliError>(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(2));
    Ok(0)
}

async fn ingest_and_query(
    args: &BenchFleetArgs,
    db: DbUrl,
    dir: &std::path::Path,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (rss0, _) = memory();
    // A fleet server with no agents: reports come from the load generator below.
    let spec = SimSpec { hosts: 0, devices: args.devices, seed: args.seed, prefix: "bench".into() };
    // Loading 100,000 hosts takes minutes: hosts must not go stale (90 s in production, where
    // agents refresh every 30 s) before the queries run.
    let lab = start_lab(&spec, args.hosts, db.clone(), dir, LOOPBACK, Duration::from_secs(86_400), registry).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.pushers)
        .build()
        .map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
    let (token, url) = (lab.secrets.report.clone(), lab.url.clone());
    let reg = Arc::new(registry.clone());
    for what in ["ingestion (first reports)", "refresh (same devices, next generation)"] {
        let started = Instant::now();
        let failures = push_all(args, &client, &url, &token, &reg).await;
        let took = started.elapsed();
        line(
            out,
            format!(
                "{what}: {} hosts x {} devices ({} device rows) from {} pushers in {:.2} s ({:.0} hosts/s), {failures} failed",
                args.hosts,
                args.devices,
                args.hosts * args.devices,
                args.pushers,
                took.as_secs_f64(),
                args.hosts as f64 / took.as_secs_f64()
            ),
        )?;
    }
    line(out, store_refreshes(args, &lab, registry).await?)?;
    let store = lab.fleet.store.clone();
    tokio::task::spawn_blocking(move || store.analyze()).await.map_err(|e| CliError::Usage(e.to_string()))??;
    let (rss, hwm) = memory();
    line(
        out,
        format!("memory: RSS {rss:.0} MiB (before the fleet: {rss0:.0} MiB), peak {hwm:.0} MiB, database {db:?}"),
    )?;

    // Step a for one source: random devices of the fleet as sources.
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x5eed);
    let mut lat = Vec::new();
    let mut hosts_found = 0usize;
    for _ in 0..args.queries {
        let i = rng.random_range(0..args.hosts);
        let report = HostPlan::draw(args.seed, i, args.devices).report(registry, "bench", "", 1);
        let free: Vec<_> = report.devices.iter().filter(|d| d.free).collect();
        let d = free[rng.random_range(0..free.len())];
        let fleet = lab.fleet.clone();
        let version = d.version.clone();
        let host = host_name("bench", i);
        let (t, n) = tokio::task::spawn_blocking(move || {
            let refs = [SourceRef { host: None, device: None, version: Some(version) }];
            let sources = fleet.resolve(&refs, now_ms())?;
            let started = Instant::now();
            let found = fleet.feasible_hosts(&sources, &BTreeSet::from([host]), &BTreeSet::new(), 8, now_ms())?;
            Ok::<_, devmig_fleet::FleetError>((started.elapsed(), found.len()))
        })
        .await
        .map_err(|e| CliError::Usage(e.to_string()))??;
        lat.push(t);
        hosts_found += n;
    }
    line(out, summary(&format!("step a, one source, {} hosts", args.hosts), lat))?;
    line(
        out,
        format!("  mean candidate hosts returned: {:.1} (want 8)", hosts_found as f64 / args.queries.max(1) as f64),
    )?;
    Ok(())
}

/// The store's own refresh rate, without HTTP or the load generator: the reports of up to
/// 10,000 hosts are built first, then `--pushers` threads refresh them all (next generation,
/// same devices) through `Store::apply_report`, as the API handler does.
async fn store_refreshes(args: &BenchFleetArgs, lab: &Lab, registry: &Registry) -> Result<String, CliError> {
    let n = args.hosts.min(10_000);
    let (seed, devices, pushers) = (args.seed, args.devices, args.pushers.max(1));
    let reg = registry.clone();
    let reports: Vec<_> = tokio::task::spawn_blocking(move || {
        (0..n).map(|i| HostPlan::draw(seed, i, devices).report(&reg, "bench", "http://127.0.0.1:9", 0)).collect()
    })
    .await
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let reports = Arc::new(reports);
    let started = Instant::now();
    let base = u64::try_from(now_ms()).unwrap_or(0) * 1_000_000;
    let workers: Vec<_> = (0..pushers)
        .map(|w| {
            let (store, reports) = (lab.fleet.store.clone(), Arc::clone(&reports));
            tokio::task::spawn_blocking(move || {
                let mut failed = 0usize;
                for (i, r) in reports.iter().enumerate().skip(w).step_by(pushers) {
                    let mut r = r.clone();
                    r.generation = base + i as u64;
                    failed += usize::from(!matches!(store.apply_report(&r, now_ms()), Ok(ReportOutcome::Unchanged)));
                }
                failed
            })
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await.map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let took = started.elapsed();
    Ok(format!(
        "store refresh (no HTTP, reports built beforehand): {n} hosts from {pushers} threads in {:.2} s ({:.0} hosts/s), {failed} not unchanged",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    ))
}

/// Pushes every host's report (with its own token, at a generation of the clock, as agents
/// do); returns how many were not accepted.
async fn push_all(
    args: &BenchFleetArgs,
    client: &reqwest::Client,
    url: &str,
    base: &str,
    reg: &Arc<Registry>,
) -> usize {
    stream::iter(0..args.hosts)
        .map(|i| {
            let (client, base, url, reg) = (client.clone(), base.to_string(), url.to_string(), Arc::clone(reg));
            let (seed, devices) = (args.seed, args.devices);
            async move {
                let generation = u64::try_from(now_ms()).unwrap_or(0) * 1_000_000 + i as u64 % 1_000_000;
                let report = HostPlan::draw(seed, i, devices).report(&reg, "bench", "http://127.0.0.1:9", generation);
                let r = client
                    .put(format!("{url}/api/v1/hosts/{}/report", report.host))
                    .bearer_auth(report_secret(&base, &report.host))
                    .json(&report)
                    .send()
                    .await;
                usize::from(!matches!(r, Ok(resp) if resp.status().is_success()))
            }
        })
        .buffer_unordered(args.pushers.max(1))
        .fold(0, |acc, f| async move { acc + f })
        .await
}

async fn placements(
    args: &BenchFleetArgs,
    db: DbUrl,
    dir: &std::path::Path,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let spec = SimSpec { hosts: args.agents, devices: args.devices, seed: args.seed, prefix: "sim".into() };
    let started = Instant::now();
    let lab = start_lab(&spec, 0, db, dir, LOOPBACK, Duration::from_secs(90), registry).await?;
    line(
        out,
        format!(
            "simulated fleet: {} agents x {} devices up and reported in {:.1} s",
            args.agents,
            args.devices,
            started.elapsed().as_secs_f64()
        ),
    )?;
    let store = lab.fleet.store.clone();
    tokio::task::spawn_blocking(move || store.analyze()).await.map_err(|e| CliError::Usage(e.to_string()))??;
    let mut rng = StdRng::seed_from_u64(args.seed ^ 0x91ace);
    let mut lat = Vec::new();
    let mut unplaced = 0;
    let mut vms = Vec::new();
    for k in 0..args.placements {
        // A VM with a vGPU and an NVMe VF of one host.
        let i = rng.random_range(0..args.agents);
        let report = HostPlan::draw(args.seed, i, args.devices).report(registry, "sim", "", 1);
        let gpu = report.devices.iter().find(|d| d.free && d.model == "i915").map(|d| d.id.clone());
        let nvme = report.devices.iter().find(|d| d.free && d.model == "nvme").map(|d| d.id.clone());
        let (Some(gpu), Some(nvme)) = (gpu, nvme) else { continue };
        let host = host_name("sim", i);
        let sources = vec![
            SourceRef { host: Some(host.clone()), device: Some(gpu), version: None },
            SourceRef { host: Some(host), device: Some(nvme), version: None },
        ];
        vms.push(sources.clone());
        let req = PlacementRequest {
            sources,
            claim: true,
            migration_id: Some(
                format!("bench-{}-{k}", args.seed)
                    .parse()
                    .map_err(|e: devmig_api::ApiError| CliError::Usage(e.to_string()))?,
            ),
            exclude_hosts: vec![],
            max_hosts: None,
            ttl_seconds: Some(devmig_api::Ttl::try_from(60).map_err(|e| CliError::Usage(e.to_string()))?),
        };
        let t = Instant::now();
        let p = lab.fleet.place(req).await?;
        lat.push(t.elapsed());
        if !p.placed {
            unplaced += 1;
            continue;
        }
        // Undo outside the timing, so every placement sees the same fleet.
        let (host, url) = (p.host.clone().unwrap_or_default(), p.url.clone().unwrap_or_default());
        for a in &p.assignments {
            if let Some(c) = &a.claim_id {
                let _ = lab.fleet.agents.release(&host, &url, c).await;
            }
        }
        let store = lab.fleet.store.clone();
        let m = format!("bench-{}-{k}", args.seed);
        tokio::task::spawn_blocking(move || store.unhold(&m)).await.map_err(|e| CliError::Usage(e.to_string()))??;
    }
    let p50 = {
        let mut s = lat.clone();
        s.sort();
        pct(&s, 0.5)
    };
    line(out, summary(&format!("full placement (step a, step b, claim), 2-device VM, {} agents", args.agents), lat))?;
    line(out, format!("  unplaced: {unplaced}"))?;

    // The exhaustive alternative for the first VM: step b of each source on every device of
    // every other host, 16 calls in flight.
    let Some(vm) = vms.first() else { return Ok(()) };
    let sources = lab.fleet.resolve(vm, now_ms())?;
    let store = lab.fleet.store.clone();
    let src_host = vm[0].host.clone().unwrap_or_default();
    let devices = tokio::task::spawn_blocking(move || store.devices(now_ms(), &|h| h != src_host))
        .await
        .map_err(|e| CliError::Usage(e.to_string()))??;
    let calls: Vec<(String, String, String, String)> = devices
        .iter()
        .filter(|d| d.kind != devmig_core::DeviceKind::MdevType)
        .flat_map(|d| sources.iter().map(move |s| (d.host.clone(), d.url.clone(), d.device.clone(), s.version.clone())))
        .collect();
    let n = calls.len();
    let started = Instant::now();
    let agents = lab.fleet.agents.clone();
    let accepted: usize = stream::iter(calls)
        .map(|(host, url, dev, v)| {
            let agents = agents.clone();
            async move {
                match agents.check(&host, &url, &dev, &v).await {
                    Ok(r) => usize::from(r.verdict.is_compatible()),
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(16)
        .fold(0, |a, x| async move { a + x })
        .await;
    let took = started.elapsed().as_secs_f64() * 1e3;
    line(
        out,
        format!(
            "exhaustive step b for one 2-device VM: {n} checks ({accepted} accepted) in {took:.0} ms; {:.0}x the placement p50",
            took / p50.max(1e-9)
        ),
    )?;
    Ok(())
}
