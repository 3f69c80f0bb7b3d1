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
    /// Who errors name: `agent`, or `fleet` for a fleet's API.
    peer: &'static str,
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
    if let Some(warning) = devmig_agent::tokens::exposed_secret_file(path) {
        eprintln!("devmig: warning: {warning}");
    }
    let token = text.strip_suffix('\n').unwrap_or(&text).to_string();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CliError::Usage(format!("token file {} must hold one printable token", path.display())));
    }
    Ok(token)
}

impl Remote {
    /// A client of the agent at `url`.
    pub fn new(url: &str, token: String, tls: &TlsClient) -> Result<Self, CliError> {
        Self::with_timeout(url, token, tls, Duration::from_secs(60))
    }

    fn with_timeout(url: &str, token: String, tls: &TlsClient, timeout: Duration) -> Result<Self, CliError> {
        let mut builder = reqwest::Client::builder().timeout(timeout);
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
        Ok(Remote { client, rt: Arc::new(rt), peer: "agent" })
    }

    /// A client of the fleet API at `url` (errors say `fleet:`); an evacuation places a whole
    /// host's devices in one request, so a call may take up to 10 minutes.
    pub fn fleet(url: &str, token: String, tls: &TlsClient) -> Result<Self, CliError> {
        Ok(Remote { peer: "fleet", ..Self::with_timeout(url, token, tls, Duration::from_secs(600))? })
    }

    /// Converts a client error, naming who answered.
    fn named<T>(&self, r: Result<T, ApiError>) -> Result<T, CliError> {
        r.map_err(|e| match CliError::from(e) {
            CliError::Remote { status, code, detail, .. } => CliError::Remote { peer: self.peer, status, code, detail },
            other => other,
        })
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
        // Relative paths in the file are from its directory.
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let at = |p: &PathBuf| if p.is_relative() { dir.join(p) } else { p.clone() };
        let tls = TlsClient {
            ca_file: entry.ca_file.as_ref().map(at),
            client_cert: entry.client_cert.as_ref().map(at),
            client_key: entry.client_key.as_ref().map(at),
        };
        Self::new(&entry.url, read_token(&at(&entry.token_file))?, &tls)
    }

    /// GET `path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.named(self.rt.block_on(self.client.get(path)))
    }

    /// POST `body` to `path`, decoded from a 200.
    pub fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, CliError> {
        Ok(self.named(self.rt.block_on(self.client.post(path, body, &[200])))?.1)
    }

    /// DELETE `path`, decoded.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.named(self.rt.block_on(self.client.delete(path)))
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

    /// Claims a target; a refusal by step b names the rules that refused, as `check` does.
    pub fn claim(&self, req: &ClaimRequest) -> Result<Claim, CliError> {
        match self.rt.block_on(self.client.claim(req)) {
            Err(ApiError::Refused { mut problem }) => {
                if let Some(report) = problem.report.take() {
                    let why: Vec<String> =
                        report.reasons.iter().map(|r| format!("{}: {}", r.code, r.message)).collect();
                    if !why.is_empty() {
                        problem.detail = format!("{} ({})", problem.detail, why.join("; "));
                    }
                }
                self.named(Err(ApiError::Refused { problem }))
            }
            other => Ok(self.named(other)?.1),
        }
    }

    /// Releases a claim.
    pub fn release(&self, claim_id: &str) -> Result<Claim, CliError> {
        self.named(self.rt.block_on(self.client.release(claim_id)))
    }

    /// Active and orphaned claims.
    pub fn claims(&self) -> Result<Vec<Claim>, CliError> {
        self.named(self.rt.block_on(self.client.claims()))
    }
}
