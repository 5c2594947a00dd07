//! What the volume service's rules answer when they refuse. Only `api/` turns these
//! into HTTP statuses and Cinder's error bodies.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed, or impossible as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// Policy refuses it (403).
    #[error("{0}")]
    Forbidden(String),
    /// Over a quota (413, as Cinder answers `VolumeLimitExceeded`).
    #[error("{0}")]
    OverQuota(String),
    /// Absent, or not the caller's to see (404).
    #[error("{0}")]
    NotFound(String),
    /// Not in a state that allows it, or changed meanwhile (409 or, as Cinder does for
    /// most state refusals, 400: see `api::error`).
    #[error("{0}")]
    InvalidState(String),
    /// A service the volume service depends on failed (503).
    #[error("A service the volume service depends on is unavailable: {0}")]
    Unavailable(String),
    /// A refusal from a shared helper that speaks HTTP already.
    #[error("{}", .0.message)]
    Http(stratus_common::http::ApiError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

impl From<stratus_common::http::ApiError> for Error {
    fn from(e: stratus_common::http::ApiError) -> Self {
        Error::Http(e)
    }
}

pub type AppResult<T> = Result<T, Error>;

pub fn bad(message: impl Into<String>) -> Error {
    Error::BadRequest(message.into())
}

pub fn not_found(what: &str, id: &str) -> Error {
    Error::NotFound(format!("{what} {id} could not be found."))
}

pub fn invalid(message: impl Into<String>) -> Error {
    Error::InvalidState(message.into())
}
