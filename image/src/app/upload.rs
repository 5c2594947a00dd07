//! The upload pipeline: stream → staging file, hashing (md5 `checksum`, sha512
//! `os_hash_value`) and inspecting the first bytes on the way, then fsync + rename,
//! then one transaction that counts the bytes against `image_size_total` and activates.
//!
//! Statuses, as Glance: a client mistake (wrong format, too big, over quota) puts the
//! image back to `queued` so it can be retried; a broken transfer leaves it `killed`.
//! Either way the staged data is removed: an image that says `active` always has all of
//! its data, and no failed upload leaves bytes behind. While data streams, the upload
//! holds a lease on the image; the reconciler kills uploads whose lease ran out.

use super::sink::DataSink;
use super::{not_found, ImageService};
use crate::inspect::{self, HEADER_BYTES};
use crate::store::{Image, ImageStatus};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::time::{Duration, Instant};
use stratus_common::auth::AuthContext;
use stratus_common::db::time_text;
use stratus_common::http::{ApiError, ApiResult};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// How long an upload's claim on an image lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(20);

pub(crate) fn lease_until() -> String {
    time_text(chrono::Utc::now() + chrono::Duration::from_std(LEASE).unwrap())
}

enum IngestError {
    /// The client's mistake: the image goes back to `queued`.
    Client(ApiError),
    /// The transfer broke: the image is `killed`.
    Broken(ApiError),
}

/// A byte range of an image's data to send.
pub struct Download {
    pub file: tokio::fs::File,
    pub start: u64,
    pub len: u64,
    pub total: u64,
    pub partial: bool,
    pub checksum: Option<String>,
}

impl ImageService {
    /// `PUT /v2/images/{id}/file`.
    pub async fn image_upload<S, E>(&self, ctx: &AuthContext, id: &str, body: S) -> ApiResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let img = self.image_owned(ctx, id).await?;
        if img.disk_format.is_none() || img.container_format.is_none() {
            return Err(ApiError::bad_request(
                "Properties disk_format, container_format must be set prior to saving data.",
            ));
        }
        if !self.store.image_transition(id, &[ImageStatus::Queued], ImageStatus::Saving, Some(&lease_until())).await? {
            return Err(ApiError::conflict(format!(
                "Image status transition from {} to saving is not allowed.",
                img.status.as_str()
            )));
        }
        self.finish(&img, ImageStatus::Saving, body).await
    }

    async fn finish<S, E>(&self, img: &Image, during: ImageStatus, body: S) -> ApiResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match self.ingest(img, during, body).await {
            Ok(()) => {
                let img = self.store.image_fetch(&img.id).await?.ok_or_else(|| not_found(&img.id))?;
                self.emit("upload", &img).await;
                self.emit("activate", &img).await;
                Ok(())
            }
            Err(IngestError::Client(e)) => {
                self.store.image_transition(&img.id, &[during], ImageStatus::Queued, None).await?;
                Err(e)
            }
            Err(IngestError::Broken(e)) => {
                self.store.image_transition(&img.id, &[during], ImageStatus::Killed, None).await?;
                Err(e)
            }
        }
    }

    async fn ingest<S, E>(&self, img: &Image, during: ImageStatus, mut body: S) -> Result<(), IngestError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let client = IngestError::Client;
        let (_, bytes_limit) = self.quotas(&img.owner).await.map_err(client)?;
        let (_, used) = self.store.usage_fetch(&img.owner).await.map_err(|e| client(e.into()))?;
        let remaining = bytes_limit.map(|l| (l - used).max(0) as u64);
        let declared = img.disk_format.clone().unwrap_or_default();
        let container = img.container_format.clone().unwrap_or_default();

        let staged = self.backend.stage(&img.id).await.map_err(|e| client(ApiError::internal_from(&e)))?;
        // The sink's writer thread writes through its own handle on the staging file.
        let writer = match staged.file.try_clone().await {
            Ok(f) => f.into_std().await,
            Err(e) => {
                self.backend.discard(staged).await;
                return Err(client(ApiError::internal_from(&e)));
            }
        };
        let sink = DataSink::start(writer);
        let mut head: Vec<u8> = Vec::with_capacity(HEADER_BYTES);
        let mut detected = None;
        let mut size: u64 = 0;
        let mut renewed = Instant::now();
        let failure = loop {
            let chunk = match body.next().await {
                None => break None,
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    break Some(IngestError::Broken(ApiError::bad_request(format!("The upload was interrupted: {e}."))))
                }
            };
            size += chunk.len() as u64;
            if size > self.max_image_bytes {
                break Some(client(ApiError::payload_too_large(format!(
                    "Image exceeds the largest size accepted ({} bytes).",
                    self.max_image_bytes
                ))));
            }
            if remaining.is_some_and(|r| size > r) {
                break Some(client(quota_error(bytes_limit)));
            }
            if detected.is_none() {
                let take = (HEADER_BYTES - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
                if head.len() >= HEADER_BYTES {
                    let d = inspect::detect(&head);
                    if let Err(msg) = inspect::check(&declared, &container, &d) {
                        break Some(client(ApiError::bad_request(msg)));
                    }
                    detected = Some(d);
                }
            }
            if let Err(e) = sink.send(chunk).await {
                break Some(IngestError::Broken(ApiError::internal_from(&e)));
            }
            if renewed.elapsed() > RENEW_EVERY {
                let _ = self.store.image_renew_lease(&img.id, &lease_until()).await;
                renewed = Instant::now();
            }
        };
        let digests = match sink.finish().await {
            Ok(d) => d,
            Err(e) => {
                self.backend.discard(staged).await;
                return Err(failure.unwrap_or(IngestError::Broken(ApiError::internal_from(&e))));
            }
        };
        drop(digests.file);
        if failure.is_none() && detected.is_none() {
            let d = inspect::detect(&head);
            // No data holds no format: an empty image (what Nova uploads to make the
            // snapshot of a server booted from volumes active) is whatever it says.
            let checked = if size == 0 { Ok(()) } else { inspect::check(&declared, &container, &d) };
            if let Err(msg) = checked {
                self.backend.discard(staged).await;
                return Err(client(ApiError::bad_request(msg)));
            }
            detected = Some(d);
        }
        if let Some(f) = failure {
            self.backend.discard(staged).await;
            return Err(f);
        }
        self.backend.commit(staged).await.map_err(|e| IngestError::Broken(ApiError::internal_from(&e)))?;
        let detected = detected.expect("inspected above");
        let virtual_size = detected.virtual_size().unwrap_or(size) as i64;
        let (checksum, hash) = (digests.md5, digests.sha512);
        let activated = self
            .store
            .image_activate(img, size as i64, Some(virtual_size), &checksum, &hash, bytes_limit, during)
            .await
            .map_err(|e| client(e.into()));
        match activated {
            Ok(true) => Ok(()),
            Ok(false) => {
                let _ = self.backend.delete(&img.id).await;
                match self.store.image_fetch(&img.id).await {
                    Ok(Some(i)) if i.status == during => Err(client(quota_error(bytes_limit))),
                    _ => Err(IngestError::Broken(ApiError::conflict("The image was deleted during the upload."))),
                }
            }
            Err(e) => {
                let _ = self.backend.delete(&img.id).await;
                Err(e)
            }
        }
    }

    /// `GET /v2/images/{id}/file`, optionally with a `Range`.
    pub async fn image_download(
        &self,
        ctx: &AuthContext,
        id: &str,
        range: Option<&str>,
    ) -> ApiResult<Option<Download>> {
        let img = self.image_visible(ctx, id).await?;
        match img.status {
            ImageStatus::Active => {}
            ImageStatus::Deactivated if !ctx.is_admin() => {
                return Err(ApiError::forbidden(
                    "The requested image has been deactivated. Image data download is forbidden.",
                ))
            }
            ImageStatus::Deactivated => {}
            _ => return Ok(None),
        }
        let (mut file, total) = self.backend.open(id).await.map_err(|e| {
            tracing::error!(image = id, error = %e, "active image without data");
            ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "The image data is not available.")
        })?;
        let (start, end, partial) = match range {
            None => (0, total, false),
            Some(r) => {
                let (s, e) = parse_range(r, total).ok_or_else(|| {
                    ApiError::new(
                        axum::http::StatusCode::RANGE_NOT_SATISFIABLE,
                        format!("Range {r} cannot be satisfied."),
                    )
                })?;
                (s, e, true)
            }
        };
        if start > 0 {
            file.seek(std::io::SeekFrom::Start(start)).await.map_err(|e| ApiError::internal_from(&e))?;
        }
        Ok(Some(Download { file, start, len: end - start, total, partial, checksum: img.checksum }))
    }

    /// `PUT /v2/images/{id}/stage`: data for the import flow, kept aside untouched.
    pub async fn image_stage<S, E>(&self, ctx: &AuthContext, id: &str, mut body: S) -> ApiResult<()>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let img = self.image_owned(ctx, id).await?;
        if !self.store.image_transition(id, &[ImageStatus::Queued], ImageStatus::Uploading, None).await? {
            return Err(ApiError::conflict(format!(
                "Image {id} is {}; only queued images can be staged.",
                img.status.as_str()
            )));
        }
        let path = self.backend.import_path(id);
        let result: ApiResult<()> = async {
            let mut f = tokio::fs::File::create(&path).await.map_err(|e| ApiError::internal_from(&e))?;
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| ApiError::bad_request(format!("The upload was interrupted: {e}.")))?;
                size += chunk.len() as u64;
                if size > self.max_image_bytes {
                    return Err(ApiError::payload_too_large("Image exceeds the largest size accepted."));
                }
                f.write_all(&chunk).await.map_err(|e| ApiError::internal_from(&e))?;
            }
            f.sync_all().await.map_err(|e| ApiError::internal_from(&e))?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = tokio::fs::remove_file(&path).await;
            self.store.image_transition(id, &[ImageStatus::Uploading], ImageStatus::Queued, None).await?;
            return Err(e);
        }
        Ok(())
    }

    /// `POST /v2/images/{id}/import` with `glance-direct`: runs the staged data through
    /// the upload pipeline in the background.
    pub async fn image_import(self: &std::sync::Arc<Self>, ctx: &AuthContext, id: &str, method: &str) -> ApiResult<()> {
        if method != "glance-direct" {
            return Err(ApiError::bad_request(format!("Import method {method} is not supported: use glance-direct.")));
        }
        let img = self.image_owned(ctx, id).await?;
        if img.disk_format.is_none() || img.container_format.is_none() {
            return Err(ApiError::bad_request(
                "Properties disk_format, container_format must be set prior to importing data.",
            ));
        }
        if !self
            .store
            .image_transition(id, &[ImageStatus::Uploading], ImageStatus::Importing, Some(&lease_until()))
            .await?
        {
            return Err(ApiError::conflict(format!("Image {id} is {}; stage its data first.", img.status.as_str())));
        }
        let me = self.clone();
        tokio::spawn(async move {
            let path = me.backend.import_path(&img.id);
            let stream = match tokio::fs::File::open(&path).await {
                Ok(f) => file_stream(f, u64::MAX),
                Err(e) => {
                    tracing::error!(image = %img.id, error = %e, "staged data missing");
                    let _ =
                        me.store.image_transition(&img.id, &[ImageStatus::Importing], ImageStatus::Queued, None).await;
                    return;
                }
            };
            if let Err(e) = me.finish(&img, ImageStatus::Importing, Box::pin(stream)).await {
                tracing::warn!(image = %img.id, error = %e, "import failed");
            }
            let _ = tokio::fs::remove_file(&path).await;
        });
        Ok(())
    }
}

fn quota_error(limit: Option<i64>) -> ApiError {
    ApiError::payload_too_large(format!(
        "Image size quota exceeded: the project may store at most {} MiB of images.",
        limit.unwrap_or(0) / (1024 * 1024)
    ))
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` into [start, end).
pub fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            if n == 0 {
                return None;
            }
            (total.saturating_sub(n), total)
        }
        (s, "") => (s.parse().ok()?, total),
        (s, e) => (s.parse().ok()?, e.parse::<u64>().ok()?.saturating_add(1).min(total)),
    };
    if start >= total || start >= end {
        return None;
    }
    Some((start, end))
}

/// Reads up to `len` bytes of a file as a stream of chunks.
pub fn file_stream(file: tokio::fs::File, len: u64) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (256 * 1024).min(left.min(usize::MAX as u64) as usize)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-200", 100), Some((95, 100)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-2", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
