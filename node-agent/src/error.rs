//! The agent's error type. Variants map one-to-one onto the gRPC codes forkr-api relays.

use std::path::Path;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the pool reports. Messages are written for end users: forkr-api shows them as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object with that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request itself is malformed (bad name, relative path, hostile tar entry...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request is well formed but the pool's state forbids it now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller may not do this (e.g. a project writing a volume shared by every project).
    #[error("{0}")]
    PermissionDenied(String),
    /// A filesystem call failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A libbtrfsutil call failed.
    #[error("{context}: {source}")]
    Btrfs {
        context: String,
        #[source]
        source: libbtrfsutil::Error,
    },
    /// The fault hook stopped an operation, as a crash would.
    #[error("injected fault at step {step} ({what})")]
    Fault { step: usize, what: String },
}

impl Error {
    /// Stable label per variant, for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "not_found",
            Error::AlreadyExists(_) => "already_exists",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::FailedPrecondition(_) => "failed_precondition",
            Error::PermissionDenied(_) => "permission_denied",
            Error::Io { .. } => "io",
            Error::Btrfs { .. } => "btrfs",
            Error::Fault { .. } => "fault",
        }
    }
}

/// Attaches a human context (usually the path) to io errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: &str, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }
}
