use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::auth::NamedRef;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct AppCred {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub project_id: String,
    pub secret_hash: String,
    pub description: String,
    pub expires_at: Option<String>,
    pub unrestricted: bool,
    pub roles: Vec<NamedRef>,
}

impl AppCred {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            user_id: r.text("user_id"),
            project_id: r.text("project_id"),
            secret_hash: r.text("secret_hash"),
            description: r.text("description"),
            expires_at: r.opt_text("expires_at"),
            unrestricted: r.flag("unrestricted"),
            roles: serde_json::from_str(&r.text("roles")).unwrap_or_default(),
        }
    }
}

impl Store {
    pub async fn app_cred_create(&self, c: &AppCred) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_app_creds (id, name, user_id, project_id, secret_hash, description, expires_at,
                unrestricted, roles, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&c.id)
        .bind(&c.name)
        .bind(&c.user_id)
        .bind(&c.project_id)
        .bind(&c.secret_hash)
        .bind(&c.description)
        .bind(&c.expires_at)
        .bind(c.unrestricted as i64)
        .bind(serde_json::to_string(&c.roles).unwrap())
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn app_cred_fetch(&self, id: &str) -> StoreResult<Option<AppCred>> {
        let row = sqlx::query("SELECT * FROM identity_app_creds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(AppCred::from_row))
    }

    pub async fn app_cred_fetch_by_name(&self, user_id: &str, name: &str) -> StoreResult<Option<AppCred>> {
        let row = sqlx::query("SELECT * FROM identity_app_creds WHERE user_id = $1 AND name = $2")
            .bind(user_id)
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(AppCred::from_row))
    }

    pub async fn app_cred_list(&self, user_id: &str) -> StoreResult<Vec<AppCred>> {
        let rows = sqlx::query("SELECT * FROM identity_app_creds WHERE user_id = $1 ORDER BY name")
            .bind(user_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(AppCred::from_row).collect())
    }

    pub async fn app_cred_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM identity_app_creds WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }
}
