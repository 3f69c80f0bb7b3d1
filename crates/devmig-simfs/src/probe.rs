//! A probe of a sysfs tree, real or emulated, in a form two trees can be diffed by.
//!
//! A probe script lists operations, one per line, on paths relative to a root
//! (`/sys` on a real kernel, `<mountpoint>/sys` on simfs):
//!
//! ```text
//! # comment
//! list devices/virtual/mtty        # every node below, with modes, link targets and contents
//! write bus/mdev/devices/U/remove 1\n   # one write(2); `\n`, `\t`, `\\` and `\xHH` escapes
//! read  devices/virtual/mtty/mtty/uevent
//! mkdir | rmdir | unlink | creat PATH
//! ```
//!
//! Each operation prints lines that name the path relative to the root, never
//! the root itself, so the output of the same script on a real kernel and on
//! simfs differs only where the trees differ.
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

use crate::SimError;

/// Bytes of a file's content shown.
const SHOWN: usize = 512;
/// Directory depth below a listed path.
const MAX_DEPTH: usize = 12;
/// Nodes one `list` may print (a guard against runaway trees).
const MAX_NODES: usize = 20_000;

/// Runs `script` against the tree at `root` and returns the probe's lines.
pub fn run(root: &Path, script: &str) -> Result<Vec<String>, SimError> {
    let mut out = Vec::new();
    for (n, raw) in script.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: String| SimError::Probe { line: n + 1, why };
        let mut words = line.splitn(3, char::is_whitespace);
        let verb = words.next().unwrap_or("");
        let rel = words.next().ok_or_else(|| bad(format!("{verb:?} needs a path")))?;
        check_relative(rel).map_err(bad)?;
        let rest = words.next().map(str::trim_start);
        let path = root.join(rel);
        match (verb, rest) {
            ("list", None) => {
                let before = out.len();
                list(&path, rel, (0, before + MAX_NODES), &mut out);
                if out.len() - before > MAX_NODES {
                    return Err(bad(format!("{rel} has more than {MAX_NODES} nodes")));
                }
            }
            ("read", None) => out.push(format!("read {rel} {}", read(&path))),
            ("write", Some(data)) => {
                let bytes = unescape(data).map_err(bad)?;
                out.push(format!("write {rel} {} {}", show(&bytes), write(&path, &bytes)));
            }
            ("write", None) => return Err(bad("write needs data after the path".into())),
            ("mkdir", None) => out.push(format!("mkdir {rel} {}", outcome(fs::create_dir(&path)))),
            ("rmdir", None) => out.push(format!("rmdir {rel} {}", outcome(fs::remove_dir(&path)))),
            ("unlink", None) => out.push(format!("unlink {rel} {}", outcome(fs::remove_file(&path)))),
            ("creat", None) => {
                let made = fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path);
                out.push(format!("creat {rel} {}", outcome(made.map(drop))));
            }
            (_, Some(_)) if verb != "write" => return Err(bad(format!("{verb} takes only a path"))),
            _ => {
                return Err(bad(format!(
                    "unknown operation {verb:?} (list, read, write, mkdir, rmdir, unlink, creat)"
                )));
            }
        }
    }
    Ok(out)
}

/// A probe path must stay below the root.
fn check_relative(rel: &str) -> Result<(), String> {
    let p = Path::new(rel);
    if p.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(format!("{rel:?} must be a relative path without '.' or '..'"))
    }
}

/// Lists `path` into `out`, at most `depth` levels down, stopping once `out` holds `limit` lines.
fn list(path: &Path, rel: &str, (depth, limit): (usize, usize), out: &mut Vec<String>) {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return out.push(format!("missing {rel} {}", errno(&e))),
    };
    let mode = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).map_or_else(|e| errno(&e), |t| t.display().to_string());
        out.push(format!("l {rel} -> {target}"));
    } else if meta.is_dir() {
        out.push(format!("d {mode:04o} {rel}"));
        if depth >= MAX_DEPTH || out.len() > limit {
            return;
        }
        let mut names: Vec<String> = match fs::read_dir(path) {
            Ok(entries) => {
                entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            }
            Err(e) => return out.push(format!("readdir {rel} {}", errno(&e))),
        };
        names.sort();
        for name in names {
            list(&path.join(&name), &format!("{rel}/{name}"), (depth + 1, limit), out);
        }
    } else {
        out.push(format!("f {mode:04o} {rel} {}", read(path)));
    }
}

/// `= "content"` or `! ERRNO` (at open or read).
fn read(path: &Path) -> String {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("! open {}", errno(&e)),
    };
    let mut buf = vec![0u8; 4096];
    match file.read(&mut buf) {
        Ok(n) => {
            buf.truncate(n.min(SHOWN));
            format!("= {}", show(&buf))
        }
        Err(e) => format!("! read {}", errno(&e)),
    }
}

/// One open(O_WRONLY) and one write(2), as `echo DATA > path` does.
fn write(path: &Path, data: &[u8]) -> String {
    let mut file = match fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) => return format!("! open {}", errno(&e)),
    };
    match file.write(data) {
        Ok(n) if n == data.len() => "ok".to_string(),
        Ok(n) => format!("short {n}"),
        Err(e) => format!("! write {}", errno(&e)),
    }
}

fn outcome(r: std::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("! {}", errno(&e)),
    }
}

/// The errno's name (`EINVAL`), or the error text when there is none.
fn errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// Content quoted with Rust's escapes, so binary and trailing newlines show.
fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn unescape(data: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len());
    let mut chars = data.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let text = std::str::from_utf8(&hex).unwrap_or("");
                let value = u8::from_str_radix(text, 16).map_err(|_| format!("bad escape \\x{text} in {data:?}"))?;
                out.push(value);
            }
            other => {
                return Err(format!(
                    "bad escape \\{} in {data:?}",
                    other.map_or(String::new(), |c| (c as char).to_string())
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip_and_bad_ones_are_named() {
        assert_eq!(unescape(r"a\nb\x00\\").unwrap(), b"a\nb\0\\");
        assert!(unescape(r"\q").unwrap_err().contains(r"\q"));
        assert!(unescape(r"\xZZ").unwrap_err().contains("ZZ"));
    }

    #[test]
    fn a_script_probes_a_real_directory_relative_to_its_root() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/f"), "x\n").unwrap();
        fs::set_permissions(dir.path().join("d/f"), fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("d/l")).unwrap();
        let lines =
            run(dir.path(), "list d\nwrite d/f y\\n\nmkdir d\nunlink d/missing\n# c\ncreat d/g\nread d/g").unwrap();
        let mode = fs::metadata(dir.path().join("d")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            lines,
            [
                format!("d {mode:04o} d"),
                "f 0644 d/f = \"x\\n\"".to_string(),
                "l d/l -> f".to_string(),
                "write d/f \"y\\n\" ok".to_string(),
                "mkdir d ! EEXIST".to_string(),
                "unlink d/missing ! ENOENT".to_string(),
                "creat d/g ok".to_string(),
                "read d/g = \"\"".to_string(),
            ]
        );
    }

    #[test]
    fn bad_scripts_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (script, want) in [
            ("list ../etc", "line 1"),
            ("\nfrob x", "unknown operation"),
            ("write x", "needs data"),
            ("list /etc", "relative"),
            ("mkdir a b", "only a path"),
        ] {
            let e = run(dir.path(), script).unwrap_err().to_string();
            assert!(e.contains(want), "{script:?}: {e}");
        }
    }
}
