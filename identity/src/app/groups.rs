//! Groups and their members.

use super::domains::DEFAULT_DOMAIN_ID;
use super::policy::{self, require_admin};
use super::{write_error, Identity};
use crate::store::{new_id, Group, User};
use serde::Deserialize;
use stratus_common::auth::{AuthContext, Revocation};
use stratus_common::http::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct GroupCreate {
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GroupUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

impl Identity {
    pub async fn group_create(&self, ctx: &AuthContext, req: GroupCreate) -> ApiResult<Group> {
        require_admin(ctx, "create_group")?;
        super::validate_name("group", &req.name)?;
        let domain_id = req.domain_id.unwrap_or_else(|| DEFAULT_DOMAIN_ID.to_string());
        self.store
            .domain_fetch(&domain_id)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("Domain {domain_id} does not exist.")))?;
        let g = Group { id: new_id(), name: req.name, domain_id, description: req.description.unwrap_or_default() };
        self.store.group_create(&g).await.map_err(write_error("group"))?;
        self.emit("group", "created", &g.id).await;
        Ok(g)
    }

    pub async fn group_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Group> {
        let g = self.store.group_fetch(id).await?.ok_or_else(|| ApiError::not_found("group", id))?;
        if ctx.is_admin() || self.store.group_has_user(id, ctx.user_id()).await? {
            Ok(g)
        } else {
            Err(ApiError::not_found("group", id))
        }
    }

    pub async fn group_list(
        &self,
        ctx: &AuthContext,
        name: Option<&str>,
        domain_id: Option<&str>,
    ) -> ApiResult<Vec<Group>> {
        require_admin(ctx, "list_groups")?;
        Ok(self.store.group_list(name, domain_id).await?)
    }

    pub async fn group_update(&self, ctx: &AuthContext, id: &str, req: GroupUpdate) -> ApiResult<Group> {
        require_admin(ctx, "update_group")?;
        let mut g = self.store.group_fetch(id).await?.ok_or_else(|| ApiError::not_found("group", id))?;
        if let Some(n) = req.name {
            super::validate_name("group", &n)?;
            g.name = n;
        }
        if let Some(d) = req.description {
            g.description = d;
        }
        self.store.group_update(&g).await.map_err(write_error("group"))?;
        self.emit("group", "updated", id).await;
        Ok(g)
    }

    pub async fn group_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_group")?;
        self.store.group_fetch(id).await?.ok_or_else(|| ApiError::not_found("group", id))?;
        let members = self.store.group_user_ids(id).await?;
        self.store.group_delete(id).await?;
        for user in members {
            self.revoke(Revocation { user_id: Some(user), ..Default::default() }).await?;
        }
        self.emit("group", "deleted", id).await;
        Ok(())
    }

    async fn group_and_user(&self, group_id: &str, user_id: &str) -> ApiResult<()> {
        self.store.group_fetch(group_id).await?.ok_or_else(|| ApiError::not_found("group", group_id))?;
        self.store.user_fetch(user_id).await?.ok_or_else(|| ApiError::not_found("user", user_id))?;
        Ok(())
    }

    pub async fn group_add_user(&self, ctx: &AuthContext, group_id: &str, user_id: &str) -> ApiResult<()> {
        require_admin(ctx, "add_user_to_group")?;
        self.group_and_user(group_id, user_id).await?;
        self.store.group_add_user(group_id, user_id).await?;
        self.emit("group", "member_added", group_id).await;
        Ok(())
    }

    pub async fn group_check_user(&self, ctx: &AuthContext, group_id: &str, user_id: &str) -> ApiResult<()> {
        if !policy::is_self_or_admin(ctx, user_id) {
            return Err(policy::forbidden("check_user_in_group"));
        }
        self.group_and_user(group_id, user_id).await?;
        if self.store.group_has_user(group_id, user_id).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("user in group", user_id))
        }
    }

    pub async fn group_remove_user(&self, ctx: &AuthContext, group_id: &str, user_id: &str) -> ApiResult<()> {
        require_admin(ctx, "remove_user_from_group")?;
        self.group_and_user(group_id, user_id).await?;
        if !self.store.group_remove_user(group_id, user_id).await? {
            return Err(ApiError::not_found("user in group", user_id));
        }
        self.revoke(Revocation { user_id: Some(user_id.to_string()), ..Default::default() }).await?;
        self.emit("group", "member_removed", group_id).await;
        Ok(())
    }

    pub async fn group_user_list(&self, ctx: &AuthContext, group_id: &str) -> ApiResult<Vec<User>> {
        require_admin(ctx, "list_users_in_group")?;
        self.store.group_fetch(group_id).await?.ok_or_else(|| ApiError::not_found("group", group_id))?;
        let mut out = Vec::new();
        for id in self.store.group_user_ids(group_id).await? {
            if let Some(u) = self.store.user_fetch(&id).await? {
                out.push(u);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn user_group_list(&self, ctx: &AuthContext, user_id: &str) -> ApiResult<Vec<Group>> {
        if !policy::is_self_or_admin(ctx, user_id) {
            return Err(ApiError::not_found("user", user_id));
        }
        self.store.user_fetch(user_id).await?.ok_or_else(|| ApiError::not_found("user", user_id))?;
        let mut out = Vec::new();
        for id in self.store.user_group_ids(user_id).await? {
            if let Some(g) = self.store.group_fetch(&id).await? {
                out.push(g);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
