use std::fmt;
use std::str::FromStr;

use crate::VendorError;

/// A driver or firmware version read as `major.minor.bugfix`.
///
/// Module versions in the wild are loose ("0.1", "1.4.0-k", "5.1.0.7"): the
/// parser takes the leading dotted numbers, fills missing parts with 0 and
/// ignores any suffix after the third number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriverVersion {
    /// Incompatible across different values.
    pub major: u32,
    /// A target must have a minor at least the source's.
    pub minor: u32,
    /// Does not affect compatibility.
    pub bugfix: u32,
}

impl DriverVersion {
    /// Build from the three parts.
    pub const fn new(major: u32, minor: u32, bugfix: u32) -> Self {
        DriverVersion { major, minor, bugfix }
    }

    /// The reviewers' rule: same major, target minor >= source minor, bugfix ignored.
    pub fn accepts_source(&self, source: &DriverVersion) -> bool {
        self.major == source.major && self.minor >= source.minor
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.bugfix)
    }
}

impl FromStr for DriverVersion {
    type Err = VendorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut parts = [0u32; 3];
        let mut count = 0;
        let mut rest = s;
        while count < 3 {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                break;
            }
            parts[count] = rest[..digits]
                .parse()
                .map_err(|_| VendorError::bad_value("driver version", format!("{s:?}: number too large")))?;
            count += 1;
            rest = &rest[digits..];
            match rest.strip_prefix('.') {
                Some(r) if r.starts_with(|c: char| c.is_ascii_digit()) => rest = r,
                _ => break,
            }
        }
        if count == 0 {
            return Err(VendorError::bad_value(
                "driver version",
                format!("{s:?} does not start with a version number"),
            ));
        }
        Ok(DriverVersion::new(parts[0], parts[1], parts[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loose_module_versions() {
        assert_eq!("0.1".parse(), Ok(DriverVersion::new(0, 1, 0)));
        assert_eq!("1.4.0-k\n".parse(), Ok(DriverVersion::new(1, 4, 0)));
        assert_eq!("5.1.0.7".parse(), Ok(DriverVersion::new(5, 1, 0)));
        assert!("k1.0".parse::<DriverVersion>().is_err());
        assert!("".parse::<DriverVersion>().is_err());
        assert!("99999999999".parse::<DriverVersion>().is_err());
    }

    #[test]
    fn rule_is_directional() {
        let old = DriverVersion::new(1, 2, 9);
        let new = DriverVersion::new(1, 3, 0);
        assert!(new.accepts_source(&old));
        assert!(!old.accepts_source(&new));
        assert!(old.accepts_source(&DriverVersion::new(1, 2, 0)), "bugfix is ignored");
        assert!(!DriverVersion::new(2, 0, 0).accepts_source(&old), "majors never mix");
    }
}
