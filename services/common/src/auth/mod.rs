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

    /// Whose figures (usage, metering) the caller reads when asking for `only`:
    /// `Some(project)` for one project — the one asked for, if it is the caller's own
    /// or the caller is an admin, else the caller's own — or `None` for every project
    /// (an admin asking for none). `Err(())` when the caller may not: another project's
    /// without being an admin, or no project of their own (a domain-scoped token).
    #[allow(clippy::result_unit_err)]
    pub fn readable_project(&self, only: Option<&str>) -> Result<Option<String>, ()> {
        match only {
            Some(p) if self.is_admin() || self.project_id() == Some(p) => Ok(Some(p.to_string())),
            Some(_) => Err(()),
            None if self.is_admin() => Ok(None),
            None => self.project_id().map(|p| Some(p.to_string())).ok_or(()),
        }
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

#[cfg(test)]
mod readable_tests {
    use super::token::{NamedRef, Scope, TokenClaims, TokenUser};
    use super::AuthContext;
    use std::sync::Arc;

    fn ctx(scope: Scope, role: &str) -> AuthContext {
        let r = |n: &str| NamedRef { id: n.into(), name: n.into() };
        let claims = TokenClaims {
            sub: "u".into(),
            exp: 0,
            iat: 0,
            issued_at: String::new(),
            expires_at: String::new(),
            audit_id: String::new(),
            audit_chain: None,
            user: TokenUser { id: "u".into(), name: "u".into(), domain: r("default") },
            methods: vec!["password".into()],
            scope,
            roles: vec![r(role)],
            app_cred: None,
            oauth1: None,
        };
        AuthContext { claims: Arc::new(claims), token: "t".into() }
    }

    #[test]
    fn figures_are_read_for_ones_own_project_or_by_an_admin() {
        let project = |id: &str| Scope::Project {
            id: id.into(),
            name: id.into(),
            domain: NamedRef { id: "d".into(), name: "d".into() },
        };
        let member = ctx(project("p1"), "member");
        assert_eq!(member.readable_project(None), Ok(Some("p1".into())));
        assert_eq!(member.readable_project(Some("p1")), Ok(Some("p1".into())));
        assert_eq!(member.readable_project(Some("p2")), Err(()));
        let admin = ctx(project("admin"), "admin");
        assert_eq!(admin.readable_project(None), Ok(None), "every project");
        assert_eq!(admin.readable_project(Some("p2")), Ok(Some("p2".into())));
        // A domain-scoped member has no project of their own: nothing, never everything.
        let domain = ctx(Scope::Domain { id: "d".into(), name: "d".into() }, "member");
        assert_eq!(domain.readable_project(None), Err(()));
    }
}
