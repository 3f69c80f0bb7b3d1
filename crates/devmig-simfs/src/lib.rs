//! simfs: a FUSE emulation of the kernel's sysfs device tree, driven by devmig's vendor models.
//!
//! A [`HostSpec`] (TOML) describes a host's devices; [`HostSpec::build`]
//! lays the tree out exactly as the kernel does (through
//! `devmig_core::tree::TreeBuilder`) into an in-memory [`Nodes`] tree and
//! wraps it in a [`Host`], which implements the sysfs semantics without
//! FUSE: `migration_version` shown and judged by the vendor models, one
//! write(2) judged alone, `create`/`remove`/`available_instances`, faults.
//! [`mount`] serves a host through the kernel's FUSE driver with `fuser`.
#![deny(missing_docs)]

mod busy_poll;
mod error;
mod fuse;
pub mod host;
mod mount;
pub mod nodes;
mod pci;
pub mod probe;
mod shape;
pub mod spec;
mod vgpu;

pub use error::SimError;
pub use host::Host;
pub use mount::{MountOptions, Mounted, detach_stale, mount, mount_with};
pub use nodes::Nodes;
pub use spec::HostSpec;
