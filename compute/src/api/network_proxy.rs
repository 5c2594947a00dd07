//! Nova's read-only network proxies (below 2.36; `app::tenant_networks`):
//! `os-networks` and `os-tenant-networks`, list and show.

use super::{proxy_gone_after_2_35, AppState};
use crate::microversion::Version;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

pub async fn list(State(s): State<AppState>, ctx: AuthContext, v: Version) -> ApiResult<Json<Value>> {
    proxy_gone_after_2_35(v, "network")?;
    Ok(Json(json!({"networks": s.proxy_network_list(&ctx).await?})))
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    proxy_gone_after_2_35(v, "network")?;
    Ok(Json(json!({"network": s.proxy_network_get(&ctx, &id).await?})))
}
