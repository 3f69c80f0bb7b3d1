//! The crate's one error enum.
use thiserror::Error;

/// What talking to Placement or mapping devices onto it can fail with.
#[derive(Debug, Error)]
pub enum OpenStackError {
    /// Placement could not be reached (connection, TLS, timeout).
    #[error("placement at {base} is unreachable: {detail}")]
    Unreachable {
        /// The base URL.
        base: String,
        /// What failed.
        detail: String,
    },
    /// Placement answered with a status the call does not expect.
    #[error("placement answered {method} {path} with {status}: {body}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The start of the body Placement sent (its error text).
        body: String,
    },
    /// Placement's body is not what its API reference describes.
    #[error("placement answered {path} with a body devmig cannot read: {detail}")]
    BadBody {
        /// Request path.
        path: String,
        /// The parse error.
        detail: String,
    },
    /// Others kept changing a provider's traits: every bounded retry met a generation conflict.
    #[error("provider {provider}: {attempts} attempts met a generation conflict (409); try again later")]
    Conflicts {
        /// Provider name.
        provider: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A bad setting (URL, token, node name, a device's source).
    #[error("{0}")]
    Config(String),
}
