use super::{json_object, Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub extra: Map<String, Value>,
}

impl Domain {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            description: r.text("description"),
            enabled: r.flag("enabled"),
            extra: json_object(&r.text("extra")),
        }
    }
}

impl Store {
    pub async fn domain_create(&self, d: &Domain) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_domains (id, name, description, enabled, extra, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&d.id)
        .bind(&d.name)
        .bind(&d.description)
        .bind(d.enabled as i64)
        .bind(Value::Object(d.extra.clone()).to_string())
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn domain_fetch(&self, id: &str) -> StoreResult<Option<Domain>> {
        let row =
            sqlx::query("SELECT * FROM identity_domains WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Domain::from_row))
    }

    pub async fn domain_fetch_by_name(&self, name: &str) -> StoreResult<Option<Domain>> {
        let row = sqlx::query("SELECT * FROM identity_domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Domain::from_row))
    }

    pub async fn domain_list(&self) -> StoreResult<Vec<Domain>> {
        let rows = sqlx::query("SELECT * FROM identity_domains ORDER BY name").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Domain::from_row).collect())
    }

    pub async fn domain_update(&self, d: &Domain) -> StoreResult<()> {
        sqlx::query("UPDATE identity_domains SET name = $2, description = $3, enabled = $4, extra = $5 WHERE id = $1")
            .bind(&d.id)
            .bind(&d.name)
            .bind(&d.description)
            .bind(d.enabled as i64)
            .bind(Value::Object(d.extra.clone()).to_string())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Deletes a domain and everything that lives in it, in one transaction.
    pub async fn domain_delete_cascade(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_assignments WHERE actor_type = 'user' AND actor_id IN (SELECT id FROM identity_users WHERE domain_id = $1)",
            "DELETE FROM identity_assignments WHERE actor_type = 'group' AND actor_id IN (SELECT id FROM identity_groups WHERE domain_id = $1)",
            "DELETE FROM identity_assignments WHERE target_type = 'project' AND target_id IN (SELECT id FROM identity_projects WHERE domain_id = $1)",
            "DELETE FROM identity_assignments WHERE target_type = 'domain' AND target_id = $1",
            "DELETE FROM identity_app_creds WHERE user_id IN (SELECT id FROM identity_users WHERE domain_id = $1)",
            "DELETE FROM identity_group_members WHERE group_id IN (SELECT id FROM identity_groups WHERE domain_id = $1)",
            "DELETE FROM identity_group_members WHERE user_id IN (SELECT id FROM identity_users WHERE domain_id = $1)",
            "DELETE FROM identity_limits WHERE project_id IN (SELECT id FROM identity_projects WHERE domain_id = $1)",
            "DELETE FROM identity_users WHERE domain_id = $1",
            "DELETE FROM identity_groups WHERE domain_id = $1",
            "DELETE FROM identity_projects WHERE domain_id = $1",
            "DELETE FROM identity_roles WHERE domain_id = $1",
            "DELETE FROM identity_domains WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}
