//! The image reconciler: uploads whose process died (lease ran out) are killed, and data
//! files that belong to no image are removed. It runs at start and then on a timer; it
//! takes no input and each run is the retry of the last.

use super::ImageService;
use crate::store::ImageStatus;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::db::now_text;

/// What one pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub killed: usize,
    pub orphans_removed: usize,
}

impl ImageService {
    pub async fn reconcile(&self) -> anyhow::Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        for img in self.store.image_list_stale_uploads(&now_text()).await? {
            if self
                .store
                .image_transition(&img.id, &[ImageStatus::Saving, ImageStatus::Importing], ImageStatus::Killed, None)
                .await?
            {
                tracing::warn!(image = %img.id, "upload lease lapsed; image killed");
                report.killed += 1;
            }
        }
        let ids = self.store.image_ids().await?;
        report.orphans_removed = self.backend.sweep(&ids).await?;
        Ok(report)
    }

    pub fn spawn_reconciler(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn_every("image.reconciler", every, move || {
            let me = me.clone();
            async move {
                let r = me.reconcile().await?;
                if r != ReconcileReport::default() {
                    tracing::info!(?r, "image reconciler converged");
                }
                anyhow::Ok(())
            }
        });
    }
}
