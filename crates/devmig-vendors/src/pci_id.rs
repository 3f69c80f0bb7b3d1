use std::fmt;
use std::str::FromStr;

use crate::VendorError;

/// A PCI vendor:device id pair such as `8086:591d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

impl PciId {
    /// Build from the two ids.
    pub const fn new(vendor: u16, device: u16) -> Self {
        PciId { vendor, device }
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

impl FromStr for PciId {
    type Err = VendorError;
    /// Parses `vvvv:dddd` (exactly four hex digits each, any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (v, d) =
            s.split_once(':').ok_or_else(|| VendorError::bad_value("PCI id", format!("{s:?} is not vendor:device")))?;
        Ok(PciId::new(hex4(v)?, hex4(d)?))
    }
}

/// Parses exactly four hex digits.
pub(crate) fn hex4(s: &str) -> Result<u16, VendorError> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VendorError::bad_value("PCI id", format!("{s:?} is not four hex digits")));
    }
    u16::from_str_radix(s, 16).map_err(|e| VendorError::bad_value("PCI id", format!("{s:?}: {e}")))
}

/// Serialises a `Display + FromStr` type as its text form.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(PciId);
serde_as_text!(crate::DriverVersion);
