//! Regions, services, endpoints, and the catalog built from them.

use super::policy::require_admin;
use super::{write_error, Identity};
use crate::store::{new_id, Endpoint, Region, Service};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

const INTERFACES: &[&str] = &["public", "internal", "admin"];

/// One service of the catalog with its enabled endpoints.
#[derive(Debug, Clone)]
pub struct CatalogEntry {
    pub service: Service,
    pub endpoints: Vec<CatalogEndpoint>,
}

#[derive(Debug, Clone)]
pub struct CatalogEndpoint {
    pub id: String,
    pub interface: String,
    pub region_id: Option<String>,
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub struct RegionCreate {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_region_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RegionUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parent_region_id: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ServiceCreate {
    #[serde(rename = "type")]
    pub service_type: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct ServiceUpdate {
    #[serde(default, rename = "type")]
    pub service_type: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointCreate {
    pub service_id: String,
    pub interface: String,
    pub url: String,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub struct EndpointUpdate {
    #[serde(default)]
    pub service_id: Option<String>,
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub region_id: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn check_interface(i: &str) -> ApiResult<()> {
    if INTERFACES.contains(&i) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid input for field 'endpoint.interface': '{i}' is not one of public, internal, admin."
        )))
    }
}

fn check_url(u: &str) -> ApiResult<()> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("Invalid input for field 'endpoint.url': '{u}' is not an http(s) URL.")))
    }
}

fn reader(ctx: &AuthContext, action: &str) -> ApiResult<()> {
    // Anyone with a role somewhere may read the catalog's parts.
    if ctx.is_reader() {
        Ok(())
    } else {
        Err(super::policy::forbidden(action))
    }
}

impl Identity {
    pub async fn region_create(&self, ctx: &AuthContext, req: RegionCreate) -> ApiResult<Region> {
        require_admin(ctx, "create_region")?;
        if let Some(p) = &req.parent_region_id {
            self.store
                .region_fetch(p)
                .await?
                .ok_or_else(|| ApiError::bad_request(format!("Parent region {p} does not exist.")))?;
        }
        let r = Region {
            id: req.id.filter(|s| !s.is_empty()).unwrap_or_else(new_id),
            description: req.description.unwrap_or_default(),
            parent_region_id: req.parent_region_id,
        };
        self.store.region_create(&r).await.map_err(write_error("region"))?;
        self.emit("region", "created", &r.id).await;
        Ok(r)
    }

    pub async fn region_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Region> {
        reader(ctx, "get_region")?;
        self.store.region_fetch(id).await?.ok_or_else(|| ApiError::not_found("region", id))
    }

    pub async fn region_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Region>> {
        reader(ctx, "list_regions")?;
        Ok(self.store.region_list().await?)
    }

    pub async fn region_update(&self, ctx: &AuthContext, id: &str, req: RegionUpdate) -> ApiResult<Region> {
        require_admin(ctx, "update_region")?;
        let mut r = self.store.region_fetch(id).await?.ok_or_else(|| ApiError::not_found("region", id))?;
        if let Some(d) = req.description {
            r.description = d;
        }
        if let Some(p) = req.parent_region_id {
            if p.as_deref() == Some(id) {
                return Err(ApiError::bad_request("A region cannot be its own parent."));
            }
            r.parent_region_id = p;
        }
        self.store.region_update(&r).await?;
        self.invalidate_catalog();
        Ok(r)
    }

    pub async fn region_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_region")?;
        self.store.region_fetch(id).await?.ok_or_else(|| ApiError::not_found("region", id))?;
        if self.store.region_in_use(id).await? {
            return Err(ApiError::forbidden("Cannot delete a region that has endpoints or child regions."));
        }
        self.store.region_delete(id).await?;
        self.emit("region", "deleted", id).await;
        Ok(())
    }

    pub async fn service_create(&self, ctx: &AuthContext, req: ServiceCreate) -> ApiResult<Service> {
        require_admin(ctx, "create_service")?;
        if req.service_type.trim().is_empty() {
            return Err(ApiError::bad_request("Invalid input for field 'service.type': it must not be empty."));
        }
        let s = Service {
            id: new_id(),
            service_type: req.service_type,
            name: req.name.unwrap_or_default(),
            description: req.description.unwrap_or_default(),
            enabled: req.enabled.unwrap_or(true),
        };
        self.store.service_create(&s).await.map_err(write_error("service"))?;
        self.invalidate_catalog();
        self.emit("service", "created", &s.id).await;
        Ok(s)
    }

    pub async fn service_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Service> {
        reader(ctx, "get_service")?;
        self.store.service_fetch(id).await?.ok_or_else(|| ApiError::not_found("service", id))
    }

    pub async fn service_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Service>> {
        reader(ctx, "list_services")?;
        Ok(self.store.service_list().await?)
    }

    pub async fn service_update(&self, ctx: &AuthContext, id: &str, req: ServiceUpdate) -> ApiResult<Service> {
        require_admin(ctx, "update_service")?;
        let mut s = self.store.service_fetch(id).await?.ok_or_else(|| ApiError::not_found("service", id))?;
        if let Some(t) = req.service_type {
            s.service_type = t;
        }
        if let Some(n) = req.name {
            s.name = n;
        }
        if let Some(d) = req.description {
            s.description = d;
        }
        if let Some(e) = req.enabled {
            s.enabled = e;
        }
        self.store.service_update(&s).await?;
        self.invalidate_catalog();
        Ok(s)
    }

    pub async fn service_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_service")?;
        self.store.service_fetch(id).await?.ok_or_else(|| ApiError::not_found("service", id))?;
        self.store.service_delete(id).await?;
        self.invalidate_catalog();
        self.emit("service", "deleted", id).await;
        Ok(())
    }

    async fn check_endpoint_refs(&self, service_id: &str, region_id: Option<&str>) -> ApiResult<()> {
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

    pub async fn endpoint_create(&self, ctx: &AuthContext, req: EndpointCreate) -> ApiResult<Endpoint> {
        require_admin(ctx, "create_endpoint")?;
        check_interface(&req.interface)?;
        check_url(&req.url)?;
        self.legacy_region(req.region_id.as_deref(), req.region.as_deref()).await?;
        let region_id = req.region_id.or(req.region).filter(|r| !r.is_empty());
        self.check_endpoint_refs(&req.service_id, region_id.as_deref()).await?;
        let e = Endpoint {
            id: new_id(),
            service_id: req.service_id,
            interface: req.interface,
            url: req.url,
            region_id,
            enabled: req.enabled.unwrap_or(true),
        };
        self.store.endpoint_create(&e).await.map_err(write_error("endpoint"))?;
        self.invalidate_catalog();
        self.emit("endpoint", "created", &e.id).await;
        Ok(e)
    }

    pub async fn endpoint_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Endpoint> {
        reader(ctx, "get_endpoint")?;
        self.store.endpoint_fetch(id).await?.ok_or_else(|| ApiError::not_found("endpoint", id))
    }

    pub async fn endpoint_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Endpoint>> {
        reader(ctx, "list_endpoints")?;
        Ok(self.store.endpoint_list().await?)
    }

    /// As Keystone: a region named by an endpoint's legacy `region` field (not
    /// `region_id`) is made when it does not exist yet.
    async fn legacy_region(&self, region_id: Option<&str>, region: Option<&str>) -> ApiResult<()> {
        let (None, Some(legacy)) = (region_id, region.filter(|r| !r.is_empty())) else { return Ok(()) };
        if self.store.region_fetch(legacy).await?.is_some() {
            return Ok(());
        }
        let r = Region { id: legacy.to_string(), description: String::new(), parent_region_id: None };
        match self.store.region_create(&r).await {
            Ok(()) => self.emit("region", "created", &r.id).await,
            Err(e) if stratus_common::db::is_unique_violation(&e) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    pub async fn endpoint_update(&self, ctx: &AuthContext, id: &str, req: EndpointUpdate) -> ApiResult<Endpoint> {
        require_admin(ctx, "update_endpoint")?;
        self.legacy_region(req.region_id.as_deref(), req.region.as_deref()).await?;
        let mut e = self.store.endpoint_fetch(id).await?.ok_or_else(|| ApiError::not_found("endpoint", id))?;
        if let Some(s) = req.service_id {
            e.service_id = s;
        }
        if let Some(i) = req.interface {
            check_interface(&i)?;
            e.interface = i;
        }
        if let Some(u) = req.url {
            check_url(&u)?;
            e.url = u;
        }
        if let Some(r) = req.region_id.or(req.region) {
            e.region_id = Some(r).filter(|r| !r.is_empty());
        }
        if let Some(en) = req.enabled {
            e.enabled = en;
        }
        self.check_endpoint_refs(&e.service_id, e.region_id.as_deref()).await?;
        self.store.endpoint_update(&e).await?;
        self.invalidate_catalog();
        Ok(e)
    }

    pub async fn endpoint_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        require_admin(ctx, "delete_endpoint")?;
        self.store.endpoint_fetch(id).await?.ok_or_else(|| ApiError::not_found("endpoint", id))?;
        self.store.endpoint_delete(id).await?;
        self.store.project_filters_forget(None, Some(id)).await?;
        self.invalidate_catalog();
        self.emit("endpoint", "deleted", id).await;
        Ok(())
    }

    /// The catalog, cached until a service or endpoint changes.
    pub async fn catalog(&self) -> ApiResult<Arc<Vec<CatalogEntry>>> {
        if let Some(c) = self.catalog_cache.read().unwrap().clone() {
            return Ok(c);
        }
        let services = self.store.service_list().await?;
        let endpoints = self.store.endpoint_list().await?;
        let entries: Vec<CatalogEntry> = services
            .into_iter()
            .filter(|s| s.enabled)
            .map(|s| {
                let eps = endpoints
                    .iter()
                    .filter(|e| e.service_id == s.id && e.enabled)
                    .map(|e| CatalogEndpoint {
                        id: e.id.clone(),
                        interface: e.interface.clone(),
                        region_id: e.region_id.clone(),
                        url: e.url.clone(),
                    })
                    .collect();
                CatalogEntry { service: s, endpoints: eps }
            })
            .filter(|c| !c.endpoints.is_empty())
            .collect();
        let entries = Arc::new(entries);
        *self.catalog_cache.write().unwrap() = Some(entries.clone());
        Ok(entries)
    }

    /// The catalog as tokens carry it, with `$(project_id)s` filled in; only the
    /// endpoints the project's endpoint filters name, when some do
    /// (`app::endpoint_filters`).
    pub async fn catalog_json(&self, project_id: Option<&str>) -> ApiResult<Value> {
        let catalog = self.catalog().await?;
        let pid = project_id.unwrap_or("");
        let filters = self.endpoint_filters().await?;
        let allowed = match project_id {
            Some(p) if filters.limits(p) => {
                let all: Vec<crate::store::Endpoint> = catalog
                    .iter()
                    .flat_map(|c| {
                        c.endpoints.iter().map(|e| crate::store::Endpoint {
                            id: e.id.clone(),
                            service_id: c.service.id.clone(),
                            interface: e.interface.clone(),
                            url: e.url.clone(),
                            region_id: e.region_id.clone(),
                            enabled: true,
                        })
                    })
                    .collect();
                filters.allowed(p, &all)
            }
            _ => None,
        };
        let shown = |e: &CatalogEndpoint| allowed.as_ref().is_none_or(|a| a.contains(&e.id));
        let list: Vec<Value> = catalog
            .iter()
            .filter(|c| c.endpoints.iter().any(shown))
            .map(|c| {
                json!({
                    "id": c.service.id,
                    "type": c.service.service_type,
                    "name": c.service.name,
                    "endpoints": c.endpoints.iter().filter(|e| shown(e)).map(|e| json!({
                        "id": e.id,
                        "interface": e.interface,
                        "region": e.region_id,
                        "region_id": e.region_id,
                        "url": e.url.replace("$(project_id)s", pid).replace("%(project_id)s", pid)
                            .replace("$(tenant_id)s", pid).replace("%(tenant_id)s", pid),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(Value::Array(list))
    }
}
