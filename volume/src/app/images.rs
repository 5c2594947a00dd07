//! Volumes made from images: the image is looked up with the requester's token (a
//! user makes volumes only from images they can see), then downloaded by the saga with
//! the service's own token (the request was vouched for; a saga may run after the
//! user's token expired) into a staging file the backend converts.

use super::{bad, not_found, AppResult, Error, VolumeService};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use stratus_common::auth::service_token::TokenSource;
use stratus_common::auth::AuthContext;

const GIB: u64 = 1 << 30;

/// Where the volume service reaches the image service.
#[derive(Clone, Default)]
pub struct ImageLink {
    pub http: reqwest::Client,
    /// The image API's URL; empty when none is configured (volumes from images are
    /// then refused).
    pub url: String,
    /// The service's own tokens, for downloads.
    pub tokens: Option<Arc<dyn TokenSource>>,
    /// Where downloads wait for the backend.
    pub staging: PathBuf,
}

/// What a volume keeps of its image (`volume_image_metadata`), and the smallest size
/// it can have (GiB).
pub(crate) struct ImageFacts {
    pub meta: Map<String, Value>,
    pub min_gib: i64,
}

impl VolumeService {
    /// The image `id` as the caller sees it: active, in a format a volume can hold.
    pub(crate) async fn image_facts(&self, ctx: &AuthContext, id: &str) -> AppResult<ImageFacts> {
        if self.images.url.is_empty() {
            return Err(bad("This cloud has no image service for volumes to be made from."));
        }
        let r = self
            .images
            .http
            .get(format!("{}/v2/images/{id}", self.images.url))
            .header("x-auth-token", ctx.token.as_ref())
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("the image service: {e}")))?;
        match r.status().as_u16() {
            200 => {}
            404 | 403 => return Err(not_found("Image", id)),
            s => return Err(Error::Unavailable(format!("the image service answered {s}"))),
        }
        let img: Value = r.json().await.map_err(|e| Error::Unavailable(format!("the image service: {e}")))?;
        if img["status"] != "active" {
            return Err(bad(format!("Image {id} is not active (it is {}).", img["status"])));
        }
        let format = img["disk_format"].as_str().unwrap_or_default();
        if !matches!(format, "raw" | "qcow2") {
            return Err(bad(format!("Volumes are made from raw or qcow2 images; image {id} is {format}.")));
        }
        let bytes = img["virtual_size"].as_u64().or(img["size"].as_u64()).unwrap_or(0);
        let min_disk = img["min_disk"].as_i64().unwrap_or(0);
        let min_gib = (bytes.div_ceil(GIB) as i64).max(min_disk).max(1);
        let mut meta = Map::new();
        for k in ["name", "disk_format", "container_format", "checksum", "min_disk", "min_ram", "size"] {
            let key = if k == "name" { "image_name" } else { k };
            meta.insert(key.into(), json!(img[k].to_string().trim_matches('"')));
        }
        meta.insert("image_id".into(), json!(id));
        Ok(ImageFacts { meta, min_gib })
    }

    /// Downloads image `id` for volume `volume` into the staging directory (again
    /// from the start if a download was cut); answers the file.
    pub(crate) async fn stage_image(&self, id: &str, volume: &str) -> anyhow::Result<PathBuf> {
        use tokio::io::AsyncWriteExt;
        let tokens = self.images.tokens.as_ref().ok_or_else(|| anyhow::anyhow!("no service credentials for images"))?;
        tokio::fs::create_dir_all(&self.images.staging).await?;
        let done = self.images.staging.join(format!("{volume}.img"));
        if tokio::fs::try_exists(&done).await? {
            return Ok(done);
        }
        let part = self.images.staging.join(format!("{volume}.img.part"));
        let token = tokens.token().await?;
        let mut resp = self
            .images
            .http
            .get(format!("{}/v2/images/{id}/file", self.images.url))
            .header("x-auth-token", &token)
            .send()
            .await?;
        if resp.status().as_u16() == 401 {
            tokens.refused(&token);
        }
        let resp_status = resp.status();
        anyhow::ensure!(resp_status.is_success(), "downloading image {id}: {resp_status}");
        let mut file = tokio::fs::File::create(&part).await?;
        while let Some(chunk) = resp.chunk().await? {
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        drop(file);
        tokio::fs::rename(&part, &done).await?;
        Ok(done)
    }

    /// Removes what [`Self::stage_image`] left for `volume`.
    pub(crate) async fn unstage_image(&self, volume: &str) {
        for name in [format!("{volume}.img"), format!("{volume}.img.part")] {
            let _ = tokio::fs::remove_file(self.images.staging.join(name)).await;
        }
    }
}
