//! What the bare-metal service's rules answer when they refuse. Only `api/` turns these
//! into HTTP statuses and Ironic's error bodies.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed, or impossible as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Policy refuses it (403).
    #[error("{0}")]
    Forbidden(String),
    /// Absent (404).
    #[error("{0}")]
    NotFound(String),
    /// In the way of something else, or not in a state that allows it (409).
    #[error("{0}")]
    Conflict(String),
    /// The node is being worked on by a conductor (409, Ironic's NodeLocked).
    #[error("Node {0} is locked by host {1}, please retry after the current operation is completed.")]
    Locked(String, String),
    /// The BMC could not be reached or refused (503 for synchronous calls).
    #[error("{0}")]
    Bmc(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, Error>;

pub fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}
