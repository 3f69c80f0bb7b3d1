//! Shared fixtures: example hosts built in temp dirs.
#![allow(dead_code)]
use std::time::Duration;

use devmig_core::tree::{ExampleHost, TreeBuilder, example_host};
use devmig_core::{Checker, DeviceId, SysfsRoot};
use devmig_vendors::{Catalog, Registry};

pub struct Host {
    pub dir: tempfile::TempDir,
    pub checker: Checker,
}

impl Host {
    pub fn builder(&self) -> TreeBuilder {
        TreeBuilder::new(self.dir.path())
    }
}

pub fn empty_host(timeout: Duration) -> Host {
    let dir = tempfile::tempdir().expect("tempdir");
    let checker = Checker::new(SysfsRoot::new(dir.path()), Registry::new(Catalog::embedded()), timeout);
    Host { dir, checker }
}

pub fn host(which: ExampleHost) -> Host {
    let h = empty_host(Duration::from_secs(5));
    example_host(&h.builder(), which).expect("build example host");
    h
}

pub fn id(s: &str) -> DeviceId {
    s.parse().expect("valid id")
}
