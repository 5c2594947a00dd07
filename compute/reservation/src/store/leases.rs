//! Leases with their reservations, allocations (which host, for which window) and
//! events (the schedule that starts and ends them).

use super::{parse_enum, Store, StoreResult};
use crate::model::{EventStatus, EventType, LeaseStatus, ReservationStatus};
use sqlx::any::AnyRow;
use std::collections::HashSet;
use stratus_common::db::{now_text, placeholders, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// Stored times (RFC 3339, UTC).
    pub start_date: String,
    pub end_date: String,
    pub before_end_date: Option<String>,
    pub status: LeaseStatus,
    pub degraded: bool,
    pub created_at: String,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub id: String,
    pub lease_id: String,
    pub resource_type: String,
    pub status: ReservationStatus,
    pub min: i64,
    pub max: i64,
    pub hypervisor_properties: String,
    pub resource_properties: String,
    pub before_end: String,
    pub on_start: String,
    pub missing_resources: bool,
    pub resources_changed: bool,
    /// `virtual:floatingip`: the external network, and addresses asked for by name
    /// (its amount is `min` = `max`).
    pub network_id: String,
    pub required_floatingips: Vec<String>,
    /// `flavor:instance`: one instance's share of a host (the flavor's vCPUs, MB of
    /// RAM, GB of root and ephemeral disk; the amount is `min` = `max`, the flavor
    /// itself is in `resource_properties`), and whether the instances share one host
    /// (`Some(true)`), each have their own (`Some(false)`), or go anywhere (`None`).
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
    pub affinity: Option<bool>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub id: String,
    pub reservation_id: String,
    pub lease_id: String,
    /// A host's id, or 0 for a floating IP's allocation.
    pub host_id: i64,
    /// A reservable floating IP's id, or empty for a host's allocation.
    pub floatingip_id: String,
    /// Instances of a `flavor:instance` reservation on the host (a slice of it), or 0
    /// when the host is held whole.
    pub slots: i64,
    pub start_date: String,
    pub end_date: String,
}

/// What other leases hold of a host in a window ([`Store::host_usage_in`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostUsage {
    pub whole: bool,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
}

impl HostUsage {
    /// Adds `n` instances of reservation `r`'s shape.
    pub fn add_slots(&mut self, n: i64, r: &Reservation) {
        self.vcpus += n * r.vcpus;
        self.memory_mb += n * r.memory_mb;
        self.disk_gb += n * r.disk_gb;
    }

    /// What this and `other` hold together.
    pub fn plus(self, other: HostUsage) -> HostUsage {
        HostUsage {
            whole: self.whole || other.whole,
            vcpus: self.vcpus + other.vcpus,
            memory_mb: self.memory_mb + other.memory_mb,
            disk_gb: self.disk_gb + other.disk_gb,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub lease_id: String,
    pub event_type: EventType,
    pub time: String,
    pub status: EventStatus,
    pub attempts: i64,
    pub next_try: String,
    pub last_error: String,
}

fn lease(r: &AnyRow) -> StoreResult<Lease> {
    Ok(Lease {
        id: r.text("id"),
        name: r.text("name"),
        project_id: r.text("project_id"),
        user_id: r.text("user_id"),
        start_date: r.text("start_date"),
        end_date: r.text("end_date"),
        before_end_date: r.opt_text("before_end_date"),
        status: parse_enum(&r.text("status"))?,
        degraded: r.flag("degraded"),
        created_at: r.text("created_at"),
        updated_at: r.opt_text("updated_at"),
    })
}

fn reservation(r: &AnyRow) -> StoreResult<Reservation> {
    Ok(Reservation {
        id: r.text("id"),
        lease_id: r.text("lease_id"),
        resource_type: r.text("resource_type"),
        status: parse_enum(&r.text("status"))?,
        min: r.int("min_count"),
        max: r.int("max_count"),
        hypervisor_properties: r.text("hypervisor_properties"),
        resource_properties: r.text("resource_properties"),
        before_end: r.text("before_end"),
        on_start: r.text("on_start"),
        missing_resources: r.flag("missing_resources"),
        resources_changed: r.flag("resources_changed"),
        network_id: r.text("network_id"),
        required_floatingips: serde_json::from_str(&r.text("required_floatingips"))
            .map_err(|e| sqlx::Error::Decode(e.into()))?,
        vcpus: r.int("vcpus"),
        memory_mb: r.int("memory_mb"),
        disk_gb: r.int("disk_gb"),
        affinity: match r.text("affinity").as_str() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => return Err(sqlx::Error::Decode(format!("unknown affinity {other:?}").into())),
        },
        created_at: r.text("created_at"),
        updated_at: r.opt_text("updated_at"),
    })
}

fn allocation(r: &AnyRow) -> Allocation {
    Allocation {
        id: r.text("id"),
        reservation_id: r.text("reservation_id"),
        lease_id: r.text("lease_id"),
        host_id: r.int("host_id"),
        floatingip_id: r.text("floatingip_id"),
        slots: r.int("slots"),
        start_date: r.text("start_date"),
        end_date: r.text("end_date"),
    }
}

fn event(r: &AnyRow) -> StoreResult<Event> {
    Ok(Event {
        id: r.text("id"),
        lease_id: r.text("lease_id"),
        event_type: parse_enum(&r.text("event_type"))?,
        time: r.text("time"),
        status: parse_enum(&r.text("status"))?,
        attempts: r.int("attempts"),
        next_try: r.text("next_try"),
        last_error: r.text("last_error"),
    })
}

/// Rows of `table` whose `lease_id` is one of `ids`.
async fn children(db: &stratus_common::db::Pool, table: &str, ids: &[&str], order: &str) -> StoreResult<Vec<AnyRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT * FROM {table} WHERE lease_id IN ({}) ORDER BY {order}", placeholders(ids.len(), 1, 1));
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    q.fetch_all(db).await
}

/// Events in the order they fire: by time, a start before an end at the same time.
const EVENT_ORDER: &str =
    "time, CASE event_type WHEN 'start_lease' THEN 0 WHEN 'before_end_lease' THEN 1 ELSE 2 END, id";

impl Store {
    /// Hosts some allocation holds during any part of `[start, end)`, other than those
    /// of lease `except`.
    pub async fn busy_hosts_in(
        conn: &mut sqlx::AnyConnection,
        start: &str,
        end: &str,
        except: &str,
    ) -> StoreResult<HashSet<i64>> {
        let rows = sqlx::query(
            "SELECT DISTINCT host_id FROM reservation_allocations
             WHERE floatingip_id = '' AND start_date < $1 AND end_date > $2 AND lease_id <> $3",
        )
        .bind(end)
        .bind(start)
        .bind(except)
        .fetch_all(conn)
        .await?;
        Ok(rows.iter().map(|r| r.int("host_id")).collect())
    }

    /// What other leases hold of each host during any part of `[start, end)`: whether
    /// some lease holds it whole, and the vCPUs, MB of RAM and GB of disk the slices of
    /// `flavor:instance` reservations hold (summed over the window, which never
    /// undercounts).
    pub async fn host_usage_in(
        conn: &mut sqlx::AnyConnection,
        start: &str,
        end: &str,
        except: &str,
    ) -> StoreResult<std::collections::HashMap<i64, HostUsage>> {
        let rows = sqlx::query(
            "SELECT a.host_id, a.slots, r.vcpus, r.memory_mb, r.disk_gb FROM reservation_allocations a
             JOIN reservation_reservations r ON r.id = a.reservation_id
             WHERE a.floatingip_id = '' AND a.start_date < $1 AND a.end_date > $2 AND a.lease_id <> $3",
        )
        .bind(end)
        .bind(start)
        .bind(except)
        .fetch_all(conn)
        .await?;
        let mut out: std::collections::HashMap<i64, HostUsage> = std::collections::HashMap::new();
        for r in &rows {
            let u = out.entry(r.int("host_id")).or_default();
            match r.int("slots") {
                0 => u.whole = true,
                n => {
                    u.vcpus += n * r.int("vcpus");
                    u.memory_mb += n * r.int("memory_mb");
                    u.disk_gb += n * r.int("disk_gb");
                }
            }
        }
        Ok(out)
    }

    /// Reservable floating IPs some allocation holds during any part of `[start, end)`,
    /// other than those of lease `except`.
    pub async fn busy_floatingips_in(
        conn: &mut sqlx::AnyConnection,
        start: &str,
        end: &str,
        except: &str,
    ) -> StoreResult<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT floatingip_id FROM reservation_allocations
             WHERE floatingip_id <> '' AND start_date < $1 AND end_date > $2 AND lease_id <> $3",
        )
        .bind(end)
        .bind(start)
        .bind(except)
        .fetch_all(conn)
        .await?;
        Ok(rows.iter().map(|r| r.text("floatingip_id")).collect())
    }

    pub async fn lease_insert_in(conn: &mut sqlx::AnyConnection, l: &Lease) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO reservation_leases (id, name, project_id, user_id, start_date, end_date, before_end_date, status, degraded, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&l.id)
        .bind(&l.name)
        .bind(&l.project_id)
        .bind(&l.user_id)
        .bind(&l.start_date)
        .bind(&l.end_date)
        .bind(&l.before_end_date)
        .bind(l.status.as_str())
        .bind(l.degraded as i64)
        .bind(&l.created_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Saves a lease's name, dates, status and degraded flag.
    pub async fn lease_save_in(conn: &mut sqlx::AnyConnection, l: &Lease) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reservation_leases SET name = $1, start_date = $2, end_date = $3, before_end_date = $4, status = $5,
             degraded = $6, updated_at = $7 WHERE id = $8",
        )
        .bind(&l.name)
        .bind(&l.start_date)
        .bind(&l.end_date)
        .bind(&l.before_end_date)
        .bind(l.status.as_str())
        .bind(l.degraded as i64)
        .bind(now_text())
        .bind(&l.id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn reservation_insert_in(conn: &mut sqlx::AnyConnection, r: &Reservation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO reservation_reservations (id, lease_id, resource_type, status, min_count, max_count, hypervisor_properties,
             resource_properties, before_end, on_start, missing_resources, resources_changed, created_at, network_id,
             required_floatingips, vcpus, memory_mb, disk_gb, affinity)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
        )
        .bind(&r.id)
        .bind(&r.lease_id)
        .bind(&r.resource_type)
        .bind(r.status.as_str())
        .bind(r.min)
        .bind(r.max)
        .bind(&r.hypervisor_properties)
        .bind(&r.resource_properties)
        .bind(&r.before_end)
        .bind(&r.on_start)
        .bind(r.missing_resources as i64)
        .bind(r.resources_changed as i64)
        .bind(&r.created_at)
        .bind(&r.network_id)
        .bind(serde_json::Value::from(r.required_floatingips.clone()).to_string())
        .bind(r.vcpus)
        .bind(r.memory_mb)
        .bind(r.disk_gb)
        .bind(r.affinity.map(|a| a.to_string()).unwrap_or_default())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Sets the status of every reservation of a lease.
    pub async fn reservations_status_in(
        conn: &mut sqlx::AnyConnection,
        lease: &str,
        status: ReservationStatus,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE reservation_reservations SET status = $1, updated_at = $2 WHERE lease_id = $3")
            .bind(status.as_str())
            .bind(now_text())
            .bind(lease)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn reservation_counts_in(
        conn: &mut sqlx::AnyConnection,
        id: &str,
        min: i64,
        max: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reservation_reservations SET min_count = $1, max_count = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(min)
        .bind(max)
        .bind(now_text())
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn allocation_insert_in(conn: &mut sqlx::AnyConnection, a: &Allocation) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO reservation_allocations (id, reservation_id, lease_id, host_id, floatingip_id, start_date, end_date, created_at, slots)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&a.id)
        .bind(&a.reservation_id)
        .bind(&a.lease_id)
        .bind(a.host_id)
        .bind(&a.floatingip_id)
        .bind(&a.start_date)
        .bind(&a.end_date)
        .bind(now_text())
        .bind(a.slots)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Moves every allocation of a lease to its new window.
    pub async fn allocations_window_in(
        conn: &mut sqlx::AnyConnection,
        lease: &str,
        start: &str,
        end: &str,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE reservation_allocations SET start_date = $1, end_date = $2 WHERE lease_id = $3")
            .bind(start)
            .bind(end)
            .bind(lease)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn event_insert_in(conn: &mut sqlx::AnyConnection, e: &Event) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO reservation_events (id, lease_id, event_type, time, status, attempts, next_try, last_error, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&e.id)
        .bind(&e.lease_id)
        .bind(e.event_type.as_str())
        .bind(&e.time)
        .bind(e.status.as_str())
        .bind(e.attempts)
        .bind(&e.next_try)
        .bind(&e.last_error)
        .bind(now_text())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Moves a lease's event of `kind` (not yet done) to `time`.
    /// Arms a lease's fired event again (a `before_end_lease` moved into the future by
    /// an update fires again, as Blazar's does); [`Store::event_reschedule_in`] then
    /// gives it its time.
    pub async fn event_rearm_in(conn: &mut sqlx::AnyConnection, lease: &str, kind: EventType) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reservation_events SET status = 'UNDONE', attempts = 0, last_error = ''
             WHERE lease_id = $1 AND event_type = $2 AND status = 'DONE'",
        )
        .bind(lease)
        .bind(kind.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn event_reschedule_in(
        conn: &mut sqlx::AnyConnection,
        lease: &str,
        kind: EventType,
        time: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reservation_events SET time = $1, next_try = $1, updated_at = $2
             WHERE lease_id = $3 AND event_type = $4 AND status = 'UNDONE'",
        )
        .bind(time)
        .bind(now_text())
        .bind(lease)
        .bind(kind.as_str())
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Moves an event from `from` to `to`, recording an attempt, its error and when to
    /// try again; false when the event was not in `from` (another worker took it).
    pub async fn event_move_in(
        conn: &mut sqlx::AnyConnection,
        e: &Event,
        from: EventStatus,
        to: EventStatus,
    ) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE reservation_events SET status = $1, attempts = $2, next_try = $3, last_error = $4, updated_at = $5
             WHERE id = $6 AND status = $7",
        )
        .bind(to.as_str())
        .bind(e.attempts)
        .bind(&e.next_try)
        .bind(&e.last_error)
        .bind(now_text())
        .bind(&e.id)
        .bind(from.as_str())
        .execute(conn)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn lease_delete_in(conn: &mut sqlx::AnyConnection, id: &str) -> StoreResult<()> {
        for table in ["reservation_events", "reservation_allocations", "reservation_reservations"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE lease_id = $1")).bind(id).execute(&mut *conn).await?;
        }
        sqlx::query("DELETE FROM reservation_leases WHERE id = $1").bind(id).execute(conn).await?;
        Ok(())
    }

    pub async fn lease_get(&self, id: &str) -> StoreResult<Option<Lease>> {
        let row = sqlx::query("SELECT * FROM reservation_leases WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?;
        row.as_ref().map(lease).transpose()
    }

    /// Leases of `project` (every project's when None), oldest first.
    pub async fn lease_list(&self, project: Option<&str>) -> StoreResult<Vec<Lease>> {
        let rows =
            sqlx::query("SELECT * FROM reservation_leases WHERE ($1 = '' OR project_id = $1) ORDER BY created_at, id")
                .bind(project.unwrap_or_default())
                .fetch_all(&self.db.reads)
                .await?;
        rows.iter().map(lease).collect()
    }

    pub async fn reservations_of(&self, leases: &[&str]) -> StoreResult<Vec<Reservation>> {
        children(&self.db.reads, "reservation_reservations", leases, "created_at, id")
            .await?
            .iter()
            .map(reservation)
            .collect()
    }

    pub async fn events_of(&self, leases: &[&str]) -> StoreResult<Vec<Event>> {
        children(&self.db.reads, "reservation_events", leases, EVENT_ORDER).await?.iter().map(event).collect()
    }

    pub async fn allocations_of(&self, leases: &[&str]) -> StoreResult<Vec<Allocation>> {
        Ok(children(&self.db.reads, "reservation_allocations", leases, "host_id")
            .await?
            .iter()
            .map(allocation)
            .collect())
    }

    /// Every allocation ending after `after`, by host.
    pub async fn allocations_current(&self, after: &str) -> StoreResult<Vec<Allocation>> {
        let rows =
            sqlx::query("SELECT * FROM reservation_allocations WHERE end_date > $1 ORDER BY host_id, start_date")
                .bind(after)
                .fetch_all(&self.db.reads)
                .await?;
        Ok(rows.iter().map(allocation).collect())
    }

    /// Events to fire: due (their next try has come) and not finished, oldest first.
    pub async fn events_due(&self, now: &str, limit: i64) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT * FROM reservation_events WHERE status IN ('UNDONE', 'IN_PROGRESS') AND next_try <= $1
             ORDER BY time, CASE event_type WHEN 'start_lease' THEN 0 WHEN 'before_end_lease' THEN 1 ELSE 2 END, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.db.reads)
        .await?;
        rows.iter().map(event).collect()
    }

    /// The earliest time an unfinished event is due, if any.
    pub async fn next_event_time(&self) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT MIN(next_try) AS t FROM reservation_events WHERE status IN ('UNDONE', 'IN_PROGRESS')")
                .fetch_one(&self.db.reads)
                .await?;
        Ok(row.opt_text("t"))
    }
}

impl Store {
    pub async fn allocation_delete_in(conn: &mut sqlx::AnyConnection, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM reservation_allocations WHERE id = $1").bind(id).execute(conn).await?;
        Ok(())
    }
}

impl Store {
    /// Sets how many instances an allocation of a `flavor:instance` reservation holds.
    pub async fn allocation_slots_in(conn: &mut sqlx::AnyConnection, id: &str, slots: i64) -> StoreResult<()> {
        sqlx::query("UPDATE reservation_allocations SET slots = $1 WHERE id = $2")
            .bind(slots)
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Moves an allocation to another host (a failed host replaced).
    pub async fn allocation_move_in(conn: &mut sqlx::AnyConnection, id: &str, host: i64) -> StoreResult<()> {
        sqlx::query("UPDATE reservation_allocations SET host_id = $1 WHERE id = $2")
            .bind(host)
            .bind(id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Records that a reservation lost hosts it could not replace (`missing`) or had
    /// hosts replaced (`changed`).
    pub async fn reservation_flags_in(
        conn: &mut sqlx::AnyConnection,
        id: &str,
        missing: bool,
        changed: bool,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE reservation_reservations SET missing_resources = $1, resources_changed = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(missing as i64)
        .bind(changed as i64)
        .bind(now_text())
        .bind(id)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Leases in `status`.
    pub async fn leases_in_status(&self, status: LeaseStatus) -> StoreResult<Vec<Lease>> {
        let rows = sqlx::query("SELECT * FROM reservation_leases WHERE status = $1 ORDER BY start_date, id")
            .bind(status.as_str())
            .fetch_all(&self.db.reads)
            .await?;
        rows.iter().map(lease).collect()
    }
}
