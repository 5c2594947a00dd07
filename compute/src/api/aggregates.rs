//! `/os-aggregates` (admin): list, create, show, update, delete, and the actions
//! `add_host`, `remove_host` and `set_metadata` (`app::aggregates`), in Nova's shapes
//! (the `uuid` from 2.41).

use super::error::bad;
use super::{wrapped, AppState};
use crate::microversion::Version;
use crate::store::Aggregate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

/// Nova's view: `created` alone is the create answer's (no hosts, no metadata).
fn view(a: &Aggregate, v: Version, created: bool) -> Value {
    let stamp = |t: &str| t.trim_end_matches('Z').to_string();
    let mut out = json!({
        "id": a.id, "name": a.name, "availability_zone": a.availability_zone,
        "created_at": stamp(&a.created_at), "updated_at": a.updated_at.as_deref().map(stamp),
        "deleted": false, "deleted_at": null,
    });
    if !created {
        out["hosts"] = json!(a.hosts);
        out["metadata"] = Value::Object(a.metadata.clone());
    }
    if v.at_least(41) {
        out["uuid"] = json!(a.uuid);
    }
    out
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, v: Version) -> ApiResult<Json<Value>> {
    let all = s.aggregate_list(&ctx).await?;
    Ok(Json(json!({"aggregates": all.iter().map(|a| view(a, v, false)).collect::<Vec<_>>()})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"aggregate": view(&s.aggregate_get(&ctx, &id).await?, v, false)})))
}

/// A string field, absent, or null (`Some(None)`); anything else is 400.
fn text_or_null<'a>(b: &'a Map<String, Value>, key: &str) -> ApiResult<Option<Option<&'a str>>> {
    match b.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.as_str()))),
        Some(_) => Err(bad(format!("Invalid input for field/attribute {key}: a string is required."))),
    }
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let b = wrapped(body, "aggregate")?;
    let name =
        text_or_null(&b, "name")?.flatten().ok_or_else(|| bad("Invalid input: 'name' is a required property."))?;
    let zone = text_or_null(&b, "availability_zone")?.flatten();
    let a = s.aggregate_create(&ctx, name, zone).await?;
    Ok(Json(json!({"aggregate": view(&a, v, true)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let b = wrapped(body, "aggregate")?;
    if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "name" | "availability_zone")) {
        return Err(bad(format!("Invalid input: additional property {k} is not allowed.")));
    }
    let name = match text_or_null(&b, "name")? {
        Some(None) => return Err(bad("Invalid input for field/attribute name: None is not of type 'string'.")),
        n => n.flatten(),
    };
    let a = s.aggregate_update(&ctx, &id, name, text_or_null(&b, "availability_zone")?).await?;
    Ok(Json(json!({"aggregate": view(&a, v, false)})))
}

/// 200 without a body, as Nova answers.
pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.aggregate_delete(&ctx, &id).await?;
    Ok(StatusCode::OK)
}

/// `add_host`, `remove_host` (`{"host": ...}`) and `set_metadata` (`{"metadata": {...}}`).
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Some((name, arg)) = body.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) else {
        return Err(bad("Invalid input: one action is required."));
    };
    let host = || arg["host"].as_str().ok_or_else(|| bad("Invalid input: 'host' is a required property."));
    let a = match name.as_str() {
        "add_host" => s.aggregate_add_host(&ctx, &id, host()?).await?,
        "remove_host" => s.aggregate_remove_host(&ctx, &id, host()?).await?,
        "set_metadata" => {
            let m =
                arg["metadata"].as_object().ok_or_else(|| bad("Invalid input: 'metadata' is a required object."))?;
            s.aggregate_set_metadata(&ctx, &id, m).await?
        }
        other => return Err(bad(format!("Invalid input: unknown aggregate action {other}."))),
    };
    Ok(Json(json!({"aggregate": view(&a, v, false)})))
}
