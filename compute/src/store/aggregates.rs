//! Host aggregates: named groups of hosts with metadata; one with an availability zone
//! puts its hosts in that zone (each host's `aggregate_zone`, kept in the transaction
//! that changes a membership or a zone, so the scheduler reads it with the host).

use super::{Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{is_unique_violation, now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub id: i64,
    pub uuid: String,
    pub name: String,
    pub availability_zone: Option<String>,
    pub metadata: Map<String, Value>,
    pub hosts: Vec<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

impl Aggregate {
    fn from_row(r: &AnyRow, hosts: Vec<String>) -> Self {
        Self {
            id: r.int("id"),
            uuid: r.text("uuid"),
            name: r.text("name"),
            availability_zone: r.opt_text("availability_zone"),
            metadata: serde_json::from_str(&r.text("metadata")).unwrap_or_default(),
            hosts,
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        }
    }
}

/// What a change of an aggregate came to.
#[derive(Debug, PartialEq)]
pub enum AggregateChange {
    Done(Aggregate),
    /// No such aggregate.
    Gone,
    /// Another aggregate has the name.
    NameTaken,
    /// No such host (adding), or not a member (removing).
    NoHost,
    /// The host is a member already.
    AlreadyMember,
    /// A host would be in two availability zones: the other zone.
    ZoneConflict(String),
    /// It still has hosts (deleting).
    NotEmpty,
}

/// Sets `aggregate_zone` of the hosts `filter` selects (a SQL condition on `host`, its
/// parameter `$1`) to the zone of the first aggregate with one that each is in.
const SYNC_ZONES: &str = "UPDATE compute_hosts SET aggregate_zone = COALESCE((
        SELECT a.availability_zone FROM compute_aggregates a JOIN compute_aggregate_hosts m ON m.aggregate_id = a.id
        WHERE m.host = compute_hosts.host AND a.availability_zone IS NOT NULL ORDER BY a.id LIMIT 1), '')";

impl Store {
    pub async fn aggregate_list(&self) -> StoreResult<Vec<Aggregate>> {
        let rows = sqlx::query("SELECT * FROM compute_aggregates ORDER BY id").fetch_all(&self.db.reads).await?;
        let members = sqlx::query("SELECT aggregate_id, host FROM compute_aggregate_hosts ORDER BY aggregate_id, host")
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let id = r.int("id");
                let hosts = members.iter().filter(|m| m.int("aggregate_id") == id).map(|m| m.text("host")).collect();
                Aggregate::from_row(r, hosts)
            })
            .collect())
    }

    /// By its integer id or its UUID.
    pub async fn aggregate_get(&self, id: &str) -> StoreResult<Option<Aggregate>> {
        let mut conn = self.db.pool.acquire().await?;
        Self::aggregate_get_in(&mut conn, id).await
    }

    async fn aggregate_get_in(conn: &mut sqlx::AnyConnection, id: &str) -> StoreResult<Option<Aggregate>> {
        let num = id.parse::<i64>().unwrap_or(-1);
        let Some(r) = sqlx::query("SELECT * FROM compute_aggregates WHERE id = $1 OR uuid = $2")
            .bind(num)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let hosts = sqlx::query("SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = $1 ORDER BY host")
            .bind(r.int("id"))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|m| m.text("host"))
            .collect();
        Ok(Some(Aggregate::from_row(&r, hosts)))
    }

    /// A new aggregate (the next integer id); `NameTaken` when the name is. Two made at
    /// once may pick the same id: the second tries again with the next.
    pub async fn aggregate_create(&self, name: &str, zone: Option<&str>) -> StoreResult<AggregateChange> {
        let mut metadata = Map::new();
        if let Some(z) = zone {
            metadata.insert("availability_zone".into(), Value::String(z.to_string()));
        }
        let metadata = Value::Object(metadata).to_string();
        for _ in 0..5 {
            let mut tx = self.db.pool.begin().await?;
            let made = sqlx::query(
                "INSERT INTO compute_aggregates (id, uuid, name, availability_zone, metadata, created_at)
                 SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3, $4, $5 FROM compute_aggregates RETURNING id",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(name)
            .bind(zone)
            .bind(&metadata)
            .bind(now_text())
            .fetch_one(&mut *tx)
            .await;
            let id = match made {
                Ok(r) => r.int("id"),
                Err(e) if is_unique_violation(&e) => {
                    drop(tx);
                    let taken = sqlx::query("SELECT 1 FROM compute_aggregates WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.db.pool)
                        .await?;
                    if taken.is_some() {
                        return Ok(AggregateChange::NameTaken);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let a = Self::aggregate_get_in(&mut tx, &id.to_string()).await?;
            tx.commit().await?;
            return Ok(a.map_or(AggregateChange::Gone, AggregateChange::Done));
        }
        Err(sqlx::Error::Protocol("could not pick an aggregate id after 5 tries".into()))
    }

    /// Renames it, moves it to another zone (`Some(None)`: none), and sets (a string) or
    /// removes (null) metadata; the zone of its hosts follows, refused when a host would
    /// be in two zones.
    pub async fn aggregate_update(
        &self,
        id: &str,
        name: Option<&str>,
        zone: Option<Option<&str>>,
        metadata: &Map<String, Value>,
    ) -> StoreResult<AggregateChange> {
        let mut tx = self.db.pool.begin().await?;
        let Some(a) = Self::aggregate_get_in(&mut tx, id).await? else { return Ok(AggregateChange::Gone) };
        let zone = zone.map_or(a.availability_zone.clone(), |z| z.map(str::to_string));
        if let Some(z) = &zone {
            if let Some(other) = Self::other_zone(&mut tx, a.id, &a.hosts, z).await? {
                return Ok(AggregateChange::ZoneConflict(other));
            }
        }
        let mut meta = a.metadata.clone();
        for (k, v) in metadata {
            match v {
                Value::Null => meta.remove(k),
                v => meta.insert(k.clone(), v.clone()),
            };
        }
        match &zone {
            Some(z) => meta.insert("availability_zone".into(), Value::String(z.clone())),
            None => meta.remove("availability_zone"),
        };
        let saved = sqlx::query(
            "UPDATE compute_aggregates SET name = $1, availability_zone = $2, metadata = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(name.unwrap_or(&a.name))
        .bind(zone.as_deref())
        .bind(Value::Object(meta).to_string())
        .bind(now_text())
        .bind(a.id)
        .execute(&mut *tx)
        .await;
        match saved {
            Err(e) if is_unique_violation(&e) => return Ok(AggregateChange::NameTaken),
            other => other?,
        };
        sqlx::query(&format!(
            "{SYNC_ZONES} WHERE host IN (SELECT host FROM compute_aggregate_hosts WHERE aggregate_id = $1)"
        ))
        .bind(a.id)
        .execute(&mut *tx)
        .await?;
        let a = Self::aggregate_get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(a.map_or(AggregateChange::Gone, AggregateChange::Done))
    }

    /// The zone, other than `zone`, of another aggregate holding one of `hosts`.
    async fn other_zone(
        conn: &mut sqlx::AnyConnection,
        aggregate: i64,
        hosts: &[String],
        zone: &str,
    ) -> StoreResult<Option<String>> {
        for h in hosts {
            let r = sqlx::query(
                "SELECT a.availability_zone FROM compute_aggregates a JOIN compute_aggregate_hosts m ON m.aggregate_id = a.id
                 WHERE m.host = $1 AND a.id <> $2 AND a.availability_zone IS NOT NULL AND a.availability_zone <> $3 LIMIT 1",
            )
            .bind(h)
            .bind(aggregate)
            .bind(zone)
            .fetch_optional(&mut *conn)
            .await?;
            if let Some(r) = r {
                return Ok(r.opt_text("availability_zone"));
            }
        }
        Ok(None)
    }

    pub async fn aggregate_add_host(&self, id: &str, host: &str) -> StoreResult<AggregateChange> {
        let mut tx = self.db.pool.begin().await?;
        let Some(a) = Self::aggregate_get_in(&mut tx, id).await? else { return Ok(AggregateChange::Gone) };
        let known =
            sqlx::query("SELECT host FROM compute_hosts WHERE host = $1").bind(host).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Ok(AggregateChange::NoHost);
        }
        if a.hosts.iter().any(|h| h == host) {
            return Ok(AggregateChange::AlreadyMember);
        }
        if let Some(z) = &a.availability_zone {
            if let Some(other) = Self::other_zone(&mut tx, a.id, &[host.to_string()], z).await? {
                return Ok(AggregateChange::ZoneConflict(other));
            }
        }
        sqlx::query("INSERT INTO compute_aggregate_hosts (aggregate_id, host) VALUES ($1, $2)")
            .bind(a.id)
            .bind(host)
            .execute(&mut *tx)
            .await?;
        Self::sync_host_zone(&mut tx, host).await?;
        let a = Self::aggregate_get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(a.map_or(AggregateChange::Gone, AggregateChange::Done))
    }

    pub async fn aggregate_remove_host(&self, id: &str, host: &str) -> StoreResult<AggregateChange> {
        let mut tx = self.db.pool.begin().await?;
        let Some(a) = Self::aggregate_get_in(&mut tx, id).await? else { return Ok(AggregateChange::Gone) };
        let gone = sqlx::query("DELETE FROM compute_aggregate_hosts WHERE aggregate_id = $1 AND host = $2")
            .bind(a.id)
            .bind(host)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(AggregateChange::NoHost);
        }
        Self::sync_host_zone(&mut tx, host).await?;
        let a = Self::aggregate_get_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(a.map_or(AggregateChange::Gone, AggregateChange::Done))
    }

    /// Deletes an aggregate without hosts.
    pub async fn aggregate_delete(&self, id: &str) -> StoreResult<AggregateChange> {
        let mut tx = self.db.pool.begin().await?;
        let Some(a) = Self::aggregate_get_in(&mut tx, id).await? else { return Ok(AggregateChange::Gone) };
        if !a.hosts.is_empty() {
            return Ok(AggregateChange::NotEmpty);
        }
        sqlx::query("DELETE FROM compute_aggregates WHERE id = $1").bind(a.id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(AggregateChange::Done(a))
    }

    async fn sync_host_zone(conn: &mut sqlx::AnyConnection, host: &str) -> StoreResult<()> {
        sqlx::query(&format!("{SYNC_ZONES} WHERE host = $1")).bind(host).execute(conn).await?;
        Ok(())
    }
}
