//! Opaque vendors: a device whose kernel shows `migration_version` but that no vendor model
//! knows is reported, indexed by its driver prefix and string, and never excluded by step a
//! from a source with the same prefix; the driver's write (step b) decides. Here the mtty model
//! is switched off and simfs plays the driver (the VM harness proves the same on Linux 6.1).
mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use common::Backend;
use devmig_agent::Agent;
use devmig_api::HostReport;
use devmig_core::{DeviceId, Verdict};
use devmig_fleet::explain::explain;
use devmig_fleet::placement::HostOutcome;
use devmig_fleet::{ReportOutcome, Store, now_ms};
use devmig_vendors::{Catalog, OPAQUE_MODEL, Registry};

const SPEC: &str = r#"
hostname = "opaque"
[[virtual_parent]]
name = "mtty"
driver_version = "0.1"
[virtual_parent.mdev]
types = [{ id = "mtty-1" }, { id = "mtty-2" }]
[[mdev]]
uuid = "c0ffee00-0000-4000-8000-000000000001"
parent = "mtty"
type = "mtty-2"
[[mdev]]
uuid = "c0ffee00-0000-4000-8000-000000000002"
parent = "mtty"
type = "mtty-1"
"#;

fn index_and_find(backend: Backend) {
    // simfs judges with the real models (it is the driver); the agent knows no mtty.
    let mnt = tempfile::Builder::new().prefix("devmig-opaque-").tempdir().expect("mnt");
    let host = devmig_simfs::HostSpec::from_toml(SPEC, "opaque", &Catalog::embedded())
        .expect("spec")
        .build(Registry::new(Catalog::embedded()), "opaque")
        .expect("host");
    let mounted = devmig_simfs::mount(host, mnt.path()).expect("mount");
    let registry = Registry::new(Catalog::embedded()).without_models(&["mtty".to_string()]).expect("registry");
    let state = tempfile::tempdir().expect("state");
    let opts = devmig_testkit::agent_lab::options(mounted.path(), state.path(), Duration::from_secs(5));
    let agent = Agent::open(&opts, registry.clone()).expect("agent");

    let records = agent.device_records().expect("records");
    assert_eq!(records.len(), 4, "two types and two mdevs, all opaque: {records:#?}");
    assert!(records.iter().all(|r| r.model == OPAQUE_MODEL), "{records:#?}");
    let source = records.iter().find(|r| r.id.ends_with("0001")).expect("the mtty-2 mdev").version.clone();
    assert_eq!(source, "mtty-v1-0.1.0-mtty-2");

    let store = Store::open(&backend.url(), 2).expect("store");
    assert!(!store.has_opaque_devices().expect("asked"), "an empty fleet has none");
    let report = HostReport {
        host: "opaque".into(),
        url: "http://127.0.0.1:9".into(),
        identity: "11111111-2222-4333-8444-555555555555".into(),
        generation: 1,
        devices: records,
    };
    assert_eq!(store.apply_report(&report, now_ms()).expect("report"), ReportOutcome::Applied);
    assert!(store.has_opaque_devices().expect("asked"), "known at once on the replica that stored them");
    let other_replica = Store::open_existing(&backend.url(), 1).expect("a second store on the database");
    assert!(other_replica.has_opaque_devices().expect("asked"), "asked of the database");
    // Step a for the opaque source: every device with the mtty prefix, whatever its string.
    let req = registry.requirement(&source).expect("opaque requirement");
    let found = store.candidates(OPAQUE_MODEL, &req, now_ms(), &[], None, None).expect("candidates");
    let mut ids: Vec<&str> = found.iter().map(|d| d.device.as_str()).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["c0ffee00-0000-4000-8000-000000000001", "c0ffee00-0000-4000-8000-000000000002", "mtty/mtty-1", "mtty/mtty-2"]
    );
    let other = registry.requirement("acme-v1-x").expect("requirement");
    assert!(store.candidates(OPAQUE_MODEL, &other, now_ms(), &[], None, None).expect("candidates").is_empty());

    // Explanations: an opaque source no host can take fails on its driver prefix (the hosts'
    // prefixes shown); hosts that passed step a but refused in step b are told only the driver
    // can judge.
    let source_of = |version: &str| devmig_fleet::placement::Source {
        label: version.to_string(),
        host: None,
        version: version.to_string(),
        model: OPAQUE_MODEL.to_string(),
        requirement: registry.requirement(version).expect("requirement"),
    };
    let none = BTreeSet::new();
    let e = explain(&store, &[source_of("acme-v1-x")], &none, &HashMap::new(), &none, now_ms()).expect("explain");
    assert_eq!(e.groups[0].code, "rule:kernel.prefix", "{e:#?}");
    assert!(e.groups[0].detail.contains("needs kernel.prefix == acme (hosts have mtty)"), "{e:#?}");
    let tried = HashMap::from([("opaque".to_string(), HostOutcome::Rejected)]);
    let e = explain(&store, &[source_of(&source)], &none, &tried, &none, now_ms()).expect("explain");
    assert_eq!(e.groups[0].code, "rejected_in_step_b", "{e:#?}");
    assert!(e.groups[0].detail.contains("only its driver's write can judge it"), "{e:#?}");

    // A source a model knows (here from a host where mtty is on) still finds the devices a
    // host with mtty switched off reported opaque, by the driver prefix: step a stays sound
    // across a fleet that mixes --no-model.
    let full = Registry::new(Catalog::embedded());
    let mut ids: Vec<String> = store
        .opaque_candidates("mtty-v1-0.0.1-mtty-1", now_ms(), &[], None)
        .expect("opaque candidates")
        .into_iter()
        .map(|d| d.device)
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 4, "{ids:?}");
    let none_of_i915 = store.opaque_candidates("i915-v1.0.0-8086-591d-i915-GVTg_V5_8-1", now_ms(), &[], None);
    assert!(none_of_i915.expect("opaque candidates").is_empty());
    let modelled = devmig_fleet::placement::Source {
        label: "m".into(),
        host: None,
        version: "mtty-v1-0.0.1-mtty-1".into(),
        model: "mtty".into(),
        requirement: full.requirement("mtty-v1-0.0.1-mtty-1").expect("requirement"),
    };
    let e = explain(&store, &[modelled], &none, &tried, &none, now_ms()).expect("explain");
    assert_eq!(e.groups[0].code, "rejected_in_step_b", "the opaque host passed step a: {e:#?}");

    // Step b: the driver's write decides, and the explanation says only it can.
    let target: DeviceId = "c0ffee00-0000-4000-8000-000000000002".parse().expect("id");
    let report = agent.checker().check_version(&source, &target).expect("check");
    assert_eq!(report.verdict, Verdict::Incompatible, "mtty-2 into mtty-1: {report:#?}");
    assert!(report.checks.is_empty() && report.to.model.is_none(), "no model rules for an opaque target");
    let same: DeviceId = "mtty/mtty-2".parse().expect("id");
    assert_eq!(agent.checker().check_version(&source, &same).expect("check").verdict, Verdict::Identical);
}

#[test]
fn opaque_devices_are_indexed_and_found_on_sqlite() {
    index_and_find(Backend::sqlite());
}

#[test]
fn opaque_devices_are_indexed_and_found_on_postgres() {
    index_and_find(Backend::postgres());
}
