//! Calls to host agents: step b (`check`), claims and releases, each bounded by a timeout.
use std::time::Duration;

use devmig_core::CheckReport;
use serde::Serialize;
use serde_json::{Value, json};

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

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Unreachable { detail } => write!(f, "unreachable: {detail}"),
            CallFailure::Refused { status, code, detail } => write!(f, "{status} {code}: {detail}"),
        }
    }
}

/// A client for every agent of the fleet (one token, one timeout per call).
#[derive(Debug, Clone)]
pub struct Agents {
    client: reqwest::Client,
    token: String,
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

impl Agents {
    /// A client presenting `token`, giving each call `timeout`; https:// agents are trusted
    /// (and, for mTLS, shown a client certificate) as `tls` says.
    pub fn new(token: String, timeout: Duration, tls: Option<&devmig_agent::tls::ClientTls>) -> Result<Agents, String> {
        devmig_agent::tls::ensure_default_provider();
        let mut builder = reqwest::Client::builder().connect_timeout(timeout).pool_max_idle_per_host(4);
        if let Some(t) = tls {
            builder = builder.tls_backend_preconfigured(t.client_config()?);
        }
        let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Agents { client, token, timeout })
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), CallFailure> {
        let resp = req
            .bearer_auth(&self.token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| CallFailure::Unreachable { detail: e.without_url().to_string() })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.map_err(|e| CallFailure::Unreachable { detail: e.to_string() })?;
        Ok((status, body))
    }

    fn refused(status: u16, body: &Value) -> CallFailure {
        CallFailure::Refused {
            status,
            code: body["code"].as_str().unwrap_or("unknown").to_string(),
            detail: body["detail"].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Step b of `version` on `device` of the agent at `url`. A timeout is a failure, never a verdict.
    pub async fn check(&self, url: &str, device: &str, version: &str) -> Result<CheckReport, CallFailure> {
        let u = format!(
            "{}/api/v1/devices/{}/check",
            url.trim_end_matches('/'),
            device.replace('%', "%25").replace('/', "%2F")
        );
        let (status, body) = self.call(self.client.post(u).json(&json!({ "version": version }))).await?;
        if status != 200 {
            return Err(Self::refused(status, &body));
        }
        serde_json::from_value(body).map_err(|e| CallFailure::Unreachable { detail: format!("bad check report: {e}") })
    }

    /// Claims `device` (a type: a new mdev of it) for `migration_id`, the agent running step b
    /// atomically with the reservation.
    pub async fn claim(
        &self,
        url: &str,
        migration_id: &str,
        version: &str,
        device: &str,
        is_type: bool,
        ttl_seconds: u64,
    ) -> Result<Granted, CallFailure> {
        let target = if is_type { json!({ "type": device }) } else { json!({ "device": device }) };
        let body = json!({ "migration_id": migration_id, "source_version": version, "target": target, "ttl_seconds": ttl_seconds });
        let u = format!("{}/api/v1/claims", url.trim_end_matches('/'));
        let (status, body) = self.call(self.client.post(u).json(&body)).await?;
        if status != 200 && status != 201 {
            return Err(Self::refused(status, &body));
        }
        Ok(Granted {
            claim_id: body["id"].as_str().unwrap_or_default().to_string(),
            device: body["device"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Releases a claim.
    pub async fn release(&self, url: &str, claim_id: &str) -> Result<(), CallFailure> {
        let u = format!("{}/api/v1/claims/{claim_id}", url.trim_end_matches('/'));
        let (status, body) = self.call(self.client.delete(u)).await?;
        if status == 200 { Ok(()) } else { Err(Self::refused(status, &body)) }
    }
}
