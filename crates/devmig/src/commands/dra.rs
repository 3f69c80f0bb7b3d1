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

/// The ResourceSlices of `node`'s `devices`: at most [`PER_SLICE`] devices each, one pool.
fn slice_documents(node: &str, devices: &[Value]) -> Vec<Value> {
    let chunks: Vec<&[Value]> = if devices.is_empty() { vec![&[]] } else { devices.chunks(PER_SLICE).collect() };
    let count = chunks.len();
    let pool = label(node);
    chunks
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
        .collect()
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
                        let why = format!("device {} cannot be read now: no slices written, try again", dev.id);
                        return Err(CliError::Io { what: why.clone(), source: std::io::Error::other(why) });
                    }
                    _ => {}
                }
                let report = backend.attributes(&dev.id)?;
                let attrs =
                    attributes(&report.attributes).map_err(|e| CliError::Usage(format!("device {}: {e}", dev.id)))?;
                let attrs: serde_json::Map<String, Value> = attrs.iter().map(|(k, v)| (k.clone(), value(v))).collect();
                devices.push(json!({ "name": label(&dev.id.to_string()), "attributes": attrs }));
            }
            let mut names = std::collections::BTreeSet::new();
            if let Some(d) = devices.iter().find(|d| !names.insert(d["name"].as_str().unwrap_or_default().to_string()))
            {
                return Err(CliError::Usage(format!("two devices share the DRA name {}", d["name"])));
            }
            let slices = slice_documents(&node, &devices);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_hold_at_most_128_devices_of_one_pool() {
        let devices: Vec<Value> = (0..300).map(|i| json!({ "name": format!("d{i}"), "attributes": {} })).collect();
        let slices = slice_documents("Node-1", &devices);
        let sizes: Vec<usize> = slices.iter().map(|s| s["spec"]["devices"].as_array().map_or(0, Vec::len)).collect();
        assert_eq!(sizes, [128, 128, 44]);
        assert!(
            slices
                .iter()
                .all(|s| s["spec"]["pool"]["resourceSliceCount"] == 3 && s["spec"]["pool"]["name"] == "node-1")
        );
        assert_eq!(slices[2]["metadata"]["name"], "node-1-devmig-2");
        assert_eq!(slice_documents("n", &[]).len(), 1, "an empty pool is still published (it says: no devices)");
        assert_eq!(label("0000:00:02.0/i915-GVTg_V5_4"), "0000-00-02-0-i915-gvtg-v5-4");
        assert_eq!(label(&"x".repeat(80)).len(), 63);
    }
}
