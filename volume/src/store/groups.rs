use super::{Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stratus_common::db::{now_text, Col, JsonSelect};

/// A group's or a group snapshot's status, as Cinder names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupStatus {
    Creating,
    Available,
    Deleting,
    Error,
    ErrorDeleting,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Creating => "creating",
            GroupStatus::Available => "available",
            GroupStatus::Deleting => "deleting",
            GroupStatus::Error => "error",
            GroupStatus::ErrorDeleting => "error_deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

/// A generic volume group (3.13+): volumes of its volume types, kept together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: String,
    pub group_type_id: String,
    pub volume_type_ids: Vec<String>,
    pub status: GroupStatus,
    pub group_snapshot_id: Option<String>,
    pub source_group_id: Option<String>,
    /// Work under way that ends when its volumes settle (`volumes`: made from a
    /// source; `deletion`: deleted with them); empty when none.
    pub pending: String,
    pub deleted: bool,
    pub rev: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A group snapshot (3.14+): one snapshot of each of a group's volumes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub group_id: String,
    pub group_type_id: String,
    pub name: String,
    pub description: String,
    pub status: GroupStatus,
    /// As [`Group::pending`] (`snapshots`, `deletion`).
    pub pending: String,
    pub deleted: bool,
    pub rev: i64,
    pub created_at: String,
    pub updated_at: String,
}

const GROUP_COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("project_id"),
    Col::Text("user_id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Text("group_type_id"),
    Col::Json("volume_type_ids"),
    Col::Text("status"),
    Col::Text("group_snapshot_id"),
    Col::Text("source_group_id"),
    Col::Text("pending"),
    Col::Flag("deleted"),
    Col::Text("rev"),
    Col::Text("created_at"),
    Col::Text("updated_at"),
];

const SNAPSHOT_COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("project_id"),
    Col::Text("user_id"),
    Col::Text("group_id"),
    Col::Text("group_type_id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Text("status"),
    Col::Text("pending"),
    Col::Flag("deleted"),
    Col::Text("rev"),
    Col::Text("created_at"),
    Col::Text("updated_at"),
];

impl Store {
    pub async fn group_insert_in(conn: &mut sqlx::AnyConnection, g: &Group) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_groups (id, project_id, user_id, name, description, group_type_id, volume_type_ids, status,
             group_snapshot_id, source_group_id, pending, deleted, rev, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, 0, $12, $12)",
        )
        .bind(&g.id)
        .bind(&g.project_id)
        .bind(&g.user_id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(&g.group_type_id)
        .bind(serde_json::to_string(&g.volume_type_ids).unwrap_or_else(|_| "[]".into()))
        .bind(g.status.as_str())
        .bind(&g.group_snapshot_id)
        .bind(&g.source_group_id)
        .bind(&g.pending)
        .bind(&g.created_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn group_get(&self, id: &str) -> StoreResult<Option<Group>> {
        const SELECT: JsonSelect =
            JsonSelect { columns: GROUP_COLUMNS, from: "volume_groups WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    /// Live groups of one project or all, oldest first; `pending` only: those with
    /// work under way.
    pub async fn group_list(&self, project: Option<&str>, pending: bool) -> StoreResult<Vec<Group>> {
        const ALL: JsonSelect = JsonSelect {
            columns: GROUP_COLUMNS,
            from: "volume_groups WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1)",
            order: "created_at, id",
        };
        const PENDING: JsonSelect = JsonSelect {
            columns: GROUP_COLUMNS,
            from: "volume_groups WHERE deleted = 0 AND pending <> ''",
            order: "id",
        };
        if pending {
            self.db.json_rows(&PENDING, &[]).await
        } else {
            self.db.json_rows(&ALL, &[project]).await
        }
    }

    pub async fn group_save_in(conn: &mut sqlx::AnyConnection, g: &Group) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_groups SET name = $1, description = $2, status = $3, pending = $4, deleted = $5, updated_at = $6,
             rev = rev + 1 WHERE id = $7 AND rev = $8",
        )
        .bind(&g.name)
        .bind(&g.description)
        .bind(g.status.as_str())
        .bind(&g.pending)
        .bind(g.deleted as i64)
        .bind(now_text())
        .bind(&g.id)
        .bind(g.rev)
        .execute(&mut *conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn group_save(&self, g: &mut Group) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::group_save_in(&mut conn, g).await?;
        conn.release();
        if saved {
            g.rev += 1;
        }
        Ok(saved)
    }

    pub async fn group_snapshot_insert_in(conn: &mut sqlx::AnyConnection, s: &GroupSnapshot) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_group_snapshots (id, project_id, user_id, group_id, group_type_id, name, description, status,
             pending, deleted, rev, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, $10)",
        )
        .bind(&s.id)
        .bind(&s.project_id)
        .bind(&s.user_id)
        .bind(&s.group_id)
        .bind(&s.group_type_id)
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.status.as_str())
        .bind(&s.pending)
        .bind(&s.created_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub async fn group_snapshot_get(&self, id: &str) -> StoreResult<Option<GroupSnapshot>> {
        const SELECT: JsonSelect =
            JsonSelect { columns: SNAPSHOT_COLUMNS, from: "volume_group_snapshots WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    /// Live group snapshots of one project or all (or of one group), oldest first;
    /// `pending` only: those with work under way.
    pub async fn group_snapshot_list(
        &self,
        project: Option<&str>,
        group: Option<&str>,
        pending: bool,
    ) -> StoreResult<Vec<GroupSnapshot>> {
        const ALL: JsonSelect = JsonSelect {
            columns: SNAPSHOT_COLUMNS,
            from: "volume_group_snapshots WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1) AND ($2 IS NULL OR group_id = $2)",
            order: "created_at, id",
        };
        const PENDING: JsonSelect = JsonSelect {
            columns: SNAPSHOT_COLUMNS,
            from: "volume_group_snapshots WHERE deleted = 0 AND pending <> ''",
            order: "id",
        };
        if pending {
            self.db.json_rows(&PENDING, &[]).await
        } else {
            self.db.json_rows(&ALL, &[project, group]).await
        }
    }

    pub async fn group_snapshot_save(&self, s: &mut GroupSnapshot) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_group_snapshots SET name = $1, description = $2, status = $3, pending = $4, deleted = $5,
             updated_at = $6, rev = rev + 1 WHERE id = $7 AND rev = $8",
        )
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.status.as_str())
        .bind(&s.pending)
        .bind(s.deleted as i64)
        .bind(now_text())
        .bind(&s.id)
        .bind(s.rev)
        .execute(&self.db.pool)
        .await?;
        if r.rows_affected() == 1 {
            s.rev += 1;
        }
        Ok(r.rows_affected() == 1)
    }
}
