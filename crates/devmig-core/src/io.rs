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
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering, fence};
use std::sync::{Arc, Condvar, Mutex};
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
type Queued = (Job, Arc<AtomicU8>);

/// The workers and their queue. After its job a worker polls the queue for [`SPIN`], or, when
/// it is the one worker to finish with no job left in flight, for [`WORKER_POLL`]; then it
/// sleeps until a job wakes it. A
/// job queued while a worker polls wakes nobody: at one caller at a time no job pays for a
/// wake-up, and under load recently busy workers pick jobs up. A worker that takes a job and
/// leaves others queued wakes a sleeper for them, so a job never waits behind another one
/// (which may hang in the kernel).
struct Pool {
    jobs: Sender<Queued>,
    queue: Receiver<Queued>,
    stuck: AtomicUsize,
    /// Jobs queued or running.
    in_flight: AtomicUsize,
    /// Workers polling the queue.
    polling: AtomicUsize,
    /// Whether a worker holds the long poll.
    long_poll: AtomicBool,
    /// Workers asleep on `wake` (changed under `sleep`, read without it).
    asleep: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

impl Pool {
    fn spawn_worker(self: &Arc<Self>) {
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new().name("devmig-sysfs-io".into()).spawn(move || {
            loop {
                let (job, state) = pool.next_job();
                job();
                pool.in_flight.fetch_sub(1, Ordering::AcqRel);
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

    /// A worker's wait for its next job: poll, then sleep. Wakes another worker when jobs
    /// remain queued behind the one it takes.
    fn next_job(&self) -> Queued {
        let job = self.take_job();
        // Pairs with the fence in `push`: jobs queued while we still counted as polling woke nobody.
        fence(Ordering::SeqCst);
        if !self.queue.is_empty() {
            self.wake_one();
        }
        job
    }

    fn take_job(&self) -> Queued {
        loop {
            // The long poll is for a lone caller's next job; under load it would only take CPU.
            let long = self.in_flight.load(Ordering::Acquire) == 0
                && self.long_poll.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok();
            let window = if long { WORKER_POLL } else { SPIN };
            self.polling.fetch_add(1, Ordering::SeqCst);
            let polled = poll_for(window, || self.queue.try_recv().ok());
            self.polling.fetch_sub(1, Ordering::SeqCst);
            if long {
                self.long_poll.store(false, Ordering::Release);
            }
            if let Some(q) = polled {
                return q;
            }
            let mut held = self.sleep.lock().unwrap_or_else(|p| p.into_inner());
            self.asleep.fetch_add(1, Ordering::SeqCst);
            // Pairs with the fence in `push`: either it sees us asleep, or we see its job.
            fence(Ordering::SeqCst);
            while self.queue.is_empty() {
                held = self.wake.wait(held).unwrap_or_else(|p| p.into_inner());
            }
            self.asleep.fetch_sub(1, Ordering::SeqCst);
            drop(held);
            if let Ok(q) = self.queue.try_recv() {
                return q;
            }
        }
    }

    /// Queues a job; wakes a sleeping worker unless one is polling.
    fn push(&self, queued: Queued) -> Result<(), IoFailure> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.jobs.send(queued).is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(IoFailure::Overloaded);
        }
        fence(Ordering::SeqCst);
        if self.polling.load(Ordering::SeqCst) == 0 {
            self.wake_one();
        }
        Ok(())
    }

    /// Wakes one sleeping worker, if any (no lock taken when none sleeps).
    fn wake_one(&self) {
        if self.asleep.load(Ordering::SeqCst) > 0 {
            // Taking the lock waits for a worker between counting itself and sleeping.
            let _held = self.sleep.lock().unwrap_or_else(|p| p.into_inner());
            self.wake.notify_one();
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
        let pool = Arc::new(Pool {
            jobs,
            queue,
            stuck: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            polling: AtomicUsize::new(0),
            long_poll: AtomicBool::new(false),
            asleep: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        });
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
        match spin_then_recv(&rx, self.timeout) {
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
        self.pool.push((job, Arc::clone(&state)))?;
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

/// How long a thread polls (yielding the CPU) before it parks: a blocking caller for its
/// result, a worker for its next job. Waking a parked thread costs tens of microseconds on
/// small VMs, several times the sysfs syscalls themselves; a short poll keeps back-to-back
/// operations cheap.
const SPIN: Duration = Duration::from_micros(50);

/// How long the polling worker polls the queue after its last job before it sleeps: longer
/// than the gap between one caller's jobs (an agent's HTTP round trip), so that a steady caller's
/// jobs wake nobody.
const WORKER_POLL: Duration = Duration::from_micros(250);

/// How long an async caller polls for its job's result on its own thread, when no other job is
/// in flight, before it yields to the runtime: long enough for a sysfs exchange through FUSE, so
/// that a lone request's task needs no wake-up; short enough not to hold up a runtime thread.
const AWAIT_POLL: Duration = Duration::from_micros(150);

/// Receives from `rx`: polls for up to [`SPIN`], then blocks (at most `timeout` in all).
/// `None` when the timeout passed or the channel closed.
fn spin_then_recv<T>(rx: &Receiver<T>, timeout: Duration) -> Option<T> {
    let start = Instant::now();
    let polled = poll_for(SPIN, || match rx.try_recv() {
        Ok(v) => Some(Some(v)),
        Err(crossbeam_channel::TryRecvError::Disconnected) => Some(None),
        Err(crossbeam_channel::TryRecvError::Empty) => None,
    });
    polled.unwrap_or_else(|| rx.recv_timeout(timeout.saturating_sub(start.elapsed())).ok())
}

/// Calls `attempt` until it returns something or `window` has passed, yielding the CPU
/// between calls.
fn poll_for<T>(window: Duration, mut attempt: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = attempt() {
            return Some(v);
        }
        if start.elapsed() >= window {
            return None;
        }
        std::thread::yield_now();
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
        // Jobs stuck past their deadline stay in flight until the kernel returns; they do not count.
        if self.io.pool.in_flight.load(Ordering::Acquire).saturating_sub(self.io.stuck()) <= 1 {
            let polled = poll_for(AWAIT_POLL.min(self.io.timeout), || match self.rx.try_recv() {
                Ok(r) => Some(Ok(r)),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(IoFailure::Overloaded)),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            });
            if let Some(result) = polled {
                return result;
            }
        }
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
    fn every_job_finds_a_worker_whatever_the_gaps_between_jobs() {
        // Gaps around the polling window: jobs land while a worker polls, as it stops, and
        // while all sleep. A lost wake-up leaves a job queued until its caller times out.
        let io = SysfsIo::with_workers(Duration::from_secs(2), 3);
        let callers: Vec<_> = (0..4u64)
            .map(|seed| {
                let io = io.clone();
                std::thread::spawn(move || {
                    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    for i in 0..1500u64 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        let gap = [0, 20, 120, 240, 260, 400][(x >> 33) as usize % 6];
                        std::thread::sleep(Duration::from_micros(gap));
                        assert_eq!(io.run(move || i), Ok(i), "job {i} of caller {seed}");
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().expect("caller");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_job_does_not_hold_up_the_job_queued_behind_it() {
        // Two jobs queued back to back while a worker polls: the first hangs, the second must
        // still find a worker (a sleeping one), not wait behind the hung one until it times out.
        let io = SysfsIo::with_workers(Duration::from_secs(1), 3);
        for round in 0..20 {
            assert_eq!(io.run(|| 0), Ok(0), "warm-up: a worker is polling now");
            let (release, wait) = bounded::<()>(0);
            let hung = io.submit_guarded(move |_| wait.recv().is_err()).expect("queued");
            let next = io.submit_guarded(|_| 7).expect("queued");
            assert_eq!(next.wait().await, Ok(7), "round {round}: the second job waited for the hung one");
            drop(release);
            assert_eq!(hung.wait().await, Ok(true));
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
