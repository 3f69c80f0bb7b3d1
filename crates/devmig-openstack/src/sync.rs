//! Keeping each provider's `CUSTOM_DEVMIG_*` traits equal to what its devices accept.
//!
//! Per host: the compute node's root provider (looked up once, then cached), its tree (one call:
//! every provider's name, UUID and generation), then for each provider devmig maps devices to, and
//! each `<node>_pci_*` provider it no longer does (to clear what devmig set there before): read
//! its traits (skipped when the generation is the one devmig last saw), keep every trait outside
//! [`TRAIT_PREFIX`], put devmig's in, and write only when that changes anything, with the
//! generation it read. A 409 (someone else wrote in between) re-reads, merges and retries, at
//! most [`MAX_ATTEMPTS`] times. Custom traits are created before they are used.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use devmig_vendors::placement_traits::{TRAIT_PREFIX, is_custom_trait};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::OpenStackError;
use crate::placement::{Placement, Provider};
use crate::providers::Desired;

/// Attempts per provider before a run of 409s is an error.
pub const MAX_ATTEMPTS: u32 = 5;

/// What one provider's sync did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum ProviderOutcome {
    /// Its traits already were what devmig wants: nothing written.
    Unchanged,
    /// devmig's traits written (others' kept).
    Written {
        /// devmig traits added.
        added: Vec<String>,
        /// devmig traits removed.
        removed: Vec<String>,
        /// Writes refused with 409 first.
        conflicts: u32,
    },
    /// Nova has no such provider (no enabled mdev type on the parent, or another naming).
    Missing,
    /// This provider could not be synced (the host's other providers still were).
    Failed {
        /// Why.
        error: String,
    },
}

/// One provider's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderReport {
    /// Provider name.
    pub provider: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ProviderOutcome,
}

/// One host's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostReport {
    /// Compute node name.
    pub node: String,
    /// Per provider, by name.
    pub providers: Vec<ProviderReport>,
    /// Set when the host could not be synced (its providers are untouched or partly written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
struct Seen {
    generation: u64,
    traits: BTreeSet<String>,
}

/// Syncs hosts into one Placement; remembers roots, existing traits and what it last saw, so a
/// repeated sync with no change reads one tree per host and writes nothing.
#[derive(Debug)]
pub struct Syncer {
    placement: Placement,
    roots: Mutex<HashMap<String, String>>,
    known_traits: Mutex<Option<BTreeSet<String>>>,
    seen: Mutex<HashMap<String, Seen>>,
}

impl Syncer {
    /// A syncer writing through `placement`.
    pub fn new(placement: Placement) -> Self {
        Syncer {
            placement,
            roots: Mutex::new(HashMap::new()),
            known_traits: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The client (its call counters).
    pub fn placement(&self) -> &Placement {
        &self.placement
    }

    /// Syncs every host, `concurrency` at a time; a host that fails is reported, the others go on.
    pub async fn sync_all(&self, hosts: &[Desired], concurrency: usize) -> Vec<HostReport> {
        let mut reports: Vec<HostReport> = futures::stream::iter(hosts)
            .map(|d| async move {
                match self.sync_host(d).await {
                    Ok(providers) => HostReport { node: d.node.clone(), providers, error: None },
                    Err(e) => HostReport { node: d.node.clone(), providers: Vec::new(), error: Some(e.to_string()) },
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        reports.sort_by(|a, b| a.node.cmp(&b.node));
        reports
    }

    /// Syncs one host's providers: an error reading the host's tree fails the host, an error on
    /// one provider fails that provider (the others are still synced).
    pub async fn sync_host(&self, desired: &Desired) -> Result<Vec<ProviderReport>, OpenStackError> {
        let tree = self.tree(&desired.node).await?;
        let by_name: BTreeMap<&str, &Provider> = tree.iter().map(|p| (p.name.as_str(), p)).collect();
        // devmig's providers, and those it named before but maps nothing to now.
        let ours = format!("{}_pci_", desired.node);
        let mut names: BTreeSet<&str> = desired.providers.keys().map(String::as_str).collect();
        names.extend(tree.iter().filter(|p| p.name.starts_with(&ours)).map(|p| p.name.as_str()));
        let empty = BTreeSet::new();
        let mut out = Vec::new();
        for name in names {
            let want = desired.providers.get(name).map_or(&empty, |p| &p.traits);
            let outcome = match by_name.get(name) {
                None => ProviderOutcome::Missing,
                Some(p) => match self.sync_provider(p, want).await {
                    Ok(o) => o,
                    Err(e) => ProviderOutcome::Failed { error: e.to_string() },
                },
            };
            out.push(ProviderReport { provider: name.to_string(), outcome });
        }
        Ok(out)
    }

    /// The node's tree (its root looked up once).
    async fn tree(&self, node: &str) -> Result<Vec<Provider>, OpenStackError> {
        let cached = self.roots.lock().await.get(node).cloned();
        if let Some(root) = cached {
            let tree = self.placement.tree(&root).await?;
            if !tree.is_empty() {
                return Ok(tree);
            }
            // The node was deleted and registered again under a new UUID.
            self.roots.lock().await.remove(node);
        }
        let root = self.placement.provider_named(node).await?.ok_or_else(|| {
            OpenStackError::Config(format!(
                "placement has no resource provider named {node:?}: is nova-compute running there under that name?"
            ))
        })?;
        self.roots.lock().await.insert(node.to_string(), root.uuid.clone());
        self.placement.tree(&root.uuid).await
    }

    async fn sync_provider(&self, p: &Provider, want: &BTreeSet<String>) -> Result<ProviderOutcome, OpenStackError> {
        if let Some(bad) = want.iter().find(|t| !t.starts_with(TRAIT_PREFIX) || !is_custom_trait(t)) {
            return Err(OpenStackError::Config(format!("{bad:?} is not a devmig trait name")));
        }
        let cached = self.seen.lock().await.get(&p.uuid).filter(|s| s.generation == p.generation).cloned();
        let (mut current, mut generation) = match cached {
            Some(s) => (s.traits, s.generation),
            None => self.read(&p.uuid).await?,
        };
        let mut conflicts = 0;
        for _ in 0..MAX_ATTEMPTS {
            let merged: BTreeSet<String> =
                current.iter().filter(|t| !t.starts_with(TRAIT_PREFIX)).chain(want).cloned().collect();
            if merged == current {
                self.remember(&p.uuid, generation, current).await;
                return Ok(if conflicts == 0 {
                    ProviderOutcome::Unchanged
                } else {
                    ProviderOutcome::Written { added: Vec::new(), removed: Vec::new(), conflicts }
                });
            }
            self.ensure_traits(want).await?;
            match self.placement.set_provider_traits(&p.uuid, &merged, generation).await? {
                Some(new_generation) => {
                    let added = merged.difference(&current).cloned().collect();
                    let removed = current.difference(&merged).cloned().collect();
                    self.remember(&p.uuid, new_generation, merged).await;
                    return Ok(ProviderOutcome::Written { added, removed, conflicts });
                }
                None => {
                    conflicts += 1;
                    (current, generation) = self.read(&p.uuid).await?;
                }
            }
        }
        Err(OpenStackError::Conflicts { provider: p.name.clone(), attempts: MAX_ATTEMPTS })
    }

    async fn read(&self, uuid: &str) -> Result<(BTreeSet<String>, u64), OpenStackError> {
        let t = self.placement.provider_traits(uuid).await?;
        Ok((t.traits, t.resource_provider_generation))
    }

    async fn remember(&self, uuid: &str, generation: u64, traits: BTreeSet<String>) {
        self.seen.lock().await.insert(uuid.to_string(), Seen { generation, traits });
    }

    /// Creates the custom traits of `want` Placement does not have yet (listed once).
    async fn ensure_traits(&self, want: &BTreeSet<String>) -> Result<(), OpenStackError> {
        let mut known = self.known_traits.lock().await;
        if known.is_none() {
            *known = Some(self.placement.traits_starting_with(TRAIT_PREFIX).await?);
        }
        let known = known.get_or_insert_with(BTreeSet::new);
        for t in want {
            if !known.contains(t) {
                self.placement.create_trait(t).await?;
                known.insert(t.clone());
            }
        }
        Ok(())
    }
}
