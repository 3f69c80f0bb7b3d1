//! `check` through the library against a tmpfs tree, beside the bare syscalls
//! on the same files in the same run (target: library <= 1.2x bare).
//!
//! The bare baseline does what the protocol needs and nothing more: open,
//! read, close the source; open, read, close the target (its own version,
//! to tell identical from compatible); open, write, close the target.
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use devmig_core::tree::{PciSpec, TreeBuilder};
use devmig_core::{Checker, DeviceId, SysfsRoot, Verdict};
use devmig_vendors::{Catalog, Registry};

fn bare(src: &Path, dst: &Path) -> bool {
    let mut buf = [0u8; 8192];
    let n = File::open(src).and_then(|mut f| f.read(&mut buf)).expect("read source");
    let version = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]).to_vec();
    let mut own = [0u8; 8192];
    let m = File::open(dst).and_then(|mut f| f.read(&mut own)).expect("read target");
    let w = OpenOptions::new().write(true).open(dst).and_then(|mut f| f.write(&version)).expect("write target");
    w == version.len() && own[..m].starts_with(&version)
}

fn check(c: &mut Criterion) {
    let base = Path::new("/dev/shm");
    let dir = if base.is_dir() { tempfile::tempdir_in(base) } else { tempfile::tempdir() }.expect("tempdir");
    let b = TreeBuilder::new(dir.path());
    let v = "acme-v1-8086-591d-1.2.0";
    for addr in ["0000:01:00.0", "0000:02:00.0"] {
        b.pci(&PciSpec { migration_version: Some(v), ..PciSpec::new(addr, 0x1234, 1, 0x020000) }).expect("device");
    }
    let checker = Checker::new(SysfsRoot::new(dir.path()), Registry::new(Catalog::embedded()), Duration::from_secs(5));
    let (s, t): (DeviceId, DeviceId) = ("0000:01:00.0".parse().expect("id"), "0000:02:00.0".parse().expect("id"));
    let src = dir.path().join("sys/bus/pci/devices/0000:01:00.0/migration_version");
    let dst = dir.path().join("sys/bus/pci/devices/0000:02:00.0/migration_version");
    assert_eq!(checker.check(&s, &t).expect("check").verdict, Verdict::Identical);
    assert!(bare(&src, &dst));

    let mut g = c.benchmark_group("check_tmpfs");
    g.bench_function("bare_syscalls", |bch| bch.iter(|| bare(black_box(&src), black_box(&dst))));
    g.bench_function("library_check", |bch| bch.iter(|| checker.check(black_box(&s), black_box(&t))));
    g.bench_function("library_check_version", |bch| bch.iter(|| checker.check_version(black_box(v), black_box(&t))));
    g.bench_function("pool_handoff_only", |bch| bch.iter(|| checker.io().run(|| black_box(1))));
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
