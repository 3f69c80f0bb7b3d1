//! The one short hash the vendor crate writes into names (Placement traits, DRA attributes).
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

/// The first `len` (at most 64) lower-case hex digits of the SHA-256 of `s`.
pub(crate) fn sha256_hex(s: &str, len: usize) -> String {
    let mut out = String::with_capacity(64);
    for b in Sha256::digest(s.as_bytes()) {
        let _ = write!(out, "{b:02x}");
    }
    out.truncate(len);
    out
}
