use super::{json_object, Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{Col, JsonSelect, RowExt};

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub parent_id: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub extra: Map<String, Value>,
    /// A domain seen through the projects API (Keystone's projects acting as
    /// domains): never stored as a project, made by [`Project::acting_domain`].
    #[serde(default)]
    pub is_domain: bool,
}

impl Project {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            domain_id: r.text("domain_id"),
            parent_id: r.opt_text("parent_id"),
            description: r.text("description"),
            enabled: r.flag("enabled"),
            tags: serde_json::from_str(&r.text("tags")).unwrap_or_default(),
            extra: json_object(&r.text("extra")),
            is_domain: false,
        }
    }

    /// A domain as the projects API shows it: no domain and no parent of its own.
    pub fn acting_domain(d: &super::Domain) -> Self {
        Self {
            id: d.id.clone(),
            name: d.name.clone(),
            domain_id: String::new(),
            parent_id: None,
            description: d.description.clone(),
            enabled: d.enabled,
            tags: Vec::new(),
            extra: Map::new(),
            is_domain: true,
        }
    }
}

impl Store {
    pub async fn project_create(&self, p: &Project) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_projects (id, name, domain_id, parent_id, description, enabled, tags, extra, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.domain_id)
        .bind(&p.parent_id)
        .bind(&p.description)
        .bind(p.enabled as i64)
        .bind(serde_json::to_string(&p.tags).unwrap())
        .bind(Value::Object(p.extra.clone()).to_string())
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn project_fetch(&self, id: &str) -> StoreResult<Option<Project>> {
        let row =
            sqlx::query("SELECT * FROM identity_projects WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Project::from_row))
    }

    pub async fn project_fetch_by_name(&self, domain_id: &str, name: &str) -> StoreResult<Option<Project>> {
        let row = sqlx::query("SELECT * FROM identity_projects WHERE domain_id = $1 AND name = $2")
            .bind(domain_id)
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Project::from_row))
    }

    /// Projects by name and domain, by name then id: one JSON row from the database,
    /// straight into typed projects (the listing is read often, and large).
    pub async fn project_list(&self, name: Option<&str>, domain_id: Option<&str>) -> StoreResult<Vec<Project>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: &[
                Col::Text("id"),
                Col::Text("name"),
                Col::Text("domain_id"),
                Col::Text("parent_id"),
                Col::Text("description"),
                Col::Flag("enabled"),
                Col::Json("tags"),
                Col::Json("extra"),
            ],
            from: "identity_projects WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR domain_id = $2)",
            order: "name, id",
        };
        self.db.json_rows(&SELECT, &[name, domain_id]).await
    }

    pub async fn project_list_by_ids(&self, ids: &[String]) -> StoreResult<Vec<Project>> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = self.project_fetch(id).await? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn project_count_children(&self, id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM identity_projects WHERE parent_id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await?;
        Ok(row.int("n"))
    }

    pub async fn project_update(&self, p: &Project) -> StoreResult<()> {
        sqlx::query(
            "UPDATE identity_projects SET name = $2, description = $3, enabled = $4, tags = $5, extra = $6 WHERE id = $1",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(&p.description)
        .bind(p.enabled as i64)
        .bind(serde_json::to_string(&p.tags).unwrap())
        .bind(Value::Object(p.extra.clone()).to_string())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Deletes a project with its role assignments, limits and application credentials.
    pub async fn project_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_assignments WHERE target_type = 'project' AND target_id = $1",
            "DELETE FROM identity_limits WHERE project_id = $1",
            "DELETE FROM identity_app_creds WHERE project_id = $1",
            "UPDATE identity_users SET default_project_id = NULL WHERE default_project_id = $1",
            "DELETE FROM identity_projects WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }
}
