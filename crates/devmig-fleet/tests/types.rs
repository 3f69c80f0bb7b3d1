//! Placement onto mdev types: two hosts emulated by simfs (really mounted), each with a real
//! agent on loopback reporting to a real fleet; claims through the fleet create target mdevs.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, agent_tokens, fleet_tokens, options};
use devmig_agent::api::AppState;
use devmig_agent::{Agent, AgentOptions, FleetLink};
use devmig_core::tree::example_uuids::{A_MTTY, A_VGPU, B_VGPU_HALF};
use devmig_fleet::placement::{PlacementRequest, SourceRef};
use devmig_simfs::{HostSpec, mount};
use devmig_vendors::{Catalog, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_through_the_fleet_create_target_mdevs() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test mounts simfs and must run as root");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let backend = Backend::sqlite();
    let opts = options(backend.url());
    let fleet = tokio::task::spawn_blocking(move || opts.open(Registry::new(Catalog::embedded())))
        .await
        .expect("join")
        .expect("fleet");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let fleet_url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let f = fleet.clone();
    let mut r = rx.clone();
    tokio::spawn(async move {
        let _ = devmig_fleet::server::serve(listener, f, fleet_tokens(), None, async move {
            let _ = r.wait_for(|s| *s).await;
        })
        .await;
    });
    let mut keep = Vec::new();
    let mut agents = Vec::new();
    for (name, spec) in [("host-a", devmig_simfs::spec::EXAMPLE_HOST_A), ("host-b", devmig_simfs::spec::EXAMPLE_HOST_B)]
    {
        let mnt = tempfile::Builder::new().prefix("devmig-fleet-test-").tempdir().expect("mnt");
        let host = HostSpec::from_toml(spec, name, &Catalog::embedded())
            .expect("spec")
            .build(Registry::new(Catalog::embedded()), name)
            .expect("build");
        let mounted = mount(host, mnt.path()).expect("mount");
        let state = tempfile::tempdir().expect("state");
        let o = AgentOptions {
            sysfs_root: mnt.path().into(),
            state_dir: state.path().into(),
            timeout: Duration::from_secs(5),
            io_workers: 2,
            shared_io: None,
        };
        let agent = Arc::new(Agent::open(&o, Registry::new(Catalog::embedded())).expect("agent"));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let st = AppState { agent: Arc::clone(&agent), tokens: agent_tokens() };
        let mut r = rx.clone();
        tokio::spawn(async move {
            let _ = devmig_agent::run(l, st, None, async move {
                let _ = r.wait_for(|s| *s).await;
            })
            .await;
        });
        let link = FleetLink {
            fleet_url: fleet_url.clone(),
            token: common::report_token(name),
            host: name.into(),
            identity: format!("types-{name}"),
            advertise: url,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
            generation_file: None,
        };
        let (a, mut r) = (Arc::clone(&agent), rx.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = link.run(a, reqwest::Client::new()) => {}
                _ = r.wait_for(|s| *s) => {}
            }
        });
        agents.push((name, agent, mnt.path().to_path_buf()));
        keep.push((mounted, mnt, state));
    }
    devmig_testkit::fleet_lab::wait_for_hosts(&fleet.store, 2, Duration::from_secs(30)).await;

    let place = |device: &str, k: usize| PlacementRequest {
        sources: vec![SourceRef { host: Some("host-a".into()), device: Some(device.into()), version: None }],
        claim: true,
        migration_id: Some(format!("vm-{k}").parse().expect("id")),
        exclude_hosts: vec![],
        max_hosts: None,
        ttl_seconds: Some(devmig_api::Ttl::DEFAULT),
    };
    // Host A's half-GPU vGPU: host B's GVT types pass step a and step b, but its GPU has no room
    // left for a half, so their claims fail (409) and the fleet falls back to B's free half vGPU.
    let p = fleet.place(place(A_VGPU, 0)).await.expect("placement");
    assert!(p.placed, "{p:#?}");
    assert_eq!(p.assignments[0].target, B_VGPU_HALF);
    let refused =
        p.tried[0].probes.iter().filter(|pr| pr.reasons.iter().any(|r| r.message.contains("no_free_instance"))).count();
    assert!(refused >= 1, "{p:#?}");
    // Host A's mtty-2 instance, three times: each claim creates a new mtty-2 mdev on host B.
    let mut created = Vec::new();
    for k in 1..=3 {
        let p = fleet.place(place(A_MTTY, k)).await.expect("placement");
        assert!(p.placed, "{p:#?}");
        assert_eq!(p.host.as_deref(), Some("host-b"));
        let a = &p.assignments[0];
        assert_eq!(a.target, "mtty/mtty-2", "{p:#?}");
        created.push(a.claimed_device.clone().expect("the claim created an mdev"));
    }
    let distinct: std::collections::BTreeSet<_> = created.iter().collect();
    assert_eq!(distinct.len(), 3);
    let b = &agents[1];
    for m in &created {
        assert!(b.2.join("sys/bus/mdev/devices").join(m).exists(), "{m} was not created on host-b");
        assert!(b.1.claims().expect("claims").iter().any(|c| &c.device == m && c.created_mdev));
    }
    let _ = stop.send(true);
}
