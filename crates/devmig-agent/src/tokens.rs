//! Bearer tokens from a file, each with a scope, compared in constant time.
use std::path::Path;

use axum::http::{HeaderMap, header};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET routes and metrics.
    Read,
    /// Everything, including checks (they write to sysfs) and claims.
    Admin,
    /// Only pushing host reports to the fleet (what agents hold).
    Report,
}

impl Scope {
    /// Whether a token of this scope may do what `needed` guards.
    pub fn allows(self, needed: Scope) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Read => needed == Scope::Read,
            Scope::Report => needed == Scope::Report,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    scope: Scope,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    token: Vec<TokenEntry>,
}

/// Why a request's bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer ...` header.
    NoToken,
    /// A token that is not in the file.
    UnknownToken,
    /// A known token whose scope does not allow the route, which needs this one.
    Forbidden(Scope),
}

/// The accepted tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    entries: Vec<(String, Scope, Vec<u8>)>,
}

impl Tokens {
    /// Parses a token file: `[[token]]` tables with `name`, `scope` (`read`|`admin`|`report`) and `secret` (>= 16 chars).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, String> {
        let file: TokenFile =
            toml::from_str(text).map_err(|e| format!("token file {origin}: {}", e.to_string().trim()))?;
        let mut entries = Vec::new();
        for (i, t) in file.token.into_iter().enumerate() {
            if t.secret.len() < 16 || !t.secret.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!("token file {origin}: token[{i}].secret must be at least 16 printable characters"));
            }
            if entries.iter().any(|(n, _, _)| *n == t.name) {
                return Err(format!("token file {origin}: token[{i}].name {:?} is listed twice", t.name));
            }
            entries.push((t.name, t.scope, t.secret.into_bytes()));
        }
        if entries.is_empty() {
            return Err(format!("token file {origin}: no [[token]] entries"));
        }
        Ok(Tokens { entries })
    }

    /// Reads a token file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The name and scope of the token `presented`, comparing against every token in constant time.
    pub fn authorize(&self, presented: &[u8]) -> Option<(&str, Scope)> {
        let mut found = None;
        for (name, scope, secret) in &self.entries {
            // No early exit: every comparison runs, whatever matched.
            if bool::from(secret.as_slice().ct_eq(presented)) {
                found = Some((name.as_str(), *scope));
            }
        }
        found
    }

    /// The caller's name, when `headers` carry a bearer token whose scope allows `needed`.
    pub fn admit(&self, headers: &HeaderMap, needed: Scope) -> Result<&str, Denied> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(Denied::NoToken)?;
        let (name, have) = self.authorize(presented.as_bytes()).ok_or(Denied::UnknownToken)?;
        if have.allows(needed) { Ok(name) } else { Err(Denied::Forbidden(needed)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_map_to_scopes_and_bad_files_say_why() {
        let t = Tokens::from_toml(
            "[[token]]\nname = \"nova\"\nscope = \"admin\"\nsecret = \"0123456789abcdef\"\n[[token]]\nname = \"mon\"\nscope = \"read\"\nsecret = \"fedcba9876543210\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(t.authorize(b"0123456789abcdef"), Some(("nova", Scope::Admin)));
        assert_eq!(t.authorize(b"fedcba9876543210"), Some(("mon", Scope::Read)));
        assert_eq!(t.authorize(b"0123456789abcdeg"), None);
        assert_eq!(t.authorize(b""), None);
        let e = Tokens::from_toml("[[token]]\nname = \"x\"\nscope = \"admin\"\nsecret = \"short\"\n", "t")
            .expect_err("short");
        assert!(e.contains("token[0].secret"), "{e}");
        let e = Tokens::from_toml("[[token]]\nname = \"x\"\nscope = \"root\"\nsecret = \"0123456789abcdef\"\n", "t")
            .expect_err("scope");
        assert!(e.contains("root"), "{e}");
    }

    #[test]
    fn scopes_allow_only_their_routes() {
        assert!(Scope::Admin.allows(Scope::Read) && Scope::Admin.allows(Scope::Report));
        assert!(Scope::Read.allows(Scope::Read) && !Scope::Read.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Report) && !Scope::Report.allows(Scope::Read));
        assert!(Scope::Report.allows(Scope::Report) && !Scope::Report.allows(Scope::Admin));
    }

    #[test]
    fn packaged_token_files_parse() {
        let agent = Tokens::from_toml(include_str!("../../../packaging/tokens.toml"), "packaging/tokens.toml");
        assert!(agent.is_ok(), "{agent:?}");
        let fleet =
            Tokens::from_toml(include_str!("../../../packaging/fleet-tokens.toml"), "packaging/fleet-tokens.toml")
                .expect("fleet tokens");
        assert_eq!(fleet.authorize(b"CHANGE-ME-agents-report-secret"), Some(("agents", Scope::Report)));
    }
}
