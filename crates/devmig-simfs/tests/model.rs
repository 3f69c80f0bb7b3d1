//! The FUSE-free host model, without a mount: sysfs semantics by inode, and a
//! property test of create/remove/aggregator against a simple reference model.
use std::collections::BTreeMap;

use devmig_simfs::host::{Errno, Host, Kind};
use devmig_simfs::spec::{EXAMPLE_HOST_A, HostSpec};
use devmig_vendors::{Catalog, Registry};
use proptest::prelude::*;

mod common;

fn host() -> Host {
    HostSpec::from_toml(EXAMPLE_HOST_A, "a", &Catalog::embedded())
        .expect("spec")
        .build(Registry::new(Catalog::embedded()), "a")
        .expect("build")
}

fn ino(h: &Host, rel: &str) -> u64 {
    h.nodes().lookup(rel, true).unwrap_or_else(|| panic!("{rel} missing"))
}

const GPU_TYPES: &str = "sys/class/mdev_bus/0000:00:02.0/mdev_supported_types";
const TYPES: [(&str, u32); 4] =
    [("i915-GVTg_V5_1", 8), ("i915-GVTg_V5_2", 4), ("i915-GVTg_V5_4", 2), ("i915-GVTg_V5_8", 1)];

#[test]
fn attribute_semantics_without_a_mount() {
    let mut h = host();
    let v = ino(&h, "sys/bus/mdev/devices/4b20d080-1b54-4048-85b3-a6a62d165c01/migration_version");
    let own = h.read(v).expect("show");
    assert_eq!(h.write(v, &own), Ok(own.len()), "its own string, newline and all");
    assert_eq!(h.write(v, b"i915-v9-8086-591d-i915-GVTg_V5_4-2"), Err(Errno(libc::EINVAL)));
    assert_eq!(h.open(ino(&h, "sys/bus/pci/devices/0000:00:02.0/vendor"), false, true), Err(Errno(libc::EACCES)));
    let mut long = own.clone();
    long.resize(10_000, b'x');
    assert_eq!(h.write(v, &long), Err(Errno(libc::EINVAL)), "cut to 4096 bytes, then judged");
    let cut = &long[..4096];
    assert_eq!(h.write(v, cut), Err(Errno(libc::EINVAL)));
}

/// The reference: a GPU of 8 units; type i costs 8/N units per instance; mdevs by uuid.
#[derive(Default)]
struct Reference {
    mdevs: BTreeMap<u8, (usize, u32)>,
}

impl Reference {
    fn used(&self) -> u32 {
        self.mdevs.values().map(|(t, a)| TYPES[*t].1 * a).sum::<u32>() + 4 // host A's existing vGPU holds 4 units
    }
    fn available(&self, t: usize) -> u32 {
        (8 - self.used()) / TYPES[t].1
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8, usize),
    Remove(u8),
    Aggregate(u8, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0usize..4).prop_map(|(u, t)| Op::Create(u, t)),
        (0u8..6).prop_map(Op::Remove),
        (0u8..6, 0u32..5).prop_map(|(u, a)| Op::Aggregate(u, a)),
    ]
}

fn uuid(u: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{u:02x}")
}

/// `s` with the numbers the kernel allocates per mdev (its IOMMU group, its VFIO device
/// index: the lowest free, so they depend on the order of creates) replaced by `N`.
fn unnumbered(s: &str) -> String {
    let mut out = s.to_string();
    for marker in ["iommu_groups/", "vfio-dev/vfio"] {
        let mut from = 0;
        while let Some(at) = out[from..].find(marker).map(|i| from + i + marker.len()) {
            let digits = out[at..].bytes().take_while(u8::is_ascii_digit).count();
            out.replace_range(at..at + digits, "N");
            from = at + 1;
        }
    }
    out
}

/// Whether `path` is a per-mdev node outside the mdev's directory that its uuid does not name.
fn numbered_node(path: &str) -> bool {
    path.starts_with("sys/kernel/iommu_groups/N") || path.starts_with("sys/class/vfio-dev/vfioN")
}

/// Every visible path of the tree (links not followed): `dir`, `file`, or `-> target`, with
/// allocated numbers as `N`.
fn tree(h: &Host) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (path, ino, kind, _) in common::walk(h) {
        let shown = unnumbered(&path);
        match kind {
            Kind::Dir => {
                out.insert(shown, "dir".to_string());
            }
            Kind::File => {
                out.insert(shown, "file".to_string());
            }
            Kind::Link => {
                let target = unnumbered(&String::from_utf8_lossy(&h.readlink(ino).expect("readlink")));
                // Links such as class/vfio-dev/vfioN differ only by their target.
                let key = if numbered_node(&shown) { format!("{shown} -> {target}") } else { shown };
                out.insert(key, format!("-> {target}"));
            }
        }
    }
    out
}

/// What one mdev of each type adds to the tree, with its uuid as `{U}`: learned once by
/// creating one on a fresh host (and checked to add nothing else and remove nothing); `None`
/// for a type the host has no room for (the reference never creates one either).
fn mdev_templates(base: &BTreeMap<String, String>) -> Vec<Option<BTreeMap<String, String>>> {
    let probe = "11111111-2222-4333-8444-555555555555";
    TYPES
        .iter()
        .map(|(name, _)| {
            let mut h = host();
            let create = ino(&h, &format!("{GPU_TYPES}/{name}/create"));
            if h.write(create, probe.as_bytes()) == Err(Errno(libc::EUSERS)) {
                return None;
            }
            let after = tree(&h);
            assert!(base.keys().all(|k| after.contains_key(k)), "creating an mdev removed a path");
            after
                .into_iter()
                .filter(|(k, _)| !base.contains_key(k))
                .map(|(k, v)| {
                    assert!(
                        k.contains(probe) || v.contains(probe) || numbered_node(&k),
                        "creating an mdev added {k} {v}"
                    );
                    (k.replace(probe, "{U}"), v.replace(probe, "{U}"))
                })
                .collect::<BTreeMap<_, _>>()
                .into()
        })
        .collect()
}

/// The fresh host's tree and the mdev templates, learned once for every case.
type Trees = (BTreeMap<String, String>, Vec<Option<BTreeMap<String, String>>>);
static TREES: std::sync::LazyLock<Trees> = std::sync::LazyLock::new(|| {
    let base = tree(&host());
    let templates = mdev_templates(&base);
    (base, templates)
});

/// The tree the reference expects: the fresh host's, plus each mdev's template.
fn expected_tree(
    base: &BTreeMap<String, String>,
    templates: &[Option<BTreeMap<String, String>>],
    r: &Reference,
) -> BTreeMap<String, String> {
    let mut t = base.clone();
    for (u, (ty, _)) in &r.mdevs {
        let id = uuid(*u);
        let template = templates[*ty].as_ref().expect("the reference created a type the host has no room for");
        t.extend(template.iter().map(|(k, v)| (k.replace("{U}", &id), v.replace("{U}", &id))));
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn create_remove_aggregate_match_the_reference(ops in prop::collection::vec(op(), 1..30)) {
        let mut h = host();
        let mut r = Reference::default();
        let (base, templates) = &*TREES;
        for op in ops {
            match op {
                Op::Create(u, t) => {
                    let create = ino(&h, &format!("{GPU_TYPES}/{}/create", TYPES[t].0));
                    let expect = if r.mdevs.contains_key(&u) {
                        Err(Errno(libc::EEXIST))
                    } else if r.available(t) < 1 {
                        Err(Errno(libc::EUSERS))
                    } else {
                        r.mdevs.insert(u, (t, 1));
                        Ok(37)
                    };
                    prop_assert_eq!(h.write(create, format!("{}\n", uuid(u)).as_bytes()), expect);
                }
                Op::Remove(u) => {
                    let exists = r.mdevs.remove(&u).is_some();
                    let path = format!("sys/bus/mdev/devices/{}/remove", uuid(u));
                    match h.nodes().lookup(&path, true) {
                        Some(i) => {
                            prop_assert!(exists);
                            prop_assert_eq!(h.write(i, b"1"), Ok(1));
                        }
                        None => prop_assert!(!exists),
                    }
                }
                Op::Aggregate(u, a) => {
                    let Some(&(t, old)) = r.mdevs.get(&u) else { continue };
                    let i = ino(&h, &format!("sys/bus/mdev/devices/{}/aggregator", uuid(u)));
                    let cost = TYPES[t].1;
                    let expect = if a == 0 || a * cost > 8 {
                        Err(Errno(libc::EINVAL))
                    } else if r.used() - old * cost + a * cost > 8 {
                        Err(Errno(libc::EUSERS))
                    } else {
                        r.mdevs.insert(u, (t, a));
                        Ok(2)
                    };
                    prop_assert_eq!(h.write(i, format!("{a}\n").as_bytes()), expect);
                }
            }
            for (t, (name, _)) in TYPES.iter().enumerate() {
                let avail = h.read(ino(&h, &format!("{GPU_TYPES}/{name}/available_instances"))).expect("read");
                prop_assert_eq!(String::from_utf8_lossy(&avail).trim().parse::<u32>().ok(), Some(r.available(t)), "{}", name);
            }
            let listed = h.nodes().lookup("sys/bus/mdev/devices", true).map(|d| h.readdir(d).expect("readdir").len() - 2);
            prop_assert_eq!(listed, Some(r.mdevs.len() + 3));
            // The whole visible tree, not only the counts: nothing added, left or lost.
            let (actual, expected) = (tree(&h), expected_tree(base, templates, &r));
            let extra: Vec<&String> = actual.keys().filter(|k| !expected.contains_key(*k)).collect();
            let missing: Vec<&String> = expected.keys().filter(|k| !actual.contains_key(*k)).collect();
            prop_assert!(actual == expected, "extra {:?}, missing {:?}", extra, missing);
        }
    }
}

#[test]
fn a_spec_with_more_mdevs_than_its_parent_holds_is_refused() {
    let text = String::from(
        "hostname = \"full\"\n[[virtual_parent]]\nname = \"mtty\"\ndriver_version = \"0.1\"\n[virtual_parent.mdev]\ntypes = [{ id = \"mtty-1\" }]\n",
    );
    let spec_with = |n: usize| {
        let mut t = text.clone();
        for i in 0..n {
            t.push_str(&format!(
                "[[mdev]]\nuuid = \"00000000-0000-4000-8000-{i:012x}\"\nparent = \"mtty\"\ntype = \"mtty-1\"\n"
            ));
        }
        t
    };
    let catalog = Catalog::embedded();
    let build =
        |t: &str| HostSpec::from_toml(t, "t", &catalog).and_then(|s| s.build(Registry::new(Catalog::embedded()), "t"));
    // mtty has 24 ports: 24 single-port instances fit, a 25th does not.
    assert!(build(&spec_with(24)).is_ok());
    let Err(e) = build(&spec_with(25)) else { panic!("25 single-port mdevs on 24 ports were accepted") };
    let e = e.to_string();
    assert!(e.contains("25 units") && e.contains("capacity of 24"), "{e}");
}
