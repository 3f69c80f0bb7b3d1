//! NVIDIA vGPUs end to end: an emulated host with an M60 and a P40 on the vGPU Manager (simfs,
//! mounted), read by the CLI as any host. The kernel shows no `migration_version`, so every
//! verdict is the nvidia model's (the userspace adapter); golden files hold what users see.
mod common;

use devmig_simfs::spec::EXAMPLE_HOST_NVIDIA;
use devmig_simfs::{HostSpec, mount};
use devmig_vendors::{Catalog, Registry};

const VGPU: &str = "7f0b6a3c-2d4e-4a51-9c8e-0a1b2c3d4e01";
const M60: &str = "sys/class/mdev_bus/0000:81:00.0/mdev_supported_types";

fn run(root: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = common::devmig_at(root, args);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn an_nvidia_host_as_sysfs_shows_it_and_the_models_verdicts() {
    let mnt = tempfile::tempdir().expect("mnt");
    let host = HostSpec::from_toml(EXAMPLE_HOST_NVIDIA, "host-nvidia", &Catalog::embedded())
        .expect("spec")
        .build(Registry::new(Catalog::embedded()), "host-nvidia")
        .expect("build");
    let m = mount(host, mnt.path()).expect("mount (root)");
    let root = m.path();
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).expect(rel).trim_end().to_string();

    // The types as the vGPU Manager shows them; one type at a time on a time-sliced GPU.
    assert_eq!(read(&format!("{M60}/nvidia-11/name")), "GRID M60-0B");
    assert_eq!(
        read(&format!("{M60}/nvidia-11/description")),
        "num_heads=2, frl_config=45, framebuffer=512M, max_resolution=2560x1600, max_instance=16"
    );
    assert_eq!(read(&format!("{M60}/nvidia-11/available_instances")), "15");
    assert_eq!(read(&format!("{M60}/nvidia-18/available_instances")), "0", "another type is in use");
    assert!(!root.join(format!("sys/bus/mdev/devices/{VGPU}/migration_version")).exists());

    let (code, version) = run(root, &["version", VGPU]);
    assert_eq!(code, Some(0));
    assert_eq!(version.trim(), "nvidia-v1-535.161.5-10de-13f2-M60-0B");
    let (code, list) = run(root, &["list"]);
    assert_eq!(code, Some(0));
    common::golden("nvidia-list.txt", &list);
    for (name, target, want) in [
        ("nvidia-explain-same-profile.txt", "0000:81:00.0/nvidia-11", 0),
        ("nvidia-explain-other-profile.txt", "0000:81:00.0/nvidia-18", 1),
        ("nvidia-explain-other-board.txt", "0000:82:00.0/nvidia-156", 1),
    ] {
        let (code, text) = run(root, &["explain", VGPU, target]);
        assert_eq!(code, Some(want), "{name}: {text}");
        common::golden(name, &text);
    }
    // A source from a host with a newer vGPU Manager: refused by default (identical Managers).
    let (code, text) =
        run(root, &["check", "--version", "nvidia-v1-535.183.1-10de-13f2-M60-0B", "0000:81:00.0/nvidia-11"]);
    assert_eq!(code, Some(1));
    assert!(text.contains("nvidia.manager_version"), "{text}");
    // match: step a then step b over the host, the source's own type first.
    let (code, text) = run(root, &["match", VGPU]);
    assert_eq!(code, Some(0), "{text}");
    common::golden("nvidia-match.txt", &text);
    m.unmount().expect("unmount");
}
