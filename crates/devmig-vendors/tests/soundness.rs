//! Property tests: the soundness law (step a never excludes what step b
//! accepts), its converse for the shipped models (step a is exact), version
//! round trips, and rejection reasons that name the failing attribute.
use devmig_vendors::described::opaque_attributes;
use devmig_vendors::placement_traits::{is_custom_trait, source_traits, target_traits};
use devmig_vendors::{Catalog, DeviceFacts, OPAQUE_MODEL, Registry};
use proptest::prelude::*;

fn version() -> impl Strategy<Value = String> {
    (1u32..=2, 0u32..=3, 0u32..=2).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

/// Versions whose minors reach past Placement's exact range (32).
fn wide_version() -> impl Strategy<Value = String> {
    (1u32..=2, prop_oneof![0u32..=40, 0u32..=300], 0u32..=2).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

fn gvt() -> impl Strategy<Value = DeviceFacts> {
    (
        prop::sample::select(vec!["8086:591b", "8086:5917", "8086:591d"]),
        version(),
        prop::sample::select(vec![
            ("i915-GVTg_V5_1", 1u32),
            ("i915-GVTg_V5_2", 2),
            ("i915-GVTg_V5_4", 4),
            ("i915-GVTg_V5_8", 8),
        ]),
        1u32..=8,
        any::<bool>(),
    )
        .prop_map(|(id, v, (ty, n), a, is_type)| {
            if is_type {
                DeviceFacts::mdev_type("0000:00:02.0", id, "i915", Some(&v), ty)
            } else {
                DeviceFacts::mdev("0000:00:02.0", id, "i915", Some(&v), ty, 1 + (a - 1) % n)
            }
        })
}

fn nvme() -> impl Strategy<Value = DeviceFacts> {
    (
        prop::sample::select(vec!["144d:a824", "144d:a825", "144d:a826"]),
        version(),
        prop::sample::select(vec![
            "nvme+tcp://s1.example:4420/nqn.a",
            "NVMe+TCP://S1.Example:4420/nqn.a",
            "nvme+rdma://s2.example/nqn.b",
        ]),
    )
        .prop_map(|(id, v, url)| {
            DeviceFacts::pci_function(id, true, "nvme", Some(&v)).with_param("remote_storage_url", url)
        })
}

fn qat() -> impl Strategy<Value = DeviceFacts> {
    (0usize..3, version(), prop::sample::subsequence(vec!["aes-gcm", "sha256", "chacha20-poly1305", "zstd"], 1..=4))
        .prop_map(|(kind, v, algs)| {
            let algs = algs.join(" ");
            match kind {
                0 => DeviceFacts::pci_function("8086:4941", true, "4xxxvf", Some(&v)),
                1 => DeviceFacts::pci_function("8086:37c9", true, "c6xxvf", Some(&v)),
                _ => DeviceFacts::mdev("0000:6b:00.0", "8086:4940", "4xxx", Some(&v), "qat_4xxx-vqat", 1),
            }
            .with_param("crypto_algorithms", &algs)
        })
}

fn mtty() -> impl Strategy<Value = DeviceFacts> {
    (prop::sample::select(vec!["mtty-1", "mtty-2"]), version(), any::<bool>()).prop_map(|(ty, v, is_type)| {
        if is_type {
            DeviceFacts::mdev_type("mtty", "", "mtty", Some(&v), ty)
        } else {
            DeviceFacts::mdev("mtty", "", "mtty", Some(&v), ty, 1)
        }
    })
}

/// NVIDIA vGPU types and mdevs: catalogued types with or without the name sysfs shows, and
/// types only sysfs names; boards the catalog lists apart.
fn nvidia() -> impl Strategy<Value = DeviceFacts> {
    (
        prop::sample::select(vec![
            ("nvidia-11", "10de:13f2", Some("GRID M60-0B")),
            ("nvidia-11", "10de:13f2", None),
            ("nvidia-18", "10de:13f2", Some("GRID M60-2Q")),
            ("nvidia-156", "10de:1b38", None),
            ("nvidia-700", "10de:2331", Some("GRID H100-2-20C")),
            ("nvidia-700", "10de:2321", Some("GRID H100-2-20C")),
            ("nvidia-701", "10de:2321", Some("NVIDIA H100-4-40C")),
        ]),
        prop::sample::select(vec!["535.161.5", "535.183.1", "550.54.14"]),
        any::<bool>(),
    )
        .prop_map(|((ty, board, name), v, is_type)| {
            let (facts, file) = if is_type {
                (DeviceFacts::mdev_type("0000:81:00.0", board, "nvidia", Some(v), ty), "name")
            } else {
                (DeviceFacts::mdev("0000:81:00.0", board, "nvidia", Some(v), ty, 1), "mdev_type/name")
            };
            match name {
                Some(n) => facts.with_param(file, n),
                None => facts,
            }
        })
}

/// VFs bound to the kernel's variant drivers: mlx5 (firmware and board facts), QAT (services as
/// sets in any order, ids the catalog links), and drivers whose resume decides everything.
fn variant() -> impl Strategy<Value = DeviceFacts> {
    (
        0usize..4,
        prop::sample::select(vec!["28.41.1000", "28.42.1000"]),
        prop::sample::select(vec!["MT_0000000838", "MT_0000000891"]),
        prop::sample::select(vec!["8086:4941", "8086:4943", "8086:4949"]),
        prop::sample::select(vec!["sym;asym", "asym;sym", "sym", "dc", "sym;dc"]),
        prop::sample::select(vec![
            ("19e5:a256", "hisi_acc_vfio_pci"),
            ("19e5:a259", "hisi_acc_vfio_pci"),
            ("1af4:1041", "virtio_vfio_pci"),
            ("1dd8:1003", "pds_vfio_pci"),
        ]),
    )
        .prop_map(|(kind, fw, psid, qat_id, services, (id, driver))| match kind {
            0 | 1 => DeviceFacts::pci_function("15b3:101e", true, "mlx5_vfio_pci", None)
                .with_param("physfn/infiniband/*/fw_ver", fw)
                .with_param("physfn/infiniband/*/board_id", psid),
            2 => DeviceFacts::pci_function(qat_id, true, "qat_vfio_pci", None)
                .with_param("physfn/qat/cfg_services", services),
            _ => {
                let f = DeviceFacts::pci_function(id, true, driver, None);
                // hisi_acc migrates VFs of a v3 (PCI revision 0x30) or later PF only.
                if driver == "hisi_acc_vfio_pci" { f.with_param("physfn/revision", "0x30") } else { f }
            }
        })
}

/// SR-IOV vGPUs: VFs set to a type (named by the catalog), and types a free VF can take (named
/// by its `creatable_vgpu_types` line, catalogued or not).
fn nvidia_sriov() -> impl Strategy<Value = DeviceFacts> {
    (
        prop::sample::select(vec![("1148", "NVIDIA L40S-2Q"), ("1150", "NVIDIA L40S-4Q"), ("2164", "NVIDIA L40S-3B")]),
        prop::sample::select(vec!["550.54.16", "550.90.5"]),
        any::<bool>(),
    )
        .prop_map(|((n, name), v, is_type)| {
            let facts = if is_type || n == "2164" {
                DeviceFacts::mdev_type("0000:41:00.4", "10de:26b9", "nvidia", Some(v), &format!("nvidia-{n}"))
                    .with_param("nvidia/current_vgpu_type", "0")
                    .with_param("name", name)
            } else {
                DeviceFacts::pci_function("10de:26b9", true, "nvidia", Some(v))
                    .with_param("nvidia/current_vgpu_type", n)
            };
            facts.with_param("physfn/device", "0x26b9")
        })
}

fn device() -> impl Strategy<Value = DeviceFacts> {
    prop_oneof![gvt(), nvme(), qat(), mtty(), nvidia(), nvidia_sriov(), variant()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// accept(S, T) <=> requirement(S) holds on attributes(T), for any pair of devices.
    #[test]
    fn step_a_and_step_b_agree(src in device(), dst in device()) {
        let r = Registry::new(Catalog::embedded());
        // Sources are created devices: a type node has no version of its own to migrate.
        prop_assume!(!matches!(src.kind, devmig_vendors::FactsKind::MdevType));
        let s = r.version(&src).expect("generated sources are supported");
        let accepted = r.evaluate(&s, &dst).expect("generated targets are supported").accepted();
        let req = r.requirement(&s).expect("requirement");
        let attrs = r.attributes(&dst).expect("attributes");
        let satisfied = req.satisfied_by(&attrs);
        prop_assert!(!accepted || satisfied, "soundness broken: {s} accepted by {dst:?} but unmet {:?}", req.unmet(&attrs));
        prop_assert!(accepted || !satisfied, "step a admits a target step b rejects: {s} -> {dst:?}");
    }

    /// The same law over variant-driver VFs alone, where pairs of one driver are frequent
    /// enough to reach every fact rule (a random pair of any devices rarely shares a driver).
    #[test]
    fn step_a_and_step_b_agree_on_variant_drivers(src in variant(), dst in variant()) {
        let r = Registry::new(Catalog::embedded());
        let s = r.version(&src).expect("generated sources are supported");
        let accepted = r.evaluate(&s, &dst).expect("generated targets are supported").accepted();
        let satisfied = r.requirement(&s).expect("requirement").satisfied_by(&r.attributes(&dst).expect("attributes"));
        prop_assert_eq!(accepted, satisfied, "{} -> {:?}", s, dst);
    }

    /// The bare decision agrees with the explained one: same verdict, same first failing rule.
    #[test]
    fn decide_agrees_with_evaluate(src in device(), dst in device()) {
        let r = Registry::new(Catalog::embedded());
        prop_assume!(!matches!(src.kind, devmig_vendors::FactsKind::MdevType));
        let s = r.version(&src).expect("version");
        let explained = r.evaluate(&s, &dst).expect("eval");
        let first = explained.rejections().next().map(|c| c.rule.clone());
        prop_assert_eq!(r.decide(&s, &dst).expect("decide").map(str::to_string), first);
    }

    /// A device always accepts its own version string, and the string round-trips through the parser.
    #[test]
    fn own_version_is_accepted_and_round_trips(dev in device()) {
        let r = Registry::new(Catalog::embedded());
        prop_assume!(!matches!(dev.kind, devmig_vendors::FactsKind::MdevType));
        let v = r.version(&dev).expect("version");
        prop_assert!(devmig_vendors::is_valid_version_string(&v));
        let model = r.model_for_version(&v).expect("claimed");
        prop_assert_eq!(model.name(), r.model_for_device(&dev).expect("recognised").name());
        prop_assert!(r.evaluate(&v, &dev).expect("eval").accepted(), "{} rejected by its own device", v);
    }

    /// Every rejection names a rule of the target's model (or vendor_mismatch) and carries both values.
    #[test]
    fn rejections_name_their_rule(src in device(), dst in device()) {
        let r = Registry::new(Catalog::embedded());
        prop_assume!(!matches!(src.kind, devmig_vendors::FactsKind::MdevType));
        let s = r.version(&src).expect("version");
        let d = r.evaluate(&s, &dst).expect("eval");
        let model = r.model_for_device(&dst).expect("model").name();
        for c in d.rejections() {
            prop_assert!(c.rule == "vendor_mismatch" || c.rule.starts_with(&format!("{model}.")), "{}", c.rule);
            prop_assert!(!c.source_value.is_empty() && !c.target_value.is_empty());
        }
    }

    /// The NVMe field encoding round-trips any string and yields printable ASCII.
    #[test]
    fn nvme_field_encoding_round_trips(s in any::<String>()) {
        let e = devmig_vendors::models::encode_field(&s);
        prop_assert!(e.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        prop_assert_eq!(devmig_vendors::models::decode_field(&e).expect("decode"), s);
    }

    /// Where the kernel shows the string its model would show, the attributes read from the
    /// string are the facts' attributes (plus `kernel.*`), with no conflict; without the facts'
    /// driver version (an in-tree driver), the string alone still gives them all.
    #[test]
    fn attributes_from_the_kernels_string_equal_the_facts(dev in device()) {
        let r = Registry::new(Catalog::embedded());
        let v = r.version(&dev).expect("version");
        let from_facts = r.attributes(&dev).expect("attributes");
        let d = r.describe(Some(&dev), Some(&v)).expect("describe");
        prop_assert!(d.conflicts.is_empty(), "{:?}", d.conflicts);
        let mut model_only = d.attributes.clone();
        model_only.retain(|k, _| !k.starts_with("kernel."));
        prop_assert_eq!(&model_only, &from_facts);
        let in_tree = DeviceFacts { driver_version: None, ..dev.clone() };
        let d = r.describe(Some(&in_tree), Some(&v)).expect("describe without a module version");
        prop_assert_eq!(d.attributes, r.describe(Some(&dev), Some(&v)).expect("describe").attributes);
    }

    /// Parsers never panic on arbitrary input.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,80}") {
        let r = Registry::new(Catalog::embedded());
        let _ = r.requirement(&s);
        let _ = r.evaluate(&s, &DeviceFacts::mdev("mtty", "", "mtty", Some("0.1"), "mtty-1", 1));
    }

    /// Placement traits are step a: a target carries every trait a source requires exactly when
    /// its attributes (from facts, or from the kernel's string) satisfy the source's requirement;
    /// where the source's traits say they are coarse, only soundness holds (never fewer targets).
    #[test]
    fn placement_traits_agree_with_step_a(
        src in device(),
        dst in device(),
        sv in wide_version(),
        tv in wide_version(),
        from_kernel in any::<bool>(),
    ) {
        let r = Registry::new(Catalog::embedded());
        prop_assume!(!matches!(src.kind, devmig_vendors::FactsKind::MdevType));
        let src = DeviceFacts { driver_version: Some(sv), ..src };
        let dst = DeviceFacts { driver_version: Some(tv), ..dst };
        let s = r.version(&src).expect("version");
        let req = r.requirement(&s).expect("requirement");
        let model = r.model_for_version(&s).map_or(OPAQUE_MODEL, |m| m.name());
        let attrs = if from_kernel {
            let v = r.version(&dst).expect("target version");
            r.describe(Some(&dst), Some(&v)).expect("describe").attributes
        } else {
            r.attributes(&dst).expect("attributes")
        };
        let want = source_traits(&r, model, &req);
        let have = target_traits(&r, &attrs);
        let satisfied = req.satisfied_by(&attrs);
        let carried = want.required.is_subset(&have);
        prop_assert!(!satisfied || carried, "unsound: {s} -> {attrs:?} lacks {:?}", want.required.difference(&have).collect::<Vec<_>>());
        prop_assert!(!want.coarse.is_empty() || satisfied == carried, "inexact: {s} -> {attrs:?}, traits {have:?}");
        for t in have.iter().chain(&want.required) {
            prop_assert!(is_custom_trait(t), "{t} is not a custom trait name");
        }
    }

    /// A string no model knows requires its driver prefix: opaque devices of that prefix and
    /// devices of any model whose kernel shows it carry the trait, others do not.
    #[test]
    fn opaque_sources_find_their_prefix_by_traits(prefix in "[a-z][a-z0-9]{0,6}", other in "[a-z][a-z0-9]{0,6}", dst in device()) {
        let r = Registry::new(Catalog::embedded());
        let source = format!("{prefix}-opaque-1");
        prop_assume!(r.model_for_version(&source).is_none());
        let want = source_traits(&r, OPAQUE_MODEL, &r.requirement(&source).expect("requirement"));
        prop_assert!(want.coarse.is_empty());
        let same = opaque_attributes(&format!("{prefix}-2"), None);
        let differs = opaque_attributes(&format!("{other}-2"), None);
        prop_assert!(want.required.is_subset(&target_traits(&r, &same)));
        prop_assert_eq!(want.required.is_subset(&target_traits(&r, &differs)), prefix == other);
        let v = r.version(&dst).expect("version");
        let described = r.describe(Some(&dst), Some(&v)).expect("describe").attributes;
        let req = r.requirement(&source).expect("requirement");
        prop_assert_eq!(want.required.is_subset(&target_traits(&r, &described)), req.satisfied_by(&described));
    }
}
