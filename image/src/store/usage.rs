use super::{Store, StoreResult};
use stratus_common::db::RowExt;

impl Store {
    /// (images, bytes) counted against a project's quotas.
    pub async fn usage_fetch(&self, project_id: &str) -> StoreResult<(i64, i64)> {
        let row = sqlx::query("SELECT image_count, image_bytes FROM image_usage WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.map(|r| (r.int("image_count"), r.int("image_bytes"))).unwrap_or((0, 0)))
    }
}
