//! `claim`, `release`, `claims`: talking to an agent's claim API.
use std::io::Write;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::{ClaimArgs, Output};
use crate::error::CliError;
use crate::output::{fields, json as print_json, table};
use crate::remote::Remote;

#[derive(Debug, Deserialize, serde::Serialize)]
struct Claim {
    id: String,
    migration_id: String,
    device: String,
    created_mdev: bool,
    request: String,
    state: String,
    created_at: i64,
    expires_at: i64,
    #[serde(default)]
    note: Option<String>,
}

fn show(c: &Claim, output: Output, out: &mut dyn Write) -> Result<(), CliError> {
    if output == Output::Json {
        return print_json(out, "devmig.claim/v1", c);
    }
    let mut rows = vec![
        ("claim", c.id.clone()),
        ("migration", c.migration_id.clone()),
        ("device", c.device.clone()),
        ("created mdev", c.created_mdev.to_string()),
        ("request", c.request.clone()),
        ("state", c.state.clone()),
        ("expires at", c.expires_at.to_string()),
    ];
    if let Some(n) = &c.note {
        rows.push(("note", n.clone()));
    }
    fields(out, &rows)
}

/// `devmig claim HOST ...`: exit 0 when claimed (or already held), 1 when refused.
pub fn claim(remote: &Remote, args: &ClaimArgs, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let version = super::source_string(&args.source)?
        .ok_or_else(|| CliError::Usage("give --version or --version-file".into()))?;
    let target = match (&args.device, &args.mdev_type, args.any) {
        (Some(d), None, false) => json!({"device": d}),
        (None, Some(t), false) => json!({"type": t}),
        (None, None, true) => json!("any"),
        _ => return Err(CliError::Usage("give exactly one of --device, --type, --any".into())),
    };
    let body = json!({"migration_id": args.migration_id, "source_version": version, "target": target, "ttl_seconds": args.ttl});
    let (_, c): (StatusCode, Claim) = remote.post("/api/v1/claims", &body, &[StatusCode::OK, StatusCode::CREATED])?;
    show(&c, output, out)?;
    Ok(0)
}

/// `devmig release HOST CLAIM-ID`.
pub fn release(remote: &Remote, id: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(CliError::Usage(format!("{id:?} is not a claim id")));
    }
    let c: Claim = remote.delete(&format!("/api/v1/claims/{id}"))?;
    show(&c, output, out)?;
    Ok(0)
}

/// `devmig claims HOST`.
pub fn list(remote: &Remote, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let v: Value = remote.get("/api/v1/claims")?;
    let claims: Vec<Claim> = serde_json::from_value(v["claims"].clone()).map_err(|e| CliError::Usage(e.to_string()))?;
    if output == Output::Json {
        print_json(out, "devmig.claims/v1", &json!({"claims": claims}))?;
        return Ok(0);
    }
    let rows = claims.iter().map(|c| {
        vec![
            c.id.clone(),
            c.migration_id.clone(),
            c.device.clone(),
            c.state.clone(),
            c.expires_at.to_string(),
            c.note.clone().unwrap_or_default(),
        ]
    });
    table(out, &["CLAIM", "MIGRATION", "DEVICE", "STATE", "EXPIRES", "NOTE"], rows)?;
    Ok(0)
}
