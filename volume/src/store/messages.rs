//! User messages (Cinder's `/messages`, 3.3+): what went wrong with a request whose
//! outcome came after its answer (a volume that no backend could take), for the
//! project to read until the message expires.

use super::{Store, StoreResult};
use serde::{Deserialize, Serialize};
use stratus_common::db::{now_text, Col, JsonSelect};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub project_id: String,
    /// The request that led to it (`x-openstack-request-id`).
    pub request_id: String,
    /// `VOLUME`, `SNAPSHOT`, ...
    pub resource_type: String,
    pub resource_uuid: String,
    /// Cinder's `VOLUME_<resource>_<action>_<detail>` code.
    pub event_id: String,
    /// `ERROR`.
    pub message_level: String,
    pub user_message: String,
    pub created_at: String,
    /// Until when it is kept (`guaranteed_until`).
    pub expires_at: String,
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("project_id"),
    Col::Text("request_id"),
    Col::Text("resource_type"),
    Col::Text("resource_uuid"),
    Col::Text("event_id"),
    Col::Text("message_level"),
    Col::Text("user_message"),
    Col::Text("created_at"),
    Col::Text("expires_at"),
];

impl Store {
    pub async fn message_insert_in(conn: &mut sqlx::AnyConnection, m: &Message) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_messages (id, project_id, request_id, resource_type, resource_uuid, event_id,
             message_level, user_message, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&m.id)
        .bind(&m.project_id)
        .bind(&m.request_id)
        .bind(&m.resource_type)
        .bind(&m.resource_uuid)
        .bind(&m.event_id)
        .bind(&m.message_level)
        .bind(&m.user_message)
        .bind(&m.created_at)
        .bind(&m.expires_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// The messages of `project` (of every project: `None`) not yet expired, oldest
    /// first; expired ones go.
    pub async fn message_list(&self, project: Option<&str>) -> StoreResult<Vec<Message>> {
        sqlx::query("DELETE FROM volume_messages WHERE expires_at < $1")
            .bind(now_text())
            .execute(&self.db.pool)
            .await?;
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_messages WHERE ($1 IS NULL OR project_id = $1)",
            order: "created_at, id",
        };
        self.db.json_rows(&SELECT, &[project]).await
    }

    pub async fn message_get(&self, id: &str) -> StoreResult<Option<Message>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_messages WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    pub async fn message_delete(&self, id: &str) -> StoreResult<bool> {
        let gone = sqlx::query("DELETE FROM volume_messages WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(gone.rows_affected() == 1)
    }
}
