//! Hosts (placement's resource providers) and allocations. A claim adds to a host's
//! `used_*` only while it stays within `cap_*`, in the same transaction that records
//! the allocation: concurrent claims can never overcommit a host.

use super::{Server, Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, placeholders, RowExt};
use stratus_common::ids::ProjectId;
use stratus_compute_protocol::{HostName, HostReport};

#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub host: HostName,
    pub queue: String,
    /// Its availability zone: an aggregate's it is in, else its agent's.
    pub availability_zone: String,
    pub hypervisor_type: String,
    pub driver: String,
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
    pub cap_vcpus: i64,
    pub cap_ram: i64,
    pub cap_disk: i64,
    pub used_vcpus: i64,
    pub used_ram: i64,
    pub used_disk: i64,
    pub traits: Vec<String>,
    /// A host a server takes whole (a bare-metal node): its custom resource class
    /// (`CUSTOM_BAREMETAL`). Only flavors asking for the class land there, one
    /// server at a time.
    pub resource_class: Option<String>,
    /// The address the host's agent reported (`HostReport::ip`).
    pub host_ip: Option<String>,
    /// The machine's uptime and load at its last report (`HostReport::uptime`).
    pub uptime: Option<String>,
    /// The lease reservation holding the host, when one does: only that reservation's
    /// servers, of its project, land here meanwhile.
    pub reservation: Option<HostReservation>,
    /// Slices of the host held for `flavor:instance` reservations (their ids and
    /// projects): each reservation's servers land in its slice, and what the slices
    /// hold unused (`slice_free_*`) is out of reach of every other claim.
    pub slices: Vec<HostReservation>,
    pub slice_free_vcpus: i64,
    pub slice_free_ram: i64,
    pub slice_free_disk: i64,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub last_seen: String,
    /// When the host first reported.
    pub created_at: String,
}

impl HostRow {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            host: r.text("host").into(),
            queue: r.text("queue"),
            // The zone of an aggregate the host is in, else the one its agent reports.
            availability_zone: Some(r.text("aggregate_zone"))
                .filter(|z| !z.is_empty())
                .unwrap_or_else(|| r.text("availability_zone")),
            hypervisor_type: r.text("hypervisor_type"),
            driver: r.text("driver"),
            vcpus: r.int("vcpus"),
            ram_mb: r.int("ram_mb"),
            disk_gb: r.int("disk_gb"),
            cap_vcpus: r.int("cap_vcpus"),
            cap_ram: r.int("cap_ram"),
            cap_disk: r.int("cap_disk"),
            used_vcpus: r.int("used_vcpus"),
            used_ram: r.int("used_ram"),
            used_disk: r.int("used_disk"),
            traits: serde_json::from_str(&r.text("traits")).unwrap_or_default(),
            resource_class: Some(r.text("resource_class")).filter(|c| !c.is_empty()),
            host_ip: Some(r.text("host_ip")).filter(|c| !c.is_empty()),
            uptime: Some(r.text("uptime")).filter(|c| !c.is_empty()),
            reservation: Some(r.text("reservation"))
                .filter(|id| !id.is_empty())
                .map(|id| HostReservation { id, project_id: r.text("reservation_project").into() }),
            slices: serde_json::from_str::<Vec<(String, String)>>(&r.text("slices"))
                .unwrap_or_default()
                .into_iter()
                .map(|(id, project)| HostReservation { id, project_id: project.into() })
                .collect(),
            slice_free_vcpus: r.int("slice_free_vcpus"),
            slice_free_ram: r.int("slice_free_ram"),
            slice_free_disk: r.int("slice_free_disk"),
            enabled: r.int("enabled") != 0,
            disabled_reason: r.opt_text("disabled_reason"),
            last_seen: r.text("last_seen"),
            created_at: r.text("created_at"),
        }
    }

    /// Whether a claim outside any slice fits: what slices hold unused is not free.
    pub fn fits(&self, vcpus: i64, ram: i64, disk: i64) -> bool {
        self.fits_with(vcpus + self.slice_free_vcpus, ram + self.slice_free_ram, disk + self.slice_free_disk)
    }

    /// Whether a claim fits the host as a whole (a claim in one of its slices, which
    /// the database checks against the slice).
    pub fn fits_with(&self, vcpus: i64, ram: i64, disk: i64) -> bool {
        if self.resource_class.is_some() && (self.used_vcpus, self.used_ram, self.used_disk) != (0, 0, 0) {
            return false;
        }
        self.used_vcpus + vcpus <= self.cap_vcpus
            && self.used_ram + ram <= self.cap_ram
            && self.used_disk + disk <= self.cap_disk
    }

    /// The slice reservation `id` holds here, for `project`.
    pub fn has_slice(&self, id: &str, project: &str) -> bool {
        self.slices.iter().any(|s| s.id == id && s.project_id.as_str() == project)
    }
}

/// A lease's reservation holding a host, or a slice of it (set by the reservation
/// service at the lease's start, cleared at its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReservation {
    pub id: String,
    pub project_id: ProjectId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub consumer_id: String,
    pub host: HostName,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    /// The reservation the consumer runs in: a host held by a reservation takes only
    /// claims of that reservation, and a host held by none only claims of none.
    pub reservation: Option<String>,
}

/// What a claim on a host came to.
#[derive(Debug)]
pub enum HostClaim {
    /// Claimed; the host's row after the claim.
    Claimed(Box<HostRow>),
    /// The host lacks room, is disabled, or holds a member of the anti-affinity group.
    Refused,
    /// The server to record the claim changed meanwhile; nothing was claimed.
    ServerChanged,
}

/// How much of a host placement hands out: `(total - reserved) * ratio`.
#[derive(Debug, Clone, Copy)]
pub struct Ratios {
    pub cpu: f64,
    pub ram: f64,
    pub disk: f64,
    pub reserved_ram_mb: i64,
    pub reserved_disk_gb: i64,
    pub reserved_vcpus: i64,
}

impl Default for Ratios {
    /// Nova's defaults: 16 vCPUs per core, RAM 1.5 times, disk once.
    fn default() -> Self {
        Self { cpu: 16.0, ram: 1.5, disk: 1.0, reserved_ram_mb: 512, reserved_disk_gb: 0, reserved_vcpus: 0 }
    }
}

/// A host's slices as stored: `[[reservation, project], ...]`.
fn slices_text(slices: &[HostReservation]) -> String {
    let pairs: Vec<(&str, &str)> = slices.iter().map(|s| (s.id.as_str(), s.project_id.as_str())).collect();
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Records a host's report (its capacity and heartbeat); the host's row after it.
    /// A host taken whole (a bare-metal node) is handed out as it is: no ratios, nothing
    /// reserved.
    pub async fn host_report(&self, r: &HostReport, ratios: &Ratios) -> StoreResult<HostRow> {
        let whole =
            Ratios { cpu: 1.0, ram: 1.0, disk: 1.0, reserved_ram_mb: 0, reserved_disk_gb: 0, reserved_vcpus: 0 };
        let ratios = if r.resource_class.is_some() { &whole } else { ratios };
        let cap = |total: i64, reserved: i64, ratio: f64| (((total - reserved).max(0)) as f64 * ratio).floor() as i64;
        let now = now_text();
        let row = sqlx::query(
            "INSERT INTO compute_hosts (host, queue, availability_zone, hypervisor_type, driver, vcpus, ram_mb, disk_gb, cap_vcpus, cap_ram, cap_disk, traits, last_seen, created_at, resource_class, host_ip, uptime)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16)
             ON CONFLICT (host) DO UPDATE SET queue = $2, availability_zone = $3, hypervisor_type = $4, driver = $5, vcpus = $6, ram_mb = $7,
             disk_gb = $8, cap_vcpus = $9, cap_ram = $10, cap_disk = $11, traits = $12, last_seen = $13, resource_class = $14, host_ip = $15, uptime = $16
             RETURNING *",
        )
        .bind(r.host.as_str())
        .bind(&r.queue)
        .bind(if r.availability_zone.is_empty() { "nova" } else { r.availability_zone.as_str() })
        .bind(&r.hypervisor_type)
        .bind(&r.driver)
        .bind(r.vcpus)
        .bind(r.ram_mb)
        .bind(r.disk_gb)
        .bind(cap(r.vcpus, ratios.reserved_vcpus, ratios.cpu))
        .bind(cap(r.ram_mb, ratios.reserved_ram_mb, ratios.ram))
        .bind(cap(r.disk_gb, ratios.reserved_disk_gb, ratios.disk))
        .bind(serde_json::to_string(&r.traits).unwrap_or_default())
        .bind(now)
        .bind(r.resource_class.as_deref().unwrap_or_default())
        .bind(r.ip.as_deref().unwrap_or_default())
        .bind(r.uptime.as_deref().unwrap_or_default())
        .fetch_one(&self.db.pool)
        .await?;
        Ok(HostRow::from_row(&row))
    }

    pub async fn host_get(&self, host: &str) -> StoreResult<Option<HostRow>> {
        let r = sqlx::query("SELECT * FROM compute_hosts WHERE host = $1")
            .bind(host)
            .fetch_optional(&self.db.reads)
            .await?;
        Ok(r.as_ref().map(HostRow::from_row))
    }

    pub async fn host_list(&self) -> StoreResult<Vec<HostRow>> {
        let rows = sqlx::query("SELECT * FROM compute_hosts ORDER BY host").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(HostRow::from_row).collect())
    }

    pub async fn host_enable(&self, host: &str, enabled: bool, reason: Option<&str>) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE compute_hosts SET enabled = $1, disabled_reason = $2 WHERE host = $3")
            .bind(enabled as i64)
            .bind(reason)
            .bind(host)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Hands a host to a lease's reservation (idempotent): the host's row, None when
    /// the host is unknown, held by another reservation or sliced.
    pub async fn host_reserve(&self, host: &str, r: &HostReservation) -> StoreResult<Option<HostRow>> {
        let row = sqlx::query(
            "UPDATE compute_hosts SET reservation = $1, reservation_project = $2
             WHERE host = $3 AND (reservation = '' OR reservation = $1) AND slices = '[]' RETURNING *",
        )
        .bind(&r.id)
        .bind(r.project_id.as_str())
        .bind(host)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.as_ref().map(HostRow::from_row))
    }

    /// Holds a slice of a host (`vcpus`, `ram`, `disk`) for a `flavor:instance`
    /// reservation (idempotent): the host's row, None when the host is unknown or held
    /// whole by a reservation. The slice may hold more than is free now: servers
    /// already there keep running, and the slice fills as they go.
    pub async fn host_slice(
        &self,
        host: &str,
        r: &HostReservation,
        size: (i64, i64, i64),
    ) -> StoreResult<Option<HostRow>> {
        let mut tx = self.db.pool.begin().await?;
        // The host's row first: it serialises slice changes on this host.
        let Some(row) =
            sqlx::query("UPDATE compute_hosts SET slices = slices WHERE host = $1 AND reservation = '' RETURNING *")
                .bind(host)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let mut current = HostRow::from_row(&row);
        if current.slices.iter().any(|s| s.id == r.id) {
            return Ok(Some(current));
        }
        sqlx::query(
            "INSERT INTO compute_host_slices (host, reservation, project, vcpus, ram, disk, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(host)
        .bind(&r.id)
        .bind(r.project_id.as_str())
        .bind(size.0)
        .bind(size.1)
        .bind(size.2)
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        current.slices.push(r.clone());
        let row = sqlx::query(
            "UPDATE compute_hosts SET slice_free_vcpus = slice_free_vcpus + $1, slice_free_ram = slice_free_ram + $2,
             slice_free_disk = slice_free_disk + $3, slices = $4 WHERE host = $5 RETURNING *",
        )
        .bind(size.0)
        .bind(size.1)
        .bind(size.2)
        .bind(slices_text(&current.slices))
        .bind(host)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(HostRow::from_row(&row)))
    }

    /// Gives a host back from reservation `id`, whether it held the host whole or a
    /// slice of it (idempotent: a host held by another reservation, or by none, is left
    /// as it is). Servers still in a slice stay, their claims now outside any. The
    /// host's row.
    pub async fn host_unreserve(&self, host: &str, id: &str) -> StoreResult<Option<HostRow>> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "UPDATE compute_hosts SET reservation = '', reservation_project = '' WHERE host = $1 AND reservation = $2",
        )
        .bind(host)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let slice = sqlx::query(
            "DELETE FROM compute_host_slices WHERE host = $1 AND reservation = $2
             RETURNING vcpus - used_vcpus AS vcpus, ram - used_ram AS ram, disk - used_disk AS disk",
        )
        .bind(host)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(free) = slice {
            let row = sqlx::query("SELECT * FROM compute_hosts WHERE host = $1").bind(host).fetch_one(&mut *tx).await?;
            let mut slices = HostRow::from_row(&row).slices;
            slices.retain(|s| s.id != id);
            sqlx::query(
                "UPDATE compute_hosts SET slice_free_vcpus = slice_free_vcpus - $1, slice_free_ram = slice_free_ram - $2,
                 slice_free_disk = slice_free_disk - $3, slices = $4 WHERE host = $5",
            )
            .bind(free.int("vcpus").max(0))
            .bind(free.int("ram").max(0))
            .bind(free.int("disk").max(0))
            .bind(slices_text(&slices))
            .bind(host)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE compute_allocations SET slice = '' WHERE host = $1 AND slice = $2")
                .bind(host)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.host_get(host).await
    }

    /// The hosts an agent runs (by its queue).
    pub async fn hosts_of_queue(&self, queue: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT host FROM compute_hosts WHERE queue = $1")
            .bind(queue)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| r.text("host")).collect())
    }

    /// Deletes a host with no allocations, its aggregate memberships and slices; false
    /// when it holds allocations.
    pub async fn host_delete(&self, host: &str) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let r = sqlx::query(
            "DELETE FROM compute_hosts WHERE host = $1 AND NOT EXISTS (SELECT 1 FROM compute_allocations WHERE host = $1)",
        )
        .bind(host)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        for table in ["compute_aggregate_hosts", "compute_host_slices"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE host = $1")).bind(host).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Claims resources on a host where the consumer holds nothing (the caller knows),
    /// refused also when another member of anti-affinity group `apart_from` holds an
    /// allocation on the host. The check runs after the host's row is written in the
    /// same transaction, so two members claiming one host at once are serialised and
    /// the second sees the first. `record`, when given, is saved in the same
    /// transaction (revision-checked), so a claim never lands without the server that
    /// records it, and the other way round.
    pub async fn claim_apart(
        &self,
        a: &Allocation,
        apart_from: Option<&str>,
        record: Option<&mut Server>,
    ) -> StoreResult<HostClaim> {
        // The transaction starts with its write, so SQLite takes the write lock at
        // once (waiting its busy timeout) instead of failing a read-to-write upgrade.
        let mut tx = self.db.pool.begin().await?;
        let Some((row, slice)) = Self::claim_row_in(&mut tx, a).await? else { return Ok(HostClaim::Refused) };
        if let Some(group) = apart_from {
            let members: Vec<String> = match sqlx::query("SELECT members FROM compute_server_groups WHERE id = $1")
                .bind(group)
                .fetch_optional(&mut *tx)
                .await?
            {
                Some(row) => serde_json::from_str(&row.text("members")).unwrap_or_default(),
                None => Vec::new(),
            };
            let here = sqlx::query("SELECT consumer_id FROM compute_allocations WHERE host = $1")
                .bind(a.host.as_str())
                .fetch_all(&mut *tx)
                .await?;
            if here.iter().map(|r| r.text("consumer_id")).any(|c| c != a.consumer_id && members.contains(&c)) {
                return Ok(HostClaim::Refused);
            }
        }
        Self::allocation_insert_in(&mut tx, a, slice).await?;
        let saved = match record {
            Some(server) => {
                if !Self::server_save_in(&mut tx, server, None).await? {
                    return Ok(HostClaim::ServerChanged);
                }
                Some(server)
            }
            None => None,
        };
        tx.commit().await?;
        if let Some(server) = saved {
            server.rev += 1;
        }
        Ok(HostClaim::Claimed(Box::new(HostRow::from_row(&row))))
    }

    /// Claims resources on a host for a consumer holding nothing there, in the caller's
    /// transaction: the host's row after the claim, None when it has no room or is
    /// disabled (the caller drops its transaction then).
    pub(crate) async fn claim_in(conn: &mut sqlx::AnyConnection, a: &Allocation) -> StoreResult<Option<HostRow>> {
        let Some((row, slice)) = Self::claim_row_in(conn, a).await? else { return Ok(None) };
        Self::allocation_insert_in(conn, a, slice).await?;
        Ok(Some(HostRow::from_row(&row)))
    }

    /// Adds a claim to its host's usage while it stays within capacity (a host taken
    /// whole: while nothing else holds it), keeping clear of what slices hold unused.
    /// A claim of a reservation that holds a slice of the host (not the host) goes into
    /// the slice while the slice has room. The host's row, and the slice claimed in.
    async fn claim_row_in(
        conn: &mut sqlx::AnyConnection,
        a: &Allocation,
    ) -> StoreResult<Option<(AnyRow, Option<String>)>> {
        let row = sqlx::query(
            "UPDATE compute_hosts SET used_vcpus = used_vcpus + $1, used_ram = used_ram + $2, used_disk = used_disk + $3
             WHERE host = $4 AND enabled = 1 AND used_vcpus + slice_free_vcpus + $1 <= cap_vcpus
             AND used_ram + slice_free_ram + $2 <= cap_ram AND used_disk + slice_free_disk + $3 <= cap_disk
             AND reservation = $5 AND (resource_class = '' OR (used_vcpus = 0 AND used_ram = 0 AND used_disk = 0))
             RETURNING *",
        )
        .bind(a.vcpus)
        .bind(a.ram)
        .bind(a.disk)
        .bind(a.host.as_str())
        .bind(a.reservation.as_deref().unwrap_or_default())
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = row {
            return Ok(Some((row, None)));
        }
        let Some(reservation) = a.reservation.as_deref() else { return Ok(None) };
        let in_slice = sqlx::query(
            "UPDATE compute_host_slices SET used_vcpus = used_vcpus + $1, used_ram = used_ram + $2, used_disk = used_disk + $3
             WHERE host = $4 AND reservation = $5 AND used_vcpus + $1 <= vcpus AND used_ram + $2 <= ram AND used_disk + $3 <= disk
             RETURNING host",
        )
        .bind(a.vcpus)
        .bind(a.ram)
        .bind(a.disk)
        .bind(a.host.as_str())
        .bind(reservation)
        .fetch_optional(&mut *conn)
        .await?;
        if in_slice.is_none() {
            return Ok(None);
        }
        // The slice's room is the host's too; servers that were there before the slice
        // may still fill it, so the host's own capacity is checked as well.
        let row = sqlx::query(
            "UPDATE compute_hosts SET used_vcpus = used_vcpus + $1, used_ram = used_ram + $2, used_disk = used_disk + $3,
             slice_free_vcpus = slice_free_vcpus - $1, slice_free_ram = slice_free_ram - $2, slice_free_disk = slice_free_disk - $3
             WHERE host = $4 AND enabled = 1 AND used_vcpus + $1 <= cap_vcpus AND used_ram + $2 <= cap_ram AND used_disk + $3 <= cap_disk
             RETURNING *",
        )
        .bind(a.vcpus)
        .bind(a.ram)
        .bind(a.disk)
        .bind(a.host.as_str())
        .fetch_optional(&mut *conn)
        .await?;
        // None: the caller drops its transaction, the slice's count with it.
        Ok(row.map(|r| (r, Some(reservation.to_string()))))
    }

    async fn allocation_insert_in(
        conn: &mut sqlx::AnyConnection,
        a: &Allocation,
        slice: Option<String>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO compute_allocations (consumer_id, host, vcpus, ram, disk, created_at, slice) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.consumer_id)
        .bind(a.host.as_str())
        .bind(a.vcpus)
        .bind(a.ram)
        .bind(a.disk)
        .bind(now_text())
        .bind(slice.unwrap_or_default())
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn allocations(&self, consumer: &str) -> StoreResult<Vec<Allocation>> {
        let rows = sqlx::query("SELECT * FROM compute_allocations WHERE consumer_id = $1")
            .bind(consumer)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Allocation {
                consumer_id: r.text("consumer_id"),
                host: r.text("host").into(),
                vcpus: r.int("vcpus"),
                ram: r.int("ram"),
                disk: r.int("disk"),
                reservation: None,
            })
            .collect())
    }

    pub async fn allocation_consumers(&self) -> StoreResult<Vec<String>> {
        let rows =
            sqlx::query("SELECT DISTINCT consumer_id FROM compute_allocations").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(|r| r.text("consumer_id")).collect())
    }

    /// Gives a consumer's allocations to another consumer (a resize's claim becoming
    /// the server's once confirmed). Idempotent.
    pub(crate) async fn allocation_move_in(conn: &mut sqlx::AnyConnection, from: &str, to: &str) -> StoreResult<()> {
        sqlx::query("UPDATE compute_allocations SET consumer_id = $1 WHERE consumer_id = $2")
            .bind(to)
            .bind(from)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Gives back what `consumers` hold (on `host` only, when given), in one
    /// transaction; idempotent. The rows of the hosts it freed, after the release.
    pub async fn release(&self, consumers: &[&str], host: Option<&str>) -> StoreResult<Vec<HostRow>> {
        if consumers.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.db.pool.begin().await?;
        let rows = Self::release_in(&mut tx, consumers, host).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// [`Self::release`] in the caller's transaction: the hosts' rows it returns are
    /// for the scheduler once that transaction has committed.
    pub(crate) async fn release_in(
        conn: &mut sqlx::AnyConnection,
        consumers: &[&str],
        host: Option<&str>,
    ) -> StoreResult<Vec<HostRow>> {
        if consumers.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql =
            format!("DELETE FROM compute_allocations WHERE consumer_id IN ({})", placeholders(consumers.len(), 1, 1));
        if host.is_some() {
            sql.push_str(&format!(" AND host = ${}", consumers.len() + 1));
        }
        sql.push_str(" RETURNING host, vcpus, ram, disk, slice");
        let mut q = sqlx::query(&sql);
        for c in consumers {
            q = q.bind(*c);
        }
        if let Some(h) = host {
            q = q.bind(h);
        }
        let gone = q.fetch_all(&mut *conn).await?;
        let mut rows = Vec::new();
        for a in &gone {
            // A claim in a slice gives its room back to the slice (while it lasts).
            let slice = a.text("slice");
            let to_slice = !slice.is_empty()
                && sqlx::query(
                    "UPDATE compute_host_slices SET used_vcpus = used_vcpus - $1, used_ram = used_ram - $2, used_disk = used_disk - $3
                     WHERE host = $4 AND reservation = $5 RETURNING host",
                )
                .bind(a.int("vcpus"))
                .bind(a.int("ram"))
                .bind(a.int("disk"))
                .bind(a.text("host"))
                .bind(&slice)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            let back = if to_slice { 1 } else { 0 };
            let row = sqlx::query(
                "UPDATE compute_hosts SET used_vcpus = used_vcpus - $1, used_ram = used_ram - $2, used_disk = used_disk - $3,
                 slice_free_vcpus = slice_free_vcpus + $1 * $5, slice_free_ram = slice_free_ram + $2 * $5,
                 slice_free_disk = slice_free_disk + $3 * $5 WHERE host = $4 RETURNING *",
            )
            .bind(a.int("vcpus"))
            .bind(a.int("ram"))
            .bind(a.int("disk"))
            .bind(a.text("host"))
            .bind(back)
            .fetch_optional(&mut *conn)
            .await?;
            rows.extend(row.as_ref().map(HostRow::from_row));
        }
        Ok(rows)
    }
}
