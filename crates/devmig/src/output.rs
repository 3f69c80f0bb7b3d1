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

/// `1 host`, `2 hosts` (`thing` in the singular; `-es` after s, x, ch, sh).
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        return format!("1 {thing}");
    }
    let es = ["s", "x", "ch", "sh"].iter().any(|e| thing.ends_with(e));
    format!("{n} {thing}{}", if es { "es" } else { "s" })
}

/// A past moment (ms since the epoch) as a duration before now: `42s ago`, `3m 5s ago`.
pub fn ago(ms: i64) -> String {
    let now = devmig_fleet::now_ms();
    let secs = u64::try_from((now - ms).max(0) / 1000).unwrap_or(0);
    if secs == 0 {
        return "just now".into();
    }
    format!("{} ago", humantime::format_duration(std::time::Duration::from_secs(secs)))
}

/// A moment (ms since the epoch) as a UTC date and time: `2026-12-04T14:10:00Z`.
pub fn date(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A future moment (ms since the epoch) as the time left and the date: `in 9m 58s (2026-...Z)`,
/// or how long ago it passed.
pub fn until(ms: i64) -> String {
    let now = devmig_fleet::now_ms();
    let secs = u64::try_from((ms - now).max(0) / 1000).unwrap_or(0);
    if ms <= now {
        return format!("passed {} ({})", ago(ms), date(ms));
    }
    format!("in {} ({})", humantime::format_duration(std::time::Duration::from_secs(secs)), date(ms))
}
