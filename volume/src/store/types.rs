use super::{json_text, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{Col, JsonSelect, RowExt};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeType {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_public: bool,
    pub extra_specs: Map<String, Value>,
    pub created_at: String,
    /// The QoS specs associated with the type; empty for none.
    #[serde(default)]
    pub qos_specs_id: String,
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Flag("is_public"),
    Col::Json("extra_specs"),
    Col::Text("created_at"),
    Col::Text("qos_specs_id"),
];

impl Store {
    /// Inserts a type; false when its name is taken.
    pub async fn type_insert(&self, t: &VolumeType) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO volume_types (id, name, description, is_public, extra_specs, created_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.is_public as i64)
        .bind(json_text(&t.extra_specs))
        .bind(&t.created_at)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A type by id or, failing that, by name.
    pub async fn type_get(&self, id_or_name: &str) -> StoreResult<Option<VolumeType>> {
        const SELECT: JsonSelect =
            JsonSelect { columns: COLUMNS, from: "volume_types WHERE id = $1 OR name = $1", order: "id" };
        let mut found = self.db.json_rows::<VolumeType>(&SELECT, &[Some(id_or_name)]).await?;
        let by_id = found.iter().position(|t| t.id == id_or_name);
        Ok(match by_id {
            Some(i) => Some(found.swap_remove(i)),
            None => found.pop(),
        })
    }

    pub async fn type_list(&self) -> StoreResult<Vec<VolumeType>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_types", order: "name, id" };
        self.db.json_rows(&SELECT, &[]).await
    }

    /// The public types and the private ones `project` was given.
    pub async fn type_list_for(&self, project: &str) -> StoreResult<Vec<VolumeType>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_types WHERE is_public = 1
                   OR id IN (SELECT type_id FROM volume_type_access WHERE project_id = $1)",
            order: "name, id",
        };
        self.db.json_rows(&SELECT, &[Some(project)]).await
    }

    /// The projects given private type `id`.
    pub async fn type_access_list(&self, id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT project_id FROM volume_type_access WHERE type_id = $1 ORDER BY project_id")
            .bind(id)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| r.text("project_id")).collect())
    }

    /// Gives `project` private type `id`; false when it had it.
    pub async fn type_access_add(&self, id: &str, project: &str) -> StoreResult<bool> {
        let r =
            sqlx::query("INSERT INTO volume_type_access (type_id, project_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id)
                .bind(project)
                .execute(&self.db.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Takes private type `id` from `project`; false when it did not have it.
    pub async fn type_access_remove(&self, id: &str, project: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM volume_type_access WHERE type_id = $1 AND project_id = $2")
            .bind(id)
            .bind(project)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Saves a type's name, description, visibility and extra specs; false when the
    /// name is taken.
    pub async fn type_update(&self, t: &VolumeType) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_types SET name = $1, description = $2, is_public = $3, extra_specs = $4 WHERE id = $5
             AND NOT EXISTS (SELECT 1 FROM volume_types o WHERE o.name = $1 AND o.id <> $5)",
        )
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.is_public as i64)
        .bind(json_text(&t.extra_specs))
        .bind(&t.id)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a type no live volume uses; false when one does (or it is gone).
    pub async fn type_delete(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let r = sqlx::query(
            "DELETE FROM volume_types WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM volume_volumes WHERE type_id = $1 AND deleted = 0)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM volume_type_access WHERE type_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }
}
