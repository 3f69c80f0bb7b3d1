//! Standard tools see an emulated host as a real one: lspci (pciutils) and mdevctl.
//! Both must be installed (`.ci/run` installs them); a missing tool fails the test.
mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::host_a;

fn run(tool: &str, hint: &str, cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{tool} could not run ({e}); install it: {hint}"))
}

fn lspci(root: &Path, args: &[&str]) -> (String, String) {
    let o = run(
        "lspci",
        "apt-get install pciutils",
        Command::new("lspci")
            .arg("-A")
            .arg("linux-sysfs")
            .arg("-O")
            .arg(format!("sysfs.path={}/sys/bus/pci", root.display()))
            .args(args),
    );
    assert!(o.status.success(), "lspci {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Warnings lspci prints, minus the one this machine causes by itself: with no
/// /lib/modules/<release>, libkmod cannot load (lspci says so against the real /sys too).
fn warnings(stderr: &str) -> Vec<&str> {
    let no_modules = !Path::new("/lib/modules").join(uname_r()).exists();
    stderr.lines().filter(|l| !(no_modules && l.contains("Unable to load libkmod resources"))).collect()
}

fn uname_r() -> String {
    String::from_utf8_lossy(&Command::new("uname").arg("-r").output().expect("uname").stdout).trim().to_string()
}

#[test]
fn lspci_lists_the_emulated_devices() {
    let lab = host_a();
    let root = lab.mounted.path();
    let (plain, err) = lspci(root, &[]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert_eq!(plain.lines().count(), 7, "{plain}");
    let (nn, err) = lspci(root, &["-nn"]);
    assert!(warnings(&err).is_empty(), "{err}");
    for needle in [
        "00:02.0 VGA compatible controller [0300]",
        "[8086:591d] (rev 04)",
        "3d:00.1 Non-Volatile memory controller [0108]",
        "[144d:a824]",
        "6b:00.1 Co-processor [0b40]",
        "[8086:4941]",
    ] {
        assert!(nn.contains(needle), "{needle} missing from:\n{nn}");
    }
    let (v, err) = lspci(root, &["-v", "-s", "3d:00.1"]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(v.contains("Kernel driver in use: nvme") && v.contains("IOMMU group 11"), "{v}");
    let (vmm, err) = lspci(root, &["-vmm", "-s", "00:02.0"]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(vmm.contains("Slot:\t00:02.0") && vmm.contains("Rev:\t04") && vmm.contains("IOMMUGroup:\t0"), "{vmm}");
    let (x, err) = lspci(root, &["-x", "-s", "00:02.0"]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(x.contains("00: 86 80 1d 59"), "config space dump: {x}");
}

fn mdevctl(root: &Path, args: &[&str]) -> Output {
    run(
        "mdevctl",
        "apt-get install python3-docutils && cargo install mdevctl --version 1.4.0 --locked",
        Command::new("mdevctl").args(args).env("MDEVCTL_ENV_ROOT", root).env("RUST_BACKTRACE", "0"),
    )
}

#[test]
fn mdevctl_lists_types_and_starts_and_stops_mdevs() {
    let lab = host_a();
    let root = lab.mounted.path();
    let o = mdevctl(root, &["types", "--dumpjson"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // mdevctl's shape: [{"<parent>": [{"<type>": {"available_instances": N, ...}}]}]
    let types: serde_json::Value = serde_json::from_slice(&o.stdout).expect("mdevctl JSON");
    let gpu = types.as_array().and_then(|a| a.iter().find_map(|p| p.get("0000:00:02.0"))).expect("GPU parent listed");
    let v5_8 = gpu.as_array().and_then(|a| a.iter().find_map(|t| t.get("i915-GVTg_V5_8"))).expect("type listed");
    assert_eq!(v5_8["available_instances"], 4);
    assert_eq!(v5_8["device_api"], "vfio-pci");
    let list = |root: &Path| String::from_utf8_lossy(&mdevctl(root, &["list"]).stdout).into_owned();
    assert!(list(root).contains("4b20d080-1b54-4048-85b3-a6a62d165c02 mtty mtty-2"));
    let uuid = "11111111-2222-4333-8444-555555555555";
    let o = mdevctl(root, &["start", "-u", uuid, "-p", "mtty", "-t", "mtty-1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(list(root).contains(&format!("{uuid} mtty mtty-1")));
    assert!(
        root.join("sys/bus/mdev/devices").join(uuid).join("migration_version").exists(),
        "a started mdev is migratable"
    );
    let o = mdevctl(root, &["stop", "-u", uuid]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!list(root).contains(uuid));
}
