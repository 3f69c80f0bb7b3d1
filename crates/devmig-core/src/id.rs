use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::CoreError;

/// A PCI address `DDDD:BB:DD.F` (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress(String);

impl PciAddress {
    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PciAddress {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let b = s.as_bytes();
        let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
        let ok = b.len() == 12
            && hex(0..4)
            && b[4] == b':'
            && hex(5..7)
            && b[7] == b':'
            && hex(8..10)
            && b[10] == b'.'
            && (b'0'..=b'7').contains(&b[11])
            && u8::from_str_radix(&s[8..10], 16).is_ok_and(|d| d < 32);
        if !ok {
            return Err(CoreError::InvalidId {
                id: s.to_string(),
                why: "a PCI address is DDDD:BB:DD.F (hex, device < 0x20, function 0-7)".into(),
            });
        }
        Ok(PciAddress(s.to_ascii_lowercase()))
    }
}

/// What a DEVICE argument names: a PCI function, an mdev, or an mdev type of a parent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceId {
    /// A PCI function (`0000:00:02.0`).
    Pci(PciAddress),
    /// An mdev by UUID (lower-case).
    Mdev(String),
    /// An mdev type of a parent (`0000:00:02.0/i915-GVTg_V5_4`, `mtty/mtty-2`).
    MdevType {
        /// The parent's name under `/sys/class/mdev_bus`.
        parent: String,
        /// The type id.
        type_id: String,
    },
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(
            |(i, c)| {
                if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() }
            },
        )
}

/// A name that is one safe path component of the given alphabet.
fn is_component(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"_-".contains(&c) || extra.contains(&c))
}

impl FromStr for DeviceId {
    type Err = CoreError;
    /// Strict grammar: nothing that could leave the sysfs tree gets through.
    fn from_str(s: &str) -> Result<Self, CoreError> {
        let bad = |why: &str| CoreError::InvalidId { id: s.chars().take(100).collect(), why: why.to_string() };
        if let Some((parent, ty)) = s.split_once('/') {
            if !is_component(parent, b".:") {
                return Err(bad(
                    "the parent of PARENT/TYPE-ID must be a PCI address or a name of [A-Za-z0-9_.:-] not starting with '.'",
                ));
            }
            if !is_component(ty, b".") {
                return Err(bad(
                    "the TYPE-ID of PARENT/TYPE-ID must be [A-Za-z0-9_.-] (at most 64) and not start with '.'",
                ));
            }
            let parent = match parent.parse::<PciAddress>() {
                Ok(p) => p.0,
                Err(_) => parent.to_string(),
            };
            return Ok(DeviceId::MdevType { parent, type_id: ty.to_string() });
        }
        if is_uuid(s) {
            return Ok(DeviceId::Mdev(s.to_ascii_lowercase()));
        }
        s.parse::<PciAddress>()
            .map(DeviceId::Pci)
            .map_err(|_| bad("expected a PCI address (0000:00:02.0), an mdev UUID, or PARENT/TYPE-ID"))
    }
}

impl DeviceId {
    /// The node directory, relative to the sysfs root.
    pub fn node_path(&self) -> PathBuf {
        match self {
            DeviceId::Pci(a) => PathBuf::from(format!("sys/bus/pci/devices/{a}")),
            DeviceId::Mdev(u) => PathBuf::from(format!("sys/bus/mdev/devices/{u}")),
            DeviceId::MdevType { parent, type_id } => {
                PathBuf::from(format!("sys/class/mdev_bus/{parent}/mdev_supported_types/{type_id}"))
            }
        }
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceId::Pci(a) => write!(f, "{a}"),
            DeviceId::Mdev(u) => f.write_str(u),
            DeviceId::MdevType { parent, type_id } => write!(f, "{parent}/{type_id}"),
        }
    }
}

impl Serialize for DeviceId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_three_forms() {
        assert_eq!("0000:00:02.0".parse::<DeviceId>().expect("pci").to_string(), "0000:00:02.0");
        assert_eq!("0000:3D:01.1".parse::<DeviceId>().expect("pci").to_string(), "0000:3d:01.1");
        let u = "83B8F4F2-509F-382F-3C1E-E6BFE0FA1001";
        assert_eq!(u.parse::<DeviceId>().expect("uuid"), DeviceId::Mdev(u.to_ascii_lowercase()));
        assert_eq!(
            "0000:00:02.0/i915-GVTg_V5_4".parse::<DeviceId>().expect("type"),
            DeviceId::MdevType { parent: "0000:00:02.0".into(), type_id: "i915-GVTg_V5_4".into() }
        );
        assert!(matches!("mtty/mtty-2".parse::<DeviceId>(), Ok(DeviceId::MdevType { .. })));
    }

    #[test]
    fn rejects_anything_that_could_escape_the_tree() {
        for bad in [
            "",
            "..",
            "../../etc",
            "0000:00:02.0/..",
            "0000:00:02.0/../x",
            "../x/y",
            "a/b/c",
            "/abs",
            "0000:00:20.0",
            "0000:00:02.8",
            "0000:00:02.0 ",
            "x/.hidden",
            ".x/y",
            "a\0b/c",
            "0000:00:02.0/i915\n",
            "mtty/mtty 2",
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad:?} must be rejected");
        }
    }
}
