//! Helpers shared by the CLI's process-level tests.
#![allow(dead_code)]
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Spawns `cmd` with stdout piped and waits (at most `limit`) for its first line; stdout is
/// drained afterwards so the child never writes into a closed pipe.
pub fn spawn_until_first_line(cmd: &mut Command, limit: Duration) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx.recv_timeout(limit).expect("the process printed its first line in time");
    (child, line)
}

/// Runs the binary on the tree under `root` with `args`, without the environment's devmig
/// settings (catalog, timeout, Placement) leaking in.
pub fn devmig_at(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devmig"))
        .arg("--sysfs-root")
        .arg(root)
        .args(args)
        .env_remove("DEVMIG_CATALOG")
        .env_remove("DEVMIG_TIMEOUT_MS")
        .env_remove("DEVMIG_PLACEMENT_URL")
        .env_remove("DEVMIG_PLACEMENT_TOKEN_FILE")
        .output()
        .expect("run devmig")
}

/// A host spec built and mounted (needs root) on a fresh directory; unmounted when dropped.
pub struct MountedHost {
    /// The mount.
    pub mounted: devmig_simfs::Mounted,
    _mnt: tempfile::TempDir,
}

/// Builds `spec` (TOML) with the embedded catalog and mounts it.
pub fn mount_spec(spec: &str) -> MountedHost {
    let mnt = tempfile::tempdir().expect("mnt");
    let catalog = devmig_vendors::Catalog::embedded();
    let host = devmig_simfs::HostSpec::from_toml(spec, "test", &catalog)
        .expect("spec")
        .build(devmig_vendors::Registry::new(catalog), "test")
        .expect("build");
    MountedHost { mounted: devmig_simfs::mount(host, mnt.path()).expect("mount (root)"), _mnt: mnt }
}

/// [`devmig_at`]'s exit code and standard output.
pub fn run_at(root: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = devmig_at(root, args);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the binary with `args`, `stdin` written to its standard input (the environment's agent
/// left out).
pub fn devmig_with_stdin(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .args(args)
        .env_remove("DEVMIG_AGENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run devmig");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write");
    child.wait_with_output().expect("wait")
}

/// Stdout of a run that must exit 0 (its stderr in the failure otherwise).
pub fn ok(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

/// Compares `actual` with `tests/golden/NAME`; DEVMIG_UPDATE_GOLDEN=1 rewrites it instead.
pub fn golden(name: &str, actual: &str) {
    let path: std::path::PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name].iter().collect();
    if std::env::var_os("DEVMIG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with DEVMIG_UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// `text` with every loopback port replaced by `PORT` (servers bind port 0).
pub fn without_ports(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + "127.0.0.1:".len()]);
        rest = &rest[i + "127.0.0.1:".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(if digits > 0 { "PORT" } else { "" });
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// A child process stopped with SIGTERM on drop (also when an assertion fails).
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}
