//! The fleet's compatibility map: for each source class (a version string its mdevs and VFs
//! carry), which fresh hosts step a admits it on, with hosts grouped into pools that accept
//! exactly the same classes, so that a map of 10,000 hosts has as many rows as it has pools.
use std::collections::{BTreeMap, HashMap};

use devmig_core::DeviceKind;
use devmig_vendors::described::requirement_for;

use crate::placement::Fleet;
use crate::{FleetError, now_ms};
pub use devmig_api::fleet::{Compatibility, Pool, SourceClass};

/// Members a pool lists by name.
const MEMBERS_SHOWN: usize = 20;

/// True when class `c` is set in `bits`.
fn has(bits: &[u64], c: usize) -> bool {
    bits.get(c / 64).is_some_and(|w| w & (1 << (c % 64)) != 0)
}

/// Computes the map (blocking: the database). Devices whose attributes are equal are judged
/// once: a fleet has far fewer distinct (model, attributes) than devices.
pub fn compatibility(fleet: &Fleet) -> Result<Compatibility, FleetError> {
    let now = now_ms();
    let hosts = fleet.store.hosts(now)?;
    let devices = fleet.store.devices(now, &|_| true)?;
    let fresh: Vec<&str> = hosts.iter().filter(|h| !h.stale).map(|h| h.name.as_str()).collect();
    let mut classes: BTreeMap<(String, String), usize> = BTreeMap::new();
    // (model, attributes as JSON) -> the hosts with such a device, and one copy of them.
    let mut kinds: HashMap<(String, String), (Vec<&str>, &devmig_vendors::Attributes)> = HashMap::new();
    for d in devices.iter().filter(|d| !d.stale) {
        if d.kind != DeviceKind::MdevType {
            *classes.entry((d.model.clone(), d.version.clone())).or_default() += 1;
        }
        let key = serde_json::to_string(&d.attributes).map_err(|e| FleetError::Internal(e.to_string()))?;
        let e = kinds.entry((d.model.clone(), key)).or_insert_with(|| (Vec::new(), &d.attributes));
        if e.0.last() != Some(&d.host.as_str()) {
            e.0.push(d.host.as_str());
        }
    }
    let classes: Vec<((String, String), usize)> = classes.into_iter().collect();
    let words = classes.len().div_ceil(64);
    let mut accepted: HashMap<&str, Vec<u64>> = fresh.iter().map(|h| (*h, vec![0u64; words])).collect();
    for (c, ((model, version), _)) in classes.iter().enumerate() {
        let req = fleet.registry.requirement(version)?;
        for ((device_model, _), (on, attributes)) in &kinds {
            let admits =
                requirement_for((model, version), &req, device_model).is_some_and(|r| r.satisfied_by(attributes));
            if !admits {
                continue;
            }
            for h in on {
                if let Some(bits) = accepted.get_mut(h) {
                    bits[c / 64] |= 1 << (c % 64);
                }
            }
        }
    }
    let mut per_class = vec![0usize; classes.len()];
    let mut pools: BTreeMap<Vec<u64>, Vec<&str>> = BTreeMap::new();
    for h in &fresh {
        let bits = accepted.remove(h).unwrap_or_default();
        for (c, n) in per_class.iter_mut().enumerate() {
            if has(&bits, c) {
                *n += 1;
            }
        }
        pools.entry(bits).or_default().push(h);
    }
    let mut pools: Vec<Pool> = pools
        .into_iter()
        .map(|(bits, mut members)| {
            members.sort_unstable();
            let accepts = (0..classes.len()).filter(|&c| has(&bits, c)).collect();
            let n = members.len();
            members.truncate(MEMBERS_SHOWN);
            Pool {
                hosts: n,
                accepts,
                members: members.into_iter().map(str::to_string).collect(),
                more: n.saturating_sub(MEMBERS_SHOWN),
            }
        })
        .collect();
    pools.sort_by(|a, b| b.hosts.cmp(&a.hosts).then_with(|| a.members.cmp(&b.members)));
    Ok(Compatibility {
        schema: "devmig.compatibility/v1".into(),
        fresh_hosts: fresh.len(),
        stale_hosts: hosts.len() - fresh.len(),
        classes: classes
            .into_iter()
            .zip(per_class)
            .map(|(((model, version), sources), hosts)| SourceClass { model, version, sources, hosts })
            .collect(),
        pools,
        computed_ms: now,
    })
}
