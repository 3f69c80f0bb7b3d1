//! The destination's domain XML: every assigned host device pointed at its target.
use std::collections::BTreeMap;

use quick_xml::events::BytesStart;

use crate::LibvirtError;
use crate::hostdev::{attr, device_of, is_uuid, pci_parts, walk};

/// `xml` with the source `<address>` of every mdev and PCI hostdev replaced by its target's
/// (`targets`: source device id -> target device id, as devmig names them: an mdev's UUID, a
/// function's `dddd:bb:ss.f`). Nothing else changes: other elements, attributes, the guest-side
/// addresses, comments and whitespace are written back as read. A hostdev without a target, or
/// whose target is another kind of device, is an error and nothing is returned.
pub fn rewrite(xml: &str, targets: &BTreeMap<String, String>) -> Result<String, LibvirtError> {
    walk(xml, |site, e| {
        let device = device_of(site, e)?;
        let target =
            targets.get(&device).ok_or_else(|| LibvirtError::NoTarget { index: site.index, device: device.clone() })?;
        let kind_change = || LibvirtError::KindChange {
            index: site.index,
            device: device.clone(),
            target: target.clone(),
            kind: site.kind.clone(),
        };
        let replace: Vec<(&str, String)> = if site.kind == "mdev" {
            if !is_uuid(target) {
                return Err(kind_change());
            }
            vec![("uuid", target.to_ascii_lowercase())]
        } else {
            let (d, b, s, f) = pci_parts(target).ok_or_else(kind_change)?;
            vec![
                ("domain", format!("0x{d:04x}")),
                ("bus", format!("0x{b:02x}")),
                ("slot", format!("0x{s:02x}")),
                ("function", format!("0x{f:x}")),
            ]
        };
        Ok(Some(with_attributes(e, &replace)))
    })
}

/// `e` with `replace`'s attributes set (in place where they were, appended where they were not).
fn with_attributes(e: &BytesStart<'_>, replace: &[(&str, String)]) -> BytesStart<'static> {
    let name = e.name().as_ref().to_string();
    let mut out = BytesStart::new(name);
    let mut done = Vec::new();
    for a in e.attributes().flatten() {
        let key = a.key.as_ref().to_string();
        match replace.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => {
                out.push_attribute((*k, v.as_str()));
                done.push(*k);
            }
            None => {
                let value = attr(e, &key).unwrap_or_default();
                out.push_attribute((key.as_str(), value.as_str()));
            }
        }
    }
    for (k, v) in replace.iter().filter(|(k, _)| !done.contains(k)) {
        out.push_attribute((*k, v.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostdevs;

    const DOMAIN: &str = r#"<domain type='kvm'>
  <name>vm1</name>
  <!-- a comment that stays -->
  <devices>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' display='off'>
      <source>
        <address uuid='4B20D080-1B54-4048-85B3-A6A62D165C01'/>
      </source>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source>
        <address domain='0x0000' bus='0x3d' slot='0x00' function='0x1'/>
      </source>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='usb'>
      <source><vendor id='0x1234'/><product id='0xbeef'/></source>
    </hostdev>
  </devices>
</domain>
"#;

    fn targets() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("4b20d080-1b54-4048-85b3-a6a62d165c01".to_string(), "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0".to_string()),
            ("0000:3d:00.1".to_string(), "0000:5e:00.3".to_string()),
        ])
    }

    #[test]
    fn hostdevs_are_named_as_devmig_names_devices() {
        let found = hostdevs(DOMAIN).expect("hostdevs");
        assert_eq!(
            found.iter().map(|h| (h.index, h.kind.as_str(), h.device.as_str())).collect::<Vec<_>>(),
            [(1, "mdev", "4b20d080-1b54-4048-85b3-a6a62d165c01"), (2, "pci", "0000:3d:00.1")]
        );
    }

    #[test]
    fn a_domain_is_its_name_uuid_and_hostdevs() {
        let d = crate::domain(DOMAIN).expect("domain");
        assert_eq!((d.name.as_str(), d.uuid.as_deref(), d.hostdevs.len()), ("vm1", None, 2));
        let with_uuid =
            DOMAIN.replace("<name>vm1</name>", "<name>vm1</name><uuid>AB8A0C6E-1B54-4048-85B3-A6A62D165C01</uuid>");
        assert_eq!(
            crate::domain(&with_uuid).expect("domain").uuid.as_deref(),
            Some("ab8a0c6e-1b54-4048-85b3-a6a62d165c01")
        );
        assert!(crate::domain("<network><name>x</name></network>").is_err(), "not a domain");
    }

    #[test]
    fn only_the_source_addresses_change() {
        let out = rewrite(DOMAIN, &targets()).expect("rewrite");
        let expected = DOMAIN
            .replace("uuid='4B20D080-1B54-4048-85B3-A6A62D165C01'", "uuid=\"0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0\"")
            .replace(
                "<address domain='0x0000' bus='0x3d' slot='0x00' function='0x1'/>",
                "<address domain=\"0x0000\" bus=\"0x5e\" slot=\"0x00\" function=\"0x3\"/>",
            );
        assert_eq!(out, expected);
    }

    #[test]
    fn a_hostdev_without_a_target_or_of_another_kind_is_refused() {
        let mut t = targets();
        t.remove("0000:3d:00.1");
        assert_eq!(rewrite(DOMAIN, &t), Err(LibvirtError::NoTarget { index: 2, device: "0000:3d:00.1".into() }));
        let mut t = targets();
        t.insert("4b20d080-1b54-4048-85b3-a6a62d165c01".into(), "0000:6b:00.1".into());
        assert!(matches!(rewrite(DOMAIN, &t), Err(LibvirtError::KindChange { index: 1, .. })));
    }

    #[test]
    fn malformed_input_is_named() {
        assert!(matches!(rewrite("<domain><devices>", &targets()), Err(LibvirtError::Xml { .. })));
        let no_source = "<domain><devices><hostdev mode='subsystem' type='pci'><source/></hostdev></devices></domain>";
        assert!(matches!(hostdevs(no_source), Err(LibvirtError::BadHostdev { index: 1, .. })));
        let bad_bus = "<domain><devices><hostdev mode='subsystem' type='pci'><source><address bus='0x1ff' slot='0' function='0'/></source></hostdev></devices></domain>";
        let e = hostdevs(bad_bus).expect_err("bus");
        assert!(e.to_string().contains("bus=\"0x1ff\""), "{e}");
    }
}
