//! `devmig vms`: a VM's devices from its domain XML, their versions from this host's sysfs, and
//! with a fleet database the hosts step a admits for all of them, or why none.
use devmig_core::tree::example_uuids::{A_MTTY, A_VGPU};
use devmig_core::tree::{ExampleHost, TreeBuilder, example_host};
use serde_json::Value;

mod common;

use common::devmig_at as devmig;

fn domain(name: &str, hostdevs: &str) -> String {
    format!(
        "<domain type='kvm'>\n  <name>{name}</name>\n  <uuid>6F3E4A52-5B0E-4C7A-9D2B-0C1F5A6E7D80</uuid>\n  <devices>\n{hostdevs}  </devices>\n</domain>\n"
    )
}

fn mdev(uuid: &str) -> String {
    format!(
        "    <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{uuid}'/></source></hostdev>\n"
    )
}

fn vf(bus: u8, function: u8) -> String {
    format!(
        "    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='{bus:#04x}' slot='0x00' function='{function:#x}'/></source></hostdev>\n"
    )
}

#[test]
fn each_vm_gets_its_devices_and_a_fleet_verdict() {
    let root = tempfile::tempdir().expect("root");
    example_host(&TreeBuilder::new(root.path()), ExampleHost::A).expect("tree");
    let dir = tempfile::tempdir().expect("dir");
    // A fleet of simulated hosts: free mtty instances (the mtty VM fits), vGPUs of quarter and
    // eighth shares only (A's half-GPU vGPU fits none), NVMe VFs on other storage (nor does the VF).
    let db = format!("sqlite:{}", dir.path().join("fleet.db").display());
    let store = devmig_fleet::Store::open(&db.parse().expect("url"), 1).expect("store");
    let registry = devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded());
    let now = devmig_fleet::now_ms();
    for i in 0..6 {
        let mut r = devmig_fleet::sim::HostPlan::draw(7, i, 16).report(&registry, "sim", "http://127.0.0.1:9", 1);
        r.generation = u64::try_from(now).expect("clock") * 1_000_000 + i as u64;
        store.apply_report(&r, now).expect("report");
    }
    drop(store);
    let files = [
        ("vgpu.xml", domain("vm-vgpu", &mdev(A_VGPU))),
        ("mtty.xml", domain("vm-mtty", &mdev(A_MTTY))),
        ("vf.xml", domain("vm-vf", &vf(0x3d, 1))),
        ("plain.xml", domain("vm-plain", "")),
        ("gone.xml", domain("vm-gone", &vf(0x77, 0))),
    ];
    let mut paths = Vec::new();
    for (name, xml) in &files {
        let p = dir.path().join(name);
        std::fs::write(&p, xml).expect("write");
        paths.push(p.to_str().expect("path").to_string());
    }
    let mut args = vec!["-o", "json", "vms", "--fleet-db", db.as_str()];
    args.extend(paths.iter().map(String::as_str));
    let o = devmig(root.path(), &args);
    assert_eq!(o.status.code(), Some(1), "a VM that cannot migrate exits 1: {}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let vms = v["vms"].as_array().expect("vms");
    let by = |name: &str| vms.iter().find(|m| m["name"] == name).expect(name).clone();
    let vgpu = by("vm-vgpu");
    assert_eq!(vgpu["uuid"], "6f3e4a52-5b0e-4c7a-9d2b-0c1f5a6e7d80");
    assert_eq!(vgpu["devices"][0]["device"], A_VGPU);
    assert!(vgpu["devices"][0]["version"].as_str().is_some_and(|s| s.starts_with("i915-")), "{vgpu}");
    assert_eq!(vgpu["verdict"], "not_migratable", "{vgpu}");
    assert!(vgpu["why"].as_str().is_some_and(|w| w.contains("claimed or has no free instance")), "{vgpu}");
    let mtty = by("vm-mtty");
    assert_eq!(mtty["verdict"], "migratable", "{mtty}");
    assert!(mtty["hosts"].as_u64().is_some_and(|n| n >= 1), "{mtty}");
    let vf = by("vm-vf");
    assert_eq!((vf["verdict"].as_str(), vf["hosts"].as_u64()), (Some("not_migratable"), Some(0)), "{vf}");
    assert!(vf["why"].as_str().is_some_and(|w| w.contains("storage_url")), "{vf}");
    assert_eq!(by("vm-plain")["verdict"], "no_devices");
    let gone = by("vm-gone");
    assert_eq!(gone["verdict"], "unreadable", "{gone}");
    assert!(gone["devices"][0]["error"].as_str().is_some_and(|e| e.contains("0000:77:00.0")), "{gone}");
    // Without a fleet: the devices and versions alone; with the host excluded nothing changes here.
    let o = devmig(root.path(), &["vms", paths[1].as_str()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.code() == Some(0) && text.contains("give --fleet-db for a verdict"), "{text}");
    // Not a domain: named.
    std::fs::write(dir.path().join("bad.xml"), "<domain><devices>").expect("write");
    let bad = dir.path().join("bad.xml");
    let o = devmig(root.path(), &["vms", bad.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.xml"));
}

#[test]
fn domains_come_from_a_libvirt_connection() {
    let root = tempfile::tempdir().expect("root");
    example_host(&TreeBuilder::new(root.path()), ExampleHost::A).expect("tree");
    // libvirt's test driver, loaded with one domain that assigns host A's vGPU.
    let dir = tempfile::tempdir().expect("dir");
    let node = dir.path().join("node.xml");
    let dom = domain("vm-a", &mdev(A_VGPU)).replace(
        "<domain type='kvm'>",
        "<domain type='test'>\n  <memory>1048576</memory>\n  <os><type>hvm</type></os>",
    );
    std::fs::write(&node, format!("<node>\n{dom}</node>\n")).expect("write");
    let uri = format!("test://{}", node.display());
    let o = devmig(root.path(), &["-o", "json", "vms", "--connect", &uri]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    let vm = &v["vms"][0];
    assert_eq!((vm["name"].as_str(), vm["verdict"].as_str()), (Some("vm-a"), Some("unknown")), "{v}");
    assert_eq!(vm["devices"][0]["device"], A_VGPU);
    assert!(vm["devices"][0]["version"].as_str().is_some_and(|s| s.starts_with("i915-")), "{v}");
    // A connection virsh cannot open is an error naming it.
    let o = devmig(root.path(), &["vms", "--connect", "test:///nonexistent/file.xml"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("virsh -c test:///nonexistent/file.xml"));
}
