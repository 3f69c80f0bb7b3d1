//! Property: for any domain with mdev and PCI hostdevs and a target of the same kind for each,
//! the rewritten domain assigns exactly the targets, in order, and everything outside the
//! source addresses reads the same.
use std::collections::BTreeMap;

use devmig_libvirt::{hostdevs, rewrite};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Dev {
    Mdev(String),
    Pci(u16, u8, u8, u8),
}

impl Dev {
    fn id(&self) -> String {
        match self {
            Dev::Mdev(u) => u.clone(),
            Dev::Pci(d, b, s, f) => format!("{d:04x}:{b:02x}:{s:02x}.{f:x}"),
        }
    }

    fn xml(&self, guest_slot: usize) -> String {
        let source = match self {
            Dev::Mdev(u) => {
                format!("<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{u}'/></source>")
            }
            Dev::Pci(d, b, s, f) => format!(
                "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='{d:#06x}' bus='{b:#04x}' slot='{s:#04x}' function='{f}'/></source>"
            ),
        };
        format!(
            "    {source}<address type='pci' domain='0x0000' bus='0x00' slot='{guest_slot:#04x}' function='0x0'/></hostdev>\n"
        )
    }
}

fn dev() -> impl Strategy<Value = Dev> {
    prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}".prop_map(Dev::Mdev),
        (0u16..3, any::<u8>(), 0u8..32, 0u8..8).prop_map(|(d, b, s, f)| Dev::Pci(d, b, s, f)),
    ]
}

/// A target of the same kind as `d`.
fn like(d: &Dev, seed: u8) -> Dev {
    match d {
        Dev::Mdev(u) => Dev::Mdev(format!("{:02x}{}", seed, &u[2..])),
        Dev::Pci(dom, b, s, f) => Dev::Pci(*dom, b.wrapping_add(seed), (*s + seed) % 32, (*f + 1) % 8),
    }
}

proptest! {
    #[test]
    fn the_rewrite_assigns_exactly_the_targets(devs in prop::collection::btree_map(any::<u8>(), dev(), 1..6), seed in 1u8..200) {
        // Distinct sources (a domain assigns a device once).
        let mut seen = std::collections::BTreeSet::new();
        let devs: Vec<Dev> = devs.into_values().filter(|d| seen.insert(d.id())).collect();
        let body: String = devs.iter().enumerate().map(|(i, d)| d.xml(i + 5)).collect();
        let xml = format!("<domain type='kvm'>\n  <name>vm</name>\n  <devices>\n{body}  </devices>\n</domain>\n");
        let targets: Vec<Dev> = devs.iter().map(|d| like(d, seed)).collect();
        let map: BTreeMap<String, String> = devs.iter().zip(&targets).map(|(d, t)| (d.id(), t.id())).collect();
        let out = rewrite(&xml, &map).expect("rewrite");
        let got: Vec<String> = hostdevs(&out).expect("hostdevs").into_iter().map(|h| h.device).collect();
        prop_assert_eq!(got, targets.iter().map(Dev::id).collect::<Vec<_>>());
        // Outside the source addresses nothing moved: the lines without one are equal.
        let keep = |s: &str| s.lines().map(|l| l.split("<source>").next().unwrap_or("").to_string()).collect::<Vec<_>>();
        prop_assert_eq!(keep(&out), keep(&xml));
        let guest = |s: &str| s.lines().map(|l| l.split("</source>").nth(1).unwrap_or("").to_string()).collect::<Vec<_>>();
        prop_assert_eq!(guest(&out), guest(&xml));
    }
}
