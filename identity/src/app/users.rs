//! Users and their passwords.

use super::domains::{strip, DEFAULT_DOMAIN_ID};
use super::policy::{self, require_admin};
use super::tokens::UserRef;
use super::{write_error, Identity};
use crate::store::{new_id, User};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::{AuthContext, Revocation};
use stratus_common::db::now_text;
use stratus_common::http::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct UserCreate {
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub default_project_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct UserUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub default_project_id: Option<Option<String>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    pub password: String,
    pub original_password: String,
}

fn validate_password(p: &str) -> ApiResult<()> {
    if p.is_empty() {
        return Err(ApiError::bad_request("Invalid input for field 'user.password': it must not be empty."));
    }
    if p.len() > 4096 {
        return Err(ApiError::bad_request("Invalid input for field 'user.password': at most 4096 bytes."));
    }
    Ok(())
}

impl Identity {
    pub async fn user_create(&self, ctx: &AuthContext, req: UserCreate) -> ApiResult<User> {
        require_admin(ctx, "create_user")?;
        super::validate_name("user", &req.name)?;
        let domain_id = req.domain_id.unwrap_or_else(|| DEFAULT_DOMAIN_ID.to_string());
        self.store.domain_fetch(&domain_id).await?.ok_or_else(|| ApiError::not_found("domain", &domain_id))?;
        if let Some(p) = &req.default_project_id {
            self.store
                .project_fetch(p)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Default project {p} does not exist.")))?;
        }
        let password_hash = match &req.password {
            Some(p) => {
                validate_password(p)?;
                Some(self.passwords.hash(p).await.map_err(|e| ApiError::internal_from(e.as_ref()))?)
            }
            None => None,
        };
        let u = User {
            id: new_id(),
            name: req.name,
            domain_id,
            enabled: req.enabled.unwrap_or(true),
            password_changed_at: password_hash.as_ref().map(|_| now_text()),
            password_hash,
            default_project_id: req.default_project_id,
            description: req.description.unwrap_or_default(),
            extra: with_options(strip(req.extra, &["id", "federated"]), None)?,
            failed_attempts: 0,
            locked_until: None,
        };
        self.store.user_create(&u).await.map_err(write_error("user"))?;
        self.emit("user", "created", &u.id).await;
        Ok(u)
    }

    /// Admins see any user; others only themselves.
    pub async fn user_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<User> {
        if !policy::is_self_or_admin(ctx, id) {
            return Err(ApiError::not_found("user", id));
        }
        self.store.user_fetch(id).await?.ok_or_else(|| ApiError::not_found("user", id))
    }

    pub async fn user_list(
        &self,
        ctx: &AuthContext,
        name: Option<&str>,
        domain_id: Option<&str>,
    ) -> ApiResult<Vec<User>> {
        require_admin(ctx, "list_users")?;
        Ok(self.store.user_list(name, domain_id).await?)
    }

    pub async fn user_update(&self, ctx: &AuthContext, id: &str, req: UserUpdate) -> ApiResult<User> {
        if !ctx.is_admin() {
            return Err(if ctx.user_id() == id {
                policy::forbidden("update_user")
            } else {
                ApiError::not_found("user", id)
            });
        }
        let mut u = self.store.user_fetch(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
        let was_enabled = u.enabled;
        let mut password_changed = false;
        if let Some(d) = &req.domain_id {
            if *d != u.domain_id {
                return Err(ApiError::bad_request("A user cannot move to another domain."));
            }
        }
        if let Some(n) = req.name {
            super::validate_name("user", &n)?;
            u.name = n;
        }
        if let Some(p) = req.password {
            validate_password(&p)?;
            u.password_hash = Some(self.passwords.hash(&p).await.map_err(|e| ApiError::internal_from(e.as_ref()))?);
            u.password_changed_at = Some(now_text());
            u.failed_attempts = 0;
            u.locked_until = None;
            password_changed = true;
        }
        if let Some(e) = req.enabled {
            u.enabled = e;
            if e {
                u.failed_attempts = 0;
                u.locked_until = None;
            }
        }
        if let Some(dp) = req.default_project_id {
            if let Some(p) = &dp {
                self.store
                    .project_fetch(p)
                    .await?
                    .ok_or_else(|| ApiError::bad_request(format!("Default project {p} does not exist.")))?;
            }
            u.default_project_id = dp;
        }
        if let Some(d) = req.description {
            u.description = d;
        }
        let extra = with_options(strip(req.extra, &["id", "federated"]), u.extra.get("options"))?;
        u.extra.extend(extra);
        self.store.user_update(&u).await.map_err(write_error("user"))?;
        if password_changed || (was_enabled && !u.enabled) {
            self.revoke(Revocation { user_id: Some(id.to_string()), ..Default::default() }).await?;
        }
        self.emit("user", "updated", id).await;
        Ok(u)
    }

    pub async fn user_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_user")?;
        self.store.user_fetch(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
        self.store.user_delete(id).await?;
        self.revoke(Revocation { user_id: Some(id.to_string()), ..Default::default() }).await?;
        self.emit("user", "deleted", id).await;
        Ok(())
    }

    /// `POST /v3/users/{id}/password`: a user's password changes. As in Keystone, the
    /// proof is the original password, not the caller: a user changes their own, and an
    /// administrator who knows a user's password can change it too. A wrong original
    /// password is 401 and counts as a failed sign-in.
    pub async fn user_change_password(&self, _ctx: &AuthContext, id: &str, req: PasswordChange) -> ApiResult<()> {
        self.store.user_fetch(id).await?.ok_or_else(|| ApiError::not_found("user", id))?;
        validate_password(&req.password)?;
        // The sign-in check, with its lockout: this path is no way round it.
        let proof = UserRef {
            id: Some(id.to_string()),
            name: None,
            domain: None,
            password: Some(req.original_password.clone()),
        };
        let mut u = self.authenticate_password(&proof).await.map_err(|e| match e.status.as_u16() {
            401 => ApiError::unauthorized("The original password is not correct."),
            _ => e,
        })?;
        u.password_hash =
            Some(self.passwords.hash(&req.password).await.map_err(|e| ApiError::internal_from(e.as_ref()))?);
        u.password_changed_at = Some(now_text());
        self.store.user_update(&u).await?;
        self.revoke(Revocation { user_id: Some(id.to_string()), ..Default::default() }).await?;
        self.emit("user", "updated", id).await;
        Ok(())
    }
}

/// Keystone's user `options` (an object of option name to value), merged over what the
/// user had. Only `ignore_lockout_failure_attempts` changes anything here: a service
/// user with it set cannot be locked out by someone guessing its password.
fn with_options(mut extra: Map<String, Value>, had: Option<&Value>) -> ApiResult<Map<String, Value>> {
    let Some(asked) = extra.remove("options") else { return Ok(extra) };
    let Value::Object(asked) = asked else {
        return Err(ApiError::bad_request("Invalid input for options: an object."));
    };
    if asked.get("ignore_lockout_failure_attempts").is_some_and(|v| !v.is_boolean() && !v.is_null()) {
        return Err(ApiError::bad_request("Invalid input for options: ignore_lockout_failure_attempts is a boolean."));
    }
    let mut options = had.and_then(Value::as_object).cloned().unwrap_or_default();
    for (k, v) in asked {
        if v.is_null() {
            options.remove(&k);
        } else {
            options.insert(k, v);
        }
    }
    extra.insert("options".into(), Value::Object(options));
    Ok(extra)
}
