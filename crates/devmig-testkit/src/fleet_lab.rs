//! Fleet labs: databases of both kinds (SQLite, a fresh PostgreSQL database), a fleet server on
//! loopback with simulated agents reporting to it, the fleet's test tokens, and a bounded wait
//! for reports.
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use devmig_agent::{Scope, Tokens};
use devmig_fleet::db::DbUrl;
use devmig_fleet::placement::Fleet;
use devmig_fleet::server::FleetOptions;
use devmig_fleet::sim::{SimFleet, SimLinks, SimSpec, report_secret, report_tokens};
use devmig_vendors::Registry;

use crate::agent_lab::eventually;

/// Waits, at most `limit`, until the fleet's store holds `n` hosts; panics naming how many came.
pub async fn wait_for_hosts(store: &Arc<devmig_fleet::Store>, n: usize, limit: Duration) {
    let what = format!("{n} hosts to report");
    eventually(&what, limit, || {
        let store = Arc::clone(store);
        async move {
            let held = tokio::task::spawn_blocking(move || store.hosts(devmig_fleet::now_ms()).expect("hosts").len())
                .await
                .expect("join");
            (held == n).then_some(())
        }
    })
    .await;
}

/// What the fleet presents to the test agents (admin there).
pub const AGENT_SECRET: &str = "fleet-to-agent-secret-0001";
/// The base of the per-host report secrets ([`report_token`]).
pub const REPORT_SECRET: &str = "agent-to-fleet-secret-0001";
/// The fleet's read token.
pub const READ_SECRET: &str = "fleet-reader-secret-00001";
/// The fleet's admin token.
pub const ADMIN_SECRET: &str = "fleet-admin-secret-000001";

/// The test agents' tokens: [`AGENT_SECRET`] as admin.
pub fn agent_tokens() -> Arc<Tokens> {
    Arc::new(
        Tokens::from_toml(
            &format!("[[token]]\nname = \"fleet\"\nscope = \"admin\"\nsecret = \"{AGENT_SECRET}\"\n"),
            "test",
        )
        .expect("agent tokens"),
    )
}

/// The fleet's tokens: a reader, an admin, and one report token per test host (the sim
/// prefixes `sim` and `tls`, and `host-a`/`host-b`), each bound to its host.
pub fn fleet_tokens() -> Arc<Tokens> {
    let named = ["host-a", "host-b"]
        .map(|h| (h.to_string(), Scope::Report, Some(h.to_string()), report_secret(REPORT_SECRET, h)));
    let entries = [
        ("reader".to_string(), Scope::Read, None, READ_SECRET.to_string()),
        ("nova".to_string(), Scope::Admin, None, ADMIN_SECRET.to_string()),
    ]
    .into_iter()
    .chain(named)
    .chain(report_tokens(REPORT_SECRET, "sim", 64))
    .chain(report_tokens(REPORT_SECRET, "tls", 8));
    Arc::new(Tokens::from_entries(entries).expect("fleet tokens"))
}

/// The report token of test host `host`.
pub fn report_token(host: &str) -> String {
    report_secret(REPORT_SECRET, host)
}

/// A PostgreSQL cluster private to this test: initdb in a temp dir, a unix socket only,
/// stopped on drop. Needs Debian's postgresql package (`.ci/run` installs it).
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: apt-get install postgresql (see .ci/run)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/*/bin/initdb: apt-get install postgresql")
}

fn as_postgres(bin: &PathBuf, args: &[&str]) {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin)
        .args(args)
        .output()
        .expect("running a PostgreSQL tool");
    assert!(out.status.success(), "{} {args:?}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
}

impl PgCluster {
    /// initdb and start a cluster (as the postgres user; the test runs as root).
    pub fn start() -> PgCluster {
        let bin = pg_bin();
        let dir = tempfile::Builder::new().prefix("devmig-pg-").tempdir().expect("temp dir");
        let status = Command::new("chown").arg("postgres:postgres").arg(dir.path()).status().expect("chown");
        assert!(status.success());
        let data = dir.path().join("data");
        let d = data.to_str().expect("utf-8 path");
        as_postgres(&bin.join("initdb"), &["-D", d, "-A", "trust", "-U", "devmig", "--no-sync", "-E", "UTF8"]);
        let opts = format!("-c listen_addresses='' -k {} -c fsync=off -c max_connections=200", dir.path().display());
        let log = dir.path().join("log");
        as_postgres(&bin.join("pg_ctl"), &["-D", d, "-w", "-l", log.to_str().expect("utf-8"), "-o", &opts, "start"]);
        PgCluster { dir, bin }
    }

    /// A URL of a fresh database in this cluster.
    pub fn database(&self, name: &str) -> String {
        let host = self.dir.path().display().to_string().replace('/', "%2F");
        let admin = format!("postgresql://devmig@{host}/postgres");
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connecting to the test cluster");
        c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        format!("postgresql://devmig@{host}/{name}")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", data.to_str().unwrap_or_default(), "-m", "immediate", "stop"])
            .output();
    }
}

/// The databases each fleet test runs against: SQLite in `dir`, and PostgreSQL (the one in
/// `DEVMIG_TEST_POSTGRES`, an admin URL, or else a private cluster).
pub enum Backend {
    /// A SQLite file in this temp dir.
    Sqlite(tempfile::TempDir),
    /// A fresh PostgreSQL database (in a private cluster, or in `DEVMIG_TEST_POSTGRES`'s).
    Postgres(Option<PgCluster>, String),
}

static DB_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Backend {
    /// A fresh SQLite database.
    pub fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh PostgreSQL database.
    pub fn postgres() -> Backend {
        let n = DB_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("devmig_t{}_{n}", std::process::id());
        match std::env::var("DEVMIG_TEST_POSTGRES") {
            Ok(admin) => {
                let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("DEVMIG_TEST_POSTGRES");
                c.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b).to_string();
                Backend::Postgres(None, format!("{base}/{name}"))
            }
            Err(_) => {
                let cluster = PgCluster::start();
                let url = cluster.database(&name);
                Backend::Postgres(Some(cluster), url)
            }
        }
    }

    /// The database's URL.
    pub fn url(&self) -> DbUrl {
        match self {
            Backend::Sqlite(d) => DbUrl::Sqlite(d.path().join("fleet.db").display().to_string()),
            Backend::Postgres(_, u) => DbUrl::Postgres(u.clone()),
        }
    }
}

impl Drop for Backend {
    /// Drops a test database made in the shared cluster (a private cluster goes away whole).
    fn drop(&mut self) {
        if let (Backend::Postgres(None, url), Ok(admin)) = (&*self, std::env::var("DEVMIG_TEST_POSTGRES")) {
            let name = url.rsplit('/').next().unwrap_or_default().to_string();
            // The synchronous client must not run on a tokio thread: use one of our own.
            let _ = std::thread::spawn(move || {
                if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            })
            .join();
        }
    }
}

/// Fleet options for `db`: 4 connections, 2 s agent timeout, [`AGENT_SECRET`] for every agent.
pub fn options(db: DbUrl) -> FleetOptions {
    FleetOptions {
        db,
        pool_size: 4,
        stale_after: Duration::from_secs(90),
        agent_timeout: Duration::from_secs(2),
        concurrency: 4,
        agent_credentials: devmig_fleet::agents::AgentCredentials::single(AGENT_SECRET.into()),
        agent_tls: None,
    }
}

/// A fleet server on 127.0.0.1:0 and a simulated fleet reporting to it.
pub struct Lab {
    /// The fleet the server serves.
    pub fleet: Fleet,
    /// The server's base URL.
    pub url: String,
    /// The simulated agents.
    pub sim: SimFleet,
    stop: tokio::sync::watch::Sender<bool>,
}

/// A [`Lab`] of `hosts` simulated hosts (`devices` each, drawn from `seed`), returned once every
/// host's first report is stored.
pub async fn lab(db: DbUrl, hosts: usize, devices: usize, seed: u64) -> Lab {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = options(db);
    let fleet = tokio::task::spawn_blocking(move || opts.open(Registry::new(devmig_vendors::Catalog::embedded())))
        .await
        .expect("join")
        .expect("open fleet");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let f = fleet.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        devmig_fleet::server::serve(listener, f, fleet_tokens(), None, shutdown).await.expect("fleet server");
    });
    let spec = SimSpec { hosts, devices, seed, prefix: "sim".into() };
    let links = SimLinks {
        fleet_url: Some(url.clone()),
        report_secret_base: REPORT_SECRET.into(),
        agent_tokens: agent_tokens(),
        interval: Duration::from_secs(30),
        agent_tls: None,
        fleet_client: reqwest::Client::new(),
    };
    let sim =
        SimFleet::start(&spec, Registry::new(devmig_vendors::Catalog::embedded()), links).await.expect("sim fleet");
    // Every host reports once at start: wait (bounded) until the fleet holds them all.
    wait_for_hosts(&fleet.store, hosts, Duration::from_secs(60)).await;
    Lab { fleet, url, sim, stop }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A placement of one source given by its version alone, never on `exclude_hosts`, trying at
/// most 8 hosts, without claiming.
pub fn look_for(version: &str, exclude_hosts: Vec<String>) -> devmig_fleet::placement::PlacementRequest {
    devmig_fleet::placement::PlacementRequest {
        sources: vec![devmig_fleet::placement::SourceRef { host: None, device: None, version: Some(version.into()) }],
        claim: false,
        migration_id: None,
        exclude_hosts,
        max_hosts: Some(8),
        ttl_seconds: None,
    }
}

/// GET `url` with `token`, as JSON.
pub async fn get_json(c: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    c.get(url).bearer_auth(token).send().await.expect("send").json().await.expect("json")
}
