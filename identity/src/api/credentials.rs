//! `/v3/credentials` and the EC2 credentials under `/v3/users/{id}/credentials/OS-EC2`.

use super::{list_response, views, AppState};
use crate::app::credentials::{CredentialCreate, CredentialUpdate};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

#[derive(Deserialize)]
pub struct CreateBody {
    credential: CredentialCreate,
}

#[derive(Deserialize)]
pub struct UpdateBody {
    credential: CredentialUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ec2Body {
    #[serde(default)]
    tenant_id: String,
}

pub async fn list(
    State(id): State<AppState>,
    ctx: AuthContext,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let items = id
        .credential_list(&ctx, q.get("user_id").map(String::as_str), q.get("type").map(String::as_str))
        .await?
        .iter()
        .map(|c| views::credential(&id.public_url, c))
        .collect();
    list_response(&id.public_url, "credentials", "credentials", items, &q, &["user_id", "type"])
}

pub async fn create(
    State(id): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<CreateBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let c = id.credential_create(&ctx, b.credential).await?;
    Ok((StatusCode::CREATED, Json(json!({"credential": views::credential(&id.public_url, &c)}))))
}

pub async fn show(State(id): State<AppState>, ctx: AuthContext, Path(cid): Path<String>) -> ApiResult<Json<Value>> {
    let c = id.credential_get(&ctx, &cid).await?;
    Ok(Json(json!({"credential": views::credential(&id.public_url, &c)})))
}

pub async fn update(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(cid): Path<String>,
    ApiJson(b): ApiJson<UpdateBody>,
) -> ApiResult<Json<Value>> {
    let c = id.credential_update(&ctx, &cid, b.credential).await?;
    Ok(Json(json!({"credential": views::credential(&id.public_url, &c)})))
}

pub async fn delete(State(id): State<AppState>, ctx: AuthContext, Path(cid): Path<String>) -> ApiResult<StatusCode> {
    id.credential_delete(&ctx, &cid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ec2_list(State(id): State<AppState>, ctx: AuthContext, Path(uid): Path<String>) -> ApiResult<Json<Value>> {
    let list = id.ec2_list(&ctx, &uid).await?;
    let self_url = format!("{}/v3/users/{uid}/credentials/OS-EC2", id.public_url);
    Ok(Json(json!({
        "credentials": list.iter().map(|e| views::ec2_credential(&id.public_url, e)).collect::<Vec<_>>(),
        "links": {"self": self_url, "previous": null, "next": null},
    })))
}

pub async fn ec2_create(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path(uid): Path<String>,
    ApiJson(b): ApiJson<Ec2Body>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let e = id.ec2_create(&ctx, &uid, &b.tenant_id).await?;
    Ok((StatusCode::CREATED, Json(json!({"credential": views::ec2_credential(&id.public_url, &e)}))))
}

pub async fn ec2_show(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, access)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let e = id.ec2_get(&ctx, &uid, &access).await?;
    Ok(Json(json!({"credential": views::ec2_credential(&id.public_url, &e)})))
}

pub async fn ec2_delete(
    State(id): State<AppState>,
    ctx: AuthContext,
    Path((uid, access)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    id.ec2_delete(&ctx, &uid, &access).await?;
    Ok(StatusCode::NO_CONTENT)
}
