use super::{json_text, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{Col, JsonSelect};

/// A group type (Cinder's generic volume groups, 3.11+): a name, whether every project
/// sees it, and its group specs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupType {
    pub id: String,
    pub name: String,
    pub description: String,
    pub is_public: bool,
    pub group_specs: Map<String, Value>,
    pub created_at: String,
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Flag("is_public"),
    Col::Json("group_specs"),
    Col::Text("created_at"),
];

impl Store {
    /// Inserts a group type; false when its name is taken.
    pub async fn group_type_insert(&self, t: &GroupType) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO volume_group_types (id, name, description, is_public, group_specs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.is_public as i64)
        .bind(json_text(&t.group_specs))
        .bind(&t.created_at)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A group type by id or, failing that, by name.
    pub async fn group_type_get(&self, id_or_name: &str) -> StoreResult<Option<GroupType>> {
        const SELECT: JsonSelect =
            JsonSelect { columns: COLUMNS, from: "volume_group_types WHERE id = $1 OR name = $1", order: "id" };
        let mut found = self.db.json_rows::<GroupType>(&SELECT, &[Some(id_or_name)]).await?;
        let by_id = found.iter().position(|t| t.id == id_or_name);
        Ok(match by_id {
            Some(i) => Some(found.swap_remove(i)),
            None => found.pop(),
        })
    }

    pub async fn group_type_list(&self) -> StoreResult<Vec<GroupType>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_group_types", order: "name, id" };
        self.db.json_rows(&SELECT, &[]).await
    }

    /// Saves a changed group type; false when gone or when its new name is taken.
    pub async fn group_type_save(&self, t: &GroupType) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_group_types SET name = $2, description = $3, is_public = $4, group_specs = $5 WHERE id = $1
             AND NOT EXISTS (SELECT 1 FROM volume_group_types o WHERE o.name = $2 AND o.id <> $1)",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(&t.description)
        .bind(t.is_public as i64)
        .bind(json_text(&t.group_specs))
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn group_type_delete(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM volume_group_types WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(r.rows_affected() == 1)
    }
}
