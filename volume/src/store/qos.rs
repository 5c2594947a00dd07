use super::{json_text, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{Col, JsonSelect};

/// Named limits for the volumes of the types associated with them. A `front-end`
/// (or `both`) consumer's specs reach the compute host with the connection, which
/// applies them to the guest's disk; `back-end` ones are the backend's to apply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QosSpecs {
    pub id: String,
    pub name: String,
    pub consumer: String,
    pub specs: Map<String, Value>,
    pub created_at: String,
}

const COLUMNS: &[Col] =
    &[Col::Text("id"), Col::Text("name"), Col::Text("consumer"), Col::Json("specs"), Col::Text("created_at")];

impl Store {
    /// Inserts QoS specs; false when the name is taken.
    pub async fn qos_insert(&self, q: &QosSpecs) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO volume_qos_specs (id, name, consumer, specs, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
        )
        .bind(&q.id)
        .bind(&q.name)
        .bind(&q.consumer)
        .bind(json_text(&q.specs))
        .bind(&q.created_at)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn qos_get(&self, id: &str) -> StoreResult<Option<QosSpecs>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_qos_specs WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    pub async fn qos_list(&self) -> StoreResult<Vec<QosSpecs>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_qos_specs", order: "name, id" };
        self.db.json_rows(&SELECT, &[]).await
    }

    /// Saves the specs of QoS specs `q`.
    pub async fn qos_save_specs(&self, q: &QosSpecs) -> StoreResult<()> {
        sqlx::query("UPDATE volume_qos_specs SET specs = $1 WHERE id = $2")
            .bind(json_text(&q.specs))
            .bind(&q.id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Deletes QoS specs and every association with them, in one transaction.
    pub async fn qos_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE volume_types SET qos_specs_id = '' WHERE qos_specs_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM volume_qos_specs WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Associates type `type_id` with QoS specs `qos` (empty: with none); false when
    /// the type has other specs already (and `qos` is not empty).
    pub async fn type_set_qos(&self, type_id: &str, qos: &str) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_types SET qos_specs_id = $1 WHERE id = $2 AND ($1 = '' OR qos_specs_id IN ('', $1))",
        )
        .bind(qos)
        .bind(type_id)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends every association of QoS specs `qos`.
    pub async fn qos_disassociate_all(&self, qos: &str) -> StoreResult<()> {
        sqlx::query("UPDATE volume_types SET qos_specs_id = '' WHERE qos_specs_id = $1")
            .bind(qos)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
