//! Version discovery: `GET /` (300 with the list) and `GET /v3` (200).

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

fn v3_entry(base: &str) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{base}/v3/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

pub async fn versions(State(id): State<AppState>) -> (StatusCode, Json<Value>) {
    (StatusCode::MULTIPLE_CHOICES, Json(json!({"versions": {"values": [v3_entry(&id.public_url)]}})))
}

pub async fn v3(State(id): State<AppState>) -> Json<Value> {
    Json(json!({"version": v3_entry(&id.public_url)}))
}
