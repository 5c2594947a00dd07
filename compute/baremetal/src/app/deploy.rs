//! The `direct` deploy, the shape of Ironic's: the node network-boots (DHCP → iPXE →
//! the bare-metal API) into a small deploy ramdisk, which asks the API what to do,
//! streams the image from the API onto the node's first disk and checks its sha256
//! (or wipes the disk, for cleaning), reports, and powers the node off. The conductor
//! then sets the node to boot from its disk and powers it on.
//!
//! The ramdisk authenticates with a per-run random token the conductor puts on its
//! kernel command line; the API hands the ramdisk nothing else. Images come from the
//! image service (by id, through the shared image cache, checksums verified) or from an
//! http(s) URL (`instance_info.image_checksum` verified when given), and are made raw
//! (`qemu-img convert`) once per image, since the ramdisk writes bytes as they come.

use super::BaremetalService;
use crate::store::{DeployImage, Node};
use anyhow::{bail, Context};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use stratus_common::image_cache::ImageCache;

/// Where the deploy ramdisk and the images it writes come from.
#[derive(Debug, Clone, Default)]
pub struct DeploySettings {
    /// The bare-metal API as the nodes reach it on the provisioning network.
    pub agent_url: String,
    /// The deploy ramdisk's kernel and initramfs, on this host; direct deploys need both.
    pub kernel: Option<PathBuf>,
    pub ramdisk: Option<PathBuf>,
    /// Extra kernel arguments for the ramdisk (a console, say).
    pub kernel_args: String,
    /// How long the ramdisk may take before the deploy or clean fails.
    pub callback_timeout: Duration,
    /// Raw images ready to serve, and images fetched by URL.
    pub work_dir: PathBuf,
}

impl DeploySettings {
    pub fn ramdisk_configured(&self) -> bool {
        self.kernel.as_ref().is_some_and(|k| k.is_file()) && self.ramdisk.as_ref().is_some_and(|r| r.is_file())
    }
}

/// A new random token for a ramdisk run.
pub fn new_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// Constant-time comparison of a presented token with the node's.
pub fn token_matches(node: &Node, presented: &str) -> bool {
    let Some(want) = node.internal.agent_token.as_deref() else { return false };
    want.len() == presented.len() && want.bytes().zip(presented.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The sha256 and size of a file.
async fn sha256_of(path: &Path) -> anyhow::Result<(String, u64)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as u64;
        }
        Ok((hex(&h.finalize()), size))
    })
    .await?
}

/// Whether a file starts with qcow2's magic.
fn is_qcow2(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"QFI\xfb"
}

/// `src` as a raw image at `dst` (converted from qcow2, or copied), once.
async fn make_raw(src: &Path, qcow2: bool, dst: &Path) -> anyhow::Result<()> {
    if dst.exists() {
        return Ok(());
    }
    let part = dst.with_extension(format!("part{}", std::process::id()));
    if qcow2 {
        let out = tokio::process::Command::new("qemu-img")
            .args(["convert", "-q", "-f", "qcow2", "-O", "raw"])
            .arg(src)
            .arg(&part)
            .kill_on_drop(true)
            .output()
            .await
            .context("cannot run qemu-img")?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&part);
            bail!("qemu-img convert failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
    } else {
        tokio::fs::copy(src, &part).await?;
    }
    std::fs::rename(&part, dst)?;
    Ok(())
}

impl BaremetalService {
    /// The raw image node `n`'s `instance_info.image_source` names, ready to serve.
    pub(crate) async fn prepare_image(&self, n: &Node) -> anyhow::Result<DeployImage> {
        let d = &self.settings.deploy;
        let source = n
            .instance_info
            .get("image_source")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .context("instance_info.image_source is not set")?
            .to_string();
        let raw_dir = d.work_dir.join("raw");
        tokio::fs::create_dir_all(&raw_dir).await?;
        let (src, qcow2, key) = if source.starts_with("http://") || source.starts_with("https://") {
            let checksum = n.instance_info.get("image_checksum").and_then(|v| v.as_str()).map(str::to_string);
            let key = hex(&sha2::Sha256::digest(format!("{source} {checksum:?}").as_bytes()))[..32].to_string();
            let path = d.work_dir.join("url").join(&key);
            self.fetch_url(&source, checksum.as_deref(), &path).await?;
            let q = is_qcow2(&path);
            (path, q, key)
        } else {
            let images = self.images.as_ref().context("no image service is configured to fetch images from")?;
            let cached = images.get(&source).await?;
            let format = cached.disk_format().to_string();
            if !matches!(format.as_str(), "raw" | "qcow2") {
                bail!("image {source} is {format}: a whole-disk image must be raw or qcow2");
            }
            let q = format == "qcow2";
            (cached.path.clone(), q, source.clone())
        };
        let raw = raw_dir.join(format!("{key}.raw"));
        make_raw(&src, qcow2, &raw).await?;
        let (sha256, size) = sha256_of(&raw).await?;
        Ok(DeployImage { path: raw.display().to_string(), size, sha256 })
    }

    /// Downloads `url` to `path` once, checking `checksum` (`md5` hex, or
    /// `sha256:`/`sha512:` hex) when given.
    async fn fetch_url(&self, url: &str, checksum: Option<&str>, path: &Path) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        if path.exists() {
            return Ok(());
        }
        tokio::fs::create_dir_all(path.parent().expect("a parent")).await?;
        let mut resp = self.drivers.http.get(url).send().await.with_context(|| format!("cannot fetch {url}"))?;
        if !resp.status().is_success() {
            bail!("{url} answered {}", resp.status());
        }
        let part = path.with_extension(format!("part{}", std::process::id()));
        let mut file = tokio::fs::File::create(&part).await?;
        let (mut md5, mut s256, mut s512) = (md5::Md5::new(), sha2::Sha256::new(), sha2::Sha512::new());
        while let Some(chunk) = resp.chunk().await? {
            md5.update(&chunk);
            s256.update(&chunk);
            s512.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.sync_all().await?;
        if let Some(want) = checksum {
            let want = want.to_ascii_lowercase();
            let got = match want.split_once(':') {
                Some(("sha256", _)) => format!("sha256:{}", hex(&s256.finalize())),
                Some(("sha512", _)) => format!("sha512:{}", hex(&s512.finalize())),
                Some(("md5", _)) => format!("md5:{}", hex(&md5.finalize())),
                _ => hex(&md5.finalize()),
            };
            if got != want {
                let _ = std::fs::remove_file(&part);
                bail!("{url}: checksum {got} does not match image_checksum {want}");
            }
        }
        std::fs::rename(&part, path)?;
        Ok(())
    }

    /// The iPXE script a node gets when it network-boots from the NIC with `mac`: the
    /// deploy ramdisk while the conductor waits for it, else "boot from the local disk";
    /// `None` when no port has that MAC.
    pub async fn ipxe_script(&self, mac: &str) -> Option<String> {
        let local = "#!ipxe\necho Stratus: nothing to deploy; booting from the local disk\nsanboot --no-describe --drive 0x80 || exit\n";
        let address = super::ports::canonical_mac(mac).ok()?;
        let port = self.store.port_get(&address).await.ok()??;
        let Ok(Some(node)) = self.store.node_get(&port.node_id).await else { return Some(local.into()) };
        let (true, Some(token)) = (node.provision_state.is_waiting(), node.internal.agent_token.as_deref()) else {
            return Some(local.into());
        };
        let d = &self.settings.deploy;
        let api = d.agent_url.trim_end_matches('/');
        Some(format!(
            "#!ipxe\necho Stratus: booting the deploy ramdisk for node {id}\n\
             kernel {api}/v1/agent/kernel stratus.api={api} stratus.node={id} stratus.token={token} {args}\n\
             initrd {api}/v1/agent/ramdisk\nboot\n",
            id = node.id,
            args = d.kernel_args,
        ))
    }

    /// What the ramdisk of node `id` is to do: `write URL SHA256 SIZE`, `wipe`, or
    /// `none`; `None` when the token is not the node's.
    pub async fn agent_task(&self, id: &str, token: &str) -> anyhow::Result<Option<String>> {
        let Some(n) = self.store.node_get(id).await? else { return Ok(None) };
        if !token_matches(&n, token) {
            return Ok(None);
        }
        let api = self.settings.deploy.agent_url.trim_end_matches('/');
        Ok(Some(match (n.provision_state, &n.internal.image) {
            (crate::model::ProvisionState::WaitCallBack, Some(img)) => {
                format!("write {api}/v1/agent/{}/image?token={token} {} {}", n.id, img.sha256, img.size)
            }
            (crate::model::ProvisionState::CleanWait, _) => "wipe".to_string(),
            _ => "none".to_string(),
        }))
    }

    /// The raw image file the ramdisk of node `id` writes, when the token is its.
    pub async fn agent_image(&self, id: &str, token: &str) -> anyhow::Result<Option<(PathBuf, u64)>> {
        let Some(n) = self.store.node_get(id).await? else { return Ok(None) };
        if !token_matches(&n, token) || n.provision_state != crate::model::ProvisionState::WaitCallBack {
            return Ok(None);
        }
        Ok(n.internal.image.as_ref().map(|i| (PathBuf::from(&i.path), i.size)))
    }

    /// The ramdisk's report: `ok`, or `error <why>`. The node leaves its waiting state
    /// (to finish the deploy or clean, or to fail it) and the conductor is woken.
    pub async fn agent_result(&self, id: &str, token: &str, report: &str) -> anyhow::Result<bool> {
        for _ in 0..10 {
            let Some(mut n) = self.store.node_get(id).await? else { return Ok(false) };
            if !token_matches(&n, token) || !n.provision_state.is_waiting() {
                return Ok(false);
            }
            let report = report.trim();
            let deploying = n.provision_state == crate::model::ProvisionState::WaitCallBack;
            if report == "ok" {
                n.internal.agent_done = Some(if deploying { "written" } else { "wiped" }.into());
                let next = if deploying {
                    crate::model::ProvisionState::Deploying
                } else {
                    crate::model::ProvisionState::Cleaning
                };
                n.enter(next, n.target_provision_state);
            } else {
                let why = report.strip_prefix("error").unwrap_or(report).trim();
                n.internal.agent_token = None;
                n.last_error = Some(format!(
                    "The deploy ramdisk failed to {}: {}",
                    if deploying { "write the image" } else { "wipe the disk" },
                    why.chars().take(500).collect::<String>()
                ));
                let failed = n.provision_state.on_failure();
                n.enter(failed, None);
                n.work = None;
                n.conductor = None;
            }
            if self.store.node_save(&mut n).await? {
                tracing::info!(node = %n.id, report, "deploy ramdisk reported");
                self.wake.notify_one();
                return Ok(true);
            }
        }
        bail!("node {id} kept changing")
    }
}

/// The image cache a conductor fetches images into (the compute hosts' kind).
pub fn image_cache(
    dir: PathBuf,
    image_url: &str,
    tokens: Arc<dyn stratus_common::auth::service_token::TokenSource>,
) -> anyhow::Result<Arc<ImageCache>> {
    Ok(Arc::new(ImageCache::new(dir, image_url, tokens)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_compared_whole() {
        let mut n = Node::new("n".into(), "fake-hardware".into(), "fake".into(), crate::model::ProvisionState::Enroll);
        assert!(!token_matches(&n, ""));
        n.internal.agent_token = Some(new_token());
        let t = n.internal.agent_token.clone().unwrap();
        assert_eq!(t.len(), 64);
        assert!(token_matches(&n, &t));
        assert!(!token_matches(&n, &t[..63]));
        assert!(!token_matches(&n, &new_token()));
    }

    #[tokio::test]
    async fn raw_images_are_made_once_from_qcow2_or_copied() {
        let dir = std::env::temp_dir().join(format!("stratus-bm-raw-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("src");
        std::fs::write(&src, b"raw bytes").unwrap();
        assert!(!is_qcow2(&src));
        make_raw(&src, false, &dir.join("a.raw")).await.unwrap();
        assert_eq!(std::fs::read(dir.join("a.raw")).unwrap(), b"raw bytes");
        let (sum, size) = sha256_of(&dir.join("a.raw")).await.unwrap();
        assert_eq!(size, 9);
        assert_eq!(sum, hex(&sha2::Sha256::digest(b"raw bytes")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
