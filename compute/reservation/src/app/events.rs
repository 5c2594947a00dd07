//! The lease event schedule. Every lease has three persisted events (start, before
//! end, end); a single loop fires the due ones in time order, after a restart too, so
//! none is missed and catch-up after downtime is the same code path.
//!
//! Firing is at most once in effect: the event is claimed (UNDONE → IN_PROGRESS) in the
//! transaction that moves the lease to STARTING or TERMINATING; the action on compute
//! is idempotent; the transaction that marks the event DONE also moves the lease on. A
//! crash between the two leaves the event IN_PROGRESS, and the next pass repeats the
//! idempotent action. A failing action is retried with growing pauses (and jitter) up
//! to `event_attempts` times, then the event and the lease go to ERROR, with the last
//! error kept on the event and announced on the bus.

use super::{ReservationService, Settings};
use crate::model::{stored, EventStatus, EventType, LeaseStatus, ReservationStatus};
use crate::store::{Event, Store};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::db::{now_text, time_text};

/// The pause before attempt `n + 1`: 1 s doubling up to 5 min, with up to 25% jitter.
fn backoff(attempts: i64) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.clamp(0, 8) as u32).min(Duration::from_secs(300));
    let jitter = base.mul_f64(rand_fraction() * 0.25);
    base + jitter
}

fn rand_fraction() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0
}

impl ReservationService {
    /// Starts the schedule: a pass now (catching up on whatever came due while the
    /// service was down), then whenever woken or at the next event, at least every tick.
    pub fn start(self: &Arc<Self>) {
        self.start_health(self.settings.health_every);
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn("reservation.events", move |task| {
            let me = me.clone();
            async move {
                loop {
                    let result = me.fire_due().await;
                    task.pass(&result);
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "lease event pass failed; the next one retries");
                    }
                    let sleep = me.until_next_event().await;
                    tokio::select! {
                        _ = me.wake.notified() => {}
                        _ = tokio::time::sleep(sleep) => {}
                    }
                }
            }
        });
    }

    async fn until_next_event(&self) -> Duration {
        let Settings { tick, .. } = self.settings;
        match self.store.next_event_time().await {
            Ok(Some(t)) => match stored(&t) {
                Ok(at) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(tick),
                Err(_) => tick,
            },
            _ => tick,
        }
    }

    /// Fires every due event, oldest first; how many were fired.
    pub async fn fire_due(&self) -> anyhow::Result<usize> {
        let mut fired = 0;
        loop {
            let due = self.store.events_due(&now_text(), 100).await?;
            if due.is_empty() {
                return Ok(fired);
            }
            let n = due.len();
            for e in due {
                if let Err(err) = self.fire(e).await {
                    tracing::warn!(error = %format!("{err:#}"), "a lease event could not be recorded");
                }
                fired += 1;
            }
            if n < 100 {
                return Ok(fired);
            }
        }
    }

    async fn fire(&self, mut e: Event) -> anyhow::Result<()> {
        let _turn = self.turns.lock().await;
        let Some(mut lease) = self.store.lease_get(&e.lease_id).await? else { return Ok(()) };
        // Claim it, moving the lease to its transitional state in the same transaction.
        let from = e.status;
        e.attempts += 1;
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::event_move_in(&mut tx, &e, from, EventStatus::InProgress).await? {
            return Ok(());
        }
        match (e.event_type, lease.status) {
            (EventType::StartLease, LeaseStatus::Pending) => lease.status = LeaseStatus::Starting,
            (EventType::EndLease, LeaseStatus::Pending | LeaseStatus::Starting | LeaseStatus::Active) => {
                lease.status = LeaseStatus::Terminating
            }
            _ => {}
        }
        Store::lease_save_in(&mut tx, &lease).await?;
        tx.commit().await?;

        let detail = self.detail(vec![lease.clone()]).await?.remove(0);
        let ended = Utc::now() >= stored(&lease.end_date)?;
        let outcome = match e.event_type {
            // A start whose lease has ended meanwhile (downtime, retries) does nothing.
            EventType::StartLease if ended || lease.status != LeaseStatus::Starting => Ok(()),
            EventType::StartLease => self.hold_hosts(&detail).await,
            // `before_end: snapshot` keeps an image of each of the lease's servers; a
            // lease already ending (or ended) has no time for it.
            EventType::BeforeEndLease if lease.status != LeaseStatus::Active => Ok(()),
            EventType::BeforeEndLease => self.snapshot_servers(&detail).await,
            EventType::EndLease => self.release_hosts(&detail).await,
        };
        let mut tx = self.store.db.pool.begin().await?;
        match outcome {
            Ok(()) => {
                let (lease_to, reservations_to) = match (e.event_type, lease.status) {
                    (EventType::StartLease, LeaseStatus::Starting) => {
                        (LeaseStatus::Active, Some(ReservationStatus::Active))
                    }
                    (EventType::EndLease, LeaseStatus::Terminating) => {
                        (LeaseStatus::Terminated, Some(ReservationStatus::Deleted))
                    }
                    (_, s) => (s, None),
                };
                e.last_error.clear();
                Store::event_move_in(&mut tx, &e, EventStatus::InProgress, EventStatus::Done).await?;
                lease.status = lease_to;
                Store::lease_save_in(&mut tx, &lease).await?;
                if let Some(r) = reservations_to {
                    Store::reservations_status_in(&mut tx, &lease.id, r).await?;
                }
                tx.commit().await?;
                match e.event_type {
                    EventType::StartLease => self.notify("lease.start", &lease).await,
                    EventType::BeforeEndLease => self.notify("lease.before_end", &lease).await,
                    EventType::EndLease => {
                        let usage = serde_json::json!({"host_hours": detail.host_hours(Utc::now())});
                        self.notify_with("lease.end", &lease, usage).await
                    }
                }
            }
            Err(err) => {
                e.last_error = format!("{err:#}");
                if e.attempts >= self.settings.event_attempts {
                    tracing::error!(lease = %lease.id, event = %e.event_type, error = %e.last_error,
                                    "a lease event failed for good; the lease is in ERROR");
                    Store::event_move_in(&mut tx, &e, EventStatus::InProgress, EventStatus::Error).await?;
                    lease.status = LeaseStatus::Error;
                    Store::lease_save_in(&mut tx, &lease).await?;
                    Store::reservations_status_in(&mut tx, &lease.id, ReservationStatus::Error).await?;
                    tx.commit().await?;
                    self.notify("lease.error", &lease).await;
                } else {
                    tracing::warn!(lease = %lease.id, event = %e.event_type, attempt = e.attempts, error = %e.last_error,
                                   "a lease event failed; it is retried");
                    let wait = chrono::Duration::from_std(backoff(e.attempts)).unwrap_or(chrono::Duration::MAX);
                    e.next_try = time_text(Utc::now() + wait);
                    Store::event_move_in(&mut tx, &e, EventStatus::InProgress, EventStatus::InProgress).await?;
                    tx.commit().await?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_grows_and_is_bounded() {
        let b = |n| super::backoff(n).as_secs_f64();
        assert!(b(1) >= 2.0 && b(1) < 2.6);
        assert!(b(4) >= 16.0 && b(4) < 20.1);
        assert!(b(40) <= 375.0);
    }
}
