//! `claim`, `release`, `claims`: talking to an agent's claim API.
use std::io::Write;

use devmig_api::{Claim, ClaimRequest, ClaimTarget};
use serde_json::json;

use crate::cli::{ClaimArgs, Output};
use crate::error::CliError;
use crate::output::{fields, json as print_json, table};
use crate::remote::Remote;

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
        ("state", c.state.as_str().to_string()),
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
        (Some(d), None, false) => ClaimTarget::Device(d.clone()),
        (None, Some(t), false) => ClaimTarget::Type(t.clone()),
        (None, None, true) => ClaimTarget::Any,
        _ => return Err(CliError::Usage("give exactly one of --device, --type, --any".into())),
    };
    let req = ClaimRequest {
        migration_id: args.migration_id.clone(),
        source_version: version,
        target,
        ttl_seconds: args.ttl,
    };
    let c = remote.claim(&req)?;
    show(&c, output, out)?;
    Ok(0)
}

/// `devmig release HOST CLAIM-ID`.
pub fn release(remote: &Remote, id: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(CliError::Usage(format!("{id:?} is not a claim id")));
    }
    let c = remote.release(id)?;
    show(&c, output, out)?;
    Ok(0)
}

/// `devmig claims HOST`.
pub fn list(remote: &Remote, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let claims = remote.claims()?;
    if output == Output::Json {
        print_json(out, "devmig.claims/v1", &json!({"claims": claims}))?;
        return Ok(0);
    }
    let rows = claims.iter().map(|c| {
        vec![
            c.id.clone(),
            c.migration_id.clone(),
            c.device.clone(),
            c.state.as_str().to_string(),
            c.expires_at.to_string(),
            c.note.clone().unwrap_or_default(),
        ]
    });
    table(out, &["CLAIM", "MIGRATION", "DEVICE", "STATE", "EXPIRES", "NOTE"], rows)?;
    Ok(0)
}
