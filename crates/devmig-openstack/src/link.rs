//! An agent's Placement link: keeps its own host's providers in sync with its devices.
//!
//! Traits describe what devices accept, which changes with the devices and their drivers
//! (a device added or removed, a driver upgraded), not with claims. So the link builds the
//! host's [`Desired`] every interval and syncs only when it differs from what it last synced:
//! a tick with no change makes no call at all. Every `verify_every`-th tick syncs anyway, to
//! put back what someone else removed (one call per host when nothing did).
use std::time::Duration;

use crate::providers::Desired;
use crate::sync::{ProviderOutcome, Syncer};

/// What one tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Nothing changed since the last sync, and it was no verification tick: no call.
    Unchanged,
    /// Synced: providers written.
    Synced {
        /// Providers whose traits were written.
        written: usize,
    },
    /// The sync (or one provider's) failed (logged); the next tick tries again.
    Failed,
}

/// A host's link to Placement.
#[derive(Debug)]
pub struct PlacementLink {
    syncer: Syncer,
    /// Time between ticks.
    pub interval: Duration,
    /// Every this many ticks, sync even without a change.
    pub verify_every: u32,
    last: Option<Desired>,
    ticks: u64,
}

impl PlacementLink {
    /// A link syncing through `syncer` every `interval`, verifying every `verify_every` ticks.
    pub fn new(syncer: Syncer, interval: Duration, verify_every: u32) -> Self {
        PlacementLink { syncer, interval, verify_every: verify_every.max(1), last: None, ticks: 0 }
    }

    /// The syncer (its call counters).
    pub fn syncer(&self) -> &Syncer {
        &self.syncer
    }

    /// One tick with the host's current `desired`.
    pub async fn tick(&mut self, desired: Desired) -> Tick {
        self.ticks += 1;
        let verify = self.ticks % u64::from(self.verify_every) == 0;
        if !verify && self.last.as_ref() == Some(&desired) {
            return Tick::Unchanged;
        }
        match self.syncer.sync_host(&desired).await {
            Ok(providers) => {
                let written = providers.iter().filter(|p| matches!(p.outcome, ProviderOutcome::Written { .. })).count();
                for p in &providers {
                    match &p.outcome {
                        ProviderOutcome::Written { added, removed, conflicts } => tracing::info!(
                            provider = %p.provider, added = added.len(), removed = removed.len(), conflicts,
                            "placement traits written"
                        ),
                        ProviderOutcome::Missing => tracing::warn!(
                            provider = %p.provider,
                            "placement has no such provider (no enabled mdev type on the parent, or another node name)"
                        ),
                        ProviderOutcome::Failed { error } => {
                            tracing::warn!(provider = %p.provider, error, "placement traits not synced; retrying at the next tick")
                        }
                        ProviderOutcome::Unchanged => {}
                    }
                }
                if providers.iter().any(|p| matches!(p.outcome, ProviderOutcome::Failed { .. })) {
                    return Tick::Failed;
                }
                self.last = Some(desired);
                Tick::Synced { written }
            }
            Err(e) => {
                tracing::warn!(node = %desired.node, error = %e, "placement sync failed; retrying at the next tick");
                Tick::Failed
            }
        }
    }

    /// Ticks forever: `desired` builds the host's providers each time (`None`: skip the tick,
    /// already logged by it).
    pub async fn run<F, Fut>(mut self, mut desired: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<Desired>>,
    {
        loop {
            if let Some(d) = desired().await {
                self.tick(d).await;
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}
