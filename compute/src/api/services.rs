//! The compute hosts as an operator manages them: `os-services` (list, enable, disable
//! with a reason) and the older `os-hosts` (before 2.43).

use super::error::{bad, not_found};
use super::{AppState, Params};
use crate::app::hosts::HostView;
use crate::microversion::Version;
use crate::store::HostRow;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

/// The one scheduler this cloud runs, listed as Nova lists its `nova-scheduler`.
const SCHEDULER_HOST: &str = "stratus";

/// A compute host as an `os-services` entry (`index`: its id before 2.53).
fn service_view(r: &HostRow, up: bool, index: usize, v: Version) -> Value {
    let mut out = json!({
        "id": if v.at_least(53) { json!(r.host) } else { json!(index + 1) },
        "binary": "nova-compute",
        "host": r.host, "zone": r.availability_zone,
        "status": if r.enabled { "enabled" } else { "disabled" },
        "state": if up { "up" } else { "down" },
        "updated_at": r.last_seen, "disabled_reason": r.disabled_reason, "forced_down": false,
    });
    // `forced_down` arrived in 2.11.
    if !v.at_least(11) {
        out.as_object_mut().expect("an object").remove("forced_down");
    }
    out
}

pub async fn service_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    q: Params,
) -> ApiResult<Json<Value>> {
    let hosts = s.host_views(&ctx, Some("os_compute_api:os-services:list")).await?;
    let mut scheduler = json!({"id": if v.at_least(53) { json!("scheduler") } else { json!(0) }, "binary": "nova-scheduler",
               "host": SCHEDULER_HOST, "zone": "internal", "status": "enabled", "state": "up",
               "updated_at": stratus_common::db::now_text(), "disabled_reason": null, "forced_down": false});
    if !v.at_least(11) {
        scheduler.as_object_mut().expect("an object").remove("forced_down");
    }
    let mut out = vec![scheduler];
    out.extend(hosts.iter().enumerate().map(|(i, h)| service_view(&h.row, h.up, i, v)));
    // Nova's filters: `binary` and `host`.
    out.retain(|svc| {
        q.get("binary").is_none_or(|b| svc["binary"] == json!(b))
            && q.get("host").is_none_or(|h| svc["host"] == json!(h))
    });
    Ok(Json(json!({ "services": out })))
}

/// The compute host a request names: by `host` and `binary` (before 2.53), or by the
/// service id (its host name from 2.53).
fn compute_host(binary: Option<&str>, host: Option<&str>) -> ApiResult<String> {
    match (binary, host) {
        (Some("nova-compute"), Some(h)) if !h.is_empty() => Ok(h.to_string()),
        (Some("nova-scheduler"), _) => Err(bad("Only nova-compute services can be enabled or disabled here.")),
        (Some(b), _) if b != "nova-compute" => Err(not_found(format!("Service {b} could not be found."))),
        _ => Err(bad("Give the service's host and binary (nova-compute).")),
    }
}

/// The refusal of `forced_down`: a host is down when its agent stops reporting.
fn forced_down_refused(b: &serde_json::Map<String, Value>) -> ApiResult<()> {
    match b.get("forced_down") {
        None | Some(Value::Bool(false)) => Ok(()),
        Some(Value::Bool(true)) => Err(bad(
            "forced_down is not offered: a host is down when its agent stops reporting, and nothing evacuates.",
        )),
        Some(_) => Err(bad("forced_down must be true or false.")),
    }
}

/// `PUT /os-services/{id}`: from 2.53 `{"status": "enabled"|"disabled",
/// "disabled_reason"}` on the service named by id; before, the actions `enable`,
/// `disable`, `disable-log-reason` (and `force-down`) with `{"host", "binary"}`.
pub async fn service_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    // Who may, before what they ask is looked at.
    crate::app::require_admin(&ctx, "os_compute_api:os-services:update")?;
    let Value::Object(b) = body else { return Err(bad("The request body must be a JSON object.")) };
    let text = |k: &str| b.get(k).and_then(Value::as_str);
    if v.at_least(53) {
        if id == "scheduler" {
            return Err(bad("Only nova-compute services can be enabled or disabled."));
        }
        forced_down_refused(&b)?;
        let reason = text("disabled_reason");
        let enabled = match text("status") {
            Some("enabled") => true,
            Some("disabled") => false,
            None if reason.is_some() => return Err(bad("disabled_reason goes with status disabled.")),
            None => {
                // Nothing to change: the service as it is.
                let (row, up) = host_of(&s, &ctx, &id).await?;
                return Ok(Json(json!({"service": service_view(&row, up, 0, v)})));
            }
            Some(other) => return Err(bad(format!("Invalid status '{other}': enabled or disabled."))),
        };
        if enabled && reason.is_some() {
            return Err(bad("disabled_reason goes with status disabled."));
        }
        s.host_set_enabled(&ctx, &id, enabled, reason).await?;
        let (row, up) = host_of(&s, &ctx, &id).await?;
        return Ok(Json(json!({"service": service_view(&row, up, 0, v)})));
    }
    let host = compute_host(text("binary"), text("host"))?;
    let service = |status: &str| json!({"host": host, "binary": "nova-compute", "status": status});
    match id.as_str() {
        "enable" => {
            s.host_set_enabled(&ctx, &host, true, None).await?;
            Ok(Json(json!({"service": service("enabled")})))
        }
        "disable" => {
            s.host_set_enabled(&ctx, &host, false, None).await?;
            Ok(Json(json!({"service": service("disabled")})))
        }
        "disable-log-reason" => {
            let reason = text("disabled_reason").ok_or_else(|| bad("disable-log-reason needs a disabled_reason."))?;
            s.host_set_enabled(&ctx, &host, false, Some(reason)).await?;
            let mut out = service("disabled");
            out["disabled_reason"] = json!(reason);
            Ok(Json(json!({ "service": out })))
        }
        "force-down" if v.at_least(11) => {
            forced_down_refused(&b)?;
            Err(bad("force-down needs forced_down."))
        }
        other => Err(not_found(format!("Unknown action {other}."))),
    }
}

async fn host_of(s: &AppState, ctx: &AuthContext, host: &str) -> ApiResult<(HostRow, bool)> {
    let hosts: Vec<HostView> = s.host_views(ctx, Some("os_compute_api:os-services:list")).await?;
    hosts
        .into_iter()
        .find(|h| h.row.host == host)
        .map(|h| (h.row, h.up))
        .ok_or_else(|| not_found(format!("Service {host} could not be found.")))
}

/// `os-hosts` went in 2.43: `os-hypervisors` and `os-services` say the same.
fn hosts_api(v: Version) -> ApiResult<()> {
    if v.at_least(43) {
        Err(not_found("The resource could not be found."))
    } else {
        Ok(())
    }
}

/// `GET /os-hosts[?zone=]`: every host and the service it runs.
pub async fn host_list(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    hosts_api(v)?;
    let hosts = s.host_views(&ctx, Some("os_compute_api:os-hosts:list")).await?;
    let mut out = vec![json!({"host_name": SCHEDULER_HOST, "service": "scheduler", "zone": "internal"})];
    out.extend(
        hosts.iter().map(|h| json!({"host_name": h.row.host, "service": "compute", "zone": h.row.availability_zone})),
    );
    // A blank zone is no filter, as in Nova.
    if let Some(zone) = q.get("zone").filter(|z| !z.is_empty()) {
        out.retain(|h| h["zone"] == json!(zone));
    }
    Ok(Json(json!({ "hosts": out })))
}

/// `GET /os-hosts/{host}`: the host's size, what is in use, and each project's share.
pub async fn host_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(host): Path<String>,
) -> ApiResult<Json<Value>> {
    hosts_api(v)?;
    let (row, uses) = s.host_use(&ctx, &host).await?;
    let line = |project: &str, cpu: i64, mem: i64, disk: i64| json!({"resource": {"host": row.host, "project": project, "cpu": cpu, "memory_mb": mem, "disk_gb": disk}});
    let mut out = vec![
        line("(total)", row.vcpus, row.ram_mb, row.disk_gb),
        line("(used_now)", row.used_vcpus, row.used_ram, row.used_disk),
        line("(used_max)", row.used_vcpus, row.used_ram, row.used_disk),
    ];
    out.extend(uses.iter().map(|u| line(&u.project, u.vcpus, u.ram_mb, u.disk_gb)));
    Ok(Json(json!({ "host": out })))
}

/// `PUT /os-hosts/{host}`: `status` `enable`/`disable` takes the host in or out of
/// scheduling; `maintenance_mode` is not offered by the drivers (501, as Nova's
/// libvirt driver answers).
pub async fn host_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(host): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    hosts_api(v)?;
    crate::app::require_admin(&ctx, "os_compute_api:os-hosts:update")?;
    let b = match body {
        Value::Object(b) => b,
        _ => return Err(bad("The request body must be a JSON object.")),
    };
    if let Some(k) = b.keys().find(|k| !matches!(k.as_str(), "status" | "maintenance_mode")) {
        return Err(bad(format!("Additional properties are not allowed ('{k}' was unexpected).")));
    }
    let pick = |k: &str| -> ApiResult<Option<bool>> {
        match b.get(k) {
            None => Ok(None),
            Some(Value::String(x)) if x.eq_ignore_ascii_case("enable") => Ok(Some(true)),
            Some(Value::String(x)) if x.eq_ignore_ascii_case("disable") => Ok(Some(false)),
            Some(other) => Err(bad(format!("Invalid {k} {other}: enable or disable."))),
        }
    };
    let (status, maintenance) = (pick("status")?, pick("maintenance_mode")?);
    if status.is_none() && maintenance.is_none() {
        return Err(bad("'status' or 'maintenance_mode' needed for host update."));
    }
    // The host must exist (and the caller be an admin) whatever is asked.
    s.host_use(&ctx, &host).await?;
    if maintenance.is_some() {
        return Err(
            crate::app::Error::NotImplemented("Virt driver does not implement host maintenance mode.".into()).into()
        );
    }
    let enabled = status.expect("checked above");
    s.host_set_enabled(&ctx, &host, enabled, None).await?;
    Ok(Json(json!({"host": host, "status": if enabled { "enabled" } else { "disabled" }})))
}

/// `GET /os-hosts/{host}/{reboot|shutdown|startup}`: power actions on a whole host are
/// not offered by the drivers (501, as Nova's libvirt driver answers).
pub async fn host_power(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path((host, action)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    hosts_api(v)?;
    if !matches!(action.as_str(), "reboot" | "shutdown" | "startup") {
        return Err(not_found("The resource could not be found."));
    }
    s.host_use(&ctx, &host).await?;
    Err(crate::app::Error::NotImplemented(format!("Virt driver does not implement host power action {action}.")).into())
}
