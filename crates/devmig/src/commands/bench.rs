//! `devmig bench agent|claims`: load from this process against an agent.
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use devmig_core::{Checker, DeviceId, SysfsRoot};
use devmig_vendors::Registry;
use serde_json::{Value, json};

use crate::cli::BenchCommand;
use crate::error::CliError;
use crate::output::{line, table};
use crate::remote::segment;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `clients` threads doing `op` until `seconds` pass; latencies of successes and the failure count.
fn load(
    clients: usize,
    seconds: u64,
    op: impl Fn(usize, u64) -> bool + Send + Sync + 'static,
) -> (Vec<Duration>, usize, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let op = Arc::new(op);
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, op) = (Arc::clone(&stop), Arc::clone(&op));
            std::thread::spawn(move || {
                let (mut lat, mut failed, mut n) = (Vec::new(), 0usize, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if op(c, n) {
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
    (all, failed, elapsed)
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

fn baseline(root: &Path, registry: &Registry, version: &str, device: &str) -> Result<Vec<Duration>, CliError> {
    let checker = Checker::new(SysfsRoot::new(root), registry.clone(), Duration::from_secs(5));
    let id: DeviceId = device.parse()?;
    let mut lat: Vec<Duration> = (0..5000)
        .map(|_| {
            let t = Instant::now();
            let _ = checker.check_version(version, &id);
            t.elapsed()
        })
        .collect();
    lat.sort();
    Ok(lat)
}

/// `devmig bench ...` against the agent at `url`.
pub fn bench(
    cmd: &BenchCommand,
    url: &str,
    token: &str,
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
    let (url, token) = (url.trim_end_matches('/').to_string(), token.to_string());
    match cmd {
        BenchCommand::Agent { version, devices, clients, seconds, baseline_root } => {
            for d in devices {
                d.parse::<DeviceId>()?;
            }
            let mut rows = Vec::new();
            for &n in clients {
                let (client, url, token, version, devices) =
                    (client.clone(), url.clone(), token.clone(), version.clone(), devices.clone());
                let (lat, failed, elapsed) = load(n, *seconds, move |c, _| {
                    let path = format!("{url}/api/v1/devices/{}/check", segment(&devices[c % devices.len()]));
                    client
                        .post(path)
                        .bearer_auth(&token)
                        .json(&json!({"version": version}))
                        .send()
                        .is_ok_and(|r| r.status().is_success())
                });
                rows.push(row(format!("{n} clients"), &lat, failed, elapsed));
            }
            table(out, &["LOAD", "CHECKS", "PER SECOND", "P50", "P99", "FAILED"], rows)?;
            if let Some(root) = baseline_root {
                let lat = baseline(root, registry, version, &devices[0])?;
                line(
                    out,
                    format!(
                        "bare check in this process on {}: p50 {:.1?}, p99 {:.1?} (5,000 runs)",
                        devices[0],
                        percentile(&lat, 0.5),
                        percentile(&lat, 0.99)
                    ),
                )?;
            }
        }
        BenchCommand::Fleet(_) => {
            return Err(CliError::Usage("devmig bench fleet runs on its own (no --agent)".into()));
        }
        BenchCommand::Claims { version, mdev_type, devices, clients, seconds } => {
            let targets: Vec<Value> = match mdev_type {
                Some(t) => {
                    t.parse::<DeviceId>()?;
                    vec![json!({"type": t})]
                }
                None => devices
                    .iter()
                    .map(|d| d.parse::<DeviceId>().map(|_| json!({"device": d})))
                    .collect::<Result<_, _>>()?,
            };
            let (c2, url2, token2, version) = (client.clone(), url.clone(), token.clone(), version.clone());
            let (lat, failed, elapsed) = load(*clients, *seconds, move |c, n| {
                let target = &targets[c % targets.len()];
                let body = json!({"migration_id": format!("bench-{c}-{n}"), "source_version": version, "target": target, "ttl_seconds": 600});
                let Ok(res) = c2.post(format!("{url2}/api/v1/claims")).bearer_auth(&token2).json(&body).send() else {
                    return false;
                };
                if res.status().as_u16() != 201 {
                    return false;
                }
                let Ok(claim) = res.json::<Value>() else { return false };
                let id = claim["id"].as_str().unwrap_or_default();
                c2.delete(format!("{url2}/api/v1/claims/{id}"))
                    .bearer_auth(&token2)
                    .send()
                    .is_ok_and(|r| r.status().is_success())
            });
            table(
                out,
                &["LOAD", "CLAIM+RELEASE", "PER SECOND", "P50", "P99", "FAILED"],
                [row(format!("{clients} clients"), &lat, failed, elapsed)],
            )?;
        }
    }
    Ok(0)
}
