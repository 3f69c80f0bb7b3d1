//! The thin `fuser` adapter: every call goes to the FUSE-free [`Host`];
//! fuser's types stay in this module.
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, Notifier,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::busy_poll::Activity;
use crate::host::{self, Host, Kind};

/// How long the kernel may cache entries and attributes. File contents are never cached
/// (direct I/O); entries that go away (a removed mdev) are invalidated when they do.
const TTL: Duration = Duration::from_secs(3600);

/// Replies held back by a `hang` fault; dropped (answered EIO by fuser) at unmount.
#[derive(Default)]
pub(crate) struct Parked(Mutex<Vec<Box<dyn Send>>>);

impl Parked {
    fn park(&self, reply: impl Send + 'static) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(Box::new(reply));
    }

    /// Answers every parked request (fuser replies EIO to a dropped reply).
    pub(crate) fn release(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// The filesystem fuser drives.
pub(crate) struct SimFs {
    pub(crate) host: Arc<Mutex<Host>>,
    pub(crate) parked: Arc<Parked>,
    pub(crate) mounted_at: SystemTime,
    /// Set once the session runs: tells the kernel which cached entries died.
    pub(crate) notifier: Arc<OnceLock<Notifier>>,
    /// Every request reports here, so the FUSE device polls while requests keep coming.
    pub(crate) activity: Option<Activity>,
}

fn errno(e: host::Errno) -> Errno {
    Errno::from_i32(e.0)
}

impl SimFs {
    /// The host, for a request: also records the request for busy polling.
    fn host(&self) -> MutexGuard<'_, Host> {
        if let Some(activity) = &self.activity {
            activity.touch();
        }
        locked(&self.host)
    }

    fn attr(&self, ino: u64, st: host::Stat) -> FileAttr {
        let kind = match st.kind {
            Kind::Dir => FileType::Directory,
            Kind::Link => FileType::Symlink,
            Kind::File => FileType::RegularFile,
        };
        let t = self.mounted_at;
        FileAttr {
            ino: INodeNo(ino),
            size: st.size,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm: st.perm,
            nlink: if st.kind == Kind::Dir { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// Runs `run` with `reply`, unless a fault on `ino` says otherwise: an errno
    /// answers `fail`, a delay runs it later on another thread (so other
    /// requests go on), a hang parks the reply until unmount.
    fn with_fault<R: Send + 'static>(
        &self,
        ino: u64,
        write: bool,
        reply: R,
        fail: fn(R, Errno),
        run: impl FnOnce(R) + Send + 'static,
    ) {
        let Some(fault) = self.host().fault(ino, write).cloned() else { return run(reply) };
        if fault.hang {
            return self.parked.park(reply);
        }
        let go = move || match fault.errno {
            Some(e) => fail(reply, Errno::from_i32(e)),
            None => run(reply),
        };
        if fault.delay.is_zero() {
            return go();
        }
        let delay = fault.delay;
        let spawned = std::thread::Builder::new().name("simfs-delay".into()).spawn(move || {
            std::thread::sleep(delay);
            go();
        });
        if let Err(e) = spawned {
            // The reply moved into the closure that failed to start; fuser answers EIO when it drops.
            tracing::warn!(error = %e, "simfs: could not delay a reply");
        }
    }
}

fn locked(host: &Mutex<Host>) -> MutexGuard<'_, Host> {
    host.lock().unwrap_or_else(|p| p.into_inner())
}

impl Filesystem for SimFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Symlink targets never change while their entry lives; let the kernel keep them.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_CACHE_SYMLINKS);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let h = self.host();
        let found = name
            .to_str()
            .ok_or(host::Errno(libc::ENOENT))
            .and_then(|n| h.lookup(parent.0, n))
            .and_then(|i| Ok((i, h.stat(i)?)));
        drop(h);
        match found {
            Ok((ino, st)) => reply.entry(&TTL, &self.attr(ino, st), Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.host().stat(ino.0);
        match st {
            Ok(st) => reply.attr(&TTL, &self.attr(ino.0, st)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // `echo x > attr` truncates first (O_TRUNC -> size 0): sysfs ignores it; so do we.
        if mode.is_some() || uid.is_some() || gid.is_some() {
            return reply.error(Errno::EPERM);
        }
        let st = self.host().stat(ino.0);
        match st {
            Ok(st) => reply.attr(&TTL, &self.attr(ino.0, st)),
            Err(e) => reply.error(errno(e)),
        }
    }

    // sysfs has no mkdir, rmdir, unlink or create: the kernel answers EPERM, and EACCES for a
    // new file (measured on 6.1, kernel/vm/guest/probe-mtty.txt).
    fn mkdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, _mode: u32, _umask: u32, reply: ReplyEntry) {
        reply.error(Errno::EPERM);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EPERM);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EACCES);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.host().readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (r, w) = match flags.acc_mode() {
            OpenAccMode::O_RDONLY => (true, false),
            OpenAccMode::O_WRONLY => (false, true),
            OpenAccMode::O_RDWR => (true, true),
        };
        match self.host().open(ino.0, r, w) {
            // Direct I/O: no page cache, so dynamic attributes are never stale and each write(2) arrives alone.
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (host, ino) = (Arc::clone(&self.host), ino.0);
        self.with_fault(ino, false, reply, ReplyData::error, move |reply| match locked(&host).read(ino) {
            Ok(data) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Err(e) => reply.error(errno(e)),
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (host, ino, data, notifier) = (Arc::clone(&self.host), ino.0, data.to_vec(), Arc::clone(&self.notifier));
        let arrived = std::time::Instant::now();
        self.with_fault(ino, true, reply, ReplyWrite::error, move |reply| {
            let (result, gone) = {
                let mut h = locked(&host);
                (h.write_arrived(ino, offset, &data, arrived), h.take_invalidations())
            };
            let answer = move || match result {
                Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
                Err(e) => reply.error(errno(e)),
            };
            if gone.is_empty() {
                return answer();
            }
            // The kernel takes the parent directory's lock to invalidate an entry; a lookup in
            // that directory may hold it while waiting for a session thread. So invalidate on
            // another thread, and answer the write after it: no session thread waits on the
            // kernel, and the writer never sees the removed entry in the cache.
            let spawned = std::thread::Builder::new().name("simfs-notify".into()).spawn(move || {
                if let Some(n) = notifier.get() {
                    for (dir, name) in gone {
                        // ENOENT only means the kernel had not cached it.
                        let _ = n.inval_entry(INodeNo(dir), OsStr::new(&name));
                    }
                }
                answer();
            });
            if let Err(e) = spawned {
                // The reply moved into the closure that failed to start: fuser answers EIO when it drops.
                tracing::warn!(error = %e, "simfs: could not start an invalidation thread");
            }
        });
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = self.host().readdir(ino.0);
        match entries {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(usize::try_from(offset).unwrap_or(usize::MAX))
                {
                    let kind = match kind {
                        Kind::Dir => FileType::Directory,
                        Kind::Link => FileType::Symlink,
                        Kind::File => FileType::RegularFile,
                    };
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }
}
