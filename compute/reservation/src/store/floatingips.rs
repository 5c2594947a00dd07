//! Reservable floating IPs: addresses of an external network, outside its allocation
//! pools, that only leases hand out.

use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct FloatingIp {
    pub id: String,
    pub floating_network_id: String,
    pub floating_ip_address: String,
    pub subnet_id: String,
    pub reservable: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn floatingip(r: &AnyRow) -> FloatingIp {
    FloatingIp {
        id: r.text("id"),
        floating_network_id: r.text("floating_network_id"),
        floating_ip_address: r.text("floating_ip_address"),
        subnet_id: r.text("subnet_id"),
        reservable: r.flag("reservable"),
        created_at: r.text("created_at"),
        updated_at: r.opt_text("updated_at"),
    }
}

impl Store {
    /// Adds a reservable address; a duplicate is a unique violation.
    pub async fn floatingip_insert(&self, f: &FloatingIp) -> StoreResult<FloatingIp> {
        let row = sqlx::query(
            "INSERT INTO reservation_floatingips (id, floating_network_id, floating_ip_address, subnet_id, reservable, created_at)
             VALUES ($1, $2, $3, $4, 1, $5) RETURNING *",
        )
        .bind(&f.id)
        .bind(&f.floating_network_id)
        .bind(&f.floating_ip_address)
        .bind(&f.subnet_id)
        .bind(now_text())
        .fetch_one(&self.db.pool)
        .await?;
        Ok(floatingip(&row))
    }

    pub async fn floatingip_list(&self) -> StoreResult<Vec<FloatingIp>> {
        let rows = sqlx::query("SELECT * FROM reservation_floatingips ORDER BY created_at, id")
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(floatingip).collect())
    }

    /// The reservable addresses, in the caller's (locked) transaction.
    pub async fn floatingip_list_in(conn: &mut sqlx::AnyConnection) -> StoreResult<Vec<FloatingIp>> {
        let rows = sqlx::query("SELECT * FROM reservation_floatingips ORDER BY floating_ip_address, id")
            .fetch_all(conn)
            .await?;
        Ok(rows.iter().map(floatingip).collect())
    }

    pub async fn floatingip_get(&self, id: &str) -> StoreResult<Option<FloatingIp>> {
        let row = sqlx::query("SELECT * FROM reservation_floatingips WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?;
        Ok(row.as_ref().map(floatingip))
    }

    /// Deletes an address no allocation ending after `now` names; false otherwise.
    pub async fn floatingip_delete(&self, id: &str, now: &str) -> StoreResult<bool> {
        self.delete_unless_allocated("reservation_floatingips", "floatingip_id", id.to_string(), now).await
    }
}
