//! The vendor driver's half of the `migration_version` interface.
//!
//! A [`VendorModel`] produces a device's version string, decides whether a
//! source string is accepted by a target device (with a structured reason
//! when it is not), derives the typed step-a [`Attributes`] of a device and
//! derives from a source string the [`Requirement`] that a target's
//! attributes must meet. The crate does no I/O: device facts come in as
//! [`DeviceFacts`], product knowledge comes from a [`Catalog`].
//!
//! The **soundness law** every model keeps (and the property tests check):
//! whenever a model accepts source `S` on target `T`, `T`'s attributes
//! satisfy the requirement derived from `S` — so a pre-filter built on
//! requirements never hides a target the vendor check would accept.
//!
//! ```
//! use devmig_vendors::{Catalog, DeviceFacts, Registry};
//! let registry = Registry::new(Catalog::embedded());
//! let target = DeviceFacts::mdev("0000:00:02.0", "8086:591d", "i915", Some("1.2.0"), "i915-GVTg_V5_4", 2);
//! let decision = registry.evaluate("i915-v1.1.0-8086-591d-i915-GVTg_V5_8-4", &target).unwrap();
//! assert!(decision.accepted());
//! ```
#![deny(missing_docs)]

mod attributes;
mod catalog;
mod decision;
pub mod described;
mod digest;
pub mod dra;
mod driver_version;
mod error;
mod facts;
mod model;
pub mod models;
mod pci_id;
pub mod placement_traits;
mod registry;
mod variant_catalog;

pub use attributes::{AttrValue, Attributes, Constraint, Requirement, Unmet};
pub use catalog::{
    Catalog, GvtCatalog, GvtType, IdRule, ManagerRule, MttyCatalog, NvidiaBoard, NvidiaCatalog, NvidiaNever,
    NvidiaType, NvmeCatalog, QatCatalog, QatFamily,
};
pub use decision::{Decision, FieldCheck};
pub(crate) use decision::{Outcome, first_failure};
pub use described::{AttributeSource, Described, OPAQUE_MODEL};
pub use driver_version::DriverVersion;
pub use error::VendorError;
pub use facts::{DeviceFacts, FactsKind};
pub use model::VendorModel;
pub use pci_id::PciId;
pub use registry::Registry;
pub use variant_catalog::{AtResume, FactRule, VariantCatalog, VariantDriver, VariantFact, VariantRequirement};

/// Longest version string the interface carries (the kernel's PATH_MAX minus the NUL).
pub const MAX_VERSION_LEN: usize = 4095;

/// True when `s` may travel through a `migration_version` attribute:
/// non-empty, printable ASCII (space to `~`), at most [`MAX_VERSION_LEN`] bytes.
pub fn is_valid_version_string(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_VERSION_LEN && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}
