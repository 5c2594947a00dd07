//! The compute API (Nova v2.1 with microversions). Handlers parse and render; the app
//! layer decides.

mod aggregates;
mod error;
mod events;
mod floating_ips;
mod images;
mod migrations;
mod misc;
mod network_proxy;
mod security_groups;
mod servers;
mod services;
pub mod views;
mod volume_proxy;
mod volumes;

use crate::microversion::{MAX, MIN};
use crate::ComputeService;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use error::bad;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_common::auth::{authenticate, TokenVerifier};
use stratus_common::http::microversion::version_headers;
use stratus_common::http::{service_router, ApiResult, ErrorStyle};

pub type AppState = Arc<ComputeService>;
pub type Params = Query<HashMap<String, String>>;

pub fn router(service: Arc<ComputeService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let api = Router::new()
        .route("/flavors", get(misc::flavor_list).post(misc::flavor_create))
        .route("/flavors/detail", get(misc::flavor_detail))
        .route("/flavors/{id}", get(misc::flavor_show).delete(misc::flavor_delete).put(misc::flavor_update))
        .route("/flavors/{id}/os-extra_specs", get(misc::extra_specs_list).post(misc::extra_specs_set))
        .route(
            "/flavors/{id}/os-extra_specs/{key}",
            get(misc::extra_spec_show).put(misc::extra_spec_put).delete(misc::extra_spec_delete),
        )
        .route("/flavors/{id}/os-flavor-access", get(misc::flavor_access))
        .route("/flavors/{id}/action", post(misc::flavor_action))
        .route("/os-keypairs", get(misc::keypair_list).post(misc::keypair_create))
        .route("/os-keypairs/{name}", get(misc::keypair_show).delete(misc::keypair_delete))
        .route("/images", get(images::index))
        .route("/images/detail", get(images::detail))
        .route("/images/{id}", get(images::show).delete(images::delete))
        .route(
            "/images/{id}/metadata",
            get(images::metadata_list).post(images::metadata_merge).put(images::metadata_replace),
        )
        .route(
            "/images/{id}/metadata/{key}",
            get(images::metadata_show).put(images::metadata_put).delete(images::metadata_delete),
        )
        .route("/servers", get(servers::list).post(servers::create))
        .route("/servers/detail", get(servers::detail))
        .route("/servers/{id}", get(servers::show).put(servers::update).delete(servers::delete))
        .route("/servers/{id}/action", post(servers::action))
        .route(
            "/servers/{id}/metadata",
            get(servers::metadata_list).put(servers::metadata_replace).post(servers::metadata_merge),
        )
        .route(
            "/servers/{id}/metadata/{key}",
            get(servers::metadata_show).put(servers::metadata_put).delete(servers::metadata_delete),
        )
        .route("/servers/{id}/tags", get(servers::tags_list).put(servers::tags_replace).delete(servers::tags_clear))
        .route("/servers/{id}/tags/{tag}", get(servers::tag_check).put(servers::tag_add).delete(servers::tag_delete))
        .route("/servers/{id}/ips", get(servers::ips))
        .route("/servers/{id}/os-server-password", get(servers::password_show).delete(servers::password_clear))
        .route("/servers/{id}/diagnostics", get(servers::diagnostics))
        .route("/servers/{id}/ips/{label}", get(servers::ips_of_network))
        .route("/servers/{id}/os-interface", get(servers::interfaces).post(servers::interface_attach))
        .route("/servers/{id}/os-interface/{port}", get(servers::interface_show).delete(servers::interface_detach))
        .route("/servers/{id}/os-volume_attachments", get(volumes::list).post(volumes::attach))
        .route(
            "/servers/{id}/os-volume_attachments/{volume}",
            get(volumes::show).put(volumes::update).delete(volumes::detach),
        )
        .route("/servers/{id}/os-instance-actions", get(servers::actions))
        .route("/servers/{id}/migrations", get(migrations::of_server))
        .route("/os-migrations", get(migrations::list))
        .route("/servers/{id}/os-instance-actions/{req}", get(servers::action_show))
        .route("/servers/{id}/os-security-groups", get(security_groups::of_server))
        .route("/os-security-groups", get(security_groups::list).post(security_groups::create))
        .route(
            "/os-security-groups/{id}",
            get(security_groups::show).put(security_groups::update).delete(security_groups::delete),
        )
        .route("/os-volumes", get(volume_proxy::volumes).post(volume_proxy::volume_create))
        .route("/os-volumes/detail", get(volume_proxy::volumes))
        .route("/os-volumes/{id}", get(volume_proxy::volume_show).delete(volume_proxy::volume_delete))
        .route("/os-snapshots", get(volume_proxy::snapshots).post(volume_proxy::snapshot_create))
        .route("/os-snapshots/detail", get(volume_proxy::snapshots))
        .route("/os-snapshots/{id}", get(volume_proxy::snapshot_show).delete(volume_proxy::snapshot_delete))
        .route("/os-networks", get(network_proxy::list))
        .route("/os-networks/{id}", get(network_proxy::show))
        .route("/os-tenant-networks", get(network_proxy::list))
        .route("/os-tenant-networks/{id}", get(network_proxy::show))
        .route("/os-floating-ips", get(floating_ips::list).post(floating_ips::create))
        .route("/os-floating-ips/{id}", get(floating_ips::show).delete(floating_ips::delete))
        .route("/os-security-group-rules", post(security_groups::rule_create))
        .route("/os-security-group-rules/{id}", axum::routing::delete(security_groups::rule_delete))
        .route("/os-hypervisors", get(misc::hypervisor_list))
        .route("/os-hypervisors/detail", get(misc::hypervisor_detail))
        .route("/os-hypervisors/statistics", get(misc::hypervisor_statistics))
        .route("/os-hypervisors/{id}", get(misc::hypervisor_show))
        .route("/os-hypervisors/{id}/uptime", get(misc::hypervisor_uptime))
        .route("/os-hypervisors/{id}/search", get(misc::hypervisor_search))
        .route("/os-hypervisors/{id}/servers", get(misc::hypervisor_servers))
        .route("/os-hypervisors/{id}/reservation", axum::routing::put(misc::hypervisor_reserve))
        .route("/os-hypervisors/{id}/reservation/{reservation}", axum::routing::delete(misc::hypervisor_unreserve))
        .route("/os-services", get(services::service_list))
        .route("/os-services/{id}", axum::routing::put(services::service_update))
        .route("/os-hosts", get(services::host_list))
        .route("/os-hosts/{host}", get(services::host_show).put(services::host_update))
        .route("/os-hosts/{host}/{action}", get(services::host_power))
        .route("/os-aggregates", get(aggregates::list).post(aggregates::create))
        .route("/os-aggregates/{id}", get(aggregates::show).put(aggregates::update).delete(aggregates::delete))
        .route("/os-aggregates/{id}/action", post(aggregates::action))
        .route("/os-availability-zone", get(misc::az_list))
        .route("/os-availability-zone/detail", get(misc::az_detail))
        .route("/limits", get(misc::limits))
        .route("/os-quota-sets/{project}", get(misc::quota_show).put(misc::quota_update).delete(misc::quota_delete))
        .route("/os-quota-class-sets/{class}", get(misc::quota_class_show).put(misc::quota_class_update))
        .route("/os-quota-sets/{project}/detail", get(misc::quota_detail))
        .route("/os-quota-sets/{project}/defaults", get(misc::quota_defaults))
        .route("/os-server-groups", get(misc::group_list).post(misc::group_create))
        .route("/os-server-groups/{id}", get(misc::group_show).delete(misc::group_delete))
        .route("/os-server-external-events", post(events::create))
        .route("/os-simple-tenant-usage", get(misc::usage_list))
        .route("/os-simple-tenant-usage/{project}", get(misc::usage_show));
    let routes = Router::new()
        .route("/", get(versions))
        .route("/v2.1", get(version))
        .route("/v2.1/", get(version))
        // Nova's v2.0-compatible mode: the same API under /v2, without microversions.
        .route("/v2", get(version_v2_0))
        .route("/v2/", get(version_v2_0))
        .nest("/v2", api.clone())
        .nest("/v2.1", api)
        .layer(axum::middleware::from_fn_with_state(&crate::microversion::API, version_headers))
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service);
    service_router("compute", ErrorStyle::Nova, max_body_bytes, routes)
}

fn version_doc(base: &str) -> Value {
    json!({"id": "v2.1", "status": "CURRENT", "version": MAX.to_string(), "min_version": MIN.to_string(),
           "updated": "2013-07-23T11:33:21Z",
           "links": [{"rel": "self", "href": format!("{base}/v2.1/")},
                     {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}],
           "media-types": [{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2.1"}]})
}

/// The v2.0-compatible API's version document (no microversions).
fn version_doc_v2_0(base: &str) -> Value {
    json!({"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
           "updated": "2011-01-21T11:33:21Z",
           "links": [{"rel": "self", "href": format!("{base}/v2/")}]})
}

async fn versions(State(s): State<AppState>) -> impl IntoResponse {
    let base = &s.settings.public_url;
    let mut v2_1 = version_doc(base);
    v2_1["links"] = json!([{"rel": "self", "href": format!("{base}/v2.1/")}]);
    // Nova answers its version list with 200 (Keystone with 300), v2.0 first.
    (StatusCode::OK, Json(json!({"versions": [version_doc_v2_0(base), v2_1]})))
}

async fn version_v2_0(State(s): State<AppState>) -> Json<Value> {
    let mut doc = version_doc_v2_0(&s.settings.public_url);
    doc["media-types"] =
        json!([{"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}]);
    Json(json!({"version": doc}))
}

async fn version(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"version": version_doc(&s.settings.public_url)}))
}

/// The API's own base URL, for links.
pub(crate) fn base(s: &ComputeService) -> String {
    format!("{}/v2.1", s.settings.public_url.trim_end_matches('/'))
}

pub(crate) use stratus_common::http::wrapped;

pub(crate) fn flag(params: &HashMap<String, String>, key: &str) -> bool {
    params.get(key).and_then(|v| stratus_common::http::pagination::parse_bool(v)).unwrap_or(false)
        || params.get(key).is_some_and(|v| v == "1")
}

/// Nova's proxy APIs to the other services are gone from 2.36 (404): the `service`'s
/// own API is the one to use.
pub(crate) fn proxy_gone_after_2_35(v: crate::microversion::Version, service: &str) -> ApiResult<()> {
    if v.at_least(36) {
        return Err(crate::app::not_found(format!(
            "The {service} proxy API is gone from 2.36: use the {service} service."
        ))
        .into());
    }
    Ok(())
}

/// Nova's `<key>_links` for a full page: the same query at `path` (below the API's
/// base), its marker the page's last item, with `limit` added when the caller gave none.
pub(crate) fn next_links(base: &str, path: &str, q: &HashMap<String, String>, limit: usize, last: &str) -> Value {
    let mut params: Vec<(String, String)> =
        q.iter().filter(|(k, _)| *k != "marker").map(|(k, v)| (k.clone(), v.clone())).collect();
    params.sort();
    if !q.contains_key("limit") {
        params.push(("limit".into(), limit.to_string()));
    }
    params.push(("marker".into(), last.to_string()));
    let query: Vec<String> =
        params.iter().map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))).collect();
    serde_json::json!([{"rel": "next", "href": format!("{base}{path}?{}", query.join("&"))}])
}

/// The `<key>_links` of a page [`paginate`] cut at the caller's `limit`, when it is
/// full (there may be more).
pub(crate) fn page_links<T>(
    page: &[T],
    params: &HashMap<String, String>,
    base: &str,
    path: &str,
    id: impl Fn(&T) -> &str,
) -> Option<Value> {
    let limit: usize = params.get("limit")?.parse().ok()?;
    match page.last() {
        Some(last) if limit > 0 && page.len() == limit => Some(next_links(base, path, params, limit, id(last))),
        _ => None,
    }
}

/// Applies Nova's `marker`/`limit` to a listing of ids.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    params: &HashMap<String, String>,
    id: impl Fn(&T) -> &str,
) -> ApiResult<Vec<T>> {
    let mut items = items;
    if let Some(m) = params.get("marker") {
        let pos = items.iter().position(|i| id(i) == m).ok_or_else(|| bad(format!("marker [{m}] not found")))?;
        items.drain(..=pos);
    }
    if let Some(l) = params.get("limit") {
        let n: usize = l.parse().map_err(|_| bad("Invalid limit: it must be a non-negative integer."))?;
        items.truncate(n);
    }
    Ok(items)
}
