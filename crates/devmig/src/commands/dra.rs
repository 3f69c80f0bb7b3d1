//! `devmig dra ...`: Kubernetes Dynamic Resource Allocation objects (resource.k8s.io/v1).
use std::io::Write;

use devmig_core::{DeviceKind, MigrationSupport};
use devmig_vendors::Registry;
use devmig_vendors::dra::{DOMAIN, DraValue, attributes, selector};
use serde_json::{Value, json};

use crate::backend::Backend;
use crate::cli::DraCommand;
use crate::error::CliError;

/// Devices per ResourceSlice (resource.k8s.io/v1).
const PER_SLICE: usize = 128;

/// A DNS label (lowercase letters, digits, `-`; at most 63) for `s`.
fn label(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    out = out.trim_matches('-').to_string();
    if out.len() > 63 {
        out.truncate(63);
        out = out.trim_end_matches('-').to_string();
    }
    if out.is_empty() { "device".into() } else { out }
}

fn value(v: &DraValue) -> Value {
    match v {
        DraValue::String(s) => json!({ "string": s }),
        DraValue::Int(i) => json!({ "int": i }),
        DraValue::Bool(b) => json!({ "bool": b }),
        DraValue::Version(v) => json!({ "version": v }),
    }
}

fn print(out: &mut dyn Write, v: &Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).map_err(|e| CliError::Usage(e.to_string()))?;
    writeln!(out, "{text}").map_err(CliError::Output)
}

/// `devmig dra ...`.
pub fn dra(cmd: &DraCommand, backend: &Backend, registry: &Registry, out: &mut dyn Write) -> Result<i32, CliError> {
    match cmd {
        DraCommand::Slices { node } => {
            let node = super::placement::this_node(node.as_deref())?;
            let mut devices = Vec::new();
            for dev in backend.inventory()?.devices {
                if matches!(dev.kind, DeviceKind::SriovPf) {
                    continue;
                }
                match dev.migration.support {
                    MigrationSupport::None => continue,
                    MigrationSupport::Unknown => {
                        return Err(CliError::Usage(format!(
                            "device {} cannot be read now: no slices written",
                            dev.id
                        )));
                    }
                    _ => {}
                }
                let report = backend.attributes(&dev.id)?;
                let attrs =
                    attributes(&report.attributes).map_err(|e| CliError::Usage(format!("device {}: {e}", dev.id)))?;
                let attrs: serde_json::Map<String, Value> = attrs.iter().map(|(k, v)| (k.clone(), value(v))).collect();
                devices.push(json!({ "name": label(&dev.id.to_string()), "attributes": attrs }));
            }
            let chunks: Vec<&[Value]> = devices.chunks(PER_SLICE).collect();
            let count = chunks.len().max(1);
            let pool = label(&node);
            let slices: Vec<Value> = chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| {
                    json!({
                        "apiVersion": "resource.k8s.io/v1",
                        "kind": "ResourceSlice",
                        "metadata": { "name": format!("{pool}-devmig-{i}") },
                        "spec": {
                            "driver": DOMAIN,
                            "nodeName": node,
                            "pool": { "name": pool, "generation": 1, "resourceSliceCount": count },
                            "devices": chunk,
                        }
                    })
                })
                .collect();
            // One document per slice, as a YAML stream (JSON is YAML): what `kubectl apply -f`
            // and validators take, where a `List` would be checked as a whole by neither.
            for (i, slice) in slices.iter().enumerate() {
                if i > 0 {
                    writeln!(out, "---").map_err(CliError::Output)?;
                }
                print(out, slice)?;
            }
            Ok(0)
        }
        DraCommand::Selector(args) => {
            let (version, _) = super::source_of(args.device.as_deref(), &args.source, backend)?;
            let expr = selector(&registry.requirement(&version)?).map_err(|e| CliError::Usage(e.to_string()))?;
            writeln!(out, "{expr}").map_err(CliError::Output)?;
            Ok(0)
        }
        DraCommand::Claim { source, name } => {
            let (version, _) = super::source_of(source.device.as_deref(), &source.source, backend)?;
            let expr = selector(&registry.requirement(&version)?).map_err(|e| CliError::Usage(e.to_string()))?;
            let claim = json!({
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": { "name": label(name), "annotations": { "devmig.io/source-version": version } },
                "spec": { "devices": { "requests": [{
                    "name": "target",
                    "exactly": { "deviceClassName": DOMAIN, "selectors": [{ "cel": { "expression": expr } }] },
                }]}}
            });
            print(out, &claim)?;
            Ok(0)
        }
    }
}
