//! Mounting a host through the kernel's FUSE driver, as root, with no fusermount.
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use fuser::{BackgroundSession, Config, Session, SessionACL};
use nix::mount::{MntFlags, MsFlags};

use crate::busy_poll::BusyPoll;
use crate::fuse::{Parked, SimFs};
use crate::{Host, SimError};

/// How long unmounting waits for the session thread before leaving it behind.
const JOIN_DEADLINE: Duration = Duration::from_secs(5);

/// A mounted host. Dropping it unmounts (also during a panic).
pub struct Mounted {
    path: PathBuf,
    host: Arc<Mutex<Host>>,
    parked: Arc<Parked>,
    poll: Option<BusyPoll>,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

/// Detaches a dead FUSE mount (its server was killed: ENOTCONN) from `path`. True when one was detached.
pub fn detach_stale(path: &Path) -> Result<bool, SimError> {
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            nix::mount::umount2(path, MntFlags::MNT_DETACH).map_err(|e| SimError::Mount {
                what: "detaching the dead mount on",
                path: path.into(),
                source: e.into(),
            })?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// How a host is served.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Poll the FUSE device while requests keep coming (see the crate's `busy_poll` module):
    /// round trips take about half as long, at the price of up to one CPU while the mount is
    /// busy and a free CPU exists. Off: session threads always sleep between requests.
    pub busy_poll: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self { busy_poll: true }
    }
}

/// Mounts `host` on `path` (an existing directory) with the default options. Needs root
/// (CAP_SYS_ADMIN) and /dev/fuse.
pub fn mount(host: Host, path: &Path) -> Result<Mounted, SimError> {
    mount_with(host, path, &MountOptions::default())
}

/// Mounts `host` on `path` (an existing directory). Needs root (CAP_SYS_ADMIN) and /dev/fuse.
pub fn mount_with(host: Host, path: &Path, options: &MountOptions) -> Result<Mounted, SimError> {
    detach_stale(path)?;
    let err = |what| mount_error(what, path);
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/fuse")
        .map_err(err("opening /dev/fuse to mount"))?;
    let data = format!("fd={},rootmode=40000,user_id=0,group_id=0,allow_other", dev.as_raw_fd());
    nix::mount::mount(
        Some("devmig-simfs"),
        path,
        Some("fuse.devmig-simfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|e| SimError::Mount { what: "mounting on", path: path.into(), source: e.into() })?;
    let served = serve(host, dev, path, options);
    if served.is_err() {
        // Nobody will answer this mount: do not leave it behind.
        let _ = nix::mount::umount2(path, MntFlags::MNT_DETACH);
    }
    served
}

/// Turns an I/O error into "`what` `path`: error".
fn mount_error<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> SimError + 'p {
    move |source| SimError::Mount { what, path: path.into(), source }
}

/// Starts the FUSE session for `host` on a fresh mount of `dev` at `path`.
fn serve(host: Host, dev: std::fs::File, path: &Path, options: &MountOptions) -> Result<Mounted, SimError> {
    let err = |what| mount_error(what, path);
    // The polling session thread reads `dev` itself; the watchdog switches it through a duplicate.
    let poll = if options.busy_poll {
        let duplicate = dev.try_clone().map_err(err("duplicating /dev/fuse for"))?;
        Some(BusyPoll::start(duplicate.into()).map_err(err("starting the polling watchdog for"))?)
    } else {
        None
    };
    let host = Arc::new(Mutex::new(host));
    let parked = Arc::new(Parked::default());
    let notifier = Arc::new(std::sync::OnceLock::new());
    let fs = SimFs {
        host: Arc::clone(&host),
        parked: Arc::clone(&parked),
        mounted_at: SystemTime::now(),
        notifier: Arc::clone(&notifier),
        activity: poll.as_ref().map(BusyPoll::activity),
    };
    let mut config = Config::default();
    config.acl = SessionACL::All;
    // Two session threads. When polling, fuser's first reads a clone of `dev` and always
    // blocks, the second reads `dev`, which polls while requests keep coming.
    config.n_threads = Some(2);
    config.clone_fd = poll.is_some();
    let mut mounted = Mounted { path: path.into(), host, parked, poll, session: None };
    // The kernel queued FUSE_INIT at mount(2); from_fd answers it.
    let session = Session::from_fd(fs, OwnedFd::from(dev), SessionACL::All, config)
        .map_err(err("starting the FUSE session on"))?;
    let background = session.spawn().map_err(err("starting the FUSE thread for"))?;
    let _ = notifier.set(background.notifier());
    mounted.session = Some(background);
    Ok(mounted)
}

impl Mounted {
    /// The mountpoint.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The host behind the mount (lock held while the guard lives).
    pub fn host(&self) -> MutexGuard<'_, Host> {
        self.host.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lifts every injected fault and answers the requests a hang parked (with EIO, as a
    /// driver that gives up would): the attributes answer normally from now on.
    pub fn heal(&self) {
        self.host().clear_faults();
        self.parked.release();
    }

    /// Unmounts now.
    pub fn unmount(mut self) -> Result<(), SimError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), SimError> {
        // Stop polling first: a session thread that an open file keeps alive must block, not spin.
        drop(self.poll.take());
        let Some(session) = self.session.take() else { return Ok(()) };
        let detached = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH);
        // Requests parked by a hang fault get EIO now, so their callers let go of the mount.
        self.parked.release();
        let deadline = Instant::now() + JOIN_DEADLINE;
        while !session.guard.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if session.guard.is_finished() {
            let _ = session.join();
        } else {
            // Something still holds a file open in the detached tree; the thread exits when it lets go.
            std::mem::forget(session);
        }
        detached.map_err(|e| SimError::Mount { what: "unmounting", path: self.path.clone(), source: e.into() })
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!(error = %e, "simfs: unmount on drop failed");
        }
    }
}
