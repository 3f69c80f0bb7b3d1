//! Adaptive busy polling of the FUSE device.
//!
//! A FUSE round trip costs two thread wake-ups: the kernel wakes a session thread blocked in
//! read(2) on `/dev/fuse`, and the session thread's reply wakes the caller. On a small VM a
//! wake-up costs more than the request itself, so while requests keep coming, one session
//! thread polls its descriptor instead of sleeping on it: the descriptor is switched to
//! `O_NONBLOCK` (fuser retries on `EAGAIN`), and back to blocking once no request has arrived
//! for a whole [`WINDOW`]. The other session thread reads its own, cloned descriptor and
//! always blocks, so an idle mount costs no CPU and a busy one at most one core.
//!
//! Polling only pays while a CPU is free. When the session threads spend most of their time
//! runnable but not running (their run-queue wait in `/proc/self/task/<tid>/schedstat`), the
//! poller is taking a CPU that other work needs: polling stops for [`BACKOFF`].
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

/// How long the polling thread keeps polling after the last request.
const WINDOW: Duration = Duration::from_micros(200);

/// How often, while polling, the watchdog measures the session threads' run-queue wait.
const CONTENTION_PERIOD: Duration = Duration::from_millis(5);

/// Run-queue wait of the session threads, as a share of a period, above which polling stops.
/// Measured here: 0.1 to 0.6 with one caller at a time, 0.7 to 1.2 with 16 or more.
const CONTENDED: f64 = 0.7;

/// How long polling stays off after the CPUs were found contended.
const BACKOFF: Duration = Duration::from_millis(100);

/// Session threads whose wait is measured (a session has two).
const MAX_THREADS: usize = 4;

/// Switches one `/dev/fuse` descriptor between polling and blocking as requests come and go.
pub(crate) struct BusyPoll {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
}

struct Shared {
    /// Bumped by every request; the watchdog compares it across a window.
    activity: AtomicU64,
    /// True from the first request of a burst until polling stops (a lock-free copy of `State::hot`).
    hot: AtomicBool,
    state: Mutex<State>,
    wake: Condvar,
    /// Thread ids of the session threads seen so far.
    threads: Mutex<Vec<libc::pid_t>>,
}

#[derive(Default)]
struct State {
    hot: bool,
    stopped: bool,
}

/// Why a polling spell ended.
enum Ended {
    Quiet,
    Contended,
    Stopped,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until a request arrives; false once stopped.
    fn wait_for_requests(&self) -> bool {
        let mut state = self.state();
        while !state.hot && !state.stopped {
            state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        !state.stopped
    }

    /// Sleeps window by window until one passes without a request, or the CPUs are contended.
    fn poll_while_busy(&self) -> Ended {
        let mut meter = Meter::start(self);
        loop {
            let seen = self.activity.load(Ordering::Relaxed);
            std::thread::sleep(WINDOW);
            if self.state().stopped {
                return Ended::Stopped;
            }
            if self.activity.load(Ordering::Relaxed) == seen {
                return Ended::Quiet;
            }
            if meter.contended(self) {
                return Ended::Contended;
            }
        }
    }

    /// Waits out a back-off (requests meanwhile see `hot` and do not wake us); false once stopped.
    fn back_off(&self) -> bool {
        let deadline = Instant::now() + BACKOFF;
        let mut state = self.state();
        while !state.stopped {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            state = self.wake.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        !state.stopped
    }

    /// Ends a burst: the next request wakes the watchdog again.
    fn cool(&self) {
        let mut state = self.state();
        state.hot = false;
        self.hot.store(false, Ordering::Relaxed);
    }

    fn run_queue_wait_ns(&self) -> Option<u64> {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner()).clone();
        threads.iter().map(|tid| run_queue_wait_ns(*tid)).sum()
    }
}

/// Run-queue wait of the session threads across one [`CONTENTION_PERIOD`].
struct Meter {
    since: Instant,
    waited: Option<u64>,
}

impl Meter {
    fn start(shared: &Shared) -> Self {
        Self { since: Instant::now(), waited: shared.run_queue_wait_ns() }
    }

    /// At the end of each period: did the session threads wait for a CPU most of it?
    fn contended(&mut self, shared: &Shared) -> bool {
        let elapsed = self.since.elapsed();
        if elapsed < CONTENTION_PERIOD {
            return false;
        }
        let before = self.waited;
        *self = Self::start(shared);
        match (before, self.waited) {
            (Some(before), Some(now)) => now.saturating_sub(before) as f64 > elapsed.as_nanos() as f64 * CONTENDED,
            // Without schedstat there is nothing to go by: keep polling while requests come.
            _ => false,
        }
    }
}

/// The second field of a thread's schedstat: nanoseconds spent runnable, waiting for a CPU.
fn run_queue_wait_ns(tid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    text.split_ascii_whitespace().nth(1)?.parse().ok()
}

impl BusyPoll {
    /// Watches `dev`, a duplicate of the descriptor one session thread reads (flags are shared
    /// by duplicates, so switching `dev` switches that thread).
    pub(crate) fn start(dev: OwnedFd) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            activity: AtomicU64::new(0),
            hot: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let watched = Arc::clone(&shared);
        let watchdog = std::thread::Builder::new().name("simfs-poll".into()).spawn(move || watch(&watched, &dev))?;
        Ok(Self { shared, watchdog: Some(watchdog) })
    }

    /// A handle the request handlers call.
    pub(crate) fn activity(&self) -> Activity {
        Activity(Arc::clone(&self.shared))
    }
}

impl Drop for BusyPoll {
    /// Leaves the descriptor blocking (a session thread that outlives the mount must not spin).
    fn drop(&mut self) {
        self.shared.state().stopped = true;
        self.shared.wake.notify_all();
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

thread_local! {
    /// Whether this thread's id was given to its session's [`Shared::threads`].
    static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Tells the watchdog that a request arrived: one atomic add, and a wake-up when idle.
#[derive(Clone)]
pub(crate) struct Activity(Arc<Shared>);

impl Activity {
    /// Records a request (called on the session thread that serves it).
    pub(crate) fn touch(&self) {
        let shared = &self.0;
        shared.activity.fetch_add(1, Ordering::Relaxed);
        if !REGISTERED.replace(true) {
            let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
            if threads.len() < MAX_THREADS {
                // SAFETY: gettid has no preconditions and cannot fail.
                threads.push(unsafe { libc::gettid() });
            }
        }
        if shared.hot.load(Ordering::Relaxed) {
            return;
        }
        let mut state = shared.state();
        if !state.hot && !state.stopped {
            state.hot = true;
            shared.hot.store(true, Ordering::Relaxed);
            shared.wake.notify_one();
        }
    }
}

fn set_polling(dev: &OwnedFd, polling: bool) {
    let flags = fcntl(dev.as_fd(), FcntlArg::F_GETFL).map(OFlag::from_bits_truncate);
    let result = flags.and_then(|mut flags| {
        flags.set(OFlag::O_NONBLOCK, polling);
        fcntl(dev.as_fd(), FcntlArg::F_SETFL(flags))
    });
    if let Err(e) = result {
        // Only speed depends on it: the session works either way.
        tracing::warn!(error = %e, polling, "simfs: could not switch /dev/fuse polling");
    }
}

/// The watchdog: waits for a request, polls while requests keep coming and a CPU is free.
fn watch(shared: &Shared, dev: &OwnedFd) {
    while shared.wait_for_requests() {
        set_polling(dev, true);
        let ended = shared.poll_while_busy();
        set_polling(dev, false);
        match ended {
            Ended::Stopped => return,
            Ended::Contended if !shared.back_off() => return,
            Ended::Contended | Ended::Quiet => shared.cool(),
        }
    }
}
