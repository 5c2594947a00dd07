//! The metadata API guests read (Nova's, on its own port, 8775 by default). Guests
//! never reach it directly: the network agent's proxy at 169.254.169.254 identifies
//! the guest by the network and source address of the request and forwards it with
//! `X-Instance-ID`, `X-Tenant-ID` and `X-Instance-ID-Signature` (HMAC-SHA256 of the
//! instance id with the shared secret). A request without a valid signature gets 403,
//! one naming a server that is gone or of another project 404.

pub mod content;

use crate::app::guest_metadata::PasswordPost;
use crate::ComputeService;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use content::{Metadata, EC2_VERSIONS, OPENSTACK_VERSIONS, PASSWORD_MAX};
use std::sync::Arc;

#[derive(Clone)]
struct Ctx {
    service: Arc<ComputeService>,
    key: Arc<ring::hmac::Key>,
}

/// The metadata API's routes; `secret` is the proxy's shared secret.
pub fn router(service: Arc<ComputeService>, secret: &str) -> Router {
    let key = Arc::new(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()));
    Router::new().fallback(handle).with_state(Ctx { service, key })
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [("content-type", "text/plain; charset=UTF-8")], body.into()).into_response()
}

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 Not Found\n\nThe resource could not be found.\n")
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Whether the signature is the shared secret's HMAC of the instance id (checked in
/// constant time).
fn signed(key: &ring::hmac::Key, instance: &str, signature: &str) -> bool {
    hex(signature).is_some_and(|sig| ring::hmac::verify(key, instance.as_bytes(), &sig).is_ok())
}

async fn handle(State(ctx): State<Ctx>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // The one thing a guest writes: its password, which its agent posts once.
    let posts_password = matches!(segments.as_slice(), ["openstack", v, "password"] if OPENSTACK_VERSIONS.contains(v));
    if method != Method::GET && method != Method::HEAD && !(method == Method::POST && posts_password) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Only GET and HEAD are allowed, and POST of a password.\n");
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let (instance, tenant, signature) =
        (header("x-instance-id"), header("x-tenant-id"), header("x-instance-id-signature"));
    if instance.is_empty() || tenant.is_empty() {
        return text(StatusCode::BAD_REQUEST, "X-Instance-ID and X-Tenant-ID are required.\n");
    }
    if !signed(&ctx.key, &instance, &signature) {
        tracing::warn!(%instance, from = %header("x-forwarded-for"), "metadata request with a bad signature");
        return text(StatusCode::FORBIDDEN, "Invalid proxy request signature.\n");
    }
    if method == Method::POST {
        let Ok(password) = std::str::from_utf8(&body) else {
            return text(StatusCode::BAD_REQUEST, "The password is not UTF-8 text.\n");
        };
        return match ctx.service.guest_password_post(&instance, &tenant, password).await {
            Ok(Some(PasswordPost::Stored)) => text(StatusCode::OK, ""),
            Ok(Some(PasswordPost::AlreadySet)) => text(StatusCode::CONFLICT, "A password is set already.\n"),
            Ok(Some(PasswordPost::TooLong)) => {
                text(StatusCode::BAD_REQUEST, format!("A password is at most {PASSWORD_MAX} bytes.\n"))
            }
            Ok(None) => not_found(),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("Metadata is unavailable: {e:#}\n")),
        };
    }
    let md = match ctx.service.guest_metadata(&instance, &tenant).await {
        Ok(Some(md)) => md,
        Ok(None) => return not_found(),
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, format!("Metadata is unavailable: {e:#}\n")),
    };
    respond(&md, &segments).unwrap_or_else(not_found)
}

/// Routes a path: `/` (EC2 versions), `/openstack[/<version>[/<file>]]`,
/// `/<ec2 version>[/user-data | /meta-data/...]`.
fn respond(md: &Metadata, segments: &[&str]) -> Option<Response> {
    let ok = |body: String| text(StatusCode::OK, body);
    match segments {
        [] | [""] => Some(ok(EC2_VERSIONS.join("\n"))),
        ["openstack"] | ["openstack", ""] => Some(ok(OPENSTACK_VERSIONS.join("\n"))),
        ["openstack", version, rest @ ..] if OPENSTACK_VERSIONS.contains(version) => match rest {
            [] | [""] => Some(ok(md.openstack_files().join("\n"))),
            [file] => {
                let (ct, body) = md.openstack_file(file)?;
                Some((StatusCode::OK, [("content-type", ct)], body).into_response())
            }
            _ => None,
        },
        [version, rest @ ..] if EC2_VERSIONS.contains(version) => match rest {
            [] | [""] => {
                let mut entries = vec!["meta-data/"];
                if md.user_data.is_some() {
                    entries.push("user-data");
                }
                Some(ok(entries.join("\n")))
            }
            ["user-data"] => md
                .user_data
                .clone()
                .map(|u| (StatusCode::OK, [("content-type", "application/octet-stream")], u).into_response()),
            ["meta-data", tree @ ..] => md.ec2_path(tree).map(ok),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let good = "fac450cbc556373851e9f5755126936b598b1749a007d96b7e0b7f1a5cd274e9";
        assert!(signed(&key, "instance", good));
        assert!(!signed(&key, "other", good));
        assert!(!signed(&key, "instance", "zz"));
        assert!(!signed(&key, "instance", ""));
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"not-the-secret");
        assert!(!signed(&other, "instance", good));
    }
}
