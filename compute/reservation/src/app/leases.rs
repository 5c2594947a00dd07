//! Leases: a window of time and reservations of hosts within it. Creating or moving a
//! lease allocates hosts in one transaction under the allocation lock: the overlap
//! check and the writes cannot interleave with another allocation, so two leases never
//! hold one host at once.

use super::{bad, project_of, require_writer, AppResult, Error, ReservationService};
use crate::filter::Query;
use crate::model::{
    lease_date, parse_date, stored, EventStatus, EventType, LeaseStatus, ReservationStatus, FLAVOR_INSTANCE,
    PHYSICAL_HOST, VIRTUAL_FLOATINGIP,
};
use crate::store::{Allocation, Event, FloatingIp, Host, HostUsage, Lease, Reservation, Store};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text, time_text};

/// A lease with what belongs to it.
#[derive(Debug, Clone)]
pub struct LeaseDetail {
    pub lease: Lease,
    pub reservations: Vec<Reservation>,
    pub events: Vec<Event>,
    pub allocations: Vec<Allocation>,
}

impl LeaseDetail {
    /// Host-hours the lease used until `until` (or its end, if earlier): for metering.
    pub fn host_hours(&self, until: DateTime<Utc>) -> f64 {
        self.allocations
            .iter()
            .filter(|a| a.floatingip_id.is_empty() && a.slots == 0)
            .filter_map(|a| Some((stored(&a.start_date).ok()?, stored(&a.end_date).ok()?)))
            .map(|(s, e)| (e.min(until) - s).num_milliseconds().max(0) as f64 / 3_600_000.0)
            .sum()
    }
}

/// How far in the past a start may be and still count as now: clients send minutes.
const START_SLACK: Duration = Duration::minutes(1);
/// Lease names are at most this long (as Blazar's).
const NAME_MAX: usize = 80;

fn text_field<'a>(body: &'a Map<String, Value>, key: &str) -> AppResult<Option<&'a str>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(bad(format!("{key} must be a string, not {other}."))),
    }
}

fn date_field(body: &Map<String, Value>, key: &str, now: DateTime<Utc>) -> AppResult<Option<DateTime<Utc>>> {
    match text_field(body, key)? {
        None => Ok(None),
        Some(t) => parse_date(t, now)
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid {key} {t:?}: use \"now\" or \"YYYY-MM-DD HH:MM\" (UTC)."))),
    }
}

/// A shift of a lease date (`prolong_for`, `reduce_by`, `defer_by`, `advance_by`), as
/// Blazar's clients write it: a whole number and a unit, `30m`, `1h`, `2d`, `1w` (or
/// seconds, `90s`).
fn shift_field(body: &Map<String, Value>, key: &str) -> AppResult<Option<chrono::Duration>> {
    let Some(t) = text_field(body, key)? else { return Ok(None) };
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: i64 =
        digits.parse().map_err(|_| bad(format!("Invalid {key} {t:?}: use a number and a unit, as 1h or 30m.")))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad(format!("Invalid {key} {t:?}: the unit is s, m, h, d or w."))),
    };
    n.checked_mul(unit_secs)
        .filter(|s| *s > 0 && *s < 100 * 365 * 86_400)
        .map(|s| Some(chrono::Duration::seconds(s)))
        .ok_or_else(|| bad(format!("Invalid {key} {t:?}: more than nothing and less than a century.")))
}

/// A count given as a number or as digits (blazarclient sends either).
fn count(r: &Map<String, Value>, key: &str) -> AppResult<Option<i64>> {
    let n = match r.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.is_empty() => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(n) if n >= 1 => Ok(Some(n)),
        _ => Err(bad(format!("The reservation's {key} must be a whole number of at least 1, not {}.", r[key]))),
    }
}

fn check_name(name: &str) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > NAME_MAX {
        return Err(bad(format!("A lease name must be 1 to {NAME_MAX} characters.")));
    }
    Ok(())
}

/// What a `physical:host` reservation asks for.
pub(crate) struct HostAsk {
    min: i64,
    max: i64,
    hypervisor: Query,
    resource: Query,
}

impl HostAsk {
    pub(crate) fn of(r: &Reservation) -> AppResult<Self> {
        Ok(Self {
            min: r.min,
            max: r.max,
            hypervisor: Query::parse(&Value::String(r.hypervisor_properties.clone())).map_err(bad)?,
            resource: Query::parse(&Value::String(r.resource_properties.clone())).map_err(bad)?,
        })
    }

    fn matches(&self, h: &Host) -> bool {
        let props = h.properties();
        h.reservable && self.hypervisor.matches(&props) && self.resource.matches(&props)
    }
}

/// Up to `want` free hosts for `ask`, at least `need`, lowest ids first; they join `taken`.
pub(crate) fn pick(
    hosts: &[Host],
    busy: &HashSet<i64>,
    taken: &mut HashSet<i64>,
    ask: &HostAsk,
    need: i64,
    want: i64,
    window: (&str, &str),
) -> AppResult<Vec<i64>> {
    let free: Vec<i64> = hosts
        .iter()
        .filter(|h| !busy.contains(&h.id) && !taken.contains(&h.id) && ask.matches(h))
        .map(|h| h.id)
        .take(want.max(0) as usize)
        .collect();
    if (free.len() as i64) < need {
        return Err(Error::NotEnoughHosts(format!(
            "Not enough hosts available: the reservation needs {need} more host(s) matching its properties \
             between {} and {}; {} are free then.",
            lease_date(stored(window.0)?),
            lease_date(stored(window.1)?),
            free.len()
        )));
    }
    taken.extend(&free);
    Ok(free)
}

/// The instances of a `flavor:instance` reservation `r` that fit on host `h` beside
/// `used` (what other reservations hold of it in the window). None fit on a host held
/// whole, a host not reservable, or a bare-metal node (taken whole by its one server).
fn free_slots(h: &Host, used: HostUsage, r: &Reservation) -> i64 {
    if used.whole || !h.reservable || h.hypervisor_type == "ironic" {
        return 0;
    }
    [
        (h.vcpus - used.vcpus, r.vcpus),
        (h.memory_mb - used.memory_mb, r.memory_mb),
        (h.local_gb - used.disk_gb, r.disk_gb),
    ]
    .into_iter()
    .filter(|(_, need)| *need > 0)
    .map(|(free, need)| (free / need).max(0))
    .min()
    .unwrap_or(0)
}

/// Where a `flavor:instance` reservation's instances go: `(host, instances)` pairs,
/// lowest host ids first. Without affinity they fill hosts in turn (few hosts, whole
/// ones left free); with `affinity: true` all go on one host, with `false` each on a
/// host of its own. `usage` is what other leases hold in the window; `here` what this
/// request took already (whole hosts, slices), which the picks join.
fn pick_slots(
    hosts: &[Host],
    usage: &HashMap<i64, HostUsage>,
    here: &mut HashMap<i64, HostUsage>,
    r: &Reservation,
    window: (&str, &str),
) -> AppResult<Vec<(i64, i64)>> {
    let amount = r.max;
    let free: Vec<(i64, i64)> = hosts
        .iter()
        .map(|h| {
            let used = usage.get(&h.id).copied().unwrap_or_default().plus(here.get(&h.id).copied().unwrap_or_default());
            (h.id, free_slots(h, used, r))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let picks: Vec<(i64, i64)> = match r.affinity {
        Some(true) => free.iter().find(|(_, n)| *n >= amount).map(|(h, _)| vec![(*h, amount)]).unwrap_or_default(),
        Some(false) => free.iter().take(amount as usize).map(|(h, _)| (*h, 1)).collect(),
        None => {
            let mut left = amount;
            let mut out = Vec::new();
            for (h, n) in &free {
                if left == 0 {
                    break;
                }
                out.push((*h, (*n).min(left)));
                left -= (*n).min(left);
            }
            out
        }
    };
    if picks.iter().map(|(_, n)| n).sum::<i64>() < amount {
        let how = match r.affinity {
            Some(true) => " on one host",
            Some(false) => " on hosts of their own",
            None => "",
        };
        return Err(Error::NotEnoughHosts(format!(
            "Not enough hosts available: no room for {amount} instance(s) of {} vCPU(s), {} MB of RAM and {} GB of \
             disk{how} between {} and {}.",
            r.vcpus,
            r.memory_mb,
            r.disk_gb,
            lease_date(stored(window.0)?),
            lease_date(stored(window.1)?),
        )));
    }
    for (h, n) in &picks {
        here.entry(*h).or_default().add_slots(*n, r);
    }
    Ok(picks)
}

/// Blazar's `affinity`: absent, null or `None` for none; a boolean or its text.
fn affinity(r: &Map<String, Value>) -> AppResult<Option<bool>> {
    match r.get("affinity") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "" | "none" | "null" => Ok(None),
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" => Ok(Some(false)),
            _ => Err(bad(format!("Invalid affinity {s:?}: use true, false or none."))),
        },
        Some(other) => Err(bad(format!("Invalid affinity {other}: use true, false or none."))),
    }
}

/// The floating IPs for a `virtual:floatingip` reservation: its required addresses,
/// then any free reservable address of its network, `max` in all, at least `min`.
fn pick_floatingips(
    fips: &[FloatingIp],
    busy: &HashSet<String>,
    taken: &mut HashSet<String>,
    r: &Reservation,
) -> AppResult<Vec<String>> {
    let free: Vec<&FloatingIp> = fips
        .iter()
        .filter(|f| {
            f.reservable && f.floating_network_id == r.network_id && !busy.contains(&f.id) && !taken.contains(&f.id)
        })
        .collect();
    let mut chosen: Vec<String> = Vec::new();
    for address in &r.required_floatingips {
        match free.iter().find(|f| &f.floating_ip_address == address) {
            Some(f) => chosen.push(f.id.clone()),
            None => {
                return Err(Error::NotEnoughHosts(format!(
                    "Floating IP {address} is not a free reservable address of network {} in that window.",
                    r.network_id
                )))
            }
        }
    }
    for f in free {
        if chosen.len() as i64 >= r.max {
            break;
        }
        if !chosen.contains(&f.id) {
            chosen.push(f.id.clone());
        }
    }
    if (chosen.len() as i64) < r.min {
        return Err(Error::NotEnoughHosts(format!(
            "Not enough floating IPs available: the reservation needs {} of network {} in that window; {} are free.",
            r.min,
            r.network_id,
            chosen.len()
        )));
    }
    taken.extend(chosen.iter().cloned());
    Ok(chosen)
}

/// A reservation as asked for in a lease create (its id and lease filled in), and the
/// flavor a `flavor:instance` one names (its shape is filled in from compute's).
fn reservation_of(r: &Map<String, Value>, lease_id: &str, created: &str) -> AppResult<(Reservation, Option<String>)> {
    let kind = r.get("resource_type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Reservation {
        id: uuid::Uuid::new_v4().to_string(),
        lease_id: lease_id.to_string(),
        resource_type: kind.to_string(),
        status: ReservationStatus::Pending,
        min: 1,
        max: 1,
        hypervisor_properties: String::new(),
        resource_properties: String::new(),
        before_end: "default".into(),
        on_start: "default".into(),
        missing_resources: false,
        resources_changed: false,
        network_id: String::new(),
        required_floatingips: Vec::new(),
        vcpus: 0,
        memory_mb: 0,
        disk_gb: 0,
        affinity: None,
        created_at: created.to_string(),
        updated_at: None,
    };
    let mut flavor = None;
    match kind {
        PHYSICAL_HOST => {
            let min = count(r, "min")?.ok_or_else(|| bad("A physical:host reservation needs min and max."))?;
            let max = count(r, "max")?.ok_or_else(|| bad("A physical:host reservation needs min and max."))?;
            if min > max {
                return Err(bad("A reservation's min must not be greater than its max."));
            }
            let query = |key: &str| -> AppResult<String> {
                Ok(Query::parse(r.get(key).unwrap_or(&Value::Null))
                    .map_err(|e| bad(format!("Invalid {key}: {e}")))?
                    .text())
            };
            out.before_end = match r.get("before_end").and_then(Value::as_str) {
                None | Some("") | Some("default") => "default".into(),
                Some("snapshot") => "snapshot".into(),
                Some(other) => return Err(bad(format!("Invalid before_end {other:?}: use default or snapshot."))),
            };
            (out.min, out.max) = (min, max);
            out.hypervisor_properties = query("hypervisor_properties")?;
            out.resource_properties = query("resource_properties")?;
        }
        VIRTUAL_FLOATINGIP => {
            out.network_id = r
                .get("network_id")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad("A virtual:floatingip reservation needs network_id."))?
                .to_string();
            let amount = count(r, "amount")?.unwrap_or(1);
            out.required_floatingips = match r.get("required_floatingips") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|a| a.as_str().map(str::to_string).ok_or_else(|| bad("required_floatingips holds addresses.")))
                    .collect::<AppResult<_>>()?,
                Some(_) => return Err(bad("required_floatingips must be a list of addresses.")),
            };
            if out.required_floatingips.len() as i64 > amount {
                return Err(bad("required_floatingips names more addresses than the amount."));
            }
            (out.min, out.max) = (amount, amount);
        }
        FLAVOR_INSTANCE => {
            flavor = Some(match r.get("flavor_id") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(bad("A flavor:instance reservation needs flavor_id.")),
            });
            let amount = count(r, "amount")?.ok_or_else(|| bad("A flavor:instance reservation needs an amount."))?;
            if amount > 1000 {
                return Err(bad("A flavor:instance reservation holds at most 1000 instances."));
            }
            (out.min, out.max) = (amount, amount);
            out.affinity = affinity(r)?;
        }
        other => {
            return Err(bad(format!(
                "Reservations of resource_type {other:?} are not supported here; use physical:host, \
                 virtual:floatingip or flavor:instance."
            )))
        }
    }
    Ok((out, flavor))
}

fn new_event(lease: &str, kind: EventType, time: &str) -> Event {
    Event {
        id: uuid::Uuid::new_v4().to_string(),
        lease_id: lease.to_string(),
        event_type: kind,
        time: time.to_string(),
        status: EventStatus::Undone,
        attempts: 0,
        next_try: time.to_string(),
        last_error: String::new(),
    }
}

impl ReservationService {
    /// When `before_end_lease` fires unless the lease names a time.
    fn default_before_end(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
        (end - Duration::minutes(self.settings.before_end_minutes)).max(start)
    }

    fn check_before_end(b: DateTime<Utc>, start: DateTime<Utc>, end: DateTime<Utc>) -> AppResult<()> {
        if b < start || b > end {
            return Err(bad("before_end_date must be between the lease's start and end dates."));
        }
        Ok(())
    }

    pub async fn lease_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> AppResult<LeaseDetail> {
        require_writer(ctx)?;
        let project = project_of(ctx)?;
        let now = Utc::now();
        let name = text_field(&body, "name")?.ok_or_else(|| bad("A lease needs a name."))?.to_string();
        check_name(&name)?;
        let start = date_field(&body, "start_date", now)?.ok_or_else(|| bad("A lease needs a start_date."))?;
        let end = date_field(&body, "end_date", now)?.ok_or_else(|| bad("A lease needs an end_date."))?;
        if start < now - START_SLACK {
            return Err(bad(format!(
                "The start date {} is in the past: use \"now\" or a later date.",
                lease_date(start)
            )));
        }
        if end <= start {
            return Err(bad("The end date must be later than the start date."));
        }
        let before_end = match date_field(&body, "before_end_date", now)? {
            Some(b) => {
                Self::check_before_end(b, start, end)?;
                b
            }
            None => self.default_before_end(start, end),
        };
        let asks = match body.get("reservations") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => return Err(bad("A lease needs at least one reservation.")),
        };
        let lease_id = uuid::Uuid::new_v4().to_string();
        let created = now_text();
        let mut reservations = Vec::new();
        for r in asks {
            let r = r.as_object().ok_or_else(|| bad("Each reservation must be an object."))?;
            let (mut r, flavor) = reservation_of(r, &lease_id, &created)?;
            if let Some(flavor) = flavor {
                self.shape_of(&mut r, &flavor, &project).await?;
            }
            reservations.push(r);
        }
        let lease = Lease {
            id: lease_id.clone(),
            name,
            project_id: project,
            user_id: ctx.user_id().to_string(),
            start_date: time_text(start),
            end_date: time_text(end),
            before_end_date: Some(time_text(before_end)),
            status: LeaseStatus::Pending,
            degraded: false,
            created_at: created,
            updated_at: None,
        };
        let events = vec![
            new_event(&lease_id, EventType::StartLease, &lease.start_date),
            new_event(&lease_id, EventType::BeforeEndLease, lease.before_end_date.as_deref().unwrap_or_default()),
            new_event(&lease_id, EventType::EndLease, &lease.end_date),
        ];
        // Hosts change rarely: read them before the lock, check the chosen ones inside.
        let hosts = self.store.host_list().await?;
        let mut tx = self.store.db.pool.begin().await?;
        Store::lock_in(&mut tx).await?;
        if let Err(e) = Store::lease_insert_in(&mut tx, &lease).await {
            return Err(if is_unique_violation(&e) {
                Error::Conflict(format!("A lease named {} already exists in this project.", lease.name))
            } else {
                e.into()
            });
        }
        let busy = Store::busy_hosts_in(&mut tx, &lease.start_date, &lease.end_date, &lease.id).await?;
        // What other leases' slices hold: only instance reservations need it.
        let usage = if reservations.iter().any(|r| r.resource_type == FLAVOR_INSTANCE) {
            Store::host_usage_in(&mut tx, &lease.start_date, &lease.end_date, &lease.id).await?
        } else {
            HashMap::new()
        };
        let fips = Store::floatingip_list_in(&mut tx).await?;
        let busy_fips = Store::busy_floatingips_in(&mut tx, &lease.start_date, &lease.end_date, &lease.id).await?;
        let (mut taken, mut taken_fips) = (HashSet::new(), HashSet::new());
        // What this lease takes of each host, whole or in slices, as it goes.
        let mut here: HashMap<i64, HostUsage> = HashMap::new();
        let mut allocations = Vec::new();
        let window = (lease.start_date.as_str(), lease.end_date.as_str());
        for r in &reservations {
            let allocation = |host_id: i64, floatingip_id: String, slots: i64| Allocation {
                id: uuid::Uuid::new_v4().to_string(),
                reservation_id: r.id.clone(),
                lease_id: lease.id.clone(),
                host_id,
                floatingip_id,
                slots,
                start_date: lease.start_date.clone(),
                end_date: lease.end_date.clone(),
            };
            if r.resource_type == VIRTUAL_FLOATINGIP {
                for f in pick_floatingips(&fips, &busy_fips, &mut taken_fips, r)? {
                    allocations.push(allocation(0, f, 0));
                }
            } else if r.resource_type == FLAVOR_INSTANCE {
                for (host_id, slots) in pick_slots(&hosts, &usage, &mut here, r, window)? {
                    allocations.push(allocation(host_id, String::new(), slots));
                }
            } else {
                let ask = HostAsk::of(r)?;
                // Hosts this lease slices are not free to take whole either.
                let busy: HashSet<i64> = busy.iter().chain(here.keys()).copied().collect();
                for host_id in pick(&hosts, &busy, &mut taken, &ask, ask.min, ask.max, window)? {
                    here.entry(host_id).or_default().whole = true;
                    allocations.push(allocation(host_id, String::new(), 0));
                }
            }
            Store::reservation_insert_in(&mut tx, r).await?;
        }
        Self::hosts_still_there(&mut tx, &allocations).await?;
        for a in &allocations {
            Store::allocation_insert_in(&mut tx, a).await?;
        }
        for e in &events {
            Store::event_insert_in(&mut tx, e).await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        self.notify("lease.create", &lease).await;
        Ok(LeaseDetail { lease, reservations, events, allocations })
    }

    pub(crate) async fn detail(&self, leases: Vec<Lease>) -> AppResult<Vec<LeaseDetail>> {
        let ids: Vec<&str> = leases.iter().map(|l| l.id.as_str()).collect();
        let mut reservations: HashMap<String, Vec<Reservation>> = HashMap::new();
        for r in self.store.reservations_of(&ids).await? {
            reservations.entry(r.lease_id.clone()).or_default().push(r);
        }
        let mut events: HashMap<String, Vec<Event>> = HashMap::new();
        for e in self.store.events_of(&ids).await? {
            events.entry(e.lease_id.clone()).or_default().push(e);
        }
        let mut allocations: HashMap<String, Vec<Allocation>> = HashMap::new();
        for a in self.store.allocations_of(&ids).await? {
            allocations.entry(a.lease_id.clone()).or_default().push(a);
        }
        Ok(leases
            .into_iter()
            .map(|lease| LeaseDetail {
                reservations: reservations.remove(&lease.id).unwrap_or_default(),
                events: events.remove(&lease.id).unwrap_or_default(),
                allocations: allocations.remove(&lease.id).unwrap_or_default(),
                lease,
            })
            .collect())
    }

    /// A lease the caller may see (another project's answers 404, as if absent).
    pub async fn lease_get(&self, ctx: &AuthContext, id: &str) -> AppResult<LeaseDetail> {
        let lease = self
            .store
            .lease_get(id)
            .await?
            .filter(|l| ctx.is_admin() || ctx.project_id() == Some(l.project_id.as_str()))
            .ok_or_else(|| Error::NotFound(format!("Lease {id} could not be found.")))?;
        Ok(self.detail(vec![lease]).await?.remove(0))
    }

    /// The caller's project's leases; an admin sees every project's (or `project`'s).
    pub async fn lease_list(&self, ctx: &AuthContext, project: Option<&str>) -> AppResult<Vec<LeaseDetail>> {
        let scope = if ctx.is_admin() { project.map(str::to_string) } else { Some(project_of(ctx)?) };
        let leases = self.store.lease_list(scope.as_deref()).await?;
        self.detail(leases).await
    }

    /// Renames, moves (prolong, shorten, defer, advance) or resizes a lease. Moving
    /// re-checks its hosts for the new window; growing a reservation allocates more.
    pub async fn lease_update(&self, ctx: &AuthContext, id: &str, body: Map<String, Value>) -> AppResult<LeaseDetail> {
        require_writer(ctx)?;
        let _turn = self.turns.lock().await;
        let LeaseDetail { mut lease, reservations, allocations, .. } = self.lease_get(ctx, id).await?;
        let known = [
            "name",
            "start_date",
            "end_date",
            "before_end_date",
            "reservations",
            "events",
            "prolong_for",
            "reduce_by",
            "defer_by",
            "advance_by",
        ];
        if let Some(k) = body.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(bad(format!("Unknown lease field {k}.")));
        }
        let now = Utc::now();
        if let Some(name) = text_field(&body, "name")? {
            check_name(name)?;
            lease.name = name.to_string();
        }
        let (old_start, old_end) = (stored(&lease.start_date)?, stored(&lease.end_date)?);
        let mut start = date_field(&body, "start_date", now)?.unwrap_or(old_start);
        let mut end = date_field(&body, "end_date", now)?.unwrap_or(old_end);
        // Shifts, as Blazar takes them: of the end (`prolong_for`, `reduce_by`) and of the
        // start (`defer_by`, `advance_by`), each instead of naming the date.
        let shifts = [
            ("prolong_for", "end_date", 1),
            ("reduce_by", "end_date", -1),
            ("defer_by", "start_date", 1),
            ("advance_by", "start_date", -1),
        ];
        let mut shifted: Vec<&str> = Vec::new();
        for (key, date, sign) in shifts {
            let Some(by) = shift_field(&body, key)? else { continue };
            if body.contains_key(date) || shifted.contains(&date) {
                return Err(bad(format!("Give one change of the lease's {date}: {key} is one too many.")));
            }
            shifted.push(date);
            let by = if sign > 0 { by } else { -by };
            if date == "end_date" {
                end = old_end + by;
            } else {
                start = old_start + by;
            }
        }
        let moved = start != old_start || end != old_end;
        let grows = body.get("reservations").is_some();
        if (moved || grows)
            && matches!(lease.status, LeaseStatus::Terminating | LeaseStatus::Terminated | LeaseStatus::Error)
        {
            return Err(Error::Conflict(format!("Lease {id} is {}: its dates and hosts cannot change.", lease.status)));
        }
        if start != old_start {
            if lease.status != LeaseStatus::Pending {
                return Err(bad("The start date of a lease that has started cannot change."));
            }
            if start < now - START_SLACK {
                return Err(bad("The new start date is in the past."));
            }
            start = start.max(now - START_SLACK);
        }
        if end <= start || end <= now {
            return Err(bad("The end date must be later than the start date and than now."));
        }
        let before_end = match date_field(&body, "before_end_date", now)? {
            Some(b) => {
                Self::check_before_end(b, start, end)?;
                b
            }
            None if moved => self.default_before_end(start, end),
            None => lease.before_end_date.as_deref().map(stored).transpose()?.unwrap_or(end),
        };
        // New counts per reservation id: hosts' min and max, instances' amount.
        let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
        let mut amounts: HashMap<String, i64> = HashMap::new();
        if let Some(list) = body.get("reservations") {
            let list = list.as_array().ok_or_else(|| bad("reservations must be a list."))?;
            for r in list {
                let r = r.as_object().ok_or_else(|| bad("Each reservation must be an object."))?;
                let rid = r
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("Each reservation to change needs its id."))?;
                let mine = reservations
                    .iter()
                    .find(|x| x.id == rid)
                    .ok_or_else(|| Error::NotFound(format!("Reservation {rid} is not part of lease {id}.")))?;
                if mine.resource_type == FLAVOR_INSTANCE {
                    if let Some(k) = r.keys().find(|k| !matches!(k.as_str(), "id" | "amount" | "resource_type")) {
                        return Err(bad(format!(
                            "Reservation {rid} is a {FLAVOR_INSTANCE}: its amount changes, not its {k}."
                        )));
                    }
                    let amount = count(r, "amount")?.unwrap_or(mine.max);
                    if !(1..=1000).contains(&amount) {
                        return Err(bad("A flavor:instance reservation's amount is 1 to 1000."));
                    }
                    if amount < mine.max && lease.status != LeaseStatus::Pending {
                        return Err(bad(format!(
                            "Reservation {rid} belongs to a lease that has started: its amount may grow, not shrink."
                        )));
                    }
                    amounts.insert(rid.to_string(), amount);
                    continue;
                }
                if mine.resource_type != PHYSICAL_HOST {
                    return Err(bad(format!(
                        "Reservation {rid} is a {}: only host and instance reservations change size.",
                        mine.resource_type
                    )));
                }
                let min = count(r, "min")?.unwrap_or(mine.min);
                let max = count(r, "max")?.unwrap_or(mine.max);
                if min > max {
                    return Err(bad("A reservation's min must not be greater than its max."));
                }
                counts.insert(rid.to_string(), (min, max));
            }
        }
        lease.start_date = time_text(start);
        lease.end_date = time_text(end);
        lease.before_end_date = Some(time_text(before_end));
        let window = (lease.start_date.clone(), lease.end_date.clone());
        let mut added: Vec<Allocation> = Vec::new();
        let mut dropped: Vec<Allocation> = Vec::new();
        let hosts = self.store.host_list().await?;
        let mut tx = self.store.db.pool.begin().await?;
        Store::lock_in(&mut tx).await?;
        let busy = Store::busy_hosts_in(&mut tx, &window.0, &window.1, &lease.id).await?;
        if moved {
            let busy_fips = Store::busy_floatingips_in(&mut tx, &window.0, &window.1, &lease.id).await?;
            if let Some(a) =
                allocations.iter().find(|a| !a.floatingip_id.is_empty() && busy_fips.contains(&a.floatingip_id))
            {
                return Err(Error::NotEnoughHosts(format!(
                    "Not enough floating IPs available: floating IP {} is reserved by another lease in the new window.",
                    a.floatingip_id
                )));
            }
            let usage = if allocations.iter().any(|a| a.slots > 0) {
                Store::host_usage_in(&mut tx, &window.0, &window.1, &lease.id).await?
            } else {
                HashMap::new()
            };
            // A host held whole must be free of others; a slice must still fit beside
            // what others hold then.
            let mut mine: HashMap<i64, HostUsage> = HashMap::new();
            let lost = allocations.iter().filter(|a| a.floatingip_id.is_empty()).find(|a| {
                if a.slots == 0 {
                    return busy.contains(&a.host_id);
                }
                let (Some(h), Some(r)) =
                    (hosts.iter().find(|h| h.id == a.host_id), reservations.iter().find(|r| r.id == a.reservation_id))
                else {
                    return true;
                };
                let m = mine.entry(a.host_id).or_default();
                let used = usage.get(&a.host_id).copied().unwrap_or_default().plus(*m);
                m.add_slots(a.slots, r);
                free_slots(h, used, r) < a.slots
            });
            if let Some(a) = lost {
                let name = hosts.iter().find(|h| h.id == a.host_id).map(|h| h.hypervisor_hostname.clone());
                return Err(Error::NotEnoughHosts(format!(
                    "Not enough hosts available: host {} is reserved by another lease in the new window.",
                    name.unwrap_or_default()
                )));
            }
            Store::allocations_window_in(&mut tx, &lease.id, &window.0, &window.1).await?;
        }
        let mut taken: HashSet<i64> =
            allocations.iter().filter(|a| a.floatingip_id.is_empty()).map(|a| a.host_id).collect();
        for r in &reservations {
            let Some(&(min, max)) = counts.get(&r.id) else { continue };
            let held: Vec<&Allocation> = allocations.iter().filter(|a| a.reservation_id == r.id).collect();
            let have = held.len() as i64;
            if have < max {
                let mut ask = HostAsk::of(r)?;
                ask.min = min;
                let need = (min - have).max(0);
                for host_id in pick(&hosts, &busy, &mut taken, &ask, need, max - have, (&window.0, &window.1))? {
                    added.push(Allocation {
                        id: uuid::Uuid::new_v4().to_string(),
                        reservation_id: r.id.clone(),
                        lease_id: lease.id.clone(),
                        host_id,
                        floatingip_id: String::new(),
                        slots: 0,
                        start_date: window.0.clone(),
                        end_date: window.1.clone(),
                    });
                }
            } else if have > max {
                let mut extra: Vec<&Allocation> = held.clone();
                extra.sort_by_key(|a| std::cmp::Reverse(a.host_id));
                dropped.extend(extra.into_iter().take((have - max) as usize).cloned());
            }
            Store::reservation_counts_in(&mut tx, &r.id, min, max).await?;
        }
        // Instance reservations of a new amount: a lease not started picks its slices
        // again; one under way keeps them and takes more (grown in place where it has
        // a slice on the host).
        let mut grown: Vec<(i64, String)> = Vec::new();
        for r in &reservations {
            let Some(&amount) = amounts.get(&r.id).filter(|a| **a != r.max) else { continue };
            let usage = Store::host_usage_in(&mut tx, &window.0, &window.1, &lease.id).await?;
            let started = lease.status != LeaseStatus::Pending;
            // What this lease holds besides: whole hosts, other reservations' slices,
            // and this one's own when it keeps them.
            let mut here: HashMap<i64, HostUsage> = HashMap::new();
            for a in allocations.iter().filter(|a| a.floatingip_id.is_empty()) {
                if a.reservation_id == r.id && !started {
                    continue;
                }
                let u = here.entry(a.host_id).or_default();
                match (a.slots, reservations.iter().find(|x| x.id == a.reservation_id)) {
                    (0, _) => u.whole = true,
                    (n, Some(x)) => u.add_slots(n, x),
                    (_, None) => {}
                }
            }
            let mine: Vec<&Allocation> = allocations.iter().filter(|a| a.reservation_id == r.id).collect();
            let mut ask = r.clone();
            ask.max = if started { amount - r.max } else { amount };
            // With affinity, more instances of a started lease go where the others are
            // (true) or on hosts that have none yet (false).
            let candidates: Vec<Host> = hosts
                .iter()
                .filter(|h| match (started, r.affinity) {
                    (true, Some(true)) => mine.iter().any(|a| a.host_id == h.id),
                    (true, Some(false)) => !mine.iter().any(|a| a.host_id == h.id),
                    _ => true,
                })
                .cloned()
                .collect();
            let picks = pick_slots(&candidates, &usage, &mut here, &ask, (&window.0, &window.1))?;
            if !started {
                dropped.extend(mine.iter().map(|a| (*a).clone()));
            }
            for (host_id, slots) in picks {
                match mine.iter().find(|a| a.host_id == host_id).filter(|_| started) {
                    Some(a) => {
                        Store::allocation_slots_in(&mut tx, &a.id, a.slots + slots).await?;
                        grown.push((host_id, r.id.clone()));
                    }
                    None => added.push(Allocation {
                        id: uuid::Uuid::new_v4().to_string(),
                        reservation_id: r.id.clone(),
                        lease_id: lease.id.clone(),
                        host_id,
                        floatingip_id: String::new(),
                        slots,
                        start_date: window.0.clone(),
                        end_date: window.1.clone(),
                    }),
                }
            }
            Store::reservation_counts_in(&mut tx, &r.id, amount, amount).await?;
        }
        Self::hosts_still_there(&mut tx, &added).await?;
        for a in &added {
            Store::allocation_insert_in(&mut tx, a).await?;
        }
        for a in &dropped {
            Store::allocation_delete_in(&mut tx, &a.id).await?;
        }
        if let Err(e) = Store::lease_save_in(&mut tx, &lease).await {
            return Err(if is_unique_violation(&e) {
                Error::Conflict(format!("A lease named {} already exists in this project.", lease.name))
            } else {
                e.into()
            });
        }
        Store::event_reschedule_in(&mut tx, &lease.id, EventType::StartLease, &lease.start_date).await?;
        Store::event_reschedule_in(&mut tx, &lease.id, EventType::EndLease, &lease.end_date).await?;
        if let Some(b) = &lease.before_end_date {
            if before_end > now {
                Store::event_rearm_in(&mut tx, &lease.id, EventType::BeforeEndLease).await?;
            }
            Store::event_reschedule_in(&mut tx, &lease.id, EventType::BeforeEndLease, b).await?;
        }
        tx.commit().await?;
        // Hosts of a lease already holding its hosts change hands now; slices grow.
        if matches!(lease.status, LeaseStatus::Starting | LeaseStatus::Active)
            && (!added.is_empty() || !dropped.is_empty() || !grown.is_empty())
        {
            let names: HashMap<i64, String> = hosts.iter().map(|h| (h.id, h.hypervisor_hostname.clone())).collect();
            let mut failed = false;
            let now_held = self.store.allocations_of(&[lease.id.as_str()]).await?;
            for a in &added {
                let host = names.get(&a.host_id).cloned().unwrap_or_default();
                if a.slots > 0 {
                    grown.push((a.host_id, a.reservation_id.clone()));
                    continue;
                }
                failed |= self.compute.reserve(&host, &a.reservation_id, &lease.project_id).await.is_err();
            }
            for (host_id, rid) in &grown {
                let host = names.get(host_id).cloned().unwrap_or_default();
                let (Some(a), Some(r)) = (
                    now_held.iter().find(|a| a.host_id == *host_id && a.reservation_id == *rid),
                    reservations.iter().find(|r| r.id == *rid),
                ) else {
                    continue;
                };
                let size = (a.slots * r.vcpus, a.slots * r.memory_mb, a.slots * r.disk_gb);
                failed |= self.compute.reserve_slice(&host, rid, &lease.project_id, size).await.is_err();
            }
            for a in &dropped {
                let host = names.get(&a.host_id).cloned().unwrap_or_default();
                failed |= self.compute.release(&host, &a.reservation_id).await.is_err();
            }
            if failed {
                tracing::warn!(lease = %lease.id, "compute refused a change of hosts; the lease is degraded");
                lease.degraded = true;
                let mut tx = self.store.db.pool.begin().await?;
                Store::lease_save_in(&mut tx, &lease).await?;
                tx.commit().await?;
            }
        }
        self.wake.notify_one();
        self.notify("lease.update", &lease).await;
        self.lease_get(ctx, id).await
    }

    /// Deletes a lease: a lease holding hosts gives them back first (its servers are
    /// deleted), so nothing is left held when the lease is gone.
    pub async fn lease_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        let _turn = self.turns.lock().await;
        let detail = self.lease_get(ctx, id).await?;
        if !matches!(detail.lease.status, LeaseStatus::Pending | LeaseStatus::Terminated) {
            self.release_hosts(&detail).await.map_err(|e| {
                Error::Unavailable(format!(
                    "Compute could not take back the lease's hosts ({e:#}); the lease is unchanged, try again."
                ))
            })?;
        }
        let mut tx = self.store.db.pool.begin().await?;
        Store::lease_delete_in(&mut tx, id).await?;
        tx.commit().await?;
        let usage = serde_json::json!({"host_hours": detail.host_hours(Utc::now())});
        self.notify_with("lease.delete", &detail.lease, usage).await;
        Ok(())
    }

    /// Fills in a `flavor:instance` reservation's shape from flavor `id` of compute
    /// (one the project may use): one instance's vCPUs, RAM and disk (root and
    /// ephemeral), and the flavor itself in `resource_properties`, as Blazar shows it.
    async fn shape_of(&self, r: &mut Reservation, id: &str, project: &str) -> AppResult<()> {
        let flavor = self
            .compute
            .flavor(id, project)
            .await
            .map_err(|e| Error::Unavailable(format!("Compute could not be asked for flavor {id}: {e:#}")))?
            .ok_or_else(|| bad(format!("Flavor {id} could not be found.")))?;
        if flavor["extra_specs"].get(crate::compute::RESERVATION_SPEC).is_some() {
            return Err(bad(format!(
                "Flavor {id} is a reservation's own flavor; reserve the flavor it was made from."
            )));
        }
        let int = |k: &str| flavor[k].as_i64().unwrap_or(0).max(0);
        // Disk as compute claims it: root, ephemeral and swap (in whole GB).
        let disk = int("disk") + int("OS-FLV-EXT-DATA:ephemeral") + (int("swap") + 1023) / 1024;
        (r.vcpus, r.memory_mb, r.disk_gb) = (int("vcpus"), int("ram"), disk);
        if r.vcpus + r.memory_mb + r.disk_gb == 0 {
            return Err(bad(format!("Flavor {id} asks for nothing to reserve.")));
        }
        r.resource_properties = flavor.to_string();
        Ok(())
    }

    /// Hands every allocated host and floating IP to its reservation (idempotent); a
    /// `flavor:instance` reservation gets its flavor, then its slices.
    pub(crate) async fn hold_hosts(&self, d: &LeaseDetail) -> anyhow::Result<()> {
        let names = self.host_names().await?;
        let fips = self.floatingips().await?;
        for r in d.reservations.iter().filter(|r| r.resource_type == FLAVOR_INSTANCE) {
            let source: Value = serde_json::from_str(&r.resource_properties)?;
            self.compute.make_flavor(&r.id, &d.lease.project_id, &source).await?;
        }
        for a in &d.allocations {
            if a.slots > 0 {
                let host = names.get(&a.host_id).ok_or_else(|| anyhow::anyhow!("host {} is gone", a.host_id))?;
                let r = d
                    .reservations
                    .iter()
                    .find(|r| r.id == a.reservation_id)
                    .ok_or_else(|| anyhow::anyhow!("reservation {} is gone", a.reservation_id))?;
                let size = (a.slots * r.vcpus, a.slots * r.memory_mb, a.slots * r.disk_gb);
                self.compute.reserve_slice(host, &r.id, &d.lease.project_id, size).await?;
            } else if a.floatingip_id.is_empty() {
                let host = names.get(&a.host_id).ok_or_else(|| anyhow::anyhow!("host {} is gone", a.host_id))?;
                self.compute.reserve(host, &a.reservation_id, &d.lease.project_id).await?;
            } else {
                let f = fips
                    .get(&a.floatingip_id)
                    .ok_or_else(|| anyhow::anyhow!("floating IP {} is gone", a.floatingip_id))?;
                self.network
                    .hand_out(&f.floating_network_id, &f.floating_ip_address, &d.lease.project_id, &a.reservation_id)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes the servers on every allocated host and gives the hosts back; deletes the
    /// floating IPs handed out (idempotent).
    /// `before_end: snapshot`: an image of every server in each such reservation's
    /// hosts, given to the lease's project (once per server: a repeated event finds
    /// the images it made).
    pub(crate) async fn snapshot_servers(&self, d: &LeaseDetail) -> anyhow::Result<()> {
        let names = self.host_names().await?;
        for r in d.reservations.iter().filter(|r| r.before_end == "snapshot") {
            for a in d.allocations.iter().filter(|a| a.floatingip_id.is_empty() && a.reservation_id == r.id) {
                if let Some(host) = names.get(&a.host_id) {
                    self.compute.snapshot(host, &r.id, &d.lease.project_id, &d.lease.id).await?;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn release_hosts(&self, d: &LeaseDetail) -> anyhow::Result<()> {
        let names = self.host_names().await?;
        let fips = self.floatingips().await?;
        for a in &d.allocations {
            if a.floatingip_id.is_empty() {
                if let Some(host) = names.get(&a.host_id) {
                    self.compute.release(host, &a.reservation_id).await?;
                }
            } else if let Some(f) = fips.get(&a.floatingip_id) {
                self.network.take_back(&f.floating_network_id, &f.floating_ip_address, &a.reservation_id).await?;
            }
        }
        for r in d.reservations.iter().filter(|r| r.resource_type == FLAVOR_INSTANCE) {
            self.compute.drop_flavor(&r.id).await?;
        }
        Ok(())
    }

    /// Refuses allocations of hosts removed since they were read (the caller holds the
    /// allocation lock, so none can go after this check).
    pub(crate) async fn hosts_still_there(conn: &mut sqlx::AnyConnection, allocations: &[Allocation]) -> AppResult<()> {
        let ids: Vec<i64> = allocations.iter().filter(|a| a.floatingip_id.is_empty()).map(|a| a.host_id).collect();
        let present = Store::hosts_present_in(conn, &ids).await?;
        match ids.iter().find(|id| !present.contains(id)) {
            Some(id) => Err(Error::Conflict(format!("Host {id} stopped being reservable meanwhile; try again."))),
            None => Ok(()),
        }
    }

    async fn floatingips(&self) -> anyhow::Result<HashMap<String, FloatingIp>> {
        Ok(self.store.floatingip_list().await?.into_iter().map(|f| (f.id.clone(), f)).collect())
    }

    async fn host_names(&self) -> anyhow::Result<HashMap<i64, String>> {
        Ok(self.store.host_list().await?.into_iter().map(|h| (h.id, h.hypervisor_hostname)).collect())
    }
}
