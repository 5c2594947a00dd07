//! Volumes as thin qcow2 files under a directory (`volumes/<id>.qcow2`,
//! `snapshots/<id>.qcow2`), made with `qemu-img` (always told the format, never left to
//! probe). A file is written under a `.part` name and renamed when complete, so a crash
//! midway leaves no file that looks finished; the step runs again and starts over.
//! Snapshots and copies are full copies (`qemu-img convert`), independent of their
//! source, so either can be deleted first. A volume made from an image is a
//! copy-on-write overlay of the image kept once as a base (`images/<image id>.raw` or
//! `.qcow2`, immutable as images are), made in milliseconds; the base goes when the
//! last volume made from it does.
//!
//! The compute host of the storage host's own name (and one that names no address:
//! hosts sharing the directory over a network file system) reaches a volume as its
//! file; with exports on ([`FileDriver::with_exports`]) any other host reaches it over
//! NBD, served by this host ([`super::nbd`]).

use super::nbd::{NbdExports, NbdOptions};
use super::{Capacity, Connector, Source, VolumeDriver};
use anyhow::Context;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

pub struct FileDriver {
    root: PathBuf,
    /// This storage host's name and how it serves other hosts, when it does.
    exports: Option<(String, NbdExports)>,
}

impl FileDriver {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        for dir in ["volumes", "snapshots", "images"] {
            std::fs::create_dir_all(root.join(dir)).with_context(|| format!("cannot create {}", root.display()))?;
        }
        Ok(Self { root, exports: None })
    }

    /// Serves volumes over NBD to compute hosts other than `host` (this storage host's
    /// name) that name their address; the exports are recorded under `exports/`.
    pub fn with_exports(mut self, host: &str, opts: NbdOptions) -> anyhow::Result<Self> {
        self.exports = Some((host.to_string(), NbdExports::new(self.root.join("exports"), opts)?));
        Ok(self)
    }

    /// The exports, for hosts other than this one that name an address, and for every
    /// host of a shared (multiattach) volume (this one reaches it at the exports'
    /// own address when it names none).
    fn exports_for<'a>(&'a self, to: Connector<'a>) -> Option<(&'a NbdExports, &'a str)> {
        let (me, exports) = self.exports.as_ref()?;
        match to.ip.filter(|ip| !ip.is_empty()) {
            Some(ip) if to.shared || to.host != me.as_str() => Some((exports, ip)),
            None if to.shared => Some((exports, exports.address())),
            _ => None,
        }
    }

    /// The port volume `id` is exported on over NBD, if it is.
    pub async fn export_port(&self, id: &str) -> anyhow::Result<Option<u16>> {
        match &self.exports {
            Some((_, e)) => e.port_of(id).await,
            None => Ok(None),
        }
    }

    /// Where volume `id` lives (to attach it, or to inspect it in tests).
    pub fn volume_path(&self, id: &str) -> PathBuf {
        self.root.join("volumes").join(format!("{}.qcow2", safe(id)))
    }

    /// The kept base of image `id`, and its format, if any.
    fn image_base(&self, id: &str) -> Option<(PathBuf, &'static str)> {
        ["raw", "qcow2"]
            .into_iter()
            .map(|f| (self.root.join("images").join(format!("{}.{f}", safe(id))), f))
            .find(|(p, _)| p.exists())
    }

    fn snapshot_path(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(format!("{}.qcow2", safe(id)))
    }

    /// Writes `target` through `make(part)`, then renames it into place; nothing when it
    /// exists already.
    async fn make(&self, target: &Path, steps: Vec<Vec<String>>) -> anyhow::Result<()> {
        if tokio::fs::try_exists(target).await? {
            return Ok(());
        }
        let part = target.with_extension("qcow2.part");
        let _ = tokio::fs::remove_file(&part).await;
        let part_text = part.display().to_string();
        for args in steps {
            let args: Vec<String> = args.into_iter().map(|a| if a == PART { part_text.clone() } else { a }).collect();
            qemu_img(&args).await?;
        }
        tokio::fs::rename(&part, target).await?;
        Ok(())
    }
}

/// Stands for the `.part` file in the argument lists given to [`FileDriver::make`].
const PART: &str = "\0part";

/// Ids are UUIDs; anything else is refused rather than turned into a path.
fn safe(id: &str) -> &str {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        id
    } else {
        "invalid"
    }
}

async fn qemu_img(args: &[String]) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("qemu-img")
        .args(args)
        .output()
        .await
        .context("cannot run qemu-img (is qemu-utils installed?)")?;
    if !out.status.success() {
        anyhow::bail!("qemu-img {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(v: &str) -> String {
    v.to_string()
}

impl VolumeDriver for FileDriver {
    fn name(&self) -> &'static str {
        "file"
    }

    fn host(&self) -> &str {
        self.exports.as_ref().map_or("stratus", |(host, _)| host.as_str())
    }

    /// The file system holding the volume directory (thin files: free space is what
    /// volumes can still grow into).
    fn capacity(&self) -> BoxFuture<'_, anyhow::Result<Capacity>> {
        Box::pin(async move {
            let root = self.root.clone();
            let fs = tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(&root)).await??;
            let block = fs.fragment_size() as f64;
            let gib = |blocks: u64| (blocks as f64 * block / GIB as f64 * 100.0).round() / 100.0;
            Ok(Capacity { total_gb: gib(fs.blocks() as u64), free_gb: gib(fs.blocks_available() as u64) })
        })
    }

    /// With exports: a multiattach volume is served by its one NBD daemon to every
    /// host, this one included (a qcow2 file takes one writer; the daemon is it).
    fn multiattach(&self) -> bool {
        self.exports.is_some()
    }

    fn storage_protocol(&self) -> &'static str {
        // Local files, and NBD for other hosts when exported.
        if self.exports.is_some() {
            "nbd"
        } else {
            "file"
        }
    }

    fn create<'a>(&'a self, id: &'a str, size_gb: i64, source: Source<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let size = format!("{}", size_gb.max(1) as u64 * GIB);
            let (from, format) = match source {
                Source::Empty => (None, "qcow2"),
                Source::Volume(v) => (Some(self.volume_path(v)), "qcow2"),
                Source::Snapshot { id: sn, .. } => (Some(self.snapshot_path(sn)), "qcow2"),
                Source::Image { id: image } => {
                    let (base, format) =
                        self.image_base(image).ok_or_else(|| anyhow::anyhow!("image {image} is not kept here"))?;
                    let overlay = vec![
                        s("create"),
                        s("-q"),
                        s("-f"),
                        s("qcow2"),
                        s("-F"),
                        s(format),
                        s("-b"),
                        base.display().to_string(),
                        s(PART),
                        size,
                    ];
                    return self.make(&self.volume_path(id), vec![overlay]).await;
                }
            };
            let steps = match from {
                None => vec![vec![s("create"), s("-q"), s("-f"), s("qcow2"), s(PART), size]],
                Some(src) => {
                    if !tokio::fs::try_exists(&src).await? {
                        anyhow::bail!("the source {} is not on this backend", src.display());
                    }
                    vec![
                        vec![
                            s("convert"),
                            s("-q"),
                            s("-f"),
                            s(format),
                            s("-O"),
                            s("qcow2"),
                            src.display().to_string(),
                            s(PART),
                        ],
                        vec![s("resize"), s("-q"), s("-f"), s("qcow2"), s(PART), size],
                    ]
                }
            };
            self.make(&self.volume_path(id), steps).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { remove(&self.volume_path(id)).await })
    }

    fn extend<'a>(&'a self, id: &'a str, size_gb: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let path = self.volume_path(id);
            let now = self.size_of(id).await?.ok_or_else(|| anyhow::anyhow!("volume {id} is not on this backend"))?;
            if now >= size_gb {
                return Ok(());
            }
            qemu_img(&[
                s("resize"),
                s("-q"),
                s("-f"),
                s("qcow2"),
                path.display().to_string(),
                format!("{}", size_gb as u64 * GIB),
            ])
            .await?;
            Ok(())
        })
    }

    fn snapshot<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let src = self.volume_path(volume_id);
            if !tokio::fs::try_exists(&src).await? {
                anyhow::bail!("volume {volume_id} is not on this backend");
            }
            // `-U`: the volume may be attached (a snapshot with `force`), and its
            // guest's QEMU holds the image lock; the copy is crash-consistent.
            let convert = vec![
                s("convert"),
                s("-q"),
                s("-U"),
                s("-f"),
                s("qcow2"),
                s("-O"),
                s("qcow2"),
                src.display().to_string(),
                s(PART),
            ];
            self.make(&self.snapshot_path(snapshot_id), vec![convert]).await
        })
    }

    /// A copy of the snapshot written beside the volume, then renamed over it: the
    /// volume is whole before or after, never half reverted.
    fn revert<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (src, target) = (self.snapshot_path(snapshot_id), self.volume_path(volume_id));
            for (what, path) in [("snapshot", &src), ("volume", &target)] {
                if !tokio::fs::try_exists(path).await? {
                    anyhow::bail!("{what} {} is not on this backend", path.display());
                }
            }
            let part = target.with_extension("qcow2.revert");
            let _ = tokio::fs::remove_file(&part).await;
            let convert = [s("convert"), s("-q"), s("-f"), s("qcow2"), s("-O"), s("qcow2")];
            let mut args = convert.to_vec();
            args.extend([src.display().to_string(), part.display().to_string()]);
            qemu_img(&args).await?;
            tokio::fs::rename(&part, &target).await?;
            Ok(())
        })
    }

    fn export<'a>(&'a self, id: &'a str, format: &'a str, to: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { export_file(&self.volume_path(id), "volume", format, to).await })
    }

    fn export_snapshot<'a>(
        &'a self,
        _volume_id: &'a str,
        id: &'a str,
        format: &'a str,
        to: &'a Path,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { export_file(&self.snapshot_path(id), "snapshot", format, to).await })
    }

    /// A copy of `from` at the volume's size written beside the volume, then renamed
    /// over it: the volume is whole before or after, never half restored.
    fn import<'a>(&'a self, id: &'a str, from: &'a Path, format: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let target = self.volume_path(id);
            let size = self.size_of(id).await?.ok_or_else(|| anyhow::anyhow!("volume {id} is not on this backend"))?;
            let part = target.with_extension("qcow2.import");
            let _ = tokio::fs::remove_file(&part).await;
            let (from, part_text) = (from.display().to_string(), part.display().to_string());
            qemu_img(&[s("convert"), s("-q"), s("-f"), s(format), s("-O"), s("qcow2"), from, part_text.clone()])
                .await?;
            let bytes = format!("{}", size as u64 * GIB);
            qemu_img(&[s("resize"), s("-q"), s("-f"), s("qcow2"), part_text, bytes]).await?;
            tokio::fs::rename(&part, &target).await?;
            Ok(())
        })
    }

    fn keep_image<'a>(
        &'a self,
        image_id: &'a str,
        from: &'a Path,
        format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            super::check_format(format)?;
            if self.image_base(image_id).is_some() {
                return remove(from).await;
            }
            let base = self.root.join("images").join(format!("{}.{format}", safe(image_id)));
            // Within one file system (the service stages downloads under this root): a
            // rename, atomic; a base already there is the same image.
            if tokio::fs::rename(from, &base).await.is_err() {
                tokio::fs::copy(from, base.with_extension("part")).await?;
                tokio::fs::rename(base.with_extension("part"), &base).await?;
                remove(from).await?;
            }
            Ok(())
        })
    }

    fn has_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.image_base(image_id).is_some()) })
    }

    fn drop_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            while let Some((base, _)) = self.image_base(image_id) {
                remove(&base).await?;
            }
            Ok(())
        })
    }

    /// The file itself, for a host that sees this directory (this storage host, or
    /// hosts sharing it over a network file system); an NBD export for other hosts.
    fn connection<'a>(&'a self, id: &'a str, to: Connector<'a>) -> BoxFuture<'a, anyhow::Result<serde_json::Value>> {
        Box::pin(async move {
            let path = self.volume_path(id);
            if !tokio::fs::try_exists(&path).await? {
                anyhow::bail!("volume {id} is not on this backend");
            }
            if let Some((exports, ip)) = self.exports_for(to) {
                let data = exports.open(id, &path, to.host, ip).await?;
                return Ok(serde_json::json!({"driver_volume_type": "nbd", "data": data}));
            }
            if to.shared {
                anyhow::bail!("multiattach volumes are served over NBD, and this backend exports none");
            }
            Ok(serde_json::json!({"driver_volume_type": "file",
                                  "data": {"device_path": path.display().to_string(), "format": "qcow2",
                                           "volume_id": id, "access_mode": "rw"}}))
        })
    }

    fn disconnect<'a>(&'a self, id: &'a str, to: Connector<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match &self.exports {
                Some((_, exports)) => exports.close(id, to.host).await,
                None => Ok(()),
            }
        })
    }

    fn keep_serving<'a>(
        &'a self,
        attached: &'a std::collections::HashSet<String>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            match &self.exports {
                Some((_, exports)) => exports.keep(attached).await,
                None => Ok(()),
            }
        })
    }

    fn delete_snapshot<'a>(&'a self, _volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { remove(&self.snapshot_path(id)).await })
    }

    fn size_of<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<i64>>> {
        Box::pin(async move {
            let path = self.volume_path(id);
            if !tokio::fs::try_exists(&path).await? {
                return Ok(None);
            }
            let info =
                qemu_img(&[s("info"), s("-f"), s("qcow2"), s("--output=json"), path.display().to_string()]).await?;
            let v: serde_json::Value = serde_json::from_str(&info)?;
            let bytes = v["virtual-size"].as_u64().ok_or_else(|| anyhow::anyhow!("qemu-img info without a size"))?;
            Ok(Some(bytes.div_ceil(GIB) as i64))
        })
    }

    fn has_snapshot<'a>(&'a self, _volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(tokio::fs::try_exists(&self.snapshot_path(id)).await?) })
    }
}

/// Writes the qcow2 file `src` (a volume or a snapshot: `what`) to `to` in `format`.
/// `-U`: an attached volume's guest's QEMU holds the image lock; the copy is
/// crash-consistent.
async fn export_file(src: &Path, what: &str, format: &str, to: &Path) -> anyhow::Result<()> {
    super::check_format(format)?;
    if !tokio::fs::try_exists(src).await? {
        anyhow::bail!("{what} {} is not on this backend", src.display());
    }
    let part = to.with_extension("part");
    let (src, part_text) = (src.display().to_string(), part.display().to_string());
    qemu_img(&[s("convert"), s("-q"), s("-U"), s("-f"), s("qcow2"), s("-O"), s(format), src, part_text]).await?;
    tokio::fs::rename(&part, to).await?;
    Ok(())
}

async fn remove(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[&str]) -> bool {
        names.iter().all(|t| std::process::Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success()))
    }

    fn run(cmd: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new(cmd).args(args).output().unwrap()
    }

    #[tokio::test]
    async fn other_hosts_reach_volumes_over_nbd_and_only_they_do() {
        // Root for nftables; the tools QEMU's userspace NBD needs.
        if !tools(&["qemu-img", "qemu-io", "qemu-storage-daemon", "nft"])
            || !run("id", &["-u"]).stdout.starts_with(b"0")
        {
            eprintln!("needs root, qemu-utils, qemu-storage-daemon and nft: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("stratus-volume-{}", uuid::Uuid::new_v4()));
        let first_port = 20000 + (uuid::Uuid::new_v4().as_u128() % 20000) as u16;
        let opts = NbdOptions { address: "127.0.0.1".into(), first_port, ports: 8 };
        let d = FileDriver::new(&dir).unwrap().with_exports("storage-1", opts).unwrap();
        d.create("v-1", 1, Source::Empty).await.unwrap();
        let local =
            d.connection("v-1", Connector { host: "storage-1", ip: Some("127.0.0.1"), shared: false }).await.unwrap();
        assert_eq!(local["driver_volume_type"], "file", "the storage host itself opens the file");
        let shared = d.connection("v-1", Connector { host: "compute-2", ip: None, shared: false }).await.unwrap();
        assert_eq!(shared["driver_volume_type"], "file", "a host naming no address shares the directory");

        let remote = Connector { host: "compute-3", ip: Some("127.0.0.1"), shared: false };
        let info = d.connection("v-1", remote).await.unwrap();
        assert_eq!(info["driver_volume_type"], "nbd", "{info}");
        let again = d.connection("v-1", remote).await.unwrap();
        assert_eq!(again, info, "connecting twice is one export");
        let port = info["data"]["port"].as_u64().unwrap() as u16;
        assert_eq!(d.export_port("v-1").await.unwrap(), Some(port));
        let url = format!("nbd://127.0.0.1:{port}/{}", info["data"]["name"].as_str().unwrap());
        // Written through the export, read back from the file.
        let w = run("qemu-io", &["-f", "raw", "-c", "write -P 0x5a 1M 4k", &url]);
        assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
        let table = d.exports.as_ref().unwrap().1.table_name().to_string();
        let rules = String::from_utf8(run("nft", &["list", "table", "inet", &table]).stdout).unwrap();
        assert!(rules.contains(&format!("tcp dport {port} ip saddr 127.0.0.1 accept")), "{rules}");
        assert!(rules.contains(&format!("tcp dport {port} drop")), "{rules}");

        // A daemon that died is started again by the reconciler's pass; one of a volume
        // no longer attached is stopped.
        let pid = std::fs::read_to_string(dir.join("exports").join("v-1.pid")).unwrap();
        run("kill", &["-KILL", pid.trim()]);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let attached: std::collections::HashSet<String> = ["v-1".to_string()].into();
        d.keep_serving(&attached).await.unwrap();
        let r = run("qemu-io", &["-f", "raw", "-r", "-c", "read -P 0x5a 1M 4k", &url]);
        assert!(r.status.success() && !String::from_utf8_lossy(&r.stdout).contains("Pattern verification failed"));

        // A multiattach volume: the storage host itself reaches it through the same
        // export (one writer: the daemon), at the exports' address when it names none.
        let local_shared = Connector { host: "storage-1", ip: None, shared: true };
        let info = d.connection("v-1", local_shared).await.unwrap();
        assert_eq!(
            (&info["driver_volume_type"], info["data"]["port"].as_u64()),
            (&serde_json::json!("nbd"), Some(port as u64))
        );
        d.disconnect("v-1", local_shared).await.unwrap();
        assert_eq!(d.export_port("v-1").await.unwrap(), Some(port), "another host still has it");
        let plain = FileDriver::new(dir.join("plain")).unwrap();
        plain.create("v-2", 1, Source::Empty).await.unwrap();
        assert!(!plain.multiattach() && d.multiattach());
        assert!(plain.connection("v-2", local_shared).await.is_err(), "without exports, no multiattach");

        d.disconnect("v-1", remote).await.unwrap();
        d.disconnect("v-1", remote).await.unwrap();
        assert_eq!(d.export_port("v-1").await.unwrap(), None);
        assert!(!run("qemu-io", &["-f", "raw", "-r", "-c", "read 0 512", &url]).status.success(), "the export ended");
        assert!(!run("nft", &["list", "table", "inet", &table]).status.success(), "nothing exported: no table");
        let file = d.volume_path("v-1").display().to_string();
        let r = run("qemu-io", &["-f", "qcow2", "-r", "-c", "read -P 0x5a 1M 4k", &file]);
        assert!(
            !String::from_utf8_lossy(&r.stdout).contains("Pattern verification failed"),
            "the write reached the file"
        );

        d.connection("v-1", remote).await.unwrap();
        d.keep_serving(&Default::default()).await.unwrap();
        assert!(d.export_port("v-1").await.unwrap().is_some(), "just made: left alone (attached since the list)");
        let record = dir.join("exports").join("v-1.json");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
        std::fs::File::options().write(true).open(&record).unwrap().set_modified(old).unwrap();
        d.keep_serving(&Default::default()).await.unwrap();
        assert_eq!(d.export_port("v-1").await.unwrap(), None, "not attached: not exported");
        assert!(!run("nft", &["list", "table", "inet", &table]).status.success());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn volumes_snapshots_copies_and_extends_are_real_files() {
        if std::process::Command::new("qemu-img").arg("--version").output().is_err() {
            eprintln!("qemu-img is not installed: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("stratus-volume-{}", uuid::Uuid::new_v4()));
        let d = FileDriver::new(&dir).unwrap();
        // The room is the file system's under the directory: real, and consistent.
        let room = d.capacity().await.unwrap();
        assert!(room.total_gb > 0.0 && room.free_gb >= 0.0 && room.free_gb <= room.total_gb, "{room:?}");
        let (a, b, snap) = ("a-1", "b-2", "s-3");
        d.create(a, 1, Source::Empty).await.unwrap();
        d.create(a, 1, Source::Empty).await.unwrap(); // twice: nothing new
        assert_eq!(d.size_of(a).await.unwrap(), Some(1));
        d.extend(a, 2).await.unwrap();
        d.extend(a, 2).await.unwrap();
        assert_eq!(d.size_of(a).await.unwrap(), Some(2));
        d.snapshot(a, snap).await.unwrap();
        assert!(d.has_snapshot(a, snap).await.unwrap());
        // Written after the snapshot, then reverted: the write is gone.
        if tools(&["qemu-io"]) {
            let file = d.volume_path(a).display().to_string();
            let io = |cmd: &str| std::process::Command::new("qemu-io").args(["-f", "qcow2", "-c", cmd, &file]).output();
            assert!(io("write -P 0x5a 0 4k").unwrap().status.success());
            assert!(io("read -P 0x5a 0 4k").unwrap().stdout.starts_with(b"read"));
            d.revert(a, snap).await.unwrap();
            d.revert(a, snap).await.unwrap(); // twice: the same volume
            let out = io("read -P 0 0 4k").unwrap();
            assert!(
                out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("Pattern verification failed")
            );
            assert_eq!(d.size_of(a).await.unwrap(), Some(2));
        }
        assert!(d.revert(a, "no-such-snapshot").await.is_err());
        d.create(b, 3, Source::Snapshot { volume: a, id: snap }).await.unwrap();
        assert_eq!(d.size_of(b).await.unwrap(), Some(3), "a copy grows to the size asked");
        // The source goes first; the copy stays whole.
        d.delete(a).await.unwrap();
        d.delete_snapshot(a, snap).await.unwrap();
        d.delete(a).await.unwrap();
        assert_eq!(d.size_of(a).await.unwrap(), None);
        assert_eq!(d.size_of(b).await.unwrap(), Some(3));
        assert!(d.create("c-4", 1, Source::Volume("nope")).await.is_err());
        assert!(!d.volume_path("c-4").exists(), "a failed copy leaves nothing");
        assert!(d.volume_path("../../etc").ends_with("invalid.qcow2"));

        // From an image: kept once as a base, each volume an overlay of it that reads
        // the image's bytes and grows to its size; the base goes when dropped.
        let raw = dir.join("img.download");
        std::fs::write(&raw, vec![7u8; 1 << 20]).unwrap();
        assert!(d.create("e-5", 1, Source::Image { id: "img-1" }).await.is_err(), "not kept yet");
        d.keep_image("img-1", &raw, "raw").await.unwrap();
        assert!(d.has_image("img-1").await.unwrap() && !raw.exists(), "moved in");
        std::fs::write(&raw, b"again").unwrap();
        d.keep_image("img-1", &raw, "raw").await.unwrap();
        assert!(!raw.exists(), "a second download of a kept image is dropped");
        d.create("e-5", 2, Source::Image { id: "img-1" }).await.unwrap();
        assert_eq!(d.size_of("e-5").await.unwrap(), Some(2));
        let out = dir.join("e-5.raw");
        d.export("e-5", "raw", &out).await.unwrap();
        assert_eq!(std::fs::read(&out).unwrap()[..1 << 20], vec![7u8; 1 << 20][..], "the image's bytes");
        d.delete("e-5").await.unwrap();
        d.drop_image("img-1").await.unwrap();
        assert!(!d.has_image("img-1").await.unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A backup's round trip with real files: a volume written, backed up, written
    /// again and backed up incrementally (only the changed chunk is new), then each
    /// backup restored into a volume of its own, which reads what was written then.
    #[tokio::test]
    async fn backups_of_file_volumes_restore_the_bytes_written() {
        if !tools(&["qemu-img", "qemu-io"]) {
            eprintln!("qemu-img or qemu-io is not installed: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("stratus-volume-{}", uuid::Uuid::new_v4()));
        let d = FileDriver::new(dir.join("volumes")).unwrap();
        let repo = crate::driver::backups::BackupRepository::new(dir.join("backups")).unwrap();
        let io = |id: &str, cmd: &str| {
            let file = d.volume_path(id).display().to_string();
            let out = std::process::Command::new("qemu-io").args(["-f", "qcow2", "-c", cmd, &file]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            out.status.success() && !text.contains("Pattern verification failed") && !text.contains("error")
        };
        d.create("v-1", 1, Source::Empty).await.unwrap();
        assert!(io("v-1", "write -P 0x11 0 1M") && io("v-1", "write -P 0x22 512M 64k"));
        let staged = repo.staging("b-1", "raw");
        d.export("v-1", "raw", &staged).await.unwrap();
        let full = repo.store("b-1", &staged).await.unwrap();
        assert_eq!((full.new_chunks, full.manifest.objects()), (2, 2), "zeros are not stored");
        assert!(io("v-1", "write -P 0x33 512M 64k"));
        d.export("v-1", "raw", &staged).await.unwrap();
        let incremental = repo.store("b-2", &staged).await.unwrap();
        assert_eq!(incremental.new_chunks, 1, "only the changed chunk is new");
        for (backup, volume, pattern) in [("b-1", "r-1", "0x22"), ("b-2", "r-2", "0x33")] {
            d.create(volume, 2, Source::Empty).await.unwrap();
            assert!(io(volume, "write -P 0x77 1G 4k"));
            let out = dir.join(format!("{backup}.out"));
            repo.restore(backup, &out).await.unwrap();
            d.import(volume, &out, "raw").await.unwrap();
            d.import(volume, &out, "raw").await.unwrap(); // twice: the same volume
            assert!(io(volume, "read -P 0x11 0 1M"), "{volume}");
            assert!(io(volume, &format!("read -P {pattern} 512M 64k")), "{volume}");
            assert!(io(volume, "read -P 0 1G 4k"), "{volume}: what the volume held before is gone");
            assert_eq!(d.size_of(volume).await.unwrap(), Some(2), "a volume keeps its size");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
