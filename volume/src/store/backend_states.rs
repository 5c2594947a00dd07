//! Backends an operator disabled (`os-services/disable`): new volumes go elsewhere.

use super::{Store, StoreResult};
use std::collections::HashMap;
use stratus_common::db::now_text;

impl Store {
    /// The disabled backends, with the reason given (empty: none).
    pub async fn disabled_backends(&self) -> StoreResult<HashMap<String, String>> {
        use sqlx::Row;
        let rows =
            sqlx::query("SELECT backend, disabled_reason FROM volume_backend_states").fetch_all(&self.db.pool).await?;
        let mut out = HashMap::new();
        for r in rows {
            out.insert(r.try_get::<String, _>("backend")?, r.try_get::<String, _>("disabled_reason")?);
        }
        Ok(out)
    }

    /// Disables `backend` with `reason`, or (None) enables it again.
    pub async fn backend_disable(&self, backend: &str, reason: Option<&str>) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM volume_backend_states WHERE backend = $1").bind(backend).execute(&mut *tx).await?;
        if let Some(reason) = reason {
            sqlx::query("INSERT INTO volume_backend_states (backend, disabled_reason, updated_at) VALUES ($1, $2, $3)")
                .bind(backend)
                .bind(reason)
                .bind(now_text())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
