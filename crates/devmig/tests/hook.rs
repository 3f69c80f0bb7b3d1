//! `devmig libvirt hook` as libvirt runs it on a destination: a real agent over a mounted simfs
//! host holds the claims `<domain uuid>.<n>`; the hook rewrites the incoming domain XML to the
//! claimed targets after checking each again, and cancels (nonzero) what it cannot map.
use std::process::{Command, Stdio};
use std::time::Duration;

use devmig_core::tree::example_uuids::{A_VGPU, B_VGPU_HALF};
use devmig_simfs::{HostSpec, mount};
use devmig_vendors::{Catalog, Registry};

mod common;

use common::devmig_with_stdin as run;

const ADMIN: &str = "admin-secret-0123456789";
const VM: &str = "6f3e4a52-5b0e-4c7a-9d2b-0c1f5a6e7d80";

fn domain(uuid: &str) -> String {
    format!(
        "<domain type='test'>\n  <name>vm1</name>\n  <uuid>{uuid}</uuid>\n  <memory>1048576</memory>\n  \
         <os><type>hvm</type></os>\n  <devices>\n    \
         <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{A_VGPU}'/></source></hostdev>\n    \
         <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x3d' slot='0x00' function='0x1'/></source></hostdev>\n  \
         </devices>\n</domain>\n"
    )
}

#[test]
fn the_hook_points_the_incoming_domain_at_its_claims_and_cancels_what_it_cannot_map() {
    let spec = HostSpec::from_toml(devmig_simfs::spec::EXAMPLE_HOST_B, "b", &Catalog::embedded()).expect("spec");
    let mnt = tempfile::tempdir().expect("mnt");
    let mounted =
        mount(spec.build(Registry::new(Catalog::embedded()), "b").expect("build"), mnt.path()).expect("mount (root)");
    let dir = tempfile::tempdir().expect("dir");
    let (tokens, secret) = (dir.path().join("tokens.toml"), dir.path().join("secret"));
    devmig_testkit::write_token_file(&tokens, &[("libvirt", "admin", None, ADMIN)]);
    devmig_testkit::write_secret_file(&secret, ADMIN);
    let mut agent = Command::new(env!("CARGO_BIN_EXE_devmig"));
    agent
        .arg("--sysfs-root")
        .arg(mounted.path())
        .args(["agent", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tokens)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stderr(Stdio::null());
    let (mut child, line) = common::spawn_until_first_line(&mut agent, Duration::from_secs(30));
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("url").to_string();
    let secret = secret.to_str().expect("path");
    let remote = ["--agent", url.as_str(), "--token-file", secret];
    let version = |device: &str| {
        let o = run(&[&remote[..], &["version", device]].concat(), "");
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).expect("utf-8").trim().to_string()
    };
    // The fleet's claims for the VM, in hostdev order: #0 the vGPU, #1 the VF (on host B, its
    // own devices' strings stand in for the source's).
    for (n, target) in [(0, B_VGPU_HALF), (1, "0000:3d:00.2")] {
        let v = version(target);
        let id = format!("{VM}.{n}");
        let o = run(
            &[
                &remote[..],
                &["claim", url.as_str(), "--version", &v, "--migration-id", &id, "--device", target, "--ttl", "600"],
            ]
            .concat(),
            "",
        );
        assert_eq!(o.status.code(), Some(0), "claim {id}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let hook = |op: &str, xml: &str| run(&[&remote[..], &["libvirt", "hook", "vm1", op, "begin", "-"]].concat(), xml);

    let o = hook("migrate", &domain(VM));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let dest = String::from_utf8(o.stdout).expect("utf-8");
    assert!(
        dest.contains(&format!("uuid=\"{B_VGPU_HALF}\""))
            && dest.contains("bus=\"0x3d\" slot=\"0x00\" function=\"0x2\""),
        "{dest}"
    );
    let file = dir.path().join("dest.xml");
    std::fs::write(&file, &dest).expect("write");
    let v = Command::new("virsh")
        .args(["-c", "test:///default", "define", "--validate"])
        .arg(&file)
        .output()
        .expect("virsh");
    assert!(v.status.success(), "libvirt refuses the hook's XML: {}", String::from_utf8_lossy(&v.stderr));

    // Other operations print nothing; a domain devmig placed nothing for passes unchanged.
    let o = hook("start", &domain(VM));
    assert!(o.status.success() && o.stdout.is_empty());
    let other = domain("0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
    let o = hook("migrate", &other);
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stdout).into_owned()), (Some(0), other));
    // A hostdev without its claim cancels the migration, naming it.
    let three = domain(VM).replace(
        "  </devices>",
        "    <hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x5e' slot='0x00' function='0x2'/></source></hostdev>\n  </devices>",
    );
    let o = hook("migrate", &three);
    assert_ne!(o.status.code(), Some(0));
    assert!(o.stdout.is_empty(), "nothing for libvirt to use");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("hostdev #3 (0000:5e:00.2) has no claim {VM}.2")),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Without --agent the hook cannot see claims, and says so.
    let o = run(&["libvirt", "hook", "vm1", "migrate", "begin", "-"], &domain(VM));
    assert_eq!(o.status.code(), Some(2));
    let _ = child.kill();
    let _ = child.wait();
}
