//! What nodes reach while they network-boot and run the deploy ramdisk (no Keystone
//! token: the ramdisk proves itself with the per-run token on its kernel command line,
//! as Ironic's agent does with its agent token):
//!
//! - `GET /v1/agent/boot.ipxe`: the script DHCP points iPXE at; it chains to
//! - `GET /v1/agent/ipxe?mac=MAC`: the ramdisk for a node the conductor waits on, else
//!   "boot from the local disk";
//! - `GET /v1/agent/kernel`, `GET /v1/agent/ramdisk`: the ramdisk's files;
//! - `GET /v1/agent/{node}/task?token=`: `write URL SHA256 SIZE`, `wipe` or `none`;
//! - `GET /v1/agent/{node}/image?token=`: the raw image to write;
//! - `POST /v1/agent/{node}/result?token=`: `ok` or `error <why>`.

use super::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use stratus_common::http::ApiError;

type Params = Query<HashMap<String, String>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/boot.ipxe", get(boot_ipxe))
        .route("/v1/agent/ipxe", get(ipxe))
        .route("/v1/agent/kernel", get(kernel))
        .route("/v1/agent/ramdisk", get(ramdisk))
        .route("/v1/agent/{node}/task", get(task))
        .route("/v1/agent/{node}/image", get(image))
        .route("/v1/agent/{node}/result", post(result))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

/// A refusal that says nothing about which part was wrong.
fn denied() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "No deploy is waiting for this node and token.")
}

fn token(q: &HashMap<String, String>) -> &str {
    q.get("token").map(String::as_str).unwrap_or("")
}

async fn boot_ipxe(State(s): State<AppState>) -> Response {
    let api = s.settings.deploy.agent_url.trim_end_matches('/').to_string();
    // Each NIC in turn asks for its node's script (a MAC no port has gets a 404, so
    // the next NIC is tried), as Ironic's boot.ipxe does.
    text(format!(
        "#!ipxe\nset i:int32 0\n:next\nisset ${{net${{i}}/mac}} || goto none\n\
         chain --autofree {api}/v1/agent/ipxe?mac=${{net${{i}}/mac}} || inc i\ngoto next\n\
         :none\necho Stratus: no NIC of this machine is a known node's port\nexit\n"
    ))
}

async fn ipxe(State(s): State<AppState>, Query(q): Params) -> Result<Response, ApiError> {
    match s.ipxe_script(q.get("mac").map(String::as_str).unwrap_or("")).await {
        Some(script) => Ok(text(script)),
        None => Err(ApiError::not_found("port with MAC", q.get("mac").map(String::as_str).unwrap_or(""))),
    }
}

async fn file(path: Option<&std::path::PathBuf>) -> Result<Response, ApiError> {
    let path = path.ok_or_else(|| ApiError::not_found("deploy ramdisk file", "(not configured)"))?;
    let f = tokio::fs::File::open(path).await.map_err(|_| ApiError::not_found("deploy ramdisk file", "(missing)"))?;
    let len = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(f));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_string()), (header::CONTENT_LENGTH, len.to_string())],
        body,
    )
        .into_response())
}

async fn kernel(State(s): State<AppState>) -> Result<Response, ApiError> {
    file(s.settings.deploy.kernel.as_ref()).await
}

async fn ramdisk(State(s): State<AppState>) -> Result<Response, ApiError> {
    file(s.settings.deploy.ramdisk.as_ref()).await
}

async fn task(State(s): State<AppState>, Path(node): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    match s.agent_task(&node, token(&q)).await {
        Ok(Some(t)) => Ok(text(format!("{t}\n"))),
        Ok(None) => Err(denied()),
        Err(e) => Err(ApiError::internal_from(&*e)),
    }
}

async fn image(State(s): State<AppState>, Path(node): Path<String>, Query(q): Params) -> Result<Response, ApiError> {
    match s.agent_image(&node, token(&q)).await {
        Ok(Some((path, _))) => file(Some(&path)).await,
        Ok(None) => Err(denied()),
        Err(e) => Err(ApiError::internal_from(&*e)),
    }
}

async fn result(
    State(s): State<AppState>,
    Path(node): Path<String>,
    Query(q): Params,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    let report = String::from_utf8_lossy(&body).to_string();
    match s.agent_result(&node, token(&q), &report).await {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(denied()),
        Err(e) => Err(ApiError::internal_from(&*e)),
    }
}
