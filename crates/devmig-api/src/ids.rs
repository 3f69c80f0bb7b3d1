//! Ids and bounds validated by one rule each, wherever they arrive: a migration id, a host
//! name, an agent identity, a claim's ttl; and the one encoder of a device id as a URL segment.
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The device id grammar of `DeviceId::from_str`, as a JSON Schema pattern: a PCI address
/// (device below 0x20), an mdev UUID (also what claim ids are), or PARENT/TYPE-ID.
pub const DEVICE_ID_PATTERN: &str = "^([0-9A-Fa-f]{4}:[0-9A-Fa-f]{2}:[01][0-9A-Fa-f]\\.[0-7]\
                                     |[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\
                                     |[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,63}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63})$";

/// PARENT/TYPE-ID alone.
pub const TYPE_ID_PATTERN: &str = "^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,63}/[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$";

/// A version string as `validate_version` accepts it: printable ASCII, space to `~`.
pub const VERSION_PATTERN: &str = "^[ -~]+$";

/// A host name ([`valid_host_name`]) as a JSON Schema pattern.
pub const HOST_NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$";

/// A migration id as a JSON Schema pattern.
pub const MIGRATION_ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

/// An agent identity ([`valid_identity`]) as a JSON Schema pattern.
pub const IDENTITY_PATTERN: &str = "^[A-Za-z0-9-]{1,64}$";

/// A validated string: `FromStr` and serde (`try_from`/`into` String) both apply `$valid`,
/// naming `$what` and `$rule` in the error.
macro_rules! validated_string {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:literal, $valid:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = ApiError;
            fn from_str(s: &str) -> Result<Self, ApiError> {
                let valid: fn(&str) -> bool = $valid;
                if valid(s) { Ok($name(s.to_string())) } else { Err(ApiError::invalid($what, s, $rule)) }
            }
        }

        impl TryFrom<String> for $name {
            type Error = ApiError;
            fn try_from(s: String) -> Result<Self, ApiError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

validated_string!(
    /// A caller's migration id, the idempotency key of claims and placements:
    /// 1..=128 of `[A-Za-z0-9._:-]`.
    MigrationId,
    "migration_id",
    "1..=128 of [A-Za-z0-9._:-]",
    |s| (1..=MIGRATION_ID_MAX_LEN).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
);

/// Longest migration id.
pub const MIGRATION_ID_MAX_LEN: usize = 128;

impl MigrationId {
    /// The id of part `n` of a multi-device migration (`<id>.<n>`), as the fleet claims each
    /// target on an agent; an error when it would be too long.
    pub fn part(&self, n: usize) -> Result<MigrationId, ApiError> {
        format!("{}.{n}", self.0).parse()
    }
}

/// True for a host name as agents report it and `HOST:DEVICE` names it: 1..=253 of
/// `[A-Za-z0-9._-]`, starting with a letter or digit (so never `.`, `..` or `-`).
pub fn valid_host_name(h: &str) -> bool {
    (1..=253).contains(&h.len())
        && h.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

validated_string!(
    /// A host name ([`valid_host_name`]).
    HostName,
    "host",
    "1..=253 of [A-Za-z0-9._-], starting with a letter or digit",
    valid_host_name
);

/// Checks an agent's base URL, the one rule for every place that stores or calls one (the
/// fleet sends its agent credentials there): an `http://` or `https://` URL with a host, no
/// user info, query or fragment, no path beyond `/`, at most 2048 characters, and no control
/// characters, spaces or non-ASCII characters anywhere.
pub fn check_agent_url(url: &str) -> Result<(), ApiError> {
    let bad = |rule: &'static str| Err(ApiError::invalid("agent URL", url, rule));
    if url.len() > 2048 {
        return bad("at most 2048 characters");
    }
    if url.bytes().any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii()) {
        return bad("free of control characters, spaces and non-ASCII characters");
    }
    let Ok(parsed) = reqwest::Url::parse(url) else { return bad("an http:// or https:// URL") };
    if !matches!(parsed.scheme(), "http" | "https") {
        return bad("an http:// or https:// URL");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return bad("a URL with a host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return bad("a URL without user info");
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !matches!(parsed.path(), "" | "/") {
        return bad("the agent's base URL (no path, query or fragment)");
    }
    Ok(())
}

/// True for an agent identity: 1..=64 of `[A-Za-z0-9-]` (a UUID as the agent generates it).
pub fn valid_identity(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// How long a claim holds its device, in seconds: 1..=86400 (a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Ttl(u64);

impl Ttl {
    /// Longest ttl.
    pub const MAX_SECONDS: u64 = 86_400;
    /// What the fleet asks for when a request names none.
    pub const DEFAULT: Ttl = Ttl(600);

    /// The ttl in seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }
}

impl TryFrom<u64> for Ttl {
    type Error = ApiError;
    fn try_from(s: u64) -> Result<Self, ApiError> {
        if (1..=Self::MAX_SECONDS).contains(&s) {
            Ok(Ttl(s))
        } else {
            Err(ApiError::invalid("ttl_seconds", &s.to_string(), "1..=86400"))
        }
    }
}

impl std::str::FromStr for Ttl {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self, ApiError> {
        s.parse::<u64>().map_err(|_| ApiError::invalid("ttl_seconds", s, "1..=86400")).and_then(Ttl::try_from)
    }
}

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Ttl> for u64 {
    fn from(t: Ttl) -> u64 {
        t.0
    }
}

/// A device id (or claim id) as one URL path segment: `%` and a type's `/` percent-encoded,
/// so `0000:00:02.0/i915-GVTg_V5_4` stays one segment.
pub fn segment(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}

impl schemars::JsonSchema for MigrationId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MigrationId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "pattern": MIGRATION_ID_PATTERN,
            "description": "the caller's migration id: 1..=128 of [A-Za-z0-9._:-]"})
    }
}

impl schemars::JsonSchema for Ttl {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Ttl".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": Ttl::MAX_SECONDS,
            "description": "seconds until the claim expires"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_rule_each_with_the_field_named() {
        assert!("vm-1.0:a_b".parse::<MigrationId>().is_ok());
        let long = "m".repeat(128);
        let id: MigrationId = long.parse().expect("128 is the limit");
        assert!(id.part(0).is_err(), "a part id longer than 128 is refused");
        for bad in ["", "a b", "x/y", "é"] {
            let e = bad.parse::<MigrationId>().expect_err(bad).to_string();
            assert!(e.starts_with("migration_id"), "{e}");
        }
        let e = serde_json::from_str::<Ttl>("0").expect_err("ttl 0").to_string();
        assert!(e.contains("ttl_seconds"), "{e}");
        assert_eq!(serde_json::from_str::<Ttl>("86400").expect("a day").seconds(), 86_400);
        assert!(serde_json::from_str::<HostName>("\"-x\"").is_err());
        assert!(serde_json::from_str::<HostName>("\"compute-1.rack2\"").is_ok());
        assert_eq!(segment("0000:00:02.0/i915-GVTg_V5_4"), "0000:00:02.0%2Fi915-GVTg_V5_4");
    }

    proptest! {
        /// A migration id round-trips through JSON exactly when it parses.
        #[test]
        fn migration_ids_round_trip(s in "[A-Za-z0-9._:/ -]{0,130}") {
            let json = serde_json::to_string(&s).expect("json");
            match (s.parse::<MigrationId>(), serde_json::from_str::<MigrationId>(&json)) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a.as_str(), b.as_str()),
                (Err(_), Err(_)) => {}
                (a, b) => prop_assert!(false, "{:?} / {:?}", a, b),
            }
        }
    }
}
