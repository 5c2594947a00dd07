//! `/servers` and their sub-resources.

use super::error::{bad, not_found};
use super::views::{server_brief, server_changed_view, server_view};
use super::{base, flag, wrapped, AppState, Params};
use crate::app::servers::ListQuery;
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
use stratus_compute_protocol::Op;

/// The most servers a page holds (Nova's `max_limit`); a full page links to the next.
pub const MAX_LIMIT: usize = 1000;

/// A page of servers after Nova's filters, and the `servers_links` to the next page
/// when the page is full.
async fn listed(
    s: &AppState,
    ctx: &AuthContext,
    q: &std::collections::HashMap<String, String>,
    path: &str,
) -> ApiResult<(Vec<Server>, Option<Value>)> {
    let limit = match q.get("limit") {
        None => MAX_LIMIT,
        Some(l) => {
            l.parse::<usize>().map_err(|_| bad("Invalid limit: it must be a non-negative integer."))?.min(MAX_LIMIT)
        }
    };
    let name = match q.get("name") {
        Some(n) => {
            Some(regex_lite::Regex::new(n).map_err(|_| bad(format!("Invalid regular expression for name: {n}")))?)
        }
        None => None,
    };
    let status = q.get("status").map(|st| st.to_ascii_uppercase());
    let host = q.get("host").filter(|_| ctx.is_admin());
    // Stratus: the servers launched into a lease's reservation (the `reservation`
    // scheduler hint), for the reservation service at the lease's end. Admin only.
    let launched_into = q.get("reservation").filter(|_| ctx.is_admin());
    let keep = |x: &Server| {
        name.as_ref().is_none_or(|re| re.is_match(&x.name))
            && status.as_ref().is_none_or(|st| super::views::status(x) == *st)
            && q.get("image").is_none_or(|want| x.str("image_id") == want)
            && q.get("flavor").is_none_or(|want| x.doc["flavor"]["id"] == json!(want))
            && host.is_none_or(|h| x.host.as_deref() == Some(h.as_str()))
            && launched_into.is_none_or(|r| crate::app::create::reservation_of(x).as_deref() == Some(r.as_str()))
            && q.get("ip").is_none_or(|ip| {
                x.doc.get("addresses").map(|a| a.to_string()).unwrap_or_default().contains(ip.as_str())
            })
            && q.get("user_id").is_none_or(|u| &x.user_id == u)
            && q.get("reservation_id").is_none_or(|r| x.str("reservation_id") == r)
    };
    if let Some(t) = q.get("changes-since") {
        let zoned = if t.ends_with('Z') || t.contains('+') { t.clone() } else { format!("{t}Z") };
        if stratus_common::db::parse_time(&zoned).is_none() {
            return Err(bad(format!(
                "Invalid input for query parameters changes-since. Value: {t}. It is not an ISO 8601 time."
            )));
        }
    }
    let query = ListQuery {
        // As Nova: `all_tenants` present means true unless it says false.
        all_tenants: ["all_tenants", "all_projects"].iter().any(|k| {
            q.get(*k).is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0" | "off" | "no"))
        }),
        project: q.get("project_id").or_else(|| q.get("tenant_id")).map(String::as_str),
        deleted: flag(q, "deleted"),
        changes_since: q.get("changes-since").map(String::as_str),
        marker: q.get("marker").map(String::as_str),
        limit,
    };
    let list = s.server_list(ctx, &query, keep).await?;
    let next = match list.last() {
        Some(last) if limit > 0 && list.len() == limit => {
            Some(super::next_links(&base(s), path, q, limit, &last.id.to_string()))
        }
        _ => None,
    };
    Ok((list, next))
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, q: Params) -> ApiResult<Json<Value>> {
    let (list, next) = listed(&s, &ctx, &q, "/servers").await?;
    let b = base(&s);
    let mut out = json!({"servers": list.iter().map(|x| server_brief(x, &b)).collect::<Vec<_>>()});
    if let Some(n) = next {
        out["servers_links"] = n;
    }
    Ok(Json(out))
}

pub async fn detail(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    let (list, next) = listed(&s, &ctx, &q, "/servers/detail").await?;
    let b = base(&s);
    let admin = ctx.is_admin();
    let mut out = json!({"servers": list.iter().map(|x| server_view(x, v, admin, &b, false)).collect::<Vec<_>>()});
    if let Some(n) = next {
        out["servers_links"] = n;
    }
    Ok(Json(out))
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
    // Nova's create answer: no name (Tempest's schema allows no other key).
    let mut view = server_brief(first, &b);
    if let Some(o) = view.as_object_mut() {
        o.remove("name");
    }
    view["OS-DCF:diskConfig"] = json!(first.str("disk_config"));
    view["security_groups"] = json!(sgs);
    view["adminPass"] = json!(admin_pass(&server));
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
    Ok(Json(json!({"server": server_changed_view(&server, v, ctx.is_admin(), &base(&s), false)})))
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

/// The `metadata` of a `createImage` or `createBackup` (none: empty).
fn image_metadata(args: &serde_json::Map<String, Value>) -> ApiResult<serde_json::Map<String, Value>> {
    match args.get("metadata") {
        None | Some(Value::Null) => Ok(serde_json::Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(bad("Invalid input for field/attribute metadata: it must be an object.")),
    }
}

/// The answer to `createImage` and `createBackup`: from 2.45 the image's id is the
/// body; before, its URL is the `Location`.
fn image_answer(s: &AppState, v: Version, image_id: &str) -> Response {
    if v.at_least(45) {
        return (StatusCode::ACCEPTED, Json(json!({ "image_id": image_id }))).into_response();
    }
    let location = format!("{}/v2/images/{image_id}", s.clients.image_url.trim_end_matches('/'));
    let mut resp = StatusCode::ACCEPTED.into_response();
    if let Ok(h) = axum::http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(axum::http::header::LOCATION, h);
    }
    resp
}

/// `POST /servers/{id}/action`: `{"os-stop": null}`, `{"reboot": {"type": "HARD"}}`, ...
pub async fn action(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Response> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let Value::Object(m) = body else { return Err(bad("The request body must be a JSON object.")) };
    let Some((name, arg)) = m.into_iter().next() else { return Err(bad("No action given.")) };
    match name.as_str() {
        // Deletes are immediate here (Nova's soft delete is off): no server is ever
        // in SOFT_DELETED, so these find the server and refuse, as Nova does then.
        "forceDelete" | "restore" => {
            s.server_get(&ctx, &id).await?;
            return Err(crate::app::conflict(format!(
                "Cannot '{name}' instance {id}: it is not soft-deleted (deletes here are immediate)."
            ))
            .into());
        }
        "os-stop" => s.server_power(&ctx, &id, Op::Stop, &request_id).await?,
        "os-start" => s.server_power(&ctx, &id, Op::Start, &request_id).await?,
        "pause" => s.server_power(&ctx, &id, Op::Pause, &request_id).await?,
        "unpause" => s.server_power(&ctx, &id, Op::Unpause, &request_id).await?,
        "reboot" => {
            let hard = arg["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("HARD"));
            if !arg["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("HARD") || t.eq_ignore_ascii_case("SOFT")) {
                return Err(bad("Invalid input for field/attribute reboot: type must be SOFT or HARD."));
            }
            s.server_power(&ctx, &id, if hard { Op::HardReboot } else { Op::SoftReboot }, &request_id).await?
        }
        "addSecurityGroup" | "removeSecurityGroup" => {
            let group = arg["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad(format!("{name}: a security group name is required.")))?;
            s.security_group_change(&ctx, &id, group, name == "addSecurityGroup").await?
        }
        // Nova's floating-IP actions, gone from 2.44.
        "addFloatingIp" | "removeFloatingIp" if !v.at_least(44) => {
            let address = arg["address"].as_str().unwrap_or_default();
            if name == "addFloatingIp" {
                s.fip_associate(&ctx, &id, address, arg["fixed_address"].as_str()).await?
            } else {
                s.fip_disassociate(&ctx, &id, address).await?
            }
        }
        "addFixedIp" => {
            let net = arg["networkId"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("addFixedIp: networkId is required."))?;
            s.fixed_ip_add(&ctx, &id, net).await?
        }
        "removeFixedIp" => {
            let address = arg["address"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("removeFixedIp: address is required."))?;
            s.fixed_ip_remove(&ctx, &id, address).await?
        }
        "rebuild" => {
            let Value::Object(args) = arg else { return Err(bad("Invalid input for field/attribute rebuild.")) };
            let server = s.server_rebuild(&ctx, &id, &args, &request_id).await?;
            let mut view = server_changed_view(&server, v, ctx.is_admin(), &base(&s), true);
            view["adminPass"] = json!(admin_pass(&args));
            return Ok((StatusCode::ACCEPTED, Json(json!({ "server": view }))).into_response());
        }
        "resize" => {
            let flavor = arg["flavorRef"]
                .as_str()
                .map(str::to_string)
                .or_else(|| arg["flavorRef"].as_i64().map(|n| n.to_string()))
                .ok_or_else(|| bad("Invalid input for field/attribute resize: 'flavorRef' is a required property."))?;
            s.server_resize(&ctx, &id, &flavor, arg.get("OS-DCF:diskConfig"), &request_id).await?
        }
        "confirmResize" => {
            s.server_confirm_resize(&ctx, &id, &request_id).await?;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        "revertResize" => s.server_revert_resize(&ctx, &id, &request_id).await?,
        "createImage" => {
            let Value::Object(args) = arg else { return Err(bad("Invalid input for field/attribute createImage.")) };
            let name = args
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("Invalid input for field/attribute createImage: 'name' is a required property."))?;
            let metadata = image_metadata(&args)?;
            let image_id = s.server_snapshot(&ctx, &id, name, &metadata, None, &request_id).await?;
            return Ok(image_answer(&s, v, &image_id));
        }
        "createBackup" => {
            let Value::Object(args) = arg else { return Err(bad("Invalid input for field/attribute createBackup.")) };
            let field =
                |k: &str| bad(format!("Invalid input for field/attribute createBackup: '{k}' is a required property."));
            let name = args.get("name").and_then(Value::as_str).ok_or_else(|| field("name"))?;
            let backup_type = args.get("backup_type").and_then(Value::as_str).ok_or_else(|| field("backup_type"))?;
            let rotation = match args.get("rotation") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(t)) => t.parse().ok(),
                _ => None,
            }
            .ok_or_else(|| field("rotation"))?;
            let metadata = image_metadata(&args)?;
            let backup = crate::store::Backup { backup_type: backup_type.to_string(), rotation };
            let image_id = s.server_snapshot(&ctx, &id, name, &metadata, Some(backup), &request_id).await?;
            return Ok(image_answer(&s, v, &image_id));
        }
        "os-resetState" => {
            let state = arg["state"].as_str().ok_or_else(|| {
                bad("Invalid input for field/attribute os-resetState: 'state' is a required property.")
            })?;
            s.server_reset_state(&ctx, &id, state).await?
        }
        "injectNetworkInfo" => s.server_inject_network_info(&ctx, &id).await?,
        "lock" => s.server_lock(&ctx, &id, true, arg["locked_reason"].as_str().map(str::to_string)).await?,
        "unlock" => s.server_lock(&ctx, &id, false, None).await?,
        "os-getConsoleOutput" => {
            // A member's action in Nova's policy: the console may hold secrets.
            crate::app::require_writer(&ctx)?;
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
            // A server that does not exist is 404 whatever the action, as in Nova.
            s.server_get(&ctx, &id).await?;
            return Err(crate::app::not_implemented(format!("The server action {other} is not supported yet.")).into());
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

/// The tags sub-resource exists from 2.26.
fn tags_version(v: Version) -> ApiResult<()> {
    if v.at_least(26) {
        Ok(())
    } else {
        Err(not_found("The resource could not be found."))
    }
}

pub async fn tags_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    tags_version(v)?;
    Ok(Json(json!({"tags": s.server_tags(&ctx, &id).await?})))
}

pub async fn tags_replace(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    tags_version(v)?;
    Ok(Json(json!({"tags": s.server_tags_set(&ctx, &id, &b["tags"]).await?})))
}

pub async fn tags_clear(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    tags_version(v)?;
    s.server_tags_set(&ctx, &id, &json!([])).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// 204 when the server has the tag, 404 when not.
pub async fn tag_check(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    tags_version(v)?;
    if s.server_tags(&ctx, &id).await?.contains(&tag) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(format!("Tag {tag} could not be found.")))
    }
}

/// 201 with the tag's location when added, 204 when the server had it.
pub async fn tag_add(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    tags_version(v)?;
    if s.server_tag_add(&ctx, &id, &tag).await? {
        let location = format!("{}/servers/{id}/tags/{tag}", base(&s));
        Ok((StatusCode::CREATED, [(axum::http::header::LOCATION, location)]).into_response())
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

pub async fn tag_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    tags_version(v)?;
    s.server_tag_delete(&ctx, &id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ips(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let server = s.server_show(&ctx, &id).await?;
    Ok(Json(json!({"addresses": server.doc.get("addresses").cloned().unwrap_or(json!({}))})))
}

/// `GET /servers/{id}/diagnostics` (admins): Nova's standard form from 2.48; before,
/// the libvirt driver's flat keys (`cpu0_time`, `memory`, `vda_read`, `tap…_rx`, ...).
pub async fn diagnostics(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let d = s.server_diagnostics(&ctx, &id).await?;
    if !v.at_least(48) {
        let mut flat = Map::new();
        if let Some(t) = d.cpu_time_ns {
            flat.insert("cpu0_time".into(), json!(t));
        }
        if let Some(m) = d.memory_max_kib {
            flat.insert("memory".into(), json!(m));
        }
        if let Some(m) = d.memory_used_kib {
            flat.insert("memory-actual".into(), json!(m));
        }
        for disk in &d.disks {
            let n = &disk.name;
            for (k, v) in [
                ("read", disk.read_bytes),
                ("read_req", disk.read_requests),
                ("write", disk.write_bytes),
                ("write_req", disk.write_requests),
                ("errors", disk.errors_count),
            ] {
                flat.insert(format!("{n}_{k}"), json!(v));
            }
        }
        for (i, nic) in d.nics.iter().enumerate() {
            let n = format!("vnet{i}");
            for (k, v) in [
                ("rx", nic.rx_octets),
                ("rx_packets", nic.rx_packets),
                ("rx_errors", nic.rx_errors),
                ("rx_drop", nic.rx_drop),
                ("tx", nic.tx_octets),
                ("tx_packets", nic.tx_packets),
                ("tx_errors", nic.tx_errors),
                ("tx_drop", nic.tx_drop),
            ] {
                flat.insert(format!("{n}_{k}"), json!(v));
            }
        }
        return Ok(Json(Value::Object(flat)));
    }
    let cpu_details: Vec<Value> = match d.cpu_time_ns {
        // One figure for all virtual CPUs together: no one CPU's id.
        Some(t) => vec![json!({"id": null, "time": t, "utilisation": null})],
        None => Vec::new(),
    };
    let nics: Vec<Value> = d
        .nics
        .iter()
        .map(|n| {
            json!({"mac_address": n.mac_address, "rx_octets": n.rx_octets, "rx_errors": n.rx_errors,
                   "rx_drop": n.rx_drop, "rx_packets": n.rx_packets, "rx_rate": null, "tx_octets": n.tx_octets,
                   "tx_errors": n.tx_errors, "tx_drop": n.tx_drop, "tx_packets": n.tx_packets, "tx_rate": null})
        })
        .collect();
    let disks: Vec<Value> = d
        .disks
        .iter()
        .map(|k| {
            json!({"read_bytes": k.read_bytes, "read_requests": k.read_requests, "write_bytes": k.write_bytes,
                   "write_requests": k.write_requests, "errors_count": k.errors_count})
        })
        .collect();
    Ok(Json(json!({
        "state": d.state, "driver": d.driver, "hypervisor": d.hypervisor, "hypervisor_os": d.hypervisor_os,
        "uptime": d.uptime, "config_drive": d.config_drive, "num_cpus": d.num_cpus, "num_nics": nics.len(),
        "num_disks": disks.len(),
        "memory_details": {"maximum": d.memory_max_kib.map(|k| k / 1024), "used": d.memory_used_kib.map(|k| k / 1024)},
        "cpu_details": cpu_details, "nic_details": nics, "disk_details": disks,
    })))
}

/// `GET /servers/{id}/os-server-password`: what the guest posted to the metadata API
/// (encrypted with the server's key by its agent), `""` when nothing was.
pub async fn password_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"password": s.server_password(&ctx, &id).await?})))
}

/// `DELETE /servers/{id}/os-server-password`: clears it, so the guest may post again.
pub async fn password_clear(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.server_password_clear(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /servers/{id}/ips/{network label}`: the addresses on one network, 404 when
/// the server has none there.
pub async fn ips_of_network(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, label)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let server = s.server_show(&ctx, &id).await?;
    match server.doc.get("addresses").and_then(|a| a.get(&label)) {
        Some(list) => Ok(Json(json!({ label: list }))),
        None => Err(stratus_common::http::ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("There are no addresses of network {label} on server {id}."),
        )),
    }
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
        // Nova's event names: `compute_<action>_instance`, and `compute_extend_volume`.
        let name = if a.action == "extend_volume" {
            "compute_extend_volume".to_string()
        } else {
            format!("compute_{}_instance", a.action)
        };
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
    let list = s.server_actions(&ctx, &id, v.at_least(21)).await?;
    Ok(Json(json!({"instanceActions": list.iter().map(|a| action_view(a, v, false)).collect::<Vec<_>>()})))
}

pub async fn action_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, req)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let list = s.server_actions(&ctx, &id, v.at_least(21)).await?;
    let a = list
        .iter()
        .find(|a| a.request_id == req)
        .ok_or_else(|| not_found(format!("Action for request_id {req} on instance {id} not found")))?;
    Ok(Json(json!({"instanceAction": action_view(a, v, true)})))
}

/// The interface view for the microversion (`tag` from 2.70).
fn interface_view(mut view: Value, v: Version) -> Value {
    if !v.at_least(70) {
        if let Some(m) = view.as_object_mut() {
            m.remove("tag");
        }
    }
    view
}

pub async fn interfaces(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = s.interfaces(&ctx, &id).await?;
    Ok(Json(json!({"interfaceAttachments": list.into_iter().map(|i| interface_view(i, v)).collect::<Vec<_>>()})))
}

pub async fn interface_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((id, port)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let list = s.interfaces(&ctx, &id).await?;
    let found = list
        .into_iter()
        .find(|i| i["port_id"].as_str() == Some(port.as_str()))
        .ok_or_else(|| not_found(format!("Port {port} is not attached")))?;
    Ok(Json(json!({ "interfaceAttachment": interface_view(found, v) })))
}

pub async fn interface_attach(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    rid: Option<Extension<RequestId>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    let made = s.interface_attach(&ctx, &id, &wrapped(body, "interfaceAttachment")?, &request_id).await?;
    Ok(Json(json!({ "interfaceAttachment": interface_view(made, v) })))
}

pub async fn interface_detach(
    State(s): State<AppState>,
    ctx: AuthContext,
    rid: Option<Extension<RequestId>>,
    Path((id, port)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let request_id = rid.map(|r| r.0 .0.clone()).unwrap_or_default();
    s.interface_detach(&ctx, &id, &port, &request_id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The password shown once in the answer to create and rebuild: the one asked for, or a
/// new random one (as Nova when `enable_instance_password` is on).
fn admin_pass(request: &Map<String, Value>) -> String {
    match request.get("adminPass").and_then(Value::as_str) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
    }
}
