//! Test support shared by devmig's crates: only ever a dev-dependency.
#![deny(missing_docs)]

pub mod agent_lab;
pub mod browser;
pub mod fleet_lab;
pub mod placement_lab;
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

/// A simfs host spec: an mtty parent with types `mtty-1` and `mtty-2`, whose `mtty/mtty-1`
/// `attribute` hangs on `op` (`read`, `write` or `any`) until the mount is healed or unmounted.
pub fn hung_mtty_spec(attribute: &str, op: &str) -> String {
    format!(
        "hostname = \"hung\"\n[[virtual_parent]]\nname = \"mtty\"\ndriver_version = \"0.1\"\n\
         [virtual_parent.mdev]\ntypes = [{{ id = \"mtty-1\" }}, {{ id = \"mtty-2\" }}]\n\
         [[fault]]\ndevice = \"mtty/mtty-1\"\nattribute = \"{attribute}\"\nop = \"{op}\"\nhang = true\n"
    )
}

/// Every operation of an OpenAPI document: `(path, METHOD, scope it needs)`, `None` for an
/// anonymous one.
pub fn openapi_operations(doc: &serde_json::Value) -> Vec<(String, String, Option<String>)> {
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("operations") {
            let needed = op["security"][0]["bearer"][0].as_str().map(str::to_string);
            ops.push((path.clone(), method.to_ascii_uppercase(), needed));
        }
    }
    ops
}

/// Whether a token of scope `have` (`None`: no token) may call an operation that needs `needed`.
pub fn scope_admits(needed: Option<&str>, have: Option<&str>) -> bool {
    match (needed, have) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(n), Some(h)) => h == "admin" || h == n,
    }
}

/// Compares `doc` with the JSON document kept at `path` (pretty, one trailing newline); with
/// `DEVMIG_UPDATE_OPENAPI` set, writes it first. Panics naming the file when they differ.
pub fn assert_committed_json(path: &Path, doc: &serde_json::Value) {
    let generated = serde_json::to_string_pretty(doc).expect("json") + "\n";
    if std::env::var_os("DEVMIG_UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("write");
    }
    let kept = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (DEVMIG_UPDATE_OPENAPI=1 writes it)", path.display()));
    assert_eq!(kept, generated, "{} is stale: run with DEVMIG_UPDATE_OPENAPI=1", path.display());
}

/// Writes a token file (`[[token]]` tables) at `path`: `(name, scope, bound host, secret)`.
pub fn write_token_file(path: &Path, tokens: &[(&str, &str, Option<&str>, &str)]) {
    let mut text = String::new();
    for (name, scope, host, secret) in tokens {
        text.push_str(&format!("[[token]]\nname = \"{name}\"\nscope = \"{scope}\"\n"));
        if let Some(h) = host {
            text.push_str(&format!("host = \"{h}\"\n"));
        }
        text.push_str(&format!("secret = \"{secret}\"\n"));
    }
    write_private(path, &text);
}

/// Writes a file only its owner may read (as secrets should be: devmig warns otherwise).
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// Writes a client's secret file at `path` (the secret and a newline).
pub fn write_secret_file(path: &Path, secret: &str) {
    write_private(path, &format!("{secret}\n"));
}
