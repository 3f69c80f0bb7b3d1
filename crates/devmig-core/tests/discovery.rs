//! Discovery against kernel-shaped trees built in temp dirs.
mod common;

use common::{empty_host, host, id};
use devmig_core::tree::{ExampleHost, PciSpec, example_uuids::*};
use devmig_core::{CoreError, DeviceKind, MigrationSupport};
use std::time::Duration;

#[test]
fn finds_every_kind_of_device_with_its_relations() {
    let h = host(ExampleHost::A);
    let inv = h.checker.inventory().expect("inventory");
    assert!(inv.problems.is_empty(), "{:?}", inv.problems);
    let gpu = inv.get(&id("0000:00:02.0")).expect("gpu");
    assert_eq!(gpu.kind, DeviceKind::Pci);
    let pci = gpu.pci.as_ref().expect("ids");
    assert_eq!(
        (pci.id.as_str(), pci.class.as_deref(), pci.revision.as_deref()),
        ("8086:591d", Some("0x030000"), Some("0x04"))
    );
    assert_eq!(pci.subsystem_id.as_deref(), Some("8086:2212"));
    assert_eq!(
        (gpu.driver.as_deref(), gpu.driver_module.as_deref(), gpu.driver_version.as_deref()),
        (Some("i915"), Some("i915"), Some("1.2.0"))
    );
    assert_eq!(gpu.iommu_group, Some(0));
    assert_eq!(gpu.mdev_types, ["i915-GVTg_V5_1", "i915-GVTg_V5_2", "i915-GVTg_V5_4", "i915-GVTg_V5_8"]);

    let pf = inv.get(&id("0000:3d:00.0")).expect("pf");
    assert_eq!(pf.kind, DeviceKind::SriovPf);
    let sriov = pf.sriov.as_ref().expect("sriov");
    assert_eq!(
        (sriov.total_vfs, sriov.num_vfs, sriov.vfs.as_slice()),
        (8, 2, &["0000:3d:00.1".to_string(), "0000:3d:00.2".to_string()][..])
    );
    let vf = inv.get(&id("0000:3d:00.1")).expect("vf");
    assert_eq!((vf.kind, vf.physfn.as_deref()), (DeviceKind::SriovVf, Some("0000:3d:00.0")));
    assert_eq!((vf.migration.support, vf.migration.model.as_deref()), (MigrationSupport::Model, Some("nvme")));

    let ty = inv.get(&id("0000:00:02.0/i915-GVTg_V5_4")).expect("type");
    assert_eq!(
        (ty.kind, ty.available_instances, ty.device_api.as_deref()),
        (DeviceKind::MdevType, Some(4), Some("vfio-pci"))
    );
    let vgpu = inv.get(&id(A_VGPU)).expect("mdev");
    assert_eq!(
        (vgpu.parent.as_deref(), vgpu.mdev_type.as_deref(), vgpu.aggregator),
        (Some("0000:00:02.0"), Some("i915-GVTg_V5_4"), Some(2))
    );
    assert_eq!(vgpu.migration.support, MigrationSupport::Model);

    // mtty's parent is virtual: its class names the module.
    let mtty = inv.get(&id(A_MTTY)).expect("mtty");
    assert_eq!((mtty.driver.as_deref(), mtty.driver_version.as_deref()), (Some("mtty"), Some("0.1")));
    assert_eq!(
        inv.mdev_parents.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["0000:00:02.0", "0000:6b:00.0", "mtty"]
    );

    let audio = inv.get(&id("0000:00:1f.3")).expect("audio");
    assert_eq!(audio.migration.support, MigrationSupport::None);
    assert!(audio.migration.detail.as_deref().is_some_and(|d| d.contains("no vendor model")));
}

#[test]
fn kernel_attribute_takes_precedence_over_the_model() {
    let h = empty_host(Duration::from_secs(5));
    let b = h.builder();
    b.pci(&PciSpec { migration_version: Some("acme-v1-x"), ..PciSpec::new("0000:01:00.0", 0x1234, 0x0001, 0x020000) })
        .expect("pci");
    let d = h.checker.device(&id("0000:01:00.0")).expect("device");
    assert_eq!(d.migration.support, MigrationSupport::Kernel);
    let v = h.checker.version(&id("0000:01:00.0")).expect("version");
    assert_eq!(v.side.version.as_deref(), Some("acme-v1-x"), "one trailing newline is stripped");
}

#[test]
fn malformed_entries_are_reported_per_device_and_the_listing_goes_on() {
    let h = host(ExampleHost::A);
    let b = h.builder();
    b.file("sys/devices/pci0000:00/0000:00:02.0/class", "zz\n").expect("write");
    std::fs::remove_file(h.dir.path().join("sys/devices/pci0000:00/0000:00:02.0/revision")).expect("rm");
    std::fs::create_dir(h.dir.path().join("sys/devices/pci0000:00/0000:00:02.0/revision"))
        .expect("dir in place of a file");
    std::os::unix::fs::symlink("nowhere", h.dir.path().join("sys/bus/pci/devices/0000:00:1f.7")).expect("dangling");
    std::os::unix::fs::symlink("x", h.dir.path().join("sys/bus/pci/devices/not-an-address")).expect("bad name");
    let inv = h.checker.inventory().expect("inventory survives");
    let gpu = inv.get(&id("0000:00:02.0")).expect("gpu still listed");
    assert!(gpu.problems.iter().any(|p| p.contains("class") && p.contains("zz")), "{:?}", gpu.problems);
    assert!(gpu.problems.iter().any(|p| p.starts_with("revision")), "{:?}", gpu.problems);
    assert!(inv.problems.iter().any(|p| p.contains("not-an-address")), "{:?}", inv.problems);
    assert!(inv.get(&id("0000:3d:00.1")).is_some(), "other devices still listed");
    let ghost = inv.get(&id("0000:00:1f.7")).expect("dangling entry is still a device");
    assert!(ghost.pci.is_none());
}

#[test]
fn a_hung_attribute_costs_one_timeout_not_the_listing() {
    let h = host(ExampleHost::A);
    // A FIFO with no writer blocks open(2) forever: a driver that hangs in show().
    let fifo = h.dir.path().join("sys/devices/pci0000:00/0000:00:02.0/vendor");
    std::fs::remove_file(&fifo).expect("rm");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let checker = devmig_core::Checker::new(
        devmig_core::SysfsRoot::new(h.dir.path()),
        devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded()),
        Duration::from_millis(300),
    );
    let inv = checker.inventory().expect("inventory");
    let gpu = inv.get(&id("0000:00:02.0")).expect("gpu listed");
    assert!(gpu.problems.iter().any(|p| p.contains("did not finish")), "{:?}", gpu.problems);
    assert!(inv.get(&id("0000:3d:00.1")).is_some_and(|d| d.problems.is_empty()));
    // Release the stuck worker so the test process exits cleanly.
    let _ = std::fs::OpenOptions::new().write(true).custom_flags_nonblock().open(&fifo);
}

#[test]
fn unknown_ids_and_roots_are_errors() {
    let h = host(ExampleHost::A);
    assert!(matches!(h.checker.device(&id("0000:99:00.0")), Err(CoreError::DeviceNotFound { .. })));
    let missing = devmig_core::Checker::new(
        devmig_core::SysfsRoot::new("/nonexistent/devmig"),
        devmig_vendors::Registry::new(devmig_vendors::Catalog::embedded()),
        Duration::from_secs(1),
    );
    assert!(matches!(missing.inventory(), Err(CoreError::Root { .. })));
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}
impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.read(true).custom_flags(libc::O_NONBLOCK)
    }
}
