//! Flavors, keypairs, hypervisors, availability zones, limits, quotas, server
//! groups and usage.

use super::error::{bad, not_found};
use super::views::{flavor_view, hypervisor_view, keypair_view};
use super::{base, flag, paginate, wrapped, AppState, Params};
use crate::app::hosts::HostView;
use crate::microversion::Version;
use crate::store::ServerGroup;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

/// Nova's `is_public` filter. An admin's choice: `none` (OSC sends the literal "None")
/// or nothing lists both, the boolean strings Nova's `bool_from_string` takes pick one,
/// anything else is a 400. Others always get the public ones plus the private ones
/// their project was given (`Some(true)`), whatever they ask.
fn is_public_param(q: &std::collections::HashMap<String, String>, admin: bool) -> ApiResult<Option<bool>> {
    if !admin {
        return Ok(Some(true));
    }
    match q.get("is_public").map(|v| v.to_ascii_lowercase()) {
        Some(v) if v == "none" => Ok(None),
        Some(v) => match v.as_str() {
            "t" | "true" | "on" | "y" | "yes" | "1" => Ok(Some(true)),
            "f" | "false" | "off" | "n" | "no" | "0" => Ok(Some(false)),
            _ => Err(stratus_common::http::ApiError::bad_request(format!("Invalid is_public filter [{v}]"))),
        },
        None => Ok(None),
    }
}

async fn flavors(
    s: &AppState,
    ctx: &AuthContext,
    v: Version,
    q: &std::collections::HashMap<String, String>,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let mut list = s.flavor_list(ctx, is_public_param(q, ctx.is_admin())?).await?;
    if let Some(r) = q.get("minRam").and_then(|x| x.parse::<i64>().ok()) {
        list.retain(|f| f.ram >= r);
    }
    if let Some(d) = q.get("minDisk").and_then(|x| x.parse::<i64>().ok()) {
        list.retain(|f| f.disk >= d);
    }
    let list = paginate(list, q, |f| f.id.as_str())?;
    let b = base(s);
    let mut out = json!({"flavors": list.iter().map(|f| flavor_view(f, v, &b, detail)).collect::<Vec<_>>()});
    let path = if detail { "/flavors/detail" } else { "/flavors" };
    if let Some(links) = super::page_links(&list, q, &b, path, |f| f.id.as_str()) {
        out["flavors_links"] = links;
    }
    Ok(Json(out))
}

pub async fn flavor_list(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    flavors(&s, &ctx, v, &q, false).await
}

pub async fn flavor_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    q: Params,
) -> ApiResult<Json<Value>> {
    flavors(&s, &ctx, v, &q, true).await
}

pub async fn flavor_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = s.flavor_get(&ctx, &id).await?;
    Ok(Json(json!({"flavor": flavor_view(&f, v, &base(&s), true)})))
}

pub async fn flavor_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let f = s.flavor_create(&ctx, &wrapped(body, "flavor")?).await?;
    Ok(Json(json!({"flavor": flavor_view(&f, v, &base(&s), true)})))
}

pub async fn flavor_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    if !v.at_least(55) {
        return Err(stratus_common::http::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Updating a flavor needs microversion 2.55 or later.",
        ));
    }
    let b = wrapped(body, "flavor")?;
    let d = match b.get("description") {
        Some(Value::String(d)) => Some(d.clone()),
        Some(Value::Null) => None,
        _ => return Err(bad("Invalid input: 'description' is a required property.")),
    };
    let f = s.flavor_description(&ctx, &id, d).await?;
    Ok(Json(json!({"flavor": flavor_view(&f, v, &base(&s), true)})))
}

pub async fn flavor_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.flavor_delete(&ctx, &id).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn extra_specs_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let f = s.flavor_get(&ctx, &id).await?;
    Ok(Json(json!({"extra_specs": f.extra_specs})))
}

pub async fn extra_specs_set(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let specs = wrapped(body, "extra_specs")?;
    let f = s.flavor_extra_specs(&ctx, &id, specs, None).await?;
    Ok(Json(json!({"extra_specs": f.extra_specs})))
}

pub async fn extra_spec_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let f = s.flavor_get(&ctx, &id).await?;
    match f.extra_specs.get(&key) {
        Some(v) => Ok(Json(json!({ key: v }))),
        None => Err(not_found(format!("Flavor {id} has no extra specs with key {key}."))),
    }
}

pub async fn extra_spec_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let Value::Object(m) = body else { return Err(bad("The request body must be a JSON object.")) };
    if m.len() != 1 || !m.contains_key(&key) {
        return Err(bad("Request body and URI mismatch"));
    }
    s.flavor_extra_specs(&ctx, &id, m.clone(), None).await?;
    Ok(Json(Value::Object(m)))
}

pub async fn extra_spec_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((id, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.flavor_extra_specs(&ctx, &id, Map::new(), Some(&key)).await?;
    Ok(StatusCode::OK)
}

fn access_view(id: &str, projects: Vec<String>) -> Value {
    json!({"flavor_access": projects.iter().map(|p| json!({"flavor_id": id, "tenant_id": p})).collect::<Vec<_>>()})
}

pub async fn flavor_access(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(access_view(&id, s.flavor_access_list(&ctx, &id).await?)))
}

pub async fn flavor_action(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let (grant, arg) = if let Some(a) = body.get("addTenantAccess") {
        (true, a)
    } else if let Some(a) = body.get("removeTenantAccess") {
        (false, a)
    } else {
        return Err(bad("Unknown flavor action: use addTenantAccess or removeTenantAccess."));
    };
    let project = arg["tenant"].as_str().ok_or_else(|| bad("Invalid input: 'tenant' is a required property."))?;
    Ok(Json(access_view(&id, s.flavor_access_change(&ctx, &id, project, grant).await?)))
}

pub async fn keypair_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    q: Params,
) -> ApiResult<Json<Value>> {
    let user = q.get("user_id").filter(|_| v.at_least(10)).map(String::as_str);
    let list = s.keypair_list(&ctx, user).await?;
    let list = if v.at_least(35) { paginate(list, &q, |k| k.name.as_str())? } else { list };
    let mut out =
        json!({"keypairs": list.iter().map(|k| json!({"keypair": keypair_view(k, v, false)})).collect::<Vec<_>>()});
    if v.at_least(35) {
        if let Some(links) = super::page_links(&list, &q, &base(&s), "/os-keypairs", |k| k.name.as_str()) {
            out["keypairs_links"] = links;
        }
    }
    Ok(Json(out))
}

pub async fn keypair_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(name): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let user = q.get("user_id").filter(|_| v.at_least(10)).map(String::as_str);
    let k = s.keypair_get(&ctx, &name, user).await?;
    Ok(Json(json!({"keypair": keypair_view(&k, v, true)})))
}

pub async fn keypair_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let b = wrapped(body, "keypair")?;
    let name =
        b.get("name").and_then(Value::as_str).ok_or_else(|| bad("Invalid input: 'name' is a required property."))?;
    let public = b.get("public_key").and_then(Value::as_str);
    if public.is_none() && v.at_least(92) {
        return Err(bad(
            "Invalid input: 'public_key' is a required property (keys are no longer generated from 2.92).",
        ));
    }
    let kind = if v.at_least(2) { b.get("type").and_then(Value::as_str).unwrap_or("ssh") } else { "ssh" };
    let user = b.get("user_id").and_then(Value::as_str).filter(|_| v.at_least(10));
    let made = s.keypair_create(&ctx, name, public, kind, user).await?;
    let mut view = keypair_view(&made.keypair, v, false);
    view["user_id"] = json!(made.keypair.user_id);
    if let Some(p) = made.private_key {
        view["private_key"] = json!(p);
    }
    let status = if v.at_least(2) { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "keypair": view }))))
}

pub async fn keypair_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(name): Path<String>,
    q: Params,
) -> ApiResult<StatusCode> {
    let user = q.get("user_id").filter(|_| v.at_least(10)).map(String::as_str);
    s.keypair_delete(&ctx, &name, user).await?;
    Ok(if v.at_least(2) { StatusCode::NO_CONTENT } else { StatusCode::ACCEPTED })
}

async fn hypervisors(
    s: &AppState,
    ctx: &AuthContext,
    v: Version,
    detail: bool,
    q: &std::collections::HashMap<String, String>,
) -> ApiResult<Vec<Value>> {
    let hosts = s.host_views(ctx, Some("os_compute_api:os-hypervisors:list")).await?;
    let pattern = q.get("hypervisor_hostname_pattern");
    Ok(hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| pattern.is_none_or(|p| h.row.host.contains(p.as_str())))
        .map(|(i, h)| hypervisor_view(&h.row, i, v, h.up, detail, h.servers))
        .collect())
}

/// `PUT /os-hypervisors/{host}/reservation` (a Stratus extension the reservation
/// service uses): the host is held by `{"reservation": {"id", "project_id"}}`, or a
/// slice of it when the body also says how much (`vcpus`, `memory_mb`, `disk_gb`).
pub async fn hypervisor_reserve(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(host): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let r = wrapped(body, "reservation")?;
    let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let held = crate::store::HostReservation { id: text("id"), project_id: text("project_id").into() };
    let size = |k: &str| -> ApiResult<Option<i64>> {
        match r.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_i64().map(Some).ok_or_else(|| bad(format!("{k} must be a whole number."))),
        }
    };
    let slice = match (size("vcpus")?, size("memory_mb")?, size("disk_gb")?) {
        (None, None, None) => None,
        (c, m, d) => Some((c.unwrap_or(0), m.unwrap_or(0), d.unwrap_or(0))),
    };
    s.host_reserve(&ctx, &host, &held, slice).await?;
    let mut out = json!({"id": held.id, "project_id": held.project_id, "host": host});
    if let Some((c, m, d)) = slice {
        out["vcpus"] = json!(c);
        out["memory_mb"] = json!(m);
        out["disk_gb"] = json!(d);
    }
    Ok(Json(json!({"reservation": out})))
}

/// `DELETE /os-hypervisors/{host}/reservation/{id}`: the host returns to the shared pool.
pub async fn hypervisor_unreserve(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((host, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.host_unreserve(&ctx, &host, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn hypervisor_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    q: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"hypervisors": hypervisors(&s, &ctx, v, false, &q).await?})))
}

pub async fn hypervisor_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    q: Params,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"hypervisors": hypervisors(&s, &ctx, v, true, &q).await?})))
}

pub async fn hypervisor_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let all = hypervisors(&s, &ctx, v, true, &q).await?;
    all.into_iter()
        .find(|h| {
            h["id"].as_str() == Some(id.as_str())
                || h["id"].as_i64().is_some_and(|n| n.to_string() == id)
                || h["hypervisor_hostname"] == json!(id)
        })
        .map(|h| Json(json!({ "hypervisor": h })))
        .ok_or_else(|| not_found(format!("Hypervisor with ID {id} could not be found.")))
}

/// `GET /os-hypervisors/{id}/uptime` (before 2.88; from 2.88 the hypervisor itself
/// shows it): what the host's agent last reported. A host that is no machine of its
/// own (a fake host, a bare-metal node) has none: 501, as Nova answers for a driver
/// without it (the openstack client then shows the hypervisor without uptime).
pub async fn hypervisor_uptime(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    if v.at_least(88) {
        return Err(not_found("The resource could not be found.".to_string()));
    }
    let Json(mut found) = hypervisor_show(State(s.clone()), ctx.clone(), v, Path(id), q).await?;
    let name = found["hypervisor"]["hypervisor_hostname"].as_str().unwrap_or_default().to_string();
    match s.host_uptime(&ctx, &name).await? {
        Some(uptime) => {
            let h = &mut found["hypervisor"];
            let kept = json!({"id": h["id"], "hypervisor_hostname": h["hypervisor_hostname"], "state": h["state"],
                              "status": h["status"], "uptime": uptime});
            *h = kept;
            Ok(Json(found))
        }
        None => Err(crate::app::Error::NotImplemented("Virt driver does not implement uptime function.".into()).into()),
    }
}

/// `GET /os-hypervisors/{pattern}/search` (before 2.53): the hypervisors whose host
/// name contains the pattern (404 when none does).
pub async fn hypervisor_search(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(pattern): Path<String>,
) -> ApiResult<Json<Value>> {
    hypervisor_matches(&s, &ctx, v, &pattern, false).await
}

/// `GET /os-hypervisors/{pattern}/servers` (before 2.53): the same, each with the
/// servers on it (`name`, `uuid`).
pub async fn hypervisor_servers(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(pattern): Path<String>,
) -> ApiResult<Json<Value>> {
    hypervisor_matches(&s, &ctx, v, &pattern, true).await
}

async fn hypervisor_matches(
    s: &AppState,
    ctx: &AuthContext,
    v: Version,
    pattern: &str,
    servers: bool,
) -> ApiResult<Json<Value>> {
    if v.at_least(53) {
        // Replaced by `?hypervisor_hostname_pattern=` and `?with_servers=true`.
        return Err(not_found("The resource could not be found.".to_string()));
    }
    let hosts = s.host_views(ctx, Some("os_compute_api:os-hypervisors:search")).await?;
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate().filter(|(_, h)| h.row.host.contains(pattern)) {
        let mut view = hypervisor_view(&h.row, i, v, h.up, false, h.servers);
        if servers {
            let list = s.host_servers(ctx, &h.row.host).await?;
            if !list.is_empty() {
                view["servers"] = list.iter().map(|(name, id)| json!({"name": name, "uuid": id})).collect();
            }
        }
        out.push(view);
    }
    if out.is_empty() {
        return Err(not_found(format!("No hypervisor matching '{pattern}' could be found.")));
    }
    Ok(Json(json!({ "hypervisors": out })))
}

pub async fn hypervisor_statistics(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let hosts = s.host_views(&ctx, Some("os_compute_api:os-hypervisors:statistics")).await?;
    let sum = |f: fn(&HostView) -> i64| hosts.iter().map(f).sum::<i64>();
    Ok(Json(json!({"hypervisor_statistics": {
        "count": hosts.len(), "vcpus": sum(|h| h.row.vcpus), "vcpus_used": sum(|h| h.row.used_vcpus),
        "memory_mb": sum(|h| h.row.ram_mb), "memory_mb_used": sum(|h| h.row.used_ram),
        "free_ram_mb": sum(|h| h.row.ram_mb - h.row.used_ram), "local_gb": sum(|h| h.row.disk_gb),
        "local_gb_used": sum(|h| h.row.used_disk), "free_disk_gb": sum(|h| h.row.disk_gb - h.row.used_disk),
        "disk_available_least": sum(|h| h.row.disk_gb - h.row.used_disk), "current_workload": 0,
        "running_vms": sum(|h| h.servers)}})))
}

async fn zones(s: &AppState, ctx: &AuthContext, detail: bool) -> ApiResult<Json<Value>> {
    let policy = detail.then_some("os_compute_api:os-availability-zone:detail");
    let hosts = s.host_views(ctx, policy).await?;
    let mut names: Vec<&str> = hosts.iter().map(|h| h.row.availability_zone.as_str()).collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names.push("nova");
    }
    let list: Vec<Value> = names
        .iter()
        .map(|z| {
            let in_zone: Vec<&HostView> = hosts.iter().filter(|h| h.row.availability_zone == *z).collect();
            let available = in_zone.iter().any(|h| h.up && h.row.enabled);
            let detail_hosts: Map<String, Value> = in_zone
                .iter()
                .map(|h| {
                    let state = json!({"available": h.up && h.row.enabled, "active": h.row.enabled, "updated_at": h.row.last_seen});
                    (h.row.host.to_string(), json!({ "nova-compute": state }))
                })
                .collect();
            json!({"zoneName": z, "zoneState": {"available": available},
                   "hosts": if detail { Value::Object(detail_hosts) } else { Value::Null }})
        })
        .collect();
    Ok(Json(json!({ "availabilityZoneInfo": list })))
}

pub async fn az_list(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    zones(&s, &ctx, false).await
}

pub async fn az_detail(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    zones(&s, &ctx, true).await
}

pub async fn limits(State(s): State<AppState>, ctx: AuthContext, v: Version) -> ApiResult<Json<Value>> {
    let mut absolute = s.absolute_limits(&ctx).await?;
    if let Some(a) = absolute.as_object_mut() {
        a.retain(|k, _| limit_shown(k, v));
    }
    Ok(Json(json!({"limits": {"rate": [], "absolute": absolute}})))
}

/// The absolute limits of microversion `v`: Nova dropped the network proxy ones in
/// 2.36, the image metadata one in 2.39 and the file injection ones in 2.57.
fn limit_shown(key: &str, v: Version) -> bool {
    match key {
        "maxSecurityGroups"
        | "maxSecurityGroupRules"
        | "maxTotalFloatingIps"
        | "totalFloatingIpsUsed"
        | "totalSecurityGroupsUsed" => !v.at_least(36),
        "maxImageMeta" => !v.at_least(39),
        "maxPersonality" | "maxPersonalitySize" => !v.at_least(57),
        _ => true,
    }
}

/// The quota keys of microversion `v` (Nova dropped the network ones in 2.36 and the
/// file injection ones in 2.57).
fn quota_at(mut q: Map<String, Value>, v: Version) -> Map<String, Value> {
    q.retain(|k, _| crate::app::quotas::quota_key_shown(k, u32::from(v.1)));
    q
}

pub async fn quota_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota_set": quota_at(s.quota_show(&ctx, &p, false).await?, v)})))
}

pub async fn quota_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota_set": quota_at(s.quota_show(&ctx, &p, true).await?, v)})))
}

pub async fn quota_defaults(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota_set": quota_at(s.quota_defaults(&ctx, &p).await?, v)})))
}

/// `DELETE /os-quota-sets/{project}` (admins): back to the defaults.
pub async fn quota_delete(State(s): State<AppState>, ctx: AuthContext, Path(p): Path<String>) -> ApiResult<StatusCode> {
    s.quota_delete(&ctx, &p).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /os-quota-class-sets/default`: every project's defaults.
pub async fn quota_class_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(class): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota_class_set": quota_at(s.quota_class_show(&ctx, &class).await?, v)})))
}

/// `PUT /os-quota-class-sets/default` (admins): changes every project's defaults.
pub async fn quota_class_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(class): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let body = wrapped(body, "quota_class_set")?;
    if let Some(k) = body.keys().find(|k| !crate::app::quotas::quota_key_shown(k, u32::from(v.1))) {
        return Err(crate::app::bad(format!(
            "Invalid input for field/attribute quota_class_set. Additional properties are not allowed ('{k}' was unexpected)"
        ))
        .into());
    }
    Ok(Json(json!({"quota_class_set": quota_at(s.quota_class_update(&ctx, &class, &body).await?, v)})))
}

pub async fn quota_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(p): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let body = wrapped(body, "quota_set")?;
    if let Some(k) = body.keys().find(|k| !crate::app::quotas::quota_key_shown(k, u32::from(v.1))) {
        return Err(crate::app::bad(format!(
            "Invalid input for field/attribute quota_set. Additional properties are not allowed ('{k}' was unexpected)"
        ))
        .into());
    }
    Ok(Json(json!({"quota_set": quota_at(s.quota_update(&ctx, &p, &body).await?, v)})))
}

fn group_view(g: &ServerGroup, v: Version) -> Value {
    let mut o = json!({"id": g.id, "name": g.name, "members": g.members, "metadata": {}});
    if v.at_least(64) {
        o["policy"] = json!(g.policy);
        o["rules"] = json!({});
        o.as_object_mut().map(|m| m.remove("metadata"));
    } else {
        o["policies"] = json!([g.policy]);
    }
    if v.at_least(13) {
        o["project_id"] = json!(g.project_id);
        o["user_id"] = json!(g.user_id);
    }
    o
}

pub async fn group_list(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    let list = s.group_list(&ctx, flag(&q, "all_projects")).await?;
    let list = paginate(list, &q, |g| g.id.as_str())?;
    Ok(Json(json!({"server_groups": list.iter().map(|g| group_view(g, v)).collect::<Vec<_>>()})))
}

pub async fn group_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let g = s.group_get(&ctx, &id).await?;
    Ok(Json(json!({"server_group": group_view(&g, v)})))
}

pub async fn group_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let b = wrapped(body, "server_group")?;
    let name = b.get("name").and_then(Value::as_str).unwrap_or_default();
    let policy = if v.at_least(64) {
        b.get("policy").and_then(Value::as_str).map(str::to_string)
    } else {
        b.get("policies").and_then(Value::as_array).and_then(|p| p.first()).and_then(Value::as_str).map(str::to_string)
    }
    .ok_or_else(|| bad("Invalid input: a policy is required."))?;
    let g = s.group_create(&ctx, name, &policy).await?;
    Ok(Json(json!({"server_group": group_view(&g, v)})))
}

pub async fn group_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.group_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `os-simple-tenant-usage`: the window from `start`/`end` (default: the last day) and
/// the app layer's figures in Nova's shape.
async fn usage(
    s: &AppState,
    ctx: &AuthContext,
    q: &std::collections::HashMap<String, String>,
    only: Option<&str>,
    detailed: bool,
) -> ApiResult<Vec<Value>> {
    let now = chrono::Utc::now();
    let (start, end) = stratus_common::http::window::window(q, chrono::Duration::days(1))?;
    let end = end.min(now);
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    Ok(s.usage(ctx, only, start, end)
        .await?
        .into_iter()
        .map(|(p, u)| {
            let mut out = json!({"tenant_id": p, "total_memory_mb_usage": u.memory_mb_hours,
                                 "total_vcpus_usage": u.vcpu_hours, "total_local_gb_usage": u.disk_gb_hours,
                                 "total_hours": u.hours, "start": stamp(start), "stop": stamp(end)});
            if detailed {
                let servers: Vec<Value> = u
                    .servers
                    .iter()
                    .map(|x| {
                        let v = &x.server;
                        json!({"instance_id": v.id, "name": v.name, "hours": x.hours, "memory_mb": v.ram,
                               "vcpus": v.vcpus, "local_gb": v.disk, "flavor": v.doc["flavor"]["original_name"],
                               "tenant_id": v.project_id, "started_at": v.created_at, "ended_at": v.terminated_at,
                               "state": v.vm_state, "uptime": x.uptime})
                    })
                    .collect();
                out["server_usages"] = json!(servers);
            }
            out
        })
        .collect())
}

pub async fn usage_list(State(s): State<AppState>, ctx: AuthContext, q: Params) -> ApiResult<Json<Value>> {
    let detailed = flag(&q, "detailed");
    // As Nova: every project's usage is for administrators; a member asks for their
    // own project's (`GET /os-simple-tenant-usage/{project}`, `openstack usage show`).
    if !ctx.is_admin() {
        return Err(crate::app::forbidden(
            "Policy doesn't allow os_compute_api:os-simple-tenant-usage:list to be performed.",
        )
        .into());
    }
    Ok(Json(json!({"tenant_usages": usage(&s, &ctx, &q, None, detailed).await?})))
}

pub async fn usage_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<String>,
    q: Params,
) -> ApiResult<Json<Value>> {
    let mut list = usage(&s, &ctx, &q, Some(&p), true).await?;
    Ok(Json(json!({"tenant_usage": list.pop().unwrap_or_else(|| json!({}))})))
}
