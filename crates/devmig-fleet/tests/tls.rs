//! The fleet and its agents over TLS with client certificates both ways: agents push to an
//! https fleet that requires a certificate, and the fleet verifies and claims on https agents
//! that require one.
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Backend, REPORT_SECRET, agent_tokens, fleet_tokens, options};
use devmig_agent::tls::{ClientTls, TlsFiles};
use devmig_fleet::now_ms;
use devmig_fleet::placement::{PlacementRequest, SourceRef};
use devmig_fleet::sim::{SimFleet, SimLinks, SimSpec};
use devmig_vendors::{Catalog, Registry};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_and_agents_speak_mtls_both_ways() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let [ca, cert, key, client_cert, client_key] = devmig_testkit::pki(dir.path(), "fleet");
    let server = TlsFiles { cert, key, client_ca: Some(ca.clone()) }.server_config().expect("server tls");
    let client_tls = ClientTls { ca_file: ca, client_cert: Some(client_cert), client_key: Some(client_key) };

    let backend = Backend::sqlite();
    let mut opts = options(backend.url());
    opts.agent_tls = Some(client_tls.clone());
    let fleet = tokio::task::spawn_blocking(move || opts.open(Registry::new(Catalog::embedded())))
        .await
        .expect("join")
        .expect("fleet");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let fleet_url = format!("https://{}", listener.local_addr().expect("addr"));
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let (f, tls) = (fleet.clone(), Some(Arc::clone(&server)));
    tokio::spawn(async move {
        let _ = devmig_fleet::server::serve(listener, f, fleet_tokens(), tls, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await;
    });

    // Without a client certificate the fleet refuses the connection.
    let anonymous = reqwest::Client::builder()
        .tls_backend_preconfigured(
            ClientTls { client_cert: None, client_key: None, ..client_tls.clone() }.client_config().expect("tls"),
        )
        .build()
        .expect("client");
    let refused = anonymous.get(format!("{fleet_url}/healthz")).timeout(Duration::from_secs(5)).send().await;
    assert!(refused.is_err(), "a client without a certificate got through: {refused:?}");

    let links = SimLinks {
        fleet_url: Some(fleet_url.clone()),
        report_secret_base: REPORT_SECRET.into(),
        agent_tokens: agent_tokens(),
        interval: Duration::from_secs(30),
        agent_tls: Some(server),
        fleet_client: reqwest::Client::builder()
            .tls_backend_preconfigured(client_tls.client_config().expect("tls"))
            .build()
            .expect("client"),
    };
    let spec = SimSpec { hosts: 3, devices: 8, seed: 2, prefix: "tls".into() };
    let sim = SimFleet::start(&spec, Registry::new(Catalog::embedded()), links).await.expect("sim");
    assert!(sim.hosts.iter().all(|h| h.url.starts_with("https://")));
    devmig_testkit::fleet_lab::wait_for_hosts(&fleet.store, 3, Duration::from_secs(30)).await;
    let store = fleet.store.clone();
    let devices =
        tokio::task::spawn_blocking(move || store.devices(now_ms(), &|h| h == "tls-r00-0000").expect("devices"))
            .await
            .expect("join");
    let src =
        devices.iter().find(|d| d.model == "mtty" && d.kind == devmig_core::DeviceKind::Mdev).expect("an mtty source");
    let req = PlacementRequest {
        sources: vec![SourceRef { host: Some(src.host.clone()), device: Some(src.device.clone()), version: None }],
        claim: true,
        migration_id: Some("tls-1".parse().expect("id")),
        exclude_hosts: vec![],
        max_hosts: None,
        ttl_seconds: Some(devmig_api::Ttl::try_from(60).expect("ttl")),
    };
    let p = fleet.place(req).await.expect("placement");
    assert!(p.placed, "{p:#?}");
    assert!(p.url.as_deref().is_some_and(|u| u.starts_with("https://")));
    assert!(p.assignments[0].claim_id.is_some());
    let _ = stop.send(true);
}
