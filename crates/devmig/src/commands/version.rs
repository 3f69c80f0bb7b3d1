//! `version`.
use std::io::Write;

use crate::backend::Backend;

use crate::cli::Output;
use crate::error::CliError;
use crate::output::{json, line};

/// `devmig version DEVICE`: the string alone on stdout (so `> file` keeps only it),
/// its provenance on stderr; JSON carries both.
pub fn version(
    backend: &Backend,
    device: &str,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, CliError> {
    let (backend, id) = super::device_on(device, backend, true)?;
    let report = backend.version(&id)?;
    let code = match (&report.side.version, &report.reason) {
        (Some(_), _) => 0,
        (None, _) if report.transient => 3,
        (None, _) => 1,
    };
    if output == Output::Json {
        json(out, "devmig.version/v1", &report)?;
        return Ok(code);
    }
    match (&report.side.version, &report.reason) {
        (Some(v), _) => {
            line(out, v)?;
            let source = report
                .side
                .source
                .map_or("?", |s| if s == devmig_core::Provenance::Kernel { "kernel" } else { "model" });
            let model = report.side.model.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
            line(err, format!("source: {source}{model}"))?;
        }
        (None, Some(r)) => line(err, format!("{device}: no version: {} ({})", r.message, r.code))?,
        (None, None) => line(err, format!("{device}: no version"))?,
    }
    Ok(code)
}
