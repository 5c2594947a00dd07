//! Endpoint filters (Keystone's OS-EP-FILTER): an admin limits what a project's
//! catalog shows to endpoints named one by one or by **endpoint groups** (filters on
//! `interface`, `service_id`, `region_id`). A project with no link sees the whole
//! catalog, as Keystone's `return_all_endpoints_if_no_filter`; one with links sees the
//! union of what they name in every token's catalog and in `GET /v3/auth/catalog`.

use super::policy::require_admin;
use super::{write_error, Identity};
use crate::store::{new_id, Endpoint, EndpointGroup, Project};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

/// `POST /v3/OS-EP-FILTER/endpoint_groups` (`endpoint_group`).
#[derive(Debug, Deserialize)]
pub struct EndpointGroupCreate {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub filters: Map<String, Value>,
}

/// `PATCH /v3/OS-EP-FILTER/endpoint_groups/{id}` (`endpoint_group`).
#[derive(Debug, Default, Deserialize)]
pub struct EndpointGroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub filters: Option<Map<String, Value>>,
}

const FILTER_KEYS: &[&str] = &["interface", "service_id", "region_id"];

fn check_group(name: &str, description: &str, filters: &Map<String, Value>) -> ApiResult<()> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(ApiError::bad_request("Invalid input for field 'name': 1 to 255 characters."));
    }
    if description.chars().count() > 255 {
        return Err(ApiError::bad_request("Invalid input for field 'description': at most 255 characters."));
    }
    if filters.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid input for field 'filters': name at least one of interface, service_id, region_id.",
        ));
    }
    for (k, v) in filters {
        if !FILTER_KEYS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field 'filters': {k} is not one of interface, service_id, region_id."
            )));
        }
        match (k.as_str(), v.as_str()) {
            ("interface", Some("public" | "internal" | "admin")) => {}
            ("interface", _) => {
                return Err(ApiError::bad_request(
                    "Invalid input for field 'filters': interface is public, internal or admin.",
                ))
            }
            (_, Some(s)) if !s.is_empty() => {}
            _ => {
                return Err(ApiError::bad_request(format!("Invalid input for field 'filters': {k} must be a string.")))
            }
        }
    }
    Ok(())
}

/// Whether endpoint `e` is one of those `filters` describe.
pub fn matches(filters: &Map<String, Value>, e: &Endpoint) -> bool {
    filters.iter().all(|(k, v)| {
        let want = v.as_str();
        match k.as_str() {
            "interface" => want == Some(e.interface.as_str()),
            "service_id" => want == Some(e.service_id.as_str()),
            "region_id" => want == e.region_id.as_deref(),
            _ => false,
        }
    })
}

/// Every link, as the catalog reads them (cached with the catalog).
#[derive(Debug, Default)]
pub struct EndpointFilters {
    groups: HashMap<String, Map<String, Value>>,
    endpoints: HashMap<String, HashSet<String>>,
    group_links: HashMap<String, Vec<String>>,
}

impl EndpointFilters {
    /// Whether links limit project `project`'s catalog.
    pub fn limits(&self, project: &str) -> bool {
        self.endpoints.contains_key(project) || self.group_links.contains_key(project)
    }

    /// The endpoints project `project` is limited to; `None` when nothing limits it.
    pub fn allowed(&self, project: &str, all: &[Endpoint]) -> Option<HashSet<String>> {
        let direct = self.endpoints.get(project);
        let groups = self.group_links.get(project);
        if direct.is_none() && groups.is_none() {
            return None;
        }
        let mut allowed: HashSet<String> = direct.cloned().unwrap_or_default();
        for g in groups.into_iter().flatten() {
            if let Some(filters) = self.groups.get(g) {
                allowed.extend(all.iter().filter(|e| matches(filters, e)).map(|e| e.id.clone()));
            }
        }
        Some(allowed)
    }
}

impl Identity {
    /// The links, read once until one changes.
    pub(crate) async fn endpoint_filters(&self) -> ApiResult<Arc<EndpointFilters>> {
        if let Some(f) = self.filters_cache.read().unwrap().clone() {
            return Ok(f);
        }
        let mut f = EndpointFilters::default();
        for g in self.store.endpoint_group_list().await? {
            f.groups.insert(g.id, g.filters);
        }
        for (p, e) in self.store.project_filter_pairs(false).await? {
            f.endpoints.entry(p).or_default().insert(e);
        }
        for (p, g) in self.store.project_filter_pairs(true).await? {
            f.group_links.entry(p).or_default().push(g);
        }
        let f = Arc::new(f);
        *self.filters_cache.write().unwrap() = Some(f.clone());
        Ok(f)
    }

    pub async fn endpoint_group_create(&self, ctx: &AuthContext, req: EndpointGroupCreate) -> ApiResult<EndpointGroup> {
        require_admin(ctx, "create_endpoint_group")?;
        let description = req.description.unwrap_or_default();
        check_group(&req.name, &description, &req.filters)?;
        let g = EndpointGroup { id: new_id(), name: req.name, description, filters: req.filters };
        self.store.endpoint_group_create(&g).await.map_err(write_error("endpoint group"))?;
        self.invalidate_catalog();
        self.emit("endpoint_group", "created", &g.id).await;
        Ok(g)
    }

    pub async fn endpoint_group_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<EndpointGroup> {
        require_admin(ctx, "get_endpoint_group")?;
        self.store.endpoint_group_fetch(id).await?.ok_or_else(|| ApiError::not_found("endpoint group", id))
    }

    pub async fn endpoint_group_list(&self, ctx: &AuthContext, name: Option<&str>) -> ApiResult<Vec<EndpointGroup>> {
        require_admin(ctx, "list_endpoint_groups")?;
        let mut all = self.store.endpoint_group_list().await?;
        if let Some(n) = name {
            all.retain(|g| g.name == n);
        }
        Ok(all)
    }

    pub async fn endpoint_group_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        req: EndpointGroupUpdate,
    ) -> ApiResult<EndpointGroup> {
        let mut g = self.endpoint_group_get(ctx, id).await?;
        if let Some(n) = req.name {
            g.name = n;
        }
        if let Some(d) = req.description {
            g.description = d;
        }
        if let Some(f) = req.filters {
            g.filters = f;
        }
        check_group(&g.name, &g.description, &g.filters)?;
        if !self.store.endpoint_group_save(&g).await? {
            return Err(ApiError::not_found("endpoint group", id));
        }
        self.invalidate_catalog();
        self.emit("endpoint_group", "updated", id).await;
        Ok(g)
    }

    pub async fn endpoint_group_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_endpoint_group")?;
        if !self.store.endpoint_group_delete(id).await? {
            return Err(ApiError::not_found("endpoint group", id));
        }
        self.invalidate_catalog();
        self.emit("endpoint_group", "deleted", id).await;
        Ok(())
    }

    /// The endpoints a group's filters name.
    pub async fn endpoint_group_endpoints(&self, ctx: &AuthContext, id: &str) -> ApiResult<Vec<Endpoint>> {
        let g = self.endpoint_group_get(ctx, id).await?;
        Ok(self.store.endpoint_list().await?.into_iter().filter(|e| matches(&g.filters, e)).collect())
    }

    /// The projects linked to a group (`endpoint_group`) or to an endpoint.
    pub async fn filter_projects(
        &self,
        ctx: &AuthContext,
        target: &str,
        endpoint_group: bool,
    ) -> ApiResult<Vec<Project>> {
        if endpoint_group {
            self.endpoint_group_get(ctx, target).await?;
        } else {
            require_admin(ctx, "list_projects_for_endpoint")?;
            self.store.endpoint_fetch(target).await?.ok_or_else(|| ApiError::not_found("endpoint", target))?;
        }
        let ids: Vec<String> = self
            .store
            .project_filter_pairs(endpoint_group)
            .await?
            .into_iter()
            .filter(|(_, t)| t == target)
            .map(|(p, _)| p)
            .collect();
        Ok(self.store.project_list_by_ids(&ids).await?)
    }

    /// Checks that the project and the endpoint (or group) exist.
    async fn filter_refs(
        &self,
        ctx: &AuthContext,
        project: &str,
        target: &str,
        endpoint_group: bool,
    ) -> ApiResult<Project> {
        require_admin(ctx, "manage_endpoint_filters")?;
        if endpoint_group {
            self.store
                .endpoint_group_fetch(target)
                .await?
                .ok_or_else(|| ApiError::not_found("endpoint group", target))?;
        } else {
            self.store.endpoint_fetch(target).await?.ok_or_else(|| ApiError::not_found("endpoint", target))?;
        }
        self.store.project_fetch(project).await?.ok_or_else(|| ApiError::not_found("project", project))
    }

    /// Links a project to an endpoint or an endpoint group: from now on its catalog
    /// shows only what its links name.
    pub async fn filter_add(
        &self,
        ctx: &AuthContext,
        project: &str,
        target: &str,
        endpoint_group: bool,
    ) -> ApiResult<()> {
        self.filter_refs(ctx, project, target, endpoint_group).await?;
        self.store.project_filter_add(project, target, endpoint_group).await?;
        self.invalidate_catalog();
        Ok(())
    }

    /// The project, when it is linked to the endpoint or group (404 otherwise).
    pub async fn filter_check(
        &self,
        ctx: &AuthContext,
        project: &str,
        target: &str,
        endpoint_group: bool,
    ) -> ApiResult<Project> {
        let p = self.filter_refs(ctx, project, target, endpoint_group).await?;
        let linked =
            self.store.project_filter_pairs(endpoint_group).await?.iter().any(|(q, t)| q == project && t == target);
        if !linked {
            let what = if endpoint_group { "endpoint group" } else { "endpoint" };
            return Err(ApiError::not_found(&format!("project {project} association with {what}"), target));
        }
        Ok(p)
    }

    pub async fn filter_remove(
        &self,
        ctx: &AuthContext,
        project: &str,
        target: &str,
        endpoint_group: bool,
    ) -> ApiResult<()> {
        self.filter_check(ctx, project, target, endpoint_group).await?;
        self.store.project_filter_remove(project, target, endpoint_group).await?;
        self.invalidate_catalog();
        Ok(())
    }

    /// The endpoint groups a project is linked to.
    pub async fn project_endpoint_groups(&self, ctx: &AuthContext, project: &str) -> ApiResult<Vec<EndpointGroup>> {
        require_admin(ctx, "list_endpoint_groups_for_project")?;
        self.store.project_fetch(project).await?.ok_or_else(|| ApiError::not_found("project", project))?;
        let linked: HashSet<String> = self
            .store
            .project_filter_pairs(true)
            .await?
            .into_iter()
            .filter(|(p, _)| p == project)
            .map(|(_, g)| g)
            .collect();
        Ok(self.store.endpoint_group_list().await?.into_iter().filter(|g| linked.contains(&g.id)).collect())
    }

    /// The endpoints a project's catalog shows when links limit it: those named one
    /// by one and those its groups name.
    pub async fn project_endpoints(&self, ctx: &AuthContext, project: &str) -> ApiResult<Vec<Endpoint>> {
        require_admin(ctx, "list_endpoints_for_project")?;
        self.store.project_fetch(project).await?.ok_or_else(|| ApiError::not_found("project", project))?;
        let all = self.store.endpoint_list().await?;
        let allowed = self.endpoint_filters().await?.allowed(project, &all).unwrap_or_default();
        Ok(all.into_iter().filter(|e| allowed.contains(&e.id)).collect())
    }
}
