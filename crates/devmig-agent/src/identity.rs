//! The agent's identity: a random id generated once in its state dir and sent with every host
//! report, so the fleet can tell apart two agents that claim one host name (two agents started
//! without `--host-name` on machines with one hostname, a reinstalled host, a typo).
use std::io::Write;
use std::path::Path;

use crate::AgentError;

/// The file in the state dir that holds the identity.
pub const FILE: &str = "identity";

pub use devmig_api::valid_identity;

/// Reads the identity from `state_dir`, generating it (a random UUID) on first use. The file
/// appears whole or not at all; a file that is not a valid identity is an error naming it.
pub fn load_or_create(state_dir: &Path) -> Result<String, AgentError> {
    let path = state_dir.join(FILE);
    let bad = |what: String| AgentError::Internal(format!("identity file {}: {what}", path.display()));
    if !path.exists() {
        std::fs::create_dir_all(state_dir).map_err(|e| bad(e.to_string()))?;
        let fresh = uuid::Uuid::new_v4().to_string();
        let tmp = state_dir.join(format!("{FILE}.{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .and_then(|mut f| f.write_all(format!("{fresh}\n").as_bytes()).and_then(|()| f.sync_all()));
        // A hard link never replaces: of two agents starting at once on one state dir, one
        // identity wins and both read it below.
        let linked = written.and_then(|()| match std::fs::hard_link(&tmp, &path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        });
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(|e| bad(e.to_string()))?;
    }
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let id = text.trim_end_matches('\n');
    if !valid_identity(id) {
        return Err(bad("expected one line of 1..64 of [A-Za-z0-9-]".into()));
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_kept_and_bad_files_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let first = load_or_create(dir.path()).expect("create");
        assert!(valid_identity(&first) && first.len() == 36, "{first}");
        assert_eq!(load_or_create(dir.path()).expect("load"), first);
        std::fs::write(dir.path().join(FILE), "not an id!\n").expect("write");
        let e = load_or_create(dir.path()).expect_err("bad file").to_string();
        assert!(e.contains("identity file") && e.contains(FILE), "{e}");
    }
}
