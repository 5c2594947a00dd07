use super::{json_text, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{now_text, Col, JsonSelect};

/// A backup's status, as Cinder names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupStatus {
    Creating,
    Available,
    Deleting,
    /// A volume is being made what it holds.
    Restoring,
    Error,
    ErrorDeleting,
}

impl BackupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupStatus::Creating => "creating",
            BackupStatus::Available => "available",
            BackupStatus::Deleting => "deleting",
            BackupStatus::Restoring => "restoring",
            BackupStatus::Error => "error",
            BackupStatus::ErrorDeleting => "error_deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub volume_id: String,
    /// The snapshot backed up, when it was one (else the volume as it was).
    pub snapshot_id: Option<String>,
    pub name: String,
    pub description: String,
    /// Cinder's container: a name the user may give; the repository ignores it.
    pub container: Option<String>,
    pub status: BackupStatus,
    pub fail_reason: Option<String>,
    /// GiB: the volume's size.
    pub size: i64,
    /// The chunks holding data.
    pub object_count: i64,
    pub is_incremental: bool,
    /// The backup an incremental one follows.
    pub parent_id: Option<String>,
    /// When the data was taken.
    pub data_timestamp: String,
    pub metadata: Map<String, Value>,
    /// What the volume was besides its bytes, made again on a restore: `metadata`,
    /// `bootable` and `image_meta` (what it shows of the image it came from).
    pub volume_meta: Map<String, Value>,
    /// The repository's name for its data: its own id, or, for an imported record,
    /// the id the data was written under.
    pub data_id: String,
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
    Col::Text("snapshot_id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Text("container"),
    Col::Text("status"),
    Col::Text("fail_reason"),
    Col::Text("size"),
    Col::Text("object_count"),
    Col::Flag("is_incremental"),
    Col::Text("parent_id"),
    Col::Text("data_timestamp"),
    Col::Json("metadata"),
    Col::Json("volume_meta"),
    Col::Text("data_id"),
    Col::Flag("deleted"),
    Col::Text("rev"),
    Col::Text("created_at"),
    Col::Text("updated_at"),
];

impl Store {
    pub async fn backup_insert_in(conn: &mut sqlx::AnyConnection, b: &Backup) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_backups (id, project_id, user_id, volume_id, snapshot_id, name, description, container,
             status, fail_reason, size, object_count, is_incremental, parent_id, data_timestamp, metadata, data_id,
             volume_meta, deleted, rev, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 0, 0, $19, $19)",
        )
        .bind(&b.id)
        .bind(&b.project_id)
        .bind(&b.user_id)
        .bind(&b.volume_id)
        .bind(&b.snapshot_id)
        .bind(&b.name)
        .bind(&b.description)
        .bind(&b.container)
        .bind(b.status.as_str())
        .bind(&b.fail_reason)
        .bind(b.size)
        .bind(b.object_count)
        .bind(b.is_incremental as i64)
        .bind(&b.parent_id)
        .bind(&b.data_timestamp)
        .bind(json_text(&b.metadata))
        .bind(&b.data_id)
        .bind(json_text(&b.volume_meta))
        .bind(&b.created_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A backup, deleted or not.
    pub async fn backup_get(&self, id: &str) -> StoreResult<Option<Backup>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_backups WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    /// Live backups, of one project or all, and of one volume or all, oldest first.
    pub async fn backup_list(&self, project: Option<&str>, volume: Option<&str>) -> StoreResult<Vec<Backup>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_backups WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR volume_id = $2)",
            order: "created_at, id",
        };
        self.db.json_rows(&SELECT, &[project, volume]).await
    }

    /// The live backups that follow another (`has_dependent_backups`).
    pub async fn backup_parents(&self) -> StoreResult<std::collections::HashSet<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT parent_id FROM volume_backups WHERE deleted = 0 AND parent_id IS NOT NULL")
                .fetch_all(&self.db.reads)
                .await?;
        Ok(rows.into_iter().map(|(p,)| p).collect())
    }

    /// How many live backup records name data `data_id` (an imported record shares
    /// its source's).
    pub async fn backup_data_holders(&self, data_id: &str) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM volume_backups WHERE deleted = 0 AND data_id = $1")
            .bind(data_id)
            .fetch_one(&self.db.reads)
            .await?;
        Ok(n)
    }

    pub async fn backup_save_in(conn: &mut sqlx::AnyConnection, b: &Backup) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_backups SET name = $1, description = $2, status = $3, fail_reason = $4, object_count = $5,
             metadata = $6, deleted = $7, updated_at = $8, rev = rev + 1 WHERE id = $9 AND rev = $10",
        )
        .bind(&b.name)
        .bind(&b.description)
        .bind(b.status.as_str())
        .bind(&b.fail_reason)
        .bind(b.object_count)
        .bind(json_text(&b.metadata))
        .bind(b.deleted as i64)
        .bind(now_text())
        .bind(&b.id)
        .bind(b.rev)
        .execute(&mut *conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn backup_save(&self, b: &mut Backup) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::backup_save_in(&mut conn, b).await?;
        conn.release();
        if saved {
            b.rev += 1;
        }
        Ok(saved)
    }
}
