use super::views::TypeView;
use super::{list_page, param, scope, typed, views, AppState};
use crate::app::types::TypeRequest;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
    version: Version,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let mut q = q;
    // 3.52: `extra_specs={"k": "v", ...}` keeps the types that have every pair.
    let wanted: Option<HashMap<String, Value>> = match q.remove("extra_specs") {
        Some(text) if version.at_least(52) => Some(
            serde_json::from_str(&text)
                .map_err(|_| ApiError::bad_request("Invalid input: extra_specs filter must be a JSON object."))?,
        ),
        _ => None,
    };
    let items = s
        .type_list(&ctx)
        .await?
        .iter()
        .filter(|t| {
            wanted.as_ref().is_none_or(|w| {
                let text = |x: &Value| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string());
                w.iter().all(|(k, v)| t.extra_specs.get(k).is_some_and(|have| text(have) == text(v)))
            })
        })
        .map(|t| views::volume_type(t, TypeView::Show))
        .collect();
    q.remove("is_public");
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "volume_types",
        "types",
        items,
        &q,
        super::Fields { filter: &["name"], sort: &["name", "description", "is_public"] },
    )
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let req: TypeRequest = typed(body, "volume_type")?;
    let t = s.type_create(&ctx, req).await?;
    Ok(Json(json!({"volume_type": views::volume_type(&t, TypeView::Created)})))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let t = s.type_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"volume_type": views::volume_type(&t, TypeView::Show)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let req: TypeRequest = typed(body, "volume_type")?;
    let t = s.type_update(&ctx, param(&p, "id"), req).await?;
    Ok(Json(json!({"volume_type": views::volume_type(&t, TypeView::Updated)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.type_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn specs(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let t = s.type_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"extra_specs": t.extra_specs})))
}

pub async fn specs_set(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let specs = match body.get("extra_specs") {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(ApiError::bad_request("Malformed request body: {\"extra_specs\": {...}} expected.")),
    };
    s.type_specs_set(&ctx, param(&p, "id"), specs.clone()).await?;
    // As Cinder: the answer holds the specs of the request.
    Ok(Json(json!({ "extra_specs": specs })))
}

/// `GET /types/{id}/extra_specs/{key}`: `{key: value}`.
pub async fn spec_show(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let key = param(&p, "key");
    let t = s.type_get(&ctx, param(&p, "id")).await?;
    let v = t.extra_specs.get(key).ok_or_else(|| ApiError::not_found("Volume type extra spec", key))?;
    Ok(Json(json!({ key: v })))
}

/// `PUT /types/{id}/extra_specs/{key}` with `{key: value}`: exactly that key.
pub async fn spec_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let key = param(&p, "key");
    let specs = match body {
        Value::Object(m) if m.len() == 1 && m.contains_key(key) => m,
        _ => {
            return Err(ApiError::bad_request(
                "Request body and URI mismatch: the body must hold exactly the key of the URI.",
            ))
        }
    };
    s.type_specs_set(&ctx, param(&p, "id"), specs.clone()).await?;
    Ok(Json(Value::Object(specs)))
}

pub async fn spec_unset(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    s.type_spec_unset(&ctx, param(&p, "id"), param(&p, "key")).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /types/{id}/os-volume-type-access`: the projects a private type was given.
pub async fn access_list(State(s): State<AppState>, ctx: AuthContext, Path(p): Params) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let (id, projects) = s.type_access_list(&ctx, param(&p, "id")).await?;
    let list: Vec<Value> = projects.iter().map(|pr| json!({"volume_type_id": id, "project_id": pr})).collect();
    Ok(Json(json!({"volume_type_access": list})))
}

/// `POST /types/{id}/action`: `addProjectAccess` / `removeProjectAccess`.
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    let (name, args) = super::action_of(body)?;
    let add = match name.as_str() {
        "addProjectAccess" => true,
        "removeProjectAccess" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown action {other}: use addProjectAccess or removeProjectAccess."
            )))
        }
    };
    let project = args["project"].as_str().ok_or_else(|| ApiError::bad_request("The action needs a project."))?;
    s.type_access_change(&ctx, param(&p, "id"), project, add).await?;
    Ok(StatusCode::ACCEPTED)
}
