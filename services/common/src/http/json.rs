//! A JSON body extractor whose errors name the field that is wrong.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but malformed JSON, a wrong type or an unknown enum value gives a
/// 400 whose message names the field (`Invalid input for field 'user.enabled': ...`),
/// and a body over the limit a 413, both as [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large("Request body is too large.")
            } else {
                ApiError::bad_request(rej.body_text())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a request body, naming the field on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::bad_request("A request body is required."));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::bad_request(format!("Malformed request body: {inner}."))
        } else {
            ApiError::bad_request(format!("Invalid input for field '{path}': {inner}."))
        }
    })
}

/// The object inside `{"<key>": {...}}`, the request shape of Nova and Neutron.
pub fn wrapped(body: serde_json::Value, key: &str) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match body {
        serde_json::Value::Object(mut m) => match m.remove(key) {
            Some(serde_json::Value::Object(inner)) => Ok(inner),
            Some(_) => Err(ApiError::bad_request(format!("Invalid input: {key} must be an object."))),
            None => Err(ApiError::bad_request(format!("Resource body required: {{\"{key}\": {{...}}}}."))),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        user: User,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct User {
        name: String,
        enabled: Option<bool>,
        kind: Option<Kind>,
    }
    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        A,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<Body>(br#"{"user": {"name": "x", "enabled": "yes"}}"#).unwrap_err();
        assert!(e.message.contains("'user.enabled'"), "{}", e.message);
        let e = parse_json::<Body>(br#"{"user": {"name": "x", "kind": "b"}}"#).unwrap_err();
        assert!(e.message.contains("'user.kind'") && e.message.contains("unknown variant"), "{}", e.message);
        let e = parse_json::<Body>(br#"{"user": {"enabled": true}}"#).unwrap_err();
        assert!(e.message.contains("name"), "{}", e.message);
        let e = parse_json::<Body>(b"{nope").unwrap_err();
        assert!(e.message.starts_with("Malformed"), "{}", e.message);
        let e = parse_json::<Body>(b"").unwrap_err();
        assert_eq!(e.status, 400);
    }
}
