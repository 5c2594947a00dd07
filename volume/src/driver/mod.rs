//! Where volume bytes live, behind one trait. Every operation is idempotent (a saga
//! step may run it twice): making what exists already, or removing what is gone, is
//! success.

pub mod backups;
mod fake;
mod file;
pub mod nbd;
pub mod rbd;

pub use fake::FakeDriver;
pub use file::FileDriver;

use futures::future::BoxFuture;

/// What a new volume starts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Zeroes.
    Empty,
    /// A copy of another volume.
    Volume(&'a str),
    /// A copy of snapshot `id` of volume `volume`.
    Snapshot { volume: &'a str, id: &'a str },
    /// Image `id`, kept on the backend as a base ([`VolumeDriver::keep_image`]): the
    /// file backend makes a thin copy-on-write overlay of it, in milliseconds.
    Image { id: &'a str },
}

/// Refuses a disk format other than the two volumes are read and written in.
pub(crate) fn check_format(format: &str) -> anyhow::Result<()> {
    match format {
        "raw" | "qcow2" => Ok(()),
        other => anyhow::bail!("volumes are read and written as raw or qcow2, not {other}"),
    }
}

/// The compute host asking to reach a volume (what Cinder's connector says of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connector<'a> {
    pub host: &'a str,
    /// The address it connects from, when it names one.
    pub ip: Option<&'a str>,
    /// The volume is multiattach: other servers may have it at the same time.
    pub shared: bool,
}

/// The room a backend's store has, in GiB (Cinder's pool figures).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    pub total_gb: f64,
    pub free_gb: f64,
}

pub trait VolumeDriver: Send + Sync {
    /// The backend's name, as volume types select it (`volume_backend_name`).
    fn name(&self) -> &'static str;
    /// The storage host the backend runs on (Cinder shows volumes' host as
    /// `<host>@<backend>#<pool>`, and the backend's service as `<host>@<backend>`).
    fn host(&self) -> &str {
        "stratus"
    }
    /// The room of the store its volumes live in: its size and what is free on it.
    fn capacity(&self) -> BoxFuture<'_, anyhow::Result<Capacity>>;
    /// Whether its volumes can be attached to several servers at once (Cinder's
    /// `multiattach` capability); such volumes connect with [`Connector::shared`].
    fn multiattach(&self) -> bool {
        false
    }
    /// How compute hosts reach its volumes (Cinder's `storage_protocol`).
    fn storage_protocol(&self) -> &'static str {
        "file"
    }
    /// Makes volume `id` of `size_gb` GiB from `source` (a copy grows to `size_gb`).
    fn create<'a>(&'a self, id: &'a str, size_gb: i64, source: Source<'a>) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Removes volume `id`.
    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Grows volume `id` to `size_gb` GiB.
    fn extend<'a>(&'a self, id: &'a str, size_gb: i64) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Makes snapshot `snapshot_id`: volume `volume_id` as it is now.
    fn snapshot<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Makes volume `volume_id` what snapshot `snapshot_id` holds (Cinder's revert to
    /// snapshot); running it again gives the same volume.
    fn revert<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Writes volume `id` as it is now to the file `to`, in `format` (`raw` or `qcow2`).
    fn export<'a>(&'a self, id: &'a str, format: &'a str, to: &'a std::path::Path)
        -> BoxFuture<'a, anyhow::Result<()>>;
    /// Writes snapshot `id` of volume `volume_id` to the file `to`, in `format` (`raw`
    /// or `qcow2`).
    fn export_snapshot<'a>(
        &'a self,
        volume_id: &'a str,
        id: &'a str,
        format: &'a str,
        to: &'a std::path::Path,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Makes volume `id` hold what the file `from` (in `format`) holds, keeping the
    /// volume's size (a restore of a backup); running it again gives the same volume.
    fn import<'a>(
        &'a self,
        id: &'a str,
        from: &'a std::path::Path,
        format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Removes snapshot `id` of volume `volume_id`.
    fn delete_snapshot<'a>(&'a self, volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The size in GiB volume `id` has on the backend, or `None` when it does not exist.
    fn size_of<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<i64>>>;
    /// Keeps image `image_id`, downloaded to the local file `from` in `format` (`raw`
    /// or `qcow2`), as a base volumes are made from; `from` is moved in (or removed
    /// when the image is kept already).
    fn keep_image<'a>(
        &'a self,
        image_id: &'a str,
        from: &'a std::path::Path,
        format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Whether image `image_id` is kept as a base.
    fn has_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
    /// Forgets the base of image `image_id` (no volume uses it any more).
    fn drop_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    /// How compute host `to` reaches volume `id` (Cinder's `connection_info`:
    /// `driver_volume_type` and its `data`); a backend that serves volumes over the
    /// network starts serving it to that host.
    fn connection<'a>(&'a self, id: &'a str, to: Connector<'a>) -> BoxFuture<'a, anyhow::Result<serde_json::Value>>;
    /// Compute host `to` let go of volume `id`: what was served to it alone ends.
    fn disconnect<'a>(&'a self, _id: &'a str, _to: Connector<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Serves the `attached` volumes where they were served before (after a restart
    /// or a crash of what serves them), and stops serving every other one.
    fn keep_serving<'a>(
        &'a self,
        _attached: &'a std::collections::HashSet<String>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    /// Whether snapshot `id` of volume `volume_id` exists on the backend.
    fn has_snapshot<'a>(&'a self, volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>>;
}
