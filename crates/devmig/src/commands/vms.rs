//! `devmig vms`: which VMs can migrate, from their domain XML.
use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use devmig_api::fleet::VmDevice;
use devmig_fleet::Fleet;
use devmig_fleet::server::FleetOptions;
use devmig_vendors::Registry;

use crate::backend::Backend;
use crate::cli::{Output, VmsArgs};
use crate::error::CliError;
use crate::output::{json, table};

fn fleet(db: &str, registry: &Registry) -> Result<Fleet, CliError> {
    let options = FleetOptions {
        db: db.parse()?,
        pool_size: 1,
        stale_after: Duration::from_secs(90),
        agent_timeout: Duration::from_secs(5),
        concurrency: 1,
        agent_credentials: Default::default(),
        agent_tls: None,
    };
    Ok(options.open_existing(registry.clone())?)
}

/// Runs virsh; its stdout, or an error naming the command and what virsh said.
fn virsh(uri: &str, args: &[&str]) -> Result<String, CliError> {
    let o = std::process::Command::new("virsh")
        .args(["-c", uri])
        .args(args)
        .output()
        .map_err(|e| CliError::Io { what: "running virsh (Debian's libvirt-clients)".into(), source: e })?;
    if !o.status.success() {
        let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
        return Err(CliError::Io {
            what: format!("virsh -c {uri} {}: {why}", args.join(" ")),
            source: std::io::Error::other(why),
        });
    }
    String::from_utf8(o.stdout)
        .map_err(|_| CliError::Usage(format!("virsh -c {uri} {}: output is not UTF-8", args.join(" "))))
}

/// Every domain of a libvirt connection: (name, XML).
fn connection_domains(uri: &str) -> Result<Vec<(String, String)>, CliError> {
    let names = virsh(uri, &["list", "--all", "--name"])?;
    names
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| Ok((format!("{uri} domain {n}"), virsh(uri, &["dumpxml", "--", n])?)))
        .collect()
}

/// `devmig vms FILE...` or `devmig vms --connect URI`.
pub fn vms(
    args: &VmsArgs,
    backend: &Backend,
    registry: &Registry,
    o: Output,
    out: &mut dyn Write,
) -> Result<i32, CliError> {
    let fleet = args.fleet_db.as_deref().map(|db| fleet(db, registry)).transpose()?;
    let excluded: BTreeSet<String> = args.host.iter().cloned().collect();
    let mut vms = Vec::new();
    let inputs: Vec<(String, String)> = match &args.connect {
        Some(uri) => connection_domains(uri)?,
        None => args
            .files
            .iter()
            .map(|f| Ok((f.display().to_string(), CliError::read_input(f, "domain XML")?)))
            .collect::<Result<_, CliError>>()?,
    };
    for (origin, text) in &inputs {
        let d = devmig_libvirt::domain(text).map_err(|e| CliError::Usage(format!("{origin}: {e}")))?;
        let mut devices = Vec::new();
        for h in &d.hostdevs {
            let read = super::device_id(&h.device).and_then(|id| backend.version(&id));
            let (version, error) = match read {
                Ok(r) => match r.side.version {
                    Some(v) => (Some(v), None),
                    None => (None, Some(r.reason.map_or_else(|| "no version".to_string(), |r| r.message))),
                },
                Err(e) => (None, Some(e.to_string())),
            };
            devices.push(VmDevice { device: h.device.clone(), kind: h.kind.clone(), version, error });
        }
        let vm = devmig_fleet::plans::vm_verdict(fleet.as_ref(), d.name, d.uuid, devices, &excluded)?;
        vms.push(vm);
    }
    if o == Output::Json {
        json(out, "devmig.vms/v1", &serde_json::json!({ "vms": vms }))?;
    } else {
        let rows = vms.iter().map(|v| {
            let devices = v
                .devices
                .iter()
                .map(|d| match (&d.version, &d.error) {
                    (Some(ver), _) => format!("{} {}", d.device, ver),
                    (None, Some(e)) => format!("{} ({e})", d.device),
                    (None, None) => d.device.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ");
            let verdict = match (v.verdict.as_str(), v.hosts, &v.why) {
                ("migratable", Some(n), _) => format!("migratable to {n} host{}", if n == 1 { "" } else { "s" }),
                ("not_migratable", _, Some(why)) => format!("not migratable: {why}"),
                ("unknown", _, _) => "give --fleet-db for a verdict".to_string(),
                (other, _, _) => other.replace('_', " "),
            };
            vec![v.name.clone(), devices, verdict]
        });
        table(out, &["VM", "DEVICES", "VERDICT"], rows)?;
    }
    Ok(if vms.iter().any(|v| v.verdict == "not_migratable" || v.verdict == "unreadable") { 1 } else { 0 })
}
