//! The one typed client of a devmig agent, used by the CLI, the fleet and the benchmarks.
use std::time::Duration;

use devmig_core::CheckReport;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{CheckBody, Claim, ClaimList, ClaimRequest};
use crate::{ApiError, Problem, segment};

/// A client of one agent: its base URL and the bearer secret to present.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    token: String,
    http: reqwest::Client,
    timeout: Option<Duration>,
}

impl AgentClient {
    /// A client of the agent at `base` presenting `token`, over `http` (which carries the TLS
    /// configuration and connection pool; clone one for many agents).
    pub fn new(base: &str, token: &str, http: reqwest::Client) -> Result<AgentClient, ApiError> {
        crate::ids::check_agent_url(base)?;
        Ok(AgentClient { base: base.trim_end_matches('/').to_string(), token: token.to_string(), http, timeout: None })
    }

    /// Bounds every call (a call past it is [`ApiError::Unreachable`], never a verdict).
    pub fn with_timeout(mut self, timeout: Duration) -> AgentClient {
        self.timeout = Some(timeout);
        self
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ApiError> {
        let mut req = req.bearer_auth(&self.token);
        if let Some(t) = self.timeout {
            req = req.timeout(t);
        }
        let unreachable =
            |e: reqwest::Error| ApiError::Unreachable { base: self.base.clone(), detail: e.without_url().to_string() };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        Ok((status, bytes.into()))
    }

    fn decode<T: DeserializeOwned>(status: u16, body: &[u8], ok: &[u16]) -> Result<T, ApiError> {
        if ok.contains(&status) {
            return serde_json::from_slice(body).map_err(|e| ApiError::BadResponse { status, detail: e.to_string() });
        }
        let problem = serde_json::from_slice::<Problem>(body).unwrap_or_else(|_| {
            let text: String = String::from_utf8_lossy(body).chars().take(200).collect();
            Problem::new(status, "unknown", text.trim().to_string())
        });
        Err(ApiError::Refused { problem: Box::new(problem) })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, decoded from a 200.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (status, body) = self.send(self.http.get(self.url(path))).await?;
        Self::decode(status, &body, &[200])
    }

    /// `POST body` to `path`; `ok` lists the statuses that carry a `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        ok: &[u16],
    ) -> Result<(u16, T), ApiError> {
        let (status, answer) = self.send(self.http.post(self.url(path)).json(body)).await?;
        Ok((status, Self::decode(status, &answer, ok)?))
    }

    /// `DELETE path`, decoded from a 200.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let (status, body) = self.send(self.http.delete(self.url(path))).await?;
        Self::decode(status, &body, &[200])
    }

    /// Step b of `body.version` on `device` (one write on the agent). A check that timed out
    /// (504) is an error whose problem carries the report (verdict `error`), never a verdict.
    pub async fn check(&self, device: &str, body: &CheckBody) -> Result<CheckReport, ApiError> {
        let path = format!("/api/v1/devices/{}/check", segment(device));
        let (status, report): (u16, CheckReport) = self.post(&path, body, &[200, 504]).await?;
        if status == 200 {
            return Ok(report);
        }
        let why: Vec<String> = report.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
        let problem = Problem::new(status, "timeout", why.join("; ")).with_report(Box::new(report));
        Err(ApiError::Refused { problem: Box::new(problem) })
    }

    /// Claims a target; `true` when the claim was created now (201), `false` when the
    /// migration id already held it (200).
    pub async fn claim(&self, req: &ClaimRequest) -> Result<(bool, Claim), ApiError> {
        let (status, claim) = self.post("/api/v1/claims", req, &[200, 201]).await?;
        Ok((status == 201, claim))
    }

    /// Releases a claim.
    pub async fn release(&self, claim_id: &str) -> Result<Claim, ApiError> {
        self.delete(&format!("/api/v1/claims/{}", segment(claim_id))).await
    }

    /// Ends a claim because the migration used its device (the device stays).
    pub async fn complete(&self, claim_id: &str) -> Result<Claim, ApiError> {
        let path = format!("/api/v1/claims/{}/complete", segment(claim_id));
        Ok(self.post(&path, &serde_json::json!({}), &[200]).await?.1)
    }

    /// Active and orphaned claims.
    pub async fn claims(&self) -> Result<Vec<Claim>, ApiError> {
        Ok(self.get::<ClaimList>("/api/v1/claims").await?.claims)
    }
}
