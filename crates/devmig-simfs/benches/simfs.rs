//! simfs figures: `cargo bench -p devmig-simfs --bench simfs` (needs root).
//!
//! 1. (measured second) One check (read the source's migration_version, write it into the
//!    target's) through a mounted simfs, beside the same syscalls on plain files in tmpfs and
//!    on a mount without busy polling, in the same run: median and p99 of 20,000 each.
//! 2. (measured first, in a fresh process) Building and mounting a host with 1,000 devices: time to the first
//!    successful stat of the tree, and the process's RSS growth.
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use devmig_core::{Checker, DeviceId, SysfsRoot};
use devmig_simfs::spec::EXAMPLE_HOST_A;
use devmig_simfs::{HostSpec, MountOptions, mount, mount_with};
use devmig_vendors::{Catalog, Registry};

const N: usize = 20_000;

fn exchange(src: &Path, dst: &Path) {
    let mut buf = [0u8; 4097];
    let n = File::open(src).and_then(|mut f| f.read(&mut buf)).expect("read");
    let w = OpenOptions::new().write(true).open(dst).and_then(|mut f| f.write(&buf[..n])).expect("write accepted");
    assert_eq!(w, n);
}

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn time(mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..1000 {
        f();
    }
    stats(
        (0..N)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

fn big_spec(vfs: usize) -> String {
    let mut s = String::from(
        "hostname = \"big\"\n[[pci]]\naddress = \"0000:3d:00.0\"\nid = \"144d:a824\"\nclass = \"0x010802\"\ndriver = \"nvme\"\ndriver_version = \"1.4.0\"\n[pci.sriov]\n",
    );
    s.push_str(&format!("total_vfs = {vfs}\n"));
    for i in 1..=vfs {
        let (bus, dev, func) = (0x3d + i / 256, (i % 256) / 8, i % 8);
        s.push_str(&format!(
            "[[pci.sriov.vfs]]\naddress = \"0000:{bus:02x}:{dev:02x}.{func}\"\nid = \"144d:a824\"\nclass = \"0x010802\"\ndriver = \"nvme\"\ndriver_version = \"1.4.0\"\niommu_group = {i}\nparams = {{ remote_storage_url = \"nvme+tcp://s.example/v{i}\" }}\n"
        ));
    }
    s
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let catalog = Catalog::embedded();
    let registry = Registry::new(catalog.clone());

    // 2. a host with 1,000 devices.
    let text = big_spec(999);
    let before = rss_kib();
    let started = Instant::now();
    let spec = HostSpec::from_toml(&text, "big", &catalog).expect("spec");
    let host = spec.build(registry.clone(), "big").expect("build");
    let nodes = host.node_count();
    let mnt = tempfile::tempdir().expect("mountpoint");
    let m = mount(host, mnt.path()).expect("mount");
    std::fs::metadata(mnt.path().join("sys/bus/pci/devices/0000:3d:00.1/vendor")).expect("tree is served");
    let took = started.elapsed();
    let grew = rss_kib().saturating_sub(before);
    println!(
        "host with 1,000 devices ({nodes} nodes): parse + build + mount {took:.1?}, RSS growth {:.1} MiB",
        grew as f64 / 1024.0
    );
    let listed = Checker::new(SysfsRoot::new(mnt.path()), Registry::new(catalog.clone()), Duration::from_secs(5))
        .inventory()
        .expect("inventory");
    println!("  devmig list over it: {} devices", listed.devices.len());
    // lspci -nn over it (pciutils' sysfs backend on the mount), median of 5 runs.
    let lspci = || {
        let t = Instant::now();
        let o = std::process::Command::new("lspci")
            .args(["-A", "linux-sysfs", "-O"])
            .arg(format!("sysfs.path={}/sys/bus/pci", mnt.path().display()))
            .arg("-nn")
            .output()
            .expect("lspci (apt-get install pciutils)");
        assert!(o.status.success(), "lspci: {}", String::from_utf8_lossy(&o.stderr));
        (t.elapsed(), String::from_utf8_lossy(&o.stdout).lines().count())
    };
    let mut runs: Vec<(Duration, usize)> = (0..5).map(|_| lspci()).collect();
    runs.sort();
    println!("  lspci -nn over it: {} functions listed, median {:.1?} (of 5)", runs[2].1, runs[2].0);
    m.unmount().expect("unmount");

    // 1. check through simfs vs tmpfs.
    let mnt = tempfile::tempdir().expect("mountpoint");
    let host =
        HostSpec::from_toml(EXAMPLE_HOST_A, "a", &catalog).expect("spec").build(registry.clone(), "a").expect("build");
    let m = mount(host, mnt.path()).expect("mount (run as root)");
    let src = mnt.path().join("sys/bus/mdev/devices/4b20d080-1b54-4048-85b3-a6a62d165c02/migration_version");
    let dst = mnt.path().join("sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/migration_version");
    let shm = tempfile::tempdir_in("/dev/shm").expect("tmpfs dir");
    let (tsrc, tdst) = (shm.path().join("src"), shm.path().join("dst"));
    std::fs::write(&tsrc, std::fs::read(&src).expect("read")).expect("write");
    std::fs::write(&tdst, "").expect("write");
    let checker = Checker::new(SysfsRoot::new(mnt.path()), registry.clone(), Duration::from_secs(5));
    let (s, t): (DeviceId, DeviceId) =
        ("4b20d080-1b54-4048-85b3-a6a62d165c02".parse().expect("id"), "mtty/mtty-2".parse().expect("id"));
    assert!(checker.check(&s, &t).expect("check").verdict.is_compatible());

    // The same host again, its session threads always sleeping between requests.
    let quiet_mnt = tempfile::tempdir().expect("mountpoint");
    let quiet_host =
        HostSpec::from_toml(EXAMPLE_HOST_A, "a", &catalog).expect("spec").build(registry.clone(), "a").expect("build");
    let quiet = mount_with(quiet_host, quiet_mnt.path(), &MountOptions { busy_poll: false }).expect("mount");
    let (qsrc, qdst) = (quiet_mnt.path().join(src.strip_prefix(mnt.path()).expect("under the mount")), {
        quiet_mnt.path().join(dst.strip_prefix(mnt.path()).expect("under the mount"))
    });

    let tmpfs = time(|| exchange(&tsrc, &tdst));
    let no_poll = time(|| exchange(&qsrc, &qdst));
    quiet.unmount().expect("unmount");
    let simfs = time(|| exchange(&src, &dst));
    let (fsrc, fdst) = (File::open(&src).expect("open"), OpenOptions::new().write(true).open(&dst).expect("open"));
    let open_fds = time(|| {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 4097];
        let n = fsrc.read_at(&mut buf, 0).expect("pread");
        assert_eq!(fdst.write_at(&buf[..n], 0).expect("pwrite"), n);
    });
    let open_close = time(|| {
        drop(File::open(&src).expect("open"));
    });
    let library = time(|| {
        checker.check(&s, &t).expect("check");
    });
    println!("check (read + write), {N} runs each, median / p99:");
    println!("  tmpfs, bare syscalls      {:>8.1?} / {:>8.1?}", tmpfs.0, tmpfs.1);
    println!(
        "  simfs without busy polling, bare syscalls {:>8.1?} / {:>8.1?}   ({:.1}x tmpfs median)",
        no_poll.0,
        no_poll.1,
        no_poll.0.as_secs_f64() / tmpfs.0.as_secs_f64()
    );
    println!(
        "  simfs, bare syscalls      {:>8.1?} / {:>8.1?}   ({:.1}x tmpfs median, {:.2}x without polling)",
        simfs.0,
        simfs.1,
        simfs.0.as_secs_f64() / tmpfs.0.as_secs_f64(),
        simfs.0.as_secs_f64() / no_poll.0.as_secs_f64()
    );
    println!(
        "  simfs, pread+pwrite on open fds {:>8.1?} / {:>8.1?}   (the two round trips alone)",
        open_fds.0, open_fds.1
    );
    println!("  simfs, open+close alone  {:>8.1?} / {:>8.1?}", open_close.0, open_close.1);
    println!(
        "  simfs, devmig check       {:>8.1?} / {:>8.1?}   (also reads the target's own string)",
        library.0, library.1
    );
    drop(checker);
    m.unmount().expect("unmount");
}
