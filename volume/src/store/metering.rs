//! Metering: how many GiB each volume and snapshot held, for which project, from when
//! to when. A period opens when one is made and closes when its size or its project
//! changes (an extend, a transfer) or when it is deleted; the next period opens at the
//! same moment. The periods are written in the transaction that makes the change, so a
//! project's GB-hours are exact over any window (`GET /v3/{project}/usage`).

use super::{Store, StoreResult};
use stratus_common::db::{now_text, RowExt};

/// What a period meters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metered {
    Volume,
    Snapshot,
}

impl Metered {
    pub fn as_str(self) -> &'static str {
        match self {
            Metered::Volume => "volume",
            Metered::Snapshot => "snapshot",
        }
    }
}

/// One resource's holding: `size` GiB for `project_id` from `started_at` until
/// `ended_at` (still held: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub resource_id: String,
    pub kind: String,
    /// The resource's name now (empty once it is deleted and its row gone).
    pub name: String,
    pub project_id: String,
    pub size: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
}

impl Store {
    /// Brings the metering of one resource up to date with what was just saved on
    /// `conn`: the open period ends when the resource is gone (`live` false) or holds
    /// another size or project, and a live resource without an open period gets one.
    pub async fn meter_in(
        conn: &mut sqlx::AnyConnection,
        kind: Metered,
        id: &str,
        project: &str,
        size: i64,
        live: bool,
    ) -> StoreResult<()> {
        let now = now_text();
        sqlx::query(
            "UPDATE volume_metering SET ended_at = $1
             WHERE resource_id = $2 AND ended_at IS NULL AND ($3 = 0 OR size <> $4 OR project_id <> $5)",
        )
        .bind(&now)
        .bind(id)
        .bind(live as i64)
        .bind(size)
        .bind(project)
        .execute(&mut *conn)
        .await?;
        if live {
            sqlx::query(
                "INSERT INTO volume_metering (id, resource_id, kind, project_id, size, started_at)
                 SELECT $1, $2, $3, $4, $5, $6
                 WHERE NOT EXISTS (SELECT 1 FROM volume_metering WHERE resource_id = $2 AND ended_at IS NULL)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(id)
            .bind(kind.as_str())
            .bind(project)
            .bind(size)
            .bind(&now)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// The periods of `project` (of every project: `None`) that overlap the window
    /// `[start, end)` (stored time texts), oldest first.
    pub async fn periods(&self, project: Option<&str>, start: &str, end: &str) -> StoreResult<Vec<Period>> {
        let rows = sqlx::query(
            "SELECT m.resource_id, m.kind, m.project_id, m.size, m.started_at, m.ended_at,
                    COALESCE(v.name, s.name, '') AS name
             FROM volume_metering m
             LEFT JOIN volume_volumes v ON m.kind = 'volume' AND v.id = m.resource_id
             LEFT JOIN volume_snapshots s ON m.kind = 'snapshot' AND s.id = m.resource_id
             WHERE ($1 IS NULL OR m.project_id = $1) AND m.started_at < $2 AND (m.ended_at IS NULL OR m.ended_at > $3)
             ORDER BY m.started_at, m.resource_id",
        )
        .bind(project)
        .bind(end)
        .bind(start)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Period {
                resource_id: r.text("resource_id"),
                kind: r.text("kind"),
                name: r.text("name"),
                project_id: r.text("project_id"),
                size: r.int("size"),
                started_at: r.text("started_at"),
                ended_at: r.opt_text("ended_at"),
            })
            .collect())
    }
}
