use super::{new_id, Store, StoreResult};
use stratus_common::auth::Revocation;
use stratus_common::db::RowExt;

impl Store {
    pub async fn revocation_create(&self, r: &Revocation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_revocations (id, audit_id, user_id, project_id, domain_id, app_cred_id, role_id,
                consumer_id, access_token_id, issued_before, revoked_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(new_id())
        .bind(&r.audit_id)
        .bind(&r.user_id)
        .bind(&r.project_id)
        .bind(&r.domain_id)
        .bind(&r.app_cred_id)
        .bind(&r.role_id)
        .bind(&r.consumer_id)
        .bind(&r.access_token_id)
        .bind(&r.issued_before)
        .bind(&r.revoked_at)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Revocations that can still match a live token: revoked after `since`.
    pub async fn revocation_list_since(&self, since: &str) -> StoreResult<Vec<Revocation>> {
        let rows = sqlx::query("SELECT * FROM identity_revocations WHERE revoked_at > $1 ORDER BY revoked_at")
            .bind(since)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Revocation {
                audit_id: r.opt_text("audit_id"),
                user_id: r.opt_text("user_id"),
                project_id: r.opt_text("project_id"),
                domain_id: r.opt_text("domain_id"),
                app_cred_id: r.opt_text("app_cred_id"),
                role_id: r.opt_text("role_id"),
                consumer_id: r.opt_text("consumer_id"),
                access_token_id: r.opt_text("access_token_id"),
                issued_before: r.text("issued_before"),
                revoked_at: r.text("revoked_at"),
            })
            .collect())
    }

    /// Forgets revocations no live token can match any more.
    pub async fn revocation_prune(&self, before: &str) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM identity_revocations WHERE revoked_at < $1")
            .bind(before)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
