//! `match`.
use std::io::Write;

use devmig_core::MatchReport;

use crate::backend::Backend;

use crate::cli::{MatchArgs, Output};
use crate::error::CliError;
use crate::output::{json, line, table};

/// Runs the match the arguments describe.
pub fn run_match(backend: &Backend, args: &MatchArgs) -> Result<MatchReport, CliError> {
    match (&args.device, super::source_string(&args.source)?) {
        (Some(d), None) => match super::split_device(d)? {
            // A source on another host: its version from there, the targets here.
            (Some(_), _) => {
                let (version, _) = super::source_of(Some(d), &args.source, backend)?;
                Ok(backend.match_version(&version)?)
            }
            (None, _) => {
                let (b, id) = super::device_on(d, backend, true)?;
                Ok(b.match_device(&id)?)
            }
        },
        (None, Some(v)) => Ok(backend.match_version(&v)?),
        _ => Err(CliError::Usage("give SOURCE, or --version/--version-file".into())),
    }
}

/// `devmig match`: exit 0 when at least one target is accepted, 1 otherwise.
pub fn matching(backend: &Backend, args: &MatchArgs, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let report = run_match(backend, args)?;
    let code = if report.accepted().next().is_some() { 0 } else { 1 };
    if output == Output::Json {
        json(out, "devmig.match/v1", &report)?;
        return Ok(code);
    }
    line(out, format!("source: {}", report.from.version.as_deref().unwrap_or("-")))?;
    line(
        out,
        format!(
            "step a requires: {}",
            report.requirement.all.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
        ),
    )?;
    let rows = report.candidates.iter().map(|c| {
        let verdict = c
            .verdict
            .and_then(|v| serde_json::to_value(v).ok())
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "-".into());
        let other_vendor = c.unmet.iter().find(|u| u.constraint.attr() == devmig_vendors::models::MODEL_ATTR);
        let detail = if let Some(u) = c.unusable {
            match u {
                devmig_core::Unusable::NoFreeInstance => "no_free_instance: the type has no room left".to_string(),
                devmig_core::Unusable::Claimed => "claimed: an active claim holds it".to_string(),
            }
        } else if let Some(u) = other_vendor {
            format!(
                "another vendor model ({})",
                u.target_value.as_ref().map_or("none".to_string(), ToString::to_string)
            )
        } else if !c.unmet.is_empty() {
            c.unmet
                .iter()
                .map(|u| {
                    format!(
                        "needs {} (has {})",
                        u.constraint,
                        u.target_value.as_ref().map_or("nothing".to_string(), ToString::to_string)
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            c.reasons.iter().map(|r| r.code.clone()).collect::<Vec<_>>().join(", ")
        };
        vec![c.device.clone(), c.step_a.as_str().to_string(), verdict, detail]
    });
    table(out, &["TARGET", "STEP A", "STEP B", "DETAIL"], rows)?;
    Ok(code)
}
