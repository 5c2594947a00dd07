use super::{param, scope, AppState};
use crate::app::ZONE;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
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
    let set = s.quota_show(&ctx, param(&p, "target"), false).await?;
    Ok(Json(json!({"quota_set": set})))
}

pub async fn quota_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let set = match body.get("quota_set") {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(ApiError::bad_request("Malformed request body: {\"quota_set\": {...}} expected.")),
    };
    let shown = s.quota_update(&ctx, param(&p, "target"), &set).await?;
    Ok(Json(json!({"quota_set": shown})))
}

pub async fn zones(State(_s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    Ok(Json(json!({"availabilityZoneInfo": [{"zoneName": ZONE, "zoneState": {"available": true}}]})))
}

/// `GET /os-services` (admins): the scheduler and one volume service per backend.
pub async fn services(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    if !ctx.is_admin() {
        return Err(ApiError::forbidden("Policy doesn't allow volume_extension:services:index to be performed."));
    }
    let now = now_text();
    let svc = |binary: &str, host: String| {
        json!({"binary": binary, "host": host, "zone": ZONE, "status": "enabled", "state": "up",
               "updated_at": now, "disabled_reason": null})
    };
    let mut list = vec![svc("cinder-scheduler", "stratus".into())];
    let mut backends: Vec<&String> = s.drivers.keys().collect();
    backends.sort();
    for b in backends {
        list.push(svc("cinder-volume", format!("stratus@{b}")));
    }
    Ok(Json(json!({"services": list})))
}
