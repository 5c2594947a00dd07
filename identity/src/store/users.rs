use super::{json_object, Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub default_project_id: Option<String>,
    pub description: String,
    pub extra: Map<String, Value>,
    pub failed_attempts: i64,
    pub locked_until: Option<String>,
    pub password_changed_at: Option<String>,
}

impl User {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            domain_id: r.text("domain_id"),
            enabled: r.flag("enabled"),
            password_hash: r.opt_text("password_hash"),
            default_project_id: r.opt_text("default_project_id"),
            description: r.text("description"),
            extra: json_object(&r.text("extra")),
            failed_attempts: r.int("failed_attempts"),
            locked_until: r.opt_text("locked_until"),
            password_changed_at: r.opt_text("password_changed_at"),
        }
    }
}

impl Store {
    pub async fn user_create(&self, u: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_users (id, name, domain_id, enabled, password_hash, default_project_id, description,
                extra, password_changed_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(&u.domain_id)
        .bind(u.enabled as i64)
        .bind(&u.password_hash)
        .bind(&u.default_project_id)
        .bind(&u.description)
        .bind(Value::Object(u.extra.clone()).to_string())
        .bind(&u.password_changed_at)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn user_fetch(&self, id: &str) -> StoreResult<Option<User>> {
        let row =
            sqlx::query("SELECT * FROM identity_users WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(User::from_row))
    }

    pub async fn user_fetch_by_name(&self, domain_id: &str, name: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM identity_users WHERE domain_id = $1 AND name = $2")
            .bind(domain_id)
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(User::from_row))
    }

    pub async fn user_list(&self, name: Option<&str>, domain_id: Option<&str>) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(
            "SELECT * FROM identity_users WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR domain_id = $2) ORDER BY name, id",
        )
        .bind(name)
        .bind(domain_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(User::from_row).collect())
    }

    pub async fn user_update(&self, u: &User) -> StoreResult<()> {
        sqlx::query(
            "UPDATE identity_users SET name = $2, enabled = $3, password_hash = $4, default_project_id = $5,
                description = $6, extra = $7, password_changed_at = $8, failed_attempts = $9, locked_until = $10
             WHERE id = $1",
        )
        .bind(&u.id)
        .bind(&u.name)
        .bind(u.enabled as i64)
        .bind(&u.password_hash)
        .bind(&u.default_project_id)
        .bind(&u.description)
        .bind(Value::Object(u.extra.clone()).to_string())
        .bind(&u.password_changed_at)
        .bind(u.failed_attempts)
        .bind(&u.locked_until)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Records a failed login; returns the number of consecutive failures.
    pub async fn user_record_failure(&self, id: &str, lock_at: i64, locked_until: &str) -> StoreResult<i64> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("UPDATE identity_users SET failed_attempts = failed_attempts + 1 WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT failed_attempts FROM identity_users WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let n = row.int("failed_attempts");
        if lock_at > 0 && n >= lock_at {
            sqlx::query("UPDATE identity_users SET locked_until = $2, failed_attempts = 0 WHERE id = $1")
                .bind(id)
                .bind(locked_until)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    pub async fn user_clear_failures(&self, id: &str) -> StoreResult<()> {
        sqlx::query("UPDATE identity_users SET failed_attempts = 0, locked_until = NULL WHERE id = $1 AND (failed_attempts <> 0 OR locked_until IS NOT NULL)")
            .bind(id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn user_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_assignments WHERE actor_type = 'user' AND actor_id = $1",
            "DELETE FROM identity_app_creds WHERE user_id = $1",
            "DELETE FROM identity_oauth_access_tokens WHERE authorizing_user_id = $1",
            "DELETE FROM identity_oauth_request_tokens WHERE authorizing_user_id = $1",
            "DELETE FROM identity_group_members WHERE user_id = $1",
            "DELETE FROM identity_users WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}
