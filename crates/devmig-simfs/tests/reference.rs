//! A reference model of an emulated host's state (mdevs, enabled VFs, driver bindings,
//! overrides, IOMMU groups) drives random sequences of writes to `create`, `remove`,
//! `sriov_numvfs`, `sriov_drivers_autoprobe`, `driver_override`, `bind`, `unbind` and
//! `drivers_probe`. After each step the host's whole visible tree (paths, modes, link targets,
//! contents) must equal the tree of a host built fresh from a spec that states the model's
//! state: the write path and the build path cannot drift apart. FUSE-free (Host by inode).
use std::collections::{BTreeMap, BTreeSet};

use devmig_simfs::host::{Errno, Host, Kind};
use devmig_simfs::spec::HostSpec;
use devmig_vendors::{Catalog, Registry};
use proptest::prelude::*;

mod common;

const PF: &str = "0000:3d:00.0";
const PF_GROUP: u32 = 10;
const TOTAL_VFS: u16 = 4;
/// mtty's parent holds 4 ports; mtty-1 takes 1, mtty-2 takes 2.
const PORTS: u32 = 4;
const TYPES: [(&str, u32); 2] = [("mtty-1", 1), ("mtty-2", 2)];
const DRIVERS: [&str; 2] = ["nvme", "vfio-pci"];

/// A function's binding as the model tracks it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Binding {
    bound: Option<&'static str>,
    driver_override: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Model {
    pf: Binding,
    autoprobe: bool,
    /// Enabled VFs: binding and IOMMU group.
    vfs: Vec<(Binding, u32)>,
    /// mdevs by uuid byte: type, IOMMU group, VFIO index.
    mdevs: BTreeMap<u8, (usize, u32, u32)>,
}

impl Model {
    fn initial() -> Self {
        Model {
            pf: Binding { bound: Some("nvme"), driver_override: None },
            autoprobe: true,
            vfs: vec![(Binding { bound: Some("nvme"), driver_override: None }, 11)],
            mdevs: BTreeMap::new(),
        }
    }

    fn groups(&self) -> BTreeSet<u32> {
        let mut g: BTreeSet<u32> = self.vfs.iter().map(|v| v.1).collect();
        g.insert(PF_GROUP);
        g.extend(self.mdevs.values().map(|m| m.1));
        g
    }

    fn lowest(taken: &BTreeSet<u32>) -> u32 {
        (0..).find(|n| !taken.contains(n)).unwrap_or(u32::MAX)
    }

    fn ports(&self) -> u32 {
        self.mdevs.values().map(|m| TYPES[m.0].1).sum()
    }

    /// The binding of function `f` (0 = the PF, i + 1 = VF i).
    fn binding(&mut self, f: usize) -> Option<&mut Binding> {
        if f == 0 { Some(&mut self.pf) } else { self.vfs.get_mut(f - 1).map(|v| &mut v.0) }
    }

    fn can_probe(&self, f: usize) -> bool {
        f == 0 || self.autoprobe || self.vfs.get(f - 1).is_some_and(|v| v.0.driver_override.is_some())
    }

    /// The first driver, in name order, whose match rule takes function `f`.
    fn matches(b: &Binding, driver: &str) -> bool {
        match b.driver_override {
            Some(o) => o == driver,
            None => driver == "nvme",
        }
    }

    fn unbind(&mut self, f: usize) {
        if f == 0 {
            self.vfs.clear();
        }
        if let Some(b) = self.binding(f) {
            b.bound = None;
        }
    }

    /// The spec of a host in this state.
    fn spec(&self) -> String {
        let binding = |b: &Binding| {
            let mut s = format!("bound_driver = \"{}\"\n", b.bound.unwrap_or(""));
            if let Some(o) = b.driver_override {
                s.push_str(&format!("driver_override = \"{o}\"\n"));
            }
            s
        };
        let mut s = format!(
            "hostname = \"ref\"\n[[pci]]\naddress = \"{PF}\"\nid = \"144d:a824\"\nclass = \"0x010802\"\n\
             driver = \"nvme\"\ndriver_version = \"1.4.0\"\niommu_group = {PF_GROUP}\n{}\
             [pci.sriov]\ntotal_vfs = {TOTAL_VFS}\nenabled = {}\ndrivers_autoprobe = {}\n",
            binding(&self.pf),
            self.vfs.len(),
            self.autoprobe
        );
        let listed = self.vfs.len().max(1);
        for i in 0..listed {
            s.push_str(&format!(
                "[[pci.sriov.vfs]]\naddress = \"0000:3d:00.{}\"\nid = \"144d:a824\"\nclass = \"0x010802\"\n\
                 driver = \"nvme\"\ndriver_version = \"1.4.0\"\n",
                i + 1
            ));
            if i == 0 {
                s.push_str("params = { remote_storage_url = \"nvme+tcp://s.example/a\" }\n");
            }
            // A VF not enabled is only a template: no group, no binding.
            if let Some((b, g)) = self.vfs.get(i) {
                s.push_str(&format!("iommu_group = {g}\n{}", binding(b)));
            }
        }
        s.push_str(&format!(
            "[[virtual_parent]]\nname = \"mtty\"\ndriver_version = \"0.1\"\n[virtual_parent.mdev]\n\
             capacity = {PORTS}\ntypes = [{{ id = \"mtty-1\" }}, {{ id = \"mtty-2\" }}]\n"
        ));
        for (u, (t, g, v)) in &self.mdevs {
            s.push_str(&format!(
                "[[mdev]]\nuuid = \"{}\"\nparent = \"mtty\"\ntype = \"{}\"\niommu_group = {g}\nvfio = {v}\n",
                uuid(*u),
                TYPES[*t].0
            ));
        }
        s
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8, usize),
    Remove(u8),
    NumVfs(u16),
    Autoprobe(bool),
    Override(usize, Option<usize>),
    Bind(usize, usize),
    Unbind(usize, usize),
    Probe(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let function = 0usize..4;
    prop_oneof![
        (0u8..4, 0usize..2).prop_map(|(u, t)| Op::Create(u, t)),
        (0u8..4).prop_map(Op::Remove),
        (0u16..6).prop_map(Op::NumVfs),
        any::<bool>().prop_map(Op::Autoprobe),
        (function.clone(), prop::option::of(0usize..2)).prop_map(|(f, d)| Op::Override(f, d)),
        (function.clone(), 0usize..2).prop_map(|(f, d)| Op::Bind(f, d)),
        (function.clone(), 0usize..2).prop_map(|(f, d)| Op::Unbind(f, d)),
        function.prop_map(Op::Probe),
    ]
}

fn uuid(u: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{u:02x}")
}

fn address(f: usize) -> String {
    format!("0000:3d:00.{f}")
}

fn build(text: &str) -> Host {
    HostSpec::from_toml(text, "ref", &Catalog::embedded())
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .build(Registry::new(Catalog::embedded()), "ref")
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Every visible path: kind, permission bits, and a file's content (or its errno) or a
/// link's target. A config space's COMMAND register is left out: it keeps what a driver
/// last set (memory decoding stays on after an unbind), which no spec states.
fn dump(h: &Host) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (path, ino, kind, name) in common::walk(h) {
        let st = h.stat(ino).expect("stat");
        let shown = match kind {
            Kind::Dir => format!("d {:o}", st.perm),
            Kind::Link => format!("l -> {}", String::from_utf8_lossy(&h.readlink(ino).expect("readlink"))),
            Kind::File => {
                let content = match h.read(ino) {
                    // A config space as its non-zero bytes, COMMAND (0x04-0x05) left out.
                    Ok(bytes) if name == "config" => bytes
                        .iter()
                        .enumerate()
                        .filter(|(i, b)| **b != 0 && !(4..6).contains(i))
                        .map(|(i, b)| format!("{i:x}={b:02x}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                    Ok(bytes) => format!("{:?}", String::from_utf8_lossy(&bytes)),
                    Err(Errno(e)) => format!("errno {e}"),
                };
                format!("f {:o} {} {content}", st.perm, st.size)
            }
        };
        out.insert(path, shown);
    }
    out
}

fn write(h: &mut Host, rel: &str, data: &str) -> Result<(), i32> {
    let ino = h.nodes().lookup(rel, true).ok_or(libc::ENOENT)?;
    h.write(ino, data.as_bytes()).map(|_| ()).map_err(|e| e.0)
}

/// Applies `op` to the model and returns the answer the kernel gives.
fn expect(m: &mut Model, op: &Op) -> Result<(), i32> {
    match *op {
        Op::Create(u, t) => {
            if m.mdevs.contains_key(&u) {
                return Err(libc::EEXIST);
            }
            if m.ports() + TYPES[t].1 > PORTS {
                return Err(libc::ENOSPC);
            }
            let group = Model::lowest(&m.groups());
            let vfio = Model::lowest(&m.mdevs.values().map(|x| x.2).collect());
            m.mdevs.insert(u, (t, group, vfio));
            Ok(())
        }
        Op::Remove(u) => m.mdevs.remove(&u).map(|_| ()).ok_or(libc::ENOENT),
        Op::NumVfs(n) => {
            if n > TOTAL_VFS {
                return Err(libc::ERANGE);
            }
            if usize::from(n) == m.vfs.len() {
                return Ok(());
            }
            if m.pf.bound != Some("nvme") {
                return Err(libc::ENOENT);
            }
            if n == 0 {
                m.vfs.clear();
                return Ok(());
            }
            if !m.vfs.is_empty() {
                return Err(libc::EBUSY);
            }
            for _ in 0..n {
                let group = Model::lowest(&m.groups());
                let bound = m.autoprobe.then_some("nvme");
                m.vfs.push((Binding { bound, driver_override: None }, group));
            }
            Ok(())
        }
        Op::Autoprobe(on) => {
            m.autoprobe = on;
            Ok(())
        }
        Op::Override(f, d) => {
            let b = m.binding(f).ok_or(libc::ENOENT)?;
            b.driver_override = d.map(|d| DRIVERS[d]);
            Ok(())
        }
        Op::Bind(f, d) => {
            let can_probe = m.can_probe(f);
            let b = m.binding(f).ok_or(libc::ENODEV)?;
            if !Model::matches(b, DRIVERS[d]) {
                return Err(libc::ENODEV);
            }
            if b.bound.is_some() {
                return Err(libc::EBUSY);
            }
            if !can_probe {
                return Err(libc::ENODEV);
            }
            b.bound = Some(DRIVERS[d]);
            Ok(())
        }
        Op::Unbind(f, d) => {
            let bound = m.binding(f).ok_or(libc::ENODEV)?.bound;
            if bound != Some(DRIVERS[d]) {
                return Err(libc::ENODEV);
            }
            m.unbind(f);
            Ok(())
        }
        Op::Probe(f) => {
            let can_probe = m.can_probe(f);
            let b = m.binding(f).ok_or(libc::ENODEV)?;
            if b.bound.is_none() && can_probe {
                b.bound = DRIVERS.iter().copied().find(|d| Model::matches(b, d));
            }
            Ok(())
        }
    }
}

/// The write that carries `op` out on the host.
fn apply(h: &mut Host, op: &Op) -> Result<(), i32> {
    let pf_dir = format!("sys/bus/pci/devices/{PF}");
    match *op {
        Op::Create(u, t) => {
            write(h, &format!("sys/class/mdev_bus/mtty/mdev_supported_types/{}/create", TYPES[t].0), &uuid(u))
        }
        Op::Remove(u) => write(h, &format!("sys/bus/mdev/devices/{}/remove", uuid(u)), "1"),
        Op::NumVfs(n) => write(h, &format!("{pf_dir}/sriov_numvfs"), &n.to_string()),
        Op::Autoprobe(on) => write(h, &format!("{pf_dir}/sriov_drivers_autoprobe"), if on { "1" } else { "0" }),
        Op::Override(f, d) => write(
            h,
            &format!("sys/bus/pci/devices/{}/driver_override", address(f)),
            &format!("{}\n", d.map_or("", |d| DRIVERS[d])),
        ),
        Op::Bind(f, d) => write(h, &format!("sys/bus/pci/drivers/{}/bind", DRIVERS[d]), &address(f)),
        Op::Unbind(f, d) => write(h, &format!("sys/bus/pci/drivers/{}/unbind", DRIVERS[d]), &address(f)),
        Op::Probe(f) => write(h, "sys/bus/pci/drivers_probe", &format!("{}\n", address(f))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writes_leave_the_tree_a_fresh_build_of_the_state_shows(ops in prop::collection::vec(op(), 1..24)) {
        let mut m = Model::initial();
        let mut h = build(&m.spec());
        for op in &ops {
            let want = expect(&mut m, op);
            prop_assert_eq!(apply(&mut h, op), want, "{:?}", op);
            let (actual, expected) = (dump(&h), dump(&build(&m.spec())));
            if actual != expected {
                let diff: Vec<String> = actual
                    .iter()
                    .filter(|(k, v)| expected.get(*k) != Some(v))
                    .map(|(k, v)| format!("+ {k} {v}"))
                    .chain(expected.iter().filter(|(k, v)| actual.get(*k) != Some(v)).map(|(k, v)| format!("- {k} {v}")))
                    .take(20)
                    .collect();
                prop_assert!(false, "after {:?}:\n{}", op, diff.join("\n"));
            }
        }
    }
}
