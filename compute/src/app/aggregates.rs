//! Host aggregates (admin): groups of hosts with metadata. An aggregate with an
//! availability zone puts its hosts in that zone, for the scheduler and for
//! `os-availability-zone`; a host is never in two zones at once.

use super::{bad, conflict, not_found, require_admin, AppResult, ComputeService};
use crate::store::{Aggregate, AggregateChange};
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;

/// Nova's limit on names, zones and metadata keys and values.
const MAX: usize = 255;

fn checked<'a>(what: &str, v: &'a str) -> AppResult<&'a str> {
    let n = v.chars().count();
    if n == 0 || n > MAX || v.trim() != v {
        return Err(bad(format!(
            "Invalid input for field/attribute {what}: it must be 1 to {MAX} characters, without leading or trailing spaces."
        )));
    }
    Ok(v)
}

/// What a store change answers, or its refusal in Nova's words.
fn outcome(id: &str, change: AggregateChange) -> AppResult<Aggregate> {
    match change {
        AggregateChange::Done(a) => Ok(a),
        AggregateChange::Gone => Err(not_found(format!("Aggregate {id} could not be found."))),
        AggregateChange::NameTaken => Err(conflict("An aggregate with that name already exists.")),
        AggregateChange::NoHost => Err(not_found(format!("The host is not known, or not in aggregate {id}."))),
        AggregateChange::AlreadyMember => Err(conflict(format!("The host is already in aggregate {id}."))),
        AggregateChange::ZoneConflict(other) => Err(conflict(format!(
            "A host of aggregate {id} is in availability zone {other} through another aggregate: a host is in one zone only."
        ))),
        AggregateChange::NotEmpty => {
            Err(bad(format!("Cannot delete aggregate {id}: it still has hosts; remove them first.")))
        }
    }
}

impl ComputeService {
    /// The scheduler's view takes the hosts' zones as they are now (after a change of
    /// membership or zone).
    async fn rezoned(&self, a: Aggregate) -> AppResult<Aggregate> {
        for row in self.store.host_list().await? {
            self.scheduler.update(row);
        }
        Ok(a)
    }

    pub async fn aggregate_list(&self, ctx: &AuthContext) -> AppResult<Vec<Aggregate>> {
        require_admin(ctx, "os_compute_api:os-aggregates:index")?;
        Ok(self.store.aggregate_list().await?)
    }

    pub async fn aggregate_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:show")?;
        outcome(id, self.store.aggregate_get(id).await?.map_or(AggregateChange::Gone, AggregateChange::Done))
    }

    pub async fn aggregate_create(&self, ctx: &AuthContext, name: &str, zone: Option<&str>) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:create")?;
        let name = checked("name", name)?;
        let zone = zone.map(|z| checked("availability_zone", z)).transpose()?;
        outcome(name, self.store.aggregate_create(name, zone).await?)
    }

    /// Renames it or moves it to another zone (`Some(None)`: none).
    pub async fn aggregate_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        name: Option<&str>,
        zone: Option<Option<&str>>,
    ) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:update")?;
        if name.is_none() && zone.is_none() {
            return Err(bad("Invalid input: give name or availability_zone."));
        }
        let name = name.map(|n| checked("name", n)).transpose()?;
        let zone = match zone {
            Some(Some(z)) => Some(Some(checked("availability_zone", z)?)),
            other => other,
        };
        self.rezoned(outcome(id, self.store.aggregate_update(id, name, zone, &Map::new()).await?)?).await
    }

    /// Sets metadata (a string) or removes it (null); `availability_zone` moves the
    /// aggregate to that zone (null: out of any).
    pub async fn aggregate_set_metadata(
        &self,
        ctx: &AuthContext,
        id: &str,
        metadata: &Map<String, Value>,
    ) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:set_metadata")?;
        let mut rest = Map::new();
        let mut zone = None;
        for (k, v) in metadata {
            checked("metadata key", k)?;
            let value = match v {
                Value::Null => None,
                Value::String(s) if s.chars().count() <= MAX => Some(s.as_str()),
                _ => {
                    return Err(bad(format!(
                        "Invalid metadata value for {k}: a string of at most {MAX} characters, or null."
                    )))
                }
            };
            if k == "availability_zone" {
                zone = Some(value.map(|z| checked("availability_zone", z)).transpose()?);
            } else {
                rest.insert(k.clone(), v.clone());
            }
        }
        self.rezoned(outcome(id, self.store.aggregate_update(id, None, zone, &rest).await?)?).await
    }

    pub async fn aggregate_add_host(&self, ctx: &AuthContext, id: &str, host: &str) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:add_host")?;
        self.rezoned(outcome(id, self.store.aggregate_add_host(id, host).await?)?).await
    }

    pub async fn aggregate_remove_host(&self, ctx: &AuthContext, id: &str, host: &str) -> AppResult<Aggregate> {
        require_admin(ctx, "os_compute_api:os-aggregates:remove_host")?;
        self.rezoned(outcome(id, self.store.aggregate_remove_host(id, host).await?)?).await
    }

    pub async fn aggregate_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_admin(ctx, "os_compute_api:os-aggregates:delete")?;
        outcome(id, self.store.aggregate_delete(id).await?).map(drop)
    }
}
