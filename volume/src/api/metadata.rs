//! Metadata of volumes and snapshots: `/{volumes|snapshots}/{id}/metadata[/{key}]`,
//! the same calls for both, as Cinder has them.

use super::{param, scope, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

type Params = Path<HashMap<String, String>>;

/// Whose metadata a route reaches.
#[derive(Clone, Copy)]
pub enum Owner {
    Volume,
    Snapshot,
}

/// One change to the metadata.
enum Change<'a> {
    Merge(Map<String, Value>),
    Replace(Map<String, Value>),
    Remove(&'a str),
}

async fn read(s: &AppState, ctx: &AuthContext, owner: Owner, id: &str) -> ApiResult<Map<String, Value>> {
    Ok(match owner {
        Owner::Volume => s.volume_get(ctx, id).await?.metadata,
        Owner::Snapshot => s.snapshot_get(ctx, id).await?.metadata,
    })
}

async fn change(
    s: &AppState,
    ctx: &AuthContext,
    owner: Owner,
    id: &str,
    c: Change<'_>,
) -> ApiResult<Map<String, Value>> {
    Ok(match (owner, c) {
        (Owner::Volume, Change::Merge(m)) => s.volume_metadata_set(ctx, id, m, false).await?,
        (Owner::Volume, Change::Replace(m)) => s.volume_metadata_set(ctx, id, m, true).await?,
        (Owner::Volume, Change::Remove(k)) => {
            s.volume_metadata_unset(ctx, id, k).await?;
            Map::new()
        }
        (Owner::Snapshot, Change::Merge(m)) => s.snapshot_metadata_change(ctx, id, m, false, None).await?,
        (Owner::Snapshot, Change::Replace(m)) => s.snapshot_metadata_change(ctx, id, m, true, None).await?,
        (Owner::Snapshot, Change::Remove(k)) => s.snapshot_metadata_change(ctx, id, Map::new(), false, Some(k)).await?,
    })
}

/// The object under `key` in the body (`metadata` or `meta`).
fn items(body: Value, key: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(items)) => Ok(items),
            _ => Err(ApiError::bad_request(format!("Malformed request body: {{\"{key}\": {{...}}}} expected."))),
        },
        _ => Err(ApiError::bad_request(format!("Malformed request body: {{\"{key}\": {{...}}}} expected."))),
    }
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    owner: Owner,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    Ok(Json(json!({"metadata": read(&s, &ctx, owner, param(&p, "id")).await?})))
}

/// `POST` merges, `PUT` replaces.
pub async fn set(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    owner: Owner,
    replace: bool,
    body: Value,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let m = items(body, "metadata")?;
    let c = if replace { Change::Replace(m) } else { Change::Merge(m) };
    Ok(Json(json!({"metadata": change(&s, &ctx, owner, param(&p, "id"), c).await?})))
}

pub async fn item_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    owner: Owner,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let key = param(&p, "key");
    let m = read(&s, &ctx, owner, param(&p, "id")).await?;
    let v = m.get(key).ok_or_else(|| ApiError::not_found("Metadata key", key))?;
    Ok(Json(json!({"meta": {key: v}})))
}

/// `PUT …/metadata/{key}` with `{"meta": {key: value}}`: exactly that one key.
pub async fn item_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    owner: Owner,
    body: Value,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let key = param(&p, "key");
    let m = items(body, "meta")?;
    if m.len() != 1 || !m.contains_key(key) {
        return Err(ApiError::bad_request(
            "Request body and URI mismatch: the body must hold exactly the key of the URI.",
        ));
    }
    change(&s, &ctx, owner, param(&p, "id"), Change::Merge(m.clone())).await?;
    Ok(Json(json!({"meta": m})))
}

pub async fn item_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Params,
    owner: Owner,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    change(&s, &ctx, owner, param(&p, "id"), Change::Remove(param(&p, "key"))).await?;
    Ok(StatusCode::OK)
}

/// The routes for one owner (`volumes` or `snapshots`) under the project prefix.
pub fn routes(prefix: &str, collection: &str, owner: Owner) -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route(
            &format!("{prefix}/{collection}/{{id}}/metadata"),
            get(move |st, c, p| list(st, c, p, owner))
                .post(move |st, c, p, ApiJson(b): ApiJson<Value>| set(st, c, p, owner, false, b))
                .put(move |st, c, p, ApiJson(b): ApiJson<Value>| set(st, c, p, owner, true, b)),
        )
        .route(
            &format!("{prefix}/{collection}/{{id}}/metadata/{{key}}"),
            get(move |st, c, p| item_show(st, c, p, owner))
                .put(move |st, c, p, ApiJson(b): ApiJson<Value>| item_put(st, c, p, owner, b))
                .delete(move |st, c, p| item_delete(st, c, p, owner)),
        )
}
