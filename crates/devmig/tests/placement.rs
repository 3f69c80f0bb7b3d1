//! `devmig placement ...` and `devmig agent --placement` as an operator runs them: the real
//! binary over example hosts, against a real OpenStack Placement (openstack-placement from PyPI,
//! see devmig-testkit's placement lab). Golden files pin the output of the local verbs.
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use devmig_core::tree::{ExampleHost, TreeBuilder, example_host, example_uuids::A_VGPU};
use devmig_testkit::placement_lab::{PlacementLab, placement, placement_with};
use serde_json::Value;

mod common;

use common::{devmig_at as devmig, ok};

fn tree(which: ExampleHost) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    example_host(&TreeBuilder::new(dir.path()), which).expect("build");
    dir
}

/// The providers `sync --dry-run` plans for `node` on `root`, by name, with their traits.
fn planned(root: &Path, node: &str) -> serde_json::Map<String, Value> {
    let v: Value =
        serde_json::from_str(&ok(&devmig(root, &["-o", "json", "placement", "sync", "--dry-run", "--node", node])))
            .expect("json");
    v["hosts"][0]["providers"].as_object().expect("providers").clone()
}

/// Nova's tree for `node`: the root and a VGPU provider for each planned provider.
fn nova_tree(lab: &PlacementLab, node: &str, providers: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    let root = lab.create_provider(node, None);
    providers
        .keys()
        .map(|name| {
            let uuid = lab.create_provider(name, Some(&root));
            lab.set_inventory(&uuid, "VGPU", 4);
            lab.add_traits(&uuid, &["CUSTOM_NVIDIA_11"]);
            (name.clone(), uuid)
        })
        .collect()
}

fn traits_of(p: &Value) -> std::collections::BTreeSet<String> {
    p["traits"].as_array().expect("traits").iter().map(|t| t.as_str().expect("trait").to_string()).collect()
}

#[test]
fn the_local_verbs_match_golden_files() {
    let a = tree(ExampleHost::A);
    let r = a.path();
    common::golden("placement-requirements-vgpu.txt", &ok(&devmig(r, &["placement", "requirements", A_VGPU])));
    common::golden(
        "placement-requirements-vf.json",
        &ok(&devmig(r, &["-o", "json", "placement", "requirements", "0000:3d:00.1"])),
    );
    // A string alone: both forms, and the minor past 32 checked coarsely (said).
    common::golden(
        "placement-requirements-version.txt",
        &ok(&devmig(r, &["placement", "requirements", "--version", "mtty-v1-0.40.0-mtty-2"])),
    );
    common::golden(
        "placement-sync-dry-run.txt",
        &ok(&devmig(r, &["placement", "sync", "--dry-run", "--node", "compute1"])),
    );
    common::golden("placement-device-spec.txt", &ok(&devmig(r, &["placement", "device-spec"])));
    // Bad input is refused with what was wrong.
    for (args, needle) in [
        (vec!["placement", "requirements"], "give SOURCE"),
        (vec!["placement", "requirements", "--version", "acme-1", A_VGPU], "not both"),
        (vec!["placement", "sync", "--dry-run", "--node", "a b"], "compute node name"),
        (vec!["placement", "sync", "--node", "c"], "--placement"),
    ] {
        let o = devmig(r, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn sync_writes_the_planned_traits_and_the_agent_keeps_them() {
    let lab = placement();
    let dir = tempfile::tempdir().expect("dir");
    let token = dir.path().join("placement-token");
    std::fs::write(&token, "admin\n").expect("token");
    let token = token.to_str().expect("path");
    let (a, b) = (tree(ExampleHost::A), tree(ExampleHost::B));

    // `placement sync` on host A.
    let plan_a = planned(a.path(), "compute1");
    let tree_a = nova_tree(&lab, "compute1", &plan_a);
    let base = lab.base.as_str();
    let out = ok(&devmig(
        a.path(),
        &["placement", "sync", "--placement", base, "--placement-token-file", token, "--node", "compute1"],
    ));
    assert!(out.contains("1 host in") && out.contains("writes"), "{out}");
    for (name, uuid) in &tree_a {
        let have = lab.traits(uuid).0;
        assert!(have.contains("CUSTOM_NVIDIA_11"), "{name}: others' trait kept");
        assert!(traits_of(&plan_a[name]).is_subset(&have), "{name}: {have:?}");
    }
    let again = ok(&devmig(
        a.path(),
        &["placement", "sync", "--placement", base, "--placement-token-file", token, "--node", "compute1"],
    ));
    assert!(again.contains(", 0 writes"), "{again}");
    // A node Placement does not know fails that host, naming it.
    let o = devmig(
        a.path(),
        &["placement", "sync", "--placement", base, "--placement-token-file", token, "--node", "nosuch"],
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stdout).contains("placement has no resource provider named \"nosuch\""));

    // `devmig agent --placement` on host B: its providers get their traits without anyone asking.
    let plan_b = planned(b.path(), "compute2");
    let tree_b = nova_tree(&lab, "compute2", &plan_b);
    let tokens = dir.path().join("tokens.toml");
    devmig_testkit::write_token_file(&tokens, &[("nova", "admin", None, "admin-secret-0123456789")]);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devmig"));
    cmd.arg("--sysfs-root")
        .arg(b.path())
        .args(["agent", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tokens)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .args(["--placement", base, "--placement-token-file", token, "--placement-node", "compute2"])
        .args(["--placement-interval-s", "1"])
        .stderr(Stdio::null());
    let (mut child, _) = common::spawn_until_first_line(&mut cmd, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    let synced = || tree_b.iter().all(|(name, uuid)| traits_of(&plan_b[name]).is_subset(&lab.traits(uuid).0));
    while !synced() {
        assert!(Instant::now() < deadline, "the agent did not sync compute2's providers within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_https_placement_is_verified_against_the_given_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let [ca, cert, key, ..] = devmig_testkit::pki(dir.path(), "placement");
    let lab = placement_with(Some((&cert, &key)));
    assert!(lab.base.starts_with("https://127.0.0.1:"), "{}", lab.base);
    let a = tree(ExampleHost::A);
    let plan = planned(a.path(), "compute1");
    let providers = nova_tree(&lab, "compute1", &plan);
    let token = dir.path().join("token");
    std::fs::write(&token, "admin\n").expect("token");
    let (token, ca) = (token.to_str().expect("path"), ca.to_str().expect("path"));
    let sync = |extra: &[&str]| {
        let args = [
            &[
                "placement",
                "sync",
                "--placement",
                lab.base.as_str(),
                "--placement-token-file",
                token,
                "--node",
                "compute1",
            ],
            extra,
        ]
        .concat();
        devmig(a.path(), &args)
    };
    let no_ca = sync(&[]);
    assert_eq!(no_ca.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&no_ca.stderr).contains("an https:// Placement needs --placement-ca-file"),
        "{}",
        String::from_utf8_lossy(&no_ca.stderr)
    );
    ok(&sync(&["--placement-ca-file", ca]));
    for (name, uuid) in &providers {
        assert!(traits_of(&plan[name]).is_subset(&lab.traits(uuid).0), "{name}");
    }
    // A CA that did not sign Placement's certificate: the host fails, nothing is written.
    let [other_ca, ..] = devmig_testkit::pki(dir.path(), "other");
    let o = sync(&["--placement-ca-file", other_ca.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unreachable"), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_device_discovery_cannot_read_stops_the_sync_before_any_call() {
    use std::io::Read;
    // mtty/mtty-1's available_instances hangs: discovery cannot read that type.
    let spec = devmig_testkit::hung_mtty_spec("available_instances", "read");
    let registry = devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded());
    let host = devmig_simfs::HostSpec::from_toml(&spec, "hung", &devmig_vendors::Catalog::embedded())
        .expect("spec")
        .build(registry, "hung")
        .expect("build");
    let mnt = tempfile::tempdir().expect("mnt");
    let mounted = devmig_simfs::mount(host, mnt.path()).expect("mount (root)");
    // A Placement URL nothing listens on: the sync must stop before calling it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .arg("--sysfs-root")
        .arg(mnt.path())
        .args(["--timeout-ms", "300", "placement", "sync", "--node", "c1", "--placement", "http://127.0.0.1:9"])
        .args(["--placement-token-file", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    // Its abandoned read ends only when the tree goes: wait for the exit, then unmount.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        // The main thread has answered once the process is a zombie waiting on that read.
        let state = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
        if state.contains(") Z") {
            drop(mounted);
            break child.wait().expect("wait");
        }
        assert!(Instant::now() < deadline, "the sync did not give up within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = rx.recv_timeout(Duration::from_secs(30)).expect("stderr");
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(text.contains("device mtty/mtty-1 cannot be described now"), "{text}");
    assert!(text.contains("nothing synced"), "{text}");
}

#[test]
fn sync_from_a_fleet_database_covers_every_fresh_host() {
    let lab = placement();
    let dir = tempfile::tempdir().expect("dir");
    let db = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let store = devmig_fleet::Store::open(&db.parse().expect("url"), 1).expect("fleet store");
    let registry = devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded());
    let now = devmig_fleet::now_ms();
    let base = u64::try_from(now).expect("clock") * 1_000_000;
    for i in 0..3 {
        let mut r = devmig_fleet::sim::HostPlan::draw(7, i, 16).report(&registry, "sim", "http://127.0.0.1:9", 1);
        r.generation = base + i as u64;
        store.apply_report(&r, now).expect("report");
    }
    drop(store);
    let nowhere = tempfile::tempdir().expect("no sysfs");
    let plan: Value = serde_json::from_str(&ok(&devmig(
        nowhere.path(),
        &["-o", "json", "placement", "sync", "--dry-run", "--fleet-db", &db],
    )))
    .expect("json");
    let hosts = plan["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 3);
    let mut trees = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let providers = h["providers"].as_object().expect("providers").clone();
        // Host 2 also has an L40S whose two free VFs each offer one vGPU type.
        let want = if i == 2 { 4 } else { 2 };
        assert_eq!(providers.len(), want, "a GPU and an mtty parent (and free L40S VFs): {providers:?}");
        trees.push((nova_tree(&lab, h["node"].as_str().expect("node"), &providers), providers));
    }
    let token = dir.path().join("token");
    std::fs::write(&token, "admin\n").expect("token");
    let out = ok(&devmig(
        nowhere.path(),
        &[
            "placement",
            "sync",
            "--fleet-db",
            &db,
            "--placement",
            &lab.base,
            "--placement-token-file",
            token.to_str().expect("path"),
        ],
    ));
    assert!(out.contains("3 hosts in"), "{out}");
    for (tree, providers) in &trees {
        for (name, uuid) in tree {
            assert!(traits_of(&providers[name]).is_subset(&lab.traits(uuid).0), "{name}");
        }
    }
}
