//! The reservation app layer's errors as HTTP, in Blazar's flat error body; internal
//! causes are logged, not shown.

use crate::app::Error;
use axum::http::StatusCode;
use stratus_common::http::ApiError;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, kind) = match &e {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, None),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, None),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, None),
            Error::Conflict(_) => (StatusCode::CONFLICT, None),
            Error::NotEnoughHosts(_) => (StatusCode::CONFLICT, Some("NotEnoughHostsAvailable")),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, None),
            Error::Database(db) => return ApiError::internal_from(db),
            Error::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "reservation request failed");
                return ApiError::internal();
            }
        };
        let api = ApiError::new(status, e.to_string());
        match kind {
            Some(k) => api.with_kind(k),
            None => api,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_status_and_internal_causes_stay_hidden() {
        for (e, status) in [
            (Error::BadRequest("b".into()), 400),
            (Error::Forbidden("f".into()), 403),
            (Error::NotFound("n".into()), 404),
            (Error::Conflict("c".into()), 409),
            (Error::NotEnoughHosts("h".into()), 409),
            (Error::Unavailable("u".into()), 503),
            (Error::Internal(anyhow::anyhow!("secret detail")), 500),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status);
            assert!(!api.message.contains("secret"));
        }
    }
}
