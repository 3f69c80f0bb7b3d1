//! The HTTP(S) accept loop the agent and the fleet share: a bounded number of connections,
//! header-read and request timeouts, and a graceful shutdown with a bound. Slow, idle or
//! too many clients cannot take the file descriptors or the workers of a server.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// File descriptors kept back from connections (databases, sysfs, logs, outgoing calls).
const FD_RESERVE: u64 = 256;

/// What one server lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A connection must deliver a request's headers (and finish its TLS handshake) within
    /// this; a keep-alive connection idle for as long is closed.
    pub header_timeout: Duration,
    /// One request, body and answer, must finish within this (408 otherwise).
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            max_connections: connection_budget(),
        }
    }
}

/// Raises the soft open-file limit to the hard one (as servers do), once per process.
pub fn raise_fd_limit() {
    static RAISED: std::sync::Once = std::sync::Once::new();
    RAISED.call_once(|| {
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
                l.rlim_cur = l.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            }
        }
    });
}

/// Connections one server may hold: three quarters of the open-file limit left after a
/// reserve (at least 16, at most 16,384).
pub fn connection_budget() -> usize {
    raise_fd_limit();
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct we pass.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 { l.rlim_cur } else { 1024 };
    let budget = soft.saturating_sub(FD_RESERVE) / 4 * 3;
    usize::try_from(budget.clamp(16, 16_384)).unwrap_or(16_384)
}

/// The answer to a request that did not finish within [`ConnLimits::request_timeout`].
fn request_timed_out(after: Duration) -> Response<Body> {
    let body = serde_json::json!({
        "type": "urn:devmig:problem:request_timeout",
        "title": "Request Timeout",
        "status": 408,
        "code": "request_timeout",
        "detail": format!("the request did not finish within {} s", after.as_secs()),
    });
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    res.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
    res.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    res
}

/// Whether an accept error concerns one connection or a passing shortage (the loop goes on).
fn accept_error_is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EPROTO
                | libc::EPERM
        )
    ) || e.kind() == std::io::ErrorKind::ConnectionAborted
}

/// Serves `router` on `listener` (TLS with `tls`) within `limits` until `shutdown` resolves,
/// then waits at most [`SHUTDOWN_GRACE`] for connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) if accept_error_is_transient(&e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; going on");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => return Err(e),
            },
            () = &mut shutdown => break,
        };
        let (router, watcher, acceptor) = (router.clone(), graceful.watcher(), acceptor.clone());
        tokio::spawn(async move {
            let _held = permit;
            serve_connection(stream, router, acceptor, watcher, limits).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    Ok(())
}

/// One connection: the TLS handshake (bounded by the header timeout), then HTTP/1.1.
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    limits: ConnLimits,
) {
    // Small answers: do not wait for more to send.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move {
            match tokio::time::timeout(limits.request_timeout, router.oneshot(req.map(Body::new))).await {
                Ok(res) => res,
                Err(_) => Ok(request_timed_out(limits.request_timeout)),
            }
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let result = match acceptor {
        None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
        Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => watcher.watch(http.serve_connection(TokioIo::new(tls), service)).await,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
