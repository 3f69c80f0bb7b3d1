//! The devmig host agent: the destination-side service a management stack
//! calls to check a source version against local devices and to claim a
//! target atomically (one per host).
#![deny(missing_docs)]

pub mod api;
pub mod claims;
pub mod error;
pub mod fleet_link;
pub mod identity;
pub mod keyed_locks;
pub mod metrics;
pub mod report;
pub mod server;
pub mod service;
pub mod serving;
pub mod tls;
pub mod tokens;

pub use error::AgentError;
pub use fleet_link::FleetLink;
pub use report::{DeviceRecord, HostReport};
pub use server::{AgentConfig, run};
pub use service::{Agent, AgentOptions, ClaimRequest, ClaimTarget};
pub use tokens::{Caller, Denied, Scope, Tokens, valid_host_name};
