//! The CLI as a user runs it: the real binary against example hosts built in
//! temp dirs. Golden files hold the expected output; set
//! DEVMIG_UPDATE_GOLDEN=1 to regenerate them after an intended change.
mod common;

use std::path::Path;
use std::process::Command;

use devmig_core::tree::{ExampleHost, TreeBuilder, example_host, example_uuids::*};

struct Host {
    dir: tempfile::TempDir,
}

fn host(which: ExampleHost) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    example_host(&TreeBuilder::new(dir.path()), which).expect("build");
    Host { dir }
}

use common::{devmig_at as devmig, ok};

#[test]
fn list_show_and_attributes_match_golden_files() {
    let a = host(ExampleHost::A);
    let r = a.dir.path();
    let cases: [(&str, Vec<&str>); 8] = [
        ("list.txt", vec!["list"]),
        ("list.json", vec!["-o", "json", "list"]),
        ("show-vf.txt", vec!["show", "0000:3d:00.1"]),
        ("show-vgpu.json", vec!["-o", "json", "show", A_VGPU]),
        ("show-type.txt", vec!["show", "0000:00:02.0/i915-GVTg_V5_4"]),
        ("attributes-vgpu.txt", vec!["attributes", A_VGPU]),
        ("attributes-qat.json", vec!["-o", "json", "attributes", "0000:6b:00.1"]),
        ("attributes-type.json", vec!["-o", "json", "attributes", "0000:00:02.0/i915-GVTg_V5_8"]),
    ];
    for (name, args) in cases {
        common::golden(name, &ok(&devmig(r, &args)));
    }
}

#[test]
fn check_explain_and_match_match_golden_files() {
    let a = host(ExampleHost::A);
    let vgpu = ok(&devmig(a.dir.path(), &["version", A_VGPU]));
    let vf = ok(&devmig(a.dir.path(), &["version", "0000:3d:00.1"]));
    let (vgpu, vf) = (vgpu.trim(), vf.trim());
    let cases: [(&str, Vec<&str>, i32); 8] = [
        ("check-compatible.txt", vec!["check", "--version", vgpu, B_VGPU_HALF], 0),
        ("check-rejected.txt", vec!["check", "--version", vgpu, B_VGPU_EIGHTH], 1),
        ("check-rejected.json", vec!["-o", "json", "check", "--version", vgpu, B_VGPU_EIGHTH], 1),
        ("explain-compatible.txt", vec!["explain", "--version", vgpu, B_VGPU_HALF], 0),
        ("explain-rejected.txt", vec!["explain", "--version", vgpu, B_VGPU_EIGHTH], 1),
        ("explain-compatible.json", vec!["-o", "json", "explain", "--version", vgpu, B_VGPU_HALF], 0),
        ("match-vf.txt", vec!["match", "--version", vf], 0),
        ("match-vgpu.json", vec!["-o", "json", "match", "--version", vgpu], 0),
    ];
    for (name, args, code) in cases {
        // A fresh host per case: on a plain tree a write replaces the attribute file's text.
        let b = host(ExampleHost::B);
        let o = devmig(b.dir.path(), &args);
        assert_eq!(o.status.code(), Some(code), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        common::golden(name, &String::from_utf8(o.stdout).expect("utf-8"));
    }
}

#[test]
fn json_is_sorted_and_versioned() {
    let a = host(ExampleHost::A);
    let text = ok(&devmig(a.dir.path(), &["-o", "json", "list"]));
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["schema"], "devmig.list/v1");
    let keys: Vec<&String> = v["devices"][0].as_object().expect("object").keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn check_exit_codes_follow_the_readme() {
    let (a, b) = (host(ExampleHost::A), host(ExampleHost::B));
    let v = ok(&devmig(a.dir.path(), &["version", A_VGPU]));
    assert_eq!(v, "i915-v1.2.0-8086-591d-i915-GVTg_V5_4-2\n");
    let vfile = a.dir.path().join("v");
    std::fs::write(&vfile, &v).expect("write");
    let vf = vfile.to_str().expect("utf-8 path");

    let o = devmig(b.dir.path(), &["check", "--version-file", vf, B_VGPU_HALF]);
    assert_eq!(o.status.code(), Some(0));
    let o = devmig(b.dir.path(), &["-o", "json", "check", "--version", v.trim(), B_VGPU_EIGHTH]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(
        (j["schema"].as_str(), j["verdict"].as_str(), j["reasons"][0]["code"].as_str()),
        (Some("devmig.check/v1"), Some("incompatible"), Some("i915.share"))
    );
    assert_eq!(j["to"]["source"], "model");

    let e = ok(&devmig(b.dir.path(), &["explain", "--version", v.trim(), B_VGPU_HALF]));
    let rule_line = |rule: &str| {
        e.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(rule))
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
    };
    assert_eq!(rule_line("i915.share").as_deref(), Some("pass"), "{e}");
    assert_eq!(rule_line("i915.gvt_version_minor").as_deref(), Some("pass"), "{e}");

    // Bad input: exit 2, with a message naming what was wrong.
    for args in [
        vec!["check", "../../etc", B_VGPU_HALF],
        vec!["check", "--version", "caf\u{e9}", B_VGPU_HALF],
        vec!["check", A_VGPU],
        vec!["show", "0000:99:00.0"],
        vec!["bogus"],
    ] {
        let o = devmig(b.dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(!o.stderr.is_empty());
    }
    let o = devmig(b.dir.path(), &["check", "--version", "caf\u{e9}", B_VGPU_HALF]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("printable ASCII"));

    // A device that cannot migrate: exit 1 with the reason.
    let o = devmig(a.dir.path(), &["version", "0000:00:1f.3"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("source_unsupported"));

    // A missing root is a runtime error.
    let o = devmig(Path::new("/nonexistent/devmig-root"), &["list"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn unknown_strings_missing_files_and_closed_pipes() {
    let b = host(ExampleHost::B);
    // A string no vendor model knows is an invalid source, not another vendor's.
    let o = devmig(b.dir.path(), &["-o", "json", "check", "--version", "bogus", B_VGPU_HALF]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let codes: Vec<&str> =
        j["reasons"].as_array().expect("reasons").iter().filter_map(|r| r["code"].as_str()).collect();
    assert!(codes.contains(&"source_version_invalid") && !codes.contains(&"vendor_mismatch"), "{codes:?}");

    // Files the user names that are missing: bad input (2), naming the file.
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("gone.toml");
    let gone = gone.to_str().expect("utf-8 path");
    for args in [
        vec!["sim", "validate", gone],
        vec!["sim", "mount", "--spec", gone, gone],
        vec!["check", "--version-file", gone, B_VGPU_HALF],
        vec!["--agent", "http://127.0.0.1:9", "--token-file", gone, "list"],
        vec!["--agents", gone, "claims", "hostB"],
        vec!["agent", "--config", gone],
    ] {
        let o = devmig(b.dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("gone.toml"), "{args:?}");
    }

    // A reader that closed the pipe: quiet, exit 0 (ripgrep's convention).
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .arg("--sysfs-root")
        .arg(b.dir.path())
        .arg("list")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run");
    assert_eq!((o.status.code(), String::from_utf8_lossy(&o.stderr).to_string()), (Some(0), String::new()));
}

#[test]
fn version_from_stdin_and_match() {
    let (a, b) = (host(ExampleHost::A), host(ExampleHost::B));
    let v = ok(&devmig(a.dir.path(), &["version", "0000:3d:00.1"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .args(["--sysfs-root", b.dir.path().to_str().expect("path"), "-o", "json", "match", "--version-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(v.as_bytes()).expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let accepted: Vec<&str> = j["candidates"]
        .as_array()
        .expect("array")
        .iter()
        .filter(|c| c["verdict"] == "compatible")
        .filter_map(|c| c["device"].as_str())
        .collect();
    assert_eq!(accepted, ["0000:3d:00.1"]);
}

#[test]
fn demo_runs_and_cleans_up() {
    let o = Command::new(env!("CARGO_BIN_EXE_devmig")).arg("demo").output().expect("run");
    let text = ok(&o);
    for needle in [
        "verdict: compatible",
        "verdict: incompatible",
        "verdict: identical",
        "i915.share",
        "nvme.storage_url",
        "mtty.ports",
        "QAT hybrid",
    ] {
        assert!(text.contains(needle), "demo output lacks {needle}");
    }
}

#[test]
fn sim_spec_example_validates_and_bad_specs_name_the_key() {
    let o = Command::new(env!("CARGO_BIN_EXE_devmig")).args(["sim", "spec", "--example"]).output().expect("run");
    let text = ok(&o);
    assert!(text.contains("hostname = \"host-a\""));
    let dir = tempfile::tempdir().expect("tempdir");
    for which in ["host-b", "nvidia", "l40s", "nic"] {
        let o = Command::new(env!("CARGO_BIN_EXE_devmig")).args(["sim", "spec", which]).output().expect("run");
        let file = dir.path().join(format!("{which}.toml"));
        std::fs::write(&file, ok(&o)).expect("write");
        let o = Command::new(env!("CARGO_BIN_EXE_devmig")).args(["sim", "validate"]).arg(&file).output().expect("run");
        assert!(ok(&o).contains("is valid"), "{which}");
    }
    let good = dir.path().join("lab.toml");
    std::fs::write(&good, &text).expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_devmig")).args(["sim", "validate"]).arg(&good).output().expect("run");
    assert!(ok(&o).contains("host host-a is valid"));
    for (bad, key) in [
        (text.replace("address = \"0000:3d:00.2\"", "address = \"0000:3d:00.x\""), "pci[2].sriov.vfs[1].address"),
        (text.replace("class = \"0x040300\"", "class = \"audio\""), "pci[1].class"),
        (text.replace("type = \"mtty-2\"", "type = \"mtty-9\""), "mdev[1].type"),
        (text.replace("hostname = \"host-a\"", "hostname = \"host-a\"\nbogus = 1"), "bogus"),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, bad).expect("write");
        let o = Command::new(env!("CARGO_BIN_EXE_devmig")).args(["sim", "validate"]).arg(&path).output().expect("run");
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(key), "{key} not named in: {err}");
    }
}

/// An in-tree driver (no `/sys/module/<m>/version`) whose kernel shows `migration_version`:
/// `attributes` reads them from the kernel's string; facts that disagree are reported.
#[test]
fn attributes_come_from_the_kernels_string_where_it_shows_one() {
    let a = host(ExampleHost::A);
    let r = a.dir.path();
    std::fs::remove_file(r.join("sys/module/i915/version")).expect("an in-tree i915");
    let o = devmig(r, &["attributes", A_VGPU]);
    assert_ne!(o.status.code(), Some(0), "facts alone cannot describe it: {}", String::from_utf8_lossy(&o.stdout));
    let attr = r.join(format!("sys/bus/mdev/devices/{A_VGPU}/migration_version"));
    std::fs::write(&attr, "i915-v1.2.0-8086-591d-i915-GVTg_V5_4-2\n").expect("the kernel's attribute");
    let text = ok(&devmig(r, &["attributes", A_VGPU]));
    assert!(
        text.starts_with(&format!("device: {A_VGPU} (model i915; from the kernel's migration_version)\n")),
        "{text}"
    );
    assert!(
        text.contains("i915.gvt_version  semver  1.2.0") && text.contains("kernel.prefix     string  i915"),
        "{text}"
    );
    // A module version that disagrees with the string: the string wins, the conflict is shown.
    std::fs::write(r.join("sys/module/i915/version"), "1.4.0\n").expect("version");
    let text = ok(&devmig(r, &["attributes", A_VGPU]));
    assert!(text.contains("conflict: i915.gvt_version: the kernel's string gives 1.2.0, sysfs gives 1.4.0"), "{text}");
    let j: serde_json::Value =
        serde_json::from_slice(&devmig(r, &["-o", "json", "attributes", A_VGPU]).stdout).expect("json");
    assert_eq!(
        (j["source"].as_str(), j["conflicts"].as_array().map(Vec::len)),
        (Some("kernel_string"), Some(1)),
        "{j}"
    );
}
