//! The fleet tests use devmig-testkit's fleet labs; these are the names they know them by.
#![allow(unused_imports)]
pub use devmig_testkit::fleet_lab::{
    ADMIN_SECRET, AGENT_SECRET, Backend, Lab, PgCluster, READ_SECRET, REPORT_SECRET, agent_tokens, fleet_tokens,
    get_json, lab, look_for, options, report_token,
};
