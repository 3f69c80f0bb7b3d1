//! The fleet verbs as a user runs them: `devmig sim fleet` in one process, queried and placed
//! through by separate `devmig fleet ...` processes on its database.
mod common;

use common::Running;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn devmig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_devmig"))
}

fn run_json(args: &[&str]) -> (i32, Value) {
    let out = devmig().args(args).args(["-o", "json"]).output().expect("run devmig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {text} / {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), v)
}

/// `fleet place` of `source` (JSON) with `extra` options; a slow machine must not turn a
/// verdict into `unreachable`, so agents get 30 s.
fn place_json(db: &str, token: &str, source: &str, extra: &[&str]) -> (i32, Value) {
    let base = ["fleet", "place", "--db", db, "--agent-token-file", token, "--source", source];
    run_json(&[&base[..], &["--agent-timeout-ms", "30000"], extra].concat())
}

/// `devmig sim fleet` (seed 3) of `hosts` hosts with `devices` each, in `dir`, running until
/// the guard drops; its first line, database URL and agent token file.
fn sim_fleet(dir: &std::path::Path, hosts: &str, devices: &str) -> (Running, String, String, String) {
    let d = dir.display().to_string();
    let (child, first) = common::spawn_until_first_line(
        devmig().args(["sim", "fleet", "--hosts", hosts, "--devices", devices, "--seed", "3", "--dir", &d]),
        Duration::from_secs(120),
    );
    let running = Running(child);
    assert!(first.starts_with("fleet: http://127.0.0.1:"), "{first}");
    (running, first, format!("sqlite:{d}/fleet.db"), format!("{d}/agent-token"))
}

#[test]
fn sim_fleet_then_hosts_place_evacuate_baseline_what_if() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let (_running, first, db, token) = sim_fleet(dir.path(), "6", "8");

    let (code, hosts) = run_json(&["fleet", "hosts", "--db", &db]);
    assert_eq!(code, 0);
    let hosts = hosts["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 6);
    assert!(hosts.iter().all(|h| h["stale"] == false));

    let (_, devices) = run_json(&["fleet", "devices", "--db", &db, "--hosts", "sim-r00-0000"]);
    let devices = devices["devices"].as_array().expect("devices");
    let vf =
        devices.iter().find(|d| d["kind"] == "sriov_vf").expect("a VF")["device"].as_str().expect("id").to_string();
    let source = format!("sim-r00-0000:{vf}");

    // A placement without claims, as a user reads it: golden files (ports and timings aside).
    let place = |extra: &[&str]| {
        let out = devmig()
            .args(["fleet", "place", "--db", &db, "--agent-token-file", &token, "--source", &source])
            // A slow CI machine must not turn a verdict into `unreachable` here.
            .args(["--agent-timeout-ms", "30000"])
            .args(extra)
            .output()
            .expect("run");
        (out.status.code(), common::without_ports(&String::from_utf8_lossy(&out.stdout)))
    };
    let (code, table) = place(&[]);
    let timings = table.lines().last().unwrap_or_default().to_string();
    assert!(timings.starts_with("step a ") && timings.ends_with(" ms"), "{table}");
    common::golden("fleet-place.txt", &table.replace(&timings, "step a - ms, step b - ms, claims - ms"));
    let (json_code, text) = place(&["-o", "json"]);
    assert_eq!(code, json_code);
    let typed: devmig_api::fleet::Placement = serde_json::from_str(&text).expect("the API's Placement reads it");
    assert_eq!(typed.schema, "devmig.placement/v1");
    let mut p: Value = serde_json::from_str(&text).expect("json");
    for t in ["step_a_ms", "step_b_ms", "claim_ms"] {
        assert!(p["timings"][t].is_number(), "{p}");
        p["timings"][t] = Value::from(0);
    }
    common::golden("fleet-place.json", &(serde_json::to_string_pretty(&p).expect("json") + "\n"));

    // Placement needs the agent token; without it the user is told so (exit 2).
    let out = devmig().args(["fleet", "place", "--db", &db, "--source", &source]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--agent-token-file"));

    let (code, p) = place_json(&db, &token, &source, &["--claim", "--migration-id", "cli-1"]);
    assert_eq!(code, if p["placed"] == true { 0 } else { 1 }, "{p}");
    assert_eq!(p["schema"], "devmig.placement/v1");
    assert!(!p["tried"].as_array().expect("tried").is_empty() || p["placed"] == false);
    if p["placed"] == true {
        assert!(p["assignments"][0]["claim_id"].is_string(), "{p}");
        assert_ne!(p["host"], "sim-r00-0000");
        // The fleet no longer offers that target: held for cli-1 until the agent's next report
        // says it is in use (which the claim itself triggers).
        let (_, devices) = run_json(&["fleet", "devices", "--db", &db]);
        let target = devices["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .find(|d| d["host"] == p["host"] && d["device"] == p["assignments"][0]["target"])
            .expect("the target")
            .clone();
        assert!(target["held_by"] == "cli-1" || target["free"] == false, "{target}");
    }

    let (code, e) = run_json(&["fleet", "evacuate", "sim-r00-0001", "--db", &db, "--agent-token-file", &token]);
    assert_eq!(e["schema"], "devmig.evacuation/v1");
    let typed: devmig_api::fleet::Evacuation =
        serde_json::from_value(e.clone()).expect("the API's Evacuation reads it");
    assert_eq!(typed.moves.len(), e["moves"].as_array().map_or(0, Vec::len));
    assert_eq!(code, if e["unplaced"] == 0 { 0 } else { 1 });
    let moves = e["moves"].as_array().expect("moves");
    assert_eq!(moves.len(), 10, "every mdev and VF of the host: 8, and the two mlx5 VFs of a NIC host");
    let targets: Vec<String> = moves
        .iter()
        .filter(|m| m["placement"]["placed"] == true)
        .map(|m| format!("{}:{}", m["placement"]["host"], m["placement"]["assignments"][0]["target"]))
        .collect();
    let distinct: std::collections::BTreeSet<_> = targets.iter().collect();
    assert_eq!(distinct.len(), targets.len(), "two devices sent to one target: {targets:?}");

    // The same host's VMs instead: each moves as one (all its devices to one host).
    let (_, devices) = run_json(&["fleet", "devices", "--db", &db, "--hosts", "sim-r00-0001"]);
    let of = |kind: &str| -> Vec<String> {
        devices["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| d["device"].as_str().expect("id").to_string())
            .collect()
    };
    let (mdevs, vfs) = (of("mdev"), of("sriov_vf"));
    let hostdev_mdev = |u: &str| {
        format!(
            "<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='{u}'/></source></hostdev>"
        )
    };
    let hostdev_vf = |a: &str| {
        let (dbs, f) = a.rsplit_once('.').expect("address");
        let p: Vec<&str> = dbs.split(':').collect();
        format!(
            "<hostdev mode='subsystem' type='pci'><source><address domain='0x{}' bus='0x{}' slot='0x{}' function='0x{f}'/></source></hostdev>",
            p[0], p[1], p[2]
        )
    };
    let dir = tempfile::tempdir().expect("dir");
    let vm1 = dir.path().join("vm1.xml");
    let vm2 = dir.path().join("vm2.xml");
    std::fs::write(
        &vm1,
        format!(
            "<domain><name>vm1</name><devices>{}{}</devices></domain>",
            hostdev_mdev(&mdevs[0]),
            hostdev_vf(&vfs[0])
        ),
    )
    .expect("write");
    std::fs::write(&vm2, format!("<domain><name>vm2</name><devices>{}</devices></domain>", hostdev_mdev(&mdevs[1])))
        .expect("write");
    let (v1, v2) = (vm1.to_str().expect("path"), vm2.to_str().expect("path"));
    let (code, e) =
        run_json(&["fleet", "evacuate", "sim-r00-0001", "--db", &db, "--agent-token-file", &token, "--vms", v1, v2]);
    let moves = e["moves"].as_array().expect("moves");
    assert_eq!(moves.iter().map(|m| m["vm"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["vm1", "vm2"], "{e}");
    assert_eq!(moves[0]["device"], format!("{} {}", mdevs[0], vfs[0]));
    assert_eq!(code, if e["unplaced"] == 0 { 0 } else { 1 });
    for m in moves.iter().filter(|m| m["placement"]["placed"] == true) {
        let n = m["device"].as_str().expect("devices").split(' ').count();
        assert_eq!(
            m["placement"]["assignments"].as_array().map(Vec::len),
            Some(n),
            "one placement for the whole VM: {m}"
        );
        assert_ne!(m["placement"]["host"], "sim-r00-0001");
    }

    let (code, b) = run_json(&["fleet", "baseline", "--db", &db, "--hosts", "sim-*"]);
    assert_eq!(code, 0);
    assert_eq!(b["pool_hosts"], 6);
    let _: devmig_api::fleet::Baseline = serde_json::from_value(b.clone()).expect("the API's Baseline reads it");
    let all = b["everywhere"].as_array().expect("everywhere").len() + b["partial"].as_array().expect("partial").len();
    assert!(all > 0);

    let (code, w) =
        run_json(&["fleet", "what-if", "--db", &db, "--hosts", "sim-r00-000[0-2]", "--driver", "i915=2.0.0"]);
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["pool_hosts"], 3);
    let _: devmig_api::fleet::WhatIf = serde_json::from_value(w.clone()).expect("the API's WhatIf reads it");
    let out =
        devmig().args(["fleet", "what-if", "--db", &db, "--hosts", "*", "--driver", "i915"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MODEL=VERSION"));

    // A glob that matches no host says so (exit 2) instead of printing an empty answer.
    for verb in [
        vec!["devices", "--hosts", "nohost-*"],
        vec!["baseline", "--hosts", "nohost-*"],
        vec!["what-if", "--hosts", "nohost-*", "--driver", "i915=2.0.0"],
    ] {
        let out = devmig().arg("fleet").args(&verb).args(["--db", &db]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{verb:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("nohost-*"), "{verb:?}");
    }

    // Step a alone: candidates, ranked, and why not the others; the hosts listed plus the
    // hosts explained account for every fresh host but the source's.
    let (code, c) = run_json(&["fleet", "candidates", "--db", &db, "--source", &source, "--limit", "2"]);
    let typed: devmig_api::fleet::Candidates = serde_json::from_value(c.clone()).expect("the API's Candidates");
    assert_eq!(code, if typed.candidate_hosts > 0 { 0 } else { 1 });
    assert!(typed.candidates.len() <= 2 && typed.more == (typed.candidate_hosts > 2), "{c}");
    let explained: usize =
        typed.explanation.groups.iter().filter(|g| g.source != "all" || g.code != "stale").map(|g| g.hosts).sum();
    assert_eq!(typed.candidate_hosts + explained, 5, "{c}");
    assert!(
        typed.candidates.iter().all(|h| h.host != "sim-r00-0000" && h.targets.len() == 1 && !h.targets[0].is_empty())
    );

    // Every query verb from anywhere: --fleet URL with a token, the same answers as on the database.
    let url = first.trim().trim_start_matches("fleet: ").split(' ').next().expect("url").to_string();
    let read = format!("{d}/read-token");
    let admin = format!("{d}/admin-token");
    let remote = |token: &str| vec!["--fleet".to_string(), url.clone(), "--fleet-token-file".into(), token.into()];
    let both = |verb: &[&str], token: &str| {
        let local: Vec<&str> = [verb, &["--db", &db]].concat();
        let r = remote(token);
        let remote: Vec<&str> = verb.iter().copied().chain(r.iter().map(String::as_str)).collect();
        (run_json(&local), run_json(&remote))
    };
    for verb in [
        vec!["fleet", "hosts"],
        vec!["fleet", "devices", "--hosts", "sim-r00-000[12]"],
        vec!["fleet", "baseline", "--hosts", "sim-*"],
        vec!["fleet", "what-if", "--hosts", "sim-r00-000[0-2]", "--driver", "i915=2.0.0"],
        vec!["fleet", "candidates", "--source", &source],
    ] {
        let (local, remote) = both(&verb, &read);
        assert_eq!(local, remote, "{verb:?}");
    }
    let text = |args: &[&str]| {
        let out = devmig().args(args).output().expect("run");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let r = remote(&read);
    let r: Vec<&str> = r.iter().map(String::as_str).collect();
    assert_eq!(
        text(&[&["fleet", "baseline", "--hosts", "sim-*", "--db", &db][..], &[]].concat()),
        text(&[&["fleet", "baseline", "--hosts", "sim-*"][..], &r].concat())
    );
    // place: a read token is refused (exit 2, the scope named); an admin token places.
    let out = devmig().args(["fleet", "place", "--source", &source]).args(&r).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("fleet: this route needs an admin token"));
    let a = remote(&admin);
    let (code, p) = run_json(
        &[&["fleet", "place", "--source", &source][..], &a.iter().map(String::as_str).collect::<Vec<_>>()].concat(),
    );
    assert_eq!(code, if p["placed"] == true { 0 } else { 1 }, "{p}");
    let _: devmig_api::fleet::Placement = serde_json::from_value(p).expect("a Placement");
    // --fleet with a database flag is refused, never one silently instead of the other.
    let out = devmig().args(["fleet", "hosts", "--db", &db]).args(&r).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop --db"));
    let out = devmig().args(["fleet", "hosts", "--fleet", &url]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fleet-token-file"));
    // forget through the API: the host is gone, and a second forget says it is unknown.
    let fa: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_eq!(text(&[&["fleet", "forget", "sim-r00-0005"][..], &fa].concat()).0, Some(0));
    let out = devmig().args(["fleet", "forget", "sim-r00-0005"]).args(&fa).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn read_verbs_and_a_fleet_that_cannot_listen_create_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("typo/dir/fleet.db");
    let db = format!("sqlite:{}", typo.display());
    for verb in [vec!["hosts"], vec!["devices"], vec!["baseline", "--hosts", "*"], vec!["forget", "h1"]] {
        let out = devmig().arg("fleet").args(&verb).args(["--db", &db]).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{verb:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no fleet database at"), "{verb:?}");
        assert!(!dir.path().join("typo").exists(), "{verb:?} created a directory");
    }
    // An empty SQLite file is not a fleet either, and stays empty.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("write");
    let out = devmig().args(["fleet", "hosts", "--db", &format!("sqlite:{}", empty.display())]).output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no devmig fleet"));
    assert_eq!(std::fs::metadata(&empty).expect("stat").len(), 0);

    // `fleet serve` on an address it cannot take: exit 3 before any database exists.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "[[token]]\nname = \"ops\"\nscope = \"admin\"\nsecret = \"s3cret-s3cret-s3cret-0\"\n")
        .expect("tokens");
    let agent_token = dir.path().join("agent-token");
    std::fs::write(&agent_token, "agent-s3cret-0000000\n").expect("agent token");
    let fresh = dir.path().join("new/fleet.db");
    let out = devmig()
        .args(["fleet", "serve", "--listen", &addr, "--db", &format!("sqlite:{}", fresh.display())])
        .arg("--token-file")
        .arg(&tokens)
        .arg("--agent-token-file")
        .arg(&agent_token)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("binding {addr}")));
    assert!(!dir.path().join("new").exists(), "a fleet that cannot listen created its database");
}

/// Runs `devmig` with stderr sent to `log` (read back while it runs).
fn spawn_logged(args: &[&str], log: &std::path::Path) -> (Running, String) {
    let mut cmd = devmig();
    cmd.args(args).stderr(std::fs::File::create(log).expect("log"));
    let (child, first) = common::spawn_until_first_line(&mut cmd, Duration::from_secs(60));
    (Running(child), first)
}

/// Polls `probe` until it answers, for at most 30 s.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_second_agent_under_one_host_name_is_refused_on_both_sides() {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = |name: &str| dir.path().join(name).display().to_string();
    let root = p("sys");
    devmig_core::tree::example_host(&devmig_core::tree::TreeBuilder::new(&root), devmig_core::tree::ExampleHost::A)
        .expect("tree");
    let (agent_secret, report_secret) = ("fleet-to-agent-secret-01", "twin-report-secret-0001");
    devmig_testkit::write_secret_file(std::path::Path::new(&p("agent-token")), agent_secret);
    devmig_testkit::write_token_file(
        std::path::Path::new(&p("agent-tokens.toml")),
        &[("fleet", "admin", None, agent_secret)],
    );
    devmig_testkit::write_secret_file(std::path::Path::new(&p("report-token")), report_secret);
    devmig_testkit::write_token_file(
        std::path::Path::new(&p("fleet-tokens.toml")),
        &[("twin", "report", Some("twin"), report_secret)],
    );
    let db = format!("sqlite:{}", p("fleet.db"));
    let (_fleet, first) = spawn_logged(
        &[
            "fleet",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            &db,
            "--token-file",
            &p("fleet-tokens.toml"),
            "--agent-token-file",
            &p("agent-token"),
        ],
        &dir.path().join("fleet.log"),
    );
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).expect("fleet URL").to_string();
    let agent = |n: &str| {
        let (state, log) = (p(&format!("state-{n}")), dir.path().join(format!("agent-{n}.log")));
        let args = [
            "--sysfs-root",
            root.as_str(),
            "agent",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            &p("agent-tokens.toml"),
            "--state-dir",
            &state,
            "--fleet",
            &url,
            "--fleet-token-file",
            &p("report-token"),
            "--host-name",
            "twin",
            "--report-interval-s",
            "1",
        ];
        let (running, _) = spawn_logged(&args, &log);
        (running, state, log)
    };
    let identity_of_twin = || {
        let (code, hosts) = run_json(&["fleet", "hosts", "--db", &db]);
        assert_eq!(code, 0);
        hosts["hosts"].as_array()?.iter().find(|h| h["name"] == "twin")?["identity"].as_str().map(str::to_string)
    };

    let (_one, state_one, _) = agent("one");
    let held = eventually("the first agent's report", identity_of_twin);
    let saved = std::fs::read_to_string(format!("{state_one}/identity")).expect("identity file");
    assert_eq!(held, saved.trim(), "the fleet shows the identity the agent generated");

    let (_two, state_two, log_two) = agent("two");
    let refused = eventually("the second agent to log the fleet's refusal", || {
        let log = std::fs::read_to_string(&log_two).ok()?;
        log.contains("host_identity_conflict").then_some(log)
    });
    assert!(refused.contains("devmig fleet forget twin") && refused.contains("--host-name"), "{refused}");
    let other = std::fs::read_to_string(format!("{state_two}/identity")).expect("identity file");
    assert_ne!(other.trim(), held);
    assert_eq!(identity_of_twin().as_deref(), Some(held.as_str()), "the second agent took the name over");
}

/// SR-IOV vGPUs across a simulated fleet: an L40S-2Q vGPU goes to a VF that is one already, and
/// once those are taken, to a free VF whose type the claim sets; the host then reports that VF
/// as a vGPU in use and no longer offers its type.
#[test]
fn an_sriov_vgpu_is_placed_on_vfs_then_on_a_free_vfs_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_running, _, db, token) = sim_fleet(dir.path(), "12", "4");
    let mut typed = None;
    for n in 0..8 {
        let migration = format!("vgpu-{n}");
        let (code, p) =
            place_json(&db, &token, "sim-r00-0005:0000:41:00.1", &["--claim", "--migration-id", &migration]);
        assert_eq!((code, &p["placed"]), (0, &Value::Bool(true)), "placement {n}: {p}");
        let target = p["assignments"][0]["target"].as_str().expect("target").to_string();
        if target.ends_with("/nvidia-1148") {
            typed = Some((p["host"].as_str().expect("host").to_string(), target));
            break;
        }
    }
    let (host, target) = typed.expect("a type target once the VFs with a type were claimed");
    let vf = target.trim_end_matches("/nvidia-1148").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, devices) = run_json(&["fleet", "devices", "--db", &db, "--hosts", &host]);
        let devices = devices["devices"].as_array().expect("devices").clone();
        let now_a_vgpu = devices.iter().find(|d| d["device"] == vf.as_str()).is_some_and(|d| {
            d["kind"] == "sriov_vf" && d["version"] == "nvidia-v1-vf-550.54.16-10de-26b9-L40S-2Q" && d["free"] == false
        });
        let type_gone = !devices.iter().any(|d| d["device"] == target.as_str());
        if now_a_vgpu && type_gone {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{host} never reported {vf} as a vGPU: {devices:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A ConnectX VF on mlx5_vfio_pci: placed on a host with the same firmware and PSID, and the
    // answer names what only the destination's firmware decides.
    let (code, p) = place_json(&db, &token, "sim-r00-0001:0000:17:00.1", &[]);
    assert_eq!(code, 0, "{p}");
    let at_resume = p["assignments"][0]["at_resume"].as_array().expect("at_resume").clone();
    assert!(at_resume.iter().any(|w| w.as_str().is_some_and(|w| w.contains("LOAD_VHCA_STATE"))), "{p}");
}
