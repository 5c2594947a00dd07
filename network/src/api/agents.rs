//! Agent endpoints: Neutron's `/v2.0/agents`, and the calls the network agent makes
//! (report, DHCP ports) under `/v2.0/os-stratus/hosts/{host}/`.

use super::AppState;
use crate::app::agents::agent_view;
use crate::app::bad;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

pub async fn report(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(host): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Value::Object(body) = body else { return Err(bad("The request body must be a JSON object.")) };
    Ok(Json(s.agent_report(&ctx, &host, body).await?))
}

pub async fn dhcp_port_ensure(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((host, network)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let port = s.dhcp_port_ensure(&ctx, &host, &network).await?;
    Ok(Json(json!({"port": port.map(super::views::port)})))
}

pub async fn dhcp_port_release(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((host, network)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.dhcp_port_release(&ctx, &host, &network).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let agents: Vec<Value> = s
        .agent_list(&ctx)
        .await?
        .iter()
        .map(agent_view)
        .filter(|a| {
            ["host", "agent_type", "binary", "id"].iter().all(|k| q.get(*k).is_none_or(|v| a[*k].as_str() == Some(v)))
                && q.get("alive").is_none_or(|v| a["alive"].as_bool() == Some(v.eq_ignore_ascii_case("true")))
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

pub async fn show(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"agent": agent_view(&s.agent_get(&ctx, &id).await?)})))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let a = s.agent_update(&ctx, &id, super::wrapped(body, "agent")?).await?;
    Ok(Json(json!({"agent": agent_view(&a)})))
}

pub async fn delete(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.agent_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
