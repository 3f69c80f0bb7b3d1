//! Test support shared by devmig's crates: only ever a dev-dependency.
#![deny(missing_docs)]
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A fresh CA, a server certificate for `127.0.0.1` and `localhost`, and a client certificate,
/// written as PEM files `<prefix>-{ca,server,client}.pem` and `<prefix>-{server,client}.key` in
/// `dir`: `[ca, server cert, server key, client cert, client key]`. Panics on failure (tests).
pub fn pki(dir: &Path, prefix: &str) -> [PathBuf; 5] {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("params")
        .signed_by(&server_key, &issuer)
        .expect("server");
    let client_key = KeyPair::generate().expect("key");
    let client = CertificateParams::new(vec!["devmig-client".to_string()])
        .expect("params")
        .signed_by(&client_key, &issuer)
        .expect("client");
    [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", client_key.serialize_pem()),
    ]
    .map(|(file, pem)| {
        let path = dir.join(format!("{prefix}-{file}"));
        std::fs::write(&path, pem).expect("write");
        path
    })
}
