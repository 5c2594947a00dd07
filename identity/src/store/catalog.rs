use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct Region {
    pub id: String,
    pub description: String,
    pub parent_region_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub service_type: String,
    pub name: String,
    pub description: String,
    pub enabled: bool,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub service_id: String,
    pub interface: String,
    pub url: String,
    pub region_id: Option<String>,
    pub enabled: bool,
}

impl Region {
    fn from_row(r: &AnyRow) -> Self {
        Self { id: r.text("id"), description: r.text("description"), parent_region_id: r.opt_text("parent_region_id") }
    }
}

impl Service {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            service_type: r.text("type"),
            name: r.text("name"),
            description: r.text("description"),
            enabled: r.flag("enabled"),
        }
    }
}

impl Endpoint {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            service_id: r.text("service_id"),
            interface: r.text("interface"),
            url: r.text("url"),
            region_id: r.opt_text("region_id"),
            enabled: r.flag("enabled"),
        }
    }
}

impl Store {
    pub async fn region_create(&self, r: &Region) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_regions (id, description, parent_region_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&r.id)
        .bind(&r.description)
        .bind(&r.parent_region_id)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn region_fetch(&self, id: &str) -> StoreResult<Option<Region>> {
        let row =
            sqlx::query("SELECT * FROM identity_regions WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Region::from_row))
    }

    pub async fn region_list(&self) -> StoreResult<Vec<Region>> {
        let rows = sqlx::query("SELECT * FROM identity_regions ORDER BY id").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Region::from_row).collect())
    }

    pub async fn region_update(&self, r: &Region) -> StoreResult<()> {
        sqlx::query("UPDATE identity_regions SET description = $2, parent_region_id = $3 WHERE id = $1")
            .bind(&r.id)
            .bind(&r.description)
            .bind(&r.parent_region_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn region_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM identity_regions WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }

    pub async fn region_in_use(&self, id: &str) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM identity_endpoints WHERE region_id = $1)
                  + (SELECT COUNT(*) FROM identity_regions WHERE parent_region_id = $1) AS n",
        )
        .bind(id)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(row.int("n") > 0)
    }

    pub async fn service_create(&self, s: &Service) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_services (id, type, name, description, enabled, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.id)
        .bind(&s.service_type)
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.enabled as i64)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn service_fetch(&self, id: &str) -> StoreResult<Option<Service>> {
        let row =
            sqlx::query("SELECT * FROM identity_services WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Service::from_row))
    }

    pub async fn service_list(&self) -> StoreResult<Vec<Service>> {
        let rows =
            sqlx::query("SELECT * FROM identity_services ORDER BY type, name, id").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Service::from_row).collect())
    }

    pub async fn service_update(&self, s: &Service) -> StoreResult<()> {
        sqlx::query("UPDATE identity_services SET type = $2, name = $3, description = $4, enabled = $5 WHERE id = $1")
            .bind(&s.id)
            .bind(&s.service_type)
            .bind(&s.name)
            .bind(&s.description)
            .bind(s.enabled as i64)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn service_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_endpoints WHERE service_id = $1",
            "DELETE FROM identity_limits WHERE service_id = $1",
            "DELETE FROM identity_registered_limits WHERE service_id = $1",
            "DELETE FROM identity_services WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn endpoint_create(&self, e: &Endpoint) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_endpoints (id, service_id, interface, url, region_id, enabled, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.id)
        .bind(&e.service_id)
        .bind(&e.interface)
        .bind(&e.url)
        .bind(&e.region_id)
        .bind(e.enabled as i64)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn endpoint_fetch(&self, id: &str) -> StoreResult<Option<Endpoint>> {
        let row = sqlx::query("SELECT * FROM identity_endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Endpoint::from_row))
    }

    pub async fn endpoint_list(&self) -> StoreResult<Vec<Endpoint>> {
        let rows = sqlx::query("SELECT * FROM identity_endpoints ORDER BY service_id, interface, id")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(Endpoint::from_row).collect())
    }

    pub async fn endpoint_update(&self, e: &Endpoint) -> StoreResult<()> {
        sqlx::query(
            "UPDATE identity_endpoints SET service_id = $2, interface = $3, url = $4, region_id = $5, enabled = $6 WHERE id = $1",
        )
        .bind(&e.id)
        .bind(&e.service_id)
        .bind(&e.interface)
        .bind(&e.url)
        .bind(&e.region_id)
        .bind(e.enabled as i64)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn endpoint_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM identity_endpoints WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }
}
