//! Application credentials: a user's delegated, project-bound login for scripts.

use super::policy;
use super::{write_error, Identity};
use crate::store::{new_id, AppCred, Target};
use serde::Deserialize;
use stratus_common::auth::{AuthContext, NamedRef, Revocation};
use stratus_common::db::{now_text, time_text};
use stratus_common::http::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct AppCredCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub roles: Option<Vec<RoleRef>>,
    #[serde(default)]
    pub unrestricted: Option<bool>,
    #[serde(default)]
    pub access_rules: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
pub struct RoleRef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Accepts `2026-12-01T00:00:00`, with or without fraction and zone; no zone means UTC.
fn parse_expiry(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

impl Identity {
    /// Creates a credential for the caller's own user on the caller's project; returns it
    /// with its secret, which is never shown again.
    pub async fn app_cred_create(
        &self,
        ctx: &AuthContext,
        user_id: &str,
        req: AppCredCreate,
    ) -> ApiResult<(AppCred, String)> {
        if ctx.user_id() != user_id {
            return Err(if ctx.is_admin() {
                policy::forbidden("create_application_credential")
            } else {
                ApiError::not_found("user", user_id)
            });
        }
        if ctx.claims.app_cred.as_ref().is_some_and(|c| c.restricted) {
            return Err(ApiError::forbidden(
                "A restricted application credential cannot be used to create another application credential.",
            ));
        }
        if ctx.claims.oauth1.is_some() {
            return Err(ApiError::forbidden(
                "A token obtained through OAuth cannot be used to create an application credential.",
            ));
        }
        let project_id = ctx
            .project_id()
            .ok_or_else(|| ApiError::bad_request("An application credential needs a project-scoped token."))?
            .to_string();
        super::validate_name("application_credential", &req.name)?;
        if req.access_rules.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(ApiError::bad_request("Access rules are not supported."));
        }
        // No roles (or an empty list, as openstackclient sends) delegates all of the token's.
        let roles: Vec<NamedRef> = match req.roles.filter(|r| !r.is_empty()) {
            None => ctx.claims.roles.clone(),
            Some(wanted) => {
                // What the user holds on the project now (a role granted after the
                // token was issued counts), as Keystone checks.
                let held: Vec<NamedRef> = self
                    .effective_roles(user_id, &Target::Project(project_id.clone()))
                    .await?
                    .into_iter()
                    .map(|r| NamedRef { id: r.id, name: r.name })
                    .collect();
                let mut out = Vec::new();
                for w in wanted {
                    let found = held.iter().find(|r| Some(&r.id) == w.id.as_ref() || Some(&r.name) == w.name.as_ref());
                    match found {
                        Some(r) => out.push(r.clone()),
                        None => {
                            return Err(ApiError::forbidden(format!(
                                "The role {} is not held on the token's project and cannot be delegated.",
                                w.id.or(w.name).unwrap_or_default()
                            )))
                        }
                    }
                }
                out
            }
        };
        let expires_at = match &req.expires_at {
            Some(s) => {
                let t = parse_expiry(s).ok_or_else(|| {
                    ApiError::bad_request(format!("Invalid input for field 'expires_at': '{s}' is not a time."))
                })?;
                if t <= chrono::Utc::now() {
                    return Err(ApiError::bad_request("Invalid input for field 'expires_at': it is in the past."));
                }
                Some(time_text(t))
            }
            None => None,
        };
        let secret = match req.secret {
            Some(s) if !s.is_empty() => s,
            _ => {
                use base64::Engine as _;
                let bytes: [u8; 32] = rand::random();
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        let secret_hash = self.passwords.hash(&secret).await.map_err(|e| ApiError::internal_from(e.as_ref()))?;
        let c = AppCred {
            id: new_id(),
            name: req.name,
            user_id: user_id.to_string(),
            project_id,
            secret_hash,
            description: req.description.unwrap_or_default(),
            expires_at,
            unrestricted: req.unrestricted.unwrap_or(false),
            roles,
        };
        self.store.app_cred_create(&c).await.map_err(write_error("application credential"))?;
        self.emit("application_credential", "created", &c.id).await;
        Ok((c, secret))
    }

    fn app_cred_access(&self, ctx: &AuthContext, user_id: &str) -> ApiResult<()> {
        if policy::is_self_or_admin(ctx, user_id) {
            Ok(())
        } else {
            Err(ApiError::not_found("user", user_id))
        }
    }

    pub async fn app_cred_list(&self, ctx: &AuthContext, user_id: &str, name: Option<&str>) -> ApiResult<Vec<AppCred>> {
        self.app_cred_access(ctx, user_id)?;
        let mut list = self.store.app_cred_list(user_id).await?;
        if let Some(n) = name {
            list.retain(|c| c.name == n);
        }
        Ok(list)
    }

    pub async fn app_cred_get(&self, ctx: &AuthContext, user_id: &str, id: &str) -> ApiResult<AppCred> {
        self.app_cred_access(ctx, user_id)?;
        match self.store.app_cred_fetch(id).await? {
            Some(c) if c.user_id == user_id => Ok(c),
            _ => Err(ApiError::not_found("application credential", id)),
        }
    }

    pub async fn app_cred_delete(&self, ctx: &AuthContext, user_id: &str, id: &str) -> ApiResult<()> {
        let c = self.app_cred_get(ctx, user_id, id).await?;
        if ctx.claims.app_cred.as_ref().is_some_and(|a| a.restricted) {
            return Err(ApiError::forbidden(
                "A restricted application credential cannot delete application credentials.",
            ));
        }
        self.store.app_cred_delete(&c.id).await?;
        self.revoke(Revocation { app_cred_id: Some(c.id.clone()), issued_before: now_text(), ..Default::default() })
            .await?;
        self.emit("application_credential", "deleted", &c.id).await;
        Ok(())
    }
}
