//! `POST /os-server-external-events`: what another service tells compute about a
//! server's resources (admins and services only). `volume-extended` (the volume
//! service grew an attached volume; `tag` names it) starts the saga that grows the
//! guest's disk and reports back to the volume service; `network-changed` and
//! `network-vif-deleted` read the server's ports and addresses again (Nova's network
//! info cache refresh). The others (`network-vif-plugged`, which Nova waits for at
//! boot, and events of hardware this cloud has not) answer `422` per event, as events
//! for servers that cannot take them do: agents wire ports here and compute does not
//! wait for them.

use super::error::bad;
use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::request_id::RequestId;
use stratus_common::http::{ApiError, ApiJson, ApiResult};

/// The event names Nova's API takes.
const NAMES: &[&str] = &[
    "network-changed",
    "network-vif-plugged",
    "network-vif-unplugged",
    "network-vif-deleted",
    "volume-extended",
    "power-update",
    "accelerator-request-bound",
    "volume-reimaged",
];

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    rid: Option<Extension<RequestId>>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !ctx.is_admin() && !ctx.has_role("service") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Policy doesn't allow os_compute_api:os-server-external-events:create to be performed.",
        ));
    }
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| bad("Invalid input for field/attribute events: a non-empty list is required."))?;
    // Validated whole first, as Nova's schema does: one bad event refuses them all.
    for e in events {
        let name = e.get("name").and_then(Value::as_str).unwrap_or_default();
        if !NAMES.contains(&name) {
            return Err(bad(format!("Invalid input for field/attribute name. Value: {name}.")));
        }
        if !e.get("server_uuid").is_some_and(Value::is_string) {
            return Err(bad("Invalid input for field/attribute server_uuid: a string is required."));
        }
        if e.get("tag").is_some_and(|t| !t.is_string() && !t.is_null()) {
            return Err(bad("Invalid input for field/attribute tag: a string is required."));
        }
    }
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for e in events {
        let name = e["name"].as_str().unwrap_or_default();
        let server = e["server_uuid"].as_str().unwrap_or_default();
        let tag = e.get("tag").and_then(Value::as_str);
        let code = match (name, tag) {
            ("volume-extended", Some(volume)) => match s.volume_extended(&ctx, server, volume, &request_id).await {
                Ok(()) => 200,
                Err(err) => {
                    let err = ApiError::from(err);
                    tracing::info!(%server, %volume, error = %err.message, "volume-extended event not taken");
                    if err.status == StatusCode::NOT_FOUND && s.server_show(&ctx, server).await.is_err() {
                        404
                    } else {
                        422
                    }
                }
            },
            ("network-changed" | "network-vif-deleted", _) => match s.server_network_changed(&ctx, server).await {
                Ok(()) => 200,
                Err(err) => match ApiError::from(err).status {
                    StatusCode::NOT_FOUND => 404,
                    _ => 422,
                },
            },
            _ => match s.server_show(&ctx, server).await {
                Ok(_) => 422,
                Err(_) => 404,
            },
        };
        let mut echoed = e.clone();
        echoed["code"] = json!(code);
        echoed["status"] = json!(if code == 200 { "completed" } else { "failed" });
        out.push(echoed);
    }
    let status = if out.iter().all(|e| e["code"] == 200) {
        StatusCode::OK
    } else if out.iter().all(|e| e["code"] == 404) {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((status, Json(json!({ "events": out }))))
}
