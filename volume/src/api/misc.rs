use super::{param, scope, AppState};
use crate::app::ZONE;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

pub async fn limits(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let absolute = s.absolute_limits(&ctx).await?;
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})))
}

pub async fn quota_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let usage = q.get("usage").is_some_and(|v| stratus_common::http::pagination::parse_bool(v).unwrap_or(false));
    let set = s.quota_show(&ctx, param(&p, "target"), usage).await?;
    Ok(Json(json!({"quota_set": set})))
}

pub async fn quota_defaults(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let set = s.quota_defaults(&ctx, param(&p, "target")).await?;
    Ok(Json(json!({"quota_set": set})))
}

/// `GET /os-quota-class-sets/default`: every project's defaults.
pub async fn quota_class_show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    Ok(Json(json!({"quota_class_set": s.quota_class_show(&ctx, param(&p, "class")).await?})))
}

/// `PUT /os-quota-class-sets/default` (admins): changes every project's defaults.
pub async fn quota_class_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let set = stratus_common::http::wrapped(body, "quota_class_set")?;
    Ok(Json(json!({"quota_class_set": s.quota_class_update(&ctx, param(&p, "class"), &set).await?})))
}

pub async fn quota_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let set = stratus_common::http::wrapped(body, "quota_set")?;
    let shown = s.quota_update(&ctx, param(&p, "target"), &set).await?;
    Ok(Json(json!({"quota_set": shown})))
}

pub async fn quota_delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.quota_delete(&ctx, param(&p, "target")).await?;
    Ok(StatusCode::OK)
}

pub async fn zones(State(_s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    Ok(Json(json!({"availabilityZoneInfo": [{"zoneName": ZONE, "zoneState": {"available": true}}]})))
}

/// `GET /scheduler-stats/get_pools[?detail=true]` (admins): each backend as a pool.
pub async fn pools(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let detail = q.get("detail").and_then(|d| stratus_common::http::pagination::parse_bool(d)).unwrap_or(false);
    Ok(Json(json!({"pools": s.pools(&ctx, detail).await?})))
}

/// `GET /capabilities/{host}` (admins): what a backend offers.
pub async fn capabilities(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let host = p.get("host").map(String::as_str).unwrap_or_default();
    Ok(Json(s.backend_capabilities(&ctx, host).await?))
}

/// `GET /os-services` (admins): the scheduler and one volume service per backend.
pub async fn services(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    version: Version,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    if !ctx.is_admin() {
        return Err(ApiError::forbidden("Policy doesn't allow volume_extension:services:index to be performed."));
    }
    let now = now_text();
    let mut list: Vec<Value> = Vec::new();
    for r in s.service_rows().await? {
        let mut svc = json!({"binary": r.binary, "host": r.host, "zone": ZONE,
               "status": if r.disabled.is_some() { "disabled" } else { "enabled" }, "state": "up",
               "updated_at": now, "disabled_reason": r.disabled.filter(|why| !why.is_empty())});
        // 3.49: whether a volume service's storage answers (asked only then).
        if let Some(backend) = r.backend.filter(|_| version.at_least(49)) {
            svc["backend_state"] = json!(if s.backend_up(&backend).await { "up" } else { "down" });
        }
        list.push(svc);
    }
    // Cinder's filters: `binary`, and `host` as Cinder matches it (`h` is host h and
    // its backends `h@b`; `h@b#pool` is backend `h@b`).
    list.retain(|svc| {
        q.get("binary").is_none_or(|b| svc["binary"] == json!(b))
            && q.get("host").is_none_or(|h| host_matches(svc["host"].as_str().unwrap_or_default(), h))
    });
    Ok(Json(json!({"services": list})))
}

/// `GET /os-hosts` (admins; Cinder's deprecated host listing): every service's host.
pub async fn hosts(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    if !ctx.is_admin() {
        return Err(ApiError::forbidden("Policy doesn't allow volume_extension:hosts to be performed."));
    }
    let now = now_text();
    let hosts: Vec<Value> = s
        .service_rows()
        .await?
        .into_iter()
        .map(|r| {
            json!({"host_name": r.host, "service": r.binary, "zone": ZONE, "service-status": "available",
                   "service-state": if r.disabled.is_some() { "disabled" } else { "enabled" }, "last-update": now})
        })
        .collect();
    Ok(Json(json!({"hosts": hosts})))
}

/// `GET /os-hosts/{host}` (admins): what a backend's volumes and snapshots take.
pub async fn host_show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let host = param(&p, "host");
    let rows: Vec<Value> = s
        .host_usage(&ctx, host)
        .await?
        .into_iter()
        .map(|u| {
            json!({"resource": {"host": host, "project": u.project, "volume_count": u.volume_count.to_string(),
                                "total_volume_gb": u.volume_gb.to_string(), "snapshot_count": u.snapshot_count.to_string(),
                                "total_snapshot_gb": u.snapshot_gb.to_string()}})
        })
        .collect();
    Ok(Json(json!({"host": rows})))
}

/// `PUT /os-services/{action}`: enable, disable (with a reason) a backend.
pub async fn service_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let action = p.get("action").map(String::as_str).unwrap_or_default();
    Ok(Json(s.service_update(&ctx, action, &body).await?))
}

/// Whether a service on `host` (`h` or `h@backend`) answers Cinder's `host` filter.
fn host_matches(host: &str, filter: &str) -> bool {
    let filter = filter.split('#').next().unwrap_or_default();
    host == filter || (!filter.contains('@') && host.split('@').next() == Some(filter))
}

/// Cinder's API extensions this service has, as `GET /extensions` lists them.
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("os-admin-actions", "AdminActions", "Enable admin actions."),
    ("os-availability-zone", "AvailabilityZones", "Describe Availability Zones."),
    ("os-extended-snapshot-attributes", "ExtendedSnapshotAttributes", "Extended SnapshotAttributes support."),
    ("os-quota-sets", "Quotas", "Quota management support."),
    ("os-services", "Services", "Services support."),
    ("os-types-extra-specs", "TypesExtraSpecs", "Type extra specs support."),
    ("os-types-manage", "TypesManage", "Types manage support."),
    ("os-vol-host-attr", "VolumeHostAttribute", "Expose host as an attribute of a volume."),
    ("os-vol-image-meta", "VolumeImageMetadata", "Show image metadata associated with the volume."),
    ("os-vol-mig-status-attr", "VolumeMigStatusAttribute", "Expose migration_status as an attribute of a volume."),
    ("os-vol-tenant-attr", "VolumeTenantAttribute", "Expose the internal project_id as an attribute of a volume."),
    ("os-volume-actions", "VolumeActions", "Enable volume actions."),
    ("os-volume-transfer", "VolumeTransfer", "Volume transfer management support."),
];

/// `GET /extensions`.
pub async fn extensions(ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name, description)| {
            json!({"alias": alias, "name": name, "description": description, "links": [],
                   "updated": "2025-01-01T00:00:00+00:00"})
        })
        .collect();
    Ok(Json(json!({ "extensions": list })))
}
