//! The HTTP(S) accept loop the agent and the fleet share: a bounded number of connections,
//! header-read (and idle) and request timeouts enforced by one sweeper task, and a graceful
//! shutdown with a bound. Slow, idle or too many clients cannot take the file descriptors or
//! the workers of a server.
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
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
    /// A connection's requests in flight must finish within this (the connection is closed
    /// otherwise: a client that sends its body slower than this is cut off).
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

/// One connection's state, as the sweeper sees it.
struct Conn {
    /// Since when (ms on the server's clock) it has been waiting for headers (no request in
    /// flight) or running its current requests.
    since_ms: AtomicU64,
    /// Requests in flight.
    in_flight: AtomicU32,
    /// Told to close by the sweeper.
    close: Notify,
}

/// Connections of one server and the clock they are timed with. The timeouts are enforced by
/// one sweeper task per server, not by a timer per request: registering a timer on every
/// request wakes a parked runtime thread, which costs a small machine more than the request.
struct Conns {
    epoch: Instant,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

impl Conns {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn open(self: &Arc<Self>) -> (Arc<Conn>, ConnGuard) {
        let conn = Arc::new(Conn {
            since_ms: AtomicU64::new(self.now_ms()),
            in_flight: AtomicU32::new(0),
            close: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.live).insert(id, Arc::clone(&conn));
        (conn, ConnGuard { conns: Arc::clone(self), id })
    }

    /// Tells every connection past its deadline to close.
    fn sweep(&self, limits: &ConnLimits) {
        let now = self.now_ms();
        let header = u64::try_from(limits.header_timeout.as_millis()).unwrap_or(u64::MAX);
        let request = u64::try_from(limits.request_timeout.as_millis()).unwrap_or(u64::MAX);
        for conn in lock(&self.live).values() {
            let waited = now.saturating_sub(conn.since_ms.load(Ordering::Acquire));
            let limit = if conn.in_flight.load(Ordering::Acquire) == 0 { header } else { request };
            if waited > limit {
                conn.close.notify_one();
            }
        }
    }
}

/// Removes a connection from the registry when its task ends.
struct ConnGuard {
    conns: Arc<Conns>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        lock(&self.conns.live).remove(&self.id);
    }
}

/// Counts a request in flight on its connection while it lives.
struct InFlight<'a>(&'a Conn, &'a Conns);

impl<'a> InFlight<'a> {
    fn start(conn: &'a Conn, conns: &'a Conns) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.since_ms.store(conns.now_ms(), Ordering::Release);
        InFlight(conn, conns)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // The next request's headers are timed from now.
        self.0.since_ms.store(self.1.now_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
    let conns = Arc::new(Conns { epoch: Instant::now(), live: Mutex::new(HashMap::new()), next_id: AtomicU64::new(0) });
    let sweeper = {
        let conns = Arc::clone(&conns);
        let period = (limits.header_timeout.min(limits.request_timeout) / 4)
            .clamp(Duration::from_millis(20), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                conns.sweep(&limits);
            }
        })
    };
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
        let (conn, guard) = conns.open();
        let conns = Arc::clone(&conns);
        tokio::spawn(async move {
            let _held = (permit, guard);
            let close = Arc::clone(&conn);
            tokio::select! {
                () = serve_connection(stream, router, acceptor, watcher, conn, conns) => {}
                () = close.close.notified() => tracing::debug!("connection closed: past its header or request timeout"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
    sweeper.abort();
    Ok(())
}

/// One connection: the TLS handshake, then HTTP/1.1 (the sweeper bounds both).
async fn serve_connection(
    stream: TcpStream,
    router: axum::Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    conn: Arc<Conn>,
    conns: Arc<Conns>,
) {
    // Small answers: do not wait for more to send.
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (router, conn, conns) = (router.clone(), Arc::clone(&conn), Arc::clone(&conns));
        async move {
            let _counted = InFlight::start(&conn, &conns);
            router.oneshot(req.map(Body::new)).await
        }
    });
    let http = hyper::server::conn::http1::Builder::new();
    let result = match acceptor {
        None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => watcher.watch(http.serve_connection(TokioIo::new(tls), service)).await,
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
