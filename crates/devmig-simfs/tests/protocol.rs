//! The protocol end to end across two mounted hosts, for every vendor model.
mod common;

use common::{codes, cross, host_a, host_b, id};
use devmig_core::{MigrationSupport, Provenance, Verdict};

use devmig_core::tree::example_uuids::{
    A_MTTY, A_QAT, A_VGPU, B_MTTY, B_VGPU_EIGHTH as B_EIGHTH, B_VGPU_HALF as B_HALF,
};

#[test]
fn every_model_through_the_kernel_write_path() {
    let (a, b) = (host_a(), host_b());
    let inv = a.checker.inventory().expect("inventory");
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let vgpu = inv.get(&id(A_VGPU)).expect("vgpu discovered through FUSE");
    assert_eq!(vgpu.migration.support, MigrationSupport::Kernel);

    let r = cross(&a, &b, A_VGPU, B_HALF);
    assert_eq!((r.verdict, r.to.source), (Verdict::Compatible, Some(Provenance::Kernel)), "{r:?}");
    let r = cross(&a, &b, A_VGPU, B_EIGHTH);
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert_eq!(r.reasons[0].code, "target_rejected");
    assert_eq!(r.reasons[0].errno_name.as_deref(), Some("EINVAL"), "the driver's errno");
    assert!(codes(&r).contains(&"i915.share"), "the model says why: {:?}", codes(&r));
    assert_eq!(cross(&a, &b, A_VGPU, "0000:00:02.0/i915-GVTg_V5_2").verdict, Verdict::Compatible);
    assert!(codes(&cross(&b, &a, B_HALF, A_VGPU)).contains(&"i915.gvt_version_minor"));

    assert_eq!(cross(&a, &b, "0000:3d:00.1", "0000:3d:00.1").verdict, Verdict::Compatible);
    assert!(codes(&cross(&a, &b, "0000:3d:00.1", "0000:3d:00.2")).contains(&"nvme.storage_url"));
    assert_eq!(cross(&a, &b, A_QAT, "0000:6b:00.1").verdict, Verdict::Compatible, "hybrid mdev -> VF");
    assert!(codes(&cross(&a, &b, A_MTTY, B_MTTY)).contains(&"mtty.ports"));
    assert_eq!(cross(&a, &b, A_MTTY, "mtty/mtty-2").verdict, Verdict::Identical);
    assert_eq!(a.checker.check(&id(A_VGPU), &id(A_VGPU)).expect("check").verdict, Verdict::Identical);
}

#[test]
fn missing_and_unsupported_attributes() {
    let (a, b) = (host_a(), host_b());
    // 0000:5e:00.2 has no attribute: the model decides (userspace adapter).
    let r = cross(&a, &b, "0000:3d:00.1", "0000:5e:00.2");
    assert_eq!(r.to.source, Some(Provenance::Model));
    assert_eq!(r.verdict, Verdict::Compatible, "catalog edge a824 -> a825: {r:?}");
    // 0000:5e:00.3 has the attribute, but its driver answers ENODEV.
    let r = cross(&a, &b, "0000:3d:00.1", "0000:5e:00.3");
    assert_eq!(
        (r.verdict, r.reasons[0].code.as_str(), r.reasons[0].errno_name.as_deref()),
        (Verdict::Incompatible, "target_unsupported", Some("ENODEV"))
    );
    let v = b.checker.version(&id("0000:5e:00.3")).expect("version");
    assert_eq!(v.reason.map(|r| r.code), Some("source_read_failed".to_string()));
    // A device no model knows has no attribute at all.
    let r = a.checker.check(&id("0000:3d:00.1"), &id("0000:00:1f.3")).expect("check");
    assert_eq!(codes(&r), ["target_unsupported"]);
}

#[test]
fn a_device_whose_discovery_does_not_finish_is_an_error_never_a_verdict() {
    let lab =
        common::mount_spec(&devmig_testkit::hung_mtty_spec("name", "read"), std::time::Duration::from_millis(300));
    let c = &lab.checker;
    let v = c.version(&id("mtty/mtty-1")).expect("version");
    assert!(v.transient && v.side.version.is_none(), "{v:?}");
    assert_eq!(v.reason.as_ref().map(|r| r.code.as_str()), Some("discovery_incomplete"));
    // As a source and as a target: error, not incompatible.
    let r = c.check(&id("mtty/mtty-1"), &id("mtty/mtty-1")).expect("check");
    assert_eq!(r.verdict, Verdict::Error, "{r:?}");
    let r = c.check_version("mtty-v1-0.1.0-mtty-1", &id("mtty/mtty-1")).expect("check");
    assert_eq!(r.verdict, Verdict::Error, "{r:?}");
    // Its operation is still stuck in the kernel: listing it is an error, or says "unknown".
    match c.device(&id("mtty/mtty-1")) {
        Ok(d) => assert_eq!(d.migration.support, MigrationSupport::Unknown),
        Err(e) => assert!(
            matches!(e, devmig_core::CoreError::Io { failure: devmig_core::IoFailure::DeviceStuck, .. }),
            "{e:?}"
        ),
    }
}

#[test]
fn step_b_writes_the_target_once_whatever_the_verdict() {
    let (a, b) = (host_a(), host_b());
    let writes = |lab: &common::Lab, device: &str| lab.mounted.host().version_writes(device);
    let gvt_2 = "0000:00:02.0/i915-GVTg_V5_2";
    for (target, verdict) in
        [(B_HALF, Verdict::Compatible), (B_EIGHTH, Verdict::Incompatible), (gvt_2, Verdict::Compatible)]
    {
        let before = writes(&b, target);
        let r = cross(&a, &b, A_VGPU, target);
        assert_eq!(r.verdict, verdict, "{r:?}");
        assert_eq!(writes(&b, target) - before, 1, "{target}: one write(2) per check ({verdict:?})");
    }
    // A check between two local devices: the source is read, the target written once.
    let (half, eighth) = (writes(&b, B_HALF), writes(&b, B_EIGHTH));
    let r = b.checker.check(&id(B_HALF), &id(B_EIGHTH)).expect("check");
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert!(codes(&r).contains(&"i915.share"), "the refusal still carries the model's reasons: {r:?}");
    assert_eq!((writes(&b, B_HALF) - half, writes(&b, B_EIGHTH) - eighth), (0, 1));
    // A model-decided target (no attribute) and a driver that answers ENODEV: never more than one.
    let r = cross(&a, &b, "0000:3d:00.1", "0000:5e:00.3");
    assert_eq!(r.reasons[0].code, "target_unsupported");
    assert_eq!(writes(&b, "0000:5e:00.3"), 1);
}
