//! The errors every port shares: a backend's, and a configuration's.

/// Errors from a backend. `Conflict` is a uniqueness clash the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type PortResult<T> = Result<T, PortError>;

/// A configuration that cannot be used, said in one line that names the setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
