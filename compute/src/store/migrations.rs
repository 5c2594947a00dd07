//! Migration records (`os-migrations`): what Nova keeps of every move of a server
//! between flavors or hosts. Stratus resizes on the server's own host and moves no
//! server between hosts, so every record is a resize (`migration_type` `resize`), kept
//! with its status as the resize goes: `migrating` → `finished` (VERIFY_RESIZE) →
//! `confirmed`, or `reverting` → `reverted`, or `error`.

use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationRecord {
    pub id: i64,
    pub uuid: String,
    pub instance_uuid: String,
    pub project_id: String,
    pub user_id: String,
    pub source_compute: String,
    pub dest_compute: String,
    pub status: String,
    pub migration_type: String,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl MigrationRecord {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.int("id"),
            uuid: r.text("uuid"),
            instance_uuid: r.text("instance_uuid"),
            project_id: r.text("project_id"),
            user_id: r.text("user_id"),
            source_compute: r.text("source_compute"),
            dest_compute: r.text("dest_compute"),
            status: r.text("status"),
            migration_type: r.text("migration_type"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }
}

/// The statuses of a migration still under way (one a confirm or revert may end).
pub const OPEN: &[&str] = &["migrating", "finished", "reverting"];

impl Store {
    /// Records a resize of `instance` on `host` (in the resize's own transaction).
    pub async fn migration_insert_in(
        conn: &mut sqlx::AnyConnection,
        instance: &str,
        project: &str,
        user: &str,
        host: &str,
    ) -> StoreResult<()> {
        // The next id from the counter's row: its lock is held until the caller's
        // transaction ends, so two resizes committing at once get different ids (a
        // `MAX(id) + 1` would give both the same on PostgreSQL, and fail the second).
        let id: i64 = sqlx::query_scalar("UPDATE compute_counters SET n = n + 1 WHERE name = 'migrations' RETURNING n")
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query(
            "INSERT INTO compute_migrations (id, uuid, instance_uuid, project_id, user_id, source_compute,
                dest_compute, status, migration_type, created_at)
             VALUES ($7, $1, $2, $3, $4, $5, $5, 'migrating', 'resize', $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(instance)
        .bind(project)
        .bind(user)
        .bind(host)
        .bind(now_text())
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Moves the instance's open migration (one of `from`) to `to`.
    pub async fn migration_move_in(
        conn: &mut sqlx::AnyConnection,
        instance: &str,
        from: &[&str],
        to: &str,
    ) -> StoreResult<()> {
        let marks = stratus_common::db::placeholders(from.len(), 4, 1);
        let sql = format!(
            "UPDATE compute_migrations SET status = $1, updated_at = $2 WHERE instance_uuid = $3 AND status IN ({marks})"
        );
        let mut q = sqlx::query(&sql).bind(to).bind(now_text()).bind(instance);
        for f in from {
            q = q.bind(*f);
        }
        q.execute(conn).await?;
        Ok(())
    }

    /// Every record, newest first.
    pub async fn migration_list(&self) -> StoreResult<Vec<MigrationRecord>> {
        let rows = sqlx::query("SELECT * FROM compute_migrations ORDER BY created_at DESC, id DESC")
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(MigrationRecord::from_row).collect())
    }
}
