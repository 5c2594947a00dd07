//! Volume transfers, at Cinder's two paths: `os-volume-transfer` (every version) and
//! `volume-transfers` (3.55+, whose create takes `no_snapshots`). Both move the volume
//! with its snapshots unless told otherwise; from 3.55 the answers say whether, and
//! from 3.57 where from, where to and whether it was accepted. Lists page (3.59).

use super::{all_projects, list_page, param, scope, since, views, AppState};
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

/// The two paths: the old one, and 3.55's.
const OLD: &str = "os-volume-transfer";
const NEW: &str = "volume-transfers";

fn path_ok(kind: &str, v: Version) -> ApiResult<()> {
    if kind == NEW {
        since(v, 55)?;
    }
    Ok(())
}

async fn listing(
    s: AppState,
    ctx: AuthContext,
    (p, q): (HashMap<String, String>, HashMap<String, String>),
    (kind, detail, v): (&'static str, bool, Version),
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    path_ok(kind, v)?;
    let items = s
        .transfer_list(&ctx, all_projects(&q))
        .await?
        .iter()
        .map(|t| views::transfer(&s.public_url, kind, t, None, detail, v))
        .collect();
    let path = if detail { format!("{kind}/detail") } else { kind.to_string() };
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "transfers",
        &path,
        items,
        &q,
        super::Fields { filter: &["name", "volume_id"], sort: &["name", "volume_id", "created_at"] },
    )
}

async fn creating(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    body: Value,
    kind: &'static str,
    v: Version,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    path_ok(kind, v)?;
    let t = super::body_of(body, "transfer")?;
    let volume = t
        .get("volume_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("A transfer needs a volume_id."))?;
    let name = t.get("name").and_then(Value::as_str).map(str::to_string);
    let no_snapshots = match t.get("no_snapshots") {
        None | Some(Value::Null) => false,
        Some(_) if kind == OLD => {
            return Err(ApiError::bad_request("no_snapshots is taken at volume-transfers (3.55), not here."))
        }
        Some(Value::Bool(b)) => *b,
        Some(Value::String(x)) => stratus_common::http::pagination::parse_bool(x)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid no_snapshots {x:?}: a boolean.")))?,
        Some(other) => return Err(ApiError::bad_request(format!("Invalid no_snapshots {other}: a boolean."))),
    };
    let (transfer, key) = s.transfer_create(&ctx, volume, name, no_snapshots).await?;
    let shown = views::transfer(&s.public_url, kind, &transfer, Some(&key), true, v);
    Ok((StatusCode::ACCEPTED, Json(json!({"transfer": shown}))))
}

async fn showing(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    kind: &'static str,
    v: Version,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    path_ok(kind, v)?;
    let t = s.transfer_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"transfer": views::transfer(&s.public_url, kind, &t, None, true, v)})))
}

async fn deleting(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    kind: &'static str,
    v: Version,
) -> ApiResult<StatusCode> {
    scope(&ctx, &p)?;
    path_ok(kind, v)?;
    s.transfer_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn accepting(
    s: AppState,
    ctx: AuthContext,
    p: HashMap<String, String>,
    body: Value,
    kind: &'static str,
    v: Version,
) -> ApiResult<(StatusCode, Json<Value>)> {
    scope(&ctx, &p)?;
    path_ok(kind, v)?;
    let a = super::body_of(body, "accept")?;
    let key = a
        .get("auth_key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Accepting a transfer needs its auth_key."))?;
    let t = s.transfer_accept(&ctx, param(&p, "id"), key).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"transfer": {"id": t.id, "name": t.name, "volume_id": t.volume_id,
        "links": views::transfer(&s.public_url, kind, &t, None, false, v)["links"].clone()}})),
    ))
}

/// Handlers for one path.
macro_rules! transfer_handlers {
    ($kind:expr, $list:ident, $detail:ident, $create:ident, $show:ident, $delete:ident, $accept:ident) => {
        pub async fn $list(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            Query(q): Q,
            v: Version,
        ) -> ApiResult<Json<Value>> {
            listing(s, ctx, (p, q), ($kind, false, v)).await
        }
        pub async fn $detail(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            Query(q): Q,
            v: Version,
        ) -> ApiResult<Json<Value>> {
            listing(s, ctx, (p, q), ($kind, true, v)).await
        }
        pub async fn $create(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            v: Version,
            ApiJson(body): ApiJson<Value>,
        ) -> ApiResult<(StatusCode, Json<Value>)> {
            creating(s, ctx, p, body, $kind, v).await
        }
        pub async fn $show(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            v: Version,
        ) -> ApiResult<Json<Value>> {
            showing(s, ctx, p, $kind, v).await
        }
        pub async fn $delete(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            v: Version,
        ) -> ApiResult<StatusCode> {
            deleting(s, ctx, p, $kind, v).await
        }
        pub async fn $accept(
            State(s): State<AppState>,
            ctx: AuthContext,
            Path(p): Params,
            v: Version,
            ApiJson(body): ApiJson<Value>,
        ) -> ApiResult<(StatusCode, Json<Value>)> {
            accepting(s, ctx, p, body, $kind, v).await
        }
    };
}

transfer_handlers!(OLD, list, list_detail, create, show, delete, accept);
transfer_handlers!(NEW, list_v355, list_detail_v355, create_v355, show_v355, delete_v355, accept_v355);
