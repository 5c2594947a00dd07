//! Volumes in memory, for tests at scale and benchmarks. Never the default.

use super::{Capacity, Source, VolumeDriver};
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct FakeDriver {
    volumes: Mutex<HashMap<String, i64>>,
    snapshots: Mutex<HashMap<String, i64>>,
    /// Images kept as bases, with their size in GiB.
    images: Mutex<HashMap<String, i64>>,
    /// Its storage does not answer (tests of a backend that is down).
    down: std::sync::atomic::AtomicBool,
}

impl FakeDriver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes its storage stop answering (`true`) or answer again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    /// Volumes and snapshots held.
    pub fn counts(&self) -> (usize, usize) {
        (self.volumes.lock().unwrap().len(), self.snapshots.lock().unwrap().len())
    }
}

/// What a fake backend says it holds, in GiB.
const FAKE_TOTAL_GB: f64 = 1000.0;

impl VolumeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn multiattach(&self) -> bool {
        true
    }

    /// A store of [`FAKE_TOTAL_GB`], less what its volumes and snapshots take.
    fn capacity(&self) -> BoxFuture<'_, anyhow::Result<Capacity>> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Box::pin(async { Err(anyhow::anyhow!("the fake storage is down")) });
        }
        let used: i64 =
            self.volumes.lock().unwrap().values().sum::<i64>() + self.snapshots.lock().unwrap().values().sum::<i64>();
        Box::pin(
            async move { Ok(Capacity { total_gb: FAKE_TOTAL_GB, free_gb: (FAKE_TOTAL_GB - used as f64).max(0.0) }) },
        )
    }

    fn create<'a>(&'a self, id: &'a str, size_gb: i64, source: Source<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let from = match source {
                Source::Empty => 0,
                Source::Image { id: image } => *self
                    .images
                    .lock()
                    .unwrap()
                    .get(image)
                    .ok_or_else(|| anyhow::anyhow!("image {image} is not kept here"))?,
                Source::Volume(v) => *self
                    .volumes
                    .lock()
                    .unwrap()
                    .get(v)
                    .ok_or_else(|| anyhow::anyhow!("source volume {v} is not on this backend"))?,
                Source::Snapshot { id: s, .. } => *self
                    .snapshots
                    .lock()
                    .unwrap()
                    .get(s)
                    .ok_or_else(|| anyhow::anyhow!("snapshot {s} is not on this backend"))?,
            };
            self.volumes.lock().unwrap().entry(id.to_string()).or_insert(size_gb.max(from));
            Ok(())
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.volumes.lock().unwrap().remove(id);
            Ok(())
        })
    }

    fn extend<'a>(&'a self, id: &'a str, size_gb: i64) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let mut v = self.volumes.lock().unwrap();
            let size = v.get_mut(id).ok_or_else(|| anyhow::anyhow!("volume {id} is not on this backend"))?;
            *size = (*size).max(size_gb);
            Ok(())
        })
    }

    fn snapshot<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let size = *self
                .volumes
                .lock()
                .unwrap()
                .get(volume_id)
                .ok_or_else(|| anyhow::anyhow!("volume {volume_id} is not on this backend"))?;
            self.snapshots.lock().unwrap().entry(snapshot_id.to_string()).or_insert(size);
            Ok(())
        })
    }

    fn revert<'a>(&'a self, volume_id: &'a str, snapshot_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let size = *self
                .snapshots
                .lock()
                .unwrap()
                .get(snapshot_id)
                .ok_or_else(|| anyhow::anyhow!("snapshot {snapshot_id} is not on this backend"))?;
            let mut v = self.volumes.lock().unwrap();
            *v.get_mut(volume_id).ok_or_else(|| anyhow::anyhow!("volume {volume_id} is not on this backend"))? = size;
            Ok(())
        })
    }

    fn export<'a>(
        &'a self,
        id: &'a str,
        _format: &'a str,
        to: &'a std::path::Path,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            anyhow::ensure!(self.volumes.lock().unwrap().contains_key(id), "volume {id} is not on this backend");
            // A token of the data: fake volumes hold none.
            std::fs::write(to, vec![0u8; 4096])?;
            Ok(())
        })
    }

    fn export_snapshot<'a>(
        &'a self,
        _volume_id: &'a str,
        id: &'a str,
        _format: &'a str,
        to: &'a std::path::Path,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            anyhow::ensure!(self.snapshots.lock().unwrap().contains_key(id), "snapshot {id} is not on this backend");
            std::fs::write(to, vec![0u8; 4096])?;
            Ok(())
        })
    }

    fn import<'a>(
        &'a self,
        id: &'a str,
        from: &'a std::path::Path,
        _format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            anyhow::ensure!(self.volumes.lock().unwrap().contains_key(id), "volume {id} is not on this backend");
            anyhow::ensure!(from.exists(), "{} is missing", from.display());
            Ok(())
        })
    }

    fn delete_snapshot<'a>(&'a self, _volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.snapshots.lock().unwrap().remove(id);
            Ok(())
        })
    }

    fn size_of<'a>(&'a self, id: &'a str) -> BoxFuture<'a, anyhow::Result<Option<i64>>> {
        Box::pin(async move { Ok(self.volumes.lock().unwrap().get(id).copied()) })
    }

    fn keep_image<'a>(
        &'a self,
        image_id: &'a str,
        from: &'a std::path::Path,
        _format: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let size = (std::fs::metadata(from)?.len().div_ceil(1 << 30)) as i64;
            self.images.lock().unwrap().insert(image_id.to_string(), size);
            let _ = std::fs::remove_file(from);
            Ok(())
        })
    }

    fn has_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.images.lock().unwrap().contains_key(image_id)) })
    }

    fn drop_image<'a>(&'a self, image_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.images.lock().unwrap().remove(image_id);
            Ok(())
        })
    }

    fn connection<'a>(
        &'a self,
        id: &'a str,
        _: super::Connector<'a>,
    ) -> BoxFuture<'a, anyhow::Result<serde_json::Value>> {
        Box::pin(async move {
            if !self.volumes.lock().unwrap().contains_key(id) {
                anyhow::bail!("volume {id} is not on this backend");
            }
            Ok(serde_json::json!({"driver_volume_type": "fake", "data": {"volume_id": id, "access_mode": "rw"}}))
        })
    }

    fn has_snapshot<'a>(&'a self, _volume_id: &'a str, id: &'a str) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { Ok(self.snapshots.lock().unwrap().contains_key(id)) })
    }
}
