//! Keystone's deprecated policies API (`/v3/policies`): an admin keeps policy
//! documents (a blob and its MIME type) for other services to fetch. Stratus's own
//! services do not read them (their rules are in docs/api/policy.md); the API is
//! offered for the clients and tools that still use it.

use super::policy;
use super::{write_error, Identity};
use crate::store::{new_id, PolicyDocument};
use serde::Deserialize;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

/// The largest blob kept.
const BLOB_MAX: usize = 65_535;

#[derive(Debug, Deserialize)]
pub struct PolicyCreate {
    pub blob: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct PolicyUpdate {
    pub blob: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

fn checked(kind: &str, blob: &str) -> ApiResult<()> {
    if kind.trim().is_empty() || kind.len() > 255 {
        return Err(ApiError::bad_request("Invalid input for field 'type': 1 to 255 characters."));
    }
    if blob.len() > BLOB_MAX {
        return Err(ApiError::bad_request(format!("Invalid input for field 'blob': at most {BLOB_MAX} bytes.")));
    }
    Ok(())
}

impl Identity {
    pub async fn policy_create(&self, ctx: &AuthContext, req: PolicyCreate) -> ApiResult<PolicyDocument> {
        policy::require_admin(ctx, "create_policy")?;
        checked(&req.kind, &req.blob)?;
        let p = PolicyDocument { id: new_id(), kind: req.kind, blob: req.blob };
        self.store.policy_create(&p).await.map_err(write_error("policy"))?;
        self.emit("policy", "created", &p.id).await;
        Ok(p)
    }

    pub async fn policy_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<PolicyDocument> {
        policy::require_admin(ctx, "get_policy")?;
        self.store.policy_fetch(id).await?.ok_or_else(|| ApiError::not_found("policy", id))
    }

    pub async fn policy_list(&self, ctx: &AuthContext, kind: Option<&str>) -> ApiResult<Vec<PolicyDocument>> {
        policy::require_admin(ctx, "list_policies")?;
        let mut all = self.store.policy_list().await?;
        if let Some(k) = kind {
            all.retain(|p| p.kind == k);
        }
        Ok(all)
    }

    pub async fn policy_update(&self, ctx: &AuthContext, id: &str, req: PolicyUpdate) -> ApiResult<PolicyDocument> {
        let mut p = self.policy_get(ctx, id).await?;
        if let Some(k) = req.kind {
            p.kind = k;
        }
        if let Some(b) = req.blob {
            p.blob = b;
        }
        checked(&p.kind, &p.blob)?;
        if !self.store.policy_save(&p).await? {
            return Err(ApiError::not_found("policy", id));
        }
        self.emit("policy", "updated", &p.id).await;
        Ok(p)
    }

    pub async fn policy_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        policy::require_admin(ctx, "delete_policy")?;
        if !self.store.policy_delete(id).await? {
            return Err(ApiError::not_found("policy", id));
        }
        self.emit("policy", "deleted", id).await;
        Ok(())
    }
}
