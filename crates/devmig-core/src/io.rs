//! Timeout-bounded sysfs I/O.
//!
//! A driver that hangs in `show()`/`store()` (or a FUSE server that never
//! answers) blocks the calling thread in the kernel, and nothing can cancel
//! that. So every operation runs on a small pool of worker threads and the
//! caller waits with a deadline; when the deadline passes the caller gets
//! [`IoFailure::Timeout`], the stuck worker is abandoned (it exits when the
//! kernel ever returns) and a replacement worker is started. At most
//! [`MAX_STUCK`] workers may be stuck at once; past that, operations fail at
//! once instead of spawning more threads.
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use serde::Serialize;

use crate::errno::errno_name;

/// Workers started by [`SysfsIo::new`]: one suits a CLI; a server asks for more.
const BASE_WORKERS: usize = 1;
/// Most workers that may be stuck in the kernel at once.
pub const MAX_STUCK: usize = 64;
/// Largest attribute read: sysfs shows at most one page; one more byte detects overflow.
const READ_BUF: usize = 4097;

/// How one sysfs operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IoFailure {
    /// The syscall failed with this errno.
    Errno {
        /// errno value.
        errno: i32,
    },
    /// The write was accepted only partly (sysfs stores take all or fail).
    ShortWrite {
        /// Bytes the kernel took.
        written: usize,
    },
    /// No answer within the timeout.
    Timeout {
        /// The bound, in milliseconds.
        after_ms: u64,
    },
    /// Too many operations are already stuck; not attempted.
    Overloaded,
}

impl IoFailure {
    /// The errno, when the failure is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            IoFailure::Errno { errno } => Some(*errno),
            _ => None,
        }
    }

    fn from_io(e: &std::io::Error) -> Self {
        IoFailure::Errno { errno: e.raw_os_error().unwrap_or(libc::EIO) }
    }
}

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoFailure::Errno { errno } => {
                write!(f, "{} ({})", errno_name(*errno), std::io::Error::from_raw_os_error(*errno))
            }
            IoFailure::ShortWrite { written } => {
                write!(f, "short write: the kernel took {written} bytes")
            }
            IoFailure::Timeout { after_ms } => write!(f, "no answer within {after_ms} ms"),
            IoFailure::Overloaded => {
                write!(f, "too many sysfs operations are stuck; not attempted")
            }
        }
    }
}

const PENDING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    jobs: Sender<(Job, Arc<AtomicU8>)>,
    queue: Receiver<(Job, Arc<AtomicU8>)>,
    stuck: AtomicUsize,
}

impl Pool {
    fn spawn_worker(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("devmig-sysfs-io".into()).spawn(move || {
            while let Some((job, state)) = spin_then_recv(&pool.queue, None) {
                job();
                if state.compare_exchange(PENDING, DONE, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    // The caller gave up and started a replacement: this worker retires.
                    pool.stuck.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            // Without a worker the queue still drains through the others; say so once.
            eprintln!("devmig: could not start a sysfs I/O worker: {e}");
        }
    }
}

/// Runs sysfs operations on worker threads, each bounded by a timeout.
/// Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct SysfsIo {
    pool: Arc<Pool>,
    timeout: Duration,
}

impl fmt::Debug for SysfsIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SysfsIo").field("timeout", &self.timeout).field("stuck", &self.stuck()).finish()
    }
}

impl SysfsIo {
    /// A pool of one worker whose operations time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self::with_workers(timeout, BASE_WORKERS)
    }

    /// A pool of `workers` threads (at least one) for concurrent callers.
    pub fn with_workers(timeout: Duration, workers: usize) -> Self {
        let (jobs, queue) = unbounded();
        let pool = Arc::new(Pool { jobs, queue, stuck: AtomicUsize::new(0) });
        for _ in 0..workers.max(1) {
            pool.spawn_worker();
        }
        SysfsIo { pool, timeout }
    }

    /// The bound on one operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Workers currently stuck in an operation that timed out.
    pub fn stuck(&self) -> usize {
        self.pool.stuck.load(Ordering::Acquire)
    }

    /// Runs `f` on a worker and waits at most the timeout for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, IoFailure> {
        self.run_guarded(move |_| f())
    }

    /// Like [`SysfsIo::run`], and `f` can ask its [`JobGuard`] whether the
    /// caller has given up (so a multi-step job does not write after its deadline).
    pub fn run_guarded<R: Send + 'static>(
        &self,
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
    ) -> Result<R, IoFailure> {
        let (tx, rx) = bounded(1);
        // The receiver may be gone after a timeout; nothing to do then.
        let state = self.enqueue(f, move |r| {
            let _ = tx.send(r);
        })?;
        match spin_then_recv(&rx, Some(self.timeout)) {
            Some(r) => Ok(r),
            None if self.abandon(&state) => Err(self.timed_out()),
            // Finished just as the deadline passed: the result is there.
            None => rx.recv().map_err(|_| self.timed_out()),
        }
    }

    /// Queues `f` for a worker, which hands its result to `deliver`; returns the job's state.
    fn enqueue<R: Send + 'static>(
        &self,
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
        deliver: impl FnOnce(R) + Send + 'static,
    ) -> Result<Arc<AtomicU8>, IoFailure> {
        if self.stuck() >= MAX_STUCK {
            return Err(IoFailure::Overloaded);
        }
        let state = Arc::new(AtomicU8::new(PENDING));
        let guard = JobGuard(Arc::clone(&state));
        let job: Job = Box::new(move || deliver(f(&guard)));
        self.pool.jobs.send((job, Arc::clone(&state))).map_err(|_| IoFailure::Overloaded)?;
        Ok(state)
    }

    /// Gives up on a job past its deadline: true when it was still running (its worker is then
    /// counted stuck and replaced), false when it finished meanwhile.
    fn abandon(&self, state: &AtomicU8) -> bool {
        if state.compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        self.pool.stuck.fetch_add(1, Ordering::AcqRel);
        self.pool.spawn_worker();
        true
    }

    fn timed_out(&self) -> IoFailure {
        IoFailure::Timeout { after_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX) }
    }

    /// Hands `f` to a worker without waiting: await [`Submitted::wait`] for its result. What an
    /// async caller uses instead of [`SysfsIo::run_guarded`], so that no thread blocks on it.
    pub fn submit_guarded<R: Send + 'static>(
        &self,
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
    ) -> Result<Submitted<R>, IoFailure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The receiver may be gone after a timeout; nothing to do then.
        let state = self.enqueue(f, move |r| {
            let _ = tx.send(r);
        })?;
        Ok(Submitted { rx, state, io: self.clone() })
    }

    /// One `read(2)` of an attribute, as sysfs expects: the whole value in one call.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, IoFailure> {
        let path = path.to_path_buf();
        self.run(move || read_once(&path))?
    }

    /// One `write(2)` of `data` into an attribute (no truncation, no newline added).
    pub fn write(&self, path: &Path, data: &[u8]) -> Result<(), IoFailure> {
        let (path, data) = (path.to_path_buf(), data.to_vec());
        self.run(move || write_once(&path, &data))?
    }
}

/// How long a thread polls (yielding the CPU) before it parks. Waking a
/// parked thread costs tens of microseconds on small VMs, several times the
/// sysfs syscalls themselves; a short poll keeps back-to-back operations cheap.
const SPIN: Duration = Duration::from_micros(50);

/// Receives from `rx`: polls for up to [`SPIN`], then blocks (at most `timeout` in all).
/// `None` when the timeout passed or the channel closed.
fn spin_then_recv<T>(rx: &Receiver<T>, timeout: Option<Duration>) -> Option<T> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Some(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => std::thread::yield_now(),
            Err(crossbeam_channel::TryRecvError::Empty) => break,
        }
    }
    match timeout {
        Some(t) => rx.recv_timeout(t.saturating_sub(start.elapsed())).ok(),
        None => rx.recv().ok(),
    }
}

/// A job on the pool whose result an async caller awaits.
#[derive(Debug)]
pub struct Submitted<R> {
    rx: tokio::sync::oneshot::Receiver<R>,
    state: Arc<AtomicU8>,
    io: SysfsIo,
}

impl<R> Submitted<R> {
    /// The job's result, or a timeout after the pool's bound: then the job is abandoned (it can
    /// see so through its guard) and its worker replaced, as [`SysfsIo::run_guarded`] does.
    /// Needs a tokio runtime with timers.
    pub async fn wait(mut self) -> Result<R, IoFailure> {
        match tokio::time::timeout(self.io.timeout, &mut self.rx).await {
            Ok(Ok(r)) => Ok(r),
            // The job was dropped unrun (the pool is shutting down).
            Ok(Err(_)) => Err(IoFailure::Overloaded),
            Err(_) if self.io.abandon(&self.state) => Err(self.io.timed_out()),
            // Finished just as the deadline passed: the result is there.
            Err(_) => self.rx.try_recv().map_err(|_| self.io.timed_out()),
        }
    }
}

/// Lets a job see whether its caller stopped waiting for it.
#[derive(Debug)]
pub struct JobGuard(Arc<AtomicU8>);

impl JobGuard {
    /// True once the caller timed out and abandoned the job.
    pub fn abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }
}

/// Opens and reads once; the bytes the kernel returned.
pub(crate) fn read_once(path: &Path) -> Result<Vec<u8>, IoFailure> {
    thread_local! {
        // One zeroed page per worker, reused: reads copy out only what the kernel returned.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; READ_BUF]);
    }
    let mut f = File::open(path).map_err(|e| IoFailure::from_io(&e))?;
    BUF.with_borrow_mut(|buf| {
        let n = f.read(buf).map_err(|e| IoFailure::from_io(&e))?;
        Ok(buf[..n].to_vec())
    })
}

/// Opens write-only (no O_TRUNC) and writes once.
pub(crate) fn write_once(path: &Path, data: &[u8]) -> Result<(), IoFailure> {
    let mut f = OpenOptions::new().write(true).open(path).map_err(|e| IoFailure::from_io(&e))?;
    let n = f.write(data).map_err(|e| IoFailure::from_io(&e))?;
    if n != data.len() {
        return Err(IoFailure::ShortWrite { written: n });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stuck_operation_times_out_and_the_pool_keeps_serving() {
        let io = SysfsIo::new(Duration::from_millis(100));
        let (release, wait) = bounded::<()>(0);
        let started = Instant::now();
        let r = io.run(move || wait.recv().is_ok());
        assert_eq!(r, Err(IoFailure::Timeout { after_ms: 100 }));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(io.stuck(), 1);
        // Other work still runs while one worker is stuck.
        assert_eq!(io.run(|| 7), Ok(7));
        drop(release);
        // The stuck worker retires once its syscall returns.
        let deadline = Instant::now() + Duration::from_secs(10);
        while io.stuck() != 0 {
            assert!(Instant::now() < deadline, "stuck worker never retired");
            std::thread::yield_now();
        }
    }

    #[tokio::test]
    async fn an_awaited_job_times_out_like_a_blocking_one() {
        let io = SysfsIo::new(Duration::from_millis(100));
        let (release, wait) = bounded::<()>(0);
        let started = Instant::now();
        let job = io.submit_guarded(move |guard| {
            let _ = wait.recv();
            guard.abandoned()
        });
        let r = job.expect("queued").wait().await;
        assert_eq!(r, Err(IoFailure::Timeout { after_ms: 100 }));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(io.stuck(), 1);
        assert_eq!(io.submit_guarded(|_| 7).expect("queued").wait().await, Ok(7));
        drop(release);
        let deadline = Instant::now() + Duration::from_secs(10);
        while io.stuck() != 0 {
            assert!(Instant::now() < deadline, "stuck worker never retired");
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn real_syscall_errors_carry_their_errno() {
        let dir = tempfile::tempdir().expect("tempdir");
        let io = SysfsIo::new(Duration::from_secs(5));
        assert_eq!(io.read(&dir.path().join("missing")), Err(IoFailure::Errno { errno: libc::ENOENT }));
        assert_eq!(io.read(dir.path()), Err(IoFailure::Errno { errno: libc::EISDIR }));
        assert_eq!(io.write(dir.path(), b"x"), Err(IoFailure::Errno { errno: libc::EISDIR }));
    }
}
