//! `attributes`.
use std::io::Write;

use crate::backend::Backend;
use devmig_vendors::{AttrValue, AttributeSource};

use crate::cli::Output;
use crate::error::CliError;
use crate::output::{json, line, table};

/// `devmig attributes DEVICE`.
pub fn attributes(backend: &Backend, device: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let (backend, id) = super::device_on(device, backend, true)?;
    let report = backend.attributes(&id)?;
    if output == Output::Json {
        json(out, "devmig.attributes/v1", &report)?;
        return Ok(0);
    }
    let from = match report.source {
        AttributeSource::KernelString => "from the kernel's migration_version",
        AttributeSource::Facts => "from sysfs facts: the kernel has no migration_version here",
        AttributeSource::Opaque => "opaque: no vendor model knows this driver, only its write can judge a source",
    };
    line(out, format!("device: {} (model {}; {from})", report.device, report.model))?;
    for conflict in &report.conflicts {
        line(out, format!("conflict: {conflict}"))?;
    }
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
