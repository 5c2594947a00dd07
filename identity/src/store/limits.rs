use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct RegisteredLimit {
    pub id: String,
    pub service_id: String,
    pub region_id: Option<String>,
    pub resource_name: String,
    pub default_limit: i64,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Limit {
    pub id: String,
    pub project_id: String,
    pub service_id: String,
    pub region_id: Option<String>,
    pub resource_name: String,
    pub resource_limit: i64,
    pub description: String,
}

fn region(r: &AnyRow) -> Option<String> {
    Some(r.text("region_id")).filter(|s| !s.is_empty())
}

impl RegisteredLimit {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            service_id: r.text("service_id"),
            region_id: region(r),
            resource_name: r.text("resource_name"),
            default_limit: r.int("default_limit"),
            description: r.text("description"),
        }
    }
}

impl Limit {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            project_id: r.text("project_id"),
            service_id: r.text("service_id"),
            region_id: region(r),
            resource_name: r.text("resource_name"),
            resource_limit: r.int("resource_limit"),
            description: r.text("description"),
        }
    }
}

impl Store {
    /// Creates several registered limits at once: all or none.
    pub async fn registered_limit_create_all(&self, items: &[RegisteredLimit]) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for l in items {
            sqlx::query(
                "INSERT INTO identity_registered_limits (id, service_id, region_id, resource_name, default_limit, description)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&l.id)
            .bind(&l.service_id)
            .bind(l.region_id.clone().unwrap_or_default())
            .bind(&l.resource_name)
            .bind(l.default_limit)
            .bind(&l.description)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    pub async fn registered_limit_fetch(&self, id: &str) -> StoreResult<Option<RegisteredLimit>> {
        let row = sqlx::query("SELECT * FROM identity_registered_limits WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(RegisteredLimit::from_row))
    }

    pub async fn registered_limit_list(&self) -> StoreResult<Vec<RegisteredLimit>> {
        let rows = sqlx::query("SELECT * FROM identity_registered_limits ORDER BY service_id, resource_name")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(RegisteredLimit::from_row).collect())
    }

    pub async fn registered_limit_update(&self, l: &RegisteredLimit) -> StoreResult<()> {
        sqlx::query(
            "UPDATE identity_registered_limits SET service_id = $2, region_id = $3, resource_name = $4,
                default_limit = $5, description = $6 WHERE id = $1",
        )
        .bind(&l.id)
        .bind(&l.service_id)
        .bind(l.region_id.clone().unwrap_or_default())
        .bind(&l.resource_name)
        .bind(l.default_limit)
        .bind(&l.description)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn registered_limit_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM identity_registered_limits WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }

    pub async fn limit_create_all(&self, items: &[Limit]) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for l in items {
            sqlx::query(
                "INSERT INTO identity_limits (id, project_id, service_id, region_id, resource_name, resource_limit, description)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&l.id)
            .bind(&l.project_id)
            .bind(&l.service_id)
            .bind(l.region_id.clone().unwrap_or_default())
            .bind(&l.resource_name)
            .bind(l.resource_limit)
            .bind(&l.description)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    pub async fn limit_fetch(&self, id: &str) -> StoreResult<Option<Limit>> {
        let row =
            sqlx::query("SELECT * FROM identity_limits WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Limit::from_row))
    }

    pub async fn limit_list(&self, project_id: Option<&str>) -> StoreResult<Vec<Limit>> {
        let rows = sqlx::query(
            "SELECT * FROM identity_limits WHERE ($1 IS NULL OR project_id = $1) ORDER BY project_id, service_id, resource_name",
        )
        .bind(project_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(Limit::from_row).collect())
    }

    pub async fn limit_update(&self, l: &Limit) -> StoreResult<()> {
        sqlx::query("UPDATE identity_limits SET resource_limit = $2, description = $3 WHERE id = $1")
            .bind(&l.id)
            .bind(l.resource_limit)
            .bind(&l.description)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn limit_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM identity_limits WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }
}
