//! Serving: configuration, the expiry loop, graceful shutdown with a bound.
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::TcpListener;

use crate::api::{AppState, app};
use crate::{Agent, AgentError, AgentOptions, Tokens};

pub use crate::serving::SHUTDOWN_GRACE;

/// The agent's configuration file (TOML); every key can also be given as a flag.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Where /sys hangs.
    #[serde(default = "default_root")]
    pub sysfs_root: PathBuf,
    /// The bearer token file.
    pub token_file: PathBuf,
    /// Where claims.db lives.
    #[serde(default = "default_state")]
    pub state_dir: PathBuf,
    /// Bound on each sysfs operation, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// sysfs I/O worker threads.
    #[serde(default = "default_workers")]
    pub io_workers: usize,
    /// Log as JSON lines.
    #[serde(default)]
    pub log_json: bool,
    /// Serve HTTPS with these files (and require client certificates when `client_ca` is set).
    #[serde(default)]
    pub tls: Option<crate::tls::TlsFiles>,
    /// Push this host's report to the fleet at this URL.
    #[serde(default)]
    pub fleet: Option<String>,
    /// The report token for the fleet (a file holding the secret).
    #[serde(default)]
    pub fleet_token_file: Option<PathBuf>,
    /// CA bundle that signs an https:// fleet's certificate.
    #[serde(default)]
    pub fleet_ca_file: Option<PathBuf>,
    /// Client certificate for a fleet that requires one.
    #[serde(default)]
    pub fleet_client_cert: Option<PathBuf>,
    /// Its key.
    #[serde(default)]
    pub fleet_client_key: Option<PathBuf>,
    /// This host's name in the fleet (default: the kernel's host name).
    #[serde(default)]
    pub host_name: Option<String>,
    /// The URL the fleet calls this agent at (default: the listening address).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Seconds between unprompted reports (default 30).
    #[serde(default)]
    pub report_interval_s: Option<u64>,
    /// Placement's base URL: keep this host's providers' CUSTOM_DEVMIG_* traits in sync.
    #[serde(default)]
    pub placement: Option<String>,
    /// The token file for Placement (X-Auth-Token).
    #[serde(default)]
    pub placement_token_file: Option<PathBuf>,
    /// CA bundle for an https:// Placement.
    #[serde(default)]
    pub placement_ca_file: Option<PathBuf>,
    /// Nova's name for this compute node (default: `host_name`, else the kernel's host name).
    #[serde(default)]
    pub placement_node: Option<String>,
    /// Seconds between looks at the devices for Placement (default 60).
    #[serde(default)]
    pub placement_interval_s: Option<u64>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7070))
}
fn default_root() -> PathBuf {
    PathBuf::from("/")
}
fn default_state() -> PathBuf {
    PathBuf::from("/var/lib/devmig")
}
fn default_timeout() -> u64 {
    5000
}
fn default_workers() -> usize {
    8
}

impl AgentConfig {
    /// Parses a config file's text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, AgentError> {
        let c: AgentConfig = toml::from_str(text)
            .map_err(|e| AgentError::Config(format!("agent config {origin}: {}", e.to_string().trim())))?;
        if c.timeout_ms == 0 || c.io_workers == 0 {
            return Err(AgentError::Config(format!(
                "agent config {origin}: timeout_ms and io_workers must be at least 1"
            )));
        }
        Ok(c)
    }

    /// Reads a config file; relative paths in it are taken from the file's directory.
    pub fn from_file(path: &std::path::Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::Config(format!("agent config {}: {e}", path.display())))?;
        let mut c = Self::from_toml(&text, &path.display().to_string())?;
        let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
        let from_dir = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for p in [&mut c.sysfs_root, &mut c.token_file, &mut c.state_dir] {
            from_dir(p);
        }
        let optional = [
            &mut c.fleet_token_file,
            &mut c.fleet_ca_file,
            &mut c.fleet_client_cert,
            &mut c.fleet_client_key,
            &mut c.placement_token_file,
            &mut c.placement_ca_file,
        ];
        optional.into_iter().flatten().for_each(from_dir);
        if let Some(t) = &mut c.tls {
            for p in [&mut t.cert, &mut t.key] {
                from_dir(p);
            }
            if let Some(ca) = &mut t.client_ca {
                from_dir(ca);
            }
        }
        Ok(c)
    }

    /// Opens the agent this configuration describes.
    pub fn open(&self, registry: devmig_vendors::Registry) -> Result<AppState, AgentError> {
        let tokens = Tokens::load(&self.token_file)?;
        let options = AgentOptions {
            sysfs_root: self.sysfs_root.clone(),
            state_dir: self.state_dir.clone(),
            timeout: Duration::from_millis(self.timeout_ms),
            io_workers: self.io_workers,
            shared_io: None,
        };
        let agent =
            Agent::open(&options, registry).map_err(|e| AgentError::Config(format!("opening the agent: {e}")))?;
        Ok(AppState { agent: Arc::new(agent), tokens: Arc::new(tokens) })
    }
}

/// Serves `router` until `shutdown` resolves (HTTPS with `tls`, mTLS when it verifies
/// clients), with the default [`ConnLimits`], then waits at most [`SHUTDOWN_GRACE`] for requests
/// in flight.
pub async fn serve_router(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::serving::serve(listener, router, tls, crate::serving::ConnLimits::default(), shutdown).await
}

/// Serves until `shutdown` resolves, then waits at most [`SHUTDOWN_GRACE`] for requests in
/// flight. With `tls`, every connection is TLS (mTLS when the config verifies clients).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let agent = Arc::clone(&state.agent);
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let a = Arc::clone(&agent);
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || a.expire()).await {
                tracing::error!(error = %e, "expiring claims failed");
            }
        }
    });
    let result = serve_router(listener, app(state), tls, shutdown).await;
    expiry.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_config_parses_with_and_without_its_commented_keys() {
        let text = include_str!("../../../packaging/agent.toml");
        let c = AgentConfig::from_toml(text, "packaging/agent.toml").expect("as shipped");
        assert_eq!(c.fleet, None);
        // Every key shown commented out is a key the agent takes.
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(kv)
                    if kv
                        .split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_')) =>
                {
                    format!("{kv}\n")
                }
                _ => format!("{l}\n"),
            })
            .collect();
        // The keys after [tls] would land in that table: put them first.
        let (head, tls) = all.split_once("[tls]").expect("a [tls] table");
        let (tls_table, rest) = tls.split_once("\n\n").expect("after [tls]");
        let reordered = format!("{head}{rest}\n[tls]{tls_table}\n");
        let c = AgentConfig::from_toml(&reordered, "uncommented").expect("every commented key");
        assert_eq!(c.fleet.as_deref(), Some("https://fleet.example:7080"));
        assert_eq!((c.report_interval_s, c.placement_interval_s), (Some(30), Some(60)));
    }

    #[test]
    fn relative_paths_are_the_config_files_directorys() {
        let dir = tempfile::tempdir().expect("dir");
        let f = dir.path().join("agent.toml");
        std::fs::write(&f, "token_file = \"t.toml\"\nstate_dir = \"/abs\"\nfleet_token_file = \"r\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n")
            .expect("write");
        let c = AgentConfig::from_file(&f).expect("config");
        assert_eq!(c.token_file, dir.path().join("t.toml"));
        assert_eq!(c.state_dir, PathBuf::from("/abs"));
        assert_eq!(c.fleet_token_file, Some(dir.path().join("r")));
        assert_eq!(c.tls.expect("tls").cert, dir.path().join("c.pem"));
    }
}
