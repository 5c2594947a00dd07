//! Projects: the unit of ownership and quota for every other service.

use super::domains::{strip, DomainCreate, DomainUpdate, DEFAULT_DOMAIN_ID};
use super::policy::{self, require_admin};
use super::{write_error, Identity};
use crate::store::{new_id, Project};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::{AuthContext, Revocation};
use stratus_common::http::{ApiError, ApiResult};

#[derive(Debug, Deserialize)]
pub struct ProjectCreate {
    pub name: String,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub is_domain: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
pub struct ProjectUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn validate_tags(tags: &[String]) -> ApiResult<()> {
    for t in tags {
        if t.is_empty() || t.len() > 255 || t.contains('/') || t.contains(',') {
            return Err(ApiError::bad_request(format!("Invalid tag '{t}': 1 to 255 characters, no '/' or ','.")));
        }
    }
    if tags.len() > 80 {
        return Err(ApiError::bad_request("A project has at most 80 tags."));
    }
    Ok(())
}

impl Identity {
    pub async fn project_create(&self, ctx: &AuthContext, req: ProjectCreate) -> ApiResult<Project> {
        require_admin(ctx, "create_project")?;
        super::validate_name("project", &req.name)?;
        if req.is_domain == Some(true) {
            // Keystone's project acting as a domain: here, a domain, shown as a project.
            if req.parent_id.is_some() || req.domain_id.is_some() {
                return Err(ApiError::bad_request("A project acting as a domain has no parent and no domain."));
            }
            let d = self
                .domain_create(
                    ctx,
                    DomainCreate {
                        name: req.name,
                        description: req.description,
                        enabled: req.enabled,
                        id: None,
                        extra: Map::new(),
                    },
                )
                .await?;
            return Ok(Project::acting_domain(&d));
        }
        let tags = req.tags.unwrap_or_default();
        validate_tags(&tags)?;
        let mut domain_id = req.domain_id.unwrap_or_else(|| DEFAULT_DOMAIN_ID.to_string());
        if let Some(parent) = &req.parent_id {
            let p = self
                .store
                .project_fetch(parent)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Parent project {parent} does not exist.")))?;
            domain_id = p.domain_id;
        }
        self.store
            .domain_fetch(&domain_id)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("Domain {domain_id} does not exist.")))?;
        let p = Project {
            id: new_id(),
            name: req.name,
            domain_id,
            parent_id: req.parent_id,
            description: req.description.unwrap_or_default(),
            enabled: req.enabled.unwrap_or(true),
            tags,
            extra: strip(req.extra, &["id", "options"]),
            is_domain: false,
        };
        self.store.project_create(&p).await.map_err(write_error("project"))?;
        self.emit("project", "created", &p.id).await;
        Ok(p)
    }

    /// A domain through the projects API, for those who may see it; otherwise the
    /// project is not found.
    async fn domain_as_project(&self, ctx: &AuthContext, id: &str) -> ApiResult<Project> {
        match self.domain_get(ctx, id).await {
            Ok(d) => Ok(Project::acting_domain(&d)),
            Err(_) => Err(ApiError::not_found("project", id)),
        }
    }

    /// Admins see any project; others the project they are scoped to or hold a role on.
    pub async fn project_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Project> {
        let Some(p) = self.store.project_fetch(id).await? else {
            return self.domain_as_project(ctx, id).await;
        };
        if ctx.is_admin() || ctx.project_id() == Some(id) {
            return Ok(p);
        }
        if self.user_projects(ctx.user_id()).await?.iter().any(|x| x.id == id) {
            return Ok(p);
        }
        Err(ApiError::not_found("project", id))
    }

    pub async fn project_list(
        &self,
        ctx: &AuthContext,
        name: Option<&str>,
        domain_id: Option<&str>,
        is_domain: bool,
    ) -> ApiResult<Vec<Project>> {
        if is_domain {
            // The domains, as projects acting as domains: the admin's to list.
            if !ctx.is_admin() {
                return Ok(Vec::new());
            }
            let mut domains = self.store.domain_list().await?;
            domains.retain(|d| name.is_none_or(|n| d.name == n) && domain_id.is_none());
            return Ok(domains.iter().map(Project::acting_domain).collect());
        }
        if ctx.is_admin() {
            return Ok(self.store.project_list(name, domain_id).await?);
        }
        // Others see the projects they hold a role on, so that a search for a project
        // they may not see finds nothing, as if it did not exist (Keystone answers 403).
        let mut own = self.user_projects(ctx.user_id()).await?;
        own.retain(|p| name.is_none_or(|n| p.name == n) && domain_id.is_none_or(|d| p.domain_id == d));
        Ok(own)
    }

    pub async fn project_update(&self, ctx: &AuthContext, id: &str, req: ProjectUpdate) -> ApiResult<Project> {
        require_admin(ctx, "update_project")?;
        let Some(mut p) = self.store.project_fetch(id).await? else {
            // A project acting as a domain changes as its domain does.
            self.domain_as_project(ctx, id).await?;
            if req.tags.is_some() {
                return Err(ApiError::bad_request("A project acting as a domain has no tags."));
            }
            let update =
                DomainUpdate { name: req.name, description: req.description, enabled: req.enabled, extra: Map::new() };
            return Ok(Project::acting_domain(&self.domain_update(ctx, id, update).await?));
        };
        let was_enabled = p.enabled;
        if let Some(d) = &req.domain_id {
            if *d != p.domain_id {
                return Err(ApiError::bad_request("A project cannot move to another domain."));
            }
        }
        if let Some(n) = req.name {
            super::validate_name("project", &n)?;
            p.name = n;
        }
        if let Some(d) = req.description {
            p.description = d;
        }
        if let Some(e) = req.enabled {
            p.enabled = e;
        }
        if let Some(t) = req.tags {
            validate_tags(&t)?;
            p.tags = t;
        }
        p.extra.extend(strip(req.extra, &["id", "options", "parent_id", "is_domain"]));
        self.store.project_update(&p).await.map_err(write_error("project"))?;
        if was_enabled && !p.enabled {
            self.revoke(Revocation { project_id: Some(id.to_string()), ..Default::default() }).await?;
        }
        self.emit("project", "updated", id).await;
        Ok(p)
    }

    /// Replaces a project's tags (`PUT /v3/projects/{id}/tags`; an empty list clears).
    pub async fn project_tags_set(&self, ctx: &AuthContext, id: &str, tags: Vec<String>) -> ApiResult<Project> {
        let req = ProjectUpdate {
            name: None,
            description: None,
            enabled: None,
            tags: Some(tags),
            domain_id: None,
            extra: Map::new(),
        };
        self.project_update(ctx, id, req).await
    }

    /// Adds one tag (`PUT /v3/projects/{id}/tags/{tag}`); one already there is kept.
    pub async fn project_tag_add(&self, ctx: &AuthContext, id: &str, tag: &str) -> ApiResult<Project> {
        require_admin(ctx, "update_project_tags")?;
        let p = self.store.project_fetch(id).await?.ok_or_else(|| ApiError::not_found("project", id))?;
        let mut tags = p.tags;
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
        self.project_tags_set(ctx, id, tags).await
    }

    /// Removes one tag (`DELETE /v3/projects/{id}/tags/{tag}`): 404 when it has none such.
    pub async fn project_tag_remove(&self, ctx: &AuthContext, id: &str, tag: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_project_tag")?;
        let p = self.store.project_fetch(id).await?.ok_or_else(|| ApiError::not_found("project", id))?;
        if !p.tags.iter().any(|t| t == tag) {
            return Err(ApiError::not_found("project tag", tag));
        }
        let tags = p.tags.into_iter().filter(|t| t != tag).collect();
        self.project_tags_set(ctx, id, tags).await.map(drop)
    }

    pub async fn project_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_project")?;
        if self.store.project_fetch(id).await?.is_none() {
            self.domain_as_project(ctx, id).await?;
            return self.domain_delete(ctx, id).await;
        }
        if self.store.project_count_children(id).await? > 0 {
            return Err(ApiError::forbidden("Cannot delete a project that has child projects."));
        }
        self.store.project_delete(id).await?;
        // Its endpoint filters go with it.
        self.store.project_filters_forget(Some(id), None).await?;
        self.invalidate_catalog();
        self.revoke(Revocation { project_id: Some(id.to_string()), ..Default::default() }).await?;
        self.emit("project", "deleted", id).await;
        self.bus.emit(stratus_common::limits::LIMITS_CHANGED_SUBJECT, &serde_json::json!({"project_id": id})).await;
        Ok(())
    }

    /// `GET /v3/users/{id}/projects`.
    pub async fn user_project_list(&self, ctx: &AuthContext, user_id: &str) -> ApiResult<Vec<Project>> {
        if !policy::is_self_or_admin(ctx, user_id) {
            return Err(ApiError::not_found("user", user_id));
        }
        self.store.user_fetch(user_id).await?.ok_or_else(|| ApiError::not_found("user", user_id))?;
        self.user_projects(user_id).await
    }
}
