//! `devmig libvirt ...`: a domain's host devices, and its XML for the destination.
use std::collections::BTreeMap;
use std::io::{Read, Write};

use devmig_api::fleet::Placement;
use devmig_libvirt::{LibvirtError, hostdevs, rewrite};

use crate::cli::{LibvirtCommand, Output};
use crate::error::CliError;
use crate::output::{json, table};

impl From<LibvirtError> for CliError {
    fn from(e: LibvirtError) -> Self {
        CliError::Usage(e.to_string())
    }
}

/// Longest domain XML read from stdin.
const MAX_XML: u64 = 16 * 1024 * 1024;

fn stdin_xml() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_XML)
        .read_to_string(&mut text)
        .map_err(|e| CliError::Input { what: "reading the domain XML from stdin".into(), source: e })?;
    Ok(text)
}

/// Source device -> target device, from a placement a fleet answered.
fn targets(placement: &Placement) -> Result<BTreeMap<String, String>, CliError> {
    if !placement.placed {
        return Err(CliError::Usage("the placement placed nothing: there is no target to rewrite to".into()));
    }
    let mut out = BTreeMap::new();
    for a in &placement.assignments {
        // A source named by device is labelled HOST:DEVICE; one given as a string has no device.
        let Some((_, device)) = a.source.split_once(':') else { continue };
        let target = a.claimed_device.clone().unwrap_or_else(|| a.target.clone());
        out.insert(device.to_ascii_lowercase(), target);
    }
    Ok(out)
}

/// `devmig libvirt ...`.
pub fn libvirt(cmd: &LibvirtCommand, o: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    match cmd {
        LibvirtCommand::Rewrite { placement } => {
            let text = CliError::read_input(placement, "placement")?;
            let placement: Placement = serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("placement {}: {e}", placement.display())))?;
            let xml = rewrite(&stdin_xml()?, &targets(&placement)?)?;
            out.write_all(xml.as_bytes()).map_err(CliError::Output)?;
            Ok(0)
        }
        LibvirtCommand::Hostdevs => {
            let found = hostdevs(&stdin_xml()?)?;
            if o == Output::Json {
                let rows: Vec<_> = found
                    .iter()
                    .map(|h| serde_json::json!({ "index": h.index, "kind": h.kind, "device": h.device }))
                    .collect();
                json(out, "devmig.libvirt-hostdevs/v1", &serde_json::json!({ "hostdevs": rows }))?;
                return Ok(0);
            }
            let rows = found.iter().map(|h| vec![h.index.to_string(), h.kind.clone(), h.device.clone()]);
            table(out, &["HOSTDEV", "TYPE", "DEVICE"], rows)?;
            Ok(0)
        }
    }
}
