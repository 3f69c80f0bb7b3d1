//! `claim`, `release`, `claims`: talking to an agent's claim API.
use std::io::Write;

use devmig_api::{Claim, ClaimRequest, ClaimState, ClaimTarget};
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
        ("created", crate::output::date(c.created_at.saturating_mul(1000))),
        ("expires", crate::output::until(c.expires_at.saturating_mul(1000))),
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

/// True when `c` belongs to migration `m`: its own claim, or a target's `<m>.<n>`.
fn of_migration(c: &Claim, m: &str) -> bool {
    c.migration_id == m || c.migration_id.strip_prefix(m).is_some_and(|rest| rest.starts_with('.'))
}

/// `devmig release HOST ID`: a claim by its id, else every active claim of the migration `ID`.
pub fn release(remote: &Remote, id: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(CliError::Usage(format!("{id:?} is neither a claim id nor a migration id")));
    }
    let claims = remote.claims()?;
    let chosen: Vec<&Claim> = match claims.iter().find(|c| c.id == id) {
        Some(c) => vec![c],
        None => claims.iter().filter(|c| of_migration(c, id) && c.state == ClaimState::Active).collect(),
    };
    if chosen.is_empty() {
        return Err(CliError::Usage(format!(
            "the agent holds no claim {id:?} and no active claim of a migration {id:?}"
        )));
    }
    let released = chosen.iter().map(|c| remote.release(&c.id)).collect::<Result<Vec<_>, _>>()?;
    if output == Output::Json {
        return match released.as_slice() {
            [one] => show(one, output, out).map(|()| 0),
            many => print_json(out, "devmig.claims/v1", &json!({"claims": many})).map(|()| 0),
        };
    }
    match released.as_slice() {
        [one] => show(one, output, out)?,
        many => rows(many, out)?,
    }
    Ok(0)
}

fn rows(claims: &[Claim], out: &mut dyn Write) -> Result<(), CliError> {
    let rows = claims.iter().map(|c| {
        vec![
            c.id.clone(),
            c.migration_id.clone(),
            c.device.clone(),
            c.state.as_str().to_string(),
            crate::output::until(c.expires_at.saturating_mul(1000)),
            c.note.clone().unwrap_or_default(),
        ]
    });
    table(out, &["CLAIM", "MIGRATION", "DEVICE", "STATE", "EXPIRES", "NOTE"], rows)
}

/// `devmig claims HOST [--migration ID]`.
pub fn list(remote: &Remote, migration: Option<&str>, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let claims: Vec<Claim> =
        remote.claims()?.into_iter().filter(|c| migration.is_none_or(|m| of_migration(c, m))).collect();
    if output == Output::Json {
        print_json(out, "devmig.claims/v1", &json!({"claims": claims}))?;
        return Ok(0);
    }
    if claims.is_empty() {
        let what = migration
            .map_or_else(|| "no active or orphaned claims".to_string(), |m| format!("no claims of migration {m}"));
        crate::output::line(out, format!("the agent holds {what}"))?;
        return Ok(0);
    }
    rows(&claims, out)?;
    Ok(0)
}
