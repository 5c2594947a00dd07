//! Reverting a volume to its latest snapshot (Cinder 3.40, `openstack volume revert`):
//! the volume `reverting` and the snapshot `restoring` while the backend copies the
//! snapshot over the volume (the `volume_revert` saga), both `available` after.

use super::sagas::{self, RevertData};
use super::{bad, require_writer, AppResult, Error, VolumeService};
use crate::store::{SnapshotStatus, Store, VolumeStatus};
use stratus_common::auth::AuthContext;

impl VolumeService {
    /// Cinder's rules: the volume `available`, the snapshot `available`, its own, its
    /// latest, and of the volume's size now (one extended since cannot go back).
    pub async fn volume_revert(&self, ctx: &AuthContext, id: &str, snapshot_id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, id).await?;
            let mut snap = self.snapshot_get(ctx, snapshot_id).await?;
            if snap.volume_id != v.id {
                return Err(bad(format!("Invalid input received: snapshot {snapshot_id} is not of volume {id}.")));
            }
            let latest = self
                .store
                .snapshot_list(None, Some(&v.id))
                .await?
                .into_iter()
                .max_by(|a, b| (a.created_at.as_str(), a.id.as_str()).cmp(&(b.created_at.as_str(), b.id.as_str())));
            if latest.as_ref().map(|l| l.id.as_str()) != Some(snapshot_id) {
                return Err(bad(format!(
                    "Invalid snapshot: snapshot {snapshot_id} is not the latest one of volume {id}; only the latest can be reverted to."
                )));
            }
            if v.status != VolumeStatus::Available {
                return Err(bad(format!(
                    "Invalid volume: the volume must be available to revert, but it is {}.",
                    v.status.as_str()
                )));
            }
            if snap.status != SnapshotStatus::Available {
                return Err(bad(format!(
                    "Invalid snapshot: the snapshot must be available, but it is {}.",
                    snap.status.as_str()
                )));
            }
            if snap.size != v.size {
                return Err(bad(format!(
                    "Invalid volume: the volume is {} GiB and the snapshot was taken at {} GiB; a volume extended since cannot be reverted.",
                    v.size, snap.size
                )));
            }
            let saga = Self::new_saga(sagas::REVERT, &v.id, &RevertData { snapshot_id: snap.id.clone() });
            v.status = VolumeStatus::Reverting;
            v.control.saga_id = Some(saga.id.clone());
            snap.status = SnapshotStatus::Restoring;
            let mut tx = self.store.db.pool.begin().await?;
            if !Store::volume_save_in(&mut tx, &v).await? || !Store::snapshot_save_in(&mut tx, &snap).await? {
                continue;
            }
            self.sagas.insert_saga(&mut tx, &saga).await?;
            tx.commit().await?;
            self.notify("revert.start", &v.id, &v.project_id, "reverting").await;
            self.run(saga);
            return Ok(());
        }
        Err(Error::InvalidState(format!("Volume {id} changed while the request ran; try again.")))
    }
}
