//! Quotas as Keystone unified limits (flat model): registered defaults per service and
//! resource, and per-project overrides. Every change is announced on the bus so that
//! services drop their cached limits at once.

use super::policy::require_admin;
use super::{write_error, Identity};
use crate::store::{new_id, Limit, RegisteredLimit, Store};
use futures::future::BoxFuture;
use serde::Deserialize;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};
use stratus_common::limits::{LimitsSource, ProjectLimits, LIMITS_CHANGED_SUBJECT};

#[derive(Debug, Deserialize)]
pub struct RegisteredLimitCreate {
    pub service_id: String,
    pub resource_name: String,
    pub default_limit: i64,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RegisteredLimitUpdate {
    #[serde(default)]
    pub service_id: Option<String>,
    #[serde(default)]
    pub resource_name: Option<String>,
    #[serde(default)]
    pub default_limit: Option<i64>,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LimitCreate {
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    pub service_id: String,
    pub resource_name: String,
    pub resource_limit: i64,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct LimitUpdate {
    #[serde(default)]
    pub resource_limit: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
}

fn check_value(field: &str, v: i64) -> ApiResult<()> {
    if v < -1 {
        return Err(ApiError::bad_request(format!("Invalid input for field '{field}': {v} is less than -1.")));
    }
    Ok(())
}

impl Identity {
    async fn limits_changed(&self) {
        self.bus.emit(LIMITS_CHANGED_SUBJECT, &serde_json::json!({})).await;
    }

    async fn check_service_region(&self, service_id: &str, region_id: Option<&str>) -> ApiResult<()> {
        self.store
            .service_fetch(service_id)
            .await?
            .ok_or_else(|| ApiError::bad_request(format!("Service {service_id} does not exist.")))?;
        if let Some(r) = region_id {
            self.store
                .region_fetch(r)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Region {r} does not exist.")))?;
        }
        Ok(())
    }

    pub async fn registered_limit_create(
        &self,
        ctx: &AuthContext,
        reqs: Vec<RegisteredLimitCreate>,
    ) -> ApiResult<Vec<RegisteredLimit>> {
        require_admin(ctx, "create_registered_limits")?;
        if reqs.is_empty() {
            return Err(ApiError::bad_request("Invalid input for field 'registered_limits': it must not be empty."));
        }
        let mut items = Vec::new();
        for r in reqs {
            check_value("default_limit", r.default_limit)?;
            let region_id = r.region_id.filter(|s| !s.is_empty());
            self.check_service_region(&r.service_id, region_id.as_deref()).await?;
            if r.resource_name.trim().is_empty() {
                return Err(ApiError::bad_request("Invalid input for field 'resource_name': it must not be empty."));
            }
            items.push(RegisteredLimit {
                id: new_id(),
                service_id: r.service_id,
                region_id,
                resource_name: r.resource_name,
                default_limit: r.default_limit,
                description: r.description.unwrap_or_default(),
            });
        }
        self.store.registered_limit_create_all(&items).await.map_err(write_error("registered limit"))?;
        self.limits_changed().await;
        Ok(items)
    }

    pub async fn registered_limit_list(&self, ctx: &AuthContext) -> ApiResult<Vec<RegisteredLimit>> {
        if !ctx.is_reader() {
            return Err(super::policy::forbidden("list_registered_limits"));
        }
        Ok(self.store.registered_limit_list().await?)
    }

    pub async fn registered_limit_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<RegisteredLimit> {
        if !ctx.is_reader() {
            return Err(super::policy::forbidden("get_registered_limit"));
        }
        self.store.registered_limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("registered limit", id))
    }

    pub async fn registered_limit_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        req: RegisteredLimitUpdate,
    ) -> ApiResult<RegisteredLimit> {
        require_admin(ctx, "update_registered_limit")?;
        let mut l =
            self.store.registered_limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("registered limit", id))?;
        if let Some(v) = req.default_limit {
            check_value("default_limit", v)?;
            l.default_limit = v;
        }
        if let Some(s) = req.service_id {
            l.service_id = s;
        }
        if let Some(r) = req.region_id {
            l.region_id = Some(r).filter(|s| !s.is_empty());
        }
        if let Some(n) = req.resource_name {
            l.resource_name = n;
        }
        if let Some(d) = req.description {
            l.description = d;
        }
        self.check_service_region(&l.service_id, l.region_id.as_deref()).await?;
        self.store.registered_limit_update(&l).await.map_err(write_error("registered limit"))?;
        self.limits_changed().await;
        Ok(l)
    }

    pub async fn registered_limit_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_registered_limit")?;
        let l =
            self.store.registered_limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("registered limit", id))?;
        let in_use =
            self.store.limit_list(None).await?.iter().any(|x| {
                x.service_id == l.service_id && x.resource_name == l.resource_name && x.region_id == l.region_id
            });
        if in_use {
            return Err(ApiError::forbidden("Cannot delete a registered limit that project limits refer to."));
        }
        self.store.registered_limit_delete(id).await?;
        self.limits_changed().await;
        Ok(())
    }

    pub async fn limit_create(&self, ctx: &AuthContext, reqs: Vec<LimitCreate>) -> ApiResult<Vec<Limit>> {
        require_admin(ctx, "create_limits")?;
        if reqs.is_empty() {
            return Err(ApiError::bad_request("Invalid input for field 'limits': it must not be empty."));
        }
        let registered = self.store.registered_limit_list().await?;
        let mut items = Vec::new();
        for r in reqs {
            check_value("resource_limit", r.resource_limit)?;
            if r.domain_id.is_some() {
                return Err(ApiError::bad_request("Domain limits are not supported: the limit model is flat."));
            }
            let project_id = r
                .project_id
                .ok_or_else(|| ApiError::bad_request("Invalid input for field 'project_id': it is required."))?;
            self.store
                .project_fetch(&project_id)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Project {project_id} does not exist.")))?;
            let region_id = r.region_id.filter(|s| !s.is_empty());
            self.check_service_region(&r.service_id, region_id.as_deref()).await?;
            if !registered
                .iter()
                .any(|g| g.service_id == r.service_id && g.resource_name == r.resource_name && g.region_id == region_id)
            {
                return Err(ApiError::forbidden(format!(
                    "The resource {} of service {} has no registered limit; register one first.",
                    r.resource_name, r.service_id
                )));
            }
            items.push(Limit {
                id: new_id(),
                project_id,
                service_id: r.service_id,
                region_id,
                resource_name: r.resource_name,
                resource_limit: r.resource_limit,
                description: r.description.unwrap_or_default(),
            });
        }
        self.store.limit_create_all(&items).await.map_err(write_error("limit"))?;
        self.limits_changed().await;
        Ok(items)
    }

    /// Admins see every limit; others those of the project they are scoped to.
    pub async fn limit_list(&self, ctx: &AuthContext, project_id: Option<&str>) -> ApiResult<Vec<Limit>> {
        if ctx.is_admin() {
            return Ok(self.store.limit_list(project_id).await?);
        }
        match ctx.project_id() {
            Some(own) if project_id.is_none_or(|p| p == own) => Ok(self.store.limit_list(Some(own)).await?),
            _ => Ok(Vec::new()),
        }
    }

    pub async fn limit_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Limit> {
        let l = self.store.limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("limit", id))?;
        if ctx.is_admin() || ctx.project_id() == Some(l.project_id.as_str()) {
            Ok(l)
        } else {
            Err(ApiError::not_found("limit", id))
        }
    }

    pub async fn limit_update(&self, ctx: &AuthContext, id: &str, req: LimitUpdate) -> ApiResult<Limit> {
        require_admin(ctx, "update_limit")?;
        let mut l = self.store.limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("limit", id))?;
        if let Some(v) = req.resource_limit {
            check_value("resource_limit", v)?;
            l.resource_limit = v;
        }
        if let Some(d) = req.description {
            l.description = d;
        }
        self.store.limit_update(&l).await?;
        self.limits_changed().await;
        Ok(l)
    }

    pub async fn limit_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_limit")?;
        self.store.limit_fetch(id).await?.ok_or_else(|| ApiError::not_found("limit", id))?;
        self.store.limit_delete(id).await?;
        self.limits_changed().await;
        Ok(())
    }
}

/// Effective limits read straight from identity's tables (for services running in the
/// same process as identity).
pub struct InProcessLimitsSource {
    store: Store,
}

impl InProcessLimitsSource {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    pub async fn effective(&self, project_id: &str, service_type: &str) -> anyhow::Result<ProjectLimits> {
        let services: Vec<String> = self
            .store
            .service_list()
            .await?
            .into_iter()
            .filter(|s| s.service_type == service_type)
            .map(|s| s.id)
            .collect();
        let mut out = ProjectLimits::new();
        for r in self.store.registered_limit_list().await? {
            if services.contains(&r.service_id) {
                out.insert(r.resource_name, r.default_limit);
            }
        }
        for l in self.store.limit_list(Some(project_id)).await? {
            if services.contains(&l.service_id) {
                out.insert(l.resource_name, l.resource_limit);
            }
        }
        Ok(out)
    }
}

impl LimitsSource for InProcessLimitsSource {
    fn project_limits<'a>(
        &'a self,
        project_id: &'a str,
        service_type: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<ProjectLimits>> {
        Box::pin(self.effective(project_id, service_type))
    }
}
