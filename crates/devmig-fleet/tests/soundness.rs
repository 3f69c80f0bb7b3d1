//! Step a at fleet scale is sound: over randomized simulated fleets, the database never
//! excludes a free device that the vendor model's step b accepts, and it returns exactly the
//! devices the model's own step a (`Requirement::satisfied_by`) admits. Also: the reports the
//! load generator builds from host plans equal what real agents report from the laid-out trees.
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Backend;
use devmig_agent::{Agent, AgentOptions};
use devmig_core::SysfsIo;
use devmig_fleet::sim::HostPlan;
use devmig_fleet::{ReportOutcome, Store, now_ms};
use devmig_vendors::{Catalog, Registry};
use proptest::prelude::*;

fn registry() -> Registry {
    Registry::new(Catalog::embedded())
}

#[test]
fn plan_reports_equal_agent_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let io = SysfsIo::with_workers(Duration::from_secs(5), 2);
    for (seed, i, devices) in [(1, 0, 16), (2, 41, 8), (3, 7, 12)] {
        let plan = HostPlan::draw(seed, i, devices);
        let root = dir.path().join(format!("h{i}"));
        plan.lay_out(&root).expect("lay out");
        let opts = AgentOptions {
            sysfs_root: root,
            state_dir: dir.path().join(format!("s{i}")),
            timeout: Duration::from_secs(5),
            io_workers: 1,
            shared_io: Some(io.clone()),
        };
        let agent = Agent::open(&opts, registry()).expect("agent");
        let mut from_agent = agent.device_records().expect("records");
        from_agent.sort_by(|a, b| a.id.cmp(&b.id));
        let from_plan = plan.report(&registry(), "sim", "http://x", 1).devices;
        assert_eq!(from_agent, from_plan, "seed {seed} host {i}");
        let nic_vfs = plan.nic.as_ref().map_or(0, |n| n.vfs.len());
        assert_eq!(i % 3 == 1, nic_vfs > 0, "one host in three has a NIC");
        // Each VF of an SR-IOV vGPU is a vGPU or, while it has no type, a free type target.
        let gpu_vfs = plan.sriov_gpu.as_ref().map_or(0, |g| g.vfs.len());
        assert_eq!(i % 3 == 2, gpu_vfs > 0, "another host in three has an SR-IOV vGPU");
        let free = from_plan.iter().filter(|d| d.free).count();
        assert_eq!(free, devices + nic_vfs + gpu_vfs, "migratable devices per host");
    }
}

fn load(store: &Store, seed: u64, hosts: usize, devices: usize) {
    let reg = registry();
    for i in 0..hosts {
        let mut r = HostPlan::draw(seed, i, devices).report(&reg, "sim", "http://127.0.0.1:9", 1);
        // A QAT VF on qat_vfio_pci whose PF's services differ by host: set equality, which the
        // database does not index (its post-filter decides).
        let services = ["sym;asym", "asym;sym", "sym", "sym;dc"][i % 4];
        let facts = devmig_vendors::DeviceFacts::pci_function("8086:4941", true, "qat_vfio_pci", None)
            .with_param("physfn/qat/cfg_services", services);
        r.devices.push(devmig_agent::DeviceRecord {
            id: "0000:6c:00.1".into(),
            kind: devmig_core::DeviceKind::SriovVf,
            model: "vfio_variant".into(),
            version: reg.version(&facts).expect("version"),
            attributes: reg.attributes(&facts).expect("attributes"),
            facts,
            free: true,
        });
        r.devices.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(store.apply_report(&r, now_ms()).expect("report"), ReportOutcome::Applied);
    }
}

/// Every source version in the fleet, checked against every device.
fn check_fleet(store: &Store) {
    let reg = registry();
    let now = now_ms();
    let all = store.devices(now, &|_| true).expect("devices");
    let facts = store.facts(now).expect("facts");
    let versions: BTreeSet<String> = all.iter().map(|d| d.version.clone()).collect();
    assert!(versions.len() > 3);
    for v in &versions {
        let model = reg.model_for_version(v).expect("model");
        let req = model.requirement(v).expect("requirement");
        let got: BTreeSet<i64> =
            store.candidates(model.name(), &req, now, &[], None, None).expect("step a").iter().map(|d| d.row).collect();
        for d in all.iter().filter(|d| d.free) {
            let accepted = reg.decide(v, &facts[&d.row]).ok().flatten().is_none();
            let admitted = req.satisfied_by(&d.attributes);
            assert_eq!(got.contains(&d.row), admitted, "SQL and satisfied_by disagree: {v} on {}:{}", d.host, d.device);
            if accepted {
                assert!(got.contains(&d.row), "step a excluded {}:{} which step b accepts for {v}", d.host, d.device);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]
    #[test]
    fn step_a_never_excludes_what_step_b_accepts(seed in any::<u64>(), hosts in 5usize..40, devices in 4usize..20) {
        let backend = Backend::sqlite();
        let store = Store::open(&backend.url(), 1).expect("store");
        load(&store, seed, hosts, devices);
        check_fleet(&store);
    }
}

#[test]
fn step_a_never_excludes_what_step_b_accepts_postgres() {
    let backend = Backend::postgres();
    let store = Store::open(&backend.url(), 1).expect("store");
    load(&store, 99, 30, 16);
    check_fleet(&store);
}

#[test]
fn generations_order_reports_and_staleness_excludes() {
    for backend in [Backend::sqlite(), Backend::postgres()] {
        let store = Store::open(&backend.url(), 2).expect("store");
        let reg = registry();
        let plan = HostPlan::draw(5, 0, 8);
        let newer = plan.report(&reg, "sim", "http://127.0.0.1:9", 10);
        let mut older = HostPlan::draw(6, 0, 8).report(&reg, "sim", "http://127.0.0.1:9", 9);
        older.devices.truncate(2);
        let now = now_ms();
        assert_eq!(store.apply_report(&newer, now).expect("apply"), ReportOutcome::Applied);
        assert_eq!(store.apply_report(&older, now).expect("apply"), ReportOutcome::Stale);
        assert_eq!(store.apply_report(&newer, now).expect("apply"), ReportOutcome::Stale, "same generation again");
        let same = devmig_agent::HostReport { generation: 11, ..newer.clone() };
        assert_eq!(store.apply_report(&same, now).expect("apply"), ReportOutcome::Unchanged);
        let hosts = store.hosts(now).expect("hosts");
        assert_eq!((hosts[0].generation, hosts[0].devices), (11, newer.devices.len() as i64));
        assert_eq!(store.devices(now, &|_| true).expect("devices").len(), newer.devices.len());
        // Silent for longer than stale_after: excluded from step a, and said so.
        let v = &newer.devices.iter().find(|d| d.free).expect("a device").version;
        let model = reg.model_for_version(v).expect("model");
        let req = model.requirement(v).expect("req");
        assert!(!store.candidates(model.name(), &req, now, &[], None, None).expect("a").is_empty());
        let later = now + store.stale_after_ms + 1;
        assert!(store.candidates(model.name(), &req, later, &[], None, None).expect("a").is_empty());
        assert!(store.hosts(later).expect("hosts")[0].stale);
    }
}

#[test]
fn reports_larger_than_one_statement_are_stored_whole() {
    for backend in [Backend::sqlite(), Backend::postgres()] {
        let store = Store::open(&backend.url(), 1).expect("store");
        let mut r = HostPlan::draw(3, 0, 8).report(&registry(), "sim", "http://127.0.0.1:9", 1);
        let vf = r.devices.iter().find(|d| d.model == "nvme").expect("an nvme VF").clone();
        // 1,000 VFs: four statements' worth of device rows, sixteen of attribute rows.
        for n in 0..1000u32 {
            let mut d = vf.clone();
            d.id = format!("0000:{:02x}:{:02x}.{}", 0x80 + n / 256, (n % 256) / 8, n % 8);
            r.devices.push(d);
        }
        assert_eq!(store.apply_report(&r, now_ms()).expect("apply"), ReportOutcome::Applied);
        assert_eq!(store.devices(now_ms(), &|_| true).expect("devices").len(), r.devices.len());
        let req = registry().requirement(&vf.version).expect("req");
        let found = store.candidates("nvme", &req, now_ms(), &[], None, None).expect("step a");
        assert!(found.len() >= 1000, "{} candidates", found.len());
    }
}

#[test]
fn rows_of_excluded_hosts_do_not_end_the_search() {
    let backend = Backend::sqlite();
    let fleet = common::options(backend.url()).open(registry()).expect("fleet");
    let reg = registry();
    let base = HostPlan::draw(3, 0, 8).report(&reg, "sim", "http://127.0.0.1:9", 1);
    let vf = base.devices.iter().find(|d| d.model == "nvme").expect("an nvme VF").clone();
    // The source's host reports first, with far more matching devices than the first page.
    let mut a = devmig_agent::HostReport { host: "a-source".into(), devices: Vec::new(), ..base.clone() };
    for n in 0..100u32 {
        let mut d = vf.clone();
        d.id = format!("0000:{:02x}:{:02x}.{}", 0x80 + n / 256, (n % 256) / 8, n % 8);
        a.devices.push(d);
    }
    let b = devmig_agent::HostReport { host: "b-target".into(), devices: vec![vf.clone()], ..base };
    fleet.store.apply_report(&a, now_ms()).expect("a");
    fleet.store.apply_report(&b, now_ms()).expect("b");
    let source = a.devices[0].id.clone();
    let refs = [devmig_fleet::SourceRef { host: Some("a-source".into()), device: Some(source), version: None }];
    let sources = fleet.resolve(&refs, now_ms()).expect("sources");
    let excluded = BTreeSet::from(["a-source".to_string()]);
    let hosts = fleet.feasible_hosts(&sources, &excluded, &BTreeSet::new(), 8, now_ms()).expect("step a");
    assert_eq!(hosts.iter().map(|h| h.host.as_str()).collect::<Vec<_>>(), ["b-target"]);
}
