//! The `migration_version` protocol: exactly what the kernel expects.
use std::path::Path;

use devmig_vendors::{MAX_VERSION_LEN, is_valid_version_string};

use crate::{CoreError, IoFailure, SysfsIo};

/// The attribute's file name.
pub const MIGRATION_VERSION: &str = "migration_version";

/// Drops one trailing `\n` (what `show()` appends and `sysfs_streq` ignores).
pub fn strip_one_newline(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\n").unwrap_or(b)
}

/// Checks that `s` may be written: non-empty printable ASCII of at most 4095 bytes.
pub fn validate_version(s: &str) -> Result<(), CoreError> {
    if is_valid_version_string(s) {
        return Ok(());
    }
    let why = if s.is_empty() {
        "it is empty".to_string()
    } else if s.len() > MAX_VERSION_LEN {
        format!("it is {} bytes, the limit is {MAX_VERSION_LEN}", s.len())
    } else {
        let (i, c) = s.char_indices().find(|(_, c)| !(' '..='~').contains(c)).unwrap_or((0, '?'));
        format!("byte {i} is {c:?}; only printable ASCII (space to '~') may be written")
    };
    Err(CoreError::InvalidVersion(why))
}

/// Why reading a version failed.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The read syscall failed or timed out.
    Io(IoFailure),
    /// The driver returned something that is not a version string.
    Invalid(String),
}

/// One read of the attribute; one trailing newline stripped; validated.
pub(crate) fn read_version(io: &SysfsIo, attr: &Path) -> Result<String, ReadFailure> {
    let bytes = io.read(attr).map_err(ReadFailure::Io)?;
    let text = std::str::from_utf8(strip_one_newline(&bytes)).map_err(|_| ReadFailure::Invalid("not ASCII".into()))?;
    validate_version(text).map_err(|e| ReadFailure::Invalid(e.to_string()))?;
    Ok(text.to_string())
}

/// One write of the string, no newline: accepted when the kernel took it all.
pub(crate) fn write_version(io: &SysfsIo, attr: &Path, version: &str) -> Result<(), IoFailure> {
    io.write(attr, version.as_bytes())
}
