//! `/backups`: create, list, show, update (3.9), delete, restore, the admin actions
//! (`os-reset_status`, `os-force_delete`) and export/import of records.

use super::{action_of, all_projects, list_page, param, scope, typed, views, AppState};
use crate::app::backups::{BackupCreate, BackupRestore, BackupUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

async fn listing(
    s: AppState,
    ctx: AuthContext,
    version: Version,
    p: HashMap<String, String>,
    q: HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let (list, parents) = s.backup_list(&ctx, all_projects(&q)).await?;
    let items = list
        .iter()
        .map(|b| views::backup(&s.public_url, b, detail, parents.contains(&b.id), ctx.is_admin(), version))
        .collect();
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "backups",
        if detail { "backups/detail" } else { "backups" },
        items,
        &q,
        super::Fields {
            filter: &["name", "status", "volume_id"],
            sort: &["name", "description", "status", "size", "created_at", "updated_at", "volume_id"],
        },
    )
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, version, p, q, false).await
}

pub async fn list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    listing(s, ctx, version, p, q, true).await
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let req: BackupCreate = typed(body, "backup")?;
    let b = s.backup_create(&ctx, req).await?;
    let shown = views::backup(&s.public_url, &b, false, false, ctx.is_admin(), version);
    Ok((StatusCode::ACCEPTED, Json(json!({"backup": shown}))))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let b = s.backup_get(&ctx, param(&p, "id")).await?;
    let dependents = s.backup_has_dependents(&b.id).await?;
    Ok(Json(json!({"backup": views::backup(&s.public_url, &b, true, dependents, ctx.is_admin(), version)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    super::since(version, 9)?;
    let req: BackupUpdate = typed(body, "backup")?;
    if req.metadata.is_some() {
        super::since(version, 43)?;
    }
    let b = s.backup_update(&ctx, param(&p, "id"), req).await?;
    Ok(Json(json!({"backup": views::backup(&s.public_url, &b, false, false, ctx.is_admin(), version)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.backup_delete(&ctx, param(&p, "id"), false).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /backups/{id}/action`: `os-reset_status` and `os-force_delete` (admins).
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let id = param(&p, "id");
    let (name, args) = action_of(body)?;
    match name.as_str() {
        "os-reset_status" => {
            let status =
                args["status"].as_str().ok_or_else(|| ApiError::bad_request("os-reset_status needs a status."))?;
            s.backup_reset_status(&ctx, id, status).await?
        }
        "os-force_delete" => s.backup_delete(&ctx, id, true).await?,
        other => {
            return Err(ApiError::bad_request(format!("The backup action {other} is not supported by this cloud.")))
        }
    }
    Ok(StatusCode::ACCEPTED)
}

pub async fn restore(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let req: BackupRestore = typed(body, "restore")?;
    let r = s.backup_restore(&ctx, param(&p, "id"), req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"restore": r}))))
}

pub async fn export_record(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let (service, url) = s.backup_export(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"backup-record": {"backup_service": service, "backup_url": url}})))
}

pub async fn import_record(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    let record = super::body_of(body, "backup-record")?;
    let field = |k: &str| {
        record.get(k).and_then(|v| v.as_str()).ok_or_else(|| ApiError::bad_request(format!("backup-record needs {k}.")))
    };
    let b = s.backup_import(&ctx, field("backup_service")?, field("backup_url")?).await?;
    Ok((StatusCode::CREATED, Json(json!({"backup": views::backup(&s.public_url, &b, false, false, true, version)}))))
}
