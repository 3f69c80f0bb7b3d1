//! Busy polling of the FUSE device stops when requests stop: an idle mount burns no CPU, and
//! neither does a session that an open file keeps alive after unmount.
//! (Its own test binary: it measures every FUSE session thread of the process.)
mod common;

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use common::host_a;
use devmig_core::tree::example_uuids::A_VGPU;

/// Nanoseconds on a CPU so far, summed over this process's FUSE session threads.
fn session_cpu_ns() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").expect("tasks").flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("fuser-") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat.split_ascii_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// Polls until the session threads use under 10% of one CPU across a 50 ms sample; panics
/// with the last sample after `deadline`.
fn wait_until_quiet(deadline: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let (t0, cpu0) = (Instant::now(), session_cpu_ns());
        while t0.elapsed() < Duration::from_millis(50) {
            std::thread::yield_now();
        }
        let used = session_cpu_ns().saturating_sub(cpu0) as f64 / t0.elapsed().as_nanos() as f64;
        if used < 0.1 {
            return;
        }
        assert!(start.elapsed() < deadline, "{what}: session threads still use {:.0}% of a CPU", used * 100.0);
    }
}

fn burst(path: &std::path::Path) {
    let mut buf = [0u8; 4097];
    for _ in 0..2000 {
        File::open(path).and_then(|mut f| f.read(&mut buf)).expect("read");
    }
}

#[test]
fn polling_stops_when_requests_stop() {
    let a = host_a();
    let attr = a.mounted.path().join(format!("sys/bus/mdev/devices/{A_VGPU}/migration_version"));
    let before = session_cpu_ns();
    burst(&attr);
    assert!(session_cpu_ns() > before, "the session threads served the burst");
    wait_until_quiet(Duration::from_secs(3), "idle mount");

    // Unmounting while a file is open leaves the session alive until it closes: it must block.
    let open = File::open(&attr).expect("open");
    burst(&attr);
    // The unmount waits for the session, which waits for `open`: let it wait on another thread.
    let unmounting = std::thread::spawn(move || a.mounted.unmount());
    wait_until_quiet(Duration::from_secs(3), "detached mount with an open file");
    drop(open);
    unmounting.join().expect("unmount thread").expect("unmount");
}
