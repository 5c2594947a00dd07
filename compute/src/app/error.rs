//! What the compute service's rules answer when they refuse. Only `api/` turns these
//! into HTTP statuses and Nova's error bodies (`crate::api::error`); the app layer
//! speaks of what went wrong, not of HTTP.

/// A refusal or a failure of the compute service's app layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or asks for something impossible (Nova: 400).
    #[error("{0}")]
    BadRequest(String),
    /// Policy or quota refuses it (403).
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist, or the caller may not see it (404).
    #[error("{0}")]
    NotFound(String),
    /// The resource is not in a state that allows it, or changed meanwhile (409).
    #[error("{0}")]
    Conflict(String),
    /// Nova has it; this cloud does not (501).
    #[error("{0}")]
    NotImplemented(String),
    /// A service compute depends on failed (503).
    #[error("A service compute depends on is unavailable: {0}")]
    Unavailable(String),
    /// A refusal from a shared helper that speaks HTTP already (paging, validation).
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
