use super::{Store, StoreResult, Volume, VolumeStatus, USAGE};
use serde::{Deserialize, Serialize};
use stratus_common::db::{now_text, Col, JsonSelect};

/// A volume offered to another project: whoever holds its id and key may take it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transfer {
    pub id: String,
    pub volume_id: String,
    /// The project giving the volume.
    pub project_id: String,
    pub name: String,
    pub salt: String,
    pub key_hash: String,
    /// Whether the volume goes without its snapshots (3.55); with them otherwise. A
    /// volume with snapshots is only offered with them.
    pub no_snapshots: bool,
    pub created_at: String,
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("volume_id"),
    Col::Text("project_id"),
    Col::Text("name"),
    Col::Text("salt"),
    Col::Text("key_hash"),
    Col::Text("created_at"),
    Col::Flag("no_snapshots"),
];

/// What accepting a transfer came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    Done,
    /// The new project's quota has no room.
    OverQuota,
    /// The volume or the transfer changed meanwhile.
    Changed,
}

impl Store {
    /// Offers volume `v` (saved as awaiting transfer, revision-checked) with `t`, in one
    /// transaction; false when the volume changed meanwhile.
    pub async fn transfer_create(&self, v: &Volume, t: &Transfer) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        if !Store::volume_save_in(&mut tx, v).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO volume_transfers (id, volume_id, project_id, name, salt, key_hash, created_at, no_snapshots)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.id)
        .bind(&t.volume_id)
        .bind(&t.project_id)
        .bind(&t.name)
        .bind(&t.salt)
        .bind(&t.key_hash)
        .bind(&t.created_at)
        .bind(t.no_snapshots as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn transfer_get(&self, id: &str) -> StoreResult<Option<Transfer>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_transfers WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    pub async fn transfer_list(&self, project: Option<&str>) -> StoreResult<Vec<Transfer>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_transfers WHERE ($1 IS NULL OR project_id = $1)",
            order: "created_at, id",
        };
        self.db.json_rows(&SELECT, &[project]).await
    }

    /// Withdraws transfer `t`: the volume is available again. False when something
    /// changed meanwhile.
    pub async fn transfer_delete(&self, t: &Transfer, v: &Volume) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM volume_transfers WHERE id = $1").bind(&t.id).execute(&mut *tx).await?;
        if gone.rows_affected() != 1 || !Store::volume_save_in(&mut tx, v).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Moves volume `v` to `project` (user `user`) with its snapshots `snaps`, their
    /// quota with them, and ends the transfer: all in one transaction. Changed when the
    /// volume's snapshots are no longer `snaps`.
    pub async fn transfer_accept(
        &self,
        t: &Transfer,
        v: &Volume,
        snaps: &[super::Snapshot],
        project: &str,
        user: &str,
        claims: &[crate::app::quotas::Claim],
    ) -> StoreResult<Accepted> {
        let mut tx = self.db.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM volume_transfers WHERE id = $1").bind(&t.id).execute(&mut *tx).await?;
        if gone.rows_affected() != 1 {
            return Ok(Accepted::Changed);
        }
        if !crate::app::quotas::claim_in(&mut tx, project, claims).await? {
            return Ok(Accepted::OverQuota);
        }
        let snap_gb: i64 = snaps.iter().map(|s| s.size).sum();
        let mut wants = vec![("volumes", 1), ("gigabytes", v.size + snap_gb)];
        if !snaps.is_empty() {
            wants.push(("snapshots", snaps.len() as i64));
        }
        let given = crate::app::quotas::releases(&wants, &v.type_id);
        stratus_common::db::usage::release(&mut tx, USAGE, &v.project_id, &crate::app::quotas::as_refs(&given)).await?;
        let moved = sqlx::query(
            "UPDATE volume_volumes SET project_id = $1, user_id = $2, status = $3, updated_at = $4, rev = rev + 1
             WHERE id = $5 AND rev = $6 AND status = $7 AND deleted = 0",
        )
        .bind(project)
        .bind(user)
        .bind(VolumeStatus::Available.as_str())
        .bind(now_text())
        .bind(&v.id)
        .bind(v.rev)
        .bind(VolumeStatus::AwaitingTransfer.as_str())
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(Accepted::Changed);
        }
        Store::meter_in(&mut tx, super::Metered::Volume, &v.id, project, v.size, true).await?;
        for s in snaps {
            let moved = sqlx::query(
                "UPDATE volume_snapshots SET project_id = $1, user_id = $2, updated_at = $3, rev = rev + 1
                 WHERE id = $4 AND rev = $5 AND deleted = 0",
            )
            .bind(project)
            .bind(user)
            .bind(now_text())
            .bind(&s.id)
            .bind(s.rev)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() != 1 {
                return Ok(Accepted::Changed);
            }
            Store::meter_in(&mut tx, super::Metered::Snapshot, &s.id, project, s.size, true).await?;
        }
        // Every live snapshot of the volume went along.
        let left: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM volume_snapshots WHERE volume_id = $1 AND deleted = 0 AND project_id <> $2",
        )
        .bind(&v.id)
        .bind(project)
        .fetch_one(&mut *tx)
        .await?;
        if left > 0 && !t.no_snapshots {
            return Ok(Accepted::Changed);
        }
        tx.commit().await?;
        Ok(Accepted::Done)
    }
}
