//! The reservation service's SQL. Writes that allocate run inside one transaction that
//! first locks the allocation row ([`Store::lock_in`]): on PostgreSQL the row lock, on
//! SQLite the single writer, so the overlap check and the insert that follows can never
//! interleave with another allocation.

mod floatingips;
mod hosts;
mod leases;

pub use floatingips::FloatingIp;
pub use hosts::Host;
pub use leases::{Allocation, Event, HostUsage, Lease, Reservation};

use stratus_common::db::Db;

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Deletes row `id` of `table` (a host or a reservable floating IP) unless an
    /// allocation ending after `now` names it in `column`; false then. Under the
    /// allocation lock, so no lease takes it meanwhile.
    pub(crate) async fn delete_unless_allocated<T>(
        &self,
        table: &str,
        column: &str,
        id: T,
        now: &str,
    ) -> StoreResult<bool>
    where
        T: for<'q> sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Clone,
    {
        let mut tx = self.db.pool.begin().await?;
        Self::lock_in(&mut tx).await?;
        let busy = sqlx::query(&format!("SELECT 1 FROM reservation_allocations WHERE {column} = $1 AND end_date > $2"))
            .bind(id.clone())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        if busy.is_some() {
            return Ok(false);
        }
        sqlx::query(&format!("DELETE FROM {table} WHERE id = $1")).bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the allocation lock for the rest of the caller's transaction.
    pub async fn lock_in(conn: &mut sqlx::AnyConnection) -> StoreResult<()> {
        sqlx::query("UPDATE reservation_locks SET n = n + 1 WHERE name = 'allocation'").execute(conn).await?;
        Ok(())
    }
}

/// A stored enum read back: an unknown value is corrupt data, reported as a decode error.
pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(text: &str) -> StoreResult<T> {
    text.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}
