use super::views::VolumeView;
use super::{all_projects, list_page, param, scope, since, typed, views, AppState};
use crate::app::volumes::{VolumeCreate, VolumeUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::request_id::RequestId;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

/// The version reverting to a snapshot came in.
const REVERT: u16 = 40;

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
    let mut vols = s.volume_list(&ctx, all_projects(&q)).await?;
    // An admin listing every project's may name one (`project_id`, or `tenant_id`).
    if let Some(project) = q.get("project_id").or(q.get("tenant_id")).filter(|_| ctx.is_admin()) {
        vols.retain(|v| &v.project_id == project);
    }
    let names = s.type_names().await?;
    let items = vols
        .iter()
        .map(|v| {
            let mut full = views::volume(&s.public_url, v, &names, s.admin_host(&ctx, v), VolumeView::Detail, version);
            if !detail {
                // Filters apply to the full volume; the brief form is cut after.
                let brief = views::volume_brief(&s.public_url, v);
                full["_brief"] = brief;
            }
            full
        })
        .collect();
    let mut page = list_page(
        &s.public_url,
        param(&p, "project_id"),
        "volumes",
        if detail { "volumes/detail" } else { "volumes" },
        items,
        &q,
        super::Fields {
            filter: &["name", "status", "bootable", "availability_zone", "volume_type", "group_id"],
            sort: &[
                "name",
                "description",
                "status",
                "size",
                "availability_zone",
                "created_at",
                "updated_at",
                "bootable",
                "volume_type",
            ],
        },
    )?;
    if !detail {
        if let Some(list) = page.0["volumes"].as_array_mut() {
            for v in list.iter_mut() {
                *v = v["_brief"].take();
            }
        }
    }
    Ok(page)
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

async fn shown(
    s: &AppState,
    ctx: &AuthContext,
    v: &crate::store::Volume,
    view: VolumeView,
    version: Version,
) -> ApiResult<Value> {
    let names = s.type_names().await?;
    Ok(json!({"volume": views::volume(&s.public_url, v, &names, s.admin_host(ctx, v), view, version)}))
}

/// What a volume create may hold from 3.53 (Cinder's request schema).
const CREATE_KEYS: &[&str] = &[
    "name",
    "description",
    "display_name",
    "display_description",
    "volume_type",
    "metadata",
    "snapshot_id",
    "source_volid",
    "consistencygroup_id",
    "size",
    "availability_zone",
    "multiattach",
    "image_id",
    "imageRef",
    "group_id",
    "backup_id",
];
/// What a volume update may hold from 3.53; it must hold one of them.
const UPDATE_KEYS: &[&str] = &["name", "description", "display_name", "display_description", "metadata"];

/// 3.53's schema check of a `{"volume": {...}}` body: no key but `allowed`, and with
/// `one_needed` at least one of them.
fn strict(body: &Value, allowed: &[&str], one_needed: bool) -> ApiResult<()> {
    let Some(v) = body.get("volume").and_then(Value::as_object) else { return Ok(()) };
    if let Some(k) = v.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute volume. Additional properties are not allowed ('{k}' was unexpected)."
        )));
    }
    if one_needed && v.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute volume: give at least one of {}.",
            allowed.join(", ")
        )));
    }
    Ok(())
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Extension(request): Extension<RequestId>,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    if version.at_least(53) {
        strict(&body, CREATE_KEYS, false)?;
    }
    let mut req: VolumeCreate = typed(body, "volume")?;
    req.request_id = request.0;
    // In the URL's project: the caller's own, or any for an admin (compute makes a
    // server's boot volume in the server's project this way).
    let v = s.volume_create(&ctx, param(&p, "project_id"), req).await?;
    Ok((StatusCode::ACCEPTED, Json(shown(&s, &ctx, &v, VolumeView::Summary, version).await?)))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let v = s.volume_get(&ctx, param(&p, "id")).await?;
    Ok(Json(shown(&s, &ctx, &v, VolumeView::Detail, version).await?))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    if version.at_least(53) {
        strict(&body, UPDATE_KEYS, true)?;
    }
    let req: VolumeUpdate = typed(body, "volume")?;
    let v = s.volume_update(&ctx, param(&p, "id"), req).await?;
    Ok(Json(shown(&s, &ctx, &v, VolumeView::Summary, version).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let cascade = q.get("cascade").and_then(|c| stratus_common::http::pagination::parse_bool(c)).unwrap_or(false);
    s.volume_delete(&ctx, param(&p, "id"), cascade).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /volumes/{id}/action`: `os-extend`, `os-set_bootable`, `os-reset_status`,
/// `os-volume_upload_image`, and the attach steps compute takes (`app::attachments`).
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    scope(&ctx, &p)?;
    let id = param(&p, "id");
    let (name, args) = super::action_of(body)?;
    match name.as_str() {
        "os-extend" => {
            let size =
                args.get("new_size").cloned().ok_or_else(|| ApiError::bad_request("os-extend needs new_size."))?;
            // 3.42: attached volumes too.
            s.volume_extend(&ctx, id, &size, version.at_least(42)).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "revert" => {
            since(version, REVERT)?;
            let snap =
                args["snapshot_id"].as_str().ok_or_else(|| ApiError::bad_request("revert needs snapshot_id."))?;
            s.volume_revert(&ctx, id, snap).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-set_image_metadata" => {
            let items = args["metadata"]
                .as_object()
                .ok_or_else(|| ApiError::bad_request("os-set_image_metadata needs a metadata object."))?;
            let meta = s.volume_image_metadata_set(&ctx, id, items).await?;
            Ok(Json(json!({"metadata": meta})).into_response())
        }
        "os-unset_image_metadata" => {
            let key =
                args["key"].as_str().ok_or_else(|| ApiError::bad_request("os-unset_image_metadata needs a key."))?;
            s.volume_image_metadata_unset(&ctx, id, key).await?;
            Ok(StatusCode::OK.into_response())
        }
        "os-show_image_metadata" => {
            let v = s.volume_get(&ctx, id).await?;
            Ok(Json(json!({"metadata": v.image_meta})).into_response())
        }
        "os-set_bootable" => {
            let b = match &args["bootable"] {
                Value::Bool(b) => *b,
                Value::String(t) => stratus_common::http::pagination::parse_bool(t)
                    .ok_or_else(|| ApiError::bad_request(format!("Invalid value for bootable: {t}")))?,
                _ => return Err(ApiError::bad_request("os-set_bootable needs bootable: true or false.")),
            };
            s.volume_set_bootable(&ctx, id, b).await?;
            Ok(StatusCode::OK.into_response())
        }
        "os-update_readonly_flag" => {
            let ro = match &args["readonly"] {
                Value::Bool(b) => *b,
                Value::String(t) => stratus_common::http::pagination::parse_bool(t)
                    .ok_or_else(|| ApiError::bad_request(format!("Invalid value for readonly: {t}")))?,
                _ => return Err(ApiError::bad_request("os-update_readonly_flag needs readonly: true or false.")),
            };
            s.volume_set_readonly(&ctx, id, ro).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-reset_status" => {
            let status = args["status"].as_str();
            let attach_status = args["attach_status"].as_str();
            if status.is_none() && attach_status.is_none() {
                return Err(ApiError::bad_request("os-reset_status needs status or attach_status."));
            }
            s.volume_reset_status(&ctx, id, status, attach_status).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-volume_upload_image" => {
            let req: crate::app::images::UploadRequest = serde_json::from_value(args)
                .map_err(|e| ApiError::bad_request(format!("Invalid input for os-volume_upload_image: {e}")))?;
            let out = s.volume_upload(&ctx, id, req).await?;
            Ok((StatusCode::ACCEPTED, Json(json!({"os-volume_upload_image": out}))).into_response())
        }
        "os-reserve" => {
            s.volume_reserve(&ctx, id, args["instance_uuid"].as_str()).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-unreserve" => {
            s.volume_unreserve(&ctx, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-initialize_connection" => {
            if !args["connector"].is_object() {
                return Err(ApiError::bad_request("os-initialize_connection needs a connector."));
            }
            let info = s.volume_connection(&ctx, id, &args["connector"]).await?;
            Ok(Json(json!({"connection_info": info})).into_response())
        }
        "os-terminate_connection" => {
            if !args["connector"].is_object() {
                return Err(ApiError::bad_request("os-terminate_connection needs a connector."));
            }
            s.volume_disconnect(&ctx, id, &args["connector"]).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-attach" => {
            let req: crate::app::attachments::AttachRequest = serde_json::from_value(args)
                .map_err(|e| ApiError::bad_request(format!("Invalid input for os-attach: {e}")))?;
            s.volume_attach(&ctx, id, req).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-begin_detaching" => {
            s.volume_begin_detaching(&ctx, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-roll_detaching" => {
            s.volume_roll_detaching(&ctx, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-detach" => {
            s.volume_detach(&ctx, id, args["attachment_id"].as_str()).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-retype" => {
            let new_type =
                args["new_type"].as_str().ok_or_else(|| ApiError::bad_request("os-retype needs new_type."))?;
            let policy = args["migration_policy"].as_str().unwrap_or("never");
            s.volume_retype(&ctx, id, new_type, policy).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-force_delete" => {
            s.volume_force_delete(&ctx, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        // Cinder 3.71's: the compute service says whether an attached volume's guest
        // disk grew (taken at any version: it is a service's call).
        "os-extend_volume_completion" => {
            let error = match args.get("error") {
                Some(Value::Bool(b)) => *b,
                _ => return Err(ApiError::bad_request("os-extend_volume_completion needs error: true or false.")),
            };
            s.volume_extend_completion(&ctx, id, error).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        "os-force_detach" => {
            s.volume_force_detach(&ctx, id).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        other => Err(ApiError::bad_request(format!("The volume action {other} is not supported by this cloud."))),
    }
}

/// `GET /volumes/summary` (3.12; `metadata` 3.36): how many volumes the caller's
/// project (or, for an admin asking, every project) has, their GiB, and the values each
/// metadata key takes.
pub async fn summary(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    since(version, 12)?;
    scope(&ctx, &p)?;
    let vols = s.volume_list(&ctx, all_projects(&q)).await?;
    let mut out = json!({
        "total_count": vols.len(),
        "total_size": vols.iter().map(|v| v.size).sum::<i64>(),
    });
    if version.at_least(36) {
        let mut meta: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> = Default::default();
        for v in &vols {
            for (k, val) in &v.metadata {
                meta.entry(k).or_default().insert(val.as_str().unwrap_or_default());
            }
        }
        out["metadata"] = json!(meta);
    }
    Ok(Json(json!({"volume-summary": out})))
}
