//! The fleet's web view in a real browser: Debian's headless Chromium, driven over WebDriver
//! by chromedriver, against `devmig sim fleet`. Every page loads without console errors, the
//! placement explainer shows the groups `devmig fleet candidates` prints for the same source,
//! the controls are labelled and reachable from the keyboard, and a screenshot of each page is
//! written to target/test-artifacts/ui/.
mod common;

use common::Running;

use std::process::Command;
use std::time::Duration;

use devmig_testkit::browser::Browser;
use fantoccini::{Locator, key::Key};
use serde_json::{Value, json};

fn devmig_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_devmig")).args(args).args(["-o", "json"]).output().expect("run");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// Console entries that are errors (Chromium's SEVERE), whatever produced them.
async fn console_errors(b: &Browser) -> Vec<String> {
    b.console().await.into_iter().filter(|(level, _)| level == "SEVERE").map(|(_, m)| m).collect()
}

/// WCAG contrast of the computed text and background colours of every element matching `css`
/// (backgrounds looked up through transparent ancestors): the lowest ratio.
const CONTRAST: &str = r#"
const lum = c => { const m = c.match(/[\d.]+/g).map(Number); const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(m[0]) + 0.7152 * f(m[1]) + 0.0722 * f(m[2]); };
const bg = e => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; const m = c.match(/[\d.]+/g);
  if (m && (m.length < 4 || Number(m[3]) > 0)) return c; } return 'rgb(255, 255, 255)'; };
let worst = 99;
for (const e of document.querySelectorAll(arguments[0])) { if (!e.offsetParent && e !== document.body) continue;
  const a = lum(getComputedStyle(e).color), b = lum(bg(e)); const r = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  worst = Math.min(worst, r); }
return worst;"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_in_chromium_matches_the_cli() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let (child, first) = common::spawn_until_first_line(
        Command::new(env!("CARGO_BIN_EXE_devmig")).args([
            "sim",
            "fleet",
            "--hosts",
            "24",
            "--devices",
            "8",
            "--seed",
            "5",
            "--dir",
            &d,
        ]),
        Duration::from_secs(120),
    );
    let _fleet = Running(child);
    let url = first.trim().trim_start_matches("fleet: ").split(' ').next().expect("url").to_string();
    let token = std::fs::read_to_string(format!("{d}/read-token")).expect("read token");
    let b = Browser::start().await;
    let c = &b.client;

    // The page asks for a token once; a wrong one is refused with the fleet's words.
    c.goto(&format!("{url}/ui")).await.expect("goto");
    let input = c.wait().for_element(Locator::Css("input[type=password]")).await.expect("token input");
    input.send_keys("not-a-valid-token-at-all").await.expect("type");
    input.send_keys(&Key::Enter.to_string()).await.expect("enter");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let error = loop {
        let e = b.text("#error").await.unwrap_or_default();
        if !e.is_empty() {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no error shown for a wrong token");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(error.contains("unknown token"), "{error}");
    // Chromium logs the 401 itself; that one is expected.
    let _ = b.console().await;
    let input = c.find(Locator::Css("input[type=password]")).await.expect("token input again");
    input.clear().await.expect("clear");
    input.send_keys(&token).await.expect("type");
    input.send_keys(&Key::Enter.to_string()).await.expect("enter");

    // Hosts.
    b.wait_ready("hosts", Duration::from_secs(30)).await;
    let summary = b.text("#hosts-summary").await.expect("summary");
    assert!(summary.starts_with("24 hosts: 24 fresh"), "{summary}");
    let rows = b.table("#hosts-table").await;
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().any(|r| r[0] == "sim-r00-0003"), "{rows:?}");
    b.screenshot("hosts").await;
    assert_eq!(console_errors(&b).await, Vec::<String>::new());

    // Accessibility: every control labelled, contrast at least 4.5:1, a skip link first.
    let unlabelled = c
        .execute(
            "return [...document.querySelectorAll('input, select, textarea')].filter(e => e.type !== 'hidden' \
             && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name);",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(unlabelled, json!([]), "controls without a label");
    let worst =
        c.execute(CONTRAST, vec![json!("body, td, th, a, button, label, p, h1, h2, nav a")]).await.expect("script");
    assert!(worst.as_f64().expect("ratio") >= 4.5, "contrast {worst}");
    c.execute("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0);", vec![])
        .await
        .expect("script");
    c.find(Locator::Css("body")).await.expect("body").send_keys(&Key::Tab.to_string()).await.expect("tab");
    let focused = c.execute("return document.activeElement.textContent.trim();", vec![]).await.expect("script");
    assert!(focused.as_str().is_some_and(|t| t.to_lowercase().contains("skip")), "first Tab stop: {focused}");

    // The compatibility map: one row per pool, as the API groups them.
    let api: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/compatibility"))
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("compatibility")
        .json()
        .await
        .expect("json");
    c.goto(&format!("{url}/ui#map")).await.expect("goto map");
    b.wait_ready("map", Duration::from_secs(30)).await;
    let pools = b.table("#map-table").await;
    assert_eq!(pools.len(), api["pools"].as_array().expect("pools").len(), "{api}");
    b.screenshot("map").await;
    assert_eq!(console_errors(&b).await, Vec::<String>::new());

    // The explainer: the same groups as the CLI for the same source.
    let devices =
        devmig_json(&["fleet", "devices", "--db", &format!("sqlite:{d}/fleet.db"), "--hosts", "sim-r00-0002"]);
    let vf = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|x| x["kind"] == "sriov_vf")
        .expect("a VF")["device"]
        .as_str()
        .expect("id")
        .to_string();
    let cli = devmig_json(&[
        "fleet",
        "candidates",
        "--db",
        &format!("sqlite:{d}/fleet.db"),
        "--source",
        &format!("sim-r00-0002:{vf}"),
    ]);
    c.goto(&format!("{url}/ui#explain?host=sim-r00-0002&device={vf}")).await.expect("goto explain");
    b.wait_ready("explain", Duration::from_secs(30)).await;
    let shown = b.table("#explain-groups").await;
    let expected: Vec<Vec<String>> = cli["explanation"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            vec![
                g["hosts"].to_string(),
                g["source"].as_str().expect("source").to_string(),
                g["code"].as_str().expect("code").to_string(),
                g["detail"].as_str().expect("detail").to_string(),
            ]
        })
        .collect();
    assert!(!expected.is_empty(), "a source with hosts that cannot take it: {cli}");
    assert_eq!(shown, expected);
    let count = b.text("#explain-count").await.unwrap_or_default().replace(',', "");
    assert!(count.starts_with(&format!("{} host", cli["candidate_hosts"])), "{count} / {cli}");
    b.screenshot("explain").await;
    assert_eq!(console_errors(&b).await, Vec::<String>::new());

    // What-if: a driver upgrade on a rack, as the CLI plans it.
    c.goto(&format!("{url}/ui#what-if")).await.expect("goto what-if");
    b.wait_ready("what-if", Duration::from_secs(30)).await;
    let hosts = c.find(Locator::Id("whatif-hosts")).await.expect("hosts input");
    hosts.clear().await.expect("clear");
    hosts.send_keys("sim-r00-001*").await.expect("type");
    c.find(Locator::Css("#whatif-model option[value=i915]")).await.expect("i915 option").click().await.expect("pick");
    let version = c.find(Locator::Id("whatif-version")).await.expect("version input");
    version.send_keys("2.0.0").await.expect("type");
    c.execute("document.body.dataset.ready = '';", vec![]).await.expect("script");
    version.send_keys(&Key::Enter.to_string()).await.expect("submit");
    b.wait_ready("what-if", Duration::from_secs(30)).await;
    let cli = devmig_json(&[
        "fleet",
        "what-if",
        "--db",
        &format!("sqlite:{d}/fleet.db"),
        "--hosts",
        "sim-r00-001*",
        "--driver",
        "i915=2.0.0",
    ]);
    let summary = b.text("#whatif-summary").await.expect("summary");
    assert!(summary.replace(',', "").contains(&format!("on {} host", cli["pool_hosts"])), "{summary} / {cli}");
    let rows = b.table("#whatif-table").await;
    let n = cli["into_pool"].as_array().map_or(0, Vec::len) + cli["out_of_pool"].as_array().map_or(0, Vec::len);
    assert_eq!(rows.len(), n, "{rows:?} / {cli}");
    b.screenshot("what-if").await;
    assert_eq!(console_errors(&b).await, Vec::<String>::new());
    b.close().await;
}
