//! Issuing, validating and revoking tokens (`/v3/auth/tokens`).
//!
//! Authentication methods: `password`, `token` (re-scoping), `application_credential`
//! and `oauth1` (a consumer's signed request, see [`super::oauth1`]). Scopes: project, domain, system, or none. A user with a
//! default project on which they hold a role gets a token scoped to it when they ask for
//! no scope, as with Keystone.

use super::domains::DEFAULT_DOMAIN_ID;
use super::oauth1::SignedRequest;
use super::policy;
use super::Identity;
use crate::store::{AccessToken, AppCred, Domain, Project, Target, User};
use serde::Deserialize;
use serde_json::{json, Value};
use stratus_common::auth::token::{Scope, TokenAppCred, TokenClaims, TokenOAuth1, TokenUser};
use stratus_common::auth::{AuthContext, NamedRef, Revocation, VerifyError};
use stratus_common::db::{now_text, parse_time, time_text};
use stratus_common::http::metrics::METRICS;
use stratus_common::http::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct AuthRequest {
    pub identity: IdentityRequest,
    #[serde(default)]
    pub scope: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct IdentityRequest {
    pub methods: Vec<String>,
    #[serde(default)]
    pub password: Option<PasswordMethod>,
    #[serde(default)]
    pub token: Option<TokenMethod>,
    #[serde(default)]
    pub application_credential: Option<AppCredMethod>,
}

#[derive(Debug, Deserialize)]
pub struct PasswordMethod {
    pub user: UserRef,
}

#[derive(Debug, Deserialize)]
pub struct UserRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<DomainRef>,
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DomainRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TokenMethod {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct AppCredMethod {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    pub secret: String,
    #[serde(default)]
    pub user: Option<UserRef>,
}

/// A freshly signed token and what it says.
pub struct IssuedToken {
    pub token: String,
    pub claims: TokenClaims,
}

const AUTH_FAILED: &str = "The request you have made requires authentication.";

fn unauthorized() -> ApiError {
    ApiError::unauthorized(AUTH_FAILED)
}

/// What authentication established before scoping.
struct Authenticated {
    user: User,
    methods: Vec<String>,
    app_cred: Option<AppCred>,
    oauth1: Option<AccessToken>,
    parent: Option<TokenClaims>,
}

impl Identity {
    /// `POST /v3/auth/tokens`; `signed` is the request as an OAuth1 consumer signed it.
    pub async fn token_issue(&self, req: AuthRequest, signed: &SignedRequest) -> ApiResult<IssuedToken> {
        let authn = self.authenticate(&req.identity, signed).await?;
        self.issue(authn, req.scope.as_ref()).await
    }

    /// A token for a user of the default domain scoped to one of its projects, issued
    /// without a password: for agents that run in the same process as identity
    /// (all-in-one), which have no password to present. Roles are the user's own.
    pub async fn internal_token(&self, user_name: &str, project_name: &str) -> ApiResult<IssuedToken> {
        let user = self.store.user_fetch_by_name(DEFAULT_DOMAIN_ID, user_name).await?.ok_or_else(unauthorized)?;
        let project =
            self.store.project_fetch_by_name(DEFAULT_DOMAIN_ID, project_name).await?.ok_or_else(unauthorized)?;
        let authn =
            Authenticated { user, methods: vec!["internal".into()], app_cred: None, oauth1: None, parent: None };
        let scope = serde_json::json!({"project": {"id": project.id}});
        self.issue(authn, Some(&scope)).await
    }

    async fn issue(&self, authn: Authenticated, scope_req: Option<&Value>) -> ApiResult<IssuedToken> {
        let user = &authn.user;
        let user_domain = self.store.domain_fetch(&user.domain_id).await?.ok_or_else(unauthorized)?;
        if !user.enabled || !user_domain.enabled {
            return Err(unauthorized());
        }

        // Decide the scope.
        let scope_target = match (&authn.app_cred, scope_req) {
            // An OAuth1 token is scoped by its access token; a scope asked for must be
            // that one.
            _ if authn.oauth1.is_some() => {
                let at = authn.oauth1.as_ref().unwrap();
                if let Some(scope) = scope_req {
                    if !matches!(self.parse_scope(scope).await?, ScopeTarget::Project(ref p) if *p == at.project_id) {
                        return Err(ApiError::unauthorized("An OAuth1 token is scoped to its access token's project."));
                    }
                }
                ScopeTarget::Project(at.project_id.clone())
            }
            (Some(cred), None) => ScopeTarget::Project(cred.project_id.clone()),
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request("An application credential token cannot be re-scoped."))
            }
            (None, Some(scope)) => self.parse_scope(scope).await?,
            (None, None) => match &authn.parent {
                // Re-authenticating with a token keeps its scope.
                Some(p) => match &p.scope {
                    Scope::Project { id, .. } => ScopeTarget::Project(id.clone()),
                    Scope::Domain { id, .. } => ScopeTarget::Domain(id.clone()),
                    Scope::System => ScopeTarget::System,
                    Scope::Unscoped => ScopeTarget::Unscoped,
                },
                None => match &user.default_project_id {
                    Some(pid) if !self.effective_roles(&user.id, &Target::Project(pid.clone())).await?.is_empty() => {
                        ScopeTarget::Project(pid.clone())
                    }
                    _ => ScopeTarget::Unscoped,
                },
            },
        };

        let (scope, target) = match scope_target {
            ScopeTarget::Unscoped => (Scope::Unscoped, None),
            ScopeTarget::System => (Scope::System, Some(Target::System)),
            ScopeTarget::Domain(id) => {
                let d = self.store.domain_fetch(&id).await?.ok_or_else(unauthorized)?;
                if !d.enabled {
                    return Err(unauthorized());
                }
                (Scope::Domain { id: d.id.clone(), name: d.name.clone() }, Some(Target::Domain(d.id)))
            }
            ScopeTarget::Project(id) => {
                let p = self.store.project_fetch(&id).await?.ok_or_else(unauthorized)?;
                let d = self.store.domain_fetch(&p.domain_id).await?.ok_or_else(unauthorized)?;
                if !p.enabled || !d.enabled {
                    return Err(unauthorized());
                }
                (
                    Scope::Project {
                        id: p.id.clone(),
                        name: p.name.clone(),
                        domain: NamedRef { id: d.id, name: d.name },
                    },
                    Some(Target::Project(p.id)),
                )
            }
        };

        let mut roles = match &target {
            Some(t) => self.effective_roles(&user.id, t).await?,
            None => Vec::new(),
        };
        if let Some(cred) = &authn.app_cred {
            roles.retain(|r| cred.roles.iter().any(|c| c.id == r.id));
        }
        if let Some(at) = &authn.oauth1 {
            // The delegated roles the user still holds.
            roles.retain(|r| at.roles.iter().any(|c| c.id == r.id));
        }
        if target.is_some() && roles.is_empty() {
            return Err(ApiError::unauthorized(match &scope {
                Scope::Project { id, .. } => format!("User {} has no access to project {id}.", user.id),
                Scope::Domain { id, .. } => format!("User {} has no access to domain {id}.", user.id),
                _ => format!("User {} has no access to the system.", user.id),
            }));
        }

        let now = chrono::Utc::now();
        let mut expires = now + chrono::Duration::seconds(self.config.token_ttl_secs);
        if let Some(p) = &authn.parent {
            // A token obtained with a token never outlives it.
            if let Some(pe) = parse_time(&p.expires_at) {
                expires = expires.min(pe);
            }
        }
        let delegation_expiry = authn
            .app_cred
            .as_ref()
            .and_then(|c| c.expires_at.as_deref())
            .or_else(|| authn.oauth1.as_ref().and_then(|t| t.expires_at.as_deref()));
        if let Some(exp) = delegation_expiry.and_then(parse_time) {
            expires = expires.min(exp);
        }
        let claims = TokenClaims {
            sub: user.id.clone(),
            exp: expires.timestamp(),
            iat: now.timestamp(),
            issued_at: time_text(now),
            expires_at: time_text(expires),
            audit_id: new_audit_id(),
            audit_chain: authn.parent.as_ref().map(|p| p.audit_chain.clone().unwrap_or_else(|| p.audit_id.clone())),
            user: TokenUser {
                id: user.id.clone(),
                name: user.name.clone(),
                domain: NamedRef { id: user_domain.id.clone(), name: user_domain.name.clone() },
            },
            methods: authn.methods.clone(),
            scope,
            roles: roles.into_iter().map(|r| NamedRef { id: r.id, name: r.name }).collect(),
            app_cred: authn.app_cred.as_ref().map(|c| TokenAppCred {
                id: c.id.clone(),
                name: c.name.clone(),
                restricted: !c.unrestricted,
            }),
            oauth1: authn
                .oauth1
                .as_ref()
                .map(|t| TokenOAuth1 { access_token_id: t.id.clone(), consumer_id: t.consumer_id.clone() }),
        };
        let token = self.keys.sign(&claims).map_err(|e| ApiError::internal_from(e.as_ref()))?;
        METRICS.incr("stratus_identity_tokens_issued_total");
        Ok(IssuedToken { token, claims })
    }

    async fn authenticate(&self, req: &IdentityRequest, signed: &SignedRequest) -> ApiResult<Authenticated> {
        let methods = &req.methods;
        if methods.is_empty() {
            return Err(ApiError::bad_request(
                "Invalid input for field 'auth.identity.methods': it must not be empty.",
            ));
        }
        for m in methods {
            if !["password", "token", "application_credential", "oauth1"].contains(&m.as_str()) {
                return Err(ApiError::unauthorized(format!(
                    "Attempted to authenticate with an unsupported method {m}."
                )));
            }
        }
        if methods.iter().any(|m| m == "oauth1") {
            let at = self.authenticate_oauth1(signed).await?;
            let user = self.store.user_fetch(&at.authorizing_user_id).await?.ok_or_else(unauthorized)?;
            return Ok(Authenticated {
                user,
                methods: vec!["oauth1".into()],
                app_cred: None,
                oauth1: Some(at),
                parent: None,
            });
        }
        if methods.iter().any(|m| m == "application_credential") {
            let ac = req
                .application_credential
                .as_ref()
                .ok_or_else(|| ApiError::bad_request("Missing 'auth.identity.application_credential'."))?;
            return self.authenticate_app_cred(ac).await;
        }
        if methods.iter().any(|m| m == "password") {
            let pm = req.password.as_ref().ok_or_else(|| ApiError::bad_request("Missing 'auth.identity.password'."))?;
            let user = self.authenticate_password(&pm.user).await?;
            return Ok(Authenticated {
                user,
                methods: vec!["password".into()],
                app_cred: None,
                oauth1: None,
                parent: None,
            });
        }
        let tm = req.token.as_ref().ok_or_else(|| ApiError::bad_request("Missing 'auth.identity.token'."))?;
        let parent = self.verifier.verify(&tm.id).await.map_err(|_| unauthorized())?;
        if parent.app_cred.is_some() {
            return Err(ApiError::forbidden(
                "A token created with an application credential cannot be used to get a new token.",
            ));
        }
        if parent.oauth1.is_some() {
            return Err(ApiError::forbidden("A token obtained through OAuth cannot be used to get a new token."));
        }
        let user = self.store.user_fetch(&parent.sub).await?.ok_or_else(unauthorized)?;
        let mut methods = parent.methods.clone();
        if !methods.iter().any(|m| m == "token") {
            methods.push("token".into());
        }
        Ok(Authenticated { user, methods, app_cred: None, oauth1: None, parent: Some(parent) })
    }

    async fn find_user(&self, r: &UserRef) -> ApiResult<Option<User>> {
        if let Some(id) = &r.id {
            return Ok(self.store.user_fetch(id).await?);
        }
        let name = r.name.as_deref().ok_or_else(|| ApiError::bad_request("A user needs an 'id' or a 'name'."))?;
        let domain =
            r.domain.as_ref().ok_or_else(|| ApiError::bad_request("A user given by name needs a 'domain'."))?;
        let Some(domain) = self.find_domain(domain).await? else { return Ok(None) };
        Ok(self.store.user_fetch_by_name(&domain.id, name).await?)
    }

    pub(crate) async fn find_domain(&self, r: &DomainRef) -> ApiResult<Option<Domain>> {
        if let Some(id) = &r.id {
            Ok(self.store.domain_fetch(id).await?)
        } else if let Some(name) = &r.name {
            Ok(self.store.domain_fetch_by_name(name).await?)
        } else {
            Err(ApiError::bad_request("A domain needs an 'id' or a 'name'."))
        }
    }

    pub(crate) async fn authenticate_password(&self, r: &UserRef) -> ApiResult<User> {
        let password =
            r.password.as_deref().ok_or_else(|| ApiError::bad_request("Missing 'password' for the user."))?;
        let user = self.find_user(r).await?;
        let hash = user.as_ref().and_then(|u| u.password_hash.as_deref());
        // Always hash, so an unknown user costs the same as a wrong password.
        let ok = self.passwords.verify(password, hash).await;
        let Some(user) = user else { return Err(unauthorized()) };
        let now = now_text();
        if user.locked_until.as_deref().is_some_and(|until| until > now.as_str()) {
            return Err(unauthorized());
        }
        // Keystone's per-user option, for service users whose lockout would stop the cloud.
        let ignores_lockout = user.extra.get("options").and_then(|o| o.get("ignore_lockout_failure_attempts"))
            == Some(&Value::Bool(true));
        if !ok && ignores_lockout {
            return Err(unauthorized());
        }
        if !ok {
            let until = time_text(chrono::Utc::now() + chrono::Duration::seconds(self.config.lockout_duration_secs));
            self.store.user_record_failure(&user.id, self.config.lockout_failure_attempts, &until).await?;
            return Err(unauthorized());
        }
        self.store.user_clear_failures(&user.id).await?;
        Ok(user)
    }

    async fn authenticate_app_cred(&self, r: &AppCredMethod) -> ApiResult<Authenticated> {
        let cred = match (&r.id, &r.name) {
            (Some(id), _) => self.store.app_cred_fetch(id).await?,
            (None, Some(name)) => {
                let user_ref = r
                    .user
                    .as_ref()
                    .ok_or_else(|| ApiError::bad_request("An application credential given by name needs its user."))?;
                match self.find_user(user_ref).await? {
                    Some(u) => self.store.app_cred_fetch_by_name(&u.id, name).await?,
                    None => None,
                }
            }
            (None, None) => return Err(ApiError::bad_request("An application credential needs an 'id' or a 'name'.")),
        };
        let ok = self.passwords.verify(&r.secret, cred.as_ref().map(|c| c.secret_hash.as_str())).await;
        let Some(cred) = cred else { return Err(unauthorized()) };
        if !ok {
            return Err(unauthorized());
        }
        if cred.expires_at.as_deref().is_some_and(|e| e <= now_text().as_str()) {
            return Err(unauthorized());
        }
        let user = self.store.user_fetch(&cred.user_id).await?.ok_or_else(unauthorized)?;
        Ok(Authenticated {
            user,
            methods: vec!["application_credential".into()],
            app_cred: Some(cred),
            oauth1: None,
            parent: None,
        })
    }

    async fn parse_scope(&self, scope: &Value) -> ApiResult<ScopeTarget> {
        if scope.as_str() == Some("unscoped") {
            return Ok(ScopeTarget::Unscoped);
        }
        if let Some(p) = scope.get("project") {
            if let Some(id) = p.get("id").and_then(Value::as_str) {
                return Ok(ScopeTarget::Project(id.to_string()));
            }
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("A project scope needs an 'id' or a 'name'."))?;
            let dref: DomainRef = serde_json::from_value(p.get("domain").cloned().unwrap_or(Value::Null))
                .map_err(|_| ApiError::bad_request("A project scoped by name needs a 'domain'."))?;
            let domain = self.find_domain(&dref).await?.ok_or_else(unauthorized)?;
            let project = self.store.project_fetch_by_name(&domain.id, name).await?.ok_or_else(unauthorized)?;
            return Ok(ScopeTarget::Project(project.id));
        }
        if let Some(d) = scope.get("domain") {
            let dref: DomainRef =
                serde_json::from_value(d.clone()).map_err(|_| ApiError::bad_request("Invalid domain scope."))?;
            let domain = self.find_domain(&dref).await?.ok_or_else(unauthorized)?;
            return Ok(ScopeTarget::Domain(domain.id));
        }
        if let Some(s) = scope.get("system") {
            if s.get("all").and_then(Value::as_bool) == Some(true) {
                return Ok(ScopeTarget::System);
            }
            return Err(ApiError::bad_request("A system scope must be {\"all\": true}."));
        }
        Err(ApiError::bad_request("Invalid scope: use project, domain, system or \"unscoped\"."))
    }

    /// `GET`/`HEAD /v3/auth/tokens`: the caller checks a token (its own, or any if admin).
    pub async fn token_validate(&self, ctx: &AuthContext, subject: &str) -> ApiResult<TokenClaims> {
        let claims = self.verifier.verify(subject).await.map_err(|e| match e {
            VerifyError::Malformed | VerifyError::UnknownKey | VerifyError::Expired | VerifyError::Revoked => {
                ApiError::not_found("token", "the subject token")
            }
        })?;
        if !(policy::is_self_or_admin(ctx, &claims.sub) || ctx.has_role("service")) {
            return Err(policy::forbidden("validate_token"));
        }
        Ok(claims)
    }

    /// `DELETE /v3/auth/tokens`: revokes the token and every token obtained from it.
    pub async fn token_revoke(&self, ctx: &AuthContext, subject: &str) -> ApiResult<()> {
        let claims = self.token_validate(ctx, subject).await?;
        self.revoke(Revocation { audit_id: Some(claims.audit_id.clone()), ..Default::default() }).await?;
        self.emit("token", "revoked", &claims.audit_id).await;
        Ok(())
    }

    /// The body Keystone returns for a token.
    pub async fn token_body(&self, claims: &TokenClaims, with_catalog: bool) -> ApiResult<Value> {
        let mut t = json!({
            "methods": claims.methods,
            "user": {
                "id": claims.user.id,
                "name": claims.user.name,
                "domain": {"id": claims.user.domain.id, "name": claims.user.domain.name},
                "password_expires_at": null,
            },
            "audit_ids": match &claims.audit_chain {
                Some(chain) => vec![claims.audit_id.clone(), chain.clone()],
                None => vec![claims.audit_id.clone()],
            },
            "expires_at": claims.expires_at,
            "issued_at": claims.issued_at,
        });
        let obj = t.as_object_mut().unwrap();
        let project_id = match &claims.scope {
            Scope::Project { id, name, domain } => {
                obj.insert(
                    "project".into(),
                    json!({"id": id, "name": name, "domain": {"id": domain.id, "name": domain.name}}),
                );
                obj.insert("is_domain".into(), json!(false));
                Some(id.as_str())
            }
            Scope::Domain { id, name } => {
                obj.insert("domain".into(), json!({"id": id, "name": name}));
                None
            }
            Scope::System => {
                obj.insert("system".into(), json!({"all": true}));
                None
            }
            Scope::Unscoped => None,
        };
        if !matches!(claims.scope, Scope::Unscoped) {
            obj.insert(
                "roles".into(),
                json!(claims.roles.iter().map(|r| json!({"id": r.id, "name": r.name})).collect::<Vec<_>>()),
            );
            if with_catalog {
                obj.insert("catalog".into(), self.catalog_json(project_id).await?);
            }
        }
        if let Some(ac) = &claims.app_cred {
            obj.insert(
                "application_credential".into(),
                json!({"id": ac.id, "name": ac.name, "restricted": ac.restricted}),
            );
        }
        if let Some(o) = &claims.oauth1 {
            obj.insert("OS-OAUTH1".into(), json!({"access_token_id": o.access_token_id, "consumer_id": o.consumer_id}));
        }
        Ok(json!({ "token": t }))
    }

    /// Public keys and revocations in force (`/v3/OS-STRATUS/verification`).
    pub async fn verification_material(&self) -> ApiResult<stratus_common::auth::token::KeyMaterial> {
        let source = super::IdentityKeySource::new(self.store.clone(), self.config.token_ttl_secs);
        source.material().await.map_err(|e| ApiError::internal_from(e.as_ref()))
    }

    /// `GET /v3/OS-REVOKE/events` (admins and services).
    pub async fn revocation_events(&self, ctx: &AuthContext, since: &str) -> ApiResult<Vec<Revocation>> {
        if !(ctx.is_admin() || ctx.has_role("service")) {
            return Err(policy::forbidden("list_revoke_events"));
        }
        Ok(self.store.revocation_list_since(since).await?)
    }

    /// Projects the caller's user may scope to (`/v3/auth/projects`).
    pub async fn auth_projects(&self, ctx: &AuthContext) -> ApiResult<Vec<Project>> {
        self.user_projects(ctx.user_id()).await
    }

    /// Domains the caller's user holds a role on (`/v3/auth/domains`).
    pub async fn auth_domains(&self, ctx: &AuthContext) -> ApiResult<Vec<Domain>> {
        let ids = self.user_targets(ctx.user_id()).await?;
        let mut out = Vec::new();
        for t in ids {
            if let Target::Domain(id) = t {
                if let Some(d) = self.store.domain_fetch(&id).await? {
                    if d.enabled {
                        out.push(d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Whether the caller's user holds a role on the system (`/v3/auth/system`).
    pub async fn auth_system(&self, ctx: &AuthContext) -> ApiResult<bool> {
        Ok(self.user_targets(ctx.user_id()).await?.contains(&Target::System))
    }
}

enum ScopeTarget {
    Unscoped,
    Project(String),
    Domain(String),
    System,
}

/// 16 random bytes, base64url: Keystone's audit id shape.
fn new_audit_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
