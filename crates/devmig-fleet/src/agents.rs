//! Calls to host agents: step b (`check`), claims and releases, each bounded by a timeout, each
//! presenting the credential of the host it calls.
use std::collections::HashMap;
use std::time::Duration;

use devmig_api::{AgentClient, ApiError, CheckBody, ClaimRequest};
use devmig_core::CheckReport;
use serde::Serialize;

use crate::FleetError;

/// How a call to an agent ended, when it did not end well.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum CallFailure {
    /// No answer within the timeout (or no connection).
    Unreachable {
        /// What happened.
        detail: String,
    },
    /// The agent answered with an error.
    Refused {
        /// HTTP status.
        status: u16,
        /// Its problem code.
        code: String,
        /// Its detail.
        detail: String,
    },
}

impl CallFailure {
    /// The reason code a probe records for it.
    pub fn code(&self) -> devmig_core::ReasonCode {
        match self {
            CallFailure::Unreachable { .. } => devmig_core::ReasonCode::AgentUnreachable,
            CallFailure::Refused { .. } => devmig_core::ReasonCode::AgentRefused,
        }
    }
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Unreachable { detail } => write!(f, "unreachable: {detail}"),
            CallFailure::Refused { status, code, detail } => write!(f, "{status} {code}: {detail}"),
        }
    }
}

/// What the fleet presents to agents: one token for all of them, or one per host (so that a
/// leaked agent token opens one agent, not every agent), with an optional default.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgentCredentials {
    default: Option<String>,
    per_host: HashMap<String, String>,
}

impl std::fmt::Debug for AgentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets.
        f.debug_struct("AgentCredentials")
            .field("default", &self.default.is_some())
            .field("hosts", &self.per_host.len())
            .finish()
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialFile {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    agents: HashMap<String, String>,
}

fn valid_secret(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

impl AgentCredentials {
    /// One token for every agent.
    pub fn single(token: String) -> Self {
        AgentCredentials { default: Some(token), per_host: HashMap::new() }
    }

    /// An agent token file: the secret alone (one trailing newline dropped), or TOML with
    /// `[agents]` (`host = "secret"`, one per host) and an optional `default = "secret"` for the
    /// hosts it does not list.
    pub fn parse(text: &str, origin: &str) -> Result<Self, FleetError> {
        if let Ok(file) = toml::from_str::<CredentialFile>(text) {
            if file.default.is_none() && file.agents.is_empty() {
                return Err(FleetError::Config(format!(
                    "agent token file {origin}: neither `default` nor `[agents]` entries"
                )));
            }
            for (host, secret) in
                file.agents.iter().map(|(h, s)| (h.as_str(), s)).chain(file.default.iter().map(|s| ("default", s)))
            {
                if !valid_secret(secret) {
                    return Err(FleetError::Config(format!(
                        "agent token file {origin}: the secret of {host} must be printable, without spaces"
                    )));
                }
            }
            for host in file.agents.keys() {
                if !devmig_agent::valid_host_name(host) {
                    return Err(FleetError::Config(format!("agent token file {origin}: {host:?} is not a host name")));
                }
            }
            return Ok(AgentCredentials { default: file.default, per_host: file.agents });
        }
        let token = text.strip_suffix('\n').unwrap_or(text);
        if !valid_secret(token) {
            return Err(FleetError::Config(format!(
                "agent token file {origin}: expected one printable token, or TOML with `default` and `[agents]`"
            )));
        }
        Ok(Self::single(token.to_string()))
    }

    /// The token for `host`: its own, or the default.
    pub fn for_host(&self, host: &str) -> Option<&str> {
        self.per_host.get(host).or(self.default.as_ref()).map(String::as_str)
    }
}

/// A client for every agent of the fleet (each host's credential, one timeout per call), built
/// on the one typed agent client of `devmig-api`.
#[derive(Debug, Clone)]
pub struct Agents {
    http: reqwest::Client,
    credentials: AgentCredentials,
    timeout: Duration,
}

/// A claim an agent granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Granted {
    /// The agent's claim id.
    pub claim_id: String,
    /// The claimed device (for a type: the created mdev).
    pub device: String,
}

impl From<ApiError> for CallFailure {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Refused { problem } => {
                CallFailure::Refused { status: problem.status, code: problem.code, detail: problem.detail }
            }
            ApiError::Unreachable { detail, .. } => CallFailure::Unreachable { detail },
            other @ (ApiError::BadResponse { .. } | ApiError::Invalid { .. }) => {
                CallFailure::Unreachable { detail: other.to_string() }
            }
        }
    }
}

impl Agents {
    /// A client presenting each host's credential, giving each call `timeout`; https:// agents
    /// are trusted (and, for mTLS, shown a client certificate) as `tls` says.
    pub fn new(
        credentials: AgentCredentials,
        timeout: Duration,
        tls: Option<&devmig_agent::tls::ClientTls>,
    ) -> Result<Agents, FleetError> {
        devmig_agent::tls::ensure_default_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(timeout).pool_max_idle_per_host(4);
        if let Some(t) = tls {
            let config = t.client_config().map_err(|e| FleetError::Config(format!("agent TLS: {e}")))?;
            builder = builder.tls_backend_preconfigured(config);
        }
        let http = builder.build().map_err(|e| FleetError::Internal(format!("HTTP client: {e}")))?;
        Ok(Agents { http, credentials, timeout })
    }

    /// The typed client of `host`'s agent at `url`, with the host's credential.
    fn client(&self, host: &str, url: &str) -> Result<AgentClient, CallFailure> {
        let token = self.credentials.for_host(host).ok_or_else(|| CallFailure::Unreachable {
            detail: format!("the fleet has no agent token for host {host}"),
        })?;
        Ok(AgentClient::new(url, token, self.http.clone())?.with_timeout(self.timeout))
    }

    /// Step b of `version` on `device` of the agent at `url`. A timeout is a failure, never a verdict.
    pub async fn check(&self, host: &str, url: &str, device: &str, version: &str) -> Result<CheckReport, CallFailure> {
        let body = CheckBody { version: version.to_string(), explain: false };
        Ok(self.client(host, url)?.check(device, &body).await?)
    }

    /// Claims what `req` names, the agent running step b atomically with the reservation.
    pub async fn claim(&self, host: &str, url: &str, req: &ClaimRequest) -> Result<Granted, CallFailure> {
        let (_, claim) = self.client(host, url)?.claim(req).await?;
        Ok(Granted { claim_id: claim.id, device: claim.device })
    }

    /// Releases a claim.
    pub async fn release(&self, host: &str, url: &str, claim_id: &str) -> Result<(), CallFailure> {
        self.client(host, url)?.release(claim_id).await.map(drop).map_err(CallFailure::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_token_files_are_one_secret_or_one_per_host() {
        let one = AgentCredentials::parse("s3cret-for-every-agent\n", "t").expect("single");
        assert_eq!(
            (one.for_host("a"), one.for_host("b")),
            (Some("s3cret-for-every-agent"), Some("s3cret-for-every-agent"))
        );
        let per = AgentCredentials::parse("[agents]\ncompute-1 = \"secret-1\"\ncompute-2 = \"secret-2\"\n", "t")
            .expect("toml");
        assert_eq!(
            (per.for_host("compute-1"), per.for_host("compute-2"), per.for_host("x")),
            (Some("secret-1"), Some("secret-2"), None)
        );
        let with_default =
            AgentCredentials::parse("default = \"d\"\n[agents]\ncompute-1 = \"one\"\n", "t").expect("toml");
        assert_eq!((with_default.for_host("compute-1"), with_default.for_host("x")), (Some("one"), Some("d")));
        for bad in ["", "two words\n", "[agents]\n\"../x\" = \"s\"\n", "[agents]\nh = \"has space\"\n", "[agents]\n"] {
            assert!(AgentCredentials::parse(bad, "t").is_err(), "{bad:?} accepted");
        }
        assert!(!format!("{with_default:?}").contains("one"), "Debug shows no secret");
    }
}
