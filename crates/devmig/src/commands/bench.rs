//! `devmig bench agent|claims`: load from this process against an agent; `bench check`: one
//! check under several sysfs roots.
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use devmig_core::{Checker, DeviceId, SysfsRoot, Verdict};
use devmig_vendors::Registry;
use hyper::Method;

use crate::cli::BenchCommand;
use crate::commands::bench_http::LeanClient;
use crate::error::CliError;
use crate::output::{line, table};
use devmig_api::{CheckBody, Claim, ClaimRequest, ClaimTarget, MigrationId, Ttl, segment};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `clients` threads, each with its own connection, doing `op` until `seconds` pass;
/// latencies of successes and the failure count.
fn load(
    clients: usize,
    seconds: u64,
    connect: impl Fn() -> Result<LeanClient, CliError>,
    op: impl Fn(&mut LeanClient, usize, u64) -> bool + Send + Sync + 'static,
) -> Result<(Vec<Duration>, usize, Duration), CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    let connections = (0..clients).map(|_| connect()).collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let threads: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(c, mut client)| {
            let (stop, op) = (Arc::clone(&stop), Arc::clone(&op));
            std::thread::spawn(move || {
                let (mut lat, mut failed, mut n) = (Vec::new(), 0usize, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if op(&mut client, c, n) {
                        lat.push(t.elapsed())
                    } else {
                        failed += 1
                    }
                    n += 1;
                }
                (lat, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut failed) = (Vec::new(), 0);
    for t in threads {
        if let Ok((lat, f)) = t.join() {
            all.extend(lat);
            failed += f;
        }
    }
    let elapsed = started.elapsed();
    all.sort();
    Ok((all, failed, elapsed))
}

fn row(label: String, lat: &[Duration], failed: usize, elapsed: Duration) -> Vec<String> {
    vec![
        label,
        lat.len().to_string(),
        format!("{:.0}", lat.len() as f64 / elapsed.as_secs_f64()),
        format!("{:.1?}", percentile(lat, 0.5)),
        format!("{:.1?}", percentile(lat, 0.99)),
        failed.to_string(),
    ]
}

/// The agent's own overhead: one client alternates blocks of `per_round` agent checks, bare
/// checks in this process (the same syscalls through the library, on the agent's sysfs root)
/// and `/healthz` calls, `rounds` times, so that all three see the same machine noise. Medians
/// of each.
fn overhead(
    (rounds, per_round): (usize, usize),
    client: &mut LeanClient,
    root: &Path,
    registry: &Registry,
    version: &str,
    device: &str,
) -> Result<[Duration; 3], CliError> {
    let checker = Checker::new(SysfsRoot::new(root), registry.clone(), Duration::from_secs(5));
    let id: DeviceId = device.parse()?;
    let (path, body) = (check_path(device), check_body(version)?);
    let mut lat: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let answer = client.send(Method::POST, &path, Some(body.clone()));
            lat[0].push(t.elapsed());
            match answer {
                Ok(a) if a.status == 200 => {}
                Ok(a) => return Err(CliError::Usage(format!("agent check answered {}", a.status))),
                Err(e) => return Err(CliError::Usage(format!("agent check: {e}"))),
            }
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let report = checker.check_version(version, &id)?;
            lat[1].push(t.elapsed());
            if !report.verdict.is_compatible() {
                return Err(CliError::Usage(format!(
                    "the bare check on {device} is not compatible: {:?}",
                    report.reasons
                )));
            }
        }
        for _ in 0..per_round {
            let t = Instant::now();
            let answer = client.send(Method::GET, "/healthz", None);
            lat[2].push(t.elapsed());
            answer.map_err(|e| CliError::Usage(format!("/healthz: {e}")))?;
        }
    }
    Ok(lat.map(|mut l| {
        l.sort();
        percentile(&l, 0.5)
    }))
}

/// `devmig bench check`: blocks of `per_round` checks of `version` into `target` under each
/// root in turn, `rounds` times, so every root sees the same machine noise; medians and p99 of
/// each and the ratio of each median to the first root's. Every check must give the verdict the
/// first one gave under the first root, or the figures would compare different work.
pub fn check_roots(
    version: &str,
    target: &str,
    roots: &[std::path::PathBuf],
    (rounds, per_round): (usize, usize),
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    if rounds == 0 || per_round == 0 {
        return Err(CliError::Usage("--rounds and --per-round must be at least 1".into()));
    }
    let id: DeviceId = target.parse()?;
    let checkers: Vec<Checker> =
        roots.iter().map(|r| Checker::new(SysfsRoot::new(r), registry.clone(), Duration::from_secs(5))).collect();
    let probe = checkers[0].check_version(version, &id)?;
    let first = probe.verdict;
    if first == Verdict::Error {
        let why: Vec<String> = probe.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
        return Err(CliError::Usage(format!("the check of {target} fails, nothing to measure: {}", why.join("; "))));
    }
    let mut lat: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds * per_round); roots.len()];
    for _ in 0..rounds {
        for ((checker, lat), root) in checkers.iter().zip(&mut lat).zip(roots) {
            for _ in 0..per_round {
                let t = Instant::now();
                let report = checker.check_version(version, &id)?;
                lat.push(t.elapsed());
                if report.verdict != first {
                    return Err(CliError::Usage(format!(
                        "under {} the check of {target} gave {:?}, under {} {first:?}",
                        root.display(),
                        report.verdict,
                        roots[0].display()
                    )));
                }
            }
        }
    }
    let medians: Vec<Duration> = lat
        .iter_mut()
        .map(|l| {
            l.sort();
            percentile(l, 0.5)
        })
        .collect();
    let rows: Vec<Vec<String>> = roots
        .iter()
        .zip(&lat)
        .zip(&medians)
        .map(|((root, l), median)| {
            vec![
                root.display().to_string(),
                l.len().to_string(),
                format!("{median:.1?}"),
                format!("{:.1?}", percentile(l, 0.99)),
                format!("{:.2}", median.as_secs_f64() / medians[0].as_secs_f64().max(1e-9)),
            ]
        })
        .collect();
    line(out, format!("verdict {first:?} under every root"))?;
    table(out, &["ROOT", "CHECKS", "P50", "P99", "P50 / FIRST"], rows)?;
    Ok(0)
}

fn check_path(device: &str) -> String {
    format!("/api/v1/devices/{}/check", segment(device))
}

fn check_body(version: &str) -> Result<Bytes, CliError> {
    let body = CheckBody { version: version.to_string(), explain: false };
    serde_json::to_vec(&body).map(Bytes::from).map_err(|e| CliError::Usage(format!("check body: {e}")))
}

/// `devmig bench ...` against the agent at `url`.
pub fn bench(
    cmd: &BenchCommand,
    url: &str,
    token: &str,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let (url, token) = (url.trim_end_matches('/').to_string(), token.to_string());
    let connect = || LeanClient::connect(&url, &token);
    match cmd {
        BenchCommand::Agent { version, devices, clients, seconds, baseline_root, rounds, per_round } => {
            for d in devices {
                d.parse::<DeviceId>()?;
            }
            let mut rows = Vec::new();
            let paths: Vec<String> = devices.iter().map(|d| check_path(d)).collect();
            for &n in clients {
                let (paths, body) = (paths.clone(), check_body(version)?);
                let (lat, failed, elapsed) = load(n, *seconds, connect, move |client, c, _| {
                    let answer = client.send(Method::POST, &paths[c % paths.len()], Some(body.clone()));
                    answer.is_ok_and(|a| a.status == 200)
                })?;
                rows.push(row(format!("{n} clients"), &lat, failed, elapsed));
            }
            table(out, &["LOAD", "CHECKS", "PER SECOND", "P50", "P99", "FAILED"], rows)?;
            if let Some(root) = baseline_root {
                if *rounds == 0 || *per_round == 0 {
                    return Err(CliError::Usage("--rounds and --per-round must be at least 1".into()));
                }
                let [agent, bare, health] =
                    overhead((*rounds, *per_round), &mut connect()?, root, registry, version, &devices[0])?;
                line(
                    out,
                    format!(
                        "overhead, one client, {rounds} rounds of {per_round} of each, medians: agent check {agent:.1?}, \
                         bare check in this process {bare:.1?}, /healthz {health:.1?}; the agent's own overhead {:.1?}",
                        agent.saturating_sub(bare)
                    ),
                )?;
            }
        }
        BenchCommand::Fleet(_) | BenchCommand::Placement(_) | BenchCommand::Check { .. } => {
            return Err(CliError::Usage("devmig bench fleet and bench check run on their own (no --agent)".into()));
        }
        BenchCommand::Claims { version, mdev_type, devices, clients, seconds } => {
            let targets: Vec<ClaimTarget> = match mdev_type {
                Some(t) => {
                    t.parse::<DeviceId>()?;
                    vec![ClaimTarget::Type(t.clone())]
                }
                None => devices
                    .iter()
                    .map(|d| d.parse::<DeviceId>().map(|_| ClaimTarget::Device(d.clone())))
                    .collect::<Result<_, _>>()?,
            };
            let version = version.clone();
            let (lat, failed, elapsed) = load(*clients, *seconds, connect, move |client, c, n| {
                let Ok(migration_id) = format!("bench-{c}-{n}").parse::<MigrationId>() else { return false };
                let req = ClaimRequest {
                    migration_id,
                    source_version: version.clone(),
                    target: targets[c % targets.len()].clone(),
                    ttl_seconds: Ttl::DEFAULT,
                };
                let Ok(body) = serde_json::to_vec(&req) else { return false };
                let answer = client.send(Method::POST, "/api/v1/claims", Some(Bytes::from(body)));
                let Ok(answer) = answer else { return false };
                if answer.status != 201 {
                    return false;
                }
                let Ok(claim) = serde_json::from_slice::<Claim>(&answer.body) else { return false };
                let released = client.send(Method::DELETE, &format!("/api/v1/claims/{}", segment(&claim.id)), None);
                released.is_ok_and(|a| (200..300).contains(&a.status))
            })?;
            table(
                out,
                &["LOAD", "CLAIM+RELEASE", "PER SECOND", "P50", "P99", "FAILED"],
                [row(format!("{clients} clients"), &lat, failed, elapsed)],
            )?;
        }
    }
    Ok(0)
}
