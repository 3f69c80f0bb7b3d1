//! Why nothing fits: hosts grouped by the step-a rule their closest device failed, counted,
//! with the closest misses. Uses the same `Requirement::unmet` as the post-filter of step a.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::FleetError;
use crate::placement::HostOutcome;
use crate::placement::Source;
use crate::store::{DeviceRow, Store};
use devmig_vendors::OPAQUE_MODEL;
use devmig_vendors::described::requirement_for;

pub use devmig_api::fleet::{Explanation, Group, Miss};

/// Per host and source: how close its best device came.
struct Best {
    unmet: Vec<String>,
    first_rule: Option<(String, String, Option<String>)>,
    free: bool,
    device: String,
}

fn best_of(devs: &[&DeviceRow], src: &Source) -> Best {
    let mut best: Option<Best> = None;
    for d in devs {
        let Some(req) = requirement_for((&src.model, &src.version), &src.requirement, &d.model) else { continue };
        let unmet = req.unmet(&d.attributes);
        let free = d.free && d.held_by.is_none();
        let cand = Best {
            unmet: unmet.iter().map(|u| u.constraint.to_string()).collect(),
            first_rule: unmet.first().map(|u| {
                (
                    u.constraint.attr().to_string(),
                    u.constraint.to_string(),
                    u.target_value.as_ref().map(|v| v.to_string()),
                )
            }),
            free,
            device: d.device.clone(),
        };
        let better = match &best {
            None => true,
            Some(b) => (cand.unmet.len(), !cand.free) < (b.unmet.len(), !b.free),
        };
        if better {
            best = Some(cand);
        }
    }
    best.unwrap_or(Best {
        unmet: vec!["no device of this model".into()],
        first_rule: None,
        free: false,
        device: String::new(),
    })
}

/// Why a host has no candidate at all for `src`.
fn no_device(src: &Source) -> String {
    if src.model == OPAQUE_MODEL {
        let prefix = devmig_vendors::described::version_prefix(&src.version);
        format!("no device whose kernel shows a migration_version with the driver prefix {prefix:?}")
    } else {
        format!("no {} device", src.model)
    }
}

/// Explains why none of the fresh hosts outside `excluded` fit all `sources`. `tried` maps the
/// hosts verified in step b to how that ended (`rejected`, `unreachable`, `claim_failed`).
pub fn explain(
    store: &Store,
    sources: &[Source],
    excluded: &BTreeSet<String>,
    tried: &HashMap<String, HostOutcome>,
    feasible: &BTreeSet<String>,
    now_ms: i64,
) -> Result<Explanation, FleetError> {
    let hosts = store.hosts(now_ms)?;
    let stale = hosts.iter().filter(|h| h.stale && !excluded.contains(&h.name)).count();
    let fresh: Vec<&str> =
        hosts.iter().filter(|h| !h.stale && !excluded.contains(&h.name)).map(|h| h.name.as_str()).collect();
    let mut groups: BTreeMap<(String, String), (usize, String, BTreeSet<String>)> = BTreeMap::new();
    let mut per_host: HashMap<&str, (usize, Vec<String>, bool)> = HashMap::new();
    for src in sources {
        let mut rows = store.model_devices(&src.model, now_ms)?;
        if src.model != OPAQUE_MODEL {
            // Hosts where the source's model is switched off reported its devices opaque.
            rows.extend(store.model_devices_exactly(OPAQUE_MODEL, now_ms)?);
        }
        let mut by_host: HashMap<&str, Vec<&DeviceRow>> = HashMap::new();
        for d in &rows {
            by_host.entry(d.host.as_str()).or_default().push(d);
        }
        for host in &fresh {
            let best = best_of(by_host.get(host).map_or(&[][..], Vec::as_slice), src);
            let (code, detail, value) = match (&best.first_rule, best.free) {
                (Some((attr, rule, value)), _) => {
                    (format!("rule:{attr}"), format!("{} needs {rule}", src.label), value.clone())
                }
                (None, false) if best.device.is_empty() => ("no_device".to_string(), no_device(src), None),
                (None, false) => (
                    "none_free".to_string(),
                    format!(
                        "every {} device meeting step a for {} is claimed or has no free instance",
                        src.model, src.label
                    ),
                    None,
                ),
                (None, true) => {
                    let e = per_host.entry(host).or_insert((0, Vec::new(), true));
                    e.1.push(format!("{}: {} passes step a", src.label, best.device));
                    continue;
                }
            };
            let g = groups.entry((src.label.clone(), code)).or_insert((0, detail, BTreeSet::new()));
            g.0 += 1;
            if let Some(v) = value {
                g.2.insert(v);
            }
            let e = per_host.entry(host).or_insert((0, Vec::new(), true));
            e.0 += best.unmet.len().max(1);
            e.2 = false;
            e.1.push(match (best.device.is_empty(), best.unmet.is_empty()) {
                (true, _) => format!("{}: {}", src.label, no_device(src)),
                (false, true) => format!("{}: {} passes step a but is not free", src.label, best.device),
                (false, false) => format!("{}: {} lacks {}", src.label, best.device, best.unmet.join("; ")),
            });
        }
    }
    let mut out: Vec<Group> = groups
        .into_iter()
        .map(|((source, code), (n, detail, values))| {
            let detail = if values.is_empty() {
                detail
            } else {
                let shown: Vec<String> = values.iter().take(4).cloned().collect();
                let more = if values.len() > 4 { format!(" and {} more", values.len() - 4) } else { String::new() };
                format!("{detail} (hosts have {}{more})", shown.join(", "))
            };
            Group { hosts: n, source, code, detail }
        })
        .collect();
    // Hosts passing step a for every source: why did each still not take the VM?
    let mut after_step_a: BTreeMap<&str, usize> = BTreeMap::new();
    for (host, (_, _, ok)) in &per_host {
        if !*ok {
            continue;
        }
        let code = match tried.get(*host) {
            Some(HostOutcome::Rejected) => "rejected_in_step_b",
            Some(HostOutcome::Unreachable) => "unreachable",
            Some(HostOutcome::ClaimFailed) => "claim_failed",
            _ if feasible.contains(*host) => "not_tried",
            _ => "no_distinct_targets",
        };
        *after_step_a.entry(code).or_default() += 1;
    }
    let opaque = sources.iter().any(|s| s.model == OPAQUE_MODEL);
    for (code, hosts) in after_step_a {
        let detail = match code {
            "rejected_in_step_b" if opaque => {
                "pass step a, but their agents rejected the targets in step b: no vendor model knows an \
                 opaque source, so only its driver's write can judge it"
            }
            "rejected_in_step_b" => "pass step a, but their agents rejected the targets in step b",
            "unreachable" => "pass step a, but their agents did not answer in time",
            "claim_failed" => "pass step a and step b, but claiming the targets failed",
            "not_tried" => "pass step a with distinct targets, but were beyond max_hosts",
            _ => "pass step a for every source, but not with a distinct device for each",
        };
        out.push(Group { hosts, source: "all".into(), code: code.into(), detail: detail.into() });
    }
    if stale > 0 {
        out.push(Group {
            hosts: stale,
            source: "all".into(),
            code: "stale".into(),
            detail: format!("stopped reporting more than {} s ago: excluded", store.stale_after_ms / 1000),
        });
    }
    out.sort_by(|a, b| b.hosts.cmp(&a.hosts).then(a.code.cmp(&b.code)));
    let mut closest: Vec<Miss> = per_host
        .into_iter()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(host, (unmet, detail, _))| Miss { host: host.to_string(), unmet, detail })
        .collect();
    closest.sort_by(|a, b| a.unmet.cmp(&b.unmet).then(a.host.cmp(&b.host)));
    closest.truncate(5);
    Ok(Explanation { groups: out, closest })
}
