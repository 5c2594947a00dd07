//! The bare-metal app layer's errors as HTTP, in Ironic's error body; internal causes
//! are logged, not shown.

use crate::app::Error;
use axum::http::StatusCode;
use stratus_common::http::ApiError;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) | Error::Locked(..) => StatusCode::CONFLICT,
            Error::Bmc(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Database(db) => return ApiError::internal_from(db),
            Error::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "baremetal request failed");
                return ApiError::internal();
            }
        };
        ApiError::new(status, e.to_string())
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
            (Error::Locked("n".into(), "h".into()), 409),
            (Error::Bmc("unreachable".into()), 503),
            (Error::Internal(anyhow::anyhow!("secret detail")), 500),
        ] {
            let api = ApiError::from(e);
            assert_eq!(api.status.as_u16(), status);
            assert!(!api.message.contains("secret"));
        }
    }
}
