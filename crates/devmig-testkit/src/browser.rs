//! A real headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`):
//! the fleet's web view is tested and measured in it. The driver listens on a port it picks
//! itself (`--port=0`), on loopback only, and is killed when the [`Browser`] drops.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The chromedriver binary: `DEVMIG_CHROMEDRIVER`, else `/usr/bin/chromedriver`.
pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("DEVMIG_CHROMEDRIVER").map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from)
}

/// A running chromedriver and one browser session (1366x768, headless).
pub struct Browser {
    driver: Child,
    driver_url: String,
    /// The session.
    pub client: Client,
    _profile: tempfile::TempDir,
}

/// Where screenshots go: `DEVMIG_TEST_ARTIFACTS/ui`, else `target/test-artifacts/ui` of the workspace.
pub fn artifacts_dir() -> PathBuf {
    let base = std::env::var_os("DEVMIG_TEST_ARTIFACTS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts"), PathBuf::from);
    let dir = base.join("ui");
    std::fs::create_dir_all(&dir).expect("artifacts directory");
    dir
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        // reqwest (the console log calls, and the caller's own) needs a rustls provider installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        use std::os::unix::process::CommandExt;
        // Its own process group: dropping the Browser kills the driver and every Chromium process.
        let mut driver = Command::new(chromedriver_path())
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let stdout = driver.stdout.take().expect("stdout");
        // "ChromeDriver was started successfully on port N."
        let port = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            // ("Starting ChromeDriver ... on port 0" comes first: the chosen port is on this line.)
            let port = lines.by_ref().map_while(Result::ok).find_map(|l| {
                l.split("started successfully on port ")
                    .nth(1)
                    .map(|p| p.trim_end_matches('.').trim().parse::<u16>().expect("port"))
            });
            // Keep draining so that the driver never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            port
        })
        .join()
        .expect("reading chromedriver")
        .expect("chromedriver did not say its port");
        let driver_url = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": std::env::var("DEVMIG_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1366,768", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.path().display())],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&driver_url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("a WebDriver session at {driver_url}: {e}"),
            }
        };
        Browser { driver, driver_url, client, _profile: profile }
    }

    /// The browser's console messages since the last call (chromedriver's log endpoint):
    /// `(level, message)`.
    pub async fn console(&self) -> Vec<(String, String)> {
        let id = self.client.session_id().await.expect("session").expect("a session id");
        let r: Value = reqwest::Client::new()
            .post(format!("{}/session/{id}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("log endpoint")
            .json()
            .await
            .expect("log json");
        r["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (e["level"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `document.body.dataset.ready` is `page` (the view sets it when a page has
    /// rendered its data), failing with the page's error text after `within`.
    pub async fn wait_ready(&self, page: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let v = self
                .client
                .execute("return document.body ? (document.body.dataset.ready || '') : '';", vec![])
                .await
                .expect("script");
            if v.as_str() == Some(page) {
                return;
            }
            if Instant::now() > deadline {
                let error = self.text("#error").await.unwrap_or_default();
                panic!("page {page} not ready within {within:?} (ready={v}, error={error:?})");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The text of the first element matching `css`, if any.
    pub async fn text(&self, css: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.ok(),
            Err(_) => None,
        }
    }

    /// The cells' texts of each row of the table body under `css`.
    pub async fn table(&self, css: &str) -> Vec<Vec<String>> {
        let script = "const t = document.querySelector(arguments[0]); if (!t) return null; \
                      return [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent.trim()));";
        let v = self.client.execute(script, vec![json!(css)]).await.expect("script");
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Writes a PNG screenshot to the artifacts directory; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let p = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&p, png).expect("writing the screenshot");
        p
    }

    /// Ends the session, then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.driver.id()) {
            // SAFETY: kill(2) on the process group this Browser started; no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.driver.wait();
    }
}
