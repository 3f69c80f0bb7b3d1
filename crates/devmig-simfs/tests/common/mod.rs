//! Mount fixtures: each test mounts on its own temp dir and unmounts on drop, even when it panics.
#![allow(dead_code)]
use std::time::Duration;

use devmig_core::{Checker, DeviceId, SysfsRoot};
use devmig_simfs::{HostSpec, Mounted, mount};
use devmig_vendors::{Catalog, Registry};

pub struct Lab {
    pub mounted: Mounted,
    pub checker: Checker,
    _dir: tempfile::TempDir,
}

pub fn spec(text: &str) -> HostSpec {
    HostSpec::from_toml(text, "test", &Catalog::embedded()).expect("valid spec")
}

/// Mounts `text` as a host; sysfs operations time out after `timeout`.
pub fn mount_spec(text: &str, timeout: Duration) -> Lab {
    assert!(nix_is_root(), "simfs tests mount FUSE and must run as root (CI does)");
    let dir = tempfile::Builder::new().prefix("devmig-simfs-test-").tempdir().expect("mountpoint");
    let host = spec(text).build(Registry::new(Catalog::embedded()), "test").expect("build");
    let mounted = mount(host, dir.path()).expect("mount");
    let checker = Checker::new(SysfsRoot::new(dir.path()), Registry::new(Catalog::embedded()), timeout);
    Lab { mounted, checker, _dir: dir }
}

pub fn host_a() -> Lab {
    mount_spec(devmig_simfs::spec::EXAMPLE_HOST_A, Duration::from_secs(5))
}

pub fn host_b() -> Lab {
    mount_spec(devmig_simfs::spec::EXAMPLE_HOST_B, Duration::from_secs(5))
}

pub fn id(s: &str) -> DeviceId {
    s.parse().expect("id")
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Reads the version of `src` on `a` and has `b` judge it, as a cross-host check does.
pub fn cross(a: &Lab, b: &Lab, src: &str, dst: &str) -> devmig_core::CheckReport {
    let v = a.checker.version(&id(src)).expect("version");
    let version = v.side.version.unwrap_or_else(|| panic!("{src} has no version: {:?}", v.reason));
    b.checker.check_version(&version, &id(dst)).expect("check")
}

pub fn codes(r: &devmig_core::CheckReport) -> Vec<&str> {
    r.reasons.iter().map(|x| x.code.as_str()).collect()
}

/// Every node of a host's tree below the root, links not followed, as (path, inode, kind, name).
pub fn walk(h: &devmig_simfs::Host) -> Vec<(String, u64, devmig_simfs::host::Kind, String)> {
    let mut out = Vec::new();
    let mut todo = vec![(devmig_simfs::nodes::ROOT, String::new())];
    while let Some((dir, prefix)) = todo.pop() {
        for (ino, kind, name) in h.readdir(dir).expect("readdir") {
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if kind == devmig_simfs::host::Kind::Dir {
                todo.push((ino, format!("{path}/")));
            }
            out.push((path, ino, kind, name));
        }
    }
    out
}
