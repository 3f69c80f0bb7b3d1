//! VFs on the kernel's VFIO migration variant drivers end to end: an emulated NIC host (simfs,
//! mounted) with ConnectX-7 VFs on mlx5_vfio_pci, QAT VFs on qat_vfio_pci and a virtio-net VF on
//! virtio_vfio_pci, read by the CLI as any host. The kernel shows no `migration_version`: every
//! verdict is the vfio_variant model's, from the PF facts sysfs shows, and names what only the
//! destination's resume can tell. Golden files hold what users see.
mod common;

use common::run_at as run;
use devmig_simfs::spec::EXAMPLE_HOST_NIC;

const MLX_VF: &str = "0000:17:00.1";
const QAT_VF: &str = "0000:6b:00.1";
const VIRTIO_VF: &str = "0000:21:00.1";

#[test]
fn a_nic_host_with_variant_drivers_as_sysfs_shows_it_and_the_models_verdicts() {
    let host = common::mount_spec(EXAMPLE_HOST_NIC);
    let root = host.mounted.path();
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).expect(rel).trim_end().to_string();

    // What the model reads, through the VF's physfn link, as the kernel lays it out.
    let vf = format!("sys/bus/pci/devices/{MLX_VF}");
    assert_eq!(read(&format!("{vf}/physfn/infiniband/mlx5_0/fw_ver")), "28.41.1000");
    assert_eq!(read(&format!("{vf}/driver_override")), "mlx5_vfio_pci");
    assert!(std::fs::read_link(root.join(format!("{vf}/driver"))).expect("driver").ends_with("mlx5_vfio_pci"));
    assert!(!root.join(format!("{vf}/migration_version")).exists(), "no kernel has it");
    assert_eq!(read(&format!("sys/bus/pci/devices/{QAT_VF}/physfn/qat/cfg_services")), "sym;asym");

    let (code, version) = run(root, &["version", MLX_VF]);
    assert_eq!(code, Some(0));
    assert_eq!(version.trim(), "vfio_variant-v1-mlx5_vfio_pci-15b3:101e-fw_version=28.41.1000-psid=MT_0000000838");
    let (code, list) = run(root, &["list"]);
    assert_eq!(code, Some(0));
    common::golden("variant-list.txt", &list);

    // Two VFs of one adapter: compatible as far as the host shows, and what the firmware decides.
    let (code, text) = run(root, &["explain", MLX_VF, "0000:17:00.2"]);
    assert_eq!(code, Some(0), "{text}");
    common::golden("variant-explain-mlx5.txt", &text);
    // A source adapter on other firmware: refused, naming the rule and both versions.
    let other = "vfio_variant-v1-mlx5_vfio_pci-15b3:101e-fw_version=28.42.1000-psid=MT_0000000838";
    let (code, text) = run(root, &["explain", "--version", other, "0000:17:00.2"]);
    assert_eq!(code, Some(1), "{text}");
    common::golden("variant-explain-mlx5-firmware.txt", &text);
    // QAT: the services are a set (order does not matter), and must be the same set.
    let asym_sym = "vfio_variant-v1-qat_vfio_pci-8086:4943-services=asym;sym";
    let (code, text) = run(root, &["check", "--version", asym_sym, QAT_VF]);
    assert_eq!(code, Some(0), "a 401xx VF's state with the same services: {text}");
    let (code, text) =
        run(root, &["explain", "--version", "vfio_variant-v1-qat_vfio_pci-8086:4941-services=dc", QAT_VF]);
    assert_eq!(code, Some(1), "{text}");
    common::golden("variant-explain-qat-services.txt", &text);
    // Another driver's VF is another driver's stream.
    let (code, text) = run(root, &["check", MLX_VF, VIRTIO_VF]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("vfio_variant.driver"), "{text}");
    // match: step a over the host, then the model; the virtio VF says what only its device decides.
    let (code, text) = run(root, &["match", QAT_VF]);
    assert_eq!(code, Some(0), "{text}");
    common::golden("variant-match-qat.txt", &text);
    let (code, text) = run(root, &["check", VIRTIO_VF, VIRTIO_VF]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("at resume"), "{text}");
    // Nova's [pci] device_spec: the VFs carry their traits and the live_migratable tag Nova
    // (2025.1) needs before it live-migrates a variant driver's VF.
    let (code, text) = run(root, &["placement", "device-spec"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("\"live_migratable\":\"yes\"").count(), 5, "every variant VF: {text}");
    common::golden("variant-device-spec.txt", &text);
    host.mounted.unmount().expect("unmount");
}
