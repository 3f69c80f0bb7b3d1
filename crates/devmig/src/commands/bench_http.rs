//! A lean HTTP/1.1 client for load generation: one keep-alive connection per thread, driven on
//! the calling thread by a current-thread runtime. reqwest's blocking client hands each request
//! to a background runtime thread and back, two thread wake-ups that would be counted as the
//! agent's latency; this client adds none (like `wrk`).
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

use crate::error::CliError;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One connection to an agent at a plain `http://` URL.
pub struct LeanClient {
    rt: tokio::runtime::Runtime,
    addr: String,
    authorization: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// A response: status and body.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl LeanClient {
    /// Connects to `base` (`http://host:port`, no path) with `token` as the bearer token.
    pub fn connect(base: &str, token: &str) -> Result<Self, CliError> {
        let url = url::Url::parse(base).map_err(|e| CliError::Usage(format!("agent URL {base}: {e}")))?;
        if url.scheme() != "http" {
            return Err(CliError::Usage(format!(
                "devmig bench drives plain http:// agents on loopback (got {base}); start the agent without --tls-*"
            )));
        }
        let host = url.host_str().ok_or_else(|| CliError::Usage(format!("agent URL {base} has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = match url.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
            _ => format!("{host}:{port}"),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Io { what: "starting a client runtime".into(), source: e })?;
        let mut client = Self { rt, addr, authorization: format!("Bearer {token}"), sender: None };
        client.reconnect().map_err(|e| CliError::Usage(format!("connecting to {base}: {e}")))?;
        Ok(client)
    }

    fn reconnect(&mut self) -> Result<(), String> {
        self.sender = None;
        let addr = self.addr.clone();
        let sender = self.rt.block_on(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            // Driven whenever this thread blocks on a request; ends with the connection.
            tokio::spawn(connection);
            Ok::<_, String>(sender)
        })?;
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request; reconnects first when the previous connection closed.
    pub fn send(&mut self, method: Method, path: &str, json: Option<Bytes>) -> Result<Answer, String> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.reconnect()?;
        }
        let mut request = Request::builder().method(method).uri(path).header("host", &self.addr);
        request = request.header("authorization", &self.authorization);
        if json.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(Full::new(json.unwrap_or_default())).map_err(|e| e.to_string())?;
        let sender = self.sender.as_mut().ok_or("not connected")?;
        self.rt.block_on(async {
            let exchange = async {
                sender.ready().await.map_err(|e| e.to_string())?;
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Answer { status, body })
            };
            tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())?
        })
    }
}
