//! The crate's one error enum.
use thiserror::Error;

/// What reading or rewriting a domain's XML can fail with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LibvirtError {
    /// The XML is not well-formed.
    #[error("the domain XML is not well-formed at byte {position}: {detail}")]
    Xml {
        /// Byte offset.
        position: u64,
        /// What the parser said.
        detail: String,
    },
    /// A host device's source address is missing or malformed.
    #[error("hostdev #{index} ({kind}): {detail}")]
    BadHostdev {
        /// Its position among the domain's hostdevs (from 1).
        index: usize,
        /// Its type (`mdev`, `pci`).
        kind: String,
        /// What is wrong.
        detail: String,
    },
    /// A host device has no target in the placement.
    #[error("hostdev #{index} ({device}) has no target in the placement: nothing rewritten")]
    NoTarget {
        /// Its position among the domain's hostdevs (from 1).
        index: usize,
        /// Its source device id.
        device: String,
    },
    /// The target is another kind of device than the source.
    #[error(
        "hostdev #{index} ({device}): its target {target} is not a {kind} device; a rewrite never changes a hostdev's type"
    )]
    KindChange {
        /// Its position among the domain's hostdevs (from 1).
        index: usize,
        /// Its source device id.
        device: String,
        /// The target given.
        target: String,
        /// The hostdev's type.
        kind: String,
    },
}
