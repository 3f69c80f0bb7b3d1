//! The agent as deployed: `devmig agent` processes on 127.0.0.1:0 over mounted
//! simfs hosts, driven by the CLI's remote verbs and by raw HTTP.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::mount_spec as host;
use devmig_core::tree::example_uuids::{A_VGPU, B_VGPU_EIGHTH, B_VGPU_HALF};
use serde_json::{Value, json};

mod common;

const ADMIN: &str = "admin-secret-0123456789";

/// A running agent process; killed on drop.
struct Agent {
    child: Child,
    url: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn files(dir: &Path) -> (PathBuf, PathBuf) {
    let (tokens, secret) = (dir.join("tokens.toml"), dir.join("secret"));
    devmig_testkit::write_token_file(&tokens, &[("nova", "admin", None, ADMIN)]);
    devmig_testkit::write_secret_file(&secret, ADMIN);
    (tokens, secret)
}

fn start(root: &Path, state: &Path, tokens: &Path) -> Agent {
    start_with(root, state, tokens, &[])
}

fn start_with(root: &Path, state: &Path, tokens: &Path, extra: &[&str]) -> Agent {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devmig"));
    cmd.arg("--sysfs-root")
        .arg(root)
        .args(["agent", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(tokens)
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        // Info logs from request threads: a held stderr lock once deadlocked the agent here.
        .env("DEVMIG_LOG", "info")
        .stderr(Stdio::null());
    let (child, line) = common::spawn_until_first_line(&mut cmd, Duration::from_secs(30));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .expect("listening line")
        .to_string();
    Agent { child, url }
}

fn devmig(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devmig")).args(args).env_remove("DEVMIG_AGENT").output().expect("run devmig")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_local_verb_works_against_a_remote_agent() {
    let (a, b) = (host(devmig_simfs::spec::EXAMPLE_HOST_A), host(devmig_simfs::spec::EXAMPLE_HOST_B));
    let dir = tempfile::tempdir().expect("dir");
    let (tokens, secret) = files(dir.path());
    let (sa, sb) = (dir.path().join("state-a"), dir.path().join("state-b"));
    let (ga, gb) = (start(a.mounted.path(), &sa, &tokens), start(b.mounted.path(), &sb, &tokens));
    let secret = secret.to_str().expect("path");
    let broot = b.mounted.path().to_str().expect("path");

    // Same output, locally and through the agent.
    for verb in [
        vec!["-o", "json", "list"],
        vec!["list"],
        vec!["show", "0000:3d:00.1"],
        vec!["-o", "json", "attributes", B_VGPU_HALF],
        vec!["version", B_VGPU_HALF],
    ] {
        let local = devmig(&[&["--sysfs-root", broot], verb.as_slice()].concat());
        let remote = devmig(&[&["--agent", gb.url.as_str(), "--token-file", secret], verb.as_slice()].concat());
        assert_eq!(remote.status.code(), local.status.code(), "{verb:?}: {}", String::from_utf8_lossy(&remote.stderr));
        assert_eq!(stdout(&remote), stdout(&local), "{verb:?}");
    }

    // HOST:DEVICE: a cross-host check through both agents, hosts named in an agents file.
    let agents = dir.path().join("agents.toml");
    std::fs::write(&agents, format!("[agents.hostA]\nurl = \"{}\"\ntoken_file = \"{secret}\"\n[agents.hostB]\nurl = \"{}\"\ntoken_file = \"{secret}\"\n", ga.url, gb.url)).expect("agents");
    let agents = agents.to_str().expect("path");
    let ok = devmig(&["--agents", agents, "check", &format!("hostA:{A_VGPU}"), &format!("hostB:{B_VGPU_HALF}")]);
    assert_eq!(ok.status.code(), Some(0), "{}{}", stdout(&ok), String::from_utf8_lossy(&ok.stderr));
    // The old DEVICE@HOST form is refused with the one to use; a bare device with --agents
    // (and no --agent) is refused rather than read from this host.
    let at = devmig(&["--agents", agents, "check", &format!("{A_VGPU}@hostA"), &format!("hostB:{B_VGPU_HALF}")]);
    assert_eq!(at.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&at.stderr).contains(&format!("hostA:{A_VGPU}")),
        "{}",
        String::from_utf8_lossy(&at.stderr)
    );
    let bare = devmig(&["--agents", agents, "version", A_VGPU]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("names no host"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    let named = devmig(&["--agents", agents, "version", &format!("hostA:{A_VGPU}")]);
    assert_eq!(named.status.code(), Some(0), "{}", String::from_utf8_lossy(&named.stderr));
    // A bare target beside a named source is this host's (here: --agent's, hostB).
    let no = devmig(&[
        "--agents",
        agents,
        "--agent",
        &gb.url,
        "--token-file",
        secret,
        "-o",
        "json",
        "check",
        &format!("hostA:{A_VGPU}"),
        B_VGPU_EIGHTH,
    ]);
    assert_eq!(no.status.code(), Some(1), "{}", String::from_utf8_lossy(&no.stderr));
    let r: Value = serde_json::from_str(&stdout(&no)).expect("json");
    assert_eq!(r["from"]["device"], A_VGPU);
    assert!(r["reasons"].as_array().expect("reasons").iter().any(|x| x["code"] == "i915.share"));

    // Claim, list, release through the CLI.
    let v = stdout(&devmig(&["--agents", agents, "--agent", &ga.url, "--token-file", secret, "version", A_VGPU]));
    let c = devmig(&[
        "--agents",
        agents,
        "-o",
        "json",
        "claim",
        "hostB",
        "--version",
        v.trim(),
        "--migration-id",
        "vm-1",
        "--device",
        B_VGPU_HALF,
    ]);
    assert_eq!(c.status.code(), Some(0), "{}", String::from_utf8_lossy(&c.stderr));
    let claim: Value = serde_json::from_str(&stdout(&c)).expect("json");
    let claim_on_b = |migration: &str, device: &str| {
        devmig(&[
            "--agents",
            agents,
            "claim",
            "hostB",
            "--version",
            v.trim(),
            "--migration-id",
            migration,
            "--device",
            device,
        ])
    };
    let taken = claim_on_b("vm-2", B_VGPU_HALF);
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("target_claimed"));
    // A claim step b refuses names the rule that refused, as check does.
    let refused = claim_on_b("vm-3", B_VGPU_EIGHTH);
    assert_eq!(refused.status.code(), Some(1));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("target_rejected") && why.contains("i915.share"), "{why}");
    let listed = stdout(&devmig(&["--agents", agents, "claims", "hostB"]));
    assert!(listed.contains("vm-1") && listed.contains(" in ") && listed.contains('Z'), "{listed}");
    let none = stdout(&devmig(&["--agents", agents, "claims", "hostB", "--migration", "vm-9"]));
    assert!(none.contains("no claims of migration vm-9"), "{none}");
    // Released by its migration id (the id an orchestrator knows), not only by claim id.
    let r = devmig(&["--agents", agents, "-o", "json", "release", "hostB", "vm-1"]);
    assert_eq!(r.status.code(), Some(0), "{}", String::from_utf8_lossy(&r.stderr));
    let released: Value = serde_json::from_str(&stdout(&r)).expect("json");
    assert_eq!((released["id"].as_str(), released["state"].as_str()), (claim["id"].as_str(), Some("released")));
    let again = devmig(&["--agents", agents, "release", "hostB", "vm-1"]);
    assert_eq!(again.status.code(), Some(2), "nothing active is left to release");

    // No token, wrong token: refused.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "not-the-secret-0000000").expect("bad");
    let o = devmig(&["--agent", &gb.url, "--token-file", bad.to_str().expect("path"), "list"]);
    assert_eq!(o.status.code(), Some(2), "an authentication failure is bad input");
    assert!(String::from_utf8_lossy(&o.stderr).contains("unauthorized"));
    let missing = dir.path().join("no-such-token");
    let o = devmig(&["--agent", &gb.url, "--token-file", missing.to_str().expect("path"), "list"]);
    assert_eq!(o.status.code(), Some(2), "a missing token file is bad input");
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-token"));
}

const MTTY: &str = "hostname = \"storm\"\n[[virtual_parent]]\nname = \"mtty\"\ndriver_version = \"0.1\"\n[virtual_parent.mdev]\ntypes = [{ id = \"mtty-1\" }]\n";

/// The FAILED column of the table row that starts with `label`, and its count column.
fn bench_row(out: &str, label: &str) -> (u64, u64) {
    let row =
        out.lines().map(str::trim).find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label} row: {out}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    let num = |s: &str| s.parse().unwrap_or_else(|_| panic!("not a number in {row:?}"));
    (num(cols[2]), num(cols[cols.len() - 1]))
}

#[test]
fn bench_verbs_drive_a_real_agent() {
    const MDEV: &str = "0b6a5e2c-8d1f-4b9e-9c3a-2f4e6d8a0b1c";
    let h = host(&format!("{MTTY}[[mdev]]\nuuid = \"{MDEV}\"\nparent = \"mtty\"\ntype = \"mtty-1\"\n"));
    let dir = tempfile::tempdir().expect("dir");
    let (tokens, secret) = files(dir.path());
    let agent = start(h.mounted.path(), &dir.path().join("state"), &tokens);
    let (secret, root) = (secret.to_str().expect("path"), h.mounted.path().to_str().expect("path"));
    // `devmig --agent URL --token-file S bench ARGS` (space-separated): its stdout, once it succeeded.
    let bench = |args: &str| {
        let fixed = ["--agent", agent.url.as_str(), "--token-file", secret, "bench"];
        let o = devmig(&fixed.into_iter().chain(args.split_whitespace()).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(0), "{args}: {}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    let version = "--version mtty-v1-0.1.0-mtty-1";

    let out = bench(&format!(
        "agent {version} --device {MDEV} --clients 2 --seconds 1 --baseline-root {root} --rounds 2 --per-round 3"
    ));
    let (checks, failed) = bench_row(&out, "2 clients");
    assert!(checks > 0 && failed == 0, "{out}");
    assert!(out.contains("2 rounds of 3 of each") && out.contains("the agent's own overhead"), "{out}");

    let out = bench(&format!("claims {version} --type mtty/mtty-1 --clients 2 --seconds 1"));
    let (claims, failed) = bench_row(&out, "2 clients");
    assert!(claims > 0 && failed == 0, "{out}");
    // Every claim was released: the type has all its instances back.
    let left = std::fs::read_to_string(
        h.mounted.path().join("sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/available_instances"),
    );
    assert_eq!(left.expect("available_instances").trim(), "23", "one port is the pre-created mdev's");

    // An incompatible verdict is an answered check; an https:// agent is refused with a reason.
    let out = bench(&format!("agent --version mtty-v1-0.1.0-mtty-2 --device {MDEV} --clients 1 --seconds 1"));
    let (checks, failed) = bench_row(&out, "1 clients");
    assert!(checks > 0 && failed == 0, "an incompatible verdict is still an answered check: {out}");
    let o = devmig(&[
        "--agent",
        "https://127.0.0.1:1",
        "--token-file",
        secret,
        "bench",
        "claims",
        "--version",
        "v",
        "--type",
        "mtty/mtty-1",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("https://"), "{}", String::from_utf8_lossy(&o.stderr));
}

fn post_claim(client: &reqwest::blocking::Client, url: &str, i: usize) -> Option<(u16, Value)> {
    let body = json!({"migration_id": format!("storm-{i}"), "source_version": "mtty-v1-0.1.0-mtty-1", "target": {"type": "mtty/mtty-1"}, "ttl_seconds": 3600});
    let res = client.post(format!("{url}/api/v1/claims")).bearer_auth(ADMIN).json(&body).send().ok()?;
    let status = res.status().as_u16();
    Some((status, res.json().unwrap_or(Value::Null)))
}

#[test]
fn kill_9_during_a_claim_storm_loses_and_doubles_nothing() {
    let h = host(MTTY);
    let dir = tempfile::tempdir().expect("dir");
    let (tokens, _) = files(dir.path());
    let state = dir.path().join("state");
    let mut agent = start(h.mounted.path(), &state, &tokens);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    // 24 clients claim an mtty-1 instance each (the parent has exactly 24 ports); kill -9 as soon as one is acknowledged.
    let url = agent.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let storm: Vec<_> = (0..24)
        .map(|i| {
            let (client, url, tx) = (client.clone(), url.clone(), tx.clone());
            std::thread::spawn(move || {
                let r = post_claim(&client, &url, i);
                let _ = tx.send((i, r.clone()));
                r
            })
        })
        .collect();
    drop(tx);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Ok((_, r)) = rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
        if r.is_some_and(|(s, _)| s == 201) {
            break;
        }
    }
    agent.child.kill().expect("kill -9");
    agent.child.wait().expect("reaped");
    let answered: Vec<(usize, String)> = storm
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.join()
                .ok()
                .flatten()
                .filter(|(s, _)| *s == 201)
                .map(|(_, c)| (i, c["id"].as_str().unwrap_or("").to_string()))
        })
        .collect();
    assert!(!answered.is_empty(), "at least one claim was acknowledged before the kill");
    eprintln!("{} of 24 claims acknowledged before kill -9", answered.len());

    // Restart on the same state: every claim the storm was told about is still there, once.
    let again = start(h.mounted.path(), &state, &tokens);
    let listed: Value = client
        .get(format!("{}/api/v1/claims", again.url))
        .bearer_auth(ADMIN)
        .send()
        .expect("get")
        .json()
        .expect("json");
    let listed = listed["claims"].as_array().expect("claims").clone();
    for (i, id) in &answered {
        let n = listed
            .iter()
            .filter(|c| c["id"] == id.as_str() && c["migration_id"] == format!("storm-{i}") && c["state"] == "active")
            .count();
        assert_eq!(n, 1, "claim {id} of storm-{i} was acknowledged before the kill");
    }
    // Replaying the storm is idempotent: acknowledged claims come back as they were.
    for (i, id) in &answered {
        let (status, c) = post_claim(&client, &again.url, *i).expect("answer");
        assert_eq!((status, c["id"].as_str()), (200, Some(id.as_str())));
    }
    let mut devices: Vec<String> = listed
        .iter()
        .filter(|c| c["state"] == "active")
        .filter_map(|c| c["device"].as_str().map(str::to_string))
        .collect();
    let total = devices.len();
    devices.sort();
    devices.dedup();
    assert_eq!(devices.len(), total, "no device holds two claims");
    for d in &devices {
        assert!(h.mounted.path().join(format!("sys/bus/mdev/devices/{d}")).exists(), "claimed mdev {d} exists");
    }
    // No leaked mdev: every mdev on the host (it had none before the storm) is a claim's.
    let present: Vec<String> = std::fs::read_dir(h.mounted.path().join("sys/bus/mdev/devices"))
        .expect("mdev bus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for m in &present {
        assert!(devices.contains(m), "mdev {m} was created by a claim the agent does not hold (leaked)");
    }
}

#[test]
fn tls_and_client_certificates() {
    let h = host(devmig_simfs::spec::EXAMPLE_HOST_B);
    let dir = tempfile::tempdir().expect("dir");
    let (tokens, secret) = files(dir.path());
    let [ca, cert, key, client, client_key] = devmig_testkit::pki(dir.path(), "lab");
    let [other_ca, ..] = devmig_testkit::pki(dir.path(), "other");
    let s = |p: &PathBuf| p.to_str().expect("path").to_string();
    let agent = start_with(
        h.mounted.path(),
        &dir.path().join("state"),
        &tokens,
        &["--tls-cert", &s(&cert), "--tls-key", &s(&key), "--tls-client-ca", &s(&ca)],
    );
    assert!(agent.url.starts_with("https://"), "{}", agent.url);
    let base = ["--agent", agent.url.as_str(), "--token-file", secret.to_str().expect("path")];
    let with = |extra: &[&str], verb: &[&str]| devmig(&[&base[..], extra, verb].concat());

    let ok = with(&["--ca-file", &s(&ca), "--client-cert", &s(&client), "--client-key", &s(&client_key)], &["list"]);
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout(&ok).contains("0000:3d:00.1"));
    // No client certificate: the handshake fails.
    let no_cert = with(&["--ca-file", &s(&ca)], &["list"]);
    assert_eq!(no_cert.status.code(), Some(3), "{}", String::from_utf8_lossy(&no_cert.stderr));
    // A server certificate from a CA the client does not trust: refused.
    let wrong_ca =
        with(&["--ca-file", &s(&other_ca), "--client-cert", &s(&client), "--client-key", &s(&client_key)], &["list"]);
    assert_eq!(wrong_ca.status.code(), Some(3));
    // https:// without a CA bundle is a usage error, said before any connection.
    let no_ca = with(&[], &["list"]);
    assert_eq!(no_ca.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_ca.stderr).contains("--ca-file"));
}

/// Runs `devmig ARGS` until its first stdout line (or its exit), with stderr to `log`.
fn first_line_or_exit(args: &[&str], cwd: &Path, log: &Path) -> (Option<Child>, String, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devmig"))
        .args(args)
        .current_dir(cwd)
        .env_remove("DEVMIG_SYSFS_ROOT")
        .env_remove("DEVMIG_TIMEOUT_MS")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(&mut out);
        let mut first = String::new();
        let _ = r.read_line(&mut first);
        let mut second = String::new();
        let _ = r.read_line(&mut second);
        let _ = tx.send(first + &second);
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let lines = rx.recv_timeout(Duration::from_secs(30)).expect("output in time");
    match child.try_wait().expect("wait") {
        Some(status) => (None, lines, status.code()),
        None if lines.is_empty() => {
            let status = child.wait().expect("wait");
            (None, lines, status.code())
        }
        None => (Some(child), lines, None),
    }
}

#[test]
fn the_config_file_takes_every_option_and_a_flag_given_always_wins() {
    let h = host(devmig_simfs::spec::EXAMPLE_HOST_A);
    let dir = tempfile::tempdir().expect("dir");
    let etc = dir.path().join("etc");
    std::fs::create_dir_all(&etc).expect("etc");
    files(&etc);
    devmig_testkit::write_secret_file(&etc.join("report-token"), "report-secret-for-hostq-0");
    let root = h.mounted.path().display().to_string();
    // Relative paths are the file's directory's, whatever the agent's working directory.
    std::fs::write(
        etc.join("agent.toml"),
        format!(
            "listen = \"127.0.0.1:0\"\nsysfs_root = \"{root}\"\ntoken_file = \"tokens.toml\"\nstate_dir = \"state\"\n\
             timeout_ms = 100\nfleet = \"http://127.0.0.1:9\"\nfleet_token_file = \"report-token\"\nhost_name = \"hostq\"\n\
             report_interval_s = 5\n"
        ),
    )
    .expect("config");
    let config = etc.join("agent.toml").display().to_string();
    let elsewhere = tempfile::tempdir().expect("cwd");
    let log = dir.path().join("log");
    let (child, lines, _) = first_line_or_exit(&["agent", "--config", &config], elsewhere.path(), &log);
    let _agent = Agent { child: child.expect("running"), url: String::new() };
    assert!(
        lines.contains("sysfs timeout 100 ms") && lines.contains(&etc.join("state").display().to_string()),
        "{lines}"
    );
    assert!(lines.contains("reporting to the fleet at http://127.0.0.1:9 as hostq"), "{lines}");
    drop(_agent);
    // --timeout-ms 5000 is the default, and still wins over the file's 100.
    let (child, lines, _) =
        first_line_or_exit(&["--timeout-ms", "5000", "agent", "--config", &config], elsewhere.path(), &log);
    let _agent = Agent { child: child.expect("running"), url: String::new() };
    assert!(lines.contains("sysfs timeout 5000 ms"), "{lines}");
    drop(_agent);
    // A fleet option without the fleet is refused, wherever it was given.
    let tokens = etc.join("tokens.toml").display().to_string();
    let (_, _, code) = first_line_or_exit(
        &["--sysfs-root", &root, "agent", "--token-file", &tokens, "--state-dir", "s", "--fleet-token-file", "x"],
        elsewhere.path(),
        &log,
    );
    assert_eq!(code, Some(2));
    let why = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(why.contains("a fleet option needs fleet"), "{why}");

    // The packaged example secrets are refused; a token file others may read is warned about.
    let packaged = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/tokens.toml");
    let (_, _, code) = first_line_or_exit(
        &[
            "--sysfs-root",
            &root,
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            packaged.to_str().expect("path"),
            "--state-dir",
            "s",
        ],
        elsewhere.path(),
        &log,
    );
    assert_eq!(code, Some(2));
    assert!(std::fs::read_to_string(&log).expect("log").contains("example secret"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(etc.join("tokens.toml"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (child, _, _) = first_line_or_exit(&["agent", "--config", &config], elsewhere.path(), &log);
    let agent = Agent { child: child.expect("running"), url: String::new() };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("may be read by every user") {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
}
