//! devmig's wire contract, shared by the agent, the fleet, the CLI and the benchmarks: every
//! request and response body that crosses HTTP, the ids validated once by one rule each, the
//! problem document both services answer errors with, and one typed client of the agent.
#![deny(missing_docs)]

pub mod client;
pub mod error;
pub mod fleet;
pub mod ids;
pub mod problem;
pub mod schema;
pub mod wire;

pub use client::AgentClient;
pub use error::ApiError;
pub use ids::{HostName, MigrationId, Ttl, segment, valid_host_name, valid_identity};
pub use problem::Problem;
pub use wire::{
    CheckBody, Claim, ClaimList, ClaimRequest, ClaimState, ClaimTarget, DeviceRecord, HostReport, MatchBody,
};
