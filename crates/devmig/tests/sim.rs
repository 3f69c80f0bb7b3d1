//! `devmig sim mount` as an operator runs it: foreground, SIGTERM unmounts,
//! and a mount left dead by kill -9 is detached by the next mount.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// Detaches whatever is still mounted on the path when the test ends, even by panic.
struct Detach(PathBuf);

impl Drop for Detach {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: c is a valid NUL-terminated path; umount2 only reads it. Failure (nothing mounted) is fine.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn mounted_on(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    mounts.lines().any(|l| l.split_whitespace().nth(1) == Some(path.to_str().expect("utf-8")))
}

/// Starts `devmig sim mount DIR` and waits (with a deadline) for it to say it mounted.
fn start(dir: &Path) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devmig"));
    cmd.args(["sim", "mount"]).arg(dir).stderr(Stdio::inherit());
    let (child, line) = common::spawn_until_first_line(&mut cmd, Duration::from_secs(20));
    assert!(line.starts_with("mounted host host-a"), "{line}");
    child
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::yield_now();
    }
    None
}

#[test]
fn sigterm_unmounts_and_a_killed_mount_is_detached_next_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let _guard = Detach(path.clone());

    let mut first = start(&path);
    assert!(mounted_on(&path));
    first.kill().expect("kill -9");
    first.wait().expect("reaped");
    let err = std::fs::metadata(path.join("sys")).expect_err("the server is gone");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "a dead mount is left behind");

    let mut second = start(&path);
    let list =
        Command::new(env!("CARGO_BIN_EXE_devmig")).arg("--sysfs-root").arg(&path).arg("list").output().expect("list");
    assert!(list.status.success() && String::from_utf8_lossy(&list.stdout).contains("0000:3d:00.1"));

    // SAFETY: kill with a valid pid of our own child and a standard signal.
    assert_eq!(unsafe { libc::kill(second.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = wait(&mut second, Duration::from_secs(20)).expect("exits after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!mounted_on(&path), "SIGTERM unmounted");
}

#[test]
fn explain_lists_every_rule_for_pairs_the_kernel_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let _guard = Detach(path.clone());
    let mut child = start(&path);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_devmig")).arg("--sysfs-root").arg(&path).args(args).output().expect("run")
    };
    let vgpu = devmig_core::tree::example_uuids::A_VGPU;
    let gvt_8 = "0000:00:02.0/i915-GVTg_V5_8";
    // Identical (the kernel's write accepts its own string) and compatible (type x2 == vGPU).
    for (target, verdict) in [(vgpu, "identical"), (gvt_8, "compatible")] {
        let o = run(&["explain", vgpu, target]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert_eq!(o.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.starts_with(&format!("verdict: {verdict}\n")), "{text}");
        assert!(!text.contains("no vendor model knows"), "{text}");
        let rules: Vec<&str> = text.lines().map(str::trim_start).filter(|l| l.starts_with("pass ")).collect();
        assert!(rules.iter().any(|l| l.contains("i915.share")), "every rule with both values: {text}");
        let o = run(&["-o", "json", "explain", vgpu, target]);
        let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        let checks = j["checks"].as_array().expect("checks");
        assert!(!checks.is_empty() && checks.iter().all(|c| c["passed"] == true), "{j}");
        assert!(checks.iter().all(|c| c["source_value"].is_string() && c["target_value"].is_string()), "{j}");
    }
    // SAFETY: kill with a valid pid of our own child and a standard signal.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    assert!(wait(&mut child, Duration::from_secs(20)).expect("exits after SIGTERM").success());
}

#[test]
fn probe_and_bench_check_run_on_a_mounted_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let _guard = Detach(path.clone());
    let mut child = start(&path);
    let devmig = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_devmig")).args(args).output().expect("run");
    let root = path.join("sys").display().to_string();
    let script = dir.path().with_extension("probe");
    let ty = "devices/virtual/mtty/mtty/mdev_supported_types/mtty-2";
    std::fs::write(&script, format!("read {ty}/name\nwrite {ty}/create not-a-uuid\nmkdir {ty}/x\nread {ty}/create\n"))
        .expect("script");
    let o = devmig(&["sim", "probe", "--root", &root, script.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!(
            "read {ty}/name = \"Dual port serial\\n\"\nwrite {ty}/create \"not-a-uuid\" ! write EINVAL\n\
             mkdir {ty}/x ! EPERM\nread {ty}/create ! open EACCES\n"
        )
    );
    std::fs::write(&script, "list ../etc\n").expect("script");
    let o = devmig(&["sim", "probe", "--root", &root, script.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 1"), "{}", String::from_utf8_lossy(&o.stderr));

    // One check under two roots (here the same mount twice): both rows, one verdict.
    let p = path.display().to_string();
    let version = "mtty-v1-0.1.0-mtty-2";
    let args = ["bench", "check", "--version", version, "--target", "mtty/mtty-2", "--root", &p, "--root", &p];
    let o = devmig(&[&args[..], &["--rounds", "2", "--per-round", "3"]].concat());
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.starts_with("verdict Identical under every root\n"), "{text}");
    assert_eq!(text.lines().filter(|l| l.trim_start().starts_with(&p)).count(), 2, "{text}");
    // Nothing to measure when the check fails.
    let o = devmig(&["bench", "check", "--version", version, "--target", "mtty/mtty-9", "--root", &p]);
    assert_ne!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));

    // SAFETY: kill with a valid pid of our own child and a standard signal.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    assert!(wait(&mut child, Duration::from_secs(20)).expect("exits after SIGTERM").success());
}
