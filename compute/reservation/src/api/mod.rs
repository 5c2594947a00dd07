//! The reservation API (Blazar v1). Handlers parse and render; the app layer decides.
//! Bodies are Blazar's: `{"lease": {...}}` out, the bare object in; errors are
//! `{"error_code", "error_message", "error_name"}`.

mod error;
pub mod reference;
pub mod views;

use crate::ReservationService;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_common::auth::{authenticate, AuthContext, TokenVerifier};
use stratus_common::http::{service_router, ApiError, ApiJson, ApiResult, ErrorStyle};

pub type AppState = Arc<ReservationService>;
type Params = Query<HashMap<String, String>>;

pub fn router(service: Arc<ReservationService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let routes = Router::new()
        .route("/", get(versions))
        .route("/v1", get(version))
        .route("/v1/", get(version))
        .route("/v1/leases", get(lease_list).post(lease_create))
        .route("/v1/leases/{id}", get(lease_show).put(lease_update).delete(lease_delete))
        .route("/v1/os-hosts", get(host_list).post(host_create))
        .route("/v1/os-hosts/allocations", get(allocation_list))
        .route("/v1/os-hosts/properties", get(host_properties))
        .route("/v1/os-hosts/{id}", get(host_show).put(host_update).delete(host_delete))
        .route("/v1/os-hosts/{id}/allocation", get(allocation_show))
        .route("/v1/floatingips", get(floatingip_list).post(floatingip_create))
        .route("/v1/floatingips/{id}", get(floatingip_show).delete(floatingip_delete))
        .route("/reference/sites.json", get(reference::sites))
        .route("/reference/sites/{site}/clusters/{cluster}/nodes.json", get(reference::nodes))
        .route("/reference/sites/{site}/clusters/{cluster}/nodes/{uid}", get(reference::node_show))
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service);
    service_router("reservation", ErrorStyle::Blazar, max_body_bytes, routes)
}

fn version_doc(base: &str) -> Value {
    json!({"id": "v1.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v1/")}]})
}

async fn versions(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    (StatusCode::MULTIPLE_CHOICES, Json(json!({"versions": [version_doc(&s.settings.public_url)]})))
}

async fn version(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"version": version_doc(&s.settings.public_url)}))
}

/// A request body's object: Blazar takes it bare, some clients wrap it under `key`.
fn object(body: Value, key: &str) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(mut m) => match m.remove(key) {
            Some(Value::Object(inner)) if m.is_empty() => Ok(inner),
            Some(other) => {
                m.insert(key.to_string(), other);
                Ok(m)
            }
            None => Ok(m),
        },
        _ => Err(ApiError::bad_request("The request body must be a JSON object.")),
    }
}

async fn lease_list(State(s): State<AppState>, ctx: AuthContext, Query(q): Params) -> ApiResult<Json<Value>> {
    let leases = s.lease_list(&ctx, q.get("project_id").map(String::as_str)).await?;
    let mut shown: Vec<Value> = leases.iter().map(views::lease).collect();
    if let Some(name) = q.get("name") {
        shown.retain(|l| l["name"] == json!(name));
    }
    if let Some(status) = q.get("status") {
        shown.retain(|l| l["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(status)));
    }
    Ok(Json(json!({"leases": shown})))
}

async fn lease_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let made = s.lease_create(&ctx, object(body, "lease")?).await?;
    Ok((StatusCode::CREATED, Json(json!({"lease": views::lease(&made)}))))
}

async fn lease_show(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"lease": views::lease(&s.lease_get(&ctx, &id).await?)})))
}

async fn lease_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let changed = s.lease_update(&ctx, &id, object(body, "lease")?).await?;
    Ok(Json(json!({"lease": views::lease(&changed)})))
}

async fn lease_delete(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.lease_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn host_list(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let hosts: Vec<Value> = s.host_list(&ctx).await?.iter().map(views::host).collect();
    Ok(Json(json!({"hosts": hosts})))
}

async fn host_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let h = s.host_create(&ctx, object(body, "host")?).await?;
    Ok((StatusCode::CREATED, Json(json!({"host": views::host(&h)}))))
}

async fn host_show(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"host": views::host(&s.host_get(&ctx, &id).await?)})))
}

async fn host_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let h = s.host_update(&ctx, &id, object(body, "host")?).await?;
    Ok(Json(json!({"host": views::host(&h)})))
}

async fn host_delete(State(s): State<AppState>, ctx: AuthContext, Path(id): Path<String>) -> ApiResult<StatusCode> {
    s.host_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /os-hosts/properties[?detail=True]`: the extra capabilities hosts have.
async fn host_properties(State(s): State<AppState>, ctx: AuthContext, Query(q): Params) -> ApiResult<Json<Value>> {
    let detail = q.get("detail").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let props: Vec<Value> = s
        .host_properties(&ctx)
        .await?
        .into_iter()
        .map(|(name, values)| {
            if detail {
                json!({"property": name, "private": false, "values": values})
            } else {
                json!({"property": name})
            }
        })
        .collect();
    Ok(Json(json!({"resource_properties": props})))
}

/// `GET /os-hosts/allocations[?lease_id=&reservation_id=]`: every host with the
/// reservations holding it now or later.
async fn allocation_list(State(s): State<AppState>, ctx: AuthContext, Query(q): Params) -> ApiResult<Json<Value>> {
    let all = s.host_allocations(&ctx).await?;
    let keep = |a: &crate::store::Allocation| {
        q.get("lease_id").is_none_or(|l| &a.lease_id == l)
            && q.get("reservation_id").is_none_or(|r| &a.reservation_id == r)
    };
    let shown: Vec<Value> = all
        .iter()
        .map(|(h, allocs)| {
            let mine: Vec<_> = allocs.iter().filter(|a| keep(a)).cloned().collect();
            views::allocation(h, &mine)
        })
        .collect();
    Ok(Json(json!({"allocations": shown})))
}

async fn allocation_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let host = s.host_get(&ctx, &id).await?;
    let all = s.host_allocations(&ctx).await?;
    let mine = all.into_iter().find(|(h, _)| h.id == host.id).map(|(_, a)| a).unwrap_or_default();
    Ok(Json(json!({"allocation": views::allocation(&host, &mine)})))
}

async fn floatingip_list(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let fips: Vec<Value> = s.floatingip_list(&ctx).await?.iter().map(views::floatingip).collect();
    Ok(Json(json!({"floatingips": fips})))
}

async fn floatingip_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let f = s.floatingip_create(&ctx, object(body, "floatingip")?).await?;
    Ok((StatusCode::CREATED, Json(json!({"floatingip": views::floatingip(&f)}))))
}

async fn floatingip_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"floatingip": views::floatingip(&s.floatingip_get(&ctx, &id).await?)})))
}

async fn floatingip_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.floatingip_delete(&ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
