//! Policy documents (Keystone's deprecated `/v3/policies`): opaque blobs of a MIME type
//! that identity keeps for other services; nothing here reads them.

use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    pub id: String,
    pub kind: String,
    pub blob: String,
}

impl PolicyDocument {
    fn from_row(r: &AnyRow) -> Self {
        Self { id: r.text("id"), kind: r.text("type"), blob: r.text("blob") }
    }
}

impl Store {
    pub async fn policy_create(&self, p: &PolicyDocument) -> StoreResult<()> {
        sqlx::query("INSERT INTO identity_policies (id, type, blob, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&p.id)
            .bind(&p.kind)
            .bind(&p.blob)
            .bind(now_text())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn policy_fetch(&self, id: &str) -> StoreResult<Option<PolicyDocument>> {
        let row =
            sqlx::query("SELECT * FROM identity_policies WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(PolicyDocument::from_row))
    }

    /// Every document, oldest first.
    pub async fn policy_list(&self) -> StoreResult<Vec<PolicyDocument>> {
        let rows =
            sqlx::query("SELECT * FROM identity_policies ORDER BY created_at, id").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(PolicyDocument::from_row).collect())
    }

    /// Saves a changed document; false when it is gone.
    pub async fn policy_save(&self, p: &PolicyDocument) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE identity_policies SET type = $2, blob = $3 WHERE id = $1")
            .bind(&p.id)
            .bind(&p.kind)
            .bind(&p.blob)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn policy_delete(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM identity_policies WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(done.rows_affected() == 1)
    }
}
