//! Volumes as RBD images in a Ceph pool, for operators who outgrow one storage host:
//! every compute host reaches every volume through Ceph itself (QEMU's `rbd` block
//! driver, a libvirt network disk), so a volume attaches anywhere and no storage host
//! serves it. Driven with Ceph's own tools (`rbd`, `ceph`; `qemu-img` for format
//! changes), as the user `[volume] rbd_user` of the cluster `rbd_conf` names.
//!
//! Names in the pool: volume `V` is the image `volume-V`; snapshot `S` of it is the
//! RBD snapshot `volume-V@snapshot-S`; an image kept as a base is `image-I` with a
//! protected snapshot `image-I@base`, which volumes made from the image are
//! copy-on-write clones of (made in milliseconds, whatever the image's size). A copy
//! (from a volume or a snapshot) is written as `<name>.part` and renamed when whole,
//! so a crash midway leaves nothing that looks finished. A base goes once no clone of
//! it is left.
//!
//! Compute hosts authenticate as the same user with the key held by a libvirt secret
//! of UUID `rbd_secret_uuid` that the operator defines on each compute host (as with
//! Nova and Cinder): the connection info names the secret, never the key.

use super::{check_format, Capacity, Connector, Source, VolumeDriver};
use anyhow::Context;
use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const GIB: u64 = 1 << 30;
/// How long a metadata operation (create, resize, snapshot, remove) may take.
const QUICK: Duration = Duration::from_secs(60);
/// How long a copy of data (copy, import, export) may take.
const COPY: Duration = Duration::from_secs(3600);

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct RbdOptions {
    /// The pool volumes live in.
    pub pool: String,
    /// The cluster's configuration file (monitors; where the user's keyring is).
    pub conf: String,
    /// The Ceph user (`client.<user>`) the service and compute hosts act as.
    pub user: String,
    /// The libvirt secret on compute hosts that holds the user's key; empty when the
    /// cluster does not authenticate (cephx off).
    pub secret_uuid: String,
    /// The volume service's host name, as its services and pools show it
    /// (`<host>@rbd`).
    pub host: String,
}

pub struct RbdDriver {
    opts: RbdOptions,
    /// The pool's room as last read, and when: `ceph df` asks the manager and costs a
    /// process of Ceph's Python tool, so the scheduler's reads within [`ROOM_TTL`]
    /// share one (Cinder's backends report theirs once a minute).
    room: std::sync::Mutex<Option<(std::time::Instant, Capacity)>>,
}

/// How long a read of the pool's room is reused.
const ROOM_TTL: Duration = Duration::from_secs(5);

/// Ids are UUIDs; anything else is refused rather than turned into a name.
fn safe(id: &str) -> &str {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        id
    } else {
        "invalid"
    }
}

fn volume_name(id: &str) -> String {
    format!("volume-{}", safe(id))
}

fn snapshot_name(id: &str) -> String {
    format!("snapshot-{}", safe(id))
}

fn image_name(id: &str) -> String {
    format!("image-{}", safe(id))
}

/// A failure of a command; `missing` when what it named does not exist.
#[derive(Debug)]
struct Failed {
    message: String,
    missing: bool,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

/// `r`, or `missing` when it failed because what it named does not exist.
fn or_missing<T>(r: anyhow::Result<T>, missing: T) -> anyhow::Result<T> {
    match r {
        Err(e) if e.downcast_ref::<Failed>().is_some_and(|f| f.missing) => Ok(missing),
        other => other,
    }
}

/// Runs `tool args`, bounded by `limit`; its standard output.
async fn run(tool: &str, args: &[String], limit: Duration) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new(tool);
    cmd.args(args).kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("{tool} {} took longer than {}s", args.join(" "), limit.as_secs()))?
        .with_context(|| format!("cannot run {tool} (is ceph-common installed?)"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let missing = stderr.contains("(2) No such file or directory");
        return Err(Failed { message: format!("{tool} {} failed: {stderr}", args.join(" ")), missing }.into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

impl RbdDriver {
    pub fn new(opts: RbdOptions) -> anyhow::Result<Self> {
        for (key, v) in [("rbd_pool", &opts.pool), ("rbd_conf", &opts.conf), ("rbd_user", &opts.user)] {
            if v.is_empty() || (key != "rbd_conf" && v.contains(['/', '@', ':', ' '])) {
                anyhow::bail!("volume.{key}: {v:?} is no valid name");
            }
        }
        Ok(Self { opts, room: Default::default() })
    }

    /// The arguments every `rbd` and `ceph` call starts with.
    fn base(&self) -> Vec<String> {
        vec![s("--conf"), self.opts.conf.clone(), s("--id"), self.opts.user.clone()]
    }

    async fn rbd(&self, args: &[&str], limit: Duration) -> anyhow::Result<String> {
        let mut all = self.base();
        all.extend(args.iter().map(|a| s(*a)));
        run("rbd", &all, limit).await
    }

    async fn rbd_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let out = self.rbd(&all, QUICK).await?;
        serde_json::from_str(&out).with_context(|| format!("rbd {} answered no JSON", args.join(" ")))
    }

    /// `name` (an image, or `image@snapshot`) in the pool.
    fn q(&self, name: &str) -> String {
        format!("{}/{name}", self.opts.pool)
    }

    /// Image `name`'s size in bytes, or `None` when it does not exist.
    async fn size(&self, name: &str) -> anyhow::Result<Option<u64>> {
        let info = or_missing(self.rbd_json(&["info", &self.q(name)]).await.map(Some), None)?;
        Ok(info.and_then(|i| i["size"].as_u64()))
    }

    /// The snapshots of image `name` (name, protected), none when it does not exist.
    async fn snapshots(&self, name: &str) -> anyhow::Result<Vec<(String, bool)>> {
        let list = or_missing(self.rbd_json(&["snap", "ls", &self.q(name)]).await, Value::Null)?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| (s["name"].as_str().unwrap_or_default().to_string(), s["protected"] == "true"))
            .collect())
    }

    /// `volume-V@snapshot-S`: snapshot `id` of volume `volume`.
    fn snapshot_spec(volume: &str, id: &str) -> String {
        format!("{}@{}", volume_name(volume), snapshot_name(id))
    }

    /// Whether image `name` has snapshot `snap`.
    async fn has_snap(&self, name: &str, snap: &str) -> anyhow::Result<bool> {
        Ok(self.snapshots(name).await?.iter().any(|(n, _)| n == snap))
    }

    /// Removes image `name` (gone already is fine).
    async fn remove(&self, name: &str) -> anyhow::Result<()> {
        or_missing(self.rbd(&["rm", "--no-progress", &self.q(name)], COPY).await.map(drop), ())
    }

    /// Grows image `name` to `size_gb` GiB (never shrinks it).
    async fn grow(&self, name: &str, size_gb: i64) -> anyhow::Result<()> {
        let bytes = size_gb.max(1) as u64 * GIB;
        let now = self.size(name).await?.ok_or_else(|| anyhow::anyhow!("{name} is not on this backend"))?;
        if now < bytes {
            self.rbd(&["resize", "--no-progress", "--size", &format!("{}M", bytes >> 20), &self.q(name)], QUICK)
                .await?;
        }
        Ok(())
    }

    /// Makes `name` a full copy of `from` (an image or `image@snapshot`), through a
    /// `.part` image renamed when whole; nothing when `name` exists.
    async fn copy(&self, from: &str, name: &str) -> anyhow::Result<()> {
        if self.size(name).await?.is_some() {
            return Ok(());
        }
        let part = format!("{name}.part");
        self.remove(&part).await?;
        self.rbd(&["cp", "--no-progress", &self.q(from), &self.q(&part)], COPY).await?;
        self.rbd(&["mv", &self.q(&part), &self.q(name)], QUICK).await?;
        Ok(())
    }

    /// QEMU's name of image `name` (for `qemu-img`).
    fn qemu_target(&self, name: &str) -> String {
        format!("rbd:{}/{name}:id={}:conf={}", self.opts.pool, self.opts.user, self.opts.conf)
    }

    /// Converts between `from` and `to` (files, or RBD images named by
    /// [`Self::qemu_target`]) with `qemu-img`; `existing`: `to` is there already and
    /// is written over in place.
    async fn convert(&self, from: (&str, &str), to: (&str, &str), existing: bool) -> anyhow::Result<()> {
        let mut args = vec![s("convert"), s("-q")];
        if existing {
            args.push(s("-n"));
        }
        args.extend([s("-f"), s(from.1), s("-O"), s(to.1), s(from.0), s(to.0)]);
        run("qemu-img", &args, COPY).await.map(drop)
    }

    /// Writes `spec` (an image or `image@snapshot`) to the file `to` in `format`,
    /// read straight from the pool.
    async fn export_to(&self, spec: &str, format: &str, to: &Path) -> anyhow::Result<()> {
        check_format(format)?;
        let _ = tokio::fs::remove_file(to).await;
        self.convert((&self.qemu_target(spec), "raw"), (&to.display().to_string(), format), false).await
    }

    /// The monitors' addresses (host, port), as compute hosts reach them.
    async fn monitors(&self) -> anyhow::Result<Vec<(String, String)>> {
        let mut args = self.base();
        args.extend([s("mon"), s("dump"), s("--format"), s("json")]);
        let dump: Value = serde_json::from_str(&run("ceph", &args, QUICK).await?)?;
        let mut out = Vec::new();
        for mon in dump["mons"].as_array().into_iter().flatten() {
            let addrs = mon["public_addrs"]["addrvec"].as_array().cloned().unwrap_or_default();
            // The v1 (msgr1) address, which every QEMU's librbd speaks; else the first.
            let addr = addrs.iter().find(|a| a["type"] == "v1").or(addrs.first()).and_then(|a| a["addr"].as_str());
            if let Some((host, port)) = addr.and_then(|a| a.rsplit_once(':')) {
                out.push((host.trim_matches(['[', ']']).to_string(), port.to_string()));
            }
        }
        if out.is_empty() {
            anyhow::bail!("the cluster names no monitors");
        }
        Ok(out)
    }
}

impl VolumeDriver for RbdDriver {
    fn name(&self) -> &'static str {
        "rbd"
    }

    fn host(&self) -> &str {
        if self.opts.host.is_empty() {
            "stratus"
        } else {
            &self.opts.host
        }
    }

    /// The pool's room: what is stored in it and what Ceph says it can still take
    /// (`max_avail`, after replication).
    fn capacity(&self) -> BoxFuture<'_, anyhow::Result<Capacity>> {
        Box::pin(async move {
            if let Some((at, room)) = *self.room.lock().unwrap() {
                if at.elapsed() < ROOM_TTL {
                    return Ok(room);
                }
            }
            let mut args = self.base();
            args.extend([s("df"), s("--format"), s("json")]);
            let df: Value = serde_json::from_str(&run("ceph", &args, QUICK).await?)?;
            let pool = df["pools"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str() == Some(self.opts.pool.as_str()))
                .ok_or_else(|| anyhow::anyhow!("the cluster has no pool {}", self.opts.pool))?;
            let gib = |b: f64| (b / GIB as f64 * 100.0).floor() / 100.0;
            let free = pool["stats"]["max_avail"].as_f64().unwrap_or(0.0);
            let stored = pool["stats"]["stored"].as_f64().unwrap_or(0.0);
            let room = Capacity { total_gb: gib(free + stored), free_gb: gib(free) };
            *self.room.lock().unwrap() = Some((std::time::Instant::now(), room));
            Ok(room)
        })
    }

    /// Ceph serves an image to many clients; the guests' file systems must be made
    /// for it, as on any shared disk.
    fn multiattach(&self) -> bool {
        true
    }

    fn storage_protocol(&self) -> &'static str {
        "ceph"
    }

    fn create<'a>(&'a self, id: &'a str, size_gb: i64, source: Source<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let name = volume_name(id);
            match source {
                Source::Empty => {
                    if self.size(&name).await?.is_none() {
                        let mb = format!("{}M", (size_gb.max(1) as u64 * GIB) >> 20);
                        self.rbd(&["create", "--size", &mb, &self.q(&name)], QUICK).await?;
                    }
                }
                Source::Volume(v) => self.copy(&volume_name(v), &name).await?,
                Source::Snapshot { volume, id: sn } => {
                    if !self.has_snap(&volume_name(volume), &snapshot_name(sn)).await? {
                        anyhow::bail!("snapshot {sn} is not on this backend");
                    }
                    self.copy(&Self::snapshot_spec(volume, sn), &name).await?
                }
                Source::Image { id: image } => {
                    if self.size(&name).await?.is_none() {
                        let base = format!("{}@base", image_name(image));
                        self.rbd(&["clone", &self.q(&base), &self.q(&name)], QUICK).await?;
                    }
                }
            }
            self.grow(&name, size_gb).await
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let name = volume_name(id);
            self.remove(&format!("{name}.part")).await?;
            self.remove(&name).await
        })
    }

    fn extend<'a>(&'a self, id: &'a str, size_gb: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.grow(&volume_name(id), size_gb).await })
    }

    /// An RBD snapshot: instant, crash-consistent while a guest writes.
    fn snapshot<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (name, snap) = (volume_name(volume_id), snapshot_name(snapshot_id));
            if self.size(&name).await?.is_none() {
                anyhow::bail!("volume {volume_id} is not on this backend");
            }
            if !self.has_snap(&name, &snap).await? {
                self.rbd(&["snap", "create", "--no-progress", &self.q(&format!("{name}@{snap}"))], QUICK).await?;
            }
            Ok(())
        })
    }

    fn revert<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let spec = format!("{}@{}", volume_name(volume_id), snapshot_name(snapshot_id));
            self.rbd(&["snap", "rollback", "--no-progress", &self.q(&spec)], COPY).await.map(drop)
        })
    }

    fn export<'a>(&'a self, id: &'a str, format: &'a str, to: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.export_to(&volume_name(id), format, to).await })
    }

    fn export_snapshot<'a>(
        &'a self,
        volume_id: &'a str,
        id: &'a str,
        format: &'a str,
        to: &'a Path,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move { self.export_to(&Self::snapshot_spec(volume_id, id), format, to).await })
    }

    /// Writes `from` over the volume in place (its snapshots stay as they were).
    fn import<'a>(&'a self, id: &'a str, from: &'a Path, format: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            check_format(format)?;
            let name = volume_name(id);
            if self.size(&name).await?.is_none() {
                anyhow::bail!("volume {id} is not on this backend");
            }
            self.convert((&from.display().to_string(), format), (&self.qemu_target(&name), "raw"), true).await
        })
    }

    fn delete_snapshot<'a>(&'a self, volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let spec = self.q(&Self::snapshot_spec(volume_id, id));
            or_missing(self.rbd(&["snap", "rm", "--no-progress", &spec], QUICK).await.map(drop), ())
        })
    }

    fn size_of<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<i64>>> {
        Box::pin(async move { Ok(self.size(&volume_name(id)).await?.map(|b| b.div_ceil(GIB) as i64)) })
    }

    /// Written as raw into `image-I` (through `image-I.part`), then its `base`
    /// snapshot made and protected (clones need it); `from` is removed.
    fn keep_image<'a>(
        &'a self,
        image_id: &'a str,
        from: &'a Path,
        format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            check_format(format)?;
            let name = image_name(image_id);
            if self.size(&name).await?.is_none() {
                let part = format!("{name}.part");
                self.remove(&part).await?;
                self.convert((&from.display().to_string(), format), (&self.qemu_target(&part), "raw"), false).await?;
                self.rbd(&["mv", &self.q(&part), &self.q(&name)], QUICK).await?;
            }
            let snaps = self.snapshots(&name).await?;
            let base = format!("{name}@base");
            match snaps.iter().find(|(n, _)| n == "base") {
                None => {
                    self.rbd(&["snap", "create", "--no-progress", &self.q(&base)], QUICK).await?;
                    self.rbd(&["snap", "protect", &self.q(&base)], QUICK).await?;
                }
                Some((_, false)) => drop(self.rbd(&["snap", "protect", &self.q(&base)], QUICK).await?),
                Some((_, true)) => {}
            }
            let _ = tokio::fs::remove_file(from).await;
            Ok(())
        })
    }

    fn has_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move {
            Ok(self.snapshots(&image_name(image_id)).await?.iter().any(|(n, protected)| n == "base" && *protected))
        })
    }

    /// The base goes once it has no clones (Ceph refuses to unprotect it before).
    fn drop_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let name = image_name(image_id);
            let base = format!("{name}@base");
            for (snap, protected) in self.snapshots(&name).await? {
                if snap == "base" {
                    if protected {
                        self.rbd(&["snap", "unprotect", &self.q(&base)], QUICK).await?;
                    }
                    self.rbd(&["snap", "rm", "--no-progress", &self.q(&base)], QUICK).await?;
                }
            }
            self.remove(&format!("{name}.part")).await?;
            self.remove(&name).await
        })
    }

    /// Cinder's `rbd` connection info, which Nova's libvirt driver reads too.
    fn connection<'a>(&'a self, id: &'a str, _to: Connector<'a>) -> BoxFuture<'a, anyhow::Result<Value>> {
        Box::pin(async move {
            let name = volume_name(id);
            if self.size(&name).await?.is_none() {
                anyhow::bail!("volume {id} is not on this backend");
            }
            let (hosts, ports): (Vec<String>, Vec<String>) = self.monitors().await?.into_iter().unzip();
            let auth = !self.opts.secret_uuid.is_empty();
            Ok(json!({
                "driver_volume_type": "rbd",
                "data": {
                    "name": format!("{}/{name}", self.opts.pool), "hosts": hosts, "ports": ports,
                    "cluster_name": "ceph", "auth_enabled": auth,
                    "auth_username": if auth { json!(self.opts.user) } else { Value::Null },
                    "secret_type": "ceph",
                    "secret_uuid": if auth { json!(self.opts.secret_uuid) } else { Value::Null },
                    "volume_id": id, "discard": true, "format": "raw",
                }
            }))
        })
    }

    fn has_snapshot<'a>(&'a self, volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { self.has_snap(&volume_name(volume_id), &snapshot_name(id)).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_of_ids_only() {
        assert_eq!(volume_name("0a-1b"), "volume-0a-1b");
        assert_eq!(volume_name("../x"), "volume-invalid");
        assert_eq!(snapshot_name("a b"), "snapshot-invalid");
        assert_eq!(image_name("f00"), "image-f00");
    }

    #[test]
    fn options_are_checked() {
        let ok = RbdOptions {
            pool: "volumes".into(),
            conf: "/etc/ceph/ceph.conf".into(),
            user: "cinder".into(),
            secret_uuid: String::new(),
            host: "storage-1".into(),
        };
        assert!(RbdDriver::new(ok.clone()).is_ok());
        assert!(RbdDriver::new(RbdOptions { pool: "a/b".into(), ..ok.clone() }).is_err());
        assert!(RbdDriver::new(RbdOptions { user: String::new(), ..ok }).is_err());
    }
}
