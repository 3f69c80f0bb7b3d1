//! A client of a devmig agent, and the agents file that names them.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::CliError;

/// One agent: its base URL and the bearer secret to present.
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    token: String,
    client: Client,
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
    fn config(&self) -> Result<rustls::ClientConfig, CliError> {
        let ca = self.ca_file.clone().ok_or_else(|| {
            CliError::Usage("an https:// agent needs --ca-file (or ca_file in the agents file)".into())
        })?;
        devmig_agent::tls::ClientTls {
            ca_file: ca,
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
        .client_config()
        .map_err(CliError::Usage)
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
        let parsed = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
        if parsed.is_none_or(|rest| rest.is_empty() || rest.contains('@')) {
            return Err(CliError::Usage(format!("agent URL {url:?} must be http(s)://host[:port] without user info")));
        }
        let mut builder = Client::builder().timeout(Duration::from_secs(60));
        if url.starts_with("https://") {
            builder = builder.tls_backend_preconfigured(tls.config()?);
        }
        let client = builder.build().map_err(|e| CliError::Usage(format!("HTTP client: {e}")))?;
        Ok(Remote { base: url.trim_end_matches('/').to_string(), token, client })
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

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Result<(StatusCode, Value), CliError> {
        let res = req.bearer_auth(&self.token).send().map_err(|e| CliError::Remote {
            status: 0,
            code: "unreachable".into(),
            detail: format!("{}: {e}", self.base),
        })?;
        let status = res.status();
        let body: Value = res.json().unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn decode<T: DeserializeOwned>(&self, status: StatusCode, body: Value, ok: &[StatusCode]) -> Result<T, CliError> {
        if ok.contains(&status) {
            return serde_json::from_value(body).map_err(|e| CliError::Remote {
                status: status.as_u16(),
                code: "bad_response".into(),
                detail: e.to_string(),
            });
        }
        let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Err(CliError::Remote { status: status.as_u16(), code: field("code"), detail: field("detail") })
    }

    /// GET `path`, decoded.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let (status, body) = self.send(self.client.get(format!("{}{path}", self.base)))?;
        self.decode(status, body, &[StatusCode::OK])
    }

    /// POST `body` to `path`; `ok` lists the statuses that carry a `T`.
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
        ok: &[StatusCode],
    ) -> Result<(StatusCode, T), CliError> {
        let (status, v) = self.send(self.client.post(format!("{}{path}", self.base)).json(body))?;
        Ok((status, self.decode(status, v, ok)?))
    }

    /// DELETE `path`, decoded.
    pub fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let (status, body) = self.send(self.client.delete(format!("{}{path}", self.base)))?;
        self.decode(status, body, &[StatusCode::OK])
    }
}

/// A device id as one URL path segment (a type's slash encoded).
pub fn segment(id: &str) -> String {
    id.replace('%', "%25").replace('/', "%2F")
}
