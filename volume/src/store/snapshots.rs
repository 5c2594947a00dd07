use super::{json_text, Metered, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{now_text, Col, JsonSelect};

/// A snapshot's status, as Cinder names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    Creating,
    Available,
    Deleting,
    /// Its volume is being reverted to it.
    Restoring,
    Error,
    ErrorDeleting,
}

impl SnapshotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Creating => "creating",
            SnapshotStatus::Available => "available",
            SnapshotStatus::Deleting => "deleting",
            SnapshotStatus::Restoring => "restoring",
            SnapshotStatus::Error => "error",
            SnapshotStatus::ErrorDeleting => "error_deleting",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    pub name: String,
    pub description: String,
    pub size: i64,
    pub status: SnapshotStatus,
    pub metadata: Map<String, Value>,
    /// What the backend (or `os-update_snapshot_status`) said of its progress, as
    /// `80%`; empty when nothing did.
    #[serde(default)]
    pub progress: String,
    /// The group snapshot it is part of.
    #[serde(default)]
    pub group_snapshot_id: Option<String>,
    pub deleted: bool,
    pub rev: i64,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("project_id"),
    Col::Text("user_id"),
    Col::Text("volume_id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Text("size"),
    Col::Text("status"),
    Col::Json("metadata"),
    Col::Text("progress"),
    Col::Text("group_snapshot_id"),
    Col::Flag("deleted"),
    Col::Text("rev"),
    Col::Text("created_at"),
    Col::Text("updated_at"),
];

impl Store {
    pub async fn snapshot_insert_in(conn: &mut sqlx::AnyConnection, s: &Snapshot) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_snapshots (id, project_id, user_id, volume_id, name, description, size, status, metadata, deleted, rev,
             created_at, updated_at, group_snapshot_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $10, $11)",
        )
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.volume_id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.size)
        .bind(s.status.as_str())
        .bind(json_text(&s.metadata))
        .bind(&s.created_at)
        .bind(&s.group_snapshot_id)
        .execute(&mut *conn)
        .await?;
        Store::meter_in(conn, Metered::Snapshot, &s.id, &s.project_id, s.size, true).await
    }

    pub async fn snapshot_get(&self, id: &str) -> StoreResult<Option<Snapshot>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_snapshots WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    /// Live snapshots, of one project or all, and of one volume or all, oldest first.
    pub async fn snapshot_list(&self, project: Option<&str>, volume: Option<&str>) -> StoreResult<Vec<Snapshot>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_snapshots WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR volume_id = $2)",
            order: "created_at, id",
        };
        self.db.json_rows(&SELECT, &[project, volume]).await
    }

    pub async fn snapshot_save_in(conn: &mut sqlx::AnyConnection, s: &Snapshot) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_snapshots SET name = $1, description = $2, status = $3, metadata = $4, deleted = $5, updated_at = $6,
             progress = $9, rev = rev + 1 WHERE id = $7 AND rev = $8",
        )
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.status.as_str())
        .bind(json_text(&s.metadata))
        .bind(s.deleted as i64)
        .bind(now_text())
        .bind(&s.id)
        .bind(s.rev)
        .bind(&s.progress)
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        if s.deleted {
            Store::meter_in(conn, Metered::Snapshot, &s.id, &s.project_id, s.size, false).await?;
        }
        Ok(true)
    }

    pub async fn snapshot_save(&self, s: &mut Snapshot) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::snapshot_save_in(&mut conn, s).await?;
        conn.release();
        if saved {
            s.rev += 1;
        }
        Ok(saved)
    }
}
