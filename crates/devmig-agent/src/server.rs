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
