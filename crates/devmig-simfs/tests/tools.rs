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

/// Runs `script` with bash in a private mount namespace whose /sys is the emulated tree, for
/// tools that have no root option. This machine has no kernel module tree (/lib/modules), so
/// modprobe, which driverctl runs, fails for every module; in the namespace an overlay on
/// /usr/lib gives it an index saying vfio-pci is built in, as on a kernel with VFIO_PCI=y.
fn in_namespace(root: &Path, script: &str) -> Output {
    let prelude = r#"set -e
mount --bind "$1/sys" /sys
r=$(uname -r)
if [ ! -d "/lib/modules/$r" ]; then
    t=$(mktemp -d)
    mkdir -p "$t/up/modules/$r" "$t/work"
    : > "$t/up/modules/$r/modules.dep"
    echo kernel/drivers/vfio/pci/vfio-pci.ko > "$t/up/modules/$r/modules.builtin"
    mount -t overlay overlay -o "lowerdir=/usr/lib,upperdir=$t/up,workdir=$t/work" /usr/lib
    depmod 2>/dev/null
fi
set +e
"#;
    run(
        "unshare",
        "apt-get install util-linux kmod",
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash", "-c", &format!("{prelude}{script}"), "ns"])
            .arg(root),
    )
}

fn text(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// host-a's NVMe PF (spec: total_vfs 8, two VFs listed at offset 1, stride 1, device a824,
/// the default link gen 3 x4) as `lspci -vv` decodes its config space.
#[test]
fn lspci_vv_decodes_the_capabilities_the_spec_gives() {
    let lab = host_a();
    let root = lab.mounted.path();
    let (pf, err) = lspci(root, &["-vv", "-s", "3d:00.0"]);
    assert!(warnings(&err).is_empty(), "{err}");
    for needle in [
        "Control: I/O- Mem+ BusMaster+",
        "Status: Cap+",
        "Capabilities: [40] Power Management version 3",
        "Capabilities: [50] MSI-X: Enable+ Count=16",
        "Capabilities: [60] Express (v2) Endpoint",
        "LnkCap:\tPort #0, Speed 8GT/s, Width x4",
        "LnkSta:\tSpeed 8GT/s, Width x4",
        "Capabilities: [100 v1] Single Root I/O Virtualization (SR-IOV)",
        "IOVCtl:\tEnable+",
        "Initial VFs: 8, Total VFs: 8, Number of VFs: 2",
        "VF offset: 1, stride: 1, Device ID: a824",
        "Kernel driver in use: nvme",
        "IOMMU group: 10",
    ] {
        assert!(pf.contains(needle), "{needle:?} missing from:\n{pf}");
    }
    let (vf, err) = lspci(root, &["-vv", "-s", "3d:00.1"]);
    assert!(warnings(&err).is_empty(), "{err}");
    assert!(vf.contains("Express (v2) Endpoint") && !vf.contains("SR-IOV"), "{vf}");
    assert!(vf.contains("IOMMU group: 11") && vf.contains("Kernel driver in use: nvme"), "{vf}");
}

fn setpci(root: &Path, args: &[&str]) -> String {
    let o = run(
        "setpci",
        "apt-get install pciutils",
        Command::new("setpci")
            .args(["-A", "linux-sysfs", "-O"])
            .arg(format!("sysfs.path={}/sys/bus/pci", root.display()))
            .args(args),
    );
    text(&o).trim().to_string()
}

#[test]
fn setpci_reads_and_writes_command_and_finds_the_capabilities() {
    let lab = host_a();
    let root = lab.mounted.path();
    // A bound function decodes memory and masters the bus.
    assert_eq!(setpci(root, &["-s", "3d:00.1", "COMMAND"]), "0006");
    setpci(root, &["-s", "3d:00.1", "COMMAND=0x0002"]);
    assert_eq!(setpci(root, &["-s", "3d:00.1", "COMMAND"]), "0002");
    let config = std::fs::read(root.join("sys/bus/pci/devices/0000:3d:00.1/config")).expect("config");
    assert_eq!((config.len(), config[4], config[5]), (4096, 0x02, 0x00), "the write landed at its offset");
    // Read-only registers keep their value.
    setpci(root, &["-s", "3d:00.1", "VENDOR_ID=0x1234"]);
    assert_eq!(setpci(root, &["-s", "3d:00.0", "VENDOR_ID"]), "144d");
    // LnkSta: speed 3 (8 GT/s), width 4; SR-IOV NumVFs follows sriov_numvfs.
    assert_eq!(setpci(root, &["-s", "3d:00.0", "CAP_EXP+0x12.w"]), "0043");
    assert_eq!(setpci(root, &["-s", "3d:00.0", "ECAP_SRIOV+0x10.w"]), "0002");
    std::fs::write(root.join("sys/bus/pci/devices/0000:3d:00.0/sriov_numvfs"), "0").expect("disable VFs");
    assert_eq!(setpci(root, &["-s", "3d:00.0", "ECAP_SRIOV+0x10.w"]), "0000");
    assert_eq!(setpci(root, &["-s", "3d:00.0", "ECAP_SRIOV+0x08.w"]), "0000", "VF Enable off");
}

fn write(path: &Path, data: &str) -> Result<(), i32> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| e.raw_os_error().unwrap_or(0))?;
    f.write_all(data.as_bytes()).map_err(|e| e.raw_os_error().unwrap_or(0))
}

#[test]
fn sriov_numvfs_creates_and_removes_vfs_as_the_kernel_does() {
    let lab = host_a();
    let root = lab.mounted.path();
    let pf = root.join("sys/bus/pci/devices/0000:3d:00.0");
    let numvfs = pf.join("sriov_numvfs");
    let meta = std::fs::metadata(&numvfs).expect("numvfs");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o644);
    // Linux 6.1's answers (kernel/vm, target/vm/patched/probe.sriov).
    assert_eq!(write(&numvfs, "9"), Err(libc::ERANGE), "above sriov_totalvfs 8");
    assert_eq!(write(&numvfs, "1"), Err(libc::EBUSY), "VFs already enabled");
    assert_eq!(write(&numvfs, "x"), Err(libc::EINVAL));
    assert_eq!(write(&numvfs, "2"), Ok(()), "the count it has is a no-op");
    write(&numvfs, "0").expect("disable");
    let vf1 = root.join("sys/bus/pci/devices/0000:3d:00.1");
    assert!(!vf1.exists() && !pf.join("virtfn0").exists());
    assert!(!root.join("sys/kernel/iommu_groups/11").exists(), "a VF's group goes with it");
    let (nn, _) = lspci(root, &["-n"]);
    assert_eq!(nn.lines().count(), 5, "{nn}");
    write(&numvfs, "3").expect("enable 3");
    assert_eq!(std::fs::read_to_string(&numvfs).expect("read"), "3\n");
    for (i, addr) in ["0000:3d:00.1", "0000:3d:00.2", "0000:3d:00.3"].iter().enumerate() {
        let link = std::fs::read_link(pf.join(format!("virtfn{i}"))).expect("virtfn");
        assert_eq!(link, Path::new("..").join(addr));
        let vf = root.join("sys/bus/pci/devices").join(addr);
        assert_eq!(std::fs::read_link(vf.join("physfn")).expect("physfn"), Path::new("../0000:3d:00.0"));
        // Autoprobe on: the VF driver (the spec's first VF's, nvme) binds each.
        let drv = std::fs::read_link(vf.join("driver")).expect("bound");
        assert!(drv.ends_with("bus/pci/drivers/nvme"), "{drv:?}");
        assert_eq!(std::fs::read_to_string(vf.join("device")).expect("device"), "0xa824\n");
        assert!(std::fs::read_to_string(vf.join("uevent")).expect("uevent").starts_with("DRIVER=nvme\n"));
    }
    // The third VF had no spec of its own: it copies the last one's ids and driver, not its
    // parameters; its IOMMU group is the lowest free number.
    let third = root.join("sys/bus/pci/devices/0000:3d:00.3");
    assert!(!third.join("remote_storage_url").exists());
    let group = std::fs::read_link(third.join("iommu_group")).expect("group");
    let n: u32 = group.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).expect("number");
    assert!(root.join(format!("sys/kernel/iommu_groups/{n}/devices/0000:3d:00.3")).exists());
    // With autoprobe off, new VFs stay unbound.
    write(&numvfs, "0").expect("disable");
    write(&pf.join("sriov_drivers_autoprobe"), "0").expect("autoprobe off");
    write(&numvfs, "1").expect("enable 1");
    assert!(!vf1.join("driver").exists());
    assert_eq!(std::fs::read_to_string(vf1.join("enable")).expect("enable"), "0\n");
}

#[test]
fn driverctl_moves_a_vf_to_vfio_pci_and_back() {
    let lab = host_a();
    let root = lab.mounted.path();
    let vf = root.join("sys/bus/pci/devices/0000:3d:00.1");
    let o = in_namespace(
        root,
        "driverctl list-devices && driverctl --nosave set-override 0000:3d:00.1 vfio-pci && \
         echo --- && driverctl list-overrides",
    );
    let out = text(&o);
    let (devices, overrides) = out.split_once("---\n").expect("two lists");
    // Every function of the spec, with the driver it names.
    for line in ["0000:00:02.0 i915", "0000:3d:00.1 nvme", "0000:6b:00.1 4xxxvf", "0000:00:1f.3 snd_hda_intel"] {
        assert!(devices.lines().any(|l| l == line), "{line:?} missing from:\n{devices}");
    }
    assert_eq!(overrides.trim(), "0000:3d:00.1 vfio-pci");
    assert!(std::fs::read_link(vf.join("driver")).expect("bound").ends_with("bus/pci/drivers/vfio-pci"));
    assert_eq!(std::fs::read_to_string(vf.join("driver_override")).expect("override"), "vfio-pci\n");
    assert!(std::fs::read_to_string(vf.join("uevent")).expect("uevent").starts_with("DRIVER=vfio-pci\n"));
    assert!(root.join("sys/bus/pci/drivers/vfio-pci/0000:3d:00.1").exists());
    assert!(!root.join("sys/bus/pci/drivers/nvme/0000:3d:00.1").exists());
    let out =
        text(&in_namespace(root, "driverctl --nosave unset-override 0000:3d:00.1 && driverctl list-overrides || true"));
    assert!(!out.contains("0000:3d:00.1"), "{out}");
    assert!(std::fs::read_link(vf.join("driver")).expect("rebound").ends_with("bus/pci/drivers/nvme"));
    assert_eq!(std::fs::read_to_string(vf.join("driver_override")).expect("override"), "(null)\n");
}

#[test]
fn binding_answers_as_the_driver_core_does() {
    let lab = host_a();
    let root = lab.mounted.path();
    let vfio = root.join("sys/bus/pci/drivers/vfio-pci");
    let nvme = root.join("sys/bus/pci/drivers/nvme");
    assert_eq!(write(&vfio.join("bind"), "0000:3d:00.2"), Err(libc::ENODEV), "no id, no override: no match");
    assert_eq!(write(&nvme.join("bind"), "0000:3d:00.2"), Err(libc::EBUSY), "already bound");
    assert_eq!(write(&vfio.join("unbind"), "0000:3d:00.2"), Err(libc::ENODEV), "not bound to it");
    assert_eq!(write(&vfio.join("new_id"), "144d"), Err(libc::EINVAL), "one field");
    assert_eq!(write(&nvme.join("new_id"), "144d a824"), Err(libc::EEXIST), "in nvme's own table");
    write(&nvme.join("unbind"), "0000:3d:00.2\n").expect("unbind");
    assert_eq!(std::fs::read_to_string(root.join("sys/bus/pci/devices/0000:3d:00.2/enable")).expect("enable"), "0\n");
    // new_id binds the unbound functions it matches at once.
    write(&vfio.join("new_id"), "144d a824").expect("new_id");
    assert!(vfio.join("0000:3d:00.2").exists());
    write(&vfio.join("remove_id"), "144d a824").expect("remove_id");
    assert_eq!(write(&vfio.join("remove_id"), "144d a824"), Err(libc::ENODEV));
    assert_eq!(write(&root.join("sys/bus/pci/drivers_probe"), "0000:99:00.0"), Err(libc::ENODEV));
    // `udevadm trigger` writes an action to a device's uevent; anything else is EINVAL.
    let uevent = root.join("sys/bus/pci/devices/0000:3d:00.2/uevent");
    assert_eq!(write(&uevent, "change\n"), Ok(()));
    assert_eq!(write(&uevent, "bogus\n"), Err(libc::EINVAL));
    // Unbinding a PF disables its VFs, as its driver's remove() does.
    write(&nvme.join("unbind"), "0000:3d:00.0").expect("unbind PF");
    assert!(!root.join("sys/bus/pci/devices/0000:3d:00.1").exists());
    let numvfs = root.join("sys/bus/pci/devices/0000:3d:00.0/sriov_numvfs");
    assert_eq!(write(&numvfs, "1"), Err(libc::ENOENT), "no PF driver to configure SR-IOV");
    write(&root.join("sys/bus/pci/drivers_probe"), "0000:3d:00.0").expect("probe");
    write(&numvfs, "1").expect("PF driver back");
}

#[test]
fn lshw_shows_every_function_with_its_driver() {
    let lab = host_a();
    let root = lab.mounted.path();
    let o = in_namespace(
        root,
        "lshw -json -quiet -disable dmi -disable spd -disable memory -disable cpuinfo -disable cpuid \
         -disable network -disable ide -disable scsi -disable usb",
    );
    let json: serde_json::Value = serde_json::from_str(&text(&o)).expect("lshw JSON");
    let mut found = std::collections::BTreeMap::new();
    let mut stack = vec![&json];
    while let Some(node) = stack.pop() {
        if let Some(bus) = node.get("businfo").and_then(|b| b.as_str()).and_then(|b| b.strip_prefix("pci@")) {
            let driver = node.pointer("/configuration/driver").and_then(|d| d.as_str()).unwrap_or("");
            found.insert(bus.to_string(), driver.to_string());
        }
        stack.extend(node.get("children").and_then(|c| c.as_array()).into_iter().flatten());
    }
    let spec = common::spec(devmig_simfs::spec::EXAMPLE_HOST_A);
    let mut want = std::collections::BTreeMap::new();
    for d in &spec.pci {
        want.insert(d.address.clone(), d.driver.clone().unwrap_or_default());
        for vf in d.sriov.iter().flat_map(|s| s.vfs.iter()) {
            want.insert(vf.address.clone(), vf.driver.clone().unwrap_or_default());
        }
    }
    assert_eq!(found, want);
}

#[test]
fn systool_lists_the_pci_bus_with_each_functions_attributes() {
    let lab = host_a();
    let root = lab.mounted.path();
    let out = text(&in_namespace(root, "systool -b pci -v"));
    let spec = common::spec(devmig_simfs::spec::EXAMPLE_HOST_A);
    for d in &spec.pci {
        let (vendor, device) = d.id.split_once(':').expect("id");
        let bus = &d.address[..7];
        let block = out
            .split("\n\n")
            .find(|b| b.contains(&format!("Device path = \"/sys/devices/pci{bus}/{}\"", d.address)))
            .unwrap_or_else(|| panic!("{} missing from:\n{out}", d.address));
        for attr in [
            format!("vendor              = \"0x{vendor}\""),
            format!("device              = \"0x{device}\""),
            format!("class               = \"{}\"", d.class),
            "driver_override     = \"(null)\"".to_string(),
            "numa_node           = \"-1\"".to_string(),
        ] {
            assert!(block.contains(&attr), "{attr} missing from:\n{block}");
        }
        if let Some(drv) = &d.driver {
            assert!(block.contains(&format!("DRIVER={drv}\n")), "uevent of {} lacks DRIVER={drv}", d.address);
        }
    }
}

/// A spec may enable more VFs than it lists: the others copy the last listed one (ids, driver,
/// no parameters) and take the lowest free IOMMU groups, as VFs a write enables do.
#[test]
fn a_spec_enabling_more_vfs_than_it_lists_lays_out_the_rest_like_a_write() {
    let spec = r#"
hostname = "more"
[[pci]]
address = "0000:3d:00.0"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
iommu_group = 0
[pci.sriov]
total_vfs = 4
enabled = 3
[[pci.sriov.vfs]]
address = "0000:3d:00.1"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
iommu_group = 5
params = { remote_storage_url = "nvme+tcp://s.example/a" }
"#;
    let lab = common::mount_spec(spec, std::time::Duration::from_secs(5));
    let root = lab.mounted.path();
    let group = |vf: &str| {
        let l = std::fs::read_link(root.join("sys/bus/pci/devices").join(vf).join("iommu_group")).expect("group");
        l.file_name().and_then(|n| n.to_str()).map(str::to_string).expect("name")
    };
    assert_eq!(
        (group("0000:3d:00.1"), group("0000:3d:00.2"), group("0000:3d:00.3")),
        ("5".into(), "1".into(), "2".into())
    );
    let third = root.join("sys/bus/pci/devices/0000:3d:00.3");
    assert!(!third.join("remote_storage_url").exists());
    assert!(std::fs::read_link(third.join("driver")).expect("driver").ends_with("bus/pci/drivers/nvme"));
    assert_eq!(std::fs::read_to_string(root.join("sys/bus/pci/devices/0000:3d:00.0/sriov_numvfs")).expect("n"), "3\n");
}
