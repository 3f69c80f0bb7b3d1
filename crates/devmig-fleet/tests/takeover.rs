//! A report credential speaks for one host: it cannot take over another host's entry, move a
//! host's agent URL, or lock the real agent out with a generation from the far future; the
//! fleet never sends its agent credentials to a URL a report slipped in.
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ADMIN_SECRET, Backend, lab, report_token};
use devmig_fleet::now_ms;
use devmig_vendors::{Catalog, Registry};
use serde_json::Value;

/// A listener that counts the connections made to it (where an attacker would collect tokens).
async fn trap() -> (String, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let h = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            drop(sock);
        }
    });
    (url, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_token_cannot_take_over_another_host_or_steal_the_agents_token() {
    let backend = Backend::sqlite();
    let lab = lab(backend.url(), 2, 8, 7).await;
    let c = reqwest::Client::new();
    let (victim, attacker) = ("sim-r00-0001", "sim-r00-0000");
    let put = format!("{}/api/v1/hosts/{victim}/report", lab.url);
    let reg = Registry::new(Catalog::embedded());
    let (evil_url, hits) = trap().await;
    let now_ns = u64::try_from(now_ms()).expect("clock") * 1_000_000;
    let plan = devmig_fleet::sim::HostPlan::draw(7, 1, 8);

    // The attack of the report: another host's token, the victim's name, the attacker's URL
    // and the largest generation there is.
    let mut takeover = plan.report(&reg, "sim", &evil_url, i64::MAX as u64);
    let r = c.put(&put).bearer_auth(report_token(attacker)).json(&takeover).send().await.expect("send");
    assert_eq!(r.status(), 403);
    let text = r.text().await.expect("text");
    assert!(text.contains("may report host") && text.contains("sim-r00-0000"), "{text}");

    // Even the victim's own (leaked) token can neither jump the generation far ahead ...
    let r = c.put(&put).bearer_auth(report_token(victim)).json(&takeover).send().await.expect("send");
    assert_eq!(r.status(), 400);
    assert!(r.text().await.expect("text").contains("ahead of the fleet's clock"));
    // ... nor move the host's agent URL.
    takeover.generation = now_ns + 1_000_000_000;
    let r = c.put(&put).bearer_auth(report_token(victim)).json(&takeover).send().await.expect("send");
    assert_eq!(r.status(), 409);
    assert!(r.text().await.expect("text").contains("devmig fleet forget sim-r00-0001"));

    // Agent URLs the fleet would send credentials to are checked.
    for bad in [
        "http://127.0.0.1:9\r\nX-Evil: 1",
        "http://user:pw@127.0.0.1:9",
        "ftp://127.0.0.1:9",
        "http://127.0.0.1:9/api?x=1",
        "http://",
        "javascript:alert(1)",
    ] {
        let mut r = plan.report(&reg, "sim", bad, now_ns);
        r.host = victim.into();
        let resp = c.put(&put).bearer_auth(report_token(victim)).json(&r).send().await.expect("send");
        assert_eq!(resp.status(), 400, "{bad:?} accepted");
    }

    // The fleet still holds the real agent, which keeps reporting.
    let hosts = common::get_json(&c, &format!("{}/api/v1/hosts", lab.url), ADMIN_SECRET).await;
    let row = hosts["hosts"].as_array().expect("hosts").iter().find(|h| h["name"] == victim).expect("victim").clone();
    assert_eq!(row["url"], lab.sim.hosts[1].url.as_str());
    let mut honest =
        plan.report(&reg, "sim", &lab.sim.hosts[1].url, u64::try_from(now_ms()).expect("clock") * 1_000_000);
    honest.identity = devmig_fleet::sim::sim_identity(victim);
    let r = c.put(&put).bearer_auth(report_token(victim)).json(&honest).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_ne!(r.json::<Value>().await.expect("json")["outcome"], "stale");

    // Placements that call agents never reach the attacker.
    let src = honest.devices.iter().find(|d| d.free).expect("a free device").clone();
    let _ = lab.fleet.place(common::look_for(&src.version, vec![])).await.expect("placement");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the fleet called the attacker's URL");

    // Per-host agent credentials: the fleet presents a host's own token, and none to a host it
    // has no token for.
    let own = devmig_fleet::agents::AgentCredentials::parse(
        &format!("[agents]\n{victim} = \"{}\"\n", common::AGENT_SECRET),
        "test",
    )
    .expect("credentials");
    let agents = devmig_fleet::agents::Agents::new(own, std::time::Duration::from_secs(2), None).expect("client");
    let dev = &honest.devices.iter().find(|d| d.kind != devmig_core::DeviceKind::MdevType).expect("a device").id;
    let r = agents.check(victim, &lab.sim.hosts[1].url, dev, &src.version).await;
    assert!(r.is_ok(), "{r:?}");
    let r = agents.check(attacker, &lab.sim.hosts[0].url, dev, &src.version).await;
    assert!(r.is_err_and(|e| e.to_string().contains("no agent token")));

    // An operator moves a host: forget it (admin only), and its next report registers it anew.
    let forget = format!("{}/api/v1/hosts/{victim}", lab.url);
    assert_eq!(c.delete(&forget).bearer_auth(report_token(victim)).send().await.expect("send").status(), 403);
    assert_eq!(c.delete(&forget).bearer_auth(ADMIN_SECRET).send().await.expect("send").status(), 200);
    assert_eq!(c.delete(&forget).bearer_auth(ADMIN_SECRET).send().await.expect("send").status(), 404);
    let (moved_url, _moved_hits) = trap().await;
    let moved = plan.report(&reg, "sim", &moved_url, u64::try_from(now_ms()).expect("clock") * 1_000_000);
    let r = c.put(&put).bearer_auth(report_token(victim)).json(&moved).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["outcome"], "applied");

    // Host names that are not names are refused; so are bodies over the limit (413).
    // (`.` and `..` never reach a server through a URL parser; `valid_host_name` refuses them.)
    for name in ["-", "-x", ".hidden", "a%20b"] {
        let u = format!("{}/api/v1/hosts/{name}/report", lab.url);
        let r = c.put(&u).bearer_auth(ADMIN_SECRET).json(&moved).send().await.expect("send");
        assert_eq!(r.status(), 400, "{name}");
    }
    let big = format!("{{\"host\": \"{victim}\", \"pad\": \"{}\"}}", "x".repeat(9 << 20));
    let r = c
        .put(&put)
        .bearer_auth(report_token(victim))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_generations_ran_ahead_starts_again_from_its_clock() {
    let backend = Backend::sqlite();
    let lab = lab(backend.url(), 1, 8, 9).await;
    let host = lab.sim.hosts[0].name.clone();
    let generation_of = |store: Arc<devmig_fleet::Store>, host: String| async move {
        tokio::task::spawn_blocking(move || {
            store.hosts(now_ms()).expect("hosts").into_iter().find(|h| h.name == host).expect("host").generation
        })
        .await
        .expect("join")
    };
    let before = generation_of(lab.fleet.store.clone(), host.clone()).await;
    // As if this agent's clock had been an hour fast once: its saved generation is an hour ahead.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("fleet-generation");
    let ahead = u64::try_from(now_ms()).expect("clock") * 1_000_000 + 3_600_000_000_000;
    std::fs::write(&file, format!("{ahead}\n")).expect("write");
    let link = devmig_agent::fleet_link::FleetLink {
        fleet_url: lab.url.clone(),
        token: report_token(&host),
        host: host.clone(),
        identity: devmig_fleet::sim::sim_identity(&host),
        advertise: lab.sim.hosts[0].url.clone(),
        interval: std::time::Duration::from_millis(100),
        timeout: std::time::Duration::from_secs(5),
        generation_file: Some(file.clone()),
    };
    let task = tokio::spawn(link.run(Arc::clone(&lab.sim.hosts[0].agent), reqwest::Client::new()));
    // The fleet refuses the hour-ahead generation; the agent starts again from its clock, and
    // its next reports are taken.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = generation_of(lab.fleet.store.clone(), host.clone()).await;
        if now > before && now < ahead {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the fleet never took a report again ({now}, before {before})");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    task.abort();
    let saved: u64 = std::fs::read_to_string(&file).expect("saved").trim().parse().expect("number");
    assert!(saved < ahead, "the saved generation was not reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_under_one_host_name_never_merge_until_an_operator_forgets_the_host() {
    let backend = Backend::sqlite();
    let lab = lab(backend.url(), 1, 8, 11).await;
    let c = reqwest::Client::new();
    let reg = Registry::new(Catalog::embedded());
    let plan = devmig_fleet::sim::HostPlan::draw(11, 0, 8);
    let name = "twin";
    let url = lab.sim.hosts[0].url.clone();
    let link = |identity: &str| devmig_agent::fleet_link::FleetLink {
        fleet_url: lab.url.clone(),
        token: ADMIN_SECRET.into(),
        host: name.into(),
        identity: identity.into(),
        advertise: url.clone(),
        interval: std::time::Duration::from_secs(3600),
        timeout: std::time::Duration::from_secs(5),
        generation_file: None,
    };
    let report = |identity: &str| {
        let mut r = plan.report(&reg, "sim", &url, u64::try_from(now_ms()).expect("clock") * 1_000_000);
        r.host = name.into();
        r.identity = identity.into();
        r
    };
    let (first, second) = (link("agent-one"), link("agent-two"));
    first.push(&c, &report("agent-one")).await.expect("the first agent registers the name");
    // The second agent, at the same URL even: refused, and told why and what to do.
    let refused = second.push(&c, &report("agent-two")).await.expect_err("a second identity is refused");
    assert_eq!(refused.code.as_deref(), Some("host_identity_conflict"), "{refused}");
    for needle in ["409", "agent-one", "agent-two", "--host-name", "devmig fleet forget twin"] {
        assert!(refused.text.contains(needle), "{needle}: {refused}");
    }
    // Its refreshes (same devices, newer generation) are refused too; the first's still count.
    assert!(second.push(&c, &report("agent-two")).await.is_err());
    first.push(&c, &report("agent-one")).await.expect("the holder keeps reporting");
    let hosts = common::get_json(&c, &format!("{}/api/v1/hosts", lab.url), ADMIN_SECRET).await;
    let row = hosts["hosts"].as_array().expect("hosts").iter().find(|h| h["name"] == name).expect("twin").clone();
    assert_eq!(row["identity"], "agent-one", "{row}");

    // The operator moves the name; the old agent's rows go with it, and the new agent registers.
    let devices = |store: Arc<devmig_fleet::Store>| async move {
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|h| h == "twin").expect("devices").len())
            .await
            .expect("join")
    };
    assert!(devices(lab.fleet.store.clone()).await > 0);
    let forget = format!("{}/api/v1/hosts/{name}", lab.url);
    assert_eq!(c.delete(&forget).bearer_auth(ADMIN_SECRET).send().await.expect("send").status(), 200);
    assert_eq!(devices(lab.fleet.store.clone()).await, 0, "a forgotten host's devices stay");
    second.push(&c, &report("agent-two")).await.expect("registered anew after forget");
    let hosts = common::get_json(&c, &format!("{}/api/v1/hosts", lab.url), ADMIN_SECRET).await;
    let row = hosts["hosts"].as_array().expect("hosts").iter().find(|h| h["name"] == name).expect("twin").clone();
    assert_eq!(row["identity"], "agent-two", "{row}");
    // Malformed identities are bad requests.
    let bad = first.push(&c, &report("not/an id")).await.expect_err("bad identity");
    assert!(bad.text.contains("400") && bad.text.contains("identity"), "{bad}");
}
