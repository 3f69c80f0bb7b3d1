//! sysfs write semantics through a mounted simfs, with real syscalls.
mod common;

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{host_a, host_b, id, mount_spec};
use devmig_core::Verdict;

use devmig_core::tree::example_uuids::A_VGPU;

fn errno_of(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).expect("read")
}

#[test]
fn each_write_is_judged_alone_whatever_the_offset_or_mode() {
    let (a, b) = (host_a(), host_b());
    let src = read(&a.mounted.path().join(format!("sys/bus/mdev/devices/{A_VGPU}/migration_version")));
    assert!(src.ends_with('\n') && src.starts_with("i915-v1.2.0-"), "show() appends a newline: {src:?}");
    let half = b.mounted.path().join("sys/bus/mdev/devices/9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a01/migration_version");
    let eighth = b.mounted.path().join("sys/bus/mdev/devices/9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a02/migration_version");

    // `cat src > dst` round-trips: sysfs_streq ignores one trailing newline; `>` truncates first (O_TRUNC).
    let sh = |cmd: String| Command::new("bash").arg("-c").arg(cmd).output().expect("bash");
    let ok = sh(format!("/usr/bin/printf '%s' '{src}' > '{}'", half.display()));
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = sh(format!("/usr/bin/printf '%s' '{src}' > '{}'", eighth.display()));
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("Invalid argument"));
    // `>>` (O_APPEND) and pwrite at an offset land the same.
    assert!(sh(format!("/usr/bin/printf '%s' '{src}' >> '{}'", half.display())).status.success());
    let f = OpenOptions::new().write(true).open(&half).expect("open");
    assert_eq!(f.write_at(src.trim_end().as_bytes(), 100).expect("pwrite at 100"), src.trim_end().len());
    assert_eq!(
        errno_of(OpenOptions::new().write(true).open(&eighth).expect("open").write_at(src.as_bytes(), 7)),
        Some(libc::EINVAL)
    );
    // A second write(2) on the same open file is judged alone too.
    let mut f = OpenOptions::new().write(true).open(&half).expect("open");
    assert!(f.write(b"garbage").is_err());
    assert_eq!(f.write(src.as_bytes()).expect("then a good one"), src.len());

    // Input past 4096 bytes is cut (no E2BIG): the driver sees 4096 and rejects them.
    let mut big = src.trim_end().as_bytes().to_vec();
    big.resize(5000, b'x');
    let n = OpenOptions::new().write(true).open(&half).expect("open").write(&big);
    assert_eq!(errno_of(n), Some(libc::EINVAL));
    // Reading stays correct after all that (no stale cache, nothing stored by the writes).
    assert!(read(&half).starts_with("i915-v1.3.0-8086-591d-i915-GVTg_V5_8-4"));
}

#[test]
fn read_only_and_write_only_files_refuse_the_other_direction() {
    let a = host_a();
    let dev = a.mounted.path().join("sys/bus/pci/devices/0000:00:02.0");
    assert_eq!(errno_of(OpenOptions::new().write(true).open(dev.join("vendor"))), Some(libc::EACCES));
    let ty = a.mounted.path().join("sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_8");
    assert_eq!(errno_of(fs::File::open(ty.join("create"))), Some(libc::EACCES));
    assert_eq!(errno_of(OpenOptions::new().write(true).open(ty.join("available_instances"))), Some(libc::EACCES));
    assert_eq!(read(&dev.join("vendor")), "0x8086\n");
    let mut config = Vec::new();
    fs::File::open(dev.join("config")).expect("config").read_to_end(&mut config).expect("read");
    assert_eq!(&config[..4], &[0x86, 0x80, 0x1d, 0x59], "config space starts with the ids");
}

#[test]
fn create_and_remove_mdevs_with_available_instances_following() {
    let a = host_a();
    let root = a.mounted.path();
    let ty = root.join("sys/class/mdev_bus/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_8");
    let avail = || read(&ty.join("available_instances")).trim().parse::<u32>().expect("number");
    // Host A's vGPU holds half the GPU: four eighths are left.
    assert_eq!(avail(), 4);
    let u = "0fd6c4a2-8a3e-4c2b-9d5e-6f7a8b9c0d1e";
    let create = |uuid: &str| {
        OpenOptions::new().write(true).open(ty.join("create")).and_then(|mut f| f.write(format!("{uuid}\n").as_bytes()))
    };
    create(u).expect("create");
    assert_eq!(avail(), 3, "never stale");
    let mdev = root.join(format!("sys/bus/mdev/devices/{u}"));
    assert!(mdev.join("mdev_type").exists());
    assert_eq!(
        fs::read_link(mdev.join("mdev_type")).expect("link"),
        Path::new("../mdev_supported_types/i915-GVTg_V5_8")
    );
    assert!(ty.join("devices").join(u).exists());
    assert_eq!(errno_of(create(u)), Some(libc::EEXIST));
    assert_eq!(errno_of(create("not-a-uuid")), Some(libc::EINVAL));
    for i in 0..3 {
        create(&format!("0fd6c4a2-8a3e-4c2b-9d5e-6f7a8b9c0d2{i}")).expect("fill");
    }
    assert_eq!(avail(), 0);
    assert_eq!(errno_of(create("0fd6c4a2-8a3e-4c2b-9d5e-6f7a8b9c0d30")), Some(libc::EUSERS), "no instance left");
    // The new mdev is a working migration target.
    let v = a.checker.version(&id(A_VGPU)).expect("v").side.version.expect("version");
    let r = a.checker.check_version(&v, &id(u)).expect("check");
    assert_eq!(r.verdict, Verdict::Incompatible, "an eighth is not half");
    fs::write(mdev.join("aggregator"), "4").expect_err("aggregator 4 needs room the full GPU does not have");
    // remove parses like kstrtoul(buf, 0), as on Linux 6.1: junk is EINVAL, "0" does nothing,
    // any other number removes.
    let remove = |data: &[u8]| OpenOptions::new().write(true).open(mdev.join("remove")).and_then(|mut f| f.write(data));
    for junk in [&b"garbage"[..], b" 1", b"-1", b"1x"] {
        assert_eq!(errno_of(remove(junk)), Some(libc::EINVAL), "{:?}", String::from_utf8_lossy(junk));
    }
    remove(b"0\n").expect("0 is taken");
    assert!(mdev.exists(), "0 removes nothing");
    remove(b"0x1").expect("remove");
    assert!(!mdev.exists());
    assert!(!ty.join("devices").join(u).exists());
    assert_eq!(avail(), 1);
}

const FAULTY: &str = r#"
hostname = "faulty"
[[pci]]
address = "0000:3d:00.0"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
driver_version = "1.4.0"
[pci.sriov]
total_vfs = 4
[[pci.sriov.vfs]]
address = "0000:3d:00.1"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
driver_version = "1.4.0"
params = { remote_storage_url = "nvme+tcp://s.example/a" }
[[pci.sriov.vfs]]
address = "0000:3d:00.2"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
driver_version = "1.4.0"
params = { remote_storage_url = "nvme+tcp://s.example/a" }
[[pci.sriov.vfs]]
address = "0000:3d:00.3"
id = "144d:a824"
class = "0x010802"
driver = "nvme"
driver_version = "1.4.0"
params = { remote_storage_url = "nvme+tcp://s.example/a" }

[[fault]]
device = "0000:3d:00.1"
attribute = "migration_version"
op = "read"
error = "EIO"

[[fault]]
device = "0000:3d:00.2"
attribute = "migration_version"
op = "write"
hang = true

[[fault]]
device = "0000:3d:00.3"
attribute = "migration_version"
op = "write"
delay_ms = 50
"#;

#[test]
fn faults_give_errors_timeouts_and_delays_never_compatible() {
    let lab = mount_spec(FAULTY, Duration::from_millis(500));
    let c = &lab.checker;
    // Read error on the source.
    let r = c.check(&id("0000:3d:00.1"), &id("0000:3d:00.3")).expect("check");
    assert_eq!(
        (r.verdict, r.reasons[0].code.as_str(), r.reasons[0].errno_name.as_deref()),
        (Verdict::Incompatible, "source_read_failed", Some("EIO"))
    );
    let v = c.version(&id("0000:3d:00.3")).expect("v").side.version.expect("version");
    // A slow driver answers late, inside the timeout.
    assert_eq!(c.check_version(&v, &id("0000:3d:00.3")).expect("check").verdict, Verdict::Identical);
    // A hung driver: devmig's timeout gives `error`, never `compatible`.
    let started = std::time::Instant::now();
    let r = c.check_version(&v, &id("0000:3d:00.2")).expect("check");
    assert_eq!((r.verdict, r.reasons[0].code.as_str()), (Verdict::Error, "timeout"));
    assert!(started.elapsed() < Duration::from_secs(3));
    // Unmounting releases the hung request; the fixture's drop must not hang either.
}

#[test]
fn cached_reads_never_show_a_written_string_or_an_old_aggregate() {
    let (a, b) = (host_a(), host_b());
    let src = read(&a.mounted.path().join(format!("sys/bus/mdev/devices/{A_VGPU}/migration_version")));
    let half_dir = b.mounted.path().join("sys/bus/mdev/devices/9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a01");
    let eighth_dir = b.mounted.path().join("sys/bus/mdev/devices/9a0cbbb8-6f4a-4b5e-8f32-0c1d2e3f4a02");
    let own = read(&half_dir.join("migration_version"));
    assert_ne!(own, src);
    // Read (cached), written with another string (accepted), read again: still its own string.
    fs::write(half_dir.join("migration_version"), &src).expect("accepted");
    assert_eq!(read(&half_dir.join("migration_version")), own);
    let opened = fs::File::open(half_dir.join("migration_version")).expect("open");
    let mut again = String::new();
    (&opened).read_to_string(&mut again).expect("read");
    assert_eq!(again, own);
    // A new aggregate changes the version string, and the next read shows it at once (twice,
    // so the new content is the cached one too).
    let before = read(&eighth_dir.join("migration_version"));
    fs::write(eighth_dir.join("aggregator"), "2").expect("room for a second eighth");
    let after = read(&eighth_dir.join("migration_version"));
    assert_ne!(after, before, "the old aggregate was served from the cache");
    assert_eq!(read(&eighth_dir.join("migration_version")), after);
    assert_eq!(read(&eighth_dir.join("aggregator")), "2\n");
    fs::write(eighth_dir.join("aggregator"), "1").expect("back to one");
    assert_eq!(read(&eighth_dir.join("migration_version")), before);
}

/// What Linux 6.1 showed for mtty in the test VM (kernel/vm, probe-mtty.txt), through FUSE.
#[test]
fn mtty_shows_and_answers_what_linux_6_1_does() {
    let a = host_a();
    let sys = a.mounted.path().join("sys");
    let mtty = sys.join("devices/virtual/mtty/mtty");
    let types = mtty.join("mdev_supported_types");
    assert_eq!(read(&types.join("mtty-2/name")), "Dual port serial\n");
    assert!(!types.join("mtty-2/description").exists(), "6.1's mtty has no show_description");
    assert_eq!(
        fs::read_link(sys.join("class/mtty/mtty")).expect("class link"),
        Path::new("../../devices/virtual/mtty/mtty")
    );
    // sysfs has no mkdir, rmdir, unlink or create.
    assert_eq!(errno_of(fs::create_dir(mtty.join("new"))), Some(libc::EPERM));
    assert_eq!(errno_of(fs::remove_dir(types.join("mtty-2/devices"))), Some(libc::EPERM));
    assert_eq!(errno_of(fs::remove_file(types.join("mtty-2/name"))), Some(libc::EPERM));
    assert_eq!(errno_of(fs::File::create(mtty.join("newfile"))), Some(libc::EACCES));
    // create reads 36 characters of a 36- or 37-byte write.
    let create = |data: &str| {
        OpenOptions::new().write(true).open(types.join("mtty-2/create")).and_then(|mut f| f.write(data.as_bytes()))
    };
    create("c0ffee00-0000-4000-8000-0000000000a2x").expect("a 37th character is ignored");
    assert_eq!(errno_of(create("c0ffee00-0000-4000-8000-0000000000a3xy")), Some(libc::EINVAL));
    let mdev = sys.join("bus/mdev/devices/c0ffee00-0000-4000-8000-0000000000a2");
    assert_eq!(read(&mdev.join("uevent")), "DRIVER=mtty\n");
    assert_eq!(read(&mdev.join("vendor/sample_mdev_dev")), "This is MDEV c0ffee00-0000-4000-8000-0000000000a2\n");
    assert!(!mdev.join("aggregator").exists(), "mtty does not aggregate");
    assert!(fs::read_link(mdev.join("driver")).expect("driver").ends_with("bus/mdev/drivers/mtty"));
    let group = fs::canonicalize(mdev.join("iommu_group")).expect("group");
    assert_eq!(read(&group.join("name")), "vfio-noiommu\n");
    assert_eq!(
        fs::canonicalize(group.join("devices/c0ffee00-0000-4000-8000-0000000000a2")).ok(),
        fs::canonicalize(&mdev).ok()
    );
    // uevent takes an action; bind is not emulated; drivers_autoprobe keeps what was written.
    fs::write(mdev.join("uevent"), "change\n").expect("an action");
    assert_eq!(errno_of(fs::write(mdev.join("uevent"), "bogus")), Some(libc::EINVAL));
    assert_eq!(errno_of(fs::write(sys.join("bus/mdev/drivers/mtty/bind"), "x")), Some(libc::EOPNOTSUPP));
    fs::write(sys.join("bus/mdev/drivers_autoprobe"), "0").expect("autoprobe off");
    assert_eq!(read(&sys.join("bus/mdev/drivers_autoprobe")), "0\n");
    // A full parent answers what mtty's probe answers.
    let mut n = 0;
    let full = loop {
        match create(&format!("c0ffee00-0000-4000-8000-0000000001{n:02x}")) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 24, "24 ports hold at most 12 dual-port mdevs");
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
}
