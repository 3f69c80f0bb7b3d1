//! Placement: step a in the database, distinct targets per host, step b through the chosen
//! hosts' agents, and optionally an all-or-nothing claim.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use devmig_core::{DeviceKind, Reason, ReasonCode, Verdict};
use devmig_vendors::{Registry, Requirement};
use futures::stream::{FuturesUnordered, StreamExt};

use crate::agents::{Agents, CallFailure, Granted};
use crate::explain::explain;
use crate::store::{DeviceRow, Store};
use crate::{FleetError, blocking, matching, now_ms};
pub use devmig_api::fleet::{
    Assignment, Candidate, Candidates, CandidatesRequest, HostOutcome, Placement, PlacementRequest, Probe,
    ResolvedSource, SourceRef, Timings, Tried,
};
use devmig_api::{ClaimRequest, ClaimTarget, MigrationId, Ttl};

/// A resolved source.
#[derive(Debug, Clone)]
pub struct Source {
    /// How the answer names it (`hostA:0000:3d:00.1`, or the version).
    pub label: String,
    /// Its host, when given.
    pub host: Option<String>,
    /// Version string.
    pub version: String,
    /// Vendor model.
    pub model: String,
    /// Step a.
    pub requirement: Requirement,
}

/// What placement works with.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The store.
    pub store: Arc<Store>,
    /// Vendor models.
    pub registry: Registry,
    /// Agent client.
    pub agents: Agents,
    /// Hosts verified at once.
    pub concurrency: usize,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A host passing step a, with each source's candidate targets on it.
#[derive(Debug, Clone)]
pub struct HostCandidates {
    /// Host name.
    pub host: String,
    /// Agent URL.
    pub url: String,
    /// Distinct candidate devices of the host.
    pub devices: Vec<DeviceRow>,
    /// `edges[s]`: indexes into `devices` that source `s` may use.
    pub edges: Vec<Vec<usize>>,
    /// How many sources' candidates there carry the source's exact version (rank key).
    pub identical: usize,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// What a placement that claims asks of each agent.
#[derive(Debug, Clone)]
struct ClaimSpec {
    /// The placement's id; each target is claimed as `<id>.<n>`.
    migration_id: MigrationId,
    /// How long each claim holds.
    ttl: Ttl,
}

/// The host a placement chose and what goes where.
struct Chosen {
    host: String,
    url: String,
    assignments: Vec<Assignment>,
}

impl Fleet {
    /// Resolves sources to versions and requirements.
    pub fn resolve(&self, refs: &[SourceRef], now: i64) -> Result<Vec<Source>, FleetError> {
        if refs.is_empty() || refs.len() > 16 {
            return Err(FleetError::BadRequest("a placement takes 1 to 16 sources".into()));
        }
        refs.iter()
            .map(|r| {
                let (label, host, version) = match (r.host.as_deref(), r.device.as_deref(), r.version.as_deref()) {
                    (Some(h), Some(d), None) => {
                        let id: devmig_core::DeviceId =
                            d.parse().map_err(|e| FleetError::BadRequest(format!("source {h}:{d}: {e}")))?;
                        let row = self.store.device(h, &id.to_string(), now)?.ok_or_else(|| {
                            FleetError::NotFound(format!("source {h}:{d}: the fleet knows no such device"))
                        })?;
                        (format!("{h}:{d}"), Some(h.to_string()), row.version)
                    }
                    (None, None, Some(v)) => {
                        devmig_core::validate_version(v)
                            .map_err(|e| FleetError::BadRequest(format!("source version: {e}")))?;
                        (v.to_string(), None, v.to_string())
                    }
                    _ => return Err(FleetError::BadRequest("each source is {host, device} or {version}".into())),
                };
                // A string no model knows is opaque: step a by its driver prefix, step b decides.
                let model = self
                    .registry
                    .model_for_version(&version)
                    .map_or(devmig_vendors::OPAQUE_MODEL, |m| m.name())
                    .to_string();
                let requirement = self.registry.requirement(&version)?;
                Ok(Source { label, host, version, model, requirement })
            })
            .collect()
    }

    /// The opaque devices a source a model knows may still take (hosts where that model is
    /// switched off report its devices opaque): none for an opaque source, whose own query
    /// already takes every model.
    fn opaque_candidates(
        &self,
        source: &Source,
        now: i64,
        exclude: &[i64],
        within: Option<&[i64]>,
    ) -> Result<Vec<DeviceRow>, FleetError> {
        if source.model == devmig_vendors::OPAQUE_MODEL || !self.store.has_opaque_devices()? {
            return Ok(Vec::new());
        }
        self.store.opaque_candidates(&source.version, now, exclude, within)
    }

    /// Step a for every source and the matching per host: feasible hosts, ranked, at most
    /// `want` of them (fewer when the fleet has fewer).
    pub fn feasible_hosts(
        &self,
        sources: &[Source],
        excluded: &BTreeSet<String>,
        avoid: &BTreeSet<(String, String)>,
        want: usize,
        now: i64,
    ) -> Result<Vec<HostCandidates>, FleetError> {
        let exclude_ids = self.store.host_ids(excluded)?;
        // Hosts offer several candidates each: a few rows per wanted host, more when too few fit.
        let mut limit = want.max(1) * 4;
        loop {
            let (mut first, exhausted) = self.store.candidates_page(
                &sources[0].model,
                &sources[0].requirement,
                now,
                &exclude_ids,
                None,
                Some(limit),
            )?;
            first.extend(self.opaque_candidates(&sources[0], now, &exclude_ids, None)?);
            let host_ids: Vec<i64> = first.iter().map(|d| d.host_row).collect::<BTreeSet<_>>().into_iter().collect();
            let mut per_source = vec![first];
            for s in &sources[1..] {
                let mut rows =
                    self.store.candidates(&s.model, &s.requirement, now, &exclude_ids, Some(&host_ids), None)?;
                rows.extend(self.opaque_candidates(s, now, &exclude_ids, Some(&host_ids))?);
                per_source.push(rows);
            }
            let mut hosts: BTreeMap<i64, HostCandidates> = BTreeMap::new();
            for (si, rows) in per_source.into_iter().enumerate() {
                for d in rows {
                    if !avoid.is_empty() && avoid.contains(&(d.host.clone(), d.device.clone())) {
                        continue;
                    }
                    let h = hosts.entry(d.host_row).or_insert_with(|| HostCandidates {
                        host: d.host.clone(),
                        url: d.url.clone(),
                        devices: Vec::new(),
                        edges: vec![Vec::new(); sources.len()],
                        identical: 0,
                    });
                    let idx = match h.devices.iter().position(|x| x.row == d.row) {
                        Some(i) => i,
                        None => {
                            h.devices.push(d);
                            h.devices.len() - 1
                        }
                    };
                    h.edges[si].push(idx);
                }
            }
            let mut feasible: Vec<HostCandidates> = hosts
                .into_values()
                .filter(|h| matching::assign(&h.edges).is_some())
                .map(|mut h| {
                    h.identical = sources
                        .iter()
                        .zip(&h.edges)
                        .filter(|(s, e)| e.iter().any(|&i| h.devices[i].version == s.version))
                        .count();
                    h
                })
                .collect();
            if feasible.len() >= want || exhausted {
                // Rank: identical versions first, then the most free candidates (spread), then name.
                feasible.sort_by(|a, b| {
                    (b.identical, b.devices.len()).cmp(&(a.identical, a.devices.len())).then(a.host.cmp(&b.host))
                });
                return Ok(feasible);
            }
            limit *= 4;
        }
    }

    /// Step a alone for a VM's devices (blocking: the database): every fresh host other than
    /// the sources' and `exclude_hosts` where each source has a distinct target, ranked as a
    /// placement ranks them, the first `limit` listed, and why the others are not candidates.
    pub fn candidates(&self, req: &CandidatesRequest) -> Result<Candidates, FleetError> {
        let now = now_ms();
        let limit = req.limit.unwrap_or(20);
        if !(1..=1000).contains(&limit) {
            return Err(FleetError::BadRequest(format!("limit {limit}: give 1 to 1000")));
        }
        let sources = self.resolve(&req.sources, now)?;
        let mut excluded: BTreeSet<String> = req.exclude_hosts.iter().cloned().collect();
        excluded.extend(sources.iter().filter_map(|s| s.host.clone()));
        // Every feasible host, so that the explanation accounts for all the others exactly.
        let hosts = self.feasible_hosts(&sources, &excluded, &BTreeSet::new(), usize::MAX / 8, now)?;
        let feasible: BTreeSet<String> = hosts.iter().map(|h| h.host.clone()).collect();
        let mut explanation =
            explain(&self.store, &sources, &excluded, &std::collections::HashMap::new(), &feasible, now)?;
        // The feasible hosts are the answer, not a reason.
        explanation.groups.retain(|g| g.code != "not_tried");
        let candidate_hosts = hosts.len();
        let candidates = hosts
            .into_iter()
            .take(limit)
            .map(|h| Candidate {
                identical: h.identical,
                free_targets: h.devices.len(),
                targets: h.edges.iter().map(|e| e.iter().map(|&i| h.devices[i].device.clone()).collect()).collect(),
                host: h.host,
                url: h.url,
            })
            .collect();
        Ok(Candidates {
            schema: "devmig.candidates/v1".into(),
            sources: sources
                .iter()
                .map(|s| ResolvedSource { label: s.label.clone(), model: s.model.clone(), version: s.version.clone() })
                .collect(),
            candidate_hosts,
            more: candidate_hosts > limit,
            candidates,
            explanation,
        })
    }

    /// Places a VM's devices.
    pub async fn place(&self, req: PlacementRequest) -> Result<Placement, FleetError> {
        self.place_avoiding(req, &BTreeSet::new()).await
    }

    /// Places a VM's devices on none of the `avoid` (host, device) targets, and counts it.
    pub async fn place_avoiding(
        &self,
        req: PlacementRequest,
        avoid: &BTreeSet<(String, String)>,
    ) -> Result<Placement, FleetError> {
        let started = Instant::now();
        let r = self.place_inner(req, avoid).await;
        let step_a = r.as_ref().map_or(0.0, |p| p.timings.step_a_ms / 1e3);
        self.metrics.placement(r.as_ref().ok().map(|p| p.placed), step_a, started.elapsed().as_secs_f64());
        r
    }

    async fn place_inner(
        &self,
        req: PlacementRequest,
        avoid: &BTreeSet<(String, String)>,
    ) -> Result<Placement, FleetError> {
        let started = Instant::now();
        let now = now_ms();
        if let Some(m) = &req.migration_id {
            // Each target is claimed as `<id>.<n>`: the longest of them must be an id too.
            m.part(req.sources.len().saturating_sub(1))
                .map_err(|e| FleetError::BadRequest(format!("{e} (with the `.<n>` of each target's claim)")))?;
        }
        let spec = match (&req.migration_id, req.claim) {
            (None, true) => return Err(FleetError::BadRequest("--claim needs a migration id".into())),
            (Some(m), true) => {
                Some(ClaimSpec { migration_id: m.clone(), ttl: req.ttl_seconds.unwrap_or(Ttl::DEFAULT) })
            }
            (_, false) => None,
        };
        let max_hosts = req.max_hosts.unwrap_or(8).clamp(1, 64);
        let me = self.clone();
        let refs = req.sources.clone();
        let mut excluded: BTreeSet<String> = req.exclude_hosts.iter().cloned().collect();
        let avoid = avoid.clone();
        let (sources, hosts, excluded) = blocking(move || {
            let sources = me.resolve(&refs, now)?;
            excluded.extend(sources.iter().filter_map(|s| s.host.clone()));
            let hosts = me.feasible_hosts(&sources, &excluded, &avoid, max_hosts, now)?;
            Ok((sources, hosts, excluded))
        })
        .await?;
        if let Some(spec) = &spec {
            let (store, m) = (Arc::clone(&self.store), spec.migration_id.clone());
            if let Some(host) = blocking(move || store.begin_placement(m.as_str(), now)).await? {
                let m = &spec.migration_id;
                return Err(FleetError::Conflict(format!("migration {m} is already placed on {host}")));
            }
        }
        let mut timings = Timings { step_a_ms: ms(started), ..Timings::default() };
        let candidate_hosts = hosts.len();
        let feasible: BTreeSet<String> = hosts.iter().map(|h| h.host.clone()).collect();
        let result = self.verify_and_claim(&sources, hosts, max_hosts, spec.as_ref(), &mut timings).await;
        let (placed, tried) = match result {
            Ok(v) => v,
            Err(e) => {
                if let Some(spec) = &spec {
                    let (store, m) = (Arc::clone(&self.store), spec.migration_id.clone());
                    let _ = blocking(move || store.end_placement(m.as_str(), None)).await;
                }
                return Err(e);
            }
        };
        let mut answer = Placement {
            schema: "devmig.placement/v1".into(),
            placed: placed.is_some(),
            host: None,
            url: None,
            assignments: Vec::new(),
            candidate_hosts,
            tried,
            explanation: None,
            timings,
        };
        match placed {
            Some(Chosen { host, url, assignments }) => {
                answer.host = Some(host);
                answer.url = Some(url);
                answer.assignments = assignments;
            }
            None => {
                let store = Arc::clone(&self.store);
                let srcs = sources.clone();
                let outcomes: std::collections::HashMap<String, HostOutcome> =
                    answer.tried.iter().map(|t| (t.host.clone(), t.outcome)).collect();
                answer.explanation =
                    Some(blocking(move || explain(&store, &srcs, &excluded, &outcomes, &feasible, now)).await?);
            }
        }
        if let Some(ClaimSpec { migration_id: m, .. }) = spec {
            let store = Arc::clone(&self.store);
            let text = serde_json::to_string(&answer).map_err(|e| FleetError::Internal(e.to_string()))?;
            let host = answer.host.clone();
            blocking(move || store.end_placement(m.as_str(), host.as_deref().map(|h| (h, text.as_str())))).await?;
        }
        Ok(answer)
    }

    /// Verifies ranked hosts `concurrency` at a time until one accepts every source, then
    /// claims there when `claim` says so (falling back to the next accepting host when a claim
    /// fails). Answers the chosen host, if any, and every host tried.
    async fn verify_and_claim(
        &self,
        sources: &[Source],
        hosts: Vec<HostCandidates>,
        max_hosts: usize,
        claim: Option<&ClaimSpec>,
        timings: &mut Timings,
    ) -> Result<(Option<Chosen>, Vec<Tried>), FleetError> {
        let mut tried = Vec::new();
        let hosts: Vec<HostCandidates> = hosts.into_iter().take(max_hosts).collect();
        for window in hosts.chunks(self.concurrency.max(1)) {
            let t = Instant::now();
            let mut running: FuturesUnordered<_> = window
                .iter()
                .enumerate()
                .map(|(rank, h)| async move { (rank, self.verify_host(sources, h).await) })
                .collect();
            let mut results = Vec::new();
            while let Some(r) = running.next().await {
                results.push(r);
            }
            results.sort_by_key(|(rank, _)| *rank);
            timings.step_b_ms += ms(t);
            let mut accepted = Vec::new();
            for (rank, (outcome, probes, assignment)) in results {
                tried.push(Tried { host: window[rank].host.clone(), outcome, probes });
                if let Some(a) = assignment {
                    accepted.push((rank, a, tried.len() - 1));
                }
            }
            for (k, (rank, first, at)) in accepted.iter().enumerate() {
                // A claim can still fail where step b passed (a type without room for the
                // source's aggregate, a device claimed meanwhile): drop that pair, re-verify the
                // host with the pairs left, and claim again, until it holds or the host runs out.
                let mut host = window[*rank].clone();
                let mut assignment = first.clone();
                loop {
                    let mut out: Vec<Assignment> = assignment
                        .iter()
                        .enumerate()
                        .map(|(s, &i)| Assignment {
                            source: sources[s].label.clone(),
                            target: host.devices[i].device.clone(),
                            kind: host.devices[i].kind,
                            verdict: Verdict::accepted(Some(host.devices[i].version.as_str()), &sources[s].version),
                            claim_id: None,
                            claimed_device: None,
                            // What the agent's accepting check said only the resume decides.
                            at_resume: tried[*at]
                                .probes
                                .iter()
                                .rev()
                                .find(|p| p.source == sources[s].label && p.target == host.devices[i].device)
                                .map(|p| p.at_resume.clone())
                                .unwrap_or_default(),
                        })
                        .collect();
                    let Some(spec) = claim else {
                        for (_, _, other) in &accepted[k + 1..] {
                            tried[*other].outcome = HostOutcome::NotNeeded;
                        }
                        let chosen = Chosen { host: host.host.clone(), url: host.url.clone(), assignments: out };
                        return Ok((Some(chosen), tried));
                    };
                    let t = Instant::now();
                    let claimed = self.claim_all(sources, &host, &assignment, spec).await;
                    timings.claim_ms += ms(t);
                    match claimed {
                        Ok(granted) => {
                            for (a, g) in out.iter_mut().zip(granted) {
                                a.claim_id = Some(g.claim_id);
                                a.claimed_device = Some(g.device).filter(|d| *d != a.target);
                            }
                            let store = Arc::clone(&self.store);
                            // Devices are held until the agent reports them in use; a type is a
                            // pool the agent counts itself, so it stays open to other placements.
                            let rows: Vec<i64> = assignment
                                .iter()
                                .map(|&i| &host.devices[i])
                                .filter(|d| d.kind != DeviceKind::MdevType)
                                .map(|d| d.row)
                                .collect();
                            let mid = spec.migration_id.to_string();
                            blocking(move || rows.iter().try_for_each(|r| store.hold(*r, &mid, now_ms()))).await?;
                            for (_, _, other) in &accepted[k + 1..] {
                                tried[*other].outcome = HostOutcome::NotNeeded;
                            }
                            let chosen = Chosen { host: host.host.clone(), url: host.url.clone(), assignments: out };
                            return Ok((Some(chosen), tried));
                        }
                        Err((why, s)) => {
                            tried[*at].probes.push(Probe {
                                source: sources[s].label.clone(),
                                target: host.devices[assignment[s]].device.clone(),
                                verdict: None,
                                reasons: vec![Reason::new(ReasonCode::ClaimFailed, why)],
                                at_resume: Vec::new(),
                            });
                            let failed = assignment[s];
                            host.edges[s].retain(|&x| x != failed);
                            let t = Instant::now();
                            let (_, probes, next) = self.verify_host(sources, &host).await;
                            timings.step_b_ms += ms(t);
                            tried[*at].probes.extend(probes);
                            match next {
                                Some(a) => assignment = a,
                                None => {
                                    tried[*at].outcome = HostOutcome::ClaimFailed;
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }
        Ok((None, tried))
    }

    /// Step b on one host: checks a matching, drops rejected pairs, re-matches, until every
    /// source has an accepting distinct target or none is left. Any failed call ends the host.
    async fn verify_host(
        &self,
        sources: &[Source],
        h: &HostCandidates,
    ) -> (HostOutcome, Vec<Probe>, Option<Vec<usize>>) {
        let mut edges = h.edges.clone();
        let mut accepted: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut probes = Vec::new();
        loop {
            let Some(assignment) = matching::assign(&edges) else { return (HostOutcome::Rejected, probes, None) };
            let pending: Vec<(usize, usize)> =
                assignment.iter().enumerate().map(|(s, &i)| (s, i)).filter(|p| !accepted.contains(p)).collect();
            if pending.is_empty() {
                return (HostOutcome::Accepted, probes, Some(assignment));
            }
            let calls = pending.iter().map(|&(s, i)| {
                let d = &h.devices[i];
                async move { (s, i, self.agents.check(&h.host, &h.url, &d.device, &sources[s].version).await) }
            });
            for (s, i, r) in futures::future::join_all(calls).await {
                let target = h.devices[i].device.clone();
                match r {
                    Ok(report) => {
                        let ok = report.verdict.is_compatible();
                        let reasons = if ok { Vec::new() } else { report.reasons.clone() };
                        let at_resume = if ok { report.at_resume.clone() } else { Vec::new() };
                        probes.push(Probe {
                            source: sources[s].label.clone(),
                            target,
                            verdict: Some(report.verdict),
                            reasons,
                            at_resume,
                        });
                        if ok {
                            accepted.insert((s, i));
                        } else {
                            edges[s].retain(|&x| x != i);
                        }
                    }
                    Err(f) => {
                        let outcome = if matches!(f, CallFailure::Unreachable { .. }) {
                            HostOutcome::Unreachable
                        } else {
                            HostOutcome::Rejected
                        };
                        probes.push(Probe {
                            source: sources[s].label.clone(),
                            target,
                            verdict: None,
                            reasons: vec![Reason::new(f.code(), f.to_string())],
                            at_resume: Vec::new(),
                        });
                        return (outcome, probes, None);
                    }
                }
            }
        }
    }

    /// Claims every assignment on `h`, all or nothing: on a failure, releases what it got and
    /// says which source's claim failed.
    async fn claim_all(
        &self,
        sources: &[Source],
        h: &HostCandidates,
        assignment: &[usize],
        spec: &ClaimSpec,
    ) -> Result<Vec<Granted>, (String, usize)> {
        let mut got: Vec<Granted> = Vec::new();
        for (s, &i) in assignment.iter().enumerate() {
            let d = &h.devices[i];
            let claimed = match spec.migration_id.part(s) {
                Ok(migration_id) => {
                    let target = if d.kind == DeviceKind::MdevType {
                        ClaimTarget::Type(d.device.clone())
                    } else {
                        ClaimTarget::Device(d.device.clone())
                    };
                    let req = ClaimRequest {
                        migration_id,
                        source_version: sources[s].version.clone(),
                        target,
                        ttl_seconds: spec.ttl,
                    };
                    self.agents.claim(&h.host, &h.url, &req).await
                }
                Err(e) => Err(CallFailure::Unreachable { detail: e.to_string() }),
            };
            match claimed {
                Ok(g) => got.push(g),
                Err(f) => {
                    let mut why = format!("claiming {} for {}: {f}", d.device, sources[s].label);
                    for g in &got {
                        if let Err(e) = self.agents.release(&h.host, &h.url, &g.claim_id).await {
                            why.push_str(&format!(
                                "; releasing claim {} failed ({e}): it expires after its ttl",
                                g.claim_id
                            ));
                        }
                    }
                    return Err((why, s));
                }
            }
        }
        Ok(got)
    }
}
