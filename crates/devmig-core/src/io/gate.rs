//! Per-device admission for the I/O pool: a device whose attribute hangs may hold at most half
//! the pool's workers (at least one), and once an operation on it is stuck past its deadline,
//! every other operation on it fails at once until the kernel returns.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// The load on one device.
struct Load<Q> {
    /// Jobs of it running on workers (stuck ones included).
    running: usize,
    /// Jobs abandoned past their deadline while in the kernel on it.
    stuck: usize,
    /// Jobs of it waiting for a running one to end.
    waiting: VecDeque<Q>,
}

impl<Q> Default for Load<Q> {
    fn default() -> Self {
        Load { running: 0, stuck: 0, waiting: VecDeque::new() }
    }
}

impl<Q> Load<Q> {
    fn idle(&self) -> bool {
        self.running == 0 && self.stuck == 0 && self.waiting.is_empty()
    }
}

/// Per-device loads, keyed by the device's directory. Entries exist only while a device has
/// work running, waiting or stuck, so the map never outgrows the devices being used.
pub(crate) struct Gate<Q> {
    loads: Mutex<HashMap<Arc<Path>, Load<Q>>>,
    /// Devices with a stuck operation: when 0, admission at enqueue takes no lock.
    stuck_devices: AtomicUsize,
    /// Jobs of one device that may run at once; more wait (not holding a worker) for one to end.
    running_per_device: usize,
}

impl<Q> Gate<Q> {
    /// A gate letting one device run at most `running_per_device` jobs at once (at least 1).
    pub(crate) fn new(running_per_device: usize) -> Self {
        Gate {
            loads: Mutex::new(HashMap::new()),
            stuck_devices: AtomicUsize::new(0),
            running_per_device: running_per_device.max(1),
        }
    }

    /// Jobs of one device that may run at once.
    pub(crate) fn running_per_device(&self) -> usize {
        self.running_per_device
    }

    /// Whether any of `devices` has a stuck operation.
    pub(crate) fn any_stuck(&self, devices: &[Arc<Path>]) -> bool {
        if self.stuck_devices.load(Ordering::Acquire) == 0 {
            return false;
        }
        let loads = self.loads.lock();
        devices.iter().any(|d| loads.get(d).is_some_and(|l| l.stuck > 0))
    }

    /// Admits `job` of `device`: `Ok(Some(job))` to run it now (counted running until
    /// [`Gate::finished`]), `Ok(None)` when it was parked behind the running ones, `Err(job)`
    /// when the device has a stuck operation (fail it at once).
    pub(crate) fn admit(&self, device: &Arc<Path>, job: Q) -> Result<Option<Q>, Q> {
        let mut loads = self.loads.lock();
        let load = loads.entry(Arc::clone(device)).or_default();
        if load.stuck > 0 {
            return Err(job);
        }
        if load.running >= self.running_per_device {
            load.waiting.push_back(job);
            return Ok(None);
        }
        load.running += 1;
        Ok(Some(job))
    }

    /// A job of `device` ended (or retired after being stuck): the next parked job of the
    /// device, to be queued again.
    pub(crate) fn finished(&self, device: &Arc<Path>) -> Option<Q> {
        let mut loads = self.loads.lock();
        let load = loads.get_mut(device)?;
        load.running = load.running.saturating_sub(1);
        let next = if load.stuck == 0 { load.waiting.pop_front() } else { None };
        drop_if_idle(&mut loads, device);
        next
    }

    /// A job was abandoned while in the kernel on `device`: the device is stuck until
    /// [`Gate::unstuck`]. Returns its parked jobs, to be failed at once.
    pub(crate) fn stuck(&self, device: &Arc<Path>) -> Vec<Q> {
        let mut loads = self.loads.lock();
        let load = loads.entry(Arc::clone(device)).or_default();
        load.stuck += 1;
        if load.stuck == 1 {
            self.stuck_devices.fetch_add(1, Ordering::AcqRel);
        }
        load.waiting.drain(..).collect()
    }

    /// The stuck operation on `device` returned from the kernel.
    pub(crate) fn unstuck(&self, device: &Arc<Path>) {
        let mut loads = self.loads.lock();
        if let Some(load) = loads.get_mut(device) {
            load.stuck = load.stuck.saturating_sub(1);
            if load.stuck == 0 {
                self.stuck_devices.fetch_sub(1, Ordering::AcqRel);
            }
            drop_if_idle(&mut loads, device);
        }
    }

    /// Devices with a stuck operation, sorted.
    pub(crate) fn stuck_devices(&self) -> Vec<PathBuf> {
        if self.stuck_devices.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut v: Vec<PathBuf> =
            self.loads.lock().iter().filter(|(_, l)| l.stuck > 0).map(|(d, _)| d.to_path_buf()).collect();
        v.sort();
        v
    }

    /// Devices the gate tracks now (running, waiting or stuck work).
    pub(crate) fn tracked(&self) -> usize {
        self.loads.lock().len()
    }
}

fn drop_if_idle<Q>(loads: &mut HashMap<Arc<Path>, Load<Q>>, device: &Arc<Path>) {
    if loads.get(device).is_some_and(Load::idle) {
        loads.remove(device);
    }
}
