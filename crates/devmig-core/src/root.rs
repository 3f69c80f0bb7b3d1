use std::path::{Path, PathBuf};

/// Where `/sys` hangs: every path devmig touches is joined under one root
/// (`/` on a real host, a mountpoint or temp dir elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsRoot {
    root: PathBuf,
}

impl SysfsRoot {
    /// A root at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SysfsRoot { root: path.into() }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `rel` (like `sys/bus/pci/devices`) under the root. `rel` must be relative.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        self.root.join(rel.strip_prefix("/").unwrap_or(rel))
    }

    /// `path` shown relative to the root, with a leading `/` (`/sys/bus/...`).
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => path.display().to_string(),
        }
    }
}

impl Default for SysfsRoot {
    fn default() -> Self {
        SysfsRoot::new("/")
    }
}
