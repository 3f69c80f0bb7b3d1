//! devmig for OpenStack: step a as Placement traits.
//!
//! Nova schedules with Placement, whose request groups can only require traits. devmig's
//! vendor models say, per target, which sources it may accept
//! ([`devmig_vendors::placement_traits`]); this crate maps a host's devices onto the providers
//! Nova creates for them ([`providers`]), keeps each provider's `CUSTOM_DEVMIG_*` traits equal
//! to its devices' ([`sync`]; an agent's [`link`] does it whenever its devices change) through a
//! small Placement client ([`placement`]), and never touches a trait outside that prefix.
#![deny(missing_docs)]

mod error;
pub mod link;
pub mod placement;
pub mod providers;
pub mod sync;

pub use error::OpenStackError;
pub use link::PlacementLink;
pub use placement::Placement;
pub use providers::{Desired, Target, desired};
pub use sync::Syncer;
