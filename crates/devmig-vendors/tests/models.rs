//! Behaviour of each vendor model, on the examples of the proposal and its review.
use devmig_vendors::models::{GvtVersion, NvmeVersion, decode_field, encode_field, normalize_url};
use devmig_vendors::{AttrValue, Catalog, DeviceFacts, DriverVersion, Registry, VendorError};

fn registry() -> Registry {
    Registry::new(Catalog::embedded())
}

fn gvt(parent_id: &str, version: &str, ty: &str, aggregator: u32) -> DeviceFacts {
    DeviceFacts::mdev("0000:00:02.0", parent_id, "i915", Some(version), ty, aggregator)
}

fn failed_rules(r: &Registry, source: &str, target: &DeviceFacts) -> Vec<String> {
    r.evaluate(source, target).expect("evaluates").rejections().map(|c| c.rule.clone()).collect()
}

#[test]
fn gvt_shares_follow_the_follow_up_rfc() {
    // GVTg_V5_4 x2 == GVTg_V5_8 x4 == GVTg_V5_2 x1
    let r = registry();
    let a = r.version(&gvt("8086:591d", "1.2.0", "i915-GVTg_V5_4", 2)).expect("version");
    assert_eq!(a, "i915-v1.2.0-8086-591d-i915-GVTg_V5_4-2");
    for (ty, aggr) in [("i915-GVTg_V5_8", 4), ("i915-GVTg_V5_2", 1), ("i915-GVTg_V5_4", 2)] {
        assert!(r.evaluate(&a, &gvt("8086:591d", "1.2.0", ty, aggr)).expect("eval").accepted(), "{ty} x{aggr}");
    }
    assert_eq!(failed_rules(&r, &a, &gvt("8086:591d", "1.2.0", "i915-GVTg_V5_8", 1)), ["i915.share"]);
}

#[test]
fn gvt_accepts_the_seed_and_v5_formats() {
    let seed = GvtVersion::parse("i915-v1-8086-591d-i915-GVTg_V5_8-1").expect("seed example parses");
    assert_eq!(
        (seed.gvt, seed.mdev_type.as_str(), seed.aggregator),
        (DriverVersion::new(1, 0, 0), "i915-GVTg_V5_8", 1)
    );
    let v5 = GvtVersion::parse("8086-591d-GVTg_V5_8-01020003").expect("v5 patch format parses");
    assert_eq!(v5.gvt, DriverVersion::new(1, 2, 3));
    assert_eq!(v5.mdev_type, "i915-GVTg_V5_8");
    assert!(
        registry()
            .evaluate("8086-591d-GVTg_V5_8-01020003", &gvt("8086:591d", "1.2.0", "i915-GVTg_V5_8", 1))
            .expect("eval")
            .accepted()
    );
    for bad in [
        "i915-v1-8086-591d-i915-GVTg_V5_8-0",
        "i915-vx-8086-591d-t-1",
        "8086-591d-GVTg_V5_8-123",
        "i915-v1-8086-59-t-1",
    ] {
        assert!(GvtVersion::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn gvt_relations_are_directional() {
    let r = registry();
    let older = r.version(&gvt("8086:591b", "1.1.0", "i915-GVTg_V5_4", 1)).expect("v");
    let newer = r.version(&gvt("8086:5917", "1.3.0", "i915-GVTg_V5_4", 1)).expect("v");
    // Older driver on a KBL GT2 -> newer driver on KBL-R: accepted.
    assert!(r.evaluate(&older, &gvt("8086:5917", "1.3.0", "i915-GVTg_V5_4", 1)).expect("e").accepted());
    // The way back fails on both the parent edge and the minor version.
    assert_eq!(
        failed_rules(&r, &newer, &gvt("8086:591b", "1.1.0", "i915-GVTg_V5_4", 1)),
        ["i915.parent_group", "i915.gvt_version_minor"]
    );
    assert_eq!(failed_rules(&r, &older, &gvt("8086:591b", "2.1.0", "i915-GVTg_V5_4", 1)), ["i915.gvt_version_major"]);
}

#[test]
fn gvt_type_node_accepts_any_reachable_aggregation() {
    let r = registry();
    let src = r.version(&gvt("8086:591d", "1.0.0", "i915-GVTg_V5_8", 2)).expect("v"); // a quarter GPU
    let ty = |t: &str| DeviceFacts::mdev_type("0000:00:02.0", "8086:591d", "i915", Some("1.0.0"), t);
    assert!(r.evaluate(&src, &ty("i915-GVTg_V5_4")).expect("e").accepted());
    assert_eq!(failed_rules(&r, &src, &ty("i915-GVTg_V5_2")), ["i915.share"]);
}

#[test]
fn nvme_urls_compare_after_normalisation() {
    let r = registry();
    let vf = |url: &str, ver: &str| {
        DeviceFacts::pci_function("144d:a824", true, "nvme", Some(ver)).with_param("remote_storage_url", url)
    };
    let src = r.version(&vf("NVMe+TCP://Storage.Example:4420/nqn.2014-08.org.nvmexpress:uuid:1", "1.4.0")).expect("v");
    assert!(src.starts_with("nvme-v1-144d:a824-1.4.0-nvme+tcp://storage.example:4420/"), "{src}");
    assert!(
        r.evaluate(&src, &vf("nvme+tcp://storage.example:4420/nqn.2014-08.org.nvmexpress:uuid:1", "1.5.2"))
            .expect("e")
            .accepted()
    );
    assert_eq!(failed_rules(&r, &src, &vf("nvme+tcp://other.example:4420/x", "1.4.0")), ["nvme.storage_url"]);
    assert_eq!(normalize_url("HTTP://A.example:80/x/../y").expect("url"), "http://a.example/y");
    let odd = "nvme://h/a b%20-ü\u{7f}";
    assert_eq!(decode_field(&encode_field(odd)).expect("decode"), odd);
    let v = NvmeVersion::parse(&src).expect("parse");
    assert_eq!(v.render(), src);
}

#[test]
fn qat_crypto_is_a_directional_superset_and_hybrid_pairs_work() {
    let r = registry();
    let vf = |algs: &str| {
        DeviceFacts::pci_function("8086:4941", true, "4xxxvf", Some("1.2.0")).with_param("crypto_algorithms", algs)
    };
    let siov = |algs: &str| {
        DeviceFacts::mdev("0000:6b:00.0", "8086:4940", "4xxx", Some("1.2.0"), "qat_4xxx-vqat", 1)
            .with_param("crypto_algorithms", algs)
    };
    let small = r.version(&vf("aes-gcm sha256")).expect("v");
    let big = r.version(&vf("aes-gcm,sha256,chacha20-poly1305")).expect("v");
    assert!(r.evaluate(&small, &vf("aes-gcm sha256 chacha20-poly1305")).expect("e").accepted());
    assert_eq!(failed_rules(&r, &big, &vf("aes-gcm sha256")), ["qat.crypto_superset"]);
    // Hybrid: VF -> SIOV mdev and back, as the catalog says.
    assert!(r.evaluate(&small, &siov("aes-gcm sha256")).expect("e").accepted());
    let from_siov = r.version(&siov("aes-gcm sha256")).expect("v");
    assert!(r.evaluate(&from_siov, &vf("aes-gcm sha256")).expect("e").accepted());
    // c62x has no edge to 4xxx.
    let c62x = DeviceFacts::pci_function("8086:37c9", true, "c6xxvf", Some("1.2.0"))
        .with_param("crypto_algorithms", "aes-gcm sha256");
    assert_eq!(failed_rules(&r, &r.version(&c62x).expect("v"), &vf("aes-gcm sha256")), ["qat.family"]);
}

#[test]
fn mtty_ports_must_match() {
    let r = registry();
    let m = |t: &str, v: &str| DeviceFacts::mdev("mtty", "", "mtty", Some(v), t, 1);
    let src = r.version(&m("mtty-2", "0.1")).expect("v");
    assert_eq!(src, "mtty-v1-0.1.0-mtty-2");
    assert!(r.evaluate(&src, &m("mtty-2", "0.1")).expect("e").accepted());
    assert_eq!(failed_rules(&r, &src, &m("mtty-1", "0.1")), ["mtty.ports"]);
}

#[test]
fn foreign_and_broken_strings_are_rejected_not_accepted() {
    let r = registry();
    let target = gvt("8086:591d", "1.0.0", "i915-GVTg_V5_8", 1);
    assert_eq!(failed_rules(&r, "mtty-v1-0.1.0-mtty-2", &target), ["vendor_mismatch"]);
    assert_eq!(failed_rules(&r, "garbage", &target), ["source_version_invalid"]);
    assert!(matches!(r.evaluate("i915-v1-8086-591d-i915-Nope-1", &target), Err(VendorError::BadVersion { .. })));
    // A string no model knows is opaque: step a asks only for its driver prefix.
    let opaque = r.requirement("garbage-1").expect("opaque requirement");
    assert_eq!(opaque.all.len(), 1, "{opaque:?}");
    assert_eq!(opaque.all[0].attr(), "kernel.prefix");
    let no_version = DeviceFacts::mdev("0000:00:02.0", "8086:591d", "i915", None, "i915-GVTg_V5_8", 1);
    assert!(matches!(r.version(&no_version), Err(VendorError::Unsupported { .. })));
}

#[test]
fn gvt_dynamic_resources_carry_the_share_into_a_new_mdev() {
    let r = registry();
    let half = r.version(&gvt("8086:591d", "1.2.0", "i915-GVTg_V5_4", 2)).expect("v");
    let ty = |t: &str| DeviceFacts::mdev_type("0000:00:02.0", "8086:591d", "i915", Some("1.2.0"), t);
    assert_eq!(
        r.dynamic_resources(&half, &ty("i915-GVTg_V5_8")).expect("fits"),
        [("aggregator".to_string(), "4".to_string())]
    );
    assert_eq!(
        r.dynamic_resources(&half, &ty("i915-GVTg_V5_2")).expect("fits"),
        [("aggregator".to_string(), "1".to_string())]
    );
    assert!(r.dynamic_resources(&half, &ty("i915-GVTg_V5_1")).is_err(), "a whole GPU type cannot hold half");
    let m = DeviceFacts::mdev_type("mtty", "", "mtty", Some("0.1"), "mtty-2");
    assert!(r.dynamic_resources("mtty-v1-0.1.0-mtty-2", &m).expect("none").is_empty());
}

#[test]
fn where_the_kernel_shows_a_string_the_attributes_come_from_it() {
    let r = registry();
    // An in-tree driver reports no module version: facts alone cannot describe the device.
    let no_version = DeviceFacts::mdev("0000:00:02.0", "8086:591d", "i915", None, "i915-GVTg_V5_8", 1);
    assert!(r.attributes(&no_version).is_err());
    let kernel = "i915-v1.3.0-8086-591d-i915-GVTg_V5_8-1";
    let d = r.describe(Some(&no_version), Some(kernel)).expect("from the kernel's string");
    assert_eq!(d.source, devmig_vendors::AttributeSource::KernelString);
    assert!(d.conflicts.is_empty(), "{:?}", d.conflicts);
    assert_eq!(d.attributes.get("i915.gvt_version"), Some(&AttrValue::Semver("1.3.0".parse().unwrap())));
    assert_eq!(d.attributes.get("kernel.prefix"), Some(&AttrValue::String("i915".into())));
    // The source's requirement holds on it, as the kernel would accept the same string.
    assert!(r.requirement(kernel).unwrap().satisfied_by(&d.attributes));
    // Facts that disagree with the string are reported; the string wins.
    let old = DeviceFacts { driver_version: Some("1.1.0".into()), ..no_version.clone() };
    let d = r.describe(Some(&old), Some(kernel)).expect("describe");
    assert_eq!(d.conflicts, ["i915.gvt_version: the kernel's string gives 1.3.0, sysfs gives 1.1.0"]);
    assert_eq!(d.attributes.get("i915.gvt_version"), Some(&AttrValue::Semver("1.3.0".parse().unwrap())));
    // No kernel string: facts, as before.
    let d = r.describe(Some(&old), None).expect("facts");
    assert_eq!((d.source, d.attributes.contains_key("kernel.prefix")), (devmig_vendors::AttributeSource::Facts, false));
}

#[test]
fn a_switched_off_model_leaves_its_devices_opaque() {
    let r = registry().without_models(&["mtty".to_string()]).expect("mtty is a model");
    let dev = DeviceFacts::mdev("mtty", "", "mtty", Some("0.1"), "mtty-2", 1);
    assert!(r.model_for_device(&dev).is_none());
    let d = r.describe(Some(&dev), Some("mtty-v1-0.1.0-mtty-2")).expect("opaque");
    assert_eq!((d.model.as_str(), d.source), ("opaque", devmig_vendors::AttributeSource::Opaque));
    assert!(r.requirement("mtty-v1-0.1.0-mtty-1").unwrap().satisfied_by(&d.attributes), "same prefix: never excluded");
    assert!(r.describe(Some(&dev), None).is_err(), "no string, no model: nothing to say");
    let e = registry().without_models(&["acme".to_string()]).unwrap_err().to_string();
    assert!(e.contains("acme") && e.contains("nvidia"), "{e}");
}

fn vgpu(board: &str, manager: &str, ty: &str, name: Option<&str>) -> DeviceFacts {
    let d = DeviceFacts::mdev("0000:81:00.0", board, "nvidia", Some(manager), ty, 1);
    match name {
        Some(n) => d.with_param("mdev_type/name", n),
        None => d,
    }
}

#[test]
fn nvidia_vgpus_need_the_profile_the_board_and_by_default_the_same_manager() {
    let r = registry();
    // The type's sysfs name gives the profile; the catalog stands in when sysfs shows none.
    let src = r.version(&vgpu("10de:13f2", "535.161.05", "nvidia-11", Some("GRID M60-0B"))).expect("version");
    assert_eq!(src, "nvidia-v1-535.161.5-10de-13f2-M60-0B");
    assert_eq!(r.version(&vgpu("10de:13f2", "535.161.05", "nvidia-11", None)).expect("catalogued"), src);
    assert!(r.evaluate(&src, &vgpu("10de:13f2", "535.161.05", "nvidia-11", None)).expect("eval").accepted());
    assert_eq!(
        failed_rules(&r, &src, &vgpu("10de:13f2", "535.161.05", "nvidia-18", Some("GRID M60-2Q"))),
        ["nvidia.profile"]
    );
    assert_eq!(failed_rules(&r, &src, &vgpu("10de:13f2", "535.183.01", "nvidia-11", None)), ["nvidia.manager_version"]);
    // An unknown type with no name: unsupported, never guessed.
    assert!(matches!(
        r.version(&vgpu("10de:13f2", "535.161.05", "nvidia-999", None)),
        Err(VendorError::Unsupported { .. })
    ));

    // H100 PCIe -> H100 NVL, one profile name: refused by the board rule, saying what NVIDIA says.
    let h100 = r.version(&vgpu("10de:2331", "550.54.14", "nvidia-700", Some("NVIDIA H100-2-20C"))).expect("version");
    let d = r.evaluate(&h100, &vgpu("10de:2321", "550.54.14", "nvidia-700", Some("NVIDIA H100-2-20C"))).expect("eval");
    let board = d.rejections().find(|c| c.rule == "nvidia.board").expect("the board rule");
    assert!(
        board.target_value.contains("H100 NVL") && board.target_value.contains("80 GB PCIe and 94 GB NVL"),
        "{board:?}"
    );
    // Step a excludes the same pair.
    let attrs = r.attributes(&vgpu("10de:2321", "550.54.14", "nvidia-700", Some("NVIDIA H100-2-20C"))).expect("attrs");
    assert!(!r.requirement(&h100).expect("requirement").satisfied_by(&attrs));
}

#[test]
fn an_operator_catalog_allows_newer_managers_and_cannot_allow_what_nvidia_rules_out() {
    let mut c = Catalog::embedded();
    c.extend(Catalog::from_toml("[nvidia]\nmanager_versions = \"same_branch\"\n", "ops").expect("catalog"));
    let r = Registry::new(c);
    let src = r.version(&vgpu("10de:13f2", "535.161.05", "nvidia-11", None)).expect("version");
    assert!(r.evaluate(&src, &vgpu("10de:13f2", "535.183.01", "nvidia-11", None)).expect("eval").accepted());
    assert_eq!(
        failed_rules(&r, &src, &vgpu("10de:13f2", "535.104.05", "nvidia-11", None)),
        ["nvidia.manager_version_minor"]
    );
    assert_eq!(
        failed_rules(&r, &src, &vgpu("10de:13f2", "550.54.14", "nvidia-11", None)),
        ["nvidia.manager_version_major"]
    );
    // An operator's file is validated with the embedded catalog merged in.
    let dir = std::env::temp_dir().join(format!("devmig-nvidia-{}", std::process::id()));
    std::fs::write(&dir, "[[nvidia.migrations]]\nfrom = [\"10de:2331\"]\nto = [\"10de:233b\"]\n").expect("write");
    let e = Catalog::embedded_with_file(&dir).expect_err("an edge NVIDIA rules out").to_string();
    let _ = std::fs::remove_file(&dir);
    assert!(e.contains("10de:2331") && e.contains("H100, H200 and H800"), "{e}");
}

/// An operator's catalog adds a variant driver row (its ids, a fact and what only its resume
/// decides) without recompiling; a row that could not work is refused naming the key.
#[test]
fn an_operator_catalog_adds_a_variant_driver_and_bad_rows_name_the_key() {
    let row = r#"
[[variant.drivers]]
name = "acme_vfio_pci"
title = "Acme NIC VF"
ids = ["1234:5678"]
source = "the operator's lab"
[[variant.drivers.facts]]
name = "fw"
file = "physfn/acme/firmware"
rule = "superset"
why = "the target firmware must offer every source feature"
source = "the operator's lab"
[[variant.drivers.at_resume]]
what = "the firmware restores the state"
source = "the operator's lab"
"#;
    let mut catalog = Catalog::embedded();
    catalog.extend(Catalog::from_toml(row, "extra").expect("a valid row"));
    let r = Registry::new(catalog);
    let vf = |features: &str| {
        DeviceFacts::pci_function("1234:5678", true, "acme_vfio_pci", None).with_param("physfn/acme/firmware", features)
    };
    let source = r.version(&vf("tso lro")).expect("the new row's VF has a version");
    assert_eq!(source, "vfio_variant-v1-acme_vfio_pci-1234:5678-fw=tso%20lro");
    let d = r.evaluate(&source, &vf("lro tso gro")).expect("evaluates");
    assert!(d.accepted(), "{d:?}");
    assert_eq!(d.at_resume, vec!["the firmware restores the state".to_string()]);
    assert_eq!(failed_rules(&r, &source, &vf("tso")), vec!["vfio_variant.fw"]);
    // A row named like an embedded one replaces it: here mlx5 without the firmware rule.
    let mlx5 = "[[variant.drivers]]\nname = \"mlx5_vfio_pci\"\ntitle = \"ConnectX VF\"\nids = [\"15b3:101e\"]\nsource = \"lab\"\n";
    let mut catalog = Catalog::embedded();
    catalog.extend(Catalog::from_toml(mlx5, "extra").expect("a valid row"));
    assert_eq!(catalog.variant.drivers.iter().filter(|d| d.name == "mlx5_vfio_pci").count(), 1);
    let r = Registry::new(catalog);
    let cx7 = DeviceFacts::pci_function("15b3:101e", true, "mlx5_vfio_pci", None);
    assert_eq!(r.version(&cx7).expect("no facts needed now"), "vfio_variant-v1-mlx5_vfio_pci-15b3:101e");
    for (bad, key) in [
        (row.replace("physfn/acme/firmware", "../../etc/passwd"), "variant.drivers[0].facts[0].file"),
        (row.replace("\"superset\"", "\"newer\""), "rule"),
        (row.replace("ids = [\"1234:5678\"]", "ids = []"), "variant.drivers[0]"),
        (row.replace("name = \"fw\"", "name = \"Fw-1\""), "variant.drivers[0].facts[0].name"),
    ] {
        let e = Catalog::from_toml(&bad, "extra").expect_err("refused").to_string();
        assert!(e.contains(key), "{key}: {e}");
    }
}
