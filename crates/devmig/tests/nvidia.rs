//! NVIDIA vGPUs end to end: an emulated host with an M60 and a P40 on the vGPU Manager (simfs,
//! mounted), read by the CLI as any host. The kernel shows no `migration_version`, so every
//! verdict is the nvidia model's (the userspace adapter); golden files hold what users see.
mod common;

use common::run_at as run;
use devmig_simfs::HostSpec;
use devmig_simfs::spec::EXAMPLE_HOST_NVIDIA;
use devmig_vendors::Catalog;

const VGPU: &str = "7f0b6a3c-2d4e-4a51-9c8e-0a1b2c3d4e01";
const M60: &str = "sys/class/mdev_bus/0000:81:00.0/mdev_supported_types";

#[test]
fn an_nvidia_host_as_sysfs_shows_it_and_the_models_verdicts() {
    let host = common::mount_spec(EXAMPLE_HOST_NVIDIA);
    let root = host.mounted.path();
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
    host.mounted.unmount().expect("unmount");
}

/// SR-IOV vGPUs (vGPU 17 and later): an L40S whose VFs take vGPU types through
/// `nvidia/current_vgpu_type`, read and written with real syscalls through the mount.
#[test]
fn an_sriov_vgpu_host_lists_types_per_free_vf_and_the_model_judges_vfs() {
    let host = common::mount_spec(devmig_simfs::spec::EXAMPLE_HOST_L40S);
    let root = host.mounted.path();
    let vf = |addr: &str, file: &str| root.join(format!("sys/bus/pci/devices/{addr}/nvidia/{file}"));
    let read = |addr: &str, file: &str| std::fs::read_to_string(vf(addr, file)).expect(file);
    let write = |addr: &str, text: &str| {
        std::fs::write(vf(addr, "current_vgpu_type"), text).map_err(|e| e.raw_os_error().unwrap_or_default())
    };

    // Two VFs are L40S-2Q vGPUs: a VF with a type lists nothing, a free one only that type.
    assert_eq!(read("0000:41:00.4", "current_vgpu_type"), "1148\n");
    assert_eq!(read("0000:41:00.4", "creatable_vgpu_types"), "ID    : vGPU Name\n");
    assert_eq!(read("0000:41:00.6", "creatable_vgpu_types"), "ID    : vGPU Name\n1148  : NVIDIA L40S-2Q\n");
    assert_eq!(write("0000:41:00.6", "1150\n"), Err(libc::EINVAL), "another type than the GPU's");
    assert_eq!(write("0000:41:00.6", "two"), Err(libc::EINVAL), "not a number");
    assert_eq!(write("0000:41:00.6", "0"), Err(libc::EPERM), "no type to clear");
    assert_eq!(write("0000:41:00.4", "1148"), Err(libc::EPERM), "the VF has a type");
    assert_eq!(write("0000:41:00.6", "9999"), Err(libc::ENODEV), "not a type of this GPU");

    let (code, version) = run(root, &["version", "0000:41:00.4"]);
    assert_eq!((code, version.trim()), (Some(0), "nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q"));
    let (code, list) = run(root, &["list"]);
    assert_eq!(code, Some(0));
    common::golden("nvidia-sriov-list.txt", &list);
    let (code, text) = run(root, &["explain", "0000:41:00.4", "0000:41:00.6/nvidia-1148"]);
    assert_eq!(code, Some(0), "{text}");
    common::golden("nvidia-sriov-explain-type.txt", &text);
    // An mdev vGPU's state cannot go to a VF: the hostdev kinds differ.
    let mdev = "nvidia-v1-550.54.16-10de-26b9-L40S-2Q";
    let (code, text) = run(root, &["explain", "--version", mdev, "0000:41:00.5"]);
    assert_eq!(code, Some(1), "{text}");
    common::golden("nvidia-sriov-explain-framework.txt", &text);
    let (code, text) = run(root, &["match", "0000:41:00.4"]);
    assert_eq!(code, Some(0), "{text}");
    common::golden("nvidia-sriov-match.txt", &text);

    // Setting a free VF's type: it becomes a vGPU, and the last free VF lists only that type.
    assert_eq!(write("0000:41:00.6", "1148\n"), Ok(()));
    let (code, version) = run(root, &["version", "0000:41:00.6"]);
    assert_eq!((code, version.trim()), (Some(0), "nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q"));
    assert_eq!(read("0000:41:00.7", "creatable_vgpu_types"), "ID    : vGPU Name\n1148  : NVIDIA L40S-2Q\n");
    for addr in ["0000:41:00.4", "0000:41:00.5", "0000:41:00.6"] {
        assert_eq!(write(addr, "0"), Ok(()), "{addr}");
    }
    let all = read("0000:41:00.7", "creatable_vgpu_types");
    assert_eq!(all.lines().count(), 4, "an idle GPU offers every type: {all}");
    host.mounted.unmount().expect("unmount");
}

/// A time-sliced NVIDIA GPU holds one vGPU type at a time: a spec giving it two is refused,
/// naming the mdev; an SR-IOV vGPU PF's types must be catalogued types of its board.
#[test]
fn specs_that_no_nvidia_host_could_show_are_refused_by_key() {
    let two_types = format!(
        "{EXAMPLE_HOST_NVIDIA}\n[[mdev]]\nuuid = \"7f0b6a3c-2d4e-4a51-9c8e-0a1b2c3d4e02\"\nparent = \"0000:81:00.0\"\ntype = \"nvidia-18\"\n"
    );
    let e = HostSpec::from_toml(&two_types, "two", &Catalog::embedded()).expect_err("two types on one M60").to_string();
    assert!(e.contains("mdev[1].type") && e.contains("one vGPU type at a time"), "{e}");
    let l40s = devmig_simfs::spec::EXAMPLE_HOST_L40S;
    let foreign = l40s.replace("\"nvidia-1155\"", "\"nvidia-11\"");
    let e =
        HostSpec::from_toml(&foreign, "foreign", &Catalog::embedded()).expect_err("an M60 type on an L40S").to_string();
    assert!(e.contains("pci[0].vgpu.types[2]") && e.contains("10de:13f2"), "{e}");
    let mixed_types = l40s.replace(
        "vgpu_type = 1148\n[[pci.sriov.vfs]]\naddress = \"0000:41:00.5\"",
        "vgpu_type = 1150\n[[pci.sriov.vfs]]\naddress = \"0000:41:00.5\"",
    );
    let e = HostSpec::from_toml(&mixed_types, "mixed", &Catalog::embedded())
        .expect_err("two types on one L40S")
        .to_string();
    assert!(e.contains("one type per GPU"), "{e}");
    let bad_vf = l40s.replace(
        "vgpu_type = 1148\n[[pci.sriov.vfs]]\naddress = \"0000:41:00.5\"",
        "vgpu_type = 1149\n[[pci.sriov.vfs]]\naddress = \"0000:41:00.5\"",
    );
    let e = HostSpec::from_toml(&bad_vf, "bad", &Catalog::embedded()).expect_err("1149 is not listed").to_string();
    assert!(e.contains("0000:41:00.4") && e.contains("1149"), "{e}");
}
