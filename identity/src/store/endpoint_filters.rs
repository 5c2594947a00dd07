//! Endpoint filters (Keystone's OS-EP-FILTER): endpoint groups, and which endpoints
//! and endpoint groups each project's catalog is limited to.

use super::{Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Which endpoints it holds: `interface`, `service_id` and `region_id`, each
    /// matched exactly when given.
    pub filters: Map<String, Value>,
}

impl EndpointGroup {
    fn from_row(r: &AnyRow) -> Self {
        let filters = serde_json::from_str(&r.text("filters")).unwrap_or_default();
        Self { id: r.text("id"), name: r.text("name"), description: r.text("description"), filters }
    }
}

/// Which project a pair names, and what (an endpoint or an endpoint group).
pub type Pair = (String, String);

impl Store {
    pub async fn endpoint_group_create(&self, g: &EndpointGroup) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_endpoint_groups (id, name, description, filters, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.description)
        .bind(Value::Object(g.filters.clone()).to_string())
        .bind(now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn endpoint_group_fetch(&self, id: &str) -> StoreResult<Option<EndpointGroup>> {
        let row = sqlx::query("SELECT * FROM identity_endpoint_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(EndpointGroup::from_row))
    }

    /// Every endpoint group, oldest first.
    pub async fn endpoint_group_list(&self) -> StoreResult<Vec<EndpointGroup>> {
        let rows = sqlx::query("SELECT * FROM identity_endpoint_groups ORDER BY created_at, id")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(EndpointGroup::from_row).collect())
    }

    /// Saves a changed group; false when it is gone.
    pub async fn endpoint_group_save(&self, g: &EndpointGroup) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE identity_endpoint_groups SET name = $2, description = $3, filters = $4 WHERE id = $1")
                .bind(&g.id)
                .bind(&g.name)
                .bind(&g.description)
                .bind(Value::Object(g.filters.clone()).to_string())
                .execute(&self.db.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a group and the projects' links to it, in one transaction.
    pub async fn endpoint_group_delete(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM identity_project_endpoint_groups WHERE endpoint_group_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM identity_endpoint_groups WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Links a project to an endpoint (`endpoint_group`: to an endpoint group); linking
    /// twice is one link.
    pub async fn project_filter_add(&self, project: &str, target: &str, endpoint_group: bool) -> StoreResult<()> {
        let sql = if endpoint_group {
            "INSERT INTO identity_project_endpoint_groups (project_id, endpoint_group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "INSERT INTO identity_project_endpoints (project_id, endpoint_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        };
        sqlx::query(sql).bind(project).bind(target).execute(&self.db.pool).await?;
        Ok(())
    }

    /// Removes a link; false when there was none.
    pub async fn project_filter_remove(&self, project: &str, target: &str, endpoint_group: bool) -> StoreResult<bool> {
        let sql = if endpoint_group {
            "DELETE FROM identity_project_endpoint_groups WHERE project_id = $1 AND endpoint_group_id = $2"
        } else {
            "DELETE FROM identity_project_endpoints WHERE project_id = $1 AND endpoint_id = $2"
        };
        Ok(sqlx::query(sql).bind(project).bind(target).execute(&self.db.pool).await?.rows_affected() == 1)
    }

    /// Every link of a project to an endpoint (`endpoint_group`: to a group).
    pub async fn project_filter_pairs(&self, endpoint_group: bool) -> StoreResult<Vec<Pair>> {
        let sql = if endpoint_group {
            "SELECT project_id, endpoint_group_id FROM identity_project_endpoint_groups ORDER BY project_id, endpoint_group_id"
        } else {
            "SELECT project_id, endpoint_id FROM identity_project_endpoints ORDER BY project_id, endpoint_id"
        };
        sqlx::query_as(sql).fetch_all(&self.db.pool).await
    }

    /// Drops every link of a project (deleted) or of an endpoint (deleted).
    pub async fn project_filters_forget(&self, project: Option<&str>, endpoint: Option<&str>) -> StoreResult<()> {
        if let Some(p) = project {
            sqlx::query("DELETE FROM identity_project_endpoints WHERE project_id = $1")
                .bind(p)
                .execute(&self.db.pool)
                .await?;
            sqlx::query("DELETE FROM identity_project_endpoint_groups WHERE project_id = $1")
                .bind(p)
                .execute(&self.db.pool)
                .await?;
        }
        if let Some(e) = endpoint {
            sqlx::query("DELETE FROM identity_project_endpoints WHERE endpoint_id = $1")
                .bind(e)
                .execute(&self.db.pool)
                .await?;
        }
        Ok(())
    }
}
