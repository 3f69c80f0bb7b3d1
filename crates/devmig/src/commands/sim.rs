//! `sim spec`, `sim validate`, `sim mount`, `sim probe`.
use std::io::Write;
use std::path::Path;

use devmig_simfs::spec::EXAMPLE_HOST_A;
use devmig_simfs::{Host, HostSpec};
use devmig_vendors::Registry;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::SimCommand;
use crate::error::CliError;
use crate::output::line;

/// Reads and builds a spec file (or the embedded example).
pub fn load(path: Option<&Path>, registry: &Registry) -> Result<Host, CliError> {
    let (text, origin) = match path {
        Some(p) => (CliError::read_input(p, "host spec")?, p.display().to_string()),
        None => (EXAMPLE_HOST_A.to_string(), "embedded example".to_string()),
    };
    let spec = HostSpec::from_toml(&text, &origin, registry.catalog())?;
    Ok(spec.build(registry.clone(), &origin)?)
}

/// Fails clearly when mounting is impossible here.
pub fn require_root(what: &str) -> Result<(), CliError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CliError::Io {
            what: format!("{what} mounts FUSE filesystems and needs root"),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        });
    }
    Ok(())
}

/// `devmig sim ...`.
pub fn sim(cmd: &SimCommand, registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    match cmd {
        SimCommand::Spec { which, .. } => {
            out.write_all(which.text().as_bytes()).map_err(crate::output::write_err)?;
            Ok(0)
        }
        SimCommand::Fleet { hosts, devices, seed, dir, db, listen } => {
            let spec =
                devmig_fleet::sim::SimSpec { hosts: *hosts, devices: *devices, seed: *seed, prefix: "sim".into() };
            if *hosts == 0 {
                return Err(CliError::Usage("--hosts must be at least 1".into()));
            }
            crate::commands::sim_fleet::sim_fleet(&spec, dir.as_deref(), db.as_deref(), *listen, registry, out)
        }
        SimCommand::Probe { root, script } => {
            let text = CliError::read_input(script, "probe script")?;
            if !root.is_dir() {
                return Err(CliError::Usage(format!("--root {} is not a directory", root.display())));
            }
            for probed in devmig_simfs::probe::run(root, &text)? {
                line(out, probed)?;
            }
            Ok(0)
        }
        SimCommand::Validate { spec } => {
            let host = load(Some(spec), registry)?;
            line(out, format!("{}: host {} is valid ({} nodes)", spec.display(), host.hostname(), host.node_count()))?;
            Ok(0)
        }
        SimCommand::Mount { spec, dir, no_busy_poll } => {
            require_root("devmig sim mount")?;
            let host = load(spec.as_deref(), registry)?;
            let (name, nodes) = (host.hostname().to_string(), host.node_count());
            let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
                .map_err(|e| CliError::Io { what: "installing signal handlers".into(), source: e })?;
            let options = devmig_simfs::MountOptions { busy_poll: !no_busy_poll };
            let mounted = devmig_simfs::mount_with(host, dir, &options)?;
            line(out, format!("mounted host {name} ({nodes} nodes) on {}; SIGINT or SIGTERM unmounts", dir.display()))?;
            out.flush().map_err(crate::output::write_err)?;
            let _ = signals.forever().next();
            mounted.unmount()?;
            // Best effort: the unmount is done; a closed stdout must not turn it into a failure.
            let _ = line(out, format!("unmounted {}", dir.display()));
            Ok(0)
        }
    }
}
