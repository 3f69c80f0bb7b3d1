//! A domain's host devices: the `<hostdev>` elements of `<devices>` that assign an mdev or a
//! PCI function, with the host device each names.
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use quick_xml::writer::Writer;

use crate::LibvirtError;

/// One assigned host device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hostdev {
    /// Its position among the domain's `<hostdev>` elements (from 1).
    pub index: usize,
    /// `mdev` or `pci`.
    pub kind: String,
    /// The host device as devmig names it: an mdev's UUID, a function's `dddd:bb:ss.f`.
    pub device: String,
}

/// Where a visitor stands: the hostdev whose source address it sees.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub index: usize,
    pub kind: String,
}

/// The value of attribute `name`, unescaped.
pub(crate) fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

/// A number as libvirt writes PCI address parts: `0x` hex, or decimal.
fn number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The device a hostdev's source `<address>` names.
pub(crate) fn device_of(site: &Site, e: &BytesStart<'_>) -> Result<String, LibvirtError> {
    let bad = |detail: String| LibvirtError::BadHostdev { index: site.index, kind: site.kind.clone(), detail };
    if site.kind == "mdev" {
        let uuid = attr(e, "uuid").ok_or_else(|| bad("its source address has no uuid".into()))?;
        if !is_uuid(&uuid) {
            return Err(bad(format!("{uuid:?} is not a UUID")));
        }
        return Ok(uuid.to_ascii_lowercase());
    }
    let part = |name: &str, max: u32, default: Option<u32>| -> Result<u32, LibvirtError> {
        match attr(e, name) {
            Some(v) => number(&v)
                .filter(|n| *n <= max)
                .ok_or_else(|| bad(format!("{name}={v:?} is not a number up to {max:#x}"))),
            None => default.ok_or_else(|| bad(format!("its source address has no {name}"))),
        }
    };
    let (d, b, s, f) = (
        part("domain", 0xffff, Some(0))?,
        part("bus", 0xff, None)?,
        part("slot", 0x1f, None)?,
        part("function", 7, None)?,
    );
    Ok(format!("{d:04x}:{b:02x}:{s:02x}.{f:x}"))
}

/// `(domain, bus, slot, function)` of a `dddd:bb:ss.f` address (hex), or None.
pub(crate) fn pci_parts(s: &str) -> Option<(u32, u32, u32, u32)> {
    let (dbs, f) = s.rsplit_once('.')?;
    let mut it = dbs.split(':');
    let (d, b, sl) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || d.len() != 4 || b.len() != 2 || sl.len() != 2 || f.len() != 1 {
        return None;
    }
    let hex = |x: &str| u32::from_str_radix(x, 16).ok();
    let (d, b, sl, f) = (hex(d)?, hex(b)?, hex(sl)?, hex(f)?);
    (sl <= 0x1f && f <= 7).then_some((d, b, sl, f))
}

/// True for the 8-4-4-4-12 hex form.
pub(crate) fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if [8, 13, 18, 23].contains(&i) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Streams `xml` through, handing each mdev/PCI hostdev's source `<address>` to `visit`, which
/// may give a replacement element; everything else is written back as it was read.
pub(crate) fn walk(
    xml: &str,
    mut visit: impl FnMut(&Site, &BytesStart<'_>) -> Result<Option<BytesStart<'static>>, LibvirtError>,
) -> Result<String, LibvirtError> {
    let mut reader = Reader::from_str(xml);
    let mut writer = Writer::new(Vec::with_capacity(xml.len()));
    let mut stack: Vec<String> = Vec::new();
    let mut current: Option<(Site, bool)> = None;
    let mut count = 0;
    let xml_error = |reader: &Reader<&[u8]>, e: &dyn std::fmt::Display| LibvirtError::Xml {
        position: reader.error_position(),
        detail: e.to_string(),
    };
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, &e))?;
        let mut replaced = None;
        match &event {
            Event::Eof if stack.is_empty() => break,
            Event::Eof => {
                return Err(LibvirtError::Xml {
                    position: reader.buffer_position(),
                    detail: format!("the document ends inside <{}>", stack.join("><")),
                });
            }
            Event::Start(e) | Event::Empty(e) => {
                let name = e.name().as_ref().to_string();
                let empty = matches!(event, Event::Empty(_));
                if name == "hostdev" && stack.last().is_some_and(|p| p == "devices") {
                    count += 1;
                    let kind = attr(e, "type").unwrap_or_default();
                    if attr(e, "mode").as_deref() == Some("subsystem") && (kind == "mdev" || kind == "pci") {
                        let site = Site { index: count, kind };
                        if empty {
                            return Err(LibvirtError::BadHostdev {
                                index: site.index,
                                kind: site.kind,
                                detail: "it has no source".into(),
                            });
                        }
                        current = Some((site, false));
                    }
                }
                let at_source =
                    stack.len() >= 2 && stack[stack.len() - 1] == "source" && stack[stack.len() - 2] == "hostdev";
                if name == "address" && at_source {
                    if let Some((site, seen)) = current.as_mut().filter(|(_, seen)| !*seen) {
                        *seen = true;
                        replaced = visit(site, e)?.map(|new| if empty { Event::Empty(new) } else { Event::Start(new) });
                    }
                }
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                let name = stack.pop();
                if name.as_deref() == Some("hostdev") && stack.last().is_some_and(|p| p == "devices") {
                    if let Some((site, false)) = current.take() {
                        return Err(LibvirtError::BadHostdev {
                            index: site.index,
                            kind: site.kind,
                            detail: "its <source> names no <address>".into(),
                        });
                    }
                }
            }
            _ => {}
        }
        writer.write_event(replaced.unwrap_or(event)).map_err(|e| xml_error(&reader, &e))?;
    }
    String::from_utf8(writer.into_inner()).map_err(|e| LibvirtError::Xml { position: 0, detail: e.to_string() })
}

/// The mdevs and PCI functions `xml` (a domain) assigns, in document order.
pub fn hostdevs(xml: &str) -> Result<Vec<Hostdev>, LibvirtError> {
    let mut out = Vec::new();
    walk(xml, |site, e| {
        out.push(Hostdev { index: site.index, kind: site.kind.clone(), device: device_of(site, e)? });
        Ok(None)
    })?;
    Ok(out)
}

/// A domain: its name and UUID (from `<domain>`'s `<name>` and `<uuid>`) and its host devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// `<name>`.
    pub name: String,
    /// `<uuid>`, when the XML has one (a domain being defined may not).
    pub uuid: Option<String>,
    /// Its mdevs and PCI functions.
    pub hostdevs: Vec<Hostdev>,
}

/// The domain `xml` describes.
pub fn domain(xml: &str) -> Result<Domain, LibvirtError> {
    let hostdevs = hostdevs(xml)?;
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let (mut name, mut uuid) = (None, None);
    loop {
        let event = reader
            .read_event()
            .map_err(|e| LibvirtError::Xml { position: reader.error_position(), detail: e.to_string() })?;
        match event {
            Event::Eof => break,
            Event::Start(e) => stack.push(e.name().as_ref().to_string()),
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) if stack.len() == 2 && stack[0] == "domain" => {
                let text = t.xml_content(XmlVersion::Implicit1_0).trim().to_string();
                match stack[1].as_str() {
                    "name" => name = Some(text),
                    "uuid" => uuid = Some(text.to_ascii_lowercase()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| LibvirtError::Xml { position: 0, detail: "the document is no <domain> with a <name>".into() })?;
    Ok(Domain { name, uuid, hostdevs })
}
