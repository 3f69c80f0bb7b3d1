//! devmig core: device discovery under any sysfs root and the
//! `migration_version` protocol, with verdicts that say why.
//!
//! The flow is discover -> version -> (pre-filter) -> verify: [`discover`]
//! builds an [`Inventory`] of PCI functions, mdev types and mdevs under a
//! [`SysfsRoot`]; a [`Checker`] reads a source's version string (from the
//! kernel attribute, or from the vendor model where the kernel lacks it),
//! writes it into the target the way the kernel expects and returns a
//! [`CheckReport`] with a [`Verdict`] and machine-readable [`Reason`]s.
//! Every sysfs operation runs under a timeout ([`SysfsIo`]); an error or a
//! timeout is never reported as compatible.
#![deny(missing_docs)]

mod check;
mod device;
mod discovery;
mod errno;
mod error;
mod id;
mod io;
mod matching;
mod protocol;
mod root;
pub mod tree;
mod verdict;
pub mod vf_vgpu;

pub use check::{AttributesReport, Checker, FastCheck, Provenance, Refusal, VersionReport};
pub use device::{Device, DeviceKind, Migration, MigrationSupport, PciInfo, Sriov};
pub use discovery::{Inventory, discover};
pub use errno::errno_name;
pub use error::{CoreError, error_chain};
pub use id::{DeviceId, PciAddress};
pub use io::{IoFailure, JobGuard, Submitted, SysfsIo};
pub use matching::{MatchCandidate, MatchContext, MatchReport, StepA, Unusable};
pub use protocol::{MIGRATION_VERSION, strip_one_newline, validate_version};
pub use root::SysfsRoot;
pub use verdict::{CheckReport, Reason, ReasonCode, Side, Verdict};

/// Default bound on one sysfs operation.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
