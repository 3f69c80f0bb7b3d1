//! Serving the fleet: configuration and the HTTP server with a bounded graceful shutdown.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use devmig_agent::Tokens;
use devmig_vendors::Registry;
use tokio::net::TcpListener;

use crate::agents::Agents;
use crate::api::{FleetState, app};
use crate::db::DbUrl;
use crate::placement::Fleet;
use crate::{FleetError, Store};

/// What a fleet instance needs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The database.
    pub db: DbUrl,
    /// Connections to it.
    pub pool_size: usize,
    /// Hosts silent for longer are stale.
    pub stale_after: Duration,
    /// Bound on each call to an agent.
    pub agent_timeout: Duration,
    /// Hosts verified at once.
    pub concurrency: usize,
    /// What the fleet presents to agents (admin scope there): one token, or one per host.
    pub agent_credentials: crate::agents::AgentCredentials,
    /// How to trust https:// agents (and the client certificate for mTLS ones).
    pub agent_tls: Option<devmig_agent::tls::ClientTls>,
}

impl FleetOptions {
    /// Opens the store (creating and migrating it) and the agent client. Blocking.
    pub fn open(&self, registry: Registry) -> Result<Fleet, FleetError> {
        self.open_with(Store::open(&self.db, self.pool_size)?, registry)
    }

    /// [`FleetOptions::open`] on a database that must already hold a fleet (read verbs).
    pub fn open_existing(&self, registry: Registry) -> Result<Fleet, FleetError> {
        self.open_with(Store::open_existing(&self.db, self.pool_size)?, registry)
    }

    fn open_with(&self, mut store: Store, registry: Registry) -> Result<Fleet, FleetError> {
        store.stale_after_ms = i64::try_from(self.stale_after.as_millis()).unwrap_or(i64::MAX);
        let agents = Agents::new(self.agent_credentials.clone(), self.agent_timeout, self.agent_tls.as_ref())?;
        Ok(Fleet {
            store: Arc::new(store),
            registry,
            agents,
            concurrency: self.concurrency.max(1),
            metrics: Arc::default(),
        })
    }
}

/// Serves until `shutdown` resolves (HTTPS with `tls`), then waits at most the agent's grace
/// period for requests in flight.
pub async fn serve(
    listener: TcpListener,
    fleet: Fleet,
    tokens: Arc<Tokens>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    devmig_agent::server::serve_router(listener, app(FleetState::new(fleet, tokens)), tls, shutdown).await
}
