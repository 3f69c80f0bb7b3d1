//! The README as a new user reads it: every `sh` block runs as written (bash, `set -e`, the
//! built binary on PATH as `devmig`, from an empty directory), and every `devmig ...` line of
//! every other block names subcommands and options that exist.
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");

/// The fenced blocks: (info string, text).
fn blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in README.lines() {
        match (line.strip_prefix("```"), current.take()) {
            (Some(info), None) => current = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(block)) => out.push(block),
            (None, Some((info, mut text))) => {
                text.push_str(line);
                text.push('\n');
                current = Some((info, text));
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block in README.md");
    out
}

fn help(path: &[&str]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_devmig")).args(path).arg("--help").output().expect("run");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_devmig_line_names_real_subcommands_and_options() {
    let top = help(&[]).expect("devmig --help");
    let mut checked = 0;
    for (_, text) in blocks() {
        for line in text.lines() {
            let cmd = line.split(" # ").next().unwrap_or("").trim();
            let Some(rest) = cmd.strip_prefix("devmig ") else { continue };
            let words: Vec<&str> = rest.split_whitespace().collect();
            // Options before the verb are the top level's (--agents FILE, --sysfs-root DIR ...).
            let mut i = 0;
            while i < words.len() && words[i].starts_with('-') {
                i += if words[i].contains('=') { 1 } else { 2 };
            }
            let mut path: Vec<&str> = Vec::new();
            let mut page = top.clone();
            while let Some(w) = words.get(i) {
                let mut next = path.clone();
                next.push(w);
                match w.chars().all(|c| c.is_ascii_lowercase() || c == '-').then(|| help(&next)).flatten() {
                    Some(h) => {
                        path = next;
                        page = h;
                        i += 1;
                    }
                    None => break,
                }
            }
            assert!(!path.is_empty(), "README: {line:?} names no subcommand");
            let flags: BTreeSet<&str> = cmd
                .split(|c: char| c.is_whitespace() || "[]|=()".contains(c))
                .filter(|w| w.starts_with("--") && w.len() > 2)
                .collect();
            for f in flags {
                assert!(
                    page.contains(&format!("{f} "))
                        || page.contains(&format!("{f}\n"))
                        || top.contains(&format!("{f} ")),
                    "README: {line:?}: `devmig {}` has no option {f}",
                    path.join(" ")
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} devmig lines found");
}

/// Kills the block's process group on drop, and detaches a mount it left behind.
struct Group(std::process::Child, std::path::PathBuf);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGTERM);
        }
        let _ = self.0.wait();
        let _ = Command::new("umount").arg("-l").arg(self.1.join("hostA")).status();
    }
}

#[test]
fn every_sh_block_runs_as_written() {
    let bin = tempfile::tempdir().expect("bin dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_devmig"), bin.path().join("devmig")).expect("symlink");
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let runnable: Vec<String> = blocks().into_iter().filter(|(info, _)| info == "sh").map(|(_, t)| t).collect();
    assert!(!runnable.is_empty(), "README.md has no runnable block");
    for text in runnable {
        let dir = tempfile::tempdir().expect("work dir");
        let script = format!("set -euo pipefail\n{text}");
        std::fs::write(dir.path().join("block.sh"), &script).expect("write");
        use std::os::unix::process::CommandExt;
        let log = dir.path().join("log");
        let child = Command::new("bash")
            .arg("block.sh")
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("DEVMIG_SYSFS_ROOT")
            .env_remove("DEVMIG_AGENTS")
            .env_remove("DEVMIG_FLEET_URL")
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(dir.path().join("err")).expect("err"))
            .process_group(0)
            .spawn()
            .expect("bash");
        let mut g = Group(child, dir.path().to_path_buf());
        let deadline = Instant::now() + Duration::from_secs(240);
        let status = loop {
            if let Some(s) = g.0.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "README block still running after 240 s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert!(
            status.success(),
            "README block failed ({status}):\n{text}\n--- stdout\n{}\n--- stderr\n{}",
            read(&log),
            read(&dir.path().join("err"))
        );
        drop(g);
    }
}
