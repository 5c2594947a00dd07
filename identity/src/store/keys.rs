use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

/// A token signing key. `state` is `staged` (published, not yet signing), `primary`
/// (signing) or `secondary` (a former primary, still accepted).
#[derive(Debug, Clone)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 document, base64.
    pub private_key: String,
    /// Raw public key, base64url without padding.
    pub public_key: String,
    pub state: String,
    pub created_at: String,
}

impl SigningKey {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            kid: r.text("kid"),
            private_key: r.text("private_key"),
            public_key: r.text("public_key"),
            state: r.text("state"),
            created_at: r.text("created_at"),
        }
    }
}

impl Store {
    pub async fn signing_key_list(&self) -> StoreResult<Vec<SigningKey>> {
        let rows = sqlx::query("SELECT * FROM identity_signing_keys ORDER BY created_at DESC")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(SigningKey::from_row).collect())
    }

    /// Applies a rotation in one transaction: the given new keys are inserted, the states
    /// of existing keys changed and the listed keys removed.
    pub async fn signing_key_apply(
        &self,
        insert: &[SigningKey],
        set_state: &[(String, &'static str)],
        remove: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for (kid, state) in set_state {
            sqlx::query("UPDATE identity_signing_keys SET state = $2 WHERE kid = $1")
                .bind(kid)
                .bind(*state)
                .execute(&mut *tx)
                .await?;
        }
        for kid in remove {
            sqlx::query("DELETE FROM identity_signing_keys WHERE kid = $1").bind(kid).execute(&mut *tx).await?;
        }
        for k in insert {
            sqlx::query(
                "INSERT INTO identity_signing_keys (kid, private_key, public_key, state, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&k.kid)
            .bind(&k.private_key)
            .bind(&k.public_key)
            .bind(&k.state)
            .bind(&k.created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
