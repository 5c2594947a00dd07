//! The block storage API (Cinder v3, microversions 3.0 to [`API`]'s max; what each
//! brings is in docs/api/volume.md). Handlers parse and render; the app layer decides.
//! Every resource lives under `/v3/{project_id}/`: the project in the path must be the
//! token's (admins may name any).

mod attachments;
mod backups;
mod error;
mod group_types;
mod groups;
mod messages;
mod metadata;
mod misc;
mod qos;
mod snapshots;
mod transfers;
mod types;
mod usage;
pub mod views;
mod volumes;

use crate::VolumeService;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_common::auth::{authenticate, AuthContext, TokenVerifier};
use stratus_common::http::microversion::{version_headers, Api, Version};
use stratus_common::http::pagination::{next_link, ListQuery};
use stratus_common::http::{service_router, ApiError, ApiResult, ErrorStyle};

pub type AppState = Arc<VolumeService>;

/// The microversions served.
pub static API: Api = Api { service: "volume", min: Version(3, 0), max: Version(3, 59), legacy_header: None };

/// A resource or action that came in 3.`minor`: older requests do not know it (404, as
/// Cinder's `VersionNotFoundForAPIMethod`).
pub(crate) fn since(v: Version, minor: u16) -> ApiResult<()> {
    if v.at_least(minor) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("This request needs volume API microversion 3.{minor} or later; it asked for {v}."),
        ))
    }
}

pub fn router(service: Arc<VolumeService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let p = "/v3/{project_id}";
    let routes = Router::new()
        .route("/", get(versions))
        .route("/v3", get(version))
        .route("/v3/", get(version))
        .route(&format!("{p}/volumes"), get(volumes::list).post(volumes::create))
        .route(&format!("{p}/volumes/detail"), get(volumes::list_detail))
        .route(&format!("{p}/volumes/summary"), get(volumes::summary))
        .route(&format!("{p}/volumes/{{id}}"), get(volumes::show).put(volumes::update).delete(volumes::delete))
        .route(&format!("{p}/volumes/{{id}}/action"), post(volumes::action))
        .route(&format!("{p}/snapshots"), get(snapshots::list).post(snapshots::create))
        .route(&format!("{p}/snapshots/detail"), get(snapshots::list_detail))
        .route(&format!("{p}/snapshots/{{id}}"), get(snapshots::show).put(snapshots::update).delete(snapshots::delete))
        .route(&format!("{p}/snapshots/{{id}}/action"), post(snapshots::action))
        .route(&format!("{p}/types"), get(types::list).post(types::create))
        .route(&format!("{p}/types/{{id}}"), get(types::show).put(types::update).delete(types::delete))
        .route(&format!("{p}/types/{{id}}/extra_specs"), get(types::specs).post(types::specs_set))
        .route(&format!("{p}/types/{{id}}/os-volume-type-access"), get(types::access_list))
        .route(&format!("{p}/types/{{id}}/action"), post(types::action))
        .route(&format!("{p}/group_types"), get(group_types::list).post(group_types::create))
        .route(&format!("{p}/group_types/default"), get(group_types::default))
        .route(
            &format!("{p}/group_types/{{id}}"),
            get(group_types::show).put(group_types::update).delete(group_types::delete),
        )
        .route(&format!("{p}/group_types/{{id}}/group_specs"), get(group_types::specs).post(group_types::specs_set))
        .route(
            &format!("{p}/group_types/{{id}}/group_specs/{{key}}"),
            get(group_types::spec_show).put(group_types::spec_put).delete(group_types::spec_unset),
        )
        .route(&format!("{p}/groups"), get(groups::list).post(groups::create))
        .route(&format!("{p}/groups/detail"), get(groups::list_detail))
        .route(&format!("{p}/groups/action"), post(groups::create_from_src))
        .route(&format!("{p}/groups/{{id}}"), get(groups::show).put(groups::update))
        .route(&format!("{p}/groups/{{id}}/action"), post(groups::action))
        .route(&format!("{p}/group_snapshots"), get(groups::snapshots).post(groups::snapshot_create))
        .route(&format!("{p}/group_snapshots/detail"), get(groups::snapshots_detail))
        .route(&format!("{p}/group_snapshots/{{id}}"), get(groups::snapshot_show).delete(groups::snapshot_delete))
        .route(&format!("{p}/group_snapshots/{{id}}/action"), post(groups::snapshot_action))
        .route(&format!("{p}/qos-specs"), get(qos::list).post(qos::create))
        .route(&format!("{p}/qos-specs/{{id}}"), get(qos::show).put(qos::set_keys).delete(qos::delete))
        .route(&format!("{p}/qos-specs/{{id}}/delete_keys"), put(qos::delete_keys))
        .route(&format!("{p}/qos-specs/{{id}}/associations"), get(qos::associations))
        .route(&format!("{p}/qos-specs/{{id}}/associate"), get(qos::associate))
        .route(&format!("{p}/qos-specs/{{id}}/disassociate"), get(qos::disassociate))
        .route(&format!("{p}/qos-specs/{{id}}/disassociate_all"), get(qos::disassociate_all))
        .route(
            &format!("{p}/types/{{id}}/extra_specs/{{key}}"),
            get(types::spec_show).put(types::spec_put).delete(types::spec_unset),
        )
        .route(&format!("{p}/os-volume-transfer"), get(transfers::list).post(transfers::create))
        .route(&format!("{p}/os-volume-transfer/detail"), get(transfers::list_detail))
        .route(&format!("{p}/os-volume-transfer/{{id}}"), get(transfers::show).delete(transfers::delete))
        .route(&format!("{p}/os-volume-transfer/{{id}}/accept"), post(transfers::accept))
        .route(&format!("{p}/volume-transfers"), get(transfers::list_v355).post(transfers::create_v355))
        .route(&format!("{p}/volume-transfers/detail"), get(transfers::list_detail_v355))
        .route(&format!("{p}/volume-transfers/{{id}}"), get(transfers::show_v355).delete(transfers::delete_v355))
        .route(&format!("{p}/volume-transfers/{{id}}/accept"), post(transfers::accept_v355))
        .route(&format!("{p}/attachments"), get(attachments::list).post(attachments::create))
        .route(&format!("{p}/attachments/detail"), get(attachments::list_detail))
        .route(
            &format!("{p}/attachments/{{id}}"),
            get(attachments::show).put(attachments::update).delete(attachments::delete),
        )
        .route(&format!("{p}/attachments/{{id}}/action"), post(attachments::action))
        .route(&format!("{p}/backups"), get(backups::list).post(backups::create))
        .route(&format!("{p}/backups/detail"), get(backups::list_detail))
        .route(&format!("{p}/backups/import_record"), post(backups::import_record))
        .route(&format!("{p}/backups/{{id}}"), get(backups::show).put(backups::update).delete(backups::delete))
        .route(&format!("{p}/backups/{{id}}/action"), post(backups::action))
        .route(&format!("{p}/backups/{{id}}/restore"), post(backups::restore))
        .route(&format!("{p}/backups/{{id}}/export_record"), get(backups::export_record))
        .route(&format!("{p}/messages"), get(messages::list))
        .route(&format!("{p}/messages/{{id}}"), get(messages::show).delete(messages::delete))
        .route(&format!("{p}/limits"), get(misc::limits))
        .route(&format!("{p}/usage"), get(usage::show))
        .route(
            &format!("{p}/os-quota-sets/{{target}}"),
            get(misc::quota_show).put(misc::quota_update).delete(misc::quota_delete),
        )
        .route(&format!("{p}/os-quota-sets/{{target}}/defaults"), get(misc::quota_defaults))
        .route(&format!("{p}/os-quota-class-sets/{{class}}"), get(misc::quota_class_show).put(misc::quota_class_update))
        .route(&format!("{p}/os-availability-zone"), get(misc::zones))
        .route(&format!("{p}/os-services"), get(misc::services))
        .route(&format!("{p}/os-hosts"), get(misc::hosts))
        .route(&format!("{p}/os-hosts/{{host}}"), get(misc::host_show))
        .route(&format!("{p}/os-services/{{action}}"), put(misc::service_update))
        .route(&format!("{p}/scheduler-stats/get_pools"), get(misc::pools))
        .route(&format!("{p}/capabilities/{{host}}"), get(misc::capabilities))
        .route(&format!("{p}/extensions"), get(misc::extensions))
        .merge(metadata::routes(p, "volumes", metadata::Owner::Volume))
        .merge(metadata::routes(p, "snapshots", metadata::Owner::Snapshot))
        .layer(axum::middleware::from_fn_with_state(&API, version_headers))
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service);
    service_router("volume", ErrorStyle::Nova, max_body_bytes, routes)
}

fn version_doc(base: &str) -> Value {
    json!({
        "id": "v3.0",
        "status": "CURRENT",
        "version": API.max.to_string(),
        "min_version": API.min.to_string(),
        "updated": "2026-12-05T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.volume+json;version=3"}],
    })
}

async fn versions(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    (StatusCode::MULTIPLE_CHOICES, Json(json!({"versions": [version_doc(&s.public_url)]})))
}

async fn version(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"version": version_doc(&s.public_url), "versions": [version_doc(&s.public_url)]}))
}

/// The path's project must be the caller's own, unless the caller is an admin.
pub(crate) fn scope(ctx: &AuthContext, params: &HashMap<String, String>) -> ApiResult<()> {
    let project = params.get("project_id").map(String::as_str).unwrap_or_default();
    if ctx.is_admin() || ctx.project_id() == Some(project) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "Policy doesn't allow this request: the URL names project {project}, not the token's."
        )))
    }
}

pub(crate) fn param<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map(String::as_str).unwrap_or_default()
}

/// Whether an admin asks for every project's resources (`all_tenants`, `all_projects`).
pub(crate) fn all_projects(q: &HashMap<String, String>) -> bool {
    ["all_tenants", "all_projects"]
        .iter()
        .any(|k| q.get(*k).is_some_and(|v| stratus_common::http::pagination::parse_bool(v).unwrap_or(v.is_empty())))
}

/// A filtered, sorted page of `items` as `{"<key>": [...], "<key>_links": [next]}`.
/// A page of `items` under `key`, with a next link to `path` (below the project) when
/// the page is full.
/// The fields a list may be filtered and sorted on (`id` sorts everywhere).
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub filter: &'static [&'static str],
    pub sort: &'static [&'static str],
}

pub(crate) fn list_page(
    base: &str,
    project: &str,
    key: &str,
    path: &str,
    items: Vec<Value>,
    q: &HashMap<String, String>,
    fields: Fields,
) -> ApiResult<Json<Value>> {
    let Fields { filter: filterable, sort: sortable } = fields;
    let mut params = q.clone();
    params.retain(|k, _| k != "all_tenants" && k != "all_projects");
    // Cinder's `sort=key[:dir][,...]`: the first key orders the list.
    if let Some(sort) = params.remove("sort") {
        let first = sort.split(',').next().unwrap_or_default();
        let (key, dir) = first.split_once(':').unwrap_or((first, "asc"));
        if !key.is_empty() {
            params.insert("sort_key".into(), key.to_string());
            params.insert("sort_dir".into(), dir.to_string());
        }
    }
    // Cinder sorts by `display_name` / `display_description` under their shown names.
    if let Some(k) = params.get_mut("sort_key") {
        if let Some(shown) = k.strip_prefix("display_") {
            *k = shown.to_string();
        }
    }
    // 3.45's `with_count`: how many items the filters take, whatever the page.
    let with_count =
        params.remove("with_count").is_some_and(|v| stratus_common::http::pagination::parse_bool(&v).unwrap_or(false));
    // Cinder's `offset`: items skipped after the marker, before the limit.
    let offset = match params.remove("offset") {
        None => 0,
        Some(o) => o
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request(format!("Invalid offset '{o}': must be a non-negative integer.")))?,
    };
    let mut query = ListQuery::parse(&params, filterable)?;
    if let Some(k) = query.sort_key.as_deref() {
        if k != "id" && !sortable.contains(&k) {
            return Err(ApiError::bad_request(format!(
                "Invalid sort key {k}: use one of id, {}.",
                sortable.join(", ")
            )));
        }
    }
    let limit = query.limit.take();
    let count = if with_count {
        let all = ListQuery { marker: None, limit: None, ..query.clone() };
        Some(all.apply(items.clone())?.items.len())
    } else {
        None
    };
    let mut page = query.apply(items).map_err(|e| {
        // Cinder's MarkerNotFound is a 404.
        if e.message.starts_with("Marker") {
            ApiError::new(axum::http::StatusCode::NOT_FOUND, e.message)
        } else {
            e
        }
    })?;
    page.items.drain(..offset.min(page.items.len()));
    if let Some(l) = limit {
        if page.items.len() > l {
            page.items.truncate(l);
            page.next_marker = page.items.last().and_then(|i| i["id"].as_str()).map(str::to_string);
        }
    }
    // As Cinder: a full page links to the next even when that one is empty.
    let full = limit.is_some_and(|l| l > 0 && page.items.len() == l);
    let next_marker = page
        .next_marker
        .or_else(|| full.then(|| page.items.last().and_then(|i| i["id"].as_str()).map(str::to_string)).flatten());
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(page.items));
    if let Some(n) = count {
        out.insert("count".into(), json!(n));
    }
    if let Some(m) = next_marker {
        let next = next_link(&format!("{base}/v3/{project}/{path}"), q, &m);
        out.insert(format!("{key}_links"), json!([{"rel": "next", "href": next}]));
    }
    Ok(Json(Value::Object(out)))
}

/// The object under `key` of a body.
pub(crate) fn body_of(body: Value, key: &str) -> ApiResult<Map<String, Value>> {
    stratus_common::http::wrapped(body, key)
}

/// The one action a `POST .../action` body names, and its arguments.
pub(crate) fn action_of(body: Value) -> ApiResult<(String, Value)> {
    match body {
        Value::Object(m) if m.len() == 1 => Ok(m.into_iter().next().expect("one key")),
        Value::Object(m) if m.is_empty() => Err(ApiError::bad_request("No action given.")),
        _ => Err(ApiError::bad_request("An action body is an object naming one action.")),
    }
}

/// Reads a typed request from the object under `key`, naming what is wrong.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(body: Value, key: &str) -> ApiResult<T> {
    let inner = body_of(body, key)?;
    serde_json::from_value(Value::Object(inner))
        .map_err(|e| ApiError::bad_request(format!("Invalid input for {key}: {e}")))
}
