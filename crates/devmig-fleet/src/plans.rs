//! Fleet-wide plans: evacuate a host, the baseline a pool accepts, and what a driver upgrade
//! would break or enable. Each reports progress through a callback (the CLI draws a bar).
use std::collections::{BTreeMap, BTreeSet, HashMap};

use devmig_vendors::described::requirement_for;
use devmig_vendors::{DeviceFacts, Registry, Requirement};

use crate::placement::{Fleet, PlacementRequest, SourceRef};
use crate::store::DeviceRow;
use crate::{FleetError, blocking, now_ms};

/// Progress: (done, total).
pub type Progress = dyn Fn(u64, u64) + Send + Sync;

/// A host-name pattern (`rack1-*`); errors name the pattern.
pub fn host_pattern(p: &str) -> Result<glob::Pattern, FleetError> {
    glob::Pattern::new(p).map_err(|e| FleetError::BadRequest(format!("host pattern {p:?}: {e}")))
}

/// Finds a target for every mdev and VF of `host`, each a one-device VM, targets distinct
/// (with `claim`, each claimed under `<migration_prefix>-<n>`).
pub async fn evacuate(
    fleet: &Fleet,
    host: &str,
    claim: bool,
    migration_prefix: &str,
    progress: &Progress,
) -> Result<Evacuation, FleetError> {
    let store = fleet.store.clone();
    let h = host.to_string();
    let devices: Vec<DeviceRow> = blocking(move || store.devices(now_ms(), &|n| n == h)).await?;
    if devices.is_empty() {
        return Err(FleetError::NotFound(format!("host {host}: the fleet knows no devices there")));
    }
    let groups = devices
        .into_iter()
        .filter(|d| d.kind != devmig_core::DeviceKind::MdevType)
        .map(|d| (None, vec![d.device]))
        .collect();
    evacuate_groups(fleet, host, groups, claim, migration_prefix, progress).await
}

/// [`evacuate`] for `host`'s VMs (`domains`: their domain XML): each VM moves as one, all its
/// mdevs and PCI functions to one host with distinct targets; devices of no VM stay.
pub async fn evacuate_vms(
    fleet: &Fleet,
    host: &str,
    domains: &[String],
    claim: bool,
    migration_prefix: &str,
    progress: &Progress,
) -> Result<Evacuation, FleetError> {
    let mut groups = Vec::new();
    for (i, xml) in domains.iter().enumerate() {
        let d = devmig_libvirt::domain(xml).map_err(|e| FleetError::BadRequest(format!("domain #{}: {e}", i + 1)))?;
        if d.hostdevs.is_empty() {
            continue;
        }
        groups.push((Some(d.name), d.hostdevs.into_iter().map(|h| h.device).collect()));
    }
    evacuate_groups(fleet, host, groups, claim, migration_prefix, progress).await
}

/// One placement per group of `host`'s devices (a VM, or a device alone), targets distinct.
async fn evacuate_groups(
    fleet: &Fleet,
    host: &str,
    groups: Vec<(Option<String>, Vec<String>)>,
    claim: bool,
    migration_prefix: &str,
    progress: &Progress,
) -> Result<Evacuation, FleetError> {
    // Migration ids take [A-Za-z0-9._:-]; anything else in a prefix becomes '-'.
    let prefix: String = migration_prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "._:-".contains(c) { c } else { '-' })
        .collect();
    let total = groups.len() as u64;
    let mut moves = Vec::new();
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for (n, (vm, group)) in groups.into_iter().enumerate() {
        progress(n as u64, total);
        let req = PlacementRequest {
            sources: group
                .iter()
                .map(|d| SourceRef { host: Some(host.to_string()), device: Some(d.clone()), version: None })
                .collect(),
            claim,
            migration_id: claim
                .then(|| format!("{prefix}-{n}").parse::<devmig_api::MigrationId>())
                .transpose()
                .map_err(|e| FleetError::BadRequest(format!("migration prefix: {e}")))?,
            exclude_hosts: Vec::new(),
            max_hosts: None,
            ttl_seconds: None,
        };
        let placement = fleet.place_avoiding(req, &taken).await?;
        for a in &placement.assignments {
            taken.insert((placement.host.clone().unwrap_or_default(), a.target.clone()));
        }
        moves.push(Move { device: group.join(" "), vm, placement });
    }
    progress(total, total);
    let placed = moves.iter().filter(|m| m.placement.placed).count();
    Ok(Evacuation {
        schema: "devmig.evacuation/v1".into(),
        host: host.into(),
        placed,
        unplaced: moves.len() - placed,
        moves,
    })
}

/// Pool hosts (fresh, matching `pattern`) that have a device passing step a for the source
/// `(model, version)` whose requirement is `req` (see `described::requirement_for`).
fn accepting(pool: &BTreeMap<String, Vec<DeviceRow>>, source: (&str, &str), req: &Requirement) -> BTreeSet<String> {
    pool.iter()
        .filter(|(_, devs)| {
            devs.iter().any(|d| requirement_for(source, req, &d.model).is_some_and(|r| r.satisfied_by(&d.attributes)))
        })
        .map(|(h, _)| h.clone())
        .collect()
}

fn pool_of(rows: Vec<DeviceRow>) -> BTreeMap<String, Vec<DeviceRow>> {
    let mut pool: BTreeMap<String, Vec<DeviceRow>> = BTreeMap::new();
    for d in rows.into_iter().filter(|d| !d.stale) {
        pool.entry(d.host.clone()).or_default().push(d);
    }
    pool
}

/// The source configurations (versions seen in the pool) every pool host accepts.
pub async fn baseline(fleet: &Fleet, pattern: &str, progress: &Progress) -> Result<Baseline, FleetError> {
    let pat = host_pattern(pattern)?;
    let store = fleet.store.clone();
    let pool = pool_of(blocking(move || store.devices(now_ms(), &|h| pat.matches(h))).await?);
    let versions: BTreeSet<(String, String)> = pool
        .values()
        .flatten()
        .filter(|d| d.kind != devmig_core::DeviceKind::MdevType)
        .map(|d| (d.model.clone(), d.version.clone()))
        .collect();
    let total = versions.len() as u64;
    let (mut everywhere, mut partial) = (Vec::new(), Vec::new());
    for (n, (model, version)) in versions.into_iter().enumerate() {
        progress(n as u64, total);
        let req = fleet.registry.requirement(&version)?;
        let hosts = accepting(&pool, (&model, &version), &req).len();
        let a = Accepted { model, version, hosts };
        if hosts == pool.len() { everywhere.push(a) } else { partial.push(a) }
    }
    progress(total, total);
    partial.sort_by(|a, b| b.hosts.cmp(&a.hosts).then(a.version.cmp(&b.version)));
    Ok(Baseline { schema: "devmig.baseline/v1".into(), pool_hosts: pool.len(), everywhere, partial })
}

pub use devmig_api::fleet::{Accepted, Baseline, DriverChange, Evacuation, Move, Shift, WhatIf};

/// The pool's devices with `change` applied (through the vendor model, from stored facts).
fn upgraded(
    registry: &Registry,
    pool: &BTreeMap<String, Vec<DeviceRow>>,
    facts: &HashMap<i64, DeviceFacts>,
    change: &DriverChange,
) -> Result<(BTreeMap<String, Vec<DeviceRow>>, usize), FleetError> {
    let mut out = pool.clone();
    let mut changed = 0;
    for d in out.values_mut().flatten().filter(|d| d.model == change.model) {
        let Some(f) = facts.get(&d.row) else { continue };
        let mut f = f.clone();
        f.driver_version = Some(change.version.clone());
        let model = registry
            .model_for_device(&f)
            .ok_or_else(|| FleetError::BadRequest(format!("{}: no model after the change", d.device)))?;
        let attributes =
            model.attributes(&f).map_err(|e| FleetError::BadRequest(format!("{} after the change: {e}", d.device)))?;
        let version =
            model.version(&f).map_err(|e| FleetError::BadRequest(format!("{} after the change: {e}", d.device)))?;
        if version != d.version {
            changed += 1;
        }
        d.attributes = attributes;
        d.version = version;
    }
    Ok((out, changed))
}

/// Which migrations upgrading `change.model` to `change.version` on the pool would break or enable.
pub async fn what_if(
    fleet: &Fleet,
    pattern: &str,
    change: DriverChange,
    progress: &Progress,
) -> Result<WhatIf, FleetError> {
    let pat = host_pattern(pattern)?;
    if !fleet.registry.models().any(|m| m.name() == change.model) {
        return Err(FleetError::BadRequest(format!("--driver {}: no such vendor model", change.model)));
    }
    let store = fleet.store.clone();
    let (all, facts) = blocking(move || {
        let now = now_ms();
        Ok((store.devices(now, &|_| true)?, store.facts(now)?))
    })
    .await?;
    let (pool_rows, rest_rows): (Vec<DeviceRow>, Vec<DeviceRow>) = all.into_iter().partition(|d| pat.matches(&d.host));
    let pool = pool_of(pool_rows);
    let rest = pool_of(rest_rows);
    let (after, devices_changed) = upgraded(&fleet.registry, &pool, &facts, &change)?;
    let sources: BTreeSet<(String, String)> = pool
        .values()
        .chain(rest.values())
        .flatten()
        .filter(|d| d.kind != devmig_core::DeviceKind::MdevType && d.model == change.model)
        .map(|d| (d.model.clone(), d.version.clone()))
        .collect();
    let new_versions: BTreeSet<(String, String)> = after
        .values()
        .flatten()
        .filter(|d| d.kind != devmig_core::DeviceKind::MdevType && d.model == change.model)
        .map(|d| (d.model.clone(), d.version.clone()))
        .filter(|v| !sources.contains(v))
        .collect();
    let total = (sources.len() + new_versions.len()) as u64;
    let shift = |model: &str,
                 version: &str,
                 before_pool: &BTreeMap<String, Vec<DeviceRow>>,
                 after_pool: &BTreeMap<String, Vec<DeviceRow>>|
     -> Result<Option<Shift>, FleetError> {
        let req = fleet.registry.requirement(version)?;
        let b = accepting(before_pool, (model, version), &req);
        let a = accepting(after_pool, (model, version), &req);
        if a == b {
            return Ok(None);
        }
        Ok(Some(Shift {
            model: model.into(),
            version: version.into(),
            before: b.len(),
            after: a.len(),
            broken_on: b.difference(&a).take(10).cloned().collect(),
            enabled_on: a.difference(&b).take(10).cloned().collect(),
        }))
    };
    let mut into_pool = Vec::new();
    let mut n = 0;
    for (model, version) in &sources {
        progress(n, total);
        n += 1;
        if let Some(s) = shift(model, version, &pool, &after)? {
            into_pool.push(s);
        }
    }
    let mut out_of_pool = Vec::new();
    for (model, version) in &new_versions {
        progress(n, total);
        n += 1;
        let req = fleet.registry.requirement(version)?;
        let hosts = accepting(&rest, (model, version), &req);
        out_of_pool.push(Shift {
            model: model.clone(),
            version: version.clone(),
            before: 0,
            after: hosts.len(),
            broken_on: Vec::new(),
            enabled_on: hosts.into_iter().take(10).collect(),
        });
    }
    progress(total, total);
    Ok(WhatIf {
        schema: "devmig.what-if/v1".into(),
        change,
        pool_hosts: pool.len(),
        devices_changed,
        into_pool,
        out_of_pool,
    })
}

/// The verdict of a VM whose `devices` (with versions, or why none) are known: the fresh hosts
/// other than `excluded` whose free devices step a admits for all of them with distinct
/// targets, or the fleet's first explanation group when there is none (`unknown` without a
/// fleet). A device without a version makes the VM `unreadable`, never migratable.
pub fn vm_verdict(
    fleet: Option<&Fleet>,
    name: String,
    uuid: Option<String>,
    devices: Vec<devmig_api::fleet::VmDevice>,
    excluded: &BTreeSet<String>,
) -> Result<devmig_api::fleet::VmVerdict, FleetError> {
    let mut vm = devmig_api::fleet::VmVerdict { name, uuid, devices, verdict: String::new(), hosts: None, why: None };
    if vm.devices.is_empty() {
        vm.verdict = "no_devices".into();
        return Ok(vm);
    }
    if vm.devices.iter().any(|d| d.version.is_none()) {
        vm.verdict = "unreadable".into();
        return Ok(vm);
    }
    let Some(fleet) = fleet else {
        vm.verdict = "unknown".into();
        return Ok(vm);
    };
    let refs: Vec<SourceRef> =
        vm.devices.iter().map(|d| SourceRef { host: None, device: None, version: d.version.clone() }).collect();
    let now = now_ms();
    let sources = fleet.resolve(&refs, now)?;
    let feasible = fleet.feasible_hosts(&sources, excluded, &BTreeSet::new(), 100_000, now)?;
    vm.hosts = Some(feasible.len());
    if feasible.is_empty() {
        vm.verdict = "not_migratable".into();
        let e = crate::explain::explain(&fleet.store, &sources, excluded, &HashMap::new(), &BTreeSet::new(), now)?;
        vm.why = e
            .groups
            .first()
            .map(|g| format!("{} ({} {})", g.detail, g.hosts, if g.hosts == 1 { "host" } else { "hosts" }));
    } else {
        vm.verdict = "migratable".into();
    }
    Ok(vm)
}

/// The verdicts of `host`'s VMs (`domains`: libvirt's domain XML), their devices' versions as
/// the host last reported them. A domain that is not valid XML is a bad request.
pub fn vms(fleet: &Fleet, host: &str, domains: &[String]) -> Result<Vec<devmig_api::fleet::VmVerdict>, FleetError> {
    let excluded = BTreeSet::from([host.to_string()]);
    let mut out = Vec::new();
    for (i, xml) in domains.iter().enumerate() {
        let d = devmig_libvirt::domain(xml).map_err(|e| FleetError::BadRequest(format!("domain #{}: {e}", i + 1)))?;
        let mut devices = Vec::new();
        for h in &d.hostdevs {
            // A database failure fails the request (logged, never in the body); a device the
            // host did not report makes the VM unreadable.
            let (version, error) = match fleet.store.device(host, &h.device, now_ms())? {
                Some(r) => (Some(r.version), None),
                None => (None, Some(format!("host {host} reported no device {}", h.device))),
            };
            devices.push(devmig_api::fleet::VmDevice {
                device: h.device.clone(),
                kind: h.kind.clone(),
                version,
                error,
            });
        }
        out.push(vm_verdict(Some(fleet), d.name, d.uuid, devices, &excluded)?);
    }
    Ok(out)
}
