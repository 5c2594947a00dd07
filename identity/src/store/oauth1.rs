//! OS-OAUTH1: consumers, and the request and access tokens they hold.
//!
//! Secrets are kept as given: an HMAC-SHA1 signature can only be checked with the
//! secret itself, so unlike passwords they cannot be stored hashed.

use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::auth::NamedRef;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct Consumer {
    pub id: String,
    pub secret: String,
    pub description: Option<String>,
}

impl Consumer {
    fn from_row(r: &AnyRow) -> Self {
        Self { id: r.text("id"), secret: r.text("secret"), description: r.opt_text("description") }
    }
}

/// A consumer's request for access to one project; authorised by a user, who names
/// the roles it delegates and receives the verifier.
#[derive(Debug, Clone)]
pub struct RequestToken {
    pub id: String,
    pub secret: String,
    pub consumer_id: String,
    pub project_id: String,
    pub expires_at: Option<String>,
    pub authorizing_user_id: Option<String>,
    pub roles: Vec<NamedRef>,
    pub verifier: Option<String>,
}

impl RequestToken {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            secret: r.text("secret"),
            consumer_id: r.text("consumer_id"),
            project_id: r.text("project_id"),
            expires_at: r.opt_text("expires_at"),
            authorizing_user_id: r.opt_text("authorizing_user_id"),
            roles: serde_json::from_str(&r.text("roles")).unwrap_or_default(),
            verifier: r.opt_text("verifier"),
        }
    }
}

/// What a consumer exchanges an authorised request token for: the standing right to
/// get tokens for the user on the project, with the delegated roles.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub id: String,
    pub secret: String,
    pub consumer_id: String,
    pub project_id: String,
    pub authorizing_user_id: String,
    pub roles: Vec<NamedRef>,
    pub expires_at: Option<String>,
}

impl AccessToken {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            secret: r.text("secret"),
            consumer_id: r.text("consumer_id"),
            project_id: r.text("project_id"),
            authorizing_user_id: r.text("authorizing_user_id"),
            roles: serde_json::from_str(&r.text("roles")).unwrap_or_default(),
            expires_at: r.opt_text("expires_at"),
        }
    }
}

impl Store {
    pub async fn consumer_create(&self, c: &Consumer) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_oauth_consumers (id, secret, description, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&c.id)
        .bind(&c.secret)
        .bind(&c.description)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn consumer_fetch(&self, id: &str) -> StoreResult<Option<Consumer>> {
        let row = sqlx::query("SELECT * FROM identity_oauth_consumers WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Consumer::from_row))
    }

    pub async fn consumer_list(&self) -> StoreResult<Vec<Consumer>> {
        let rows = sqlx::query("SELECT * FROM identity_oauth_consumers ORDER BY id").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Consumer::from_row).collect())
    }

    pub async fn consumer_update(&self, id: &str, description: Option<&str>) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE identity_oauth_consumers SET description = $1 WHERE id = $2")
            .bind(description)
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Deletes a consumer with every request and access token it holds, in one
    /// transaction.
    /// Records that `consumer` used `nonce` at `now` (seconds); false when it had,
    /// since `since`. Nonces older than `since` are forgotten first. Every identity
    /// process shares the table, so a request replayed to another one is refused too.
    pub async fn oauth_nonce_fresh(&self, consumer: &str, nonce: &str, now: i64, since: i64) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM identity_oauth_nonces WHERE seen_at < $1").bind(since).execute(&mut *tx).await?;
        let r = sqlx::query(
            "INSERT INTO identity_oauth_nonces (consumer_id, nonce, seen_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer_id, nonce) DO NOTHING",
        )
        .bind(consumer)
        .bind(nonce)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn consumer_delete(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM identity_oauth_request_tokens WHERE consumer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM identity_oauth_access_tokens WHERE consumer_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM identity_oauth_nonces WHERE consumer_id = $1").bind(id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM identity_oauth_consumers WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn request_token_create(&self, t: &RequestToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_oauth_request_tokens (id, secret, consumer_id, project_id, expires_at, roles, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.secret)
        .bind(&t.consumer_id)
        .bind(&t.project_id)
        .bind(&t.expires_at)
        .bind("[]")
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn request_token_fetch(&self, id: &str) -> StoreResult<Option<RequestToken>> {
        let row = sqlx::query("SELECT * FROM identity_oauth_request_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(RequestToken::from_row))
    }

    /// Records the user's authorisation; false when the token was already authorised
    /// (or is gone), so one request token is authorised once.
    pub async fn request_token_authorize(
        &self,
        id: &str,
        user_id: &str,
        roles: &[NamedRef],
        verifier: &str,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE identity_oauth_request_tokens SET authorizing_user_id = $1, roles = $2, verifier = $3
             WHERE id = $4 AND authorizing_user_id IS NULL",
        )
        .bind(user_id)
        .bind(serde_json::to_string(roles).unwrap())
        .bind(verifier)
        .bind(id)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Exchanges a request token for an access token: the request token is consumed in
    /// the same transaction, so it buys one access token only. False when it was
    /// already consumed.
    pub async fn access_token_exchange(&self, request_token_id: &str, t: &AccessToken) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM identity_oauth_request_tokens WHERE id = $1")
            .bind(request_token_id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO identity_oauth_access_tokens (id, secret, consumer_id, project_id, authorizing_user_id, roles,
                expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.secret)
        .bind(&t.consumer_id)
        .bind(&t.project_id)
        .bind(&t.authorizing_user_id)
        .bind(serde_json::to_string(&t.roles).unwrap())
        .bind(&t.expires_at)
        .bind(stratus_common::db::now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn access_token_fetch(&self, id: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query("SELECT * FROM identity_oauth_access_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(AccessToken::from_row))
    }

    pub async fn access_token_list(&self, user_id: &str) -> StoreResult<Vec<AccessToken>> {
        let rows = sqlx::query("SELECT * FROM identity_oauth_access_tokens WHERE authorizing_user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(AccessToken::from_row).collect())
    }

    pub async fn access_token_delete(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM identity_oauth_access_tokens WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Forgets request tokens past their expiry; access tokens past theirs stay listed
    /// (as Keystone's) until their user deletes them, but no longer authenticate.
    pub async fn request_token_prune(&self, now: &str) -> StoreResult<u64> {
        let r =
            sqlx::query("DELETE FROM identity_oauth_request_tokens WHERE expires_at IS NOT NULL AND expires_at < $1")
                .bind(now)
                .execute(&self.db.pool)
                .await?;
        Ok(r.rows_affected())
    }
}
