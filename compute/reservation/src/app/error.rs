//! What the reservation service's rules answer when they refuse. Only `api/` turns
//! these into HTTP statuses and Blazar's error bodies.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed, or impossible as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Policy refuses it (403).
    #[error("{0}")]
    Forbidden(String),
    /// Absent, or not the caller's to see (404).
    #[error("{0}")]
    NotFound(String),
    /// In the way of something else, or not in a state that allows it (409).
    #[error("{0}")]
    Conflict(String),
    /// Fewer free hosts match than a reservation's minimum (409).
    #[error("{0}")]
    NotEnoughHosts(String),
    /// Compute could not be reached or refused; nothing was changed (503).
    #[error("{0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, Error>;

pub fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}
