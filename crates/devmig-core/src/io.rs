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
//!
//! Operations name the device (its directory) they touch. One device may hold at most half
//! the workers (at least one) at once (its other jobs wait without holding one), and
//! a device with an operation stuck past its deadline fails every other operation at once
//! ([`IoFailure::DeviceStuck`]) until the kernel returns: one hung attribute cannot take the
//! pool from the other devices.
mod gate;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
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
    /// An earlier operation on this device is still stuck in the kernel; not attempted.
    DeviceStuck,
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
            IoFailure::DeviceStuck => {
                write!(f, "an earlier operation on this device is still stuck in the kernel; not attempted")
            }
        }
    }
}

const PENDING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED: u8 = 2;
const RUNNING: u8 = 3;

/// A job's shared state: its stage, the devices it declared, and where it is in the kernel now.
struct JobState {
    stage: AtomicU8,
    /// The devices it touches; it counts as running on the first.
    devices: Vec<Arc<Path>>,
    /// The device it is working on now ([`JobGuard::at`]; the first device until it says).
    at: Mutex<Option<Arc<Path>>>,
    /// The device a job abandoned in the kernel was charged to (taken when it retires).
    charged: Mutex<Option<Arc<Path>>>,
}

impl JobState {
    fn new(devices: Vec<Arc<Path>>) -> Self {
        let at = Mutex::new(devices.first().cloned());
        JobState { stage: AtomicU8::new(PENDING), devices, at, charged: Mutex::new(None) }
    }

    fn mov(&self, from: u8, to: u8) -> bool {
        self.stage.compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// A job: run with `None`, or told why it will not run.
type Job = Box<dyn FnOnce(Option<IoFailure>) + Send>;
type Queued = (Job, Arc<JobState>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

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
    /// Per-device admission.
    gate: gate::Gate<Queued>,
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
                if !pool.work(job, &state) {
                    // The caller gave up and started a replacement: this worker retires.
                    return;
                }
            }
        });
        if let Err(e) = spawned {
            // Without a worker the queue still drains through the others; say so once.
            eprintln!("devmig: could not start a sysfs I/O worker: {e}");
        }
    }

    /// Runs (or fails, or parks) one job; false when the job was abandoned in the kernel and
    /// this worker must retire (a replacement was started).
    fn work(&self, job: Job, state: &Arc<JobState>) -> bool {
        let Some(device) = state.devices.first().cloned() else { return self.execute(job, state) };
        match self.gate.admit(&device, (job, Arc::clone(state))) {
            Err((job, state)) => {
                self.fail(job, &state, IoFailure::DeviceStuck);
                true
            }
            Ok(None) => true,
            Ok(Some((job, state))) => {
                let kept = self.execute(job, &state);
                if let Some(next) = self.gate.finished(&device) {
                    self.requeue(next);
                }
                kept
            }
        }
    }

    /// Runs an admitted job; false when it was abandoned while running.
    fn execute(&self, job: Job, state: &JobState) -> bool {
        if !state.mov(PENDING, RUNNING) {
            // Abandoned while queued: it never runs, nothing is stuck.
            drop(job);
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return true;
        }
        job(None);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        if state.mov(RUNNING, DONE) {
            return true;
        }
        // Abandoned in the kernel: the caller counted it stuck and charged a device, both under
        // `charged`'s lock; taking it first means both are done before they are undone.
        let charged = lock(&state.charged).take();
        self.stuck.fetch_sub(1, Ordering::AcqRel);
        if let Some(device) = charged {
            self.gate.unstuck(&device);
        }
        false
    }

    /// Tells a job it will not run (unless its caller already gave up on it).
    fn fail(&self, job: Job, state: &JobState, why: IoFailure) {
        if state.mov(PENDING, DONE) {
            job(Some(why));
        }
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Queues a parked job again (still counted in flight).
    fn requeue(&self, queued: Queued) {
        if self.jobs.send(queued).is_err() {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        fence(Ordering::SeqCst);
        if self.polling.load(Ordering::SeqCst) == 0 {
            self.wake_one();
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
            gate: gate::Gate::new(workers / 2),
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

    /// Devices (their directories) with an operation stuck in the kernel past its deadline:
    /// they fail every operation at once until it returns.
    pub fn stuck_devices(&self) -> Vec<PathBuf> {
        self.pool.gate.stuck_devices()
    }

    /// How many operations of one device may run at once (half the workers, at least one).
    pub fn running_per_device(&self) -> usize {
        self.pool.gate.running_per_device()
    }

    /// Devices the pool holds state for now (running, waiting or stuck work): never more than
    /// the devices in use, whatever ids callers named before.
    pub fn tracked_devices(&self) -> usize {
        self.pool.gate.tracked()
    }

    /// Runs `f` on a worker and waits at most the timeout for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> Result<R, IoFailure> {
        self.run_guarded_on(&[], move |_| f())
    }

    /// Runs `f`, which works on the device at `device` (its directory), as [`SysfsIo::run`].
    pub fn run_on<R: Send + 'static>(
        &self,
        device: &Path,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, IoFailure> {
        self.run_guarded_on(&[device], move |_| f())
    }

    /// Like [`SysfsIo::run`], and `f` can ask its [`JobGuard`] whether the
    /// caller has given up (so a multi-step job does not write after its deadline).
    pub fn run_guarded<R: Send + 'static>(
        &self,
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
    ) -> Result<R, IoFailure> {
        self.run_guarded_on(&[], f)
    }

    /// [`SysfsIo::run_guarded`] for a job on `devices` (their directories; it counts as
    /// running on the first, and says which one it works on with [`JobGuard::at`]).
    pub fn run_guarded_on<R: Send + 'static>(
        &self,
        devices: &[&Path],
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
    ) -> Result<R, IoFailure> {
        let (tx, rx) = bounded(1);
        // The receiver may be gone after a timeout; nothing to do then.
        let state = self.enqueue(devices, f, move |r| {
            let _ = tx.send(r);
        })?;
        match spin_then_recv(&rx, self.timeout) {
            Some(r) => r,
            None if self.abandon(&state) => Err(self.timed_out()),
            // Finished just as the deadline passed: the result is there.
            None => rx.recv().map_err(|_| self.timed_out())?,
        }
    }

    /// Queues `f` for a worker, which hands its result (or why it did not run) to `deliver`;
    /// returns the job's state.
    fn enqueue<R: Send + 'static>(
        &self,
        devices: &[&Path],
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
        deliver: impl FnOnce(Result<R, IoFailure>) + Send + 'static,
    ) -> Result<Arc<JobState>, IoFailure> {
        if self.stuck() >= MAX_STUCK {
            return Err(IoFailure::Overloaded);
        }
        let devices: Vec<Arc<Path>> = devices.iter().map(|d| Arc::from(*d)).collect();
        if self.pool.gate.any_stuck(&devices) {
            return Err(IoFailure::DeviceStuck);
        }
        let state = Arc::new(JobState::new(devices));
        let guard = JobGuard { state: Arc::clone(&state), pool: Arc::clone(&self.pool) };
        let job: Job = Box::new(move |skip| match skip {
            None => deliver(Ok(f(&guard))),
            Some(why) => deliver(Err(why)),
        });
        self.pool.push((job, Arc::clone(&state)))?;
        Ok(state)
    }

    /// Gives up on a job past its deadline: true when it had not finished. A job still queued
    /// never runs; one in the kernel is counted stuck (on the device it was working on, whose
    /// parked jobs fail at once) and its worker replaced. False when it finished meanwhile.
    fn abandon(&self, state: &JobState) -> bool {
        if state.mov(PENDING, ABANDONED) {
            return true;
        }
        let parked = {
            let mut charged = lock(&state.charged);
            if !state.mov(RUNNING, ABANDONED) {
                return false;
            }
            self.pool.stuck.fetch_add(1, Ordering::AcqRel);
            let device = lock(&state.at).clone();
            let parked = device.as_ref().map(|d| self.pool.gate.stuck(d)).unwrap_or_default();
            *charged = device;
            parked
        };
        for (job, st) in parked {
            self.pool.fail(job, &st, IoFailure::DeviceStuck);
        }
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
        self.submit_guarded_on(&[], f)
    }

    /// [`SysfsIo::submit_guarded`] for a job on `devices`, as [`SysfsIo::run_guarded_on`].
    pub fn submit_guarded_on<R: Send + 'static>(
        &self,
        devices: &[&Path],
        f: impl FnOnce(&JobGuard) -> R + Send + 'static,
    ) -> Result<Submitted<R>, IoFailure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The receiver may be gone after a timeout; nothing to do then.
        let state = self.enqueue(devices, f, move |r| {
            let _ = tx.send(r);
        })?;
        Ok(Submitted { rx, state, io: self.clone() })
    }

    /// One `read(2)` of an attribute, as sysfs expects: the whole value in one call (on the
    /// device that is the attribute's directory).
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, IoFailure> {
        let device = path.parent().unwrap_or(path);
        let path = path.to_path_buf();
        self.run_on(device, move || read_once(&path))?
    }

    /// One `write(2)` of `data` into an attribute (no truncation, no newline added).
    pub fn write(&self, path: &Path, data: &[u8]) -> Result<(), IoFailure> {
        let device = path.parent().unwrap_or(path);
        let (path, data) = (path.to_path_buf(), data.to_vec());
        self.run_on(device, move || write_once(&path, &data))?
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
pub struct Submitted<R> {
    rx: tokio::sync::oneshot::Receiver<Result<R, IoFailure>>,
    state: Arc<JobState>,
    io: SysfsIo,
}

impl<R> fmt::Debug for Submitted<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submitted").field("stage", &self.state.stage.load(Ordering::Relaxed)).finish()
    }
}

impl<R> Submitted<R> {
    /// The job's result, or a timeout after the pool's bound: then the job is abandoned (it can
    /// see so through its guard) and its worker replaced, as [`SysfsIo::run_guarded`] does.
    /// Needs a tokio runtime with timers.
    pub async fn wait(mut self) -> Result<R, IoFailure> {
        // Jobs stuck past their deadline stay in flight until the kernel returns; they do not count.
        if self.io.pool.in_flight.load(Ordering::Acquire).saturating_sub(self.io.stuck()) <= 1 {
            let polled = poll_for(AWAIT_POLL.min(self.io.timeout), || match self.rx.try_recv() {
                Ok(r) => Some(r),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => Some(Err(IoFailure::Overloaded)),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            });
            if let Some(result) = polled {
                return result;
            }
        }
        match tokio::time::timeout(self.io.timeout, &mut self.rx).await {
            Ok(Ok(r)) => r,
            // The job was dropped unrun (the pool is shutting down).
            Ok(Err(_)) => Err(IoFailure::Overloaded),
            Err(_) if self.io.abandon(&self.state) => Err(self.io.timed_out()),
            // Finished just as the deadline passed: the result is there.
            Err(_) => self.rx.try_recv().map_err(|_| self.io.timed_out())?,
        }
    }
}

/// Lets a job see whether its caller stopped waiting for it, and say which device it works on.
pub struct JobGuard {
    state: Arc<JobState>,
    pool: Arc<Pool>,
}

impl fmt::Debug for JobGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobGuard").field("abandoned", &self.abandoned()).finish()
    }
}

impl JobGuard {
    /// True once the caller timed out and abandoned the job.
    pub fn abandoned(&self) -> bool {
        self.state.stage.load(Ordering::Acquire) == ABANDONED
    }

    /// The job now works on the device at `device` (its directory): should it get stuck there,
    /// that device is the one marked stuck. [`IoFailure::DeviceStuck`] when it already is.
    pub fn at(&self, device: &Path) -> Result<(), IoFailure> {
        let device: Arc<Path> = Arc::from(device);
        if self.pool.gate.any_stuck(std::slice::from_ref(&device)) {
            return Err(IoFailure::DeviceStuck);
        }
        *lock(&self.state.at) = Some(device);
        Ok(())
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

    /// Waits (bounded) until `cond` holds.
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_device_with_a_stuck_operation_fails_at_once_and_recovers() {
        let io = SysfsIo::with_workers(Duration::from_millis(100), 2);
        let (a, b) = (Path::new("/sys/devices/a"), Path::new("/sys/devices/b"));
        let (release, wait) = bounded::<()>(0);
        assert_eq!(io.run_on(a, move || wait.recv().is_ok()), Err(IoFailure::Timeout { after_ms: 100 }));
        assert_eq!(io.stuck_devices(), vec![a.to_path_buf()]);
        // The stuck device answers at once, without queueing; the others are served.
        let started = Instant::now();
        assert_eq!(io.run_on(a, || 1), Err(IoFailure::DeviceStuck));
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
        assert_eq!(io.run_on(b, || 2), Ok(2));
        // A job that reaches the stuck device on its way is refused there.
        assert_eq!(io.run_guarded_on(&[b], move |g| g.at(a)), Ok(Err(IoFailure::DeviceStuck)));
        drop(release);
        eventually("the device never recovered", || io.stuck_devices().is_empty());
        assert_eq!(io.run_on(a, || 3), Ok(3));
        eventually("per-device state outlived the work", || io.tracked_devices() == 0);
    }

    #[test]
    fn a_flood_on_one_hung_device_holds_few_workers_and_the_others_are_served() {
        let io = SysfsIo::with_workers(Duration::from_millis(300), 8);
        let hung = Path::new("/sys/devices/hung");
        let (release, wait) = bounded::<()>(0);
        let flood: Vec<_> = (0..64)
            .map(|_| {
                let (io, wait) = (io.clone(), wait.clone());
                std::thread::spawn(move || io.run_on(hung, move || wait.recv().is_ok()))
            })
            .collect();
        // While the flood waits for its deadline, other devices never wait for a worker.
        for i in 0..50u64 {
            let other = PathBuf::from(format!("/sys/devices/other{}", i % 5));
            assert_eq!(io.run_on(&other, move || i), Ok(i), "job {i} on {}", other.display());
        }
        for f in flood {
            let r = f.join().expect("flood thread");
            assert!(matches!(r, Err(IoFailure::Timeout { .. } | IoFailure::DeviceStuck)), "{r:?}");
        }
        assert!(io.stuck() <= io.running_per_device(), "{} workers stuck on one device", io.stuck());
        drop(release);
        eventually("stuck workers never retired", || io.stuck() == 0 && io.stuck_devices().is_empty());
    }

    #[test]
    fn a_job_abandoned_while_queued_never_runs() {
        let io = SysfsIo::with_workers(Duration::from_millis(100), 1);
        let (release, wait) = bounded::<()>(0);
        let ran = Arc::new(AtomicBool::new(false));
        // Nobody waits for the first job, so its worker is never replaced while it blocks.
        let first = io.submit_guarded(move |_| wait.recv().is_ok()).expect("queued");
        eventually("the first job never started", || io.pool.in_flight.load(Ordering::Acquire) == 1);
        let r = Arc::clone(&ran);
        assert_eq!(io.run(move || r.store(true, Ordering::SeqCst)), Err(IoFailure::Timeout { after_ms: 100 }));
        assert_eq!(io.stuck(), 0, "a job that never started is not stuck");
        drop(release);
        drop(first);
        eventually("the queue never drained", || io.pool.in_flight.load(Ordering::Acquire) == 0);
        assert_eq!(io.run(|| 5), Ok(5));
        assert!(!ran.load(Ordering::SeqCst), "a job ran after its caller gave up on it");
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
