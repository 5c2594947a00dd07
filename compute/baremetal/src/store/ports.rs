//! Ports: the node's network interfaces, by MAC address (unique across nodes).

use super::{parse_object, Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub id: String,
    /// Lower-case, colon-separated.
    pub address: String,
    pub node_id: String,
    pub extra: Map<String, Value>,
    pub pxe_enabled: bool,
    pub local_link_connection: Map<String, Value>,
    pub physical_network: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Port {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.text("id"),
            address: r.text("address"),
            node_id: r.text("node_id"),
            extra: parse_object(&r.text("extra"))?,
            pxe_enabled: r.flag("pxe_enabled"),
            local_link_connection: parse_object(&r.text("local_link_connection"))?,
            physical_network: r.opt_text("physical_network"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        })
    }
}

const COLUMNS: &str =
    "id, address, node_id, extra, pxe_enabled, local_link_connection, physical_network, created_at, updated_at";

impl Store {
    /// Adds a port; a MAC already taken is a unique violation.
    pub async fn port_insert(&self, p: &Port) -> StoreResult<()> {
        sqlx::query(&format!("INSERT INTO baremetal_ports ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(&p.id)
            .bind(&p.address)
            .bind(&p.node_id)
            .bind(Value::Object(p.extra.clone()).to_string())
            .bind(p.pxe_enabled as i64)
            .bind(Value::Object(p.local_link_connection.clone()).to_string())
            .bind(&p.physical_network)
            .bind(&p.created_at)
            .bind(&p.updated_at)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// The port with id `key`, or else the one with MAC address `key`.
    pub async fn port_get(&self, key: &str) -> StoreResult<Option<Port>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM baremetal_ports WHERE id = $1 OR address = $2"))
            .bind(key)
            .bind(key.to_ascii_lowercase())
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(Port::from_row).transpose()
    }

    /// Every port, or the ports of one node.
    pub async fn port_list(&self, node_id: Option<&str>) -> StoreResult<Vec<Port>> {
        let rows = match node_id {
            Some(n) => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM baremetal_ports WHERE node_id = $1 ORDER BY id"))
                    .bind(n)
                    .fetch_all(&self.db.pool)
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {COLUMNS} FROM baremetal_ports ORDER BY id"))
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        rows.iter().map(Port::from_row).collect()
    }

    pub async fn port_update(&self, p: &mut Port) -> StoreResult<bool> {
        let now = now_text();
        let done = sqlx::query(
            "UPDATE baremetal_ports SET address = $1, node_id = $2, extra = $3, pxe_enabled = $4, \
             local_link_connection = $5, physical_network = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&p.address)
        .bind(&p.node_id)
        .bind(Value::Object(p.extra.clone()).to_string())
        .bind(p.pxe_enabled as i64)
        .bind(Value::Object(p.local_link_connection.clone()).to_string())
        .bind(&p.physical_network)
        .bind(&now)
        .bind(&p.id)
        .execute(&self.db.pool)
        .await?
        .rows_affected()
            == 1;
        if done {
            p.updated_at = Some(now);
        }
        Ok(done)
    }

    pub async fn port_delete(&self, id: &str) -> StoreResult<bool> {
        Ok(sqlx::query("DELETE FROM baremetal_ports WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await?
            .rows_affected()
            == 1)
    }
}
