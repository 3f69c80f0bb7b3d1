//! Rendering: stable JSON with a schema field, and plain aligned tables.
use std::io::Write;

use comfy_table::{Table, presets::NOTHING};
use serde::Serialize;

use crate::error::CliError;

/// Writes `value` as pretty JSON with sorted keys and `"schema": schema`.
pub fn json(out: &mut dyn Write, schema: &str, value: &impl Serialize) -> Result<(), CliError> {
    let mut v =
        serde_json::to_value(value).map_err(|e| CliError::Io { what: "encoding JSON".into(), source: e.into() })?;
    if let serde_json::Value::Object(map) = &mut v {
        map.insert("schema".into(), serde_json::Value::String(schema.into()));
    }
    let text = serde_json::to_string_pretty(&v)
        .map_err(|e| CliError::Io { what: "encoding JSON".into(), source: e.into() })?;
    writeln!(out, "{text}").map_err(write_err)
}

/// Writes rows under headers as borderless aligned columns.
pub fn table(
    out: &mut dyn Write,
    headers: &[&str],
    rows: impl IntoIterator<Item = Vec<String>>,
) -> Result<(), CliError> {
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(headers.iter().copied());
    for r in rows {
        t.add_row(r);
    }
    let text = t.to_string();
    for line in text.lines() {
        writeln!(out, "{}", line.trim_end()).map_err(write_err)?;
    }
    Ok(())
}

/// Writes `label: value` lines with aligned values.
pub fn fields(out: &mut dyn Write, pairs: &[(&str, String)]) -> Result<(), CliError> {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    for (k, v) in pairs {
        writeln!(out, "{:<width$} {v}", format!("{k}:")).map_err(write_err)?;
    }
    Ok(())
}

/// A line of text.
pub fn line(out: &mut dyn Write, text: impl std::fmt::Display) -> Result<(), CliError> {
    writeln!(out, "{text}").map_err(write_err)
}

/// Maps an output error.
pub fn write_err(e: std::io::Error) -> CliError {
    CliError::Output(e)
}

/// `-` for an absent value.
pub fn or_dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}
