//! `/servers` and their sub-resources.

use super::views::{server_brief, server_view};
use super::{base, flag, paginate, wrapped, AppState, Params};
use crate::app::{bad, not_found};
use crate::microversion::Version;
use crate::store::Server;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::request_id::RequestId;
use stratus_common::http::{ApiJson, ApiResult};
use stratus_compute_agent::protocol::Op;

/// Filters of `GET /servers[/detail]` applied here (name is a regex, as in Nova).
async fn listed(
    s: &AppState,
    ctx: &AuthContext,
    q: &std::collections::HashMap<String, String>,
) -> ApiResult<Vec<Server>> {
    let all = flag(q, "all_tenants") || flag(q, "all_projects");
    let project = q.get("project_id").or_else(|| q.get("tenant_id")).map(String::as_str);
    let deleted = flag(q, "deleted");
    let mut list = s.server_list(ctx, all, project, deleted, q.get("changes-since").map(String::as_str)).await?;
    if let Some(name) = q.get("name") {
        let re =
            regex_lite::Regex::new(name).map_err(|_| bad(format!("Invalid regular expression for name: {name}")))?;
        list.retain(|x| re.is_match(&x.name));
    }
    if let Some(st) = q.get("status") {
        let st = st.to_ascii_uppercase();
        list.retain(|x| super::views::status(x) == st);
    }
    for (k, field) in [("image", "image_id"), ("flavor", "")] {
        if let Some(want) = q.get(k) {
            list.retain(|x| if field.is_empty() { x.doc["flavor"]["id"] == json!(want) } else { x.str(field) == want });
        }
    }
    if let Some(h) = q.get("host").filter(|_| ctx.is_admin()) {
        list.retain(|x| x.host.as_deref() == Some(h.as_str()));
    }
    if let Some(ip) = q.get("ip") {
        list.retain(|x| x.doc.get("addresses").map(|a| a.to_string()).unwrap_or_default().contains(ip.as_str()));
    }
    if let Some(u) = q.get("user_id") {
        list.retain(|x| &x.user_id == u);
    }
    if let Some(r) = q.get("reservation_id") {
        list.retain(|x| x.str("reservation_id") == r);
    }
    paginate(list, q, |x| x.id.as_str())
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, q: Params) -> ApiResult<Json<Value>> {
    let list = listed(&s, &ctx, &q).await?;
    let b = base(&s);
    Ok(Json(json!({"servers": list.iter().map(|x| server_brief(x, &b)).collect::<Vec<_>>()})))
}

pub async fn detail(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    let list = listed(&s, &ctx, &q).await?;
    let b = base(&s);
    let admin = ctx.is_admin();
    Ok(Json(json!({"servers": list.iter().map(|x| server_view(x, v, admin, &b, false)).collect::<Vec<_>>()})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = s.server_show(&ctx, &id).await?;
    Ok(Json(json!({"server": server_view(&server, v, ctx.is_admin(), &base(&s), true)})))
}

pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    rid: Option<Extension<RequestId>>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let mut hints = Map::new();
    if let Value::Object(top) = &body {
        for key in ["OS-SCH-HNT:scheduler_hints", "os:scheduler_hints"] {
            match top.get(key) {
                Some(Value::Object(h)) => hints.extend(h.clone()),
                None | Some(Value::Null) => {}
                Some(_) => return Err(bad(format!("Invalid input for field/attribute {key}."))),
            }
        }
    }
    let server = wrapped(body, "server")?;
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let made = s.server_create(&ctx, &server, hints, &request_id, v).await?;
    let first = &made[0];
    if server.get("return_reservation_id").and_then(Value::as_bool) == Some(true) {
        return Ok((StatusCode::ACCEPTED, Json(json!({"reservation_id": first.str("reservation_id")}))).into_response());
    }
    let sgs = super::views::security_groups(first);
    let b = base(&s);
    let mut view = server_brief(first, &b);
    view["OS-DCF:diskConfig"] = json!(first.str("disk_config"));
    view["security_groups"] = json!(sgs);
    view["adminPass"] = json!(uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let location = format!("{b}/servers/{}", first.id);
    Ok((StatusCode::ACCEPTED, [("location", location)], Json(json!({ "server": view }))).into_response())
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let server = s.server_update(&ctx, &id, &wrapped(body, "server")?).await?;
    Ok(Json(json!({"server": server_view(&server, v, ctx.is_admin(), &base(&s), true)})))
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    s.server_delete(&ctx, &id, &request_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /servers/{id}/action`: `{"os-stop": null}`, `{"reboot": {"type": "HARD"}}`, ...
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let Value::Object(m) = body else { return Err(bad("The request body must be a JSON object.")) };
    let Some((name, arg)) = m.into_iter().next() else { return Err(bad("No action given.")) };
    match name.as_str() {
        "os-stop" => s.server_power(&ctx, &id, Op::Stop, &request_id).await?,
        "os-start" => s.server_power(&ctx, &id, Op::Start, &request_id).await?,
        "reboot" => {
            let hard = arg["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("HARD"));
            if !arg["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("HARD") || t.eq_ignore_ascii_case("SOFT")) {
                return Err(bad("Invalid input for field/attribute reboot: type must be SOFT or HARD."));
            }
            s.server_power(&ctx, &id, if hard { Op::HardReboot } else { Op::SoftReboot }, &request_id).await?
        }
        "lock" => s.server_lock(&ctx, &id, true, arg["locked_reason"].as_str().map(str::to_string)).await?,
        "unlock" => s.server_lock(&ctx, &id, false, None).await?,
        "os-getConsoleOutput" => {
            let server = s.server_get(&ctx, &id).await?;
            let log = s.console_log(&server).await?;
            let lines = arg["length"].as_i64().or_else(|| arg["length"].as_str().and_then(|l| l.parse().ok()));
            let out = match lines {
                Some(n) if n >= 0 => {
                    let all: Vec<&str> = log.lines().collect();
                    all[all.len().saturating_sub(n as usize)..].join("\n")
                }
                _ => log,
            };
            return Ok(Json(json!({ "output": out })).into_response());
        }
        other => {
            return Err(crate::app::not_implemented(format!("The server action {other} is not supported yet.")));
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

pub async fn metadata_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = s.server_get(&ctx, &id).await?;
    Ok(Json(json!({"metadata": server.doc.get("metadata").cloned().unwrap_or(json!({}))})))
}

async fn metadata_write(
    s: &AppState,
    ctx: &AuthContext,
    id: &str,
    body: Value,
    replace: bool,
) -> ApiResult<Json<Value>> {
    let Value::Object(mut m) = body else { return Err(bad("The request body must be a JSON object.")) };
    let meta = match m.remove("metadata") {
        Some(Value::Object(x)) => x,
        _ => return Err(bad("Invalid input: 'metadata' must be an object.")),
    };
    Ok(Json(json!({"metadata": s.server_metadata(ctx, id, meta, replace).await?})))
}

pub async fn metadata_replace(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    metadata_write(&s, &ctx, &id, b, true).await
}

pub async fn metadata_merge(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    metadata_write(&s, &ctx, &id, b, false).await
}

pub async fn metadata_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let server = s.server_get(&ctx, &id).await?;
    match server.doc.get("metadata").and_then(|m| m.get(&key)) {
        Some(v) => Ok(Json(json!({"meta": {key: v}}))),
        None => Err(not_found(format!("Metadata item was not found: {key}"))),
    }
}

pub async fn metadata_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let meta = b
        .get("meta")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| bad("Invalid input: 'meta' must be an object."))?;
    if meta.len() != 1 || !meta.contains_key(&key) {
        return Err(bad("Request body and URI mismatch"));
    }
    s.server_metadata(&ctx, &id, meta.clone(), false).await?;
    Ok(Json(json!({ "meta": meta })))
}

pub async fn metadata_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.server_metadata_delete(&ctx, &id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ips(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let server = s.server_show(&ctx, &id).await?;
    Ok(Json(json!({"addresses": server.doc.get("addresses").cloned().unwrap_or(json!({}))})))
}

pub async fn security_groups(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let server = s.server_get(&ctx, &id).await?;
    let groups: Vec<Value> = server
        .doc
        .get("security_groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|n| json!({"name": n, "tenant_id": server.project_id, "description": "", "rules": []}))
        .collect();
    Ok(Json(json!({ "security_groups": groups })))
}

fn action_view(a: &crate::store::Action, v: Version, events: bool) -> Value {
    let t = |x: &str| x.get(..26).unwrap_or(x).to_string();
    let mut o = json!({"action": a.action, "instance_uuid": a.server_id, "request_id": a.request_id,
                       "user_id": a.user_id, "project_id": a.project_id, "start_time": t(&a.start_time),
                       "message": a.message});
    if v.at_least(58) {
        o["updated_at"] = json!(a.finish_time.as_deref().map(t).unwrap_or_else(|| t(&a.start_time)));
    }
    if events {
        let name = format!("compute_{}_instance", a.action);
        o["events"] = json!([{"event": name, "start_time": t(&a.start_time),
                              "finish_time": a.finish_time.as_deref().map(t), "result": a.result, "traceback": null}]);
    }
    o
}

pub async fn actions(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = s.server_actions(&ctx, &id).await?;
    Ok(Json(json!({"instanceActions": list.iter().map(|a| action_view(a, v, false)).collect::<Vec<_>>()})))
}

pub async fn action_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, req)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let list = s.server_actions(&ctx, &id).await?;
    let a = list
        .iter()
        .find(|a| a.request_id == req)
        .ok_or_else(|| not_found(format!("Action for request_id {req} on instance {id} not found")))?;
    Ok(Json(json!({"instanceAction": action_view(a, v, true)})))
}
