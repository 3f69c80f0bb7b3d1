//! `list` and `show`.
use std::io::Write;

use devmig_core::{Device, MigrationSupport};

use crate::backend::Backend;
use serde::Serialize;

use crate::cli::Output;
use crate::error::CliError;
use crate::output::{fields, json, or_dash, table};

/// The migration column: `kernel`, `model:<name>` or `none`.
pub fn migration_cell(d: &Device) -> String {
    match (d.migration.support, &d.migration.model) {
        (MigrationSupport::Kernel, _) => "kernel".into(),
        (MigrationSupport::Model, Some(m)) => format!("model:{m}"),
        (MigrationSupport::Model, None) => "model".into(),
        (MigrationSupport::None, _) => "none".into(),
        (MigrationSupport::Unknown, _) => "unknown".into(),
    }
}

fn kind_cell(d: &Device) -> String {
    serde_json::to_value(d.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// `devmig list`.
pub fn list(backend: &Backend, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let inv = backend.inventory()?;
    if output == Output::Json {
        json(out, "devmig.list/v1", &inv)?;
        return Ok(0);
    }
    let rows = inv.devices.iter().map(|d| {
        let what = match (&d.pci, &d.mdev_type, &d.parent) {
            (Some(p), _, _) => p.id.clone(),
            (None, Some(t), _) => t.clone(),
            (None, None, Some(p)) => format!("of {p}"),
            _ => "-".into(),
        };
        let mut note = Vec::new();
        if let Some(pf) = &d.physfn {
            note.push(format!("VF of {pf}"));
        }
        if let Some(s) = &d.sriov {
            note.push(format!("{}/{} VFs", s.num_vfs, s.total_vfs));
        }
        if !d.mdev_types.is_empty() {
            note.push(format!("mdev parent ({})", crate::output::plural(d.mdev_types.len(), "type")));
        }
        if let Some(n) = d.available_instances {
            note.push(format!("{n} available"));
        }
        if let Some(a) = d.aggregator {
            note.push(format!("x{a}"));
        }
        if !d.problems.is_empty() {
            note.push(format!("{} problem(s)", d.problems.len()));
        }
        vec![
            d.id.to_string(),
            kind_cell(d),
            what,
            or_dash(d.driver.as_ref()),
            or_dash(d.driver_version.as_ref()),
            migration_cell(d),
            note.join(", "),
        ]
    });
    table(out, &["DEVICE", "KIND", "ID/TYPE", "DRIVER", "VERSION", "MIGRATION", "NOTES"], rows)?;
    for p in &inv.problems {
        writeln!(out, "problem: {p}").map_err(crate::output::write_err)?;
    }
    Ok(0)
}

#[derive(Serialize)]
struct ShowJson<'a> {
    device: &'a Device,
}

/// `devmig show DEVICE`.
pub fn show(backend: &Backend, device: &str, output: Output, out: &mut dyn Write) -> Result<i32, CliError> {
    let (backend, id) = super::device_on(device, backend, true)?;
    let d = backend.device(&id)?;
    if output == Output::Json {
        json(out, "devmig.show/v1", &ShowJson { device: &d })?;
        return Ok(0);
    }
    let mut rows: Vec<(&str, String)> = vec![("device", d.id.to_string()), ("kind", kind_cell(&d))];
    if let Some(p) = &d.pci {
        rows.push(("pci id", p.id.clone()));
        rows.push(("subsystem", or_dash(p.subsystem_id.as_ref())));
        rows.push(("class", or_dash(p.class.as_ref())));
        rows.push(("revision", or_dash(p.revision.as_ref())));
    }
    rows.push(("driver", or_dash(d.driver.as_ref())));
    rows.push(("module", or_dash(d.driver_module.as_ref())));
    rows.push(("module version", or_dash(d.driver_version.as_ref())));
    let optional: [(&str, Option<String>); 9] = [
        ("iommu group", d.iommu_group.map(|g| g.to_string())),
        ("physfn", d.physfn.clone()),
        ("sriov", d.sriov.as_ref().map(|s| format!("{}/{} VFs: {}", s.num_vfs, s.total_vfs, s.vfs.join(" ")))),
        ("mdev types", (!d.mdev_types.is_empty()).then(|| d.mdev_types.join(" "))),
        ("parent", d.parent.clone()),
        ("mdev type", d.mdev_type.clone()),
        ("name", d.name.clone()),
        ("available", d.available_instances.map(|n| n.to_string())),
        ("aggregator", d.aggregator.map(|n| n.to_string())),
    ];
    rows.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
    if let Some(desc) = &d.description {
        rows.push(("description", desc.clone()));
    }
    if let Some(api) = &d.device_api {
        rows.push(("device api", api.clone()));
    }
    rows.push(("migration", migration_cell(&d)));
    if let Some(detail) = &d.migration.detail {
        rows.push(("migration detail", detail.clone()));
    }
    for p in &d.problems {
        rows.push(("problem", p.clone()));
    }
    fields(out, &rows)?;
    Ok(0)
}
