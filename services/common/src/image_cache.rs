//! The image cache of a host: each image is downloaded once from the image service,
//! its sha512 (`os_hash_value`, else the md5 `checksum`) verified on the way, and kept
//! read-only under `<dir>/<image id>` for everything made from it (a compute host's
//! guest disks are qcow2 overlays on it; the bare-metal conductor serves it to the
//! deploy ramdisk). Entries nobody uses are removed after a grace time.
//!
//! It is also how the host gives images back: a server's snapshot is uploaded from here
//! into the image the compute service made for it ([`ImageCache::upload`]).

use crate::auth::service_token::TokenSource;
use anyhow::Context;
use serde_json::Value;
use sha2::Digest;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The image service's own fields of an image document (Glance v2); every other key
/// is one of the image's properties.
pub const IMAGE_FIELDS: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "tags",
    "file",
    "schema",
    "self",
    "direct_url",
    "locations",
    "stores",
    "container_format",
    "disk_format",
    "min_disk",
    "min_ram",
];

/// An image document's properties: every key but the image service's own fields.
pub fn image_properties(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    doc.as_object().into_iter().flatten().filter(|(k, _)| !IMAGE_FIELDS.contains(&k.as_str()))
}

/// An image present on this host.
#[derive(Debug, Clone)]
pub struct CachedImage {
    pub id: String,
    pub path: PathBuf,
    /// The image service's view of it (disk_format, properties such as kernel_id).
    pub doc: Value,
}

impl CachedImage {
    pub fn disk_format(&self) -> &str {
        self.doc["disk_format"].as_str().unwrap_or("raw")
    }

    /// A property the image carries (Glance puts properties at the top level).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.doc[name].as_str().filter(|s| !s.is_empty())
    }
}

pub struct ImageCache {
    dir: PathBuf,
    base_url: String,
    tokens: Arc<dyn TokenSource>,
    http: reqwest::Client,
    /// Downloads of one image happen once, whoever asks.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    downloads: AtomicU64,
    hits: AtomicU64,
}

fn doc_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

/// Image ids become file names: only what an id can hold.
fn check_id(id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
        "invalid image id {id:?}"
    );
    Ok(())
}

impl ImageCache {
    pub fn new(dir: PathBuf, base_url: &str, tokens: Arc<dyn TokenSource>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Self {
            dir,
            base_url: base_url.trim_end_matches('/').to_string(),
            tokens,
            // No bound on a whole download (images are large), but a stalled one fails:
            // 60 s without a byte.
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .build()?,
            locks: Mutex::new(HashMap::new()),
            downloads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        })
    }

    /// (downloads, cache hits) since the agent started.
    pub fn counts(&self) -> (u64, u64) {
        (self.downloads.load(Ordering::Relaxed), self.hits.load(Ordering::Relaxed))
    }

    /// The image, downloaded and verified if this host does not have it yet.
    pub async fn get(&self, id: &str) -> anyhow::Result<CachedImage> {
        check_id(id)?;
        let lock = self.locks.lock().unwrap().entry(id.to_string()).or_default().clone();
        let _guard = lock.lock().await;
        let path = self.dir.join(id);
        if let (true, Ok(text)) = (path.exists(), std::fs::read_to_string(doc_path(&self.dir, id))) {
            if let Ok(doc) = serde_json::from_str(&text) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                touch(&path);
                return Ok(CachedImage { id: id.to_string(), path, doc });
            }
        }
        let doc = self.fetch_doc(id).await?;
        anyhow::ensure!(doc["status"] == "active", "image {id} is {} (not active)", doc["status"]);
        self.download(id, &doc, &path).await?;
        std::fs::write(doc_path(&self.dir, id), doc.to_string())?;
        self.downloads.fetch_add(1, Ordering::Relaxed);
        tracing::info!(image = id, size = doc["size"].as_i64().unwrap_or(0), "image downloaded into the cache");
        Ok(CachedImage { id: id.to_string(), path, doc })
    }

    /// `GET <image service><path>` with the service token; a success or an error.
    async fn call(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let resp = self.authed(|http, base| Ok(http.get(format!("{base}{path}")))).await?;
        anyhow::ensure!(resp.status().is_success(), "{path}: the image service answered {}", resp.status());
        Ok(resp)
    }

    /// A request built by `make` (again for a second try), with the service token; a
    /// refused token is renewed and the request made once more.
    async fn authed(
        &self,
        make: impl Fn(&reqwest::Client, &str) -> anyhow::Result<reqwest::RequestBuilder>,
    ) -> anyhow::Result<reqwest::Response> {
        for _ in 0..2 {
            let token = self.tokens.token().await?;
            let resp = make(&self.http, &self.base_url)?
                .header("X-Auth-Token", &token)
                .send()
                .await
                .context("cannot reach the image service")?;
            if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            self.tokens.refused(&token);
        }
        anyhow::bail!("the image service refuses the service's token")
    }

    /// The image service's view of an image; `None` when it does not exist (any more).
    pub async fn image_doc(&self, id: &str) -> anyhow::Result<Option<Value>> {
        check_id(id)?;
        let resp = self.authed(|http, base| Ok(http.get(format!("{base}/v2/images/{id}")))).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        anyhow::ensure!(resp.status().is_success(), "image {id}: the image service answered {}", resp.status());
        Ok(Some(resp.json().await?))
    }

    /// Uploads the file at `path`, a disk in `disk_format`, as the data of image `id`
    /// (which must be `queued`), streamed; the image's disk format is set to
    /// `disk_format` first when it says another.
    pub async fn upload(&self, id: &str, path: &Path, disk_format: &str) -> anyhow::Result<()> {
        let doc = self.image_doc(id).await?.ok_or_else(|| anyhow::anyhow!("image {id} does not exist (any more)"))?;
        if doc["disk_format"].as_str() != Some(disk_format) {
            let patch = serde_json::json!([{"op": "replace", "path": "/disk_format", "value": disk_format}]);
            let resp = self
                .authed(|http, base| {
                    Ok(http
                        .patch(format!("{base}/v2/images/{id}"))
                        .header("Content-Type", "application/openstack-images-v2.1-json-patch")
                        .body(patch.to_string()))
                })
                .await?;
            anyhow::ensure!(resp.status().is_success(), "image {id}: setting its disk format: {}", resp.status());
        }
        let len = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?.len();
        let resp = self
            .authed(|http, base| {
                let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                Ok(http
                    .put(format!("{base}/v2/images/{id}/file"))
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", len)
                    .body(reqwest::Body::from(tokio::fs::File::from_std(file))))
            })
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            anyhow::bail!(
                "image {id}: the upload was refused ({status}): {}",
                text.chars().take(300).collect::<String>()
            );
        }
        tracing::info!(image = id, bytes = len, "snapshot uploaded");
        Ok(())
    }

    async fn fetch_doc(&self, id: &str) -> anyhow::Result<Value> {
        Ok(self.call(&format!("/v2/images/{id}")).await?.json().await?)
    }

    async fn download(&self, id: &str, doc: &Value, path: &Path) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let mut resp = self.call(&format!("/v2/images/{id}/file")).await?;
        let part = path.with_extension(format!("part{}", std::process::id()));
        let mut file = tokio::fs::File::create(&part).await?;
        let (mut sha512, mut md5) = (sha2::Sha512::new(), md5::Md5::new());
        let mut size: u64 = 0;
        let written: anyhow::Result<()> = async {
            while let Some(chunk) = resp.chunk().await? {
                sha512.update(&chunk);
                md5.update(&chunk);
                size += chunk.len() as u64;
                file.write_all(&chunk).await?;
            }
            file.sync_all().await?;
            Ok(())
        }
        .await;
        let verified = written.and_then(|()| {
            let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            if let Some(want) = doc["os_hash_value"].as_str().filter(|_| doc["os_hash_algo"] == "sha512") {
                let got = hex(&sha512.finalize());
                anyhow::ensure!(got == want, "image {id}: sha512 {got} does not match the image's {want}");
            } else if let Some(want) = doc["checksum"].as_str() {
                let got = hex(&md5.finalize());
                anyhow::ensure!(got == want, "image {id}: md5 {got} does not match the image's {want}");
            }
            if let Some(want) = doc["size"].as_u64() {
                anyhow::ensure!(size == want, "image {id}: {size} bytes arrived of {want}");
            }
            Ok(())
        });
        if let Err(e) = verified {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
        std::fs::set_permissions(&part, std::os::unix::fs::PermissionsExt::from_mode(0o444))?;
        std::fs::rename(&part, path)?;
        Ok(())
    }

    /// Removes images that no guest in `in_use` needs and nobody asked for within
    /// `grace`; answers the ids removed.
    pub fn remove_unused(&self, in_use: &HashSet<String>, grace: Duration) -> Vec<String> {
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return removed };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let (id, stale_part) = match name.split_once(".part") {
                Some((id, _)) => (id.to_string(), true),
                None if !name.ends_with(".json") => (name.clone(), false),
                None => continue,
            };
            if in_use.contains(&id) || self.locks.lock().unwrap().get(&id).is_some_and(|l| l.try_lock().is_err()) {
                continue;
            }
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            if age < grace {
                continue;
            }
            let _ = std::fs::remove_file(e.path());
            if !stale_part {
                let _ = std::fs::remove_file(doc_path(&self.dir, &id));
                tracing::info!(image = %id, "removed an unused image from the cache");
                removed.push(id);
            }
        }
        removed
    }
}

/// Marks a cache entry used now (its age counts from its last use).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path).or_else(|_| std::fs::File::open(path)) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;

    struct NoTokens;
    impl TokenSource for NoTokens {
        fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
            Box::pin(async { anyhow::bail!("no identity in this test") })
        }
    }

    #[test]
    fn ids_are_checked_and_unused_entries_go_after_the_grace_time() {
        assert!(check_id("../etc/passwd").is_err() && check_id("").is_err());
        assert!(check_id("0b9a6c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b").is_ok());
        let dir = std::env::temp_dir().join(format!("stratus-cache-{}", uuid_like()));
        let cache = ImageCache::new(dir.clone(), "http://127.0.0.1:1", Arc::new(NoTokens)).unwrap();
        for id in ["a", "b"] {
            std::fs::write(dir.join(id), b"x").unwrap();
            std::fs::write(doc_path(&dir, id), b"{}").unwrap();
        }
        std::fs::write(dir.join("c.part42"), b"x").unwrap();
        assert!(cache.remove_unused(&HashSet::new(), Duration::from_secs(3600)).is_empty(), "within the grace time");
        let kept: HashSet<String> = ["a".to_string()].into();
        assert_eq!(cache.remove_unused(&kept, Duration::ZERO), vec!["b".to_string()]);
        assert!(dir.join("a").exists() && !dir.join("b").exists() && !dir.join("b.json").exists());
        assert!(!dir.join("c.part42").exists(), "a broken download is cleaned up");
        std::fs::remove_dir_all(dir).unwrap();
    }

    struct StaticToken;
    impl TokenSource for StaticToken {
        fn token(&self) -> BoxFuture<'_, anyhow::Result<String>> {
            Box::pin(async { Ok("t".to_string()) })
        }
    }

    /// A stand-in image service: `good` is what its document says; `bad`'s data is not.
    async fn image_service() -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files = Arc::new(AtomicU64::new(0));
        let served = files.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let hash = |b: &[u8]| sha2::Sha512::digest(b).iter().map(|x| format!("{x:02x}")).collect::<String>();
                let (ctype, body): (&str, Vec<u8>) = match path.as_str() {
                    "/v2/images/good" | "/v2/images/bad" => (
                        "application/json",
                        serde_json::json!({"status": "active", "disk_format": "raw", "size": 10,
                            "os_hash_algo": "sha512", "os_hash_value": hash(b"good bytes")})
                        .to_string()
                        .into_bytes(),
                    ),
                    "/v2/images/good/file" => ("application/octet-stream", b"good bytes".to_vec()),
                    "/v2/images/bad/file" => ("application/octet-stream", b"evil bytes".to_vec()),
                    _ => ("text/plain", Vec::new()),
                };
                if path.ends_with("/file") {
                    served.fetch_add(1, Ordering::Relaxed);
                }
                let status = if body.is_empty() { "404 Not Found" } else { "200 OK" };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            }
        });
        (url, files)
    }

    #[tokio::test]
    async fn downloads_once_and_refuses_data_that_does_not_match_its_checksum() {
        let (url, files) = image_service().await;
        let dir = std::env::temp_dir().join(format!("stratus-cache-{}", uuid_like()));
        let cache = ImageCache::new(dir.clone(), &url, Arc::new(StaticToken)).unwrap();
        let good = cache.get("good").await.unwrap();
        assert_eq!(std::fs::read(&good.path).unwrap(), b"good bytes");
        assert_eq!(good.disk_format(), "raw");
        cache.get("good").await.unwrap();
        assert_eq!(files.load(Ordering::Relaxed), 1, "the second use is a cache hit");
        assert_eq!(cache.counts(), (1, 1));
        let err = cache.get("bad").await.unwrap_err().to_string();
        assert!(err.contains("sha512"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(left.len(), 2, "only the good image and its document: {left:?}");
        assert!(cache.get("missing").await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn uuid_like() -> String {
        uuid::Uuid::new_v4().to_string()
    }
}
