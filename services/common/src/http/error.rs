//! One error type for every handler, rendered in the body shape of the API it serves.
//!
//! Handlers return [`ApiError`]; its response carries an [`ErrorInfo`] extension and no
//! body. The [`render_errors`] middleware, mounted per service with that service's
//! [`ErrorStyle`], writes the body: Keystone's `{"error": {...}}`, Nova's
//! `{"itemNotFound": {...}}`, Neutron's `{"NeutronError": {...}}`. It also dresses the
//! framework's own rejections (unknown route, wrong method, body too large) the same
//! way, so a client never sees a body shape its API does not use.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error a handler returns: a status, a message meant for the caller, and an optional
/// machine-readable type (Neutron's `NetworkInUse`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: Option<&'static str>,
}

/// What [`render_errors`] needs to write an error body.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub message: String,
    pub kind: Option<&'static str>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), kind: None }
    }
    pub fn with_kind(mut self, kind: &'static str) -> Self {
        self.kind = Some(kind);
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// The standard "not found" for a resource kind and id.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("Could not find {what}: {id}."))
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "An unexpected error prevented the server from fulfilling your request.",
        )
    }
    /// Logs the cause once, here, and hides it from the caller.
    pub fn internal_from(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut msg = err.to_string();
        let mut src = err.source();
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        tracing::error!(error = %msg, "internal error");
        Self::internal()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal_from(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status.into_response();
        resp.extensions_mut().insert(ErrorInfo { message: self.message, kind: self.kind });
        resp
    }
}

/// The error body shapes of the OpenStack APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `{"error": {"code", "message", "title"}}`
    Keystone,
    /// `{"badRequest"|"itemNotFound"|...: {"code", "message"}}`
    Nova,
    /// `{"NeutronError": {"type", "message", "detail"}}`
    Neutron,
    /// `{"error_code", "error_message", "error_name"}` (Blazar's, flat)
    Blazar,
    /// `{"error_message": "<JSON text of {faultcode, faultstring, debuginfo}>"}`
    /// (Ironic's: the fault is a JSON document inside a string, which its clients decode)
    Ironic,
}

/// Renders an error body in `style`.
pub fn error_body(style: ErrorStyle, status: StatusCode, message: &str, kind: Option<&str>) -> serde_json::Value {
    let code = status.as_u16();
    let title = status.canonical_reason().unwrap_or("Error");
    match style {
        ErrorStyle::Keystone => json!({"error": {"code": code, "message": message, "title": title}}),
        ErrorStyle::Nova => {
            let key = match code {
                400 => "badRequest",
                401 => "unauthorized",
                403 => "forbidden",
                404 => "itemNotFound",
                405 => "badMethod",
                409 => "conflict",
                413 => "overLimit",
                501 => "notImplemented",
                c if c >= 500 => "computeFault",
                _ => "badRequest",
            };
            json!({key: {"code": code, "message": message}})
        }
        ErrorStyle::Neutron => {
            let default_kind = match code {
                400 => "BadRequest",
                401 => "NotAuthorized",
                403 => "PolicyNotAuthorized",
                404 => "NotFound",
                409 => "Conflict",
                413 => "OverQuota",
                c if c >= 500 => "InternalServerError",
                _ => "BadRequest",
            };
            json!({"NeutronError": {"type": kind.unwrap_or(default_kind), "message": message, "detail": ""}})
        }
        ErrorStyle::Blazar => {
            let default_name = match code {
                400 => "InvalidInput",
                401 => "NotAuthenticated",
                403 => "PolicyNotAuthorized",
                404 => "NotFound",
                405 => "MethodNotAllowed",
                409 => "Conflict",
                c if c >= 500 => "BlazarException",
                _ => "InvalidInput",
            };
            json!({"error_code": code, "error_message": message, "error_name": kind.unwrap_or(default_name)})
        }
        ErrorStyle::Ironic => {
            let fault = json!({"faultcode": if code >= 500 { "Server" } else { "Client" },
                               "faultstring": message, "debuginfo": null});
            json!({"error_message": fault.to_string()})
        }
    }
}

/// Middleware that writes every error response's body in the service's style.
pub async fn render_errors(State(style): State<ErrorStyle>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let (message, kind) = match parts.extensions.remove::<ErrorInfo>() {
        Some(info) => (info.message, info.kind),
        None => {
            let is_json =
                parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return Response::from_parts(parts, body);
            }
            let text = http_body_util::BodyExt::collect(body)
                .await
                .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
                .unwrap_or_default();
            let message = match status {
                StatusCode::NOT_FOUND => "The resource could not be found.".to_string(),
                StatusCode::METHOD_NOT_ALLOWED => "The method is not allowed for the requested URL.".to_string(),
                StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large.".to_string(),
                _ if !text.is_empty() => text,
                _ => status.canonical_reason().unwrap_or("Error").to_string(),
            };
            (message, None)
        }
    };
    let body = error_body(style, status, &message, kind).to_string();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
