//! `attributes`.
use std::io::Write;

use crate::backend::Backend;
use devmig_vendors::AttrValue;

use crate::cli::Output;
use crate::error::CliError;
use crate::output::{json, line, table};

/// `devmig attributes DEVICE`.
pub fn attributes(backend: &Backend, device: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let report = backend.attributes(&super::device_id(device)?)?;
    if output == Output::Json {
        json(out, "devmig.attributes/v1", &report)?;
        return Ok(0);
    }
    line(out, format!("device: {} (model {})", report.device, report.model))?;
    let rows = report.attributes.iter().map(|(k, v)| {
        let ty = match v {
            AttrValue::String(_) => "string",
            AttrValue::Int(_) => "int",
            AttrValue::Semver(_) => "semver",
            AttrValue::Set(_) => "set",
        };
        vec![k.clone(), ty.to_string(), v.to_string()]
    });
    table(out, &["ATTRIBUTE", "TYPE", "VALUE"], rows)?;
    Ok(0)
}
