//! A client of a devmig agent, and the agents file that names them.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use devmig_api::{AgentClient, ApiError, CheckBody, Claim, ClaimRequest};
use devmig_core::CheckReport;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// One agent, through the one typed client (`devmig-api`), driven from this synchronous CLI.
#[derive(Debug, Clone)]
pub struct Remote {
    client: AgentClient,
    rt: Arc<tokio::runtime::Runtime>,
}

/// `--agents FILE`: `[agents.<name>]` tables with `url` and `token_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    agents: BTreeMap<String, AgentEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentEntry {
    url: String,
    token_file: PathBuf,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    client_cert: Option<PathBuf>,
    #[serde(default)]
    client_key: Option<PathBuf>,
}

/// What a client needs for https:// agents.
#[derive(Debug, Clone, Default)]
pub struct TlsClient {
    /// CA bundle that signs the agents' certificates.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for agents that require one.
    pub client_cert: Option<PathBuf>,
    /// Its key.
    pub client_key: Option<PathBuf>,
}

impl TlsClient {
    /// The rustls configuration these files give (a CA file is required).
    pub fn config(&self) -> Result<rustls::ClientConfig, CliError> {
        let ca = self.ca_file.clone().ok_or_else(|| {
            CliError::Usage("an https:// agent needs --ca-file (or ca_file in the agents file)".into())
        })?;
        devmig_agent::tls::ClientTls {
            ca_file: ca,
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
        .client_config()
        .map_err(CliError::from)
    }
}

/// Reads a client token file: the secret alone (one trailing newline dropped).
pub fn read_token(path: &Path) -> Result<String, CliError> {
    let text = CliError::read_input(path, "token file")?;
    let token = text.strip_suffix('\n').unwrap_or(&text).to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::Usage(format!("token file {} must hold one printable token", path.display())));
    }
    Ok(token)
}

impl Remote {
    /// A client of the agent at `url`.
    pub fn new(url: &str, token: String, tls: &TlsClient) -> Result<Self, CliError> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if url.starts_with("https://") {
            builder = builder.tls_backend_preconfigured(tls.config()?);
        }
        let http = builder.build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
        let client = AgentClient::new(url, &token, http)?;
        // One small runtime per agent: the CLI is synchronous, the client is not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Io { what: "starting a client runtime".into(), source: e })?;
        Ok(Remote { client, rt: Arc::new(rt) })
    }

    /// Resolves HOST: a URL (with `token_file`), or a name in the agents file.
    pub fn resolve(
        host: &str,
        agents: Option<&Path>,
        token_file: Option<&Path>,
        tls: &TlsClient,
    ) -> Result<Self, CliError> {
        if host.starts_with("http://") || host.starts_with("https://") {
            let tf = token_file
                .ok_or_else(|| CliError::Usage(format!("{host}: give --token-file for an agent named by URL")))?;
            return Self::new(host, read_token(tf)?, tls);
        }
        let path = agents
            .ok_or_else(|| CliError::Usage(format!("agent {host:?} is not a URL; name agents in --agents FILE")))?;
        let text = CliError::read_input(path, "agents file")?;
        let file: AgentsFile = toml::from_str(&text)
            .map_err(|e| CliError::Usage(format!("agents file {}: {}", path.display(), e.to_string().trim())))?;
        let entry = file
            .agents
            .get(host)
            .ok_or_else(|| CliError::Usage(format!("agent {host:?} is not in {}", path.display())))?;
        let tls = TlsClient {
            ca_file: entry.ca_file.clone(),
            client_cert: entry.client_cert.clone(),
            client_key: entry.client_key.clone(),
        };
        Self::new(&entry.url, read_token(&entry.token_file)?, &tls)
    }

    /// GET `path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        Ok(self.rt.block_on(self.client.get(path))?)
    }

    /// POST `body` to `path`, decoded from a 200.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Ok(self.rt.block_on(self.client.post(path, body, &[200]))?.1)
    }

    /// Step b on the agent; a timed-out check (504) answers its report (verdict `error`).
    pub fn check(&self, device: &str, body: &CheckBody) -> Result<CheckReport, CliError> {
        match self.rt.block_on(self.client.check(device, body)) {
            Err(ApiError::Refused { mut problem }) => match problem.report.take() {
                Some(report) => Ok(*report),
                None => Err(ApiError::Refused { problem }.into()),
            },
            other => Ok(other?),
        }
    }

    /// Claims a target.
    pub fn claim(&self, req: &ClaimRequest) -> Result<Claim, CliError> {
        Ok(self.rt.block_on(self.client.claim(req))?.1)
    }

    /// Releases a claim.
    pub fn release(&self, claim_id: &str) -> Result<Claim, CliError> {
        Ok(self.rt.block_on(self.client.release(claim_id))?)
    }

    /// Active and orphaned claims.
    pub fn claims(&self) -> Result<Vec<Claim>, CliError> {
        Ok(self.rt.block_on(self.client.claims())?)
    }
}
