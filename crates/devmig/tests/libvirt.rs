//! `devmig libvirt` as an operator runs it, checked by libvirt itself: the rewritten domain XML
//! passes libvirt's own validation (`virsh define --validate` on its test driver, Debian's
//! `libvirt-clients`) and names exactly the placed targets.
use std::process::Command;

use devmig_api::fleet::{Assignment, Placement, Timings};
use devmig_core::{DeviceKind, Verdict};

mod common;

use common::devmig_with_stdin as devmig;

const SRC_MDEV: &str = "4b20d080-1b54-4048-85b3-a6a62d165c01";
const DST_MDEV: &str = "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0";

fn domain(mdev: &str, vf: (u8, u8, u8)) -> String {
    format!(
        "<domain type='test'>\n  <name>vm1</name>\n  <memory unit='KiB'>1048576</memory>\n  <vcpu>1</vcpu>\n  \
         <os><type arch='x86_64'>hvm</type></os>\n  <devices>\n    \
         <hostdev mode='subsystem' type='mdev' model='vfio-pci'>\n      <source>\n        <address uuid='{mdev}'/>\n      </source>\n    </hostdev>\n    \
         <hostdev mode='subsystem' type='pci' managed='yes'>\n      <source>\n        \
         <address domain='0x0000' bus='0x{:02x}' slot='0x{:02x}' function='0x{:x}'/>\n      </source>\n      \
         <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>\n    </hostdev>\n  </devices>\n</domain>\n",
        vf.0, vf.1, vf.2
    )
}

fn assignment(source: &str, target: &str, kind: DeviceKind, claimed: Option<&str>) -> Assignment {
    Assignment {
        source: source.into(),
        target: target.into(),
        kind,
        verdict: Verdict::Compatible,
        claim_id: claimed.map(|_| "c-1".to_string()),
        claimed_device: claimed.map(str::to_string),
        at_resume: Vec::new(),
    }
}

fn placement(assignments: Vec<Assignment>) -> Placement {
    Placement {
        schema: "devmig.placement/v1".into(),
        placed: true,
        host: Some("hostB".into()),
        url: Some("http://127.0.0.1:9".into()),
        assignments,
        candidate_hosts: 1,
        tried: Vec::new(),
        explanation: None,
        timings: Timings::default(),
    }
}

/// libvirt's verdict on a domain XML: `virsh define --validate` on the test driver.
fn libvirt_accepts(xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("dom.xml");
    std::fs::write(&path, xml).expect("write");
    let o = Command::new("virsh")
        .args(["-c", "test:///default", "define", "--validate"])
        .arg(&path)
        .output()
        .expect("virsh (Debian's libvirt-clients) is installed");
    if o.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
}

#[test]
fn the_rewritten_domain_names_the_placed_targets_and_libvirt_accepts_it() {
    let source = domain(SRC_MDEV, (0x3d, 0x00, 0x1));
    libvirt_accepts(&source).expect("the source domain is valid");
    let p = placement(vec![
        assignment(&format!("hostA:{SRC_MDEV}"), "0000:00:02.0/i915-GVTg_V5_8", DeviceKind::MdevType, Some(DST_MDEV)),
        assignment("hostA:0000:3d:00.1", "0000:5e:00.3", DeviceKind::SriovVf, None),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("placement.json");
    std::fs::write(&file, serde_json::to_string(&p).expect("json")).expect("write");
    let file = file.to_str().expect("path");
    let o = devmig(&["libvirt", "rewrite", "--placement", file], &source);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let dest = String::from_utf8(o.stdout).expect("utf-8");
    libvirt_accepts(&dest).expect("libvirt accepts the destination XML");
    // Only the two source addresses differ.
    let expected = domain(DST_MDEV, (0x5e, 0x00, 0x3))
        .replace(&format!("uuid='{DST_MDEV}'"), &format!("uuid=\"{DST_MDEV}\""))
        .replace(
            "<address domain='0x0000' bus='0x5e' slot='0x00' function='0x3'/>",
            "<address domain=\"0x0000\" bus=\"0x5e\" slot=\"0x00\" function=\"0x3\"/>",
        );
    assert_eq!(dest, expected);
    let listed = devmig(&["-o", "json", "libvirt", "hostdevs"], &dest);
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let devices: Vec<&str> =
        v["hostdevs"].as_array().expect("list").iter().map(|h| h["device"].as_str().expect("id")).collect();
    assert_eq!(devices, [DST_MDEV, "0000:5e:00.3"]);
}

#[test]
fn a_host_device_without_a_target_is_refused_and_nothing_printed() {
    let p = placement(vec![assignment("hostA:0000:3d:00.1", "0000:5e:00.3", DeviceKind::SriovVf, None)]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("placement.json");
    std::fs::write(&file, serde_json::to_string(&p).expect("json")).expect("write");
    let o =
        devmig(&["libvirt", "rewrite", "--placement", file.to_str().expect("path")], &domain(SRC_MDEV, (0x3d, 0, 1)));
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "nothing printed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("hostdev #1 ({SRC_MDEV}) has no target in the placement")), "{err}");
    // A placement that placed nothing, and a file that is not a placement.
    let mut none = p.clone();
    none.placed = false;
    std::fs::write(&file, serde_json::to_string(&none).expect("json")).expect("write");
    let o =
        devmig(&["libvirt", "rewrite", "--placement", file.to_str().expect("path")], &domain(SRC_MDEV, (0x3d, 0, 1)));
    assert!(o.status.code() == Some(2) && String::from_utf8_lossy(&o.stderr).contains("placed nothing"));
    std::fs::write(&file, "{}").expect("write");
    let o = devmig(&["libvirt", "rewrite", "--placement", file.to_str().expect("path")], "<domain/>");
    assert!(o.status.code() == Some(2) && String::from_utf8_lossy(&o.stderr).contains("placement"));
}

/// The XML without its `<driver>` block: libvirt's test driver keeps no driver of its own.
fn without_driver(xml: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in xml.lines() {
        if line.trim() == "<driver>" {
            skip = true;
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
        if line.trim() == "</driver>" {
            skip = false;
        }
    }
    out
}

#[test]
fn node_devices_pass_libvirts_schema_and_round_trip_through_its_test_driver() {
    let root = tempfile::tempdir().expect("root");
    devmig_core::tree::example_host(
        &devmig_core::tree::TreeBuilder::new(root.path()),
        devmig_core::tree::ExampleHost::A,
    )
    .expect("tree");
    let r = root.path().to_str().expect("path");
    let node = devmig(&["--sysfs-root", r, "libvirt", "nodedev", "--node"], "");
    assert_eq!(node.status.code(), Some(0), "{}", String::from_utf8_lossy(&node.stderr));
    let dir = tempfile::tempdir().expect("dir");
    let host = dir.path().join("host.xml");
    std::fs::write(&host, &node.stdout).expect("write");
    let text = String::from_utf8(node.stdout).expect("utf-8");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("<name>").and_then(|n| n.strip_suffix("</name>")))
        .filter(|n| n.starts_with("pci_") || n.starts_with("mdev_"))
        .collect();
    // Host A: the GPU, the sound card, the NVMe PF and two VFs, the QAT PF and VF, two vGPUs of
    // PCI parents (the mtty mdev has a virtual parent: libvirt shows no node device for it).
    assert_eq!(names.len(), 9, "{names:?}");
    assert!(text.contains("<capability type='virt_functions' maxCount='8'>"), "{text}");
    assert!(text.contains("<capability type='phys_function'>") && text.contains("<capability type='mdev_types'>"));
    for name in names {
        let id = if let Some(rest) = name.strip_prefix("mdev_") {
            rest[..36].replace('_', "-")
        } else {
            let a = name.trim_start_matches("pci_");
            format!("{}:{}:{}.{}", &a[0..4], &a[5..7], &a[8..10], &a[11..12])
        };
        let one = devmig(&["--sysfs-root", r, "libvirt", "nodedev", &id], "");
        assert_eq!(one.status.code(), Some(0), "{id}: {}", String::from_utf8_lossy(&one.stderr));
        let ours = String::from_utf8(one.stdout).expect("utf-8");
        // libvirt's schema (virt-xml-validate, Debian's libvirt-clients + libxml2-utils).
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, &ours).expect("write");
        let v = Command::new("virt-xml-validate").arg(&file).arg("nodedev").output().expect("virt-xml-validate");
        assert!(
            v.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&v.stdout),
            String::from_utf8_lossy(&v.stderr)
        );
        // libvirt's test driver reads the node document and dumps each device back the same.
        let url = format!("test://{}", host.display());
        let dumped = Command::new("virsh").args(["-c", &url, "nodedev-dumpxml", name]).output().expect("virsh");
        assert!(dumped.status.success(), "{name}: {}", String::from_utf8_lossy(&dumped.stderr));
        assert_eq!(String::from_utf8_lossy(&dumped.stdout).trim_end(), without_driver(&ours).trim_end(), "{name}");
    }
    // A device libvirt shows no node device for is named.
    let o = devmig(&["--sysfs-root", r, "libvirt", "nodedev", devmig_core::tree::example_uuids::A_MTTY], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("libvirt shows no node device for it"));
}
