//! `/groups` (3.13+) and `/group_snapshots` (3.14+): generic volume groups.

use super::{action_of, all_projects, list_page, param, scope, since, typed, AppState};
use crate::app::groups::{GroupCreate, GroupFromSource, GroupSnapshotCreate, GroupUpdate};
use crate::store::{Group, GroupSnapshot};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;
type Q = Query<HashMap<String, String>>;

/// A group: `id` and `name` alone, or the whole (with its volumes' ids from 3.25 when
/// asked with `list_volume`).
async fn group_view(s: &AppState, g: &Group, detail: bool, volumes: bool, v: Version) -> ApiResult<Value> {
    if !detail {
        return Ok(json!({"id": g.id, "name": g.name}));
    }
    let mut out = json!({
        "id": g.id, "name": g.name, "description": g.description, "status": g.status.as_str(),
        "availability_zone": crate::app::ZONE, "created_at": g.created_at, "group_type": g.group_type_id,
        "volume_types": g.volume_type_ids,
    });
    if v.at_least(14) {
        out["group_snapshot_id"] = json!(g.group_snapshot_id);
        out["source_group_id"] = json!(g.source_group_id);
    }
    if v.at_least(25) && volumes {
        let ids: Vec<String> = s.group_volumes(g).await?.into_iter().map(|v| v.id).collect();
        out["volumes"] = json!(ids);
    }
    if v.at_least(38) {
        out["replication_status"] = json!("disabled");
    }
    if v.at_least(58) {
        out["project_id"] = json!(g.project_id);
    }
    Ok(out)
}

fn snapshot_view(s: &GroupSnapshot, detail: bool, v: Version) -> Value {
    if !detail {
        return json!({"id": s.id, "name": s.name});
    }
    let mut out = json!({"id": s.id, "name": s.name, "description": s.description, "status": s.status.as_str(),
           "created_at": s.created_at, "group_id": s.group_id, "group_type_id": s.group_type_id});
    if v.at_least(58) {
        out["project_id"] = json!(s.project_id);
    }
    out
}

fn list_volume(q: &mut HashMap<String, String>) -> bool {
    q.remove("list_volume").is_some_and(|v| stratus_common::http::pagination::parse_bool(&v).unwrap_or(false))
}

async fn groups_listing(
    s: AppState,
    ctx: AuthContext,
    v: Version,
    p: HashMap<String, String>,
    mut q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 13)?;
    let volumes = list_volume(&mut q);
    let mut items = Vec::new();
    for g in s.group_list(&ctx, all_projects(&q)).await? {
        items.push(group_view(&s, &g, detail, volumes, v).await?);
    }
    let path = if detail { "groups/detail" } else { "groups" };
    let fields = super::Fields { filter: &["name", "status"], sort: &["name", "status", "created_at"] };
    list_page(&s.public_url, param(&p, "project_id"), "groups", path, items, &q, fields)
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    groups_listing(s, ctx, v, p, q, false).await
}

pub async fn list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    groups_listing(s, ctx, v, p, q, true).await
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    since(v, 13)?;
    let req: GroupCreate = typed(body, "group")?;
    let g = s.group_create(&ctx, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"group": {"id": g.id, "name": g.name}}))))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(mut q): Q,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 13)?;
    let g = s.group_get(&ctx, param(&p, "id")).await?;
    let volumes = list_volume(&mut q);
    Ok(Json(json!({"group": group_view(&s, &g, true, volumes, v).await?})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 13)?;
    let req: GroupUpdate = typed(body, "group")?;
    s.group_update(&ctx, param(&p, "id"), req).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /groups/{id}/action`: `delete` (`delete-volumes`), `reset_status` (3.20).
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 13)?;
    let id = param(&p, "id");
    let (name, args) = action_of(body)?;
    match name.as_str() {
        "delete" => {
            let delete_volumes = crate::app::flag("delete-volumes", args.get("delete-volumes"))?;
            s.group_delete(&ctx, id, delete_volumes).await?
        }
        "reset_status" => {
            since(v, 20)?;
            let status =
                args["status"].as_str().ok_or_else(|| ApiError::bad_request("reset_status needs a status."))?;
            s.group_reset_status(&ctx, id, status).await?
        }
        other => {
            return Err(ApiError::bad_request(format!("The group action {other} is not supported by this cloud.")))
        }
    }
    Ok(StatusCode::ACCEPTED)
}

/// `POST /groups/action`: `create-from-src` (3.14).
pub async fn create_from_src(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    since(v, 14)?;
    let req: GroupFromSource = typed(body, "create-from-src")?;
    let g = s.group_create_from_src(&ctx, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"group": {"id": g.id, "name": g.name}}))))
}

async fn snapshots_listing(
    s: AppState,
    ctx: AuthContext,
    v: Version,
    p: HashMap<String, String>,
    q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 14)?;
    let items =
        s.group_snapshot_list(&ctx, all_projects(&q)).await?.iter().map(|x| snapshot_view(x, detail, v)).collect();
    let path = if detail { "group_snapshots/detail" } else { "group_snapshots" };
    let fields = super::Fields { filter: &["name", "status", "group_id"], sort: &["name", "status", "created_at"] };
    list_page(&s.public_url, param(&p, "project_id"), "group_snapshots", path, items, &q, fields)
}

pub async fn snapshots(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    snapshots_listing(s, ctx, v, p, q, false).await
}

pub async fn snapshots_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    snapshots_listing(s, ctx, v, p, q, true).await
}

pub async fn snapshot_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    since(v, 14)?;
    let req: GroupSnapshotCreate = typed(body, "group_snapshot")?;
    let gs = s.group_snapshot_create(&ctx, req).await?;
    let shown = json!({"id": gs.id, "name": gs.name, "group_type_id": gs.group_type_id});
    Ok((StatusCode::ACCEPTED, Json(json!({"group_snapshot": shown}))))
}

pub async fn snapshot_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    since(v, 14)?;
    let gs = s.group_snapshot_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"group_snapshot": snapshot_view(&gs, true, v)})))
}

pub async fn snapshot_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 14)?;
    s.group_snapshot_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /group_snapshots/{id}/action`: `reset_status` (3.19).
pub async fn snapshot_action(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    since(v, 19)?;
    let (name, args) = action_of(body)?;
    if name != "reset_status" {
        return Err(ApiError::bad_request(format!("The group snapshot action {name} is not supported by this cloud.")));
    }
    let status = args["status"].as_str().ok_or_else(|| ApiError::bad_request("reset_status needs a status."))?;
    s.group_snapshot_reset_status(&ctx, param(&p, "id"), status).await?;
    Ok(StatusCode::ACCEPTED)
}
