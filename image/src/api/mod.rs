//! The image API (Glance v2). Handlers parse and render; the app layer decides.

mod data;
mod images;
mod members;
mod metadefs;
pub mod schemas;
pub mod views;

use crate::ImageService;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::auth::{authenticate, TokenVerifier};
use stratus_common::http::{service_router, ErrorStyle};

pub type AppState = Arc<ImageService>;

pub fn router(service: Arc<ImageService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let routes = Router::new()
        .route("/", get(versions_multiple))
        .route("/versions", get(versions))
        .route("/v2", get(versions))
        .route("/v2/", get(versions))
        .route("/v2/images", get(images::list).post(images::create))
        .route("/v2/images/{id}", get(images::show).patch(images::update).delete(images::delete))
        .route("/v2/images/{id}/file", put(data::upload).get(data::download))
        .route("/v2/images/{id}/stage", put(data::stage))
        .route("/v2/images/{id}/import", post(data::import))
        .route("/v2/images/{id}/tasks", get(images::tasks))
        .route("/v2/images/{id}/tags/{tag}", put(images::tag_add).delete(images::tag_remove))
        .route("/v2/images/{id}/actions/deactivate", post(images::deactivate))
        .route("/v2/images/{id}/actions/reactivate", post(images::reactivate))
        .route("/v2/images/{id}/members", get(members::list).post(members::create))
        .route("/v2/images/{id}/members/{member}", get(members::show).put(members::update).delete(members::delete))
        .route("/v2/metadefs/resource_types", get(metadefs::resource_types))
        .route("/v2/metadefs/namespaces", get(metadefs::namespaces_list).post(metadefs::namespace_create))
        .route(
            "/v2/metadefs/namespaces/{ns}",
            get(metadefs::namespace_show).put(metadefs::namespace_update).delete(metadefs::namespace_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/resource_types",
            get(metadefs::associations_list).post(metadefs::association_create),
        )
        .route("/v2/metadefs/namespaces/{ns}/resource_types/{rt}", delete(metadefs::association_delete))
        .route(
            "/v2/metadefs/namespaces/{ns}/{coll}",
            get(metadefs::items_list).post(metadefs::items_create).delete(metadefs::items_delete),
        )
        .route(
            "/v2/metadefs/namespaces/{ns}/{coll}/{name}",
            get(metadefs::item_show)
                .post(metadefs::item_create)
                .put(metadefs::item_update)
                .delete(metadefs::item_delete),
        )
        .route("/v2/schemas/metadefs/{name}", get(schemas::metadef))
        .route("/v2/schemas/image", get(schemas::image))
        .route("/v2/schemas/images", get(schemas::images))
        .route("/v2/schemas/member", get(schemas::member))
        .route("/v2/schemas/members", get(schemas::members))
        .route("/v2/info/import", get(info_import))
        .route("/v2/info/stores", get(info_stores))
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service);
    service_router("image", ErrorStyle::Keystone, max_body_bytes, routes)
}

fn version_list(base: &str) -> Value {
    let v = |id: &str, status: &str| json!({"id": id, "status": status, "links": [{"rel": "self", "href": format!("{base}/v2/")}]});
    json!([v("v2.16", "CURRENT"), v("v2.15", "SUPPORTED"), v("v2.9", "SUPPORTED"), v("v2.0", "SUPPORTED")])
}

async fn versions_multiple(State(s): State<AppState>) -> (StatusCode, Json<Value>) {
    (StatusCode::MULTIPLE_CHOICES, Json(json!({"versions": version_list(&s.public_url)})))
}

async fn versions(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"versions": version_list(&s.public_url)}))
}

async fn info_import() -> Json<Value> {
    Json(
        json!({"import-methods": {"description": "Import methods available.", "type": "array", "value": ["glance-direct"]}}),
    )
}

async fn info_stores() -> Json<Value> {
    Json(json!({"stores": [{"id": "file", "description": "Filesystem store in the data directory", "default": true}]}))
}
