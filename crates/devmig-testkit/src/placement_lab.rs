//! A real OpenStack Placement (openstack-placement from PyPI, under gunicorn, SQLite) on
//! loopback for the OpenStack tests, from the venv `integrations/openstack-venv.sh` builds
//! (`DEVMIG_TEST_OPENSTACK_VENV`, else `/var/cache/devmig-ci/openstack-venv`), and an
//! interfering proxy that makes another writer change a provider first (Placement's 409).
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The token Placement's `noauth2` strategy takes as an admin.
pub const TOKEN: &str = "admin";

/// The venv holding openstack-placement and gunicorn.
pub fn venv() -> PathBuf {
    std::env::var_os("DEVMIG_TEST_OPENSTACK_VENV")
        .map_or_else(|| PathBuf::from("/var/cache/devmig-ci/openstack-venv"), PathBuf::from)
}

/// A running Placement; stopped (its process group) on drop.
pub struct PlacementLab {
    child: Child,
    _dir: tempfile::TempDir,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    http: reqwest::blocking::Client,
}

/// Starts Placement on a free loopback port with a fresh SQLite database; panics (naming what
/// to install) when the venv is missing, and when it does not answer within 90 s.
pub fn placement() -> PlacementLab {
    placement_with(None)
}

/// [`placement`] serving https with `tls` (certificate and key PEM files, e.g. from
/// [`crate::pki`]) when given.
pub fn placement_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> PlacementLab {
    devmig_agent::tls::ensure_default_provider();
    let venv = venv();
    let gunicorn = venv.join("bin/gunicorn");
    assert!(
        gunicorn.exists(),
        "{} is missing: run `bash integrations/openstack-venv.sh` (openstack-placement and Nova from PyPI)",
        gunicorn.display()
    );
    let dir = tempfile::tempdir().expect("placement dir");
    let conf = format!(
        "[DEFAULT]\ndebug = False\n[api]\nauth_strategy = noauth2\n[placement_database]\n\
         connection = sqlite:///{}/placement.db\nsync_on_startup = True\n",
        dir.path().display()
    );
    std::fs::write(dir.path().join("placement.conf"), conf).expect("placement.conf");
    let log = dir.path().join("gunicorn.log");
    let mut cmd = Command::new(&gunicorn);
    cmd.args(["--no-control-socket", "-b", "127.0.0.1:0", "-w", "1", "--error-logfile"]).arg(&log);
    if let Some((cert, key)) = tls {
        cmd.arg("--certfile").arg(cert).arg("--keyfile").arg(key);
    }
    let child = cmd
        .arg("placement.wsgi.api:application")
        .current_dir(dir.path())
        .env("OS_PLACEMENT_CONFIG_DIR", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start gunicorn");
    // The lab's own setup calls trust whatever it serves (its certificate is the test's).
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let mut lab = PlacementLab { child, _dir: dir, base: String::new(), http };
    let deadline = Instant::now() + Duration::from_secs(90);
    while lab.base.is_empty() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("Listening at: ") {
            let rest = &text[at + "Listening at: ".len()..];
            let url = rest.split_whitespace().next().unwrap_or_default();
            // gunicorn prints http:// whatever it serves.
            lab.base = if tls.is_some() { url.replacen("http://", "https://", 1) } else { url.to_string() };
        }
        assert!(Instant::now() < deadline, "placement did not listen within 90 s:\n{text}");
        assert!(lab.child.try_wait().expect("wait").is_none(), "gunicorn exited:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker loads the app (and syncs the schema) on the first request.
    loop {
        if lab.http.get(&lab.base).send().is_ok_and(|r| r.status().is_success()) {
            return lab;
        }
        assert!(Instant::now() < deadline, "placement at {} did not answer within 90 s", lab.base);
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl PlacementLab {
    /// One call as an admin: `(status, JSON body or null)`.
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-Auth-Token", TOKEN)
            .header("OpenStack-API-Version", "placement 1.39");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("placement call");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a provider (under `parent`'s UUID); its UUID.
    pub fn create_provider(&self, name: &str, parent: Option<&str>) -> String {
        let mut body = json!({ "name": name });
        if let Some(p) = parent {
            body["parent_provider_uuid"] = json!(p);
        }
        let (status, v) = self.call(reqwest::Method::POST, "/resource_providers", Some(body));
        assert_eq!(status, 200, "create provider {name}: {v}");
        v["uuid"].as_str().expect("uuid").to_string()
    }

    /// Sets one inventory of `class` (`VGPU`) with `total` on a provider.
    pub fn set_inventory(&self, uuid: &str, class: &str, total: u32) {
        let (_, v) = self.call(reqwest::Method::GET, &format!("/resource_providers/{uuid}"), None);
        let body =
            json!({ "resource_provider_generation": v["generation"], "inventories": { class: { "total": total } } });
        let (status, v) =
            self.call(reqwest::Method::PUT, &format!("/resource_providers/{uuid}/inventories"), Some(body));
        assert_eq!(status, 200, "inventory: {v}");
    }

    /// A provider's traits and generation.
    pub fn traits(&self, uuid: &str) -> (BTreeSet<String>, u64) {
        let (status, v) = self.call(reqwest::Method::GET, &format!("/resource_providers/{uuid}/traits"), None);
        assert_eq!(status, 200, "traits: {v}");
        let traits = v["traits"].as_array().expect("traits").iter().map(|t| t.as_str().expect("name").to_string());
        (traits.collect(), v["resource_provider_generation"].as_u64().expect("generation"))
    }

    /// Adds traits to a provider as another writer would (creating custom ones).
    pub fn add_traits(&self, uuid: &str, add: &[&str]) {
        for t in add.iter().filter(|t| t.starts_with("CUSTOM_")) {
            let (status, _) = self.call(reqwest::Method::PUT, &format!("/traits/{t}"), None);
            assert!(status == 201 || status == 204, "create trait {t}: {status}");
        }
        let (mut traits, generation) = self.traits(uuid);
        traits.extend(add.iter().map(|t| t.to_string()));
        let body = json!({ "traits": traits, "resource_provider_generation": generation });
        let (status, v) = self.call(reqwest::Method::PUT, &format!("/resource_providers/{uuid}/traits"), Some(body));
        assert_eq!(status, 200, "set traits: {v}");
    }
}

impl Drop for PlacementLab {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals the process group this lab started (gunicorn and its worker).
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; whatever is left is killed.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// A loopback proxy to Placement that, before forwarding the first `PUT` of a provider's
/// traits, adds `trait_name` to that provider itself: the proxied write then meets Placement's
/// generation conflict (409), as when another writer wins a race.
pub struct InterferingProxy {
    /// The proxy's base URL.
    pub base: String,
    /// Times it interfered.
    pub interfered: Arc<AtomicU32>,
    _thread: std::thread::JoinHandle<()>,
}

/// Starts an [`InterferingProxy`] in front of `lab`.
pub fn interfering_proxy(lab: &PlacementLab, trait_name: &str) -> InterferingProxy {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = lab.base.clone();
    let interfered = Arc::new(AtomicU32::new(0));
    let count = interfered.clone();
    let trait_name = trait_name.to_string();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let http = reqwest::Client::new();
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (http, upstream, count, trait_name) =
                    (http.clone(), upstream.clone(), count.clone(), trait_name.clone());
                async move { forward(&http, &upstream, &count, &trait_name, req).await }
            });
            let _ = axum::serve(listener, app).await;
        });
    });
    InterferingProxy { base, interfered, _thread: thread }
}

async fn forward(
    http: &reqwest::Client,
    upstream: &str,
    count: &AtomicU32,
    trait_name: &str,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let provider_traits = path.starts_with("/resource_providers/") && path.ends_with("/traits");
    if parts.method == axum::http::Method::PUT && provider_traits && count.load(Ordering::SeqCst) == 0 {
        count.fetch_add(1, Ordering::SeqCst);
        let send = |m: reqwest::Method, p: String, b: Option<Value>| {
            let mut r = http
                .request(m, format!("{upstream}{p}"))
                .header("X-Auth-Token", TOKEN)
                .header("OpenStack-API-Version", "placement 1.39");
            if let Some(b) = b {
                r = r.json(&b);
            }
            r.send()
        };
        let _ = send(reqwest::Method::PUT, format!("/traits/{trait_name}"), None).await;
        if let Ok(resp) = send(reqwest::Method::GET, path.clone(), None).await
            && let Ok(mut v) = resp.json::<Value>().await
        {
            if let Some(list) = v["traits"].as_array_mut() {
                list.push(json!(trait_name));
            }
            let _ = send(reqwest::Method::PUT, path.clone(), Some(v)).await;
        }
    }
    let mut out = http.request(parts.method.clone(), format!("{upstream}{path}")).body(bytes.to_vec());
    for (name, value) in &parts.headers {
        if name != axum::http::header::HOST {
            out = out.header(name, value);
        }
    }
    match out.send().await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get(reqwest::header::CONTENT_TYPE).cloned();
            let body = resp.bytes().await.unwrap_or_default();
            let mut r = axum::response::Response::new(axum::body::Body::from(body));
            *r.status_mut() = status;
            if let Some(ct) = ct {
                r.headers_mut().insert(axum::http::header::CONTENT_TYPE, ct);
            }
            r
        }
        Err(e) => {
            let mut r = axum::response::Response::new(axum::body::Body::from(e.to_string()));
            *r.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
            r
        }
    }
}
