//! `/messages` (microversion 3.3+): what the project is told of failures that came
//! after the answer (`app::messages`).

use super::{all_projects, list_page, param, scope, since, AppState, Fields};
use crate::store::Message;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::microversion::Version;
use stratus_common::http::ApiResult;

type Params = Path<HashMap<String, String>>;

/// The version user messages came in.
const MESSAGES: u16 = 3;

fn view(base: &str, m: &Message) -> Value {
    json!({
        "id": m.id,
        "request_id": m.request_id,
        "resource_type": m.resource_type,
        "resource_uuid": m.resource_uuid,
        "event_id": m.event_id,
        "message_level": m.message_level,
        "user_message": m.user_message,
        "created_at": m.created_at,
        "guaranteed_until": m.expires_at,
        "links": [{"rel": "self", "href": format!("{base}/v3/{}/messages/{}", m.project_id, m.id)},
                  {"rel": "bookmark", "href": format!("{base}/{}/messages/{}", m.project_id, m.id)}],
    })
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    since(version, MESSAGES)?;
    scope(&ctx, &p)?;
    let items = s.message_list(&ctx, all_projects(&q)).await?.iter().map(|m| view(&s.public_url, m)).collect();
    list_page(
        &s.public_url,
        param(&p, "project_id"),
        "messages",
        "messages",
        items,
        &q,
        Fields {
            filter: &["resource_uuid", "resource_type", "event_id", "request_id", "message_level"],
            sort: &["created_at", "resource_uuid", "resource_type", "event_id", "request_id", "message_level"],
        },
    )
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<Json<Value>> {
    since(version, MESSAGES)?;
    scope(&ctx, &p)?;
    let m = s.message_get(&ctx, param(&p, "id")).await?;
    Ok(Json(json!({"message": view(&s.public_url, &m)})))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    version: Version,
    Path(p): Params,
) -> ApiResult<StatusCode> {
    since(version, MESSAGES)?;
    scope(&ctx, &p)?;
    s.message_delete(&ctx, param(&p, "id")).await?;
    Ok(StatusCode::NO_CONTENT)
}
