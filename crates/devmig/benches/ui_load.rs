//! The web view's figure: `/ui` over a fleet of 10,000 simulated hosts (16 devices each), from
//! navigation to the first page rendered ("interactive": `document.body.dataset.ready`), in
//! headless Chromium on this machine. `devmig fleet serve` runs as its own process on SQLite;
//! the hosts' reports (the simulated fleet's host plans) are pushed to it over HTTP first.
//!
//! `cargo bench -p devmig --bench ui_load [-- HOSTS [LOADS]]`
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use devmig_fleet::sim::HostPlan;
use devmig_testkit::browser::Browser;
use devmig_vendors::{Catalog, Registry};
use futures::stream::{self, StreamExt};
use serde_json::json;

const READ: &str = "bench-read-secret-0123456789";
const ADMIN: &str = "bench-admin-secret-0123456789";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Loads `page` afresh (from a blank page, so the document loads again rather than only its
/// hash changing), returns the milliseconds from navigation start to the page's `ready`.
async fn load(b: &Browser, url: &str, page: &str) -> f64 {
    b.client.goto("about:blank").await.expect("blank");
    b.client.goto(url).await.expect("goto");
    b.wait_ready(page, Duration::from_secs(120)).await;
    let ms = b.client.execute("return Number(document.body.dataset.readyMs);", vec![]).await.expect("script");
    ms.as_f64().expect("readyMs")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let hosts: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let loads: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let dir = tempfile::tempdir().expect("dir");
    let tokens = dir.path().join("tokens.toml");
    devmig_testkit::write_token_file(&tokens, &[("ui", "read", None, READ), ("ops", "admin", None, ADMIN)]);
    devmig_testkit::write_secret_file(&dir.path().join("agent-token"), "bench-agent-secret-0123456789");
    let mut fleet = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .args(["fleet", "serve", "--listen", "127.0.0.1:0", "--stale-after-s", "86400"])
        .arg("--db")
        .arg(format!("sqlite:{}", dir.path().join("fleet.db").display()))
        .arg("--token-file")
        .arg(&tokens)
        .arg("--agent-token-file")
        .arg(dir.path().join("agent-token"))
        .env("DEVMIG_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("devmig fleet serve");
    let first = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(fleet.stdout.take().expect("stdout")).read_line(&mut line).expect("first line");
        line
    };
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_string();

    // The reports, as the simulated agents would push them (an admin token may report any host).
    let registry = Arc::new(Registry::new(Catalog::embedded()));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let generation = u64::try_from(devmig_fleet::now_ms()).expect("clock") * 1_000_000;
    let failed = stream::iter(0..hosts)
        .map(|i| {
            let (client, registry, url) = (client.clone(), Arc::clone(&registry), url.clone());
            async move {
                let report = HostPlan::draw(7, i, 16).report(
                    &registry,
                    "bench",
                    &format!("http://127.0.0.1:{}", 20_000 + i % 40_000),
                    generation,
                );
                let r = client
                    .put(format!("{url}/api/v1/hosts/{}/report", report.host))
                    .bearer_auth(ADMIN)
                    .json(&report)
                    .send()
                    .await;
                !matches!(r, Ok(r) if r.status().is_success())
            }
        })
        .buffer_unordered(16)
        .filter(|f| std::future::ready(*f))
        .count()
        .await;
    assert_eq!(failed, 0, "reports refused");
    println!("fleet: {hosts} hosts x 16 devices pushed in {:.1} s", started.elapsed().as_secs_f64());

    let b = Browser::start().await;
    // The token, entered once: kept in the tab's sessionStorage by the page.
    b.client.goto(&format!("{url}/ui")).await.expect("goto");
    b.client.execute("sessionStorage.setItem('devmig.token', arguments[0]);", vec![json!(READ)]).await.expect("token");
    let mut hosts_ms = Vec::new();
    for _ in 0..loads {
        hosts_ms.push(load(&b, &format!("{url}/ui#hosts"), "hosts").await);
    }
    // The map: the first load computes it (cold), the next ones within 10 s are served cached.
    let mut map_ms = Vec::new();
    for _ in 0..loads {
        map_ms.push(load(&b, &format!("{url}/ui#map"), "map").await);
    }
    // The explainer for one source version (step a over every host, the others explained).
    let source = HostPlan::draw(7, 0, 16).report(&registry, "bench", "http://127.0.0.1:1", generation).devices[0]
        .version
        .clone();
    let query: String = url::form_urlencoded::byte_serialize(source.as_bytes()).collect();
    let mut explain_ms = Vec::new();
    for _ in 0..loads {
        explain_ms.push(load(&b, &format!("{url}/ui#explain?version={query}"), "explain").await);
    }
    let hosts_median = median(hosts_ms.clone());
    println!(
        "ui hosts page, {hosts} hosts: navigation to interactive median {hosts_median:.0} ms over {loads} loads \
         (min {:.0}, max {:.0}); target < 1000 ms: {}",
        hosts_ms.iter().copied().fold(f64::INFINITY, f64::min),
        hosts_ms.iter().copied().fold(0.0, f64::max),
        if hosts_median < 1000.0 { "met" } else { "NOT met" }
    );
    println!(
        "ui map page, {hosts} hosts: first load {:.0} ms (map computed), then median {:.0} ms (cached)",
        map_ms[0],
        median(map_ms[1..].to_vec())
    );
    println!(
        "ui explainer, {hosts} hosts, source {source}: navigation to candidates and reasons shown, median {:.0} ms \
         (min {:.0}, max {:.0})",
        median(explain_ms.clone()),
        explain_ms.iter().copied().fold(f64::INFINITY, f64::min),
        explain_ms.iter().copied().fold(0.0, f64::max)
    );
    b.close().await;
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(fleet.id() as i32, libc::SIGTERM);
    }
    let _ = fleet.wait();
}
