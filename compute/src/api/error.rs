//! The compute app layer's errors as HTTP: the status and the message Nova's error
//! body carries (the body itself is written by the shared error renderer).

use crate::app::Error;
use axum::http::StatusCode;
use stratus_common::http::ApiError;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Http(e) => return e.clone(),
            Error::Database(db) => return ApiError::internal_from(db),
            Error::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "compute request failed");
                return ApiError::internal();
            }
        };
        ApiError::new(status, e.to_string())
    }
}

/// A 400 from a handler (parsing the request).
pub(crate) fn bad(message: impl Into<String>) -> ApiError {
    crate::app::bad(message).into()
}

/// A 404 from a handler.
pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
    crate::app::not_found(message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_status_and_message() {
        for (e, status) in [
            (Error::BadRequest("b".into()), 400),
            (Error::Forbidden("f".into()), 403),
            (Error::NotFound("n".into()), 404),
            (Error::Conflict("c".into()), 409),
            (Error::NotImplemented("x".into()), 501),
            (Error::Unavailable("u".into()), 503),
            (Error::Internal(anyhow::anyhow!("secret detail")), 500),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status);
            assert!(!api.message.contains("secret"), "internal details stay in the log");
        }
    }
}
