//! Domains: admin-managed containers of projects, users and groups.

use super::policy::{self, require_admin};
use super::{write_error, Identity};
use crate::store::{new_id, Domain};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::{AuthContext, Revocation};
use stratus_common::http::{ApiError, ApiResult};

pub const DEFAULT_DOMAIN_ID: &str = "default";

#[derive(Debug, Deserialize)]
pub struct DomainCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct DomainUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Identity {
    pub async fn domain_create(&self, ctx: &AuthContext, req: DomainCreate) -> ApiResult<Domain> {
        require_admin(ctx, "create_domain")?;
        super::validate_name("domain", &req.name)?;
        let d = Domain {
            id: req.id.unwrap_or_else(new_id),
            name: req.name,
            description: req.description.unwrap_or_default(),
            enabled: req.enabled.unwrap_or(true),
            extra: strip(req.extra, &["tags", "options", "explicit_domain_id"]),
        };
        self.store.domain_create(&d).await.map_err(write_error("domain"))?;
        self.emit("domain", "created", &d.id).await;
        Ok(d)
    }

    /// Admins see any domain; others only the domain of their scope or their user.
    pub async fn domain_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Domain> {
        let visible = ctx.is_admin()
            || ctx.domain_id() == Some(id)
            || ctx.claims.user.domain.id == id
            || matches!(&ctx.claims.scope, stratus_common::auth::Scope::Project { domain, .. } if domain.id == id);
        let d = self.store.domain_fetch(id).await?;
        match d {
            Some(d) if visible => Ok(d),
            _ => Err(ApiError::not_found("domain", id)),
        }
    }

    pub async fn domain_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Domain>> {
        require_admin(ctx, "list_domains")?;
        Ok(self.store.domain_list().await?)
    }

    pub async fn domain_update(&self, ctx: &AuthContext, id: &str, req: DomainUpdate) -> ApiResult<Domain> {
        require_admin(ctx, "update_domain")?;
        let mut d = self.store.domain_fetch(id).await?.ok_or_else(|| ApiError::not_found("domain", id))?;
        let was_enabled = d.enabled;
        if let Some(n) = req.name {
            super::validate_name("domain", &n)?;
            d.name = n;
        }
        if let Some(desc) = req.description {
            d.description = desc;
        }
        if let Some(e) = req.enabled {
            if !e && id == DEFAULT_DOMAIN_ID {
                return Err(ApiError::forbidden("The default domain cannot be disabled."));
            }
            d.enabled = e;
        }
        d.extra.extend(strip(req.extra, &["id", "tags", "options"]));
        self.store.domain_update(&d).await.map_err(write_error("domain"))?;
        if was_enabled && !d.enabled {
            self.revoke(Revocation { domain_id: Some(id.to_string()), ..Default::default() }).await?;
        }
        self.emit("domain", "updated", id).await;
        Ok(d)
    }

    /// Deletes a disabled domain and everything in it.
    pub async fn domain_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_domain")?;
        let d = self.store.domain_fetch(id).await?.ok_or_else(|| ApiError::not_found("domain", id))?;
        if d.enabled {
            return Err(ApiError::forbidden("Cannot delete a domain that is enabled, please disable it first."));
        }
        if id == DEFAULT_DOMAIN_ID {
            return Err(policy::forbidden("delete_domain"));
        }
        self.store.domain_delete_cascade(id).await?;
        self.revoke(Revocation { domain_id: Some(id.to_string()), ..Default::default() }).await?;
        self.emit("domain", "deleted", id).await;
        Ok(())
    }
}

/// Drops attributes Keystone accepts but Stratus does not store.
pub(crate) fn strip(mut extra: Map<String, Value>, drop: &[&str]) -> Map<String, Value> {
    for k in drop {
        extra.remove(*k);
    }
    extra
}
