//! The image service's application layer: who may see and change an image, what a
//! request may set, and the upload pipeline that turns a byte stream into an active
//! image (or nothing).

pub mod images;
pub mod list;
pub mod members;
pub mod metadefs;
pub mod reconcile;
pub mod sink;
pub mod upload;

use crate::backend::ImageBackend;
use crate::store::{Image, Store};
use serde_json::json;
use std::sync::Arc;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;
use stratus_common::http::{ApiError, ApiResult};
use stratus_common::limits::LimitsClient;

pub struct ImageService {
    pub store: Store,
    pub bus: Bus,
    pub backend: Arc<dyn ImageBackend>,
    pub limits: Arc<LimitsClient>,
    /// Public base URL (`http://host:9292`).
    pub public_url: String,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: u64,
}

impl ImageService {
    pub(crate) async fn emit(&self, event: &str, img: &Image) {
        self.bus
            .emit(
                &format!("image.{event}"),
                &json!({"id": img.id, "owner": img.owner, "status": img.status.as_str(), "timestamp": now_text()}),
            )
            .await;
    }

    /// The caller's project; image calls need a project-scoped token.
    pub(crate) fn project(ctx: &AuthContext) -> ApiResult<&str> {
        ctx.project_id().ok_or_else(|| ApiError::forbidden("Image calls need a project-scoped token."))
    }

    /// Fetches an image the caller may see, or 404.
    pub async fn image_visible(&self, ctx: &AuthContext, id: &str) -> ApiResult<Image> {
        let img = self.store.image_fetch(id).await?.ok_or_else(|| not_found(id))?;
        if ctx.is_admin() || img.visibility == "public" || img.visibility == "community" {
            return Ok(img);
        }
        let project = Self::project(ctx)?;
        if img.owner == project || self.store.member_fetch(id, project).await?.is_some() {
            return Ok(img);
        }
        Err(not_found(id))
    }

    /// Fetches an image the caller may change (its owner's members, or an admin).
    pub async fn image_owned(&self, ctx: &AuthContext, id: &str) -> ApiResult<Image> {
        let img = self.image_visible(ctx, id).await?;
        if ctx.is_admin() || (ctx.project_id() == Some(img.owner.as_str()) && ctx.has_role("member")) {
            Ok(img)
        } else {
            Err(ApiError::forbidden("You are not permitted to modify this image."))
        }
    }

    /// (count limit, bytes limit) of a project, from identity's unified limits.
    pub(crate) async fn quotas(&self, project: &str) -> ApiResult<(Option<i64>, Option<i64>)> {
        let limits = self.limits.project_limits(project, "image").await.map_err(|e| {
            tracing::error!(error = %e, "cannot read image quotas");
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "Quotas cannot be read right now; try again.")
        })?;
        let count = limits.get("image_count_total").copied().filter(|l| *l >= 0);
        let bytes =
            limits.get("image_size_total").copied().filter(|l| *l >= 0).map(|mib| mib.saturating_mul(1024 * 1024));
        Ok((count, bytes))
    }
}

pub fn not_found(id: &str) -> ApiError {
    ApiError::not_found("image", id)
}
