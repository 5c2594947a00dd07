//! Hosts that fail during a lease. A periodic pass asks compute which hypervisors are
//! up and enabled; an active lease holding one that is not gets a healthy free host that
//! matches its reservation in its place, for the rest of its window (the reservation
//! shows `resources_changed`), or, when none is free, is marked `degraded` with the
//! reservation's `missing_resources` set. Replacements are allocated under the same
//! lock as any allocation, so they never double-book either.

use super::leases::{pick, HostAsk};
use super::ReservationService;
use crate::model::LeaseStatus;
use crate::store::{Allocation, Store};
use chrono::Utc;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use stratus_common::db::time_text;

impl ReservationService {
    /// Runs [`Self::check_hosts`] every `every`.
    pub fn start_health(self: &Arc<Self>, every: Duration) {
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn_every("reservation.host-health", every, move || {
            let me = me.clone();
            async move { me.check_hosts().await }
        });
    }

    /// One pass: how many failed hosts were replaced.
    pub async fn check_hosts(&self) -> anyhow::Result<usize> {
        let leases = self.store.leases_in_status(LeaseStatus::Active).await?;
        if leases.is_empty() {
            return Ok(0);
        }
        let health = self.compute.health().await?;
        let names: HashMap<i64, String> =
            self.store.host_list().await?.into_iter().map(|h| (h.id, h.hypervisor_hostname)).collect();
        let failed_host = |a: &Allocation| {
            a.floatingip_id.is_empty() && names.get(&a.host_id).is_some_and(|n| health.get(n) == Some(&false))
        };
        let mut replaced = 0;
        for lease in leases {
            let d = self.detail(vec![lease]).await?.remove(0);
            if !d.allocations.iter().any(failed_host) {
                continue;
            }
            let _turn = self.turns.lock().await;
            let mut lease = d.lease.clone();
            let now = time_text(Utc::now());
            let healthy: Vec<_> = self
                .store
                .host_list()
                .await?
                .into_iter()
                .filter(|h| health.get(&h.hypervisor_hostname) == Some(&true))
                .collect();
            let mut tx = self.store.db.pool.begin().await?;
            Store::lock_in(&mut tx).await?;
            let busy = Store::busy_hosts_in(&mut tx, &now, &lease.end_date, &lease.id).await?;
            let mut taken: HashSet<i64> =
                d.allocations.iter().filter(|a| a.floatingip_id.is_empty()).map(|a| a.host_id).collect();
            let (mut moves, mut changed, mut missing) = (Vec::new(), HashSet::new(), HashSet::new());
            for a in d.allocations.iter().filter(|a| failed_host(a)) {
                let Some(r) = d.reservations.iter().find(|r| r.id == a.reservation_id) else { continue };
                // Slices of a failed host are not moved (their servers are there):
                // the reservation misses them.
                if a.slots > 0 {
                    missing.insert(r.id.clone());
                    continue;
                }
                let ask = HostAsk::of(r)?;
                match pick(&healthy, &busy, &mut taken, &ask, 0, 1, (&now, &lease.end_date))?.first() {
                    Some(&host) => {
                        Store::allocation_move_in(&mut tx, &a.id, host).await?;
                        moves.push((a.clone(), host));
                        changed.insert(r.id.clone());
                    }
                    None => {
                        missing.insert(r.id.clone());
                    }
                }
            }
            let moved: Vec<Allocation> =
                moves.iter().map(|(a, host)| Allocation { host_id: *host, ..a.clone() }).collect();
            Self::hosts_still_there(&mut tx, &moved).await?;
            for r in &d.reservations {
                if changed.contains(&r.id) || missing.contains(&r.id) {
                    let was_changed = r.resources_changed || changed.contains(&r.id);
                    Store::reservation_flags_in(&mut tx, &r.id, missing.contains(&r.id), was_changed).await?;
                }
            }
            lease.degraded = !missing.is_empty();
            Store::lease_save_in(&mut tx, &lease).await?;
            tx.commit().await?;
            let all_names: HashMap<i64, String> =
                self.store.host_list().await?.into_iter().map(|h| (h.id, h.hypervisor_hostname)).collect();
            for (a, host) in &moves {
                let new = all_names.get(host).cloned().unwrap_or_default();
                if let Err(e) = self.compute.reserve(&new, &a.reservation_id, &lease.project_id).await {
                    tracing::warn!(lease = %lease.id, host = %new, error = %format!("{e:#}"),
                                   "could not hold the replacement host; the lease is degraded");
                    lease.degraded = true;
                }
                // The failed host is given back as far as compute can (it may be gone).
                let old = names.get(&a.host_id).cloned().unwrap_or_default();
                if let Err(e) = self.compute.release(&old, &a.reservation_id).await {
                    tracing::info!(host = %old, error = %format!("{e:#}"), "a failed host could not be given back yet");
                }
                replaced += 1;
            }
            if lease.degraded {
                let mut tx = self.store.db.pool.begin().await?;
                Store::lease_save_in(&mut tx, &lease).await?;
                tx.commit().await?;
            }
            tracing::warn!(lease = %lease.id, replaced = moves.len(), missing = missing.len(), "hosts of a lease failed");
            self.notify(if lease.degraded { "lease.degraded" } else { "lease.resources_changed" }, &lease).await;
        }
        Ok(replaced)
    }
}
