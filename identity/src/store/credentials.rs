//! Credentials (Keystone's `/v3/credentials`): opaque blobs a user keeps with identity,
//! EC2 access/secret pairs among them.

use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone)]
pub struct Credential {
    pub id: String,
    pub user_id: String,
    pub project_id: Option<String>,
    pub kind: String,
    pub blob: String,
}

impl Credential {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            user_id: r.text("user_id"),
            project_id: r.opt_text("project_id"),
            kind: r.text("type"),
            blob: r.text("blob"),
        }
    }
}

impl Store {
    pub async fn credential_create(&self, c: &Credential) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_credentials (id, user_id, project_id, type, blob, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&c.id)
        .bind(&c.user_id)
        .bind(&c.project_id)
        .bind(&c.kind)
        .bind(&c.blob)
        .bind(now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn credential_fetch(&self, id: &str) -> StoreResult<Option<Credential>> {
        let row = sqlx::query("SELECT * FROM identity_credentials WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Credential::from_row))
    }

    /// Every credential, or one user's, oldest first.
    pub async fn credential_list(&self, user_id: Option<&str>) -> StoreResult<Vec<Credential>> {
        let rows = match user_id {
            Some(u) => {
                sqlx::query("SELECT * FROM identity_credentials WHERE user_id = $1 ORDER BY created_at, id")
                    .bind(u)
                    .fetch_all(&self.db.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM identity_credentials ORDER BY created_at, id")
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        Ok(rows.iter().map(Credential::from_row).collect())
    }

    /// Replaces a credential's blob; false when it is gone.
    pub async fn credential_set_blob(&self, id: &str, blob: &str) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE identity_credentials SET blob = $2 WHERE id = $1")
            .bind(id)
            .bind(blob)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn credential_delete(&self, id: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM identity_credentials WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(done.rows_affected() == 1)
    }
}
