//! TLS for the agent (rustls with the ring provider), optionally requiring client certificates.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use crate::AgentError;

/// The agent's TLS files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, AgentError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(AgentError::Config(format!("{}: no PEM certificate", path.display())));
    }
    Ok(certs)
}

/// The ring crypto provider every devmig TLS endpoint uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a client needs to call an https:// endpoint of devmig (an agent or the fleet): the CA
/// bundle it trusts, and a client certificate for endpoints that require one (mTLS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA bundle that signs the servers' certificates.
    pub ca_file: PathBuf,
    /// Client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// Its key (PEM).
    pub client_key: Option<PathBuf>,
}

impl ClientTls {
    /// The rustls client configuration (ring provider, HTTP/1.1).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, AgentError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&self.ca_file)? {
            roots.add(c).map_err(|e| AgentError::Config(format!("{}: {e}", self.ca_file.display())))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let k = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| AgentError::Config(format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(certs(cert)?, k)
                    .map_err(|e| AgentError::Config(format!("{}: {e}", cert.display())))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(AgentError::Config("a client certificate needs both its chain and its key".into())),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Makes ring the process's default rustls provider unless one is set: HTTP clients built
/// without an explicit TLS configuration (even for http:// URLs) need a default.
pub fn ensure_default_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl TlsFiles {
    /// The rustls server configuration these files describe.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, AgentError> {
        let chain = certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| AgentError::Config(format!("{}: {e}", self.key.display())))?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca)? {
                    roots.add(c).map_err(|e| AgentError::Config(format!("{}: {e}", ca.display())))?;
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| AgentError::Config(format!("client CA: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| AgentError::Config(format!("{}: {e}", self.cert.display())))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
