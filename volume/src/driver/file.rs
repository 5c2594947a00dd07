//! Volumes as thin qcow2 files under a directory (`volumes/<id>.qcow2`,
//! `snapshots/<id>.qcow2`), made with `qemu-img` (always told the format, never left to
//! probe). A file is written under a `.part` name and renamed when complete, so a crash
//! midway leaves no file that looks finished; the step runs again and starts over.
//! Snapshots and copies are full copies (`qemu-img convert`), independent of their
//! source, so either can be deleted first. A volume made from an image is a
//! copy-on-write overlay of the image kept once as a base (`images/<image id>.raw` or
//! `.qcow2`, immutable as images are), made in milliseconds; the base goes when the
//! last volume made from it does.

use super::{Source, VolumeDriver};
use anyhow::Context;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};

const GIB: u64 = 1 << 30;

pub struct FileDriver {
    root: PathBuf,
}

impl FileDriver {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        for dir in ["volumes", "snapshots", "images"] {
            std::fs::create_dir_all(root.join(dir)).with_context(|| format!("cannot create {}", root.display()))?;
        }
        Ok(Self { root })
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

    fn create<'a>(&'a self, id: &'a str, size_gb: i64, source: Source<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let size = format!("{}", size_gb.max(1) as u64 * GIB);
            let (from, format) = match source {
                Source::Empty => (None, "qcow2"),
                Source::Volume(v) => (Some(self.volume_path(v)), "qcow2"),
                Source::Snapshot(sn) => (Some(self.snapshot_path(sn)), "qcow2"),
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

    fn export<'a>(&'a self, id: &'a str, format: &'a str, to: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            if !matches!(format, "raw" | "qcow2") {
                anyhow::bail!("volumes are exported as raw or qcow2, not {format}");
            }
            let src = self.volume_path(id);
            if !tokio::fs::try_exists(&src).await? {
                anyhow::bail!("volume {id} is not on this backend");
            }
            let part = to.with_extension("part");
            qemu_img(&[
                s("convert"),
                s("-q"),
                s("-f"),
                s("qcow2"),
                s("-O"),
                s(format),
                src.display().to_string(),
                part.display().to_string(),
            ])
            .await?;
            tokio::fs::rename(&part, to).await?;
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
            if !matches!(format, "raw" | "qcow2") {
                anyhow::bail!("images in {format} format cannot become volumes");
            }
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

    /// The file itself, for a host that sees this directory (the one host of an
    /// all-in-one cloud, or hosts sharing it over a network file system).
    fn connection<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<serde_json::Value>> {
        Box::pin(async move {
            let path = self.volume_path(id);
            if !tokio::fs::try_exists(&path).await? {
                anyhow::bail!("volume {id} is not on this backend");
            }
            Ok(serde_json::json!({"driver_volume_type": "file",
                                  "data": {"device_path": path.display().to_string(), "format": "qcow2",
                                           "volume_id": id, "access_mode": "rw"}}))
        })
    }

    fn delete_snapshot<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
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

    fn has_snapshot<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(tokio::fs::try_exists(&self.snapshot_path(id)).await?) })
    }
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

    #[tokio::test]
    async fn volumes_snapshots_copies_and_extends_are_real_files() {
        if std::process::Command::new("qemu-img").arg("--version").output().is_err() {
            eprintln!("qemu-img is not installed: skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("stratus-volume-{}", uuid::Uuid::new_v4()));
        let d = FileDriver::new(&dir).unwrap();
        let (a, b, snap) = ("a-1", "b-2", "s-3");
        d.create(a, 1, Source::Empty).await.unwrap();
        d.create(a, 1, Source::Empty).await.unwrap(); // twice: nothing new
        assert_eq!(d.size_of(a).await.unwrap(), Some(1));
        d.extend(a, 2).await.unwrap();
        d.extend(a, 2).await.unwrap();
        assert_eq!(d.size_of(a).await.unwrap(), Some(2));
        d.snapshot(a, snap).await.unwrap();
        assert!(d.has_snapshot(snap).await.unwrap());
        d.create(b, 3, Source::Snapshot(snap)).await.unwrap();
        assert_eq!(d.size_of(b).await.unwrap(), Some(3), "a copy grows to the size asked");
        // The source goes first; the copy stays whole.
        d.delete(a).await.unwrap();
        d.delete_snapshot(snap).await.unwrap();
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
}
