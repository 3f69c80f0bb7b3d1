//! `check` and `explain`.
use std::io::Write;

use devmig_core::{CheckReport, Provenance, Side};

use crate::backend::Backend;

use crate::cli::{CheckArgs, Output};
use crate::error::CliError;
use crate::output::{fields, json, line, table};

/// Runs the check the arguments describe (`HOST:DEVICE` through HOST's agent); `explain` adds
/// every vendor rule.
pub fn run_check(backend: &Backend, args: &CheckArgs, explain: bool) -> Result<CheckReport, CliError> {
    let given = super::source_string(&args.source)?;
    match (args.devices.as_slice(), given) {
        ([source, target], None) => {
            let named = super::split_device(source)?.0.is_some() || super::split_device(target)?.0.is_some();
            let ((sb, s), (tb, t)) =
                (super::device_on(source, backend, !named)?, super::device_on(target, backend, !named)?);
            if named { crate::backend::cross(&sb, &s, &tb, &t, explain) } else { backend.check(&s, &t, explain) }
        }
        ([target], Some(version)) => {
            let (tb, t) = super::device_on(target, backend, true)?;
            tb.check_version(&version, &t, explain)
        }
        ([_, _], Some(_)) => {
            Err(CliError::Usage("give SOURCE TARGET, or TARGET with --version/--version-file, not both".into()))
        }
        _ => Err(CliError::Usage("give SOURCE TARGET, or TARGET with --version/--version-file".into())),
    }
}

fn side_text(s: &Side) -> String {
    let who = s.device.clone().unwrap_or_else(|| "(version string)".into());
    let src = match (s.source, &s.model) {
        (Some(Provenance::Kernel), _) => " [kernel]".to_string(),
        (Some(Provenance::Model), Some(m)) => format!(" [model {m}]"),
        (Some(Provenance::Model), None) => " [model]".to_string(),
        (None, _) => String::new(),
    };
    match &s.version {
        Some(v) => format!("{who}{src} {v}"),
        None => format!("{who}{src}"),
    }
}

/// Writes a report; `explain` adds every rule.
pub fn render(report: &CheckReport, explain: bool, output: Output, out: &mut dyn Write) -> Result<(), CliError> {
    if output == Output::Json {
        let schema = if explain { "devmig.explain/v1" } else { "devmig.check/v1" };
        return json(out, schema, report);
    }
    let verdict =
        serde_json::to_value(report.verdict).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut rows = vec![("verdict", verdict), ("from", side_text(&report.from)), ("to", side_text(&report.to))];
    if let (Some(Provenance::Model), Some(model)) = (report.to.source, &report.to.model) {
        rows.push((
            "kernel",
            format!("unsupported: the target has no migration_version; devmig's {model} model judged the pair"),
        ));
    }
    for r in &report.reasons {
        rows.push(("reason", format!("{}: {}", r.code, r.message)));
    }
    for what in &report.at_resume {
        rows.push(("at resume", format!("only the destination can tell: {what}")));
    }
    fields(out, &rows)?;
    if explain {
        if report.checks.is_empty() && report.to.source == Some(Provenance::Kernel) && report.to.model.is_none() {
            line(
                out,
                "no vendor model knows the target's driver (opaque): only the driver's write can judge the pair, and the verdict is its answer",
            )?;
        } else if report.checks.is_empty() {
            line(out, "no vendor model knows the target: no field-by-field rules to show")?;
        } else {
            line(out, "")?;
            let rows = report.checks.iter().map(|c| {
                vec![
                    if c.passed { "pass" } else { "FAIL" }.to_string(),
                    c.rule.clone(),
                    c.source_value.clone(),
                    c.target_value.clone(),
                    c.message.clone(),
                ]
            });
            table(out, &["RESULT", "RULE", "SOURCE", "TARGET", "REQUIRES"], rows)?;
        }
    }
    Ok(())
}

/// `devmig check` / `devmig explain`.
pub fn check(
    backend: &Backend,
    args: &CheckArgs,
    explain: bool,
    output: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let report = run_check(backend, args, explain)?;
    render(&report, explain, output, out)?;
    Ok(report.verdict.exit_code())
}
