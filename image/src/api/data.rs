//! Image data: streamed upload and download, staging and import.

use super::AppState;
use crate::app::upload::file_stream;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

pub async fn upload(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    s.image_upload(&ctx, &id, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stage(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    s.image_stage(&ctx, &id, body.into_data_stream()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct ImportMethod {
    name: String,
}

#[derive(Deserialize)]
pub struct ImportBody {
    method: ImportMethod,
}

pub async fn import(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ImportBody>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    s.image_import(&ctx, &id, &b.method.name).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}

pub async fn download(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let Some(d) = s.image_download(&ctx, &id, range).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let mut resp = Response::new(Body::from_stream(file_stream(d.file, d.len)));
    *resp.status_mut() = if d.partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(d.len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if d.partial {
        let v = format!("bytes {}-{}/{}", d.start, d.start + d.len - 1, d.total);
        h.insert(header::CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
    } else if let Some(c) = d.checksum.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("content-md5", c);
    }
    Ok(resp)
}
