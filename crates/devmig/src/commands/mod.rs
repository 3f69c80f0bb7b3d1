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

/// How this run reaches hosts named in device arguments: `--agents`, `--token-file`, TLS
/// options, and whether `--agent` chose one agent for bare devices.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    /// `--agents FILE`.
    pub agents: Option<std::path::PathBuf>,
    /// `--token-file`.
    pub token_file: Option<std::path::PathBuf>,
    /// TLS client options.
    pub tls: crate::remote::TlsClient,
    /// `--agent URL` was given.
    pub agent_given: bool,
}

static HOSTS: std::sync::OnceLock<Hosts> = std::sync::OnceLock::new();

/// Sets how this run reaches named hosts (once, before any verb runs).
pub fn set_hosts(h: Hosts) {
    let _ = HOSTS.set(h);
}

/// Splits a device argument: `HOST:DEVICE` (HOST an agent named in `--agents`), or a DEVICE
/// alone (a PCI address's colons are its own: its first field is a PCI domain); `@` is refused
/// with the form to use instead.
pub fn split_device(arg: &str) -> Result<(Option<&str>, DeviceId), CliError> {
    if let Some((device, host)) = arg.split_once('@') {
        return Err(CliError::Usage(format!(
            "{arg:?}: devices on a host are written HOST:DEVICE ({host}:{device}), as the fleet and the demo print them"
        )));
    }
    if let Some((host, device)) = arg.split_once(':') {
        // `0000:3d:00.1` starts with a PCI domain, not a host (a host named with four hex
        // digits cannot be told apart from one: name it otherwise in the agents file).
        let pci_domain = host.len() == 4 && host.bytes().all(|b| b.is_ascii_hexdigit());
        if !pci_domain && devmig_api::valid_host_name(host) {
            let id = device.parse::<DeviceId>().map_err(|e| CliError::Usage(format!("{arg:?}: {e}")))?;
            return Ok((Some(host), id));
        }
    }
    Ok((None, device_id(arg)?))
}

/// The backend and device an argument names: `HOST:DEVICE` through HOST's agent, a bare
/// DEVICE through `backend`. With `--agents` and without `--agent`, a bare DEVICE is refused
/// when `strict` (a verb about one device): it would silently be read from this host.
pub fn device_on(
    arg: &str,
    backend: &crate::backend::Backend,
    strict: bool,
) -> Result<(crate::backend::Backend, DeviceId), CliError> {
    let hosts = HOSTS.get().cloned().unwrap_or_default();
    match split_device(arg)? {
        (Some(host), id) => {
            let remote =
                crate::remote::Remote::resolve(host, hosts.agents.as_deref(), hosts.token_file.as_deref(), &hosts.tls)?;
            Ok((crate::backend::Backend::Remote(remote), id))
        }
        (None, _) if strict && hosts.agents.is_some() && !hosts.agent_given => Err(CliError::Usage(format!(
            "{arg} names no host: with --agents write HOST:{arg} (or give --agent URL, or drop --agents to read this host)"
        ))),
        (None, id) => Ok((backend.clone(), id)),
    }
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
            let (backend, id) = device_on(d, backend, true)?;
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

#[cfg(test)]
mod tests {
    use super::split_device;

    #[test]
    fn device_arguments_read_one_way() {
        let host =
            |a: &str| split_device(a).map(|(h, id)| (h.map(str::to_string), id.to_string())).map_err(|e| e.to_string());
        assert_eq!(host("0000:3d:00.1"), Ok((None, "0000:3d:00.1".into())));
        assert_eq!(host("0000:00:02.0/i915-GVTg_V5_4"), Ok((None, "0000:00:02.0/i915-GVTg_V5_4".into())));
        assert_eq!(host("hostA:0000:3d:00.1"), Ok((Some("hostA".into()), "0000:3d:00.1".into())));
        assert_eq!(
            host("hostA:0000:00:02.0/i915-GVTg_V5_4"),
            Ok((Some("hostA".into()), "0000:00:02.0/i915-GVTg_V5_4".into()))
        );
        assert_eq!(host("mtty/mtty-2"), Ok((None, "mtty/mtty-2".into())));
        let u = "4b20d080-1b54-4048-85b3-a6a62d165c01";
        assert_eq!(host(&format!("hostB:{u}")), Ok((Some("hostB".into()), u.into())));
        let e = host(&format!("{u}@hostB")).expect_err("the old form");
        assert!(e.contains(&format!("hostB:{u}")), "{e}");
        assert!(host("hostB:../etc").is_err(), "ids are validated");
    }
}
