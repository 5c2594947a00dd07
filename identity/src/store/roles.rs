use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// `None` for a global role.
    pub domain_id: Option<String>,
    pub description: String,
}

impl Role {
    fn from_row(r: &AnyRow) -> Self {
        let d = r.text("domain_id");
        Self {
            id: r.text("id"),
            name: r.text("name"),
            domain_id: if d.is_empty() { None } else { Some(d) },
            description: r.text("description"),
        }
    }
}

impl Store {
    pub async fn role_create(&self, role: &Role) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_roles (id, name, domain_id, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&role.id)
        .bind(&role.name)
        .bind(role.domain_id.clone().unwrap_or_default())
        .bind(&role.description)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn role_fetch(&self, id: &str) -> StoreResult<Option<Role>> {
        let row =
            sqlx::query("SELECT * FROM identity_roles WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Role::from_row))
    }

    pub async fn role_fetch_global_by_name(&self, name: &str) -> StoreResult<Option<Role>> {
        let row = sqlx::query("SELECT * FROM identity_roles WHERE domain_id = '' AND name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Role::from_row))
    }

    pub async fn role_list(&self) -> StoreResult<Vec<Role>> {
        let rows = sqlx::query("SELECT * FROM identity_roles ORDER BY name, id").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Role::from_row).collect())
    }

    pub async fn role_update(&self, role: &Role) -> StoreResult<()> {
        sqlx::query("UPDATE identity_roles SET name = $2, description = $3 WHERE id = $1")
            .bind(&role.id)
            .bind(&role.name)
            .bind(&role.description)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn role_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_assignments WHERE role_id = $1",
            "DELETE FROM identity_implied_roles WHERE prior_role_id = $1 OR implied_role_id = $1",
            "DELETE FROM identity_roles WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn implied_role_add(&self, prior: &str, implied: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(prior)
        .bind(implied)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn implied_role_remove(&self, prior: &str, implied: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM identity_implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2")
            .bind(prior)
            .bind(implied)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every (prior, implied) rule.
    pub async fn implied_role_rules(&self) -> StoreResult<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT prior_role_id, implied_role_id FROM identity_implied_roles ORDER BY prior_role_id")
                .fetch_all(&self.db.pool)
                .await?;
        Ok(rows.iter().map(|r| (r.text("prior_role_id"), r.text("implied_role_id"))).collect())
    }
}
