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
    /// For an image with no data that stands for a volume-backed server's snapshot
    /// (its `block_device_mapping` names the root volume's snapshot, 3.46): that
    /// snapshot, which the volume is made from.
    pub root_snapshot: Option<String>,
}

/// The root volume's snapshot a zero-size image names, as Nova writes it.
fn root_snapshot(img: &Value) -> Option<String> {
    if img["size"].as_u64() != Some(0) {
        return None;
    }
    let mappings: Vec<Value> = serde_json::from_str(img["block_device_mapping"].as_str()?).ok()?;
    let root = mappings.iter().find(|m| m["boot_index"].as_i64() == Some(0) || m["boot_index"] == "0")?;
    (root["source_type"] == "snapshot").then(|| root["snapshot_id"].as_str().map(str::to_string)).flatten()
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
        // The image's own properties come along (as Cinder's do): what a guest booted
        // from the volume needs, such as `kernel_id`, `ramdisk_id` and `os_command_line`.
        for (k, v) in stratus_common::image_cache::image_properties(&img) {
            if v.is_string() && meta.len() < 128 {
                meta.insert(k.clone(), v.clone());
            }
        }
        Ok(ImageFacts { meta, min_gib, root_snapshot: root_snapshot(&img) })
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

    /// After volume `v` is gone from its backend: the base of the image it was made
    /// from goes too when no other live volume was made from it. (A volume being made
    /// from it has its row already, so it keeps the base.)
    pub(crate) async fn forget_image_if_unused(
        &self,
        v: &crate::store::Volume,
        driver: &dyn crate::driver::VolumeDriver,
    ) -> anyhow::Result<()> {
        let Some(image) = &v.image_id else { return Ok(()) };
        if self.store.volumes_of_image(image, &v.id).await? == 0 {
            driver.drop_image(image).await?;
        }
        Ok(())
    }

    /// Removes what [`Self::stage_image`] left for `volume`.
    pub(crate) async fn unstage_image(&self, volume: &str) {
        for name in [format!("{volume}.img"), format!("{volume}.img.part")] {
            let _ = tokio::fs::remove_file(self.images.staging.join(name)).await;
        }
    }
}

/// `os-volume_upload_image`'s arguments.
#[derive(Debug, Default, serde::Deserialize)]
pub struct UploadRequest {
    pub image_name: Option<String>,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub visibility: Option<String>,
    pub protected: Option<bool>,
    pub force: Option<Value>,
}

/// What the upload saga carries: the image the request made, and the format.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UploadData {
    pub image_id: String,
    pub disk_format: String,
}

impl VolumeService {
    /// Starts uploading an available volume to a new image, which the request makes in
    /// the image service with the caller's token (so it is theirs, under their quota).
    pub async fn volume_upload(&self, ctx: &AuthContext, id: &str, req: UploadRequest) -> AppResult<Value> {
        use crate::store::{Store, VolumeStatus};
        super::require_writer(ctx)?;
        if self.images.url.is_empty() {
            return Err(bad("This cloud has no image service to upload volumes to."));
        }
        let disk_format = req.disk_format.clone().unwrap_or_else(|| "raw".into());
        if !matches!(disk_format.as_str(), "raw" | "qcow2") {
            return Err(bad(format!("Volumes are uploaded as raw or qcow2 images, not {disk_format}.")));
        }
        let container_format = req.container_format.clone().unwrap_or_else(|| "bare".into());
        let v = self.volume_get(ctx, id).await?;
        if v.status != VolumeStatus::Available {
            return Err(bad(format!(
                "Invalid volume: Volume status must be available to upload it, but current status is: {}.",
                v.status.as_str()
            )));
        }
        let name = req.image_name.clone().unwrap_or_else(|| v.name.clone());
        let mut body = json!({"name": name, "disk_format": disk_format, "container_format": container_format,
                              "visibility": req.visibility.clone().unwrap_or_else(|| "private".into())});
        if let Some(p) = req.protected {
            body["protected"] = json!(p);
        }
        let r = self
            .images
            .http
            .post(format!("{}/v2/images", self.images.url))
            .header("x-auth-token", ctx.token.as_ref())
            .json(&body)
            .send()
            .await
            .map_err(|e| Error::Unavailable(format!("the image service: {e}")))?;
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        let message = || answer.to_string();
        let image_id = match status {
            201 => answer["id"].as_str().unwrap_or_default().to_string(),
            413 => return Err(Error::OverQuota(format!("The image service refused the image: {}", message()))),
            403 => return Err(Error::Forbidden(format!("The image service refused the image: {}", message()))),
            400..=499 => return Err(bad(format!("The image service refused the image: {}", message()))),
            _ => return Err(Error::Unavailable(format!("the image service answered {status}"))),
        };
        let data = UploadData { image_id: image_id.clone(), disk_format: disk_format.clone() };
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, id).await?;
            if v.status != VolumeStatus::Available {
                break;
            }
            let saga = Self::new_saga(super::sagas::UPLOAD, &v.id, &data);
            v.status = VolumeStatus::Uploading;
            v.control.saga_id = Some(saga.id.clone());
            let mut tx = self.store.db.pool.begin().await?;
            if !Store::volume_save_in(&mut tx, &v).await? {
                continue;
            }
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("upload.start", &v.id, &v.project_id, "uploading").await;
            self.run(saga);
            return Ok(json!({
                "id": v.id, "updated_at": v.updated_at, "status": "uploading", "display_description": v.description,
                "size": v.size, "volume_type": null, "image_id": image_id, "container_format": container_format,
                "disk_format": disk_format, "image_name": name,
            }));
        }
        // The volume changed under the request: the image made for it goes again.
        let _ = self.delete_image(&image_id).await;
        Err(super::invalid(format!("Volume {id} changed while the request ran; try again.")))
    }

    /// Writes the volume to a staging file in the upload's format (again if cut).
    pub(crate) async fn stage_export(&self, v: &crate::store::Volume, format: &str) -> anyhow::Result<PathBuf> {
        tokio::fs::create_dir_all(&self.images.staging).await?;
        let done = self.images.staging.join(format!("{}.upload", v.id));
        if !tokio::fs::try_exists(&done).await? {
            self.driver(&v.backend)?.export(&v.id, format, &done).await?;
        }
        Ok(done)
    }

    pub(crate) async fn unstage_export(&self, volume: &str) {
        for name in [format!("{volume}.upload"), format!("{volume}.part")] {
            let _ = tokio::fs::remove_file(self.images.staging.join(name)).await;
        }
    }

    /// The image's status as the service sees it (`None`: gone).
    pub(crate) async fn image_status(&self, id: &str) -> anyhow::Result<Option<String>> {
        let tokens = self.images.tokens.as_ref().ok_or_else(|| anyhow::anyhow!("no service credentials for images"))?;
        let token = tokens.token().await?;
        let r = self
            .images
            .http
            .get(format!("{}/v2/images/{id}", self.images.url))
            .header("x-auth-token", &token)
            .send()
            .await?;
        match r.status().as_u16() {
            404 => Ok(None),
            401 => {
                tokens.refused(&token);
                anyhow::bail!("the image service refused the service's token")
            }
            s if (200..300).contains(&s) => {
                let v: Value = r.json().await?;
                Ok(v["status"].as_str().map(str::to_string))
            }
            s => anyhow::bail!("the image service answered {s}"),
        }
    }

    /// Sends `file` as image `id`'s data (streamed).
    pub(crate) async fn upload_file(
        &self,
        id: &str,
        file: &std::path::Path,
    ) -> Result<(), stratus_common::saga::StepError> {
        use stratus_common::saga::StepError;
        let tokens =
            self.images.tokens.as_ref().ok_or_else(|| StepError::permanent("no service credentials for images"))?;
        let token = tokens.token().await?;
        let f = tokio::fs::File::open(file).await.map_err(|e| StepError::Transient(e.into()))?;
        let len = f.metadata().await.map_err(|e| StepError::Transient(e.into()))?.len();
        let stream = tokio_util::io::ReaderStream::new(f);
        let r = self
            .images
            .http
            .put(format!("{}/v2/images/{id}/file", self.images.url))
            .header("x-auth-token", &token)
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(|e| StepError::Transient(e.into()))?;
        match r.status().as_u16() {
            204 | 200 | 201 => Ok(()),
            401 => {
                tokens.refused(&token);
                Err(StepError::Transient(anyhow::anyhow!("the image service refused the service's token")))
            }
            s @ 400..=499 => {
                let why = r.text().await.unwrap_or_default();
                Err(StepError::Permanent(format!("The image service refused the volume's data ({s}): {why}")))
            }
            s => Err(StepError::Transient(anyhow::anyhow!("the image service answered {s}"))),
        }
    }

    /// Deletes an image the service made for an upload that did not happen.
    pub(crate) async fn delete_image(&self, id: &str) -> anyhow::Result<()> {
        let tokens = self.images.tokens.as_ref().ok_or_else(|| anyhow::anyhow!("no service credentials for images"))?;
        let token = tokens.token().await?;
        let r = self
            .images
            .http
            .delete(format!("{}/v2/images/{id}", self.images.url))
            .header("x-auth-token", &token)
            .send()
            .await?;
        anyhow::ensure!(matches!(r.status().as_u16(), 204 | 404), "deleting image {id}: {}", r.status());
        Ok(())
    }
}
