//! Bearer tokens from a file, each with a scope (and, for `report` tokens, the one host it
//! may report), looked up by their SHA-256 digest.
use std::collections::HashMap;
use std::path::Path;

use axum::http::{HeaderMap, header};
use serde::Deserialize;

use crate::AgentError;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// GET routes and metrics.
    Read,
    /// Everything, including checks (they write to sysfs) and claims.
    Admin,
    /// Only pushing the report of the one host the token is bound to (what agents hold).
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
    #[serde(default)]
    host: Option<String>,
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

/// Who presented a token: its name, scope and (for a report token) the host it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name in the file.
    pub name: String,
    /// Its scope.
    pub scope: Scope,
    /// The one host a report token may report.
    pub host: Option<String>,
}

/// The accepted tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// By the SHA-256 digest of the secret: a lookup whose timing says nothing about the secret,
    /// and as cheap for 100,000 per-host tokens as for three.
    by_digest: HashMap<[u8; 32], Caller>,
}

fn digest(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

pub use devmig_api::valid_host_name;

impl Tokens {
    /// Parses a token file: `[[token]]` tables with `name`, `scope` (`read`|`admin`|`report`),
    /// `secret` (>= 16 printable characters) and, for `report` tokens (only for them), `host`.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, AgentError> {
        let file: TokenFile = toml::from_str(text)
            .map_err(|e| AgentError::Config(format!("token file {origin}: {}", e.to_string().trim())))?;
        let entries = file.token.into_iter().map(|t| (t.name, t.scope, t.host, t.secret));
        Self::from_entries(entries).map_err(|e| AgentError::Config(format!("token file {origin}: {e}")))
    }

    /// Builds the tokens from `(name, scope, host, secret)` entries, validated as a file's are.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, Scope, Option<String>, String)>,
    ) -> Result<Self, AgentError> {
        let mut by_digest = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (i, (name, scope, host, secret)) in entries.into_iter().enumerate() {
            if secret.len() < 16 || !secret.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(AgentError::Config(format!("token[{i}].secret must be at least 16 printable characters")));
            }
            if is_example_secret(&secret) {
                return Err(AgentError::Config(format!(
                    "token[{i}] ({name:?}) still has an example secret from devmig's packaging/ files: put a \
                     secret of your own there (`openssl rand -hex 32`)"
                )));
            }
            match (scope, &host) {
                (Scope::Report, None) => {
                    return Err(AgentError::Config(format!(
                        "token[{i}] ({name:?}) has scope report and no host: a report token is bound to the one \
                         host it reports (host = \"...\")"
                    )));
                }
                (Scope::Report, Some(h)) if !valid_host_name(h) => {
                    return Err(AgentError::Config(format!("token[{i}].host {h:?} is not a valid host name")));
                }
                (Scope::Read | Scope::Admin, Some(_)) => {
                    return Err(AgentError::Config(format!(
                        "token[{i}] ({name:?}): only report tokens are bound to a host"
                    )));
                }
                _ => {}
            }
            if !names.insert(name.clone()) {
                return Err(AgentError::Config(format!("token[{i}].name {name:?} is listed twice")));
            }
            if by_digest.insert(digest(secret.as_bytes()), Caller { name: name.clone(), scope, host }).is_some() {
                return Err(AgentError::Config(format!("token[{i}] ({name:?}) has the secret of another token")));
            }
        }
        if by_digest.is_empty() {
            return Err(AgentError::Config("no [[token]] entries".into()));
        }
        Ok(Tokens { by_digest })
    }

    /// Reads a token file (and logs a warning when others may read it).
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AgentError::Config(format!("token file {}: {e}", path.display())))?;
        if let Some(warning) = exposed_secret_file(path) {
            tracing::warn!("{warning}");
        }
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Who holds the token `presented`, if anyone.
    pub fn authorize(&self, presented: &[u8]) -> Option<&Caller> {
        self.by_digest.get(&digest(presented))
    }

    /// The caller, when `headers` carry a bearer token (the scheme's case does not matter)
    /// whose scope allows `needed`.
    pub fn admit(&self, headers: &HeaderMap, needed: Scope) -> Result<&Caller, Denied> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(Denied::NoToken)?;
        let caller = self.authorize(presented.as_bytes()).ok_or(Denied::UnknownToken)?;
        if caller.scope.allows(needed) { Ok(caller) } else { Err(Denied::Forbidden(needed)) }
    }
}

/// True for the placeholder secrets devmig's `packaging/` examples ship (`replace-me-...`,
/// `CHANGE-ME-...`): a service must not start with a secret anyone can read on the web.
pub fn is_example_secret(secret: &str) -> bool {
    let s = secret.to_ascii_lowercase();
    ["replace-me", "change-me", "changeme", "replaceme"].iter().any(|p| s.contains(p))
}

/// A warning when a file holding secrets may be read by its group or by others (`None` when
/// only its owner may, or when its mode cannot be read).
pub fn exposed_secret_file(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o044 != 0).then(|| {
        format!(
            "{} holds secrets and may be read by {} (mode {:o}): chmod 600 it",
            path.display(),
            if mode & 0o004 != 0 { "every user" } else { "its group" },
            mode & 0o777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(t: &Tokens, secret: &[u8]) -> Option<(String, Scope, Option<String>)> {
        t.authorize(secret).map(|c| (c.name.clone(), c.scope, c.host.clone()))
    }

    #[test]
    fn tokens_map_to_scopes_and_bad_files_say_why() {
        let t = Tokens::from_toml(
            "[[token]]\nname = \"nova\"\nscope = \"admin\"\nsecret = \"0123456789abcdef\"\n[[token]]\nname = \"mon\"\nscope = \"read\"\nsecret = \"fedcba9876543210\"\n\
             [[token]]\nname = \"c1\"\nscope = \"report\"\nhost = \"compute-1\"\nsecret = \"report-compute-1-x\"\n",
            "t",
        )
        .expect("valid");
        assert_eq!(who(&t, b"0123456789abcdef"), Some(("nova".into(), Scope::Admin, None)));
        assert_eq!(who(&t, b"fedcba9876543210"), Some(("mon".into(), Scope::Read, None)));
        assert_eq!(who(&t, b"report-compute-1-x"), Some(("c1".into(), Scope::Report, Some("compute-1".into()))));
        assert_eq!(who(&t, b"0123456789abcdeg"), None);
        assert_eq!(who(&t, b""), None);
        let e = Tokens::from_toml("[[token]]\nname = \"x\"\nscope = \"admin\"\nsecret = \"short\"\n", "t")
            .expect_err("short")
            .to_string();
        assert!(e.contains("token[0].secret"), "{e}");
        let e = Tokens::from_toml("[[token]]\nname = \"x\"\nscope = \"root\"\nsecret = \"0123456789abcdef\"\n", "t")
            .expect_err("scope")
            .to_string();
        assert!(e.contains("root"), "{e}");
    }

    #[test]
    fn report_tokens_are_bound_to_one_valid_host_and_only_they_are() {
        let unbound = "[[token]]\nname = \"agents\"\nscope = \"report\"\nsecret = \"0123456789abcdef\"\n";
        let e = Tokens::from_toml(unbound, "t").expect_err("unbound report token").to_string();
        assert!(e.contains("bound to the one host"), "{e}");
        for bad in [".", "..", "-", "a/b", "a b", ""] {
            let text = format!(
                "[[token]]\nname = \"a\"\nscope = \"report\"\nhost = \"{bad}\"\nsecret = \"0123456789abcdef\"\n"
            );
            assert!(Tokens::from_toml(&text, "t").is_err(), "host {bad:?} accepted");
        }
        let admin_with_host =
            "[[token]]\nname = \"a\"\nscope = \"admin\"\nhost = \"h1\"\nsecret = \"0123456789abcdef\"\n";
        assert!(
            Tokens::from_toml(admin_with_host, "t").expect_err("admin host").to_string().contains("only report tokens")
        );
        let same_secret = "[[token]]\nname = \"a\"\nscope = \"read\"\nsecret = \"0123456789abcdef\"\n\
                           [[token]]\nname = \"b\"\nscope = \"admin\"\nsecret = \"0123456789abcdef\"\n";
        assert!(
            Tokens::from_toml(same_secret, "t").expect_err("same secret").to_string().contains("secret of another")
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let t = Tokens::from_toml("[[token]]\nname = \"n\"\nscope = \"read\"\nsecret = \"0123456789abcdef\"\n", "t")
            .expect("valid");
        for value in ["Bearer 0123456789abcdef", "bearer 0123456789abcdef", "BEARER 0123456789abcdef"] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().expect("header"));
            assert_eq!(t.admit(&h, Scope::Read).map(|c| c.name.as_str()), Ok("n"), "{value}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic 0123456789abcdef".parse().expect("header"));
        assert_eq!(t.admit(&h, Scope::Read), Err(Denied::NoToken));
    }

    #[test]
    fn scopes_allow_only_their_routes() {
        assert!(Scope::Admin.allows(Scope::Read) && Scope::Admin.allows(Scope::Report));
        assert!(Scope::Read.allows(Scope::Read) && !Scope::Read.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Report) && !Scope::Report.allows(Scope::Read));
        assert!(Scope::Report.allows(Scope::Report) && !Scope::Report.allows(Scope::Admin));
    }

    #[test]
    fn packaged_token_files_are_refused_until_their_example_secrets_are_replaced() {
        for (file, text) in [
            ("packaging/tokens.toml", include_str!("../../../packaging/tokens.toml")),
            ("packaging/fleet-tokens.toml", include_str!("../../../packaging/fleet-tokens.toml")),
        ] {
            let e = Tokens::from_toml(text, file).expect_err("an example secret").to_string();
            assert!(e.contains("example secret") && e.contains("token[0]"), "{file}: {e}");
            // With real secrets in their place, the same files are valid.
            let mut n = 0;
            let replaced: String = text
                .lines()
                .map(|l| match l.strip_prefix("secret = ") {
                    Some(_) => {
                        n += 1;
                        format!("secret = \"a-real-secret-number-{n}-0123456789\"\n")
                    }
                    None => format!("{l}\n"),
                })
                .collect();
            let t = Tokens::from_toml(&replaced, file).expect("the packaged layout");
            assert!(t.authorize(b"a-real-secret-number-1-0123456789").is_some(), "{file}");
        }
    }

    #[test]
    fn a_secret_file_others_may_read_is_named_in_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("tokens.toml");
        std::fs::write(&f, "x").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(exposed_secret_file(&f), None);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let w = exposed_secret_file(&f).expect("a warning");
        assert!(w.contains("every user") && w.contains("644") && w.contains("chmod 600"), "{w}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(exposed_secret_file(&f).expect("a warning").contains("its group"));
    }
}
