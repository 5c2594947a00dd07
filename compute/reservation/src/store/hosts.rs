//! Reservable hosts: compute's hypervisors with the extra capabilities an admin gave
//! them. Ids are integers, as Blazar's (its clients tell ids from names by that).

use super::{Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, Col, JsonSelect, RowExt};

/// Every host, read as one JSON document (a thousand hosts are one row to decode).
const HOSTS: JsonSelect = JsonSelect {
    columns: &[
        Col::Text("id"),
        Col::Text("hypervisor_hostname"),
        Col::Text("hypervisor_type"),
        Col::Text("hypervisor_version"),
        Col::Text("vcpus"),
        Col::Text("memory_mb"),
        Col::Text("local_gb"),
        Col::Text("cpu_info"),
        Col::Text("service_name"),
        Col::Json("extra"),
        Col::Flag("reservable"),
        Col::Text("created_at"),
        Col::Text("updated_at"),
    ],
    from: "reservation_hosts",
    order: "id",
};

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct Host {
    pub id: i64,
    pub hypervisor_hostname: String,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    pub cpu_info: String,
    pub service_name: String,
    /// Extra capabilities (`node_type`, ...), as the admin set them.
    pub extra: Map<String, Value>,
    pub reservable: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Host {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        let extra = serde_json::from_str(&r.text("extra")).map_err(|e| sqlx::Error::Decode(e.into()))?;
        Ok(Self {
            id: r.int("id"),
            hypervisor_hostname: r.text("hypervisor_hostname"),
            hypervisor_type: r.text("hypervisor_type"),
            hypervisor_version: r.int("hypervisor_version"),
            vcpus: r.int("vcpus"),
            memory_mb: r.int("memory_mb"),
            local_gb: r.int("local_gb"),
            cpu_info: r.text("cpu_info"),
            service_name: r.text("service_name"),
            extra,
            reservable: r.flag("reservable"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        })
    }

    /// What queries may name: the hypervisor's fields and the extra capabilities.
    pub fn properties(&self) -> std::collections::HashMap<String, Value> {
        let mut p: std::collections::HashMap<String, Value> =
            self.extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in [
            ("hypervisor_hostname", Value::from(self.hypervisor_hostname.clone())),
            ("hypervisor_type", Value::from(self.hypervisor_type.clone())),
            ("hypervisor_version", Value::from(self.hypervisor_version)),
            ("vcpus", Value::from(self.vcpus)),
            ("memory_mb", Value::from(self.memory_mb)),
            ("local_gb", Value::from(self.local_gb)),
        ] {
            p.entry(k.to_string()).or_insert(v);
        }
        p
    }
}

impl Store {
    /// Adds a host under the next integer id (under the allocation lock, so ids never
    /// collide). The host's row; a duplicate name is a unique violation.
    pub async fn host_insert(&self, h: &Host) -> StoreResult<Host> {
        let mut tx = self.db.pool.begin().await?;
        Self::lock_in(&mut tx).await?;
        let next: i64 = {
            let row = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM reservation_hosts")
                .fetch_one(&mut *tx)
                .await?;
            row.int("next")
        };
        let row = sqlx::query(
            "INSERT INTO reservation_hosts (id, hypervisor_hostname, hypervisor_type, hypervisor_version, vcpus, memory_mb,
             local_gb, cpu_info, service_name, extra, reservable, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
        )
        .bind(next)
        .bind(&h.hypervisor_hostname)
        .bind(&h.hypervisor_type)
        .bind(h.hypervisor_version)
        .bind(h.vcpus)
        .bind(h.memory_mb)
        .bind(h.local_gb)
        .bind(&h.cpu_info)
        .bind(&h.service_name)
        .bind(Value::Object(h.extra.clone()).to_string())
        .bind(h.reservable as i64)
        .bind(now_text())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Host::from_row(&row)
    }

    pub async fn host_list(&self) -> StoreResult<Vec<Host>> {
        self.db.json_rows(&HOSTS, &[]).await
    }

    /// Which of `ids` are still hosts, in the caller's (locked) transaction: hosts are
    /// read before it, and one may have gone meanwhile.
    pub async fn hosts_present_in(
        conn: &mut sqlx::AnyConnection,
        ids: &[i64],
    ) -> StoreResult<std::collections::HashSet<i64>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT id FROM reservation_hosts WHERE id IN ({})",
            stratus_common::db::placeholders(ids.len(), 1, 1)
        );
        let mut q = sqlx::query(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        Ok(q.fetch_all(conn).await?.iter().map(|r| r.int("id")).collect())
    }

    pub async fn host_get(&self, id: i64) -> StoreResult<Option<Host>> {
        let row = sqlx::query("SELECT * FROM reservation_hosts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?;
        row.as_ref().map(Host::from_row).transpose()
    }

    pub async fn host_set_extra(&self, id: i64, extra: &Map<String, Value>) -> StoreResult<Option<Host>> {
        let row = sqlx::query("UPDATE reservation_hosts SET extra = $1, updated_at = $2 WHERE id = $3 RETURNING *")
            .bind(Value::Object(extra.clone()).to_string())
            .bind(now_text())
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await?;
        row.as_ref().map(Host::from_row).transpose()
    }

    /// Deletes a host no allocation ending after `now` names; false otherwise.
    pub async fn host_delete(&self, id: i64, now: &str) -> StoreResult<bool> {
        self.delete_unless_allocated("reservation_hosts", "host_id", id, now).await
    }
}
