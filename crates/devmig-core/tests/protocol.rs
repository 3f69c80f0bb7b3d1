//! The protocol end to end on plain-file trees: the adapter path across two
//! hosts, and every way the kernel path can fail, with real syscalls.
mod common;

use std::time::Duration;

use common::{empty_host, host, id};
use devmig_core::tree::{ExampleHost, PciSpec, example_uuids::*};
use devmig_core::{CoreError, Provenance, Verdict};

fn codes(r: &devmig_core::CheckReport) -> Vec<&str> {
    r.reasons.iter().map(|x| x.code.as_str()).collect()
}

/// Reads the source on host A and has host B judge it, as a cross-host check does.
fn cross(a: &common::Host, b: &common::Host, src: &str, dst: &str) -> devmig_core::CheckReport {
    let v = a.checker.version(&id(src)).expect("version");
    let version = v.side.version.unwrap_or_else(|| panic!("{src} has no version: {:?}", v.reason));
    b.checker.check_version(&version, &id(dst)).expect("check")
}

#[test]
fn every_model_decides_across_two_hosts() {
    let (a, b) = (host(ExampleHost::A), host(ExampleHost::B));
    // GVT-g: V5_4 x2 (half a GPU) -> V5_8 x4 (half) on a newer minor driver.
    let r = cross(&a, &b, A_VGPU, B_VGPU_HALF);
    assert_eq!(r.verdict, Verdict::Compatible, "{r:?}");
    assert_eq!((r.to.source, r.to.model.as_deref()), (Some(Provenance::Model), Some("i915")));
    assert!(r.checks.iter().all(|c| c.passed) && r.checks.len() == 4);
    let r = cross(&a, &b, A_VGPU, B_VGPU_EIGHTH);
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["i915.share"]));
    // ... and to a type node before the target exists.
    assert_eq!(cross(&a, &b, A_VGPU, "0000:00:02.0/i915-GVTg_V5_2").verdict, Verdict::Compatible);
    // Directional: B's newer minor version does not go back to A.
    let r = cross(&b, &a, B_VGPU_HALF, A_VGPU);
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["i915.gvt_version_minor"]));

    // NVMe: the same storage spelled differently is the same; other storage is not.
    assert_eq!(cross(&a, &b, "0000:3d:00.1", "0000:3d:00.1").verdict, Verdict::Compatible);
    let r = cross(&a, &b, "0000:3d:00.1", "0000:3d:00.2");
    assert_eq!(codes(&r), ["nvme.storage_url"]);
    let reason = &r.reasons[0];
    assert!(
        reason.source_value.as_deref().is_some_and(|v| v.contains("storage1"))
            && reason.target_value.as_deref().is_some_and(|v| v.contains("storage2"))
    );

    // QAT hybrid: a SIOV mdev on A to a VF on B, whose crypto set is a superset.
    assert_eq!(cross(&a, &b, A_QAT, "0000:6b:00.1").verdict, Verdict::Compatible);
    let r = cross(&b, &a, "0000:6b:00.1", "0000:6b:00.1");
    // 1.2.3 -> 1.2.0 differs only in bugfix, which the rule ignores; the crypto set decides.
    assert_eq!(codes(&r), ["qat.crypto_superset"]);

    // mtty: ports must match.
    assert_eq!(codes(&cross(&a, &b, A_MTTY, B_MTTY)), ["mtty.ports"]);
    assert_eq!(cross(&a, &b, A_MTTY, "mtty/mtty-2").verdict, Verdict::Identical, "same module version, same type");
}

#[test]
fn identical_and_unsupported() {
    let a = host(ExampleHost::A);
    let r = a.checker.check(&id(A_VGPU), &id(A_VGPU)).expect("check");
    assert_eq!(r.verdict, Verdict::Identical);
    let r = a.checker.check(&id("0000:00:1f.3"), &id("0000:3d:00.1")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["source_unsupported"]));
    let r = a.checker.check(&id("0000:3d:00.1"), &id("0000:00:1f.3")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["target_unsupported"]));
    // A PF is not a migration target, even with a model that knows its driver.
    let r = a.checker.check(&id("0000:3d:00.1"), &id("0000:3d:00.0")).expect("check");
    assert_eq!(r.verdict, Verdict::Incompatible);
    let r = a.checker.check(&id(A_VGPU), &id("0000:3d:00.1")).expect("check");
    assert_eq!(codes(&r), ["vendor_mismatch"]);
    let r = a.checker.check(&id("0000:00:02.0/i915-GVTg_V5_4"), &id("0000:00:02.0/i915-GVTg_V5_8")).expect("check");
    assert!(codes(&r).contains(&"type_mismatch") || r.verdict == Verdict::Incompatible);
}

fn kernel_pair(h: &common::Host, src: Option<&str>) {
    let b = h.builder();
    b.pci(&PciSpec { migration_version: src, ..PciSpec::new("0000:01:00.0", 0x1234, 1, 0x020000) }).expect("src");
    b.pci(&PciSpec { migration_version: Some("acme-v1-old"), ..PciSpec::new("0000:02:00.0", 0x1234, 1, 0x020000) })
        .expect("dst");
}

fn attr(h: &common::Host, addr: &str) -> std::path::PathBuf {
    h.dir.path().join(format!("sys/devices/pci0000:{}/{addr}/migration_version", &addr[5..7]))
}

#[test]
fn kernel_write_is_one_write_of_the_bare_string() {
    let h = empty_host(Duration::from_secs(5));
    kernel_pair(&h, Some("acme-v1-new"));
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!(
        (r.verdict, r.from.source, r.to.source),
        (Verdict::Compatible, Some(Provenance::Kernel), Some(Provenance::Kernel))
    );
    // A plain file shows what one write(2) put there: the bare string at offset 0, no newline.
    std::fs::write(attr(&h, "0000:02:00.0"), "").expect("empty the target");
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!(r.verdict, Verdict::Compatible);
    assert_eq!(std::fs::read_to_string(attr(&h, "0000:02:00.0")).expect("read"), "acme-v1-new");
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!(r.verdict, Verdict::Identical);
}

#[test]
fn kernel_failures_are_incompatible_or_error_never_compatible() {
    let h = empty_host(Duration::from_millis(300));
    kernel_pair(&h, Some("acme-v1-new"));
    let dst = attr(&h, "0000:02:00.0");

    // The driver refuses the write: /dev/full fails every write(2) with ENOSPC.
    std::fs::remove_file(&dst).expect("rm");
    std::os::unix::fs::symlink("/dev/full", &dst).expect("link");
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert_eq!((r.reasons[0].code.as_str(), r.reasons[0].errno_name.as_deref()), ("target_rejected", Some("ENOSPC")));
    std::fs::remove_file(&dst).expect("rm");

    // A directory where the attribute should be is no attribute at all.
    std::fs::create_dir(&dst).expect("mkdir");
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["target_unsupported"]));
    std::fs::remove_dir(&dst).expect("rmdir");

    // The target's attribute is a FIFO with no reader: open(2) blocks, the check times out.
    mkfifo(&dst);
    let started = std::time::Instant::now();
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Error, vec!["timeout"]));
    assert!(started.elapsed() < Duration::from_secs(5));
    // Meanwhile the device answers at once that an operation on it is stuck.
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!(r.verdict, Verdict::Error, "{r:?}");
    release(&dst);
    until_unstuck(&h);

    // The source's read fails: /proc/self/mem at offset 0 answers EIO.
    let src = attr(&h, "0000:01:00.0");
    std::fs::remove_file(&src).expect("rm");
    std::os::unix::fs::symlink("/proc/self/mem", &src).expect("link");
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["source_read_failed"]));
    assert_eq!(r.reasons[0].errno_name.as_deref(), Some("EIO"));
    std::fs::remove_file(&src).expect("rm");

    // The source's attribute hangs too.
    mkfifo(&src);
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Error, vec!["timeout"]));
    release(&src);
}

#[test]
fn unusable_source_strings_are_rejected_before_any_write() {
    let h = empty_host(Duration::from_secs(5));
    let long = "a".repeat(5000);
    kernel_pair(&h, Some(&long));
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["source_version_invalid"]));
    let dst = attr(&h, "0000:02:00.0");
    for bad in ["", "caf\u{e9}", "tab\there", &"b".repeat(4096)] {
        assert!(
            matches!(h.checker.check_version(bad, &id("0000:02:00.0")), Err(CoreError::InvalidVersion(_))),
            "{bad:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&dst).expect("read"), "acme-v1-old\n", "nothing was written");
    assert!(
        h.checker.check_version(&"c".repeat(4095), &id("0000:02:00.0")).is_ok(),
        "4095 bytes is the limit, inclusive"
    );
}

#[test]
fn missing_source_attribute_without_model_is_source_unsupported() {
    let h = empty_host(Duration::from_secs(5));
    kernel_pair(&h, None);
    let r = h.checker.check(&id("0000:01:00.0"), &id("0000:02:00.0")).expect("check");
    assert_eq!((r.verdict, codes(&r)), (Verdict::Incompatible, vec!["source_unsupported"]));
}

#[test]
fn match_prefilters_then_verifies() {
    let (a, b) = (host(ExampleHost::A), host(ExampleHost::B));
    let v = a.checker.version(&id(A_VGPU)).expect("version").side.version.expect("v");
    let m = b.checker.match_version(&v).expect("match");
    let accepted: Vec<&str> = m.accepted().map(|c| c.device.as_str()).collect();
    assert_eq!(
        accepted,
        ["0000:00:02.0/i915-GVTg_V5_2", "0000:00:02.0/i915-GVTg_V5_4", "0000:00:02.0/i915-GVTg_V5_8", B_VGPU_HALF]
    );
    let eighth = m.candidates.iter().find(|c| c.device == B_VGPU_EIGHTH).expect("listed");
    assert_eq!((eighth.step_a.as_str(), eighth.unmet[0].constraint.attr()), ("excluded", "i915.shares"));
    let nvme = m.candidates.iter().find(|c| c.device == "0000:3d:00.1").expect("listed");
    assert_eq!(nvme.unmet[0].constraint.attr(), "model");
    // Soundness on this lab: nothing step a excluded is accepted by step b.
    for c in m.candidates.iter().filter(|c| c.step_a == devmig_core::StepA::Excluded) {
        let r = b.checker.check_version(&v, &id(&c.device)).expect("check");
        assert!(!r.verdict.is_compatible(), "{} excluded but accepted", c.device);
    }
}

fn mkfifo(path: &std::path::Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Opens the FIFO read-write without blocking so a stuck worker's open returns.
/// Waits (bounded) until no device has a stuck operation (the kernel returned).
fn until_unstuck(h: &common::Host) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !h.checker.io().stuck_devices().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the stuck device never recovered");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn release(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path);
}
