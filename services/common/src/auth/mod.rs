//! Authentication shared by every service: token claims, local verification, and the
//! middleware and extractor that hand handlers an [`AuthContext`].

pub mod service_token;
pub mod token;
pub mod verifier;

pub use token::{NamedRef, Revocation, Scope, TokenClaims};
pub use verifier::{HttpKeySource, KeySource, TokenVerifier, VerifyError};

use crate::http::ApiError;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// Who is calling: the verified claims of the request's token.
#[derive(Debug, Clone)]
pub struct AuthContext {
    pub claims: Arc<TokenClaims>,
    pub token: Arc<str>,
}

impl AuthContext {
    pub fn user_id(&self) -> &str {
        &self.claims.sub
    }
    pub fn project_id(&self) -> Option<&str> {
        self.claims.project_id()
    }
    pub fn domain_id(&self) -> Option<&str> {
        match &self.claims.scope {
            Scope::Domain { id, .. } => Some(id),
            _ => None,
        }
    }
    pub fn is_system(&self) -> bool {
        matches!(self.claims.scope, Scope::System)
    }
    pub fn has_role(&self, name: &str) -> bool {
        self.claims.has_role(name)
    }
    /// Keystone's default `admin_required`: the admin role on any scope.
    pub fn is_admin(&self) -> bool {
        self.has_role("admin")
    }
    /// May read: admin, member or reader (member and admin imply reader).
    pub fn is_reader(&self) -> bool {
        self.has_role("reader") || self.has_role("member") || self.is_admin()
    }
}

/// Why the request's token was not accepted, kept for the extractor to report.
#[derive(Debug, Clone)]
struct AuthFailure(VerifyError);

/// Verifies `X-Auth-Token` when present. A valid token puts an [`AuthContext`] in the
/// request; an invalid one is remembered, and handlers that need a caller answer 401.
/// Handlers that need no caller (version documents, password login) run either way.
pub async fn authenticate(State(verifier): State<Arc<TokenVerifier>>, mut req: Request, next: Next) -> Response {
    let token = req.headers().get(AUTH_TOKEN_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(token) = token {
        match verifier.verify(&token).await {
            Ok(claims) => {
                tracing::Span::current().record("user_id", claims.sub.as_str());
                req.extensions_mut().insert(AuthContext { claims: Arc::new(claims), token: token.into() });
            }
            Err(e) => {
                req.extensions_mut().insert(AuthFailure(e));
            }
        }
    }
    next.run(req).await
}

impl<S: Send + Sync> FromRequestParts<S> for AuthContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ctx) = parts.extensions.get::<AuthContext>() {
            return Ok(ctx.clone());
        }
        match parts.extensions.get::<AuthFailure>() {
            Some(AuthFailure(e)) => Err(ApiError::unauthorized(e.to_string())),
            None => Err(ApiError::unauthorized("The request you have made requires authentication.")),
        }
    }
}

/// The caller, if the request carried a valid token.
pub struct MaybeAuth(pub Option<AuthContext>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeAuth {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeAuth(parts.extensions.get::<AuthContext>().cloned()))
    }
}
