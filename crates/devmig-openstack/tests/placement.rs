//! `placement sync` against a real OpenStack Placement (openstack-placement from PyPI under
//! gunicorn, SQLite) with Nova-shaped provider trees: devmig's traits land, others' survive, a
//! second sync writes nothing, a concurrent writer forces the 409 path, and
//! `GET /allocation_candidates` with a source's traits returns exactly the providers whose
//! devices devmig's step a admits.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use devmig_core::DeviceKind;
use devmig_fleet::sim::HostPlan;
use devmig_openstack::providers::{Desired, Target, desired};
use devmig_openstack::sync::{HostReport, ProviderOutcome};
use devmig_openstack::{Placement, Syncer};
use devmig_testkit::placement_lab::{PlacementLab, TOKEN, interfering_proxy, placement};
use devmig_vendors::placement_traits::{TRAIT_PREFIX, source_traits};
use devmig_vendors::{Attributes, Catalog, Registry};

/// Another party's trait on a GPU provider (Nova's own functional tests set this one).
const OTHERS: &str = "CUSTOM_NVIDIA_11";
/// A standard trait on the compute root.
const ROOT_TRAIT: &str = "HW_CPU_X86_AVX2";

fn registry() -> Registry {
    Registry::new(Catalog::embedded())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn syncer(base: &str) -> Syncer {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
    Syncer::new(Placement::new(base, TOKEN, http).expect("placement"))
}

/// One simulated host: its name and its agent's records `(id, kind, attributes)`.
struct Host {
    name: String,
    records: Vec<(String, DeviceKind, Attributes)>,
}

fn hosts(n: usize) -> Vec<Host> {
    let r = registry();
    (0..n)
        .map(|i| {
            let report = HostPlan::draw(7, i, 16).report(&r, "sim", "http://127.0.0.1:1", 1);
            let records = report.devices.into_iter().map(|d| (d.id, d.kind, d.attributes)).collect();
            Host { name: report.host, records }
        })
        .collect()
}

fn wanted(h: &Host) -> Desired {
    desired(
        &registry(),
        &h.name,
        h.records.iter().map(|(id, kind, attributes)| Target { id, kind: *kind, attributes, pf: None }),
    )
}

/// Nova's tree for `h`: the compute root (with a standard trait) and a VGPU provider per mdev
/// parent devmig maps (with another party's trait), but for the names in `leave_out`.
fn nova_tree(lab: &PlacementLab, h: &Host, leave_out: &[String]) -> BTreeMap<String, String> {
    let root = lab.create_provider(&h.name, None);
    lab.add_traits(&root, &[ROOT_TRAIT]);
    let mut uuids = BTreeMap::from([(h.name.clone(), root.clone())]);
    for name in wanted(h).providers.keys().filter(|n| !leave_out.contains(n)) {
        let uuid = lab.create_provider(name, Some(&root));
        lab.set_inventory(&uuid, "VGPU", 8);
        lab.add_traits(&uuid, &[OTHERS]);
        uuids.insert(name.clone(), uuid);
    }
    uuids
}

fn only_ours(traits: &BTreeSet<String>) -> BTreeSet<String> {
    traits.iter().filter(|t| t.starts_with(TRAIT_PREFIX)).cloned().collect()
}

fn outcomes(reports: &[HostReport]) -> BTreeMap<String, ProviderOutcome> {
    for r in reports {
        assert!(r.error.is_none(), "{}: {:?}", r.node, r.error);
    }
    reports.iter().flat_map(|r| r.providers.iter().map(|p| (p.provider.clone(), p.outcome.clone()))).collect()
}

#[test]
fn sync_sets_devmig_traits_keeps_others_and_writes_nothing_the_second_time() {
    let lab = placement();
    let hosts = hosts(3);
    let missing = format!("{}_mtty", hosts[0].name);
    let mut trees = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        trees.push(nova_tree(&lab, h, if i == 0 { std::slice::from_ref(&missing) } else { &[] }));
    }
    // A GPU provider devmig set traits on before, whose devices are gone now.
    let gone = format!("{}_pci_0000_81_00_0", hosts[1].name);
    let gone_uuid = lab.create_provider(&gone, Some(&trees[1][&hosts[1].name]));
    lab.add_traits(&gone_uuid, &[OTHERS, "CUSTOM_DEVMIG_MODEL_EQ_OLD"]);

    let rt = runtime();
    let plans: Vec<Desired> = hosts.iter().map(wanted).collect();
    let s = syncer(&lab.base);
    let first = outcomes(&rt.block_on(s.sync_all(&plans, 2)));
    assert_eq!(first[&missing], ProviderOutcome::Missing);
    assert!(
        matches!(&first[&gone], ProviderOutcome::Written { added, removed, .. } if added.is_empty() && removed == &["CUSTOM_DEVMIG_MODEL_EQ_OLD"]),
        "{:?}",
        first[&gone]
    );
    assert_eq!(lab.traits(&gone_uuid).0, BTreeSet::from([OTHERS.to_string()]), "others' trait kept, ours cleared");
    for (plan, tree) in plans.iter().zip(&trees) {
        assert_eq!(
            lab.traits(&tree[&plan.node]).0,
            BTreeSet::from([ROOT_TRAIT.to_string()]),
            "the root is not touched"
        );
        for (name, want) in &plan.providers {
            let Some(uuid) = tree.get(name) else { continue };
            let have = lab.traits(uuid).0;
            assert!(have.contains(OTHERS), "{name}: others' trait lost: {have:?}");
            assert_eq!(only_ours(&have), want.traits, "{name}");
            assert!(matches!(first[name], ProviderOutcome::Written { conflicts: 0, .. }), "{name}: {:?}", first[name]);
        }
    }

    // Nothing changed: the same syncer reads one tree per host and writes nothing; a fresh
    // one (a restarted agent) reads the traits again and writes nothing either.
    for s in [&s, &syncer(&lab.base)] {
        let (calls, writes) = (s.placement().calls(), s.placement().writes());
        let again = outcomes(&rt.block_on(s.sync_all(&plans, 2)));
        assert!(
            again.values().all(|o| matches!(o, ProviderOutcome::Unchanged | ProviderOutcome::Missing)),
            "{again:?}"
        );
        assert_eq!(s.placement().writes(), writes, "a sync with no change writes nothing");
        assert!(s.placement().calls() > calls);
    }
    let calls = s.placement().calls();
    rt.block_on(s.sync_all(&plans, 2));
    assert_eq!(s.placement().calls() - calls, plans.len() as u64, "one tree read per host once everything is known");
}

#[test]
fn a_concurrent_writer_forces_the_409_path_and_its_trait_survives() {
    let lab = placement();
    let host = hosts(1).remove(0);
    let tree = nova_tree(&lab, &host, &[]);
    let proxy = interfering_proxy(&lab, "CUSTOM_RACED");
    let plan = wanted(&host);
    let rt = runtime();
    let reports = rt.block_on(syncer(&proxy.base).sync_all(std::slice::from_ref(&plan), 1));
    let outcomes = outcomes(&reports);
    assert_eq!(proxy.interfered.load(std::sync::atomic::Ordering::SeqCst), 1);
    let raced: Vec<_> =
        outcomes.iter().filter(|(_, o)| matches!(o, ProviderOutcome::Written { conflicts: 1, .. })).collect();
    assert_eq!(raced.len(), 1, "exactly the first write met a 409: {outcomes:?}");
    let have = lab.traits(&tree[raced[0].0]).0;
    assert!(have.contains("CUSTOM_RACED") && have.contains(OTHERS), "the other writer's traits survive: {have:?}");
    assert_eq!(only_ours(&have), plan.providers[raced[0].0].traits);
}

#[test]
fn allocation_candidates_with_a_sources_traits_are_the_providers_step_a_admits() {
    let lab = placement();
    let hosts = hosts(12);
    let trees: Vec<_> = hosts.iter().map(|h| nova_tree(&lab, h, &[])).collect();
    let plans: Vec<Desired> = hosts.iter().map(wanted).collect();
    let rt = runtime();
    outcomes(&rt.block_on(syncer(&lab.base).sync_all(&plans, 2)));

    let r = registry();
    let client = Placement::new(&lab.base, TOKEN, reqwest::Client::new()).expect("client");
    // Every mdev type, by the UUID of its parent's provider.
    let mut targets: Vec<(String, &Attributes)> = Vec::new();
    for (h, tree) in hosts.iter().zip(&trees) {
        for (id, kind, attrs) in &h.records {
            if *kind == DeviceKind::MdevType {
                let parent = id.split_once('/').expect("PARENT/TYPE").0;
                targets.push((tree[&devmig_openstack::providers::parent_provider(&h.name, parent)].clone(), attrs));
            }
        }
    }
    let mut checked = 0;
    let mut admitted_sizes = BTreeSet::new();
    for source in mdev_sources(&hosts) {
        let req = r.requirement(&source).expect("requirement");
        let model = r.model_for_version(&source).expect("model").name();
        let traits = source_traits(&r, model, &req);
        let step_a: BTreeSet<String> =
            targets.iter().filter(|(_, a)| req.satisfied_by(a)).map(|(p, _)| p.clone()).collect();
        let offered = rt.block_on(client.candidate_providers("VGPU:1", &traits.required, 100_000)).expect("candidates");
        assert!(offered.is_superset(&step_a), "{source}: Placement hides targets step a admits");
        if traits.coarse.is_empty() {
            assert_eq!(offered, step_a, "{source}: Placement and step a disagree");
        }
        admitted_sizes.insert(step_a.len());
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} distinct sources");
    assert!(admitted_sizes.len() >= 3, "the sources should admit different numbers of providers: {admitted_sizes:?}");
}

/// The version string of every created mdev of `hosts`, once each.
fn mdev_sources(hosts: &[Host]) -> BTreeSet<String> {
    let r = registry();
    (0..hosts.len())
        .flat_map(|i| HostPlan::draw(7, i, 16).report(&r, "sim", "http://127.0.0.1:1", 1).devices)
        .filter(|d| d.kind == DeviceKind::Mdev)
        .map(|d| d.version)
        .collect()
}

#[test]
fn an_agents_link_calls_placement_only_when_its_devices_change_and_puts_back_removed_traits() {
    let lab = placement();
    let host = hosts(1).remove(0);
    let tree = nova_tree(&lab, &host, &[]);
    let plan = wanted(&host);
    let rt = runtime();
    let mut link = devmig_openstack::PlacementLink::new(syncer(&lab.base), Duration::from_secs(60), 3);
    let calls = |l: &devmig_openstack::PlacementLink| l.syncer().placement().calls();
    assert!(matches!(rt.block_on(link.tick(plan.clone())), devmig_openstack::link::Tick::Synced { written: 2 }));
    let before = calls(&link);
    assert_eq!(rt.block_on(link.tick(plan.clone())), devmig_openstack::link::Tick::Unchanged);
    assert_eq!(calls(&link), before, "no change, no call");
    // Someone removes one of devmig's traits: the verification tick (every third) puts it back.
    let gpu = &tree[&format!("{}_pci_0000_00_02_0", host.name)];
    let (mut traits, generation) = lab.traits(gpu);
    let gone = only_ours(&traits).into_iter().next().expect("a devmig trait");
    traits.remove(&gone);
    let body = serde_json::json!({ "traits": traits, "resource_provider_generation": generation });
    assert_eq!(lab.call(reqwest::Method::PUT, &format!("/resource_providers/{gpu}/traits"), Some(body)).0, 200);
    assert!(matches!(rt.block_on(link.tick(plan.clone())), devmig_openstack::link::Tick::Synced { written: 1 }));
    assert!(lab.traits(gpu).0.contains(&gone), "{gone} is back");
    // The driver is upgraded: the next tick writes the new traits.
    let mut upgraded = HostPlan::draw(7, 0, 16);
    upgraded.gpu.1 = "9.9.0";
    let r = registry();
    let report = upgraded.report(&r, "sim", "http://127.0.0.1:1", 2);
    let records: Vec<_> = report.devices.iter().map(|d| (d.id.clone(), d.kind, d.attributes.clone())).collect();
    let changed = desired(
        &r,
        &host.name,
        records.iter().map(|(id, kind, attributes)| Target { id, kind: *kind, attributes, pf: None }),
    );
    assert!(matches!(rt.block_on(link.tick(changed.clone())), devmig_openstack::link::Tick::Synced { written: 1 }));
    assert_eq!(only_ours(&lab.traits(gpu).0), changed.providers[&format!("{}_pci_0000_00_02_0", host.name)].traits);
}

#[test]
fn a_provider_that_fails_does_not_stop_the_hosts_others() {
    let lab = placement();
    let host = hosts(1).remove(0);
    let tree = nova_tree(&lab, &host, &[]);
    let mut plan = wanted(&host);
    let (bad, good) = {
        let mut names = plan.providers.keys().cloned();
        (names.next().expect("two providers"), names.next().expect("two providers"))
    };
    plan.providers.get_mut(&bad).expect("bad").traits.insert("CUSTOM_DEVMIG_lowercase".to_string());
    let rt = runtime();
    let outcomes = outcomes(&rt.block_on(syncer(&lab.base).sync_all(std::slice::from_ref(&plan), 1)));
    assert!(
        matches!(&outcomes[&bad], ProviderOutcome::Failed { error } if error.contains("CUSTOM_DEVMIG_lowercase")),
        "{:?}",
        outcomes[&bad]
    );
    assert!(matches!(outcomes[&good], ProviderOutcome::Written { .. }), "{:?}", outcomes[&good]);
    assert_eq!(only_ours(&lab.traits(&tree[&good]).0), plan.providers[&good].traits);
    assert!(only_ours(&lab.traits(&tree[&bad]).0).is_empty(), "nothing half-written on the failed one");
}
