//! One module per verb; each writes to `out` and returns the exit code.
pub mod agent;
pub mod attributes;
pub mod bench;
pub mod bench_fleet;
pub mod bench_http;
pub mod bench_placement;
pub mod check;
pub mod claims;
pub mod demo;
pub mod dra;
pub mod fleet;
pub mod inventory;
pub mod libvirt;
pub mod matching;
pub mod placement;
pub mod sim;
pub mod sim_fleet;
pub mod version;
pub mod vms;

use std::io::Read;
use std::path::Path;

use devmig_core::DeviceId;

use crate::cli::SourceArgs;
use crate::error::CliError;

/// This host's name as the kernel has it (`/proc/sys/kernel/hostname`): the default of every
/// flag that names this host elsewhere (the fleet's host name, Nova's node, Kubernetes' node).
pub fn kernel_host_name() -> Result<String, CliError> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| CliError::Io { what: "reading the host name".into(), source: e })?
        .trim()
        .to_string())
}

/// Parses a DEVICE argument.
pub fn device_id(s: &str) -> Result<DeviceId, CliError> {
    Ok(s.parse::<DeviceId>()?)
}

/// A source's version string (and its kind, when it is a local device): SOURCE, or
/// --version/--version-file, exactly one of them.
pub fn source_of(
    device: Option<&str>,
    args: &SourceArgs,
    backend: &crate::backend::Backend,
) -> Result<(String, Option<devmig_core::DeviceKind>), CliError> {
    match (device, source_string(args)?) {
        (Some(_), Some(_)) => Err(CliError::Usage("give SOURCE or --version/--version-file, not both".into())),
        (None, None) => Err(CliError::Usage("give SOURCE (a local device) or --version STRING".into())),
        (None, Some(v)) => Ok((v, None)),
        (Some(d), None) => {
            let id = device_id(d)?;
            let report = backend.version(&id)?;
            let v = report
                .side
                .version
                .clone()
                .ok_or_else(|| CliError::Usage(format!("source {id} has no version string (it cannot migrate)")))?;
            Ok((v, Some(backend.device(&id)?.kind)))
        }
    }
}

/// The source string given with --version or --version-file, if any.
pub fn source_string(args: &SourceArgs) -> Result<Option<String>, CliError> {
    if let Some(v) = &args.version {
        return Ok(Some(v.clone()));
    }
    let Some(path) = &args.version_file else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    let read = if path == Path::new("-") {
        std::io::stdin().lock().take(64 * 1024).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(64 * 1024).read_to_end(&mut bytes))
    };
    read.map_err(|e| CliError::Input { what: format!("reading version file {}", path.display()), source: e })?;
    let text = String::from_utf8(devmig_core::strip_one_newline(&bytes).to_vec())
        .map_err(|_| CliError::Usage(format!("version file {} is not ASCII text", path.display())))?;
    Ok(Some(text))
}
