//! The devmig fleet service: agents push host reports (with generations), step a runs in the
//! database (SQLite or PostgreSQL) over indexed typed attributes, and placements are verified
//! (step b) and claimed through the chosen host's agent.
#![deny(missing_docs)]

pub mod agents;
pub mod api;
pub mod compat;
pub mod db;
pub mod error;
pub mod explain;
pub mod matching;
pub mod metrics;
pub mod placement;
pub mod plans;
mod refresh;
pub mod schema;
pub mod server;
pub mod sim;
pub mod step_a;
pub mod store;
pub mod ui;

pub use error::FleetError;
pub use placement::{Fleet, Placement, PlacementRequest, SourceRef};
pub use store::{ReportOutcome, Store};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs blocking work (database calls) off the async threads.
pub async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, FleetError> + Send + 'static,
) -> Result<R, FleetError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| FleetError::Internal(format!("blocking task: {e}")))?
}
