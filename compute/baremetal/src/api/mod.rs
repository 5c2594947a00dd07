//! The bare-metal API (an Ironic v1 subset). Handlers parse and render; the app layer
//! decides. Microversions run from 1.1 to [`MAX_VERSION`]: a request names one in
//! `X-OpenStack-Ironic-API-Version` (or `OpenStack-API-Version: baremetal 1.N`), and
//! every answer says which it used and the range there is, which is how the clients
//! negotiate.

mod agent;
mod error;
pub mod views;

use crate::model::HardwareType;
use crate::BaremetalService;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_common::auth::{authenticate, AuthContext, TokenVerifier};
use stratus_common::http::pagination::{next_link, parse_bool, ListQuery};
use stratus_common::http::{service_router, ApiError, ApiJson, ApiResult, ErrorStyle};

pub type AppState = Arc<BaremetalService>;
type Params = Query<HashMap<String, String>>;

/// The newest microversion this service implements (1.31: interfaces set per node).
pub const MAX_VERSION: u32 = 31;
const VERSION_HEADER: &str = "x-openstack-ironic-api-version";

/// The microversion a request is served at (the minor number of 1.N).
#[derive(Debug, Clone, Copy)]
pub struct Version(pub u32);

/// Collections answer with and without a trailing slash (the clients add one).
pub fn router(service: Arc<BaremetalService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let routes = Router::new()
        .route("/", get(root))
        .route("/v1", get(v1))
        .route("/v1/", get(v1))
        .route("/v1/nodes", get(node_list).post(node_create))
        .route("/v1/nodes/", get(node_list).post(node_create))
        .route("/v1/nodes/detail", get(node_list_detail))
        .route("/v1/nodes/{node}", get(node_show).patch(node_patch).delete(node_delete))
        .route("/v1/nodes/{node}/states", get(node_states))
        .route("/v1/nodes/{node}/states/provision", put(node_provision))
        .route("/v1/nodes/{node}/states/power", put(node_power))
        .route("/v1/nodes/{node}/maintenance", put(maintenance_on).delete(maintenance_off))
        .route("/v1/nodes/{node}/management/boot_device", get(boot_device).put(boot_device_set))
        .route("/v1/nodes/{node}/management/boot_device/supported", get(boot_devices_supported))
        .route("/v1/nodes/{node}/validate", get(node_validate))
        .route("/v1/nodes/{node}/ports", get(node_ports))
        .route("/v1/nodes/{node}/ports/", get(node_ports))
        .route("/v1/nodes/{node}/ports/detail", get(node_ports_detail))
        .route("/v1/ports", get(port_list).post(port_create))
        .route("/v1/ports/", get(port_list).post(port_create))
        .route("/v1/ports/detail", get(port_list_detail))
        .route("/v1/ports/{port}", get(port_show).patch(port_patch).delete(port_delete))
        .route("/v1/drivers", get(driver_list))
        .route("/v1/drivers/", get(driver_list))
        .route("/v1/drivers/{name}", get(driver_show))
        .route("/v1/drivers/{name}/properties", get(driver_properties))
        .merge(agent::routes())
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service)
        .layer(axum::middleware::from_fn(microversion));
    service_router("baremetal", ErrorStyle::Ironic, max_body_bytes, routes)
}

/// Reads the requested microversion (absent: 1.1; `latest`: the newest), refuses one
/// out of range with 406, and stamps the version headers on every answer.
async fn microversion(mut req: Request, next: Next) -> Response {
    let asked = req.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
        let v = req.headers().get("openstack-api-version")?.to_str().ok()?;
        v.trim().strip_prefix("baremetal").map(|s| s.trim().to_string())
    });
    let parsed = match asked.as_deref() {
        None => Ok(1),
        Some("latest") => Ok(MAX_VERSION),
        Some(text) => match text.trim().split_once('.') {
            Some(("1", minor)) => match minor.parse::<u32>() {
                Ok(m) if (1..=MAX_VERSION).contains(&m) => Ok(m),
                _ => Err(format!("Version {text} was requested but the minor version is not supported by this service. The supported version range is: [1.1, 1.{MAX_VERSION}].")),
            },
            _ => Err(format!("Invalid value for {VERSION_HEADER} header: {text}")),
        },
    };
    let (mut resp, used) = match parsed {
        Ok(v) => {
            req.extensions_mut().insert(Version(v));
            (next.run(req).await, v)
        }
        Err(message) => {
            let status =
                if message.starts_with("Invalid") { StatusCode::BAD_REQUEST } else { StatusCode::NOT_ACCEPTABLE };
            (ApiError::new(status, message).into_response(), MAX_VERSION)
        }
    };
    let h = resp.headers_mut();
    h.insert("x-openstack-ironic-api-minimum-version", HeaderValue::from_static("1.1"));
    if let Ok(v) = HeaderValue::from_str(&format!("1.{MAX_VERSION}")) {
        h.insert("x-openstack-ironic-api-maximum-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("1.{used}")) {
        h.insert(VERSION_HEADER, v.clone());
        h.insert("openstack-api-version", HeaderValue::from_str(&format!("baremetal 1.{used}")).unwrap_or(v));
    }
    h.insert("vary", HeaderValue::from_static("X-OpenStack-Ironic-API-Version"));
    resp
}

fn version_doc(base: &str) -> Value {
    json!({"id": "v1", "status": "CURRENT", "min_version": "1.1", "version": format!("1.{MAX_VERSION}"),
           "links": [{"href": format!("{base}/v1/"), "rel": "self"}]})
}

async fn root(State(s): State<AppState>) -> Json<Value> {
    let base = &s.settings.public_url;
    Json(
        json!({"name": "OpenStack Ironic API", "description": "Bare metal provisioning (Stratus, an Ironic v1 subset).",
                "default_version": version_doc(base), "versions": [version_doc(base)]}),
    )
}

async fn v1(State(s): State<AppState>) -> Json<Value> {
    let base = &s.settings.public_url;
    let link = |what: &str| {
        json!([{"href": format!("{base}/v1/{what}/"), "rel": "self"},
                                  {"href": format!("{base}/{what}/"), "rel": "bookmark"}])
    };
    Json(json!({
        "id": "v1",
        "links": [{"href": format!("{base}/v1/"), "rel": "self"}],
        "media_types": [{"base": "application/json", "type": "application/vnd.openstack.ironic.v1+json"}],
        "nodes": link("nodes"),
        "ports": link("ports"),
        "drivers": link("drivers"),
        "version": version_doc(base),
    }))
}

/// A request body's object; the clients send it bare.
fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

fn patch_ops(body: Value) -> ApiResult<Vec<Value>> {
    match body {
        Value::Array(ops) => Ok(ops),
        _ => Err(ApiError::bad_request("A PATCH body is a JSON patch: a list of operations.")),
    }
}

/// `?fields=a,b` (API 1.8 on), or `None`.
fn fields(q: &HashMap<String, String>, version: Version) -> ApiResult<Option<Vec<String>>> {
    match q.get("fields") {
        None => Ok(None),
        Some(_) if version.0 < 8 => {
            Err(ApiError::new(StatusCode::NOT_ACCEPTABLE, "fields needs API version 1.8 or later."))
        }
        Some(f) => Ok(Some(f.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())),
    }
}

/// Filters, pages and trims a list of views; `id` is the uuid, for paging.
fn page(
    base_url: &str,
    key: &str,
    views: Vec<Value>,
    q: &HashMap<String, String>,
    keep: Option<Vec<String>>,
) -> ApiResult<Json<Value>> {
    let lq = ListQuery::parse(q, &[])?;
    let items: Vec<Value> = views
        .into_iter()
        .map(|mut v| {
            let id = v["uuid"].clone();
            v.as_object_mut().expect("an object").insert("id".into(), id);
            v
        })
        .collect();
    let page = lq.apply(items)?;
    let shown: Vec<Value> = page
        .items
        .into_iter()
        .map(|mut v| {
            v.as_object_mut().expect("an object").remove("id");
            match &keep {
                Some(f) => views::only(v, f),
                None => v,
            }
        })
        .collect();
    let mut out = json!({key: shown});
    if let Some(marker) = page.next_marker {
        out["next"] = Value::from(next_link(base_url, q, &marker));
    }
    Ok(Json(out))
}

/// The node list's filters, as Ironic's.
fn node_matches(v: &Value, q: &HashMap<String, String>) -> ApiResult<bool> {
    for (k, want) in q {
        let ok = match k.as_str() {
            "associated" => {
                let b = parse_bool(want).ok_or_else(|| ApiError::bad_request("associated must be a boolean."))?;
                v["instance_uuid"].is_null() != b
            }
            "maintenance" => {
                let b = parse_bool(want).ok_or_else(|| ApiError::bad_request("maintenance must be a boolean."))?;
                v["maintenance"] == json!(b)
            }
            "provision_state" | "driver" | "resource_class" | "instance_uuid" | "owner" | "lessee" | "fault" => {
                v[k.as_str()].as_str() == Some(want.as_str())
            }
            "description_contains" => v["description"].as_str().is_some_and(|d| d.contains(want.as_str())),
            _ => true,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn nodes(
    s: &AppState,
    ctx: &AuthContext,
    q: &HashMap<String, String>,
    version: Version,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let base = &s.settings.public_url;
    let keep = fields(q, version)?;
    if detail && keep.is_some() {
        return Err(ApiError::bad_request("Can not specify ?detail=True and fields in the same request."));
    }
    let mut views = Vec::new();
    for n in s.node_list(ctx).await? {
        let v = views::node(base, &s.settings.conductor, &n);
        if node_matches(&v, q)? {
            views.push(v);
        }
    }
    let keep = match (detail, keep) {
        (true, _) => None,
        (false, Some(f)) => Some(f),
        (false, None) => Some(views::NODE_LIST_FIELDS.iter().map(|s| s.to_string()).collect()),
    };
    let url = format!("{base}/v1/nodes{}", if detail { "/detail" } else { "" });
    page(&url, "nodes", views, q, keep)
}

async fn node_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let detail = q.get("detail").and_then(|d| parse_bool(d)).unwrap_or(false);
    nodes(&s, &ctx, &q, v, detail).await
}

async fn node_list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    nodes(&s, &ctx, &q, v, true).await
}

async fn node_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Value>)> {
    let n = s.node_create(&ctx, object(body)?, v.0).await?;
    let mut h = HeaderMap::new();
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/v1/nodes/{}", s.settings.public_url, n.id)) {
        h.insert("location", loc);
    }
    Ok((StatusCode::CREATED, h, Json(views::node(&s.settings.public_url, &s.settings.conductor, &n))))
}

async fn node_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Path(node): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let n = s.node_get(&ctx, &node).await?;
    let view = views::node(&s.settings.public_url, &s.settings.conductor, &n);
    Ok(Json(match fields(&q, v)? {
        Some(f) => views::only(view, &f),
        None => view,
    }))
}

async fn node_patch(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let n = s.node_patch(&ctx, &node, &patch_ops(body)?).await?;
    Ok(Json(views::node(&s.settings.public_url, &s.settings.conductor, &n)))
}

async fn node_delete(State(s): State<AppState>, ctx: AuthContext, Path(node): Path<String>) -> ApiResult<StatusCode> {
    s.node_delete(&ctx, &node).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn node_states(State(s): State<AppState>, ctx: AuthContext, Path(node): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(views::states(&s.node_get(&ctx, &node).await?)))
}

fn accepted(s: &AppState, node: &str, what: &str) -> (StatusCode, HeaderMap) {
    let mut h = HeaderMap::new();
    if let Ok(loc) = HeaderValue::from_str(&format!("{}/v1/nodes/{node}/states{what}", s.settings.public_url)) {
        h.insert("location", loc);
    }
    (StatusCode::ACCEPTED, h)
}

async fn node_provision(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Path(node): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, HeaderMap)> {
    s.node_provision(&ctx, &node, &object(body)?, v.0).await?;
    Ok(accepted(&s, &node, ""))
}

async fn node_power(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, HeaderMap)> {
    s.node_power(&ctx, &node, &object(body)?).await?;
    Ok(accepted(&s, &node, ""))
}

async fn maintenance_on(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    // The body is optional: `{"reason": "..."}` or nothing.
    let reason = if body.is_empty() {
        None
    } else {
        let b: Value = stratus_common::http::json::parse_json(&body)?;
        b.get("reason").and_then(Value::as_str).map(str::to_string)
    };
    s.node_maintenance(&ctx, &node, true, reason).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn maintenance_off(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
) -> ApiResult<StatusCode> {
    s.node_maintenance(&ctx, &node, false, None).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn boot_device(State(s): State<AppState>, ctx: AuthContext, Path(node): Path<String>) -> ApiResult<Json<Value>> {
    let d = s.node_boot_device(&ctx, &node).await?;
    Ok(Json(json!({"boot_device": d.map(|d| d.as_str()), "persistent": null})))
}

async fn boot_device_set(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<StatusCode> {
    let device = body["boot_device"].as_str().ok_or_else(|| ApiError::bad_request("boot_device is required."))?;
    let persistent = match &body["persistent"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(t) => parse_bool(t).ok_or_else(|| ApiError::bad_request("persistent must be a boolean."))?,
        _ => return Err(ApiError::bad_request("persistent must be a boolean.")),
    };
    s.node_set_boot_device(&ctx, &node, device, persistent).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn boot_devices_supported(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
) -> ApiResult<Json<Value>> {
    s.node_get(&ctx, &node).await?;
    let all: Vec<&str> = crate::model::BootDevice::ALL.iter().map(|d| d.as_str()).collect();
    Ok(Json(json!({"supported_boot_devices": all})))
}

async fn node_validate(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(node): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.node_validate(&ctx, &node).await?))
}

async fn ports(
    s: &AppState,
    ctx: &AuthContext,
    node: Option<&str>,
    q: &HashMap<String, String>,
    version: Version,
    detail: bool,
) -> ApiResult<Json<Value>> {
    let base = &s.settings.public_url;
    let node = node.or(q.get("node").map(String::as_str)).or(q.get("node_uuid").map(String::as_str));
    let keep = fields(q, version)?;
    let mut views = Vec::new();
    for p in s.port_list(ctx, node).await? {
        if q.get("address").is_some_and(|a| a.to_ascii_lowercase() != p.address) {
            continue;
        }
        views.push(views::port(base, &p));
    }
    let keep = match (detail, keep) {
        (true, _) => None,
        (false, Some(f)) => Some(f),
        (false, None) => Some(views::PORT_LIST_FIELDS.iter().map(|s| s.to_string()).collect()),
    };
    page(&format!("{base}/v1/ports{}", if detail { "/detail" } else { "" }), "ports", views, q, keep)
}

async fn port_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let detail = q.get("detail").and_then(|d| parse_bool(d)).unwrap_or(false);
    ports(&s, &ctx, None, &q, v, detail).await
}

async fn port_list_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    ports(&s, &ctx, None, &q, v, true).await
}

async fn node_ports(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Path(node): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    ports(&s, &ctx, Some(&node), &q, v, false).await
}

async fn node_ports_detail(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Path(node): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    ports(&s, &ctx, Some(&node), &q, v, true).await
}

async fn port_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let p = s.port_create(&ctx, &object(body)?).await?;
    Ok((StatusCode::CREATED, Json(views::port(&s.settings.public_url, &p))))
}

async fn port_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Extension(v): Extension<Version>,
    Path(port): Path<String>,
    Query(q): Params,
) -> ApiResult<Json<Value>> {
    let view = views::port(&s.settings.public_url, &s.port_get(&ctx, &port).await?);
    Ok(Json(match fields(&q, v)? {
        Some(f) => views::only(view, &f),
        None => view,
    }))
}

async fn port_patch(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(port): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let p = s.port_patch(&ctx, &port, &patch_ops(body)?).await?;
    Ok(Json(views::port(&s.settings.public_url, &p)))
}

async fn port_delete(State(s): State<AppState>, ctx: AuthContext, Path(port): Path<String>) -> ApiResult<StatusCode> {
    s.port_delete(&ctx, &port).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn require_admin(ctx: &AuthContext) -> ApiResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden("baremetal:driver:get is disallowed by policy"))
    }
}

async fn driver_list(State(s): State<AppState>, ctx: AuthContext, Query(q): Params) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    let detail = q.get("detail").and_then(|d| parse_bool(d)).unwrap_or(false);
    if q.get("type").is_some_and(|t| t != "dynamic") {
        return Ok(Json(json!({"drivers": []})));
    }
    let drivers: Vec<Value> = HardwareType::ALL
        .iter()
        .map(|hw| views::driver(&s.settings.public_url, *hw, &s.settings.conductor, detail))
        .collect();
    Ok(Json(json!({"drivers": drivers})))
}

fn hardware(name: &str) -> ApiResult<HardwareType> {
    HardwareType::parse(name).ok_or_else(|| ApiError::not_found("driver", name))
}

async fn driver_show(State(s): State<AppState>, ctx: AuthContext, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(views::driver(&s.settings.public_url, hardware(&name)?, &s.settings.conductor, true)))
}

async fn driver_properties(
    State(_s): State<AppState>,
    ctx: AuthContext,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_admin(&ctx)?;
    Ok(Json(views::driver_properties(hardware(&name)?)))
}
