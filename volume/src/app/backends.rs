//! What the backends hold, as Cinder's scheduler reports it to administrators: pools
//! (`GET /scheduler-stats/get_pools`) and a backend's capabilities
//! (`GET /capabilities/{host}`). Each backend is one pool, named as Cinder names
//! volumes' hosts: `<host>@<backend>#<backend>`.

use super::{require_admin, AppResult, Error, VolumeService};
use crate::driver::{Capacity, VolumeDriver};
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// Cinder's vendor name for the backends here.
pub const VENDOR: &str = "Stratus";
/// The version the backends report.
pub const DRIVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What a backend reports to the scheduler (and to admins as its pool's capabilities):
/// `room` is its store's, `given` the GiB its volumes were given. Volume types' extra
/// specs are matched against these (`app::scheduler`).
pub fn capabilities(name: &str, driver: &dyn VolumeDriver, room: Capacity, given: i64) -> Value {
    json!({
        "pool_name": name,
        "volume_backend_name": name,
        "vendor_name": VENDOR,
        "driver_version": DRIVER_VERSION,
        "storage_protocol": driver.storage_protocol(),
        "total_capacity_gb": room.total_gb,
        "free_capacity_gb": room.free_gb,
        "allocated_capacity_gb": given,
        "provisioned_capacity_gb": given,
        "reserved_percentage": 0,
        "thin_provisioning_support": true,
        "thick_provisioning_support": false,
        "max_over_subscription_ratio": "1.0",
        // Several servers at once, through one writer (`driver::nbd`).
        "multiattach": driver.multiattach(),
        // Attached volumes grow through their compute host (`app::online_extend`).
        "online_extend_support": true,
        "QoS_support": false,
        "timestamp": now_text(),
    })
}

impl VolumeService {
    /// Every backend as a pool; with `detail`, its capacity (the store's size, what is
    /// free on it, and what volumes were given) and what it offers.
    pub async fn pools(&self, ctx: &AuthContext, detail: bool) -> AppResult<Vec<Value>> {
        require_admin(ctx, "scheduler_extension:scheduler_stats:get_pools")?;
        let allocated = if detail { self.store.allocated_by_backend().await? } else { Default::default() };
        let mut names: Vec<&String> = self.drivers.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let driver = &self.drivers[name];
            let pool = format!("{}@{name}#{name}", driver.host());
            if !detail {
                out.push(json!({ "name": pool }));
                continue;
            }
            let given = allocated.get(name.as_str()).copied().unwrap_or(0);
            // A backend whose storage does not answer shows its room as Cinder's do
            // then: `unknown`.
            let caps = match driver.capacity().await {
                Ok(room) => capabilities(name, driver.as_ref(), room, given),
                Err(e) => {
                    tracing::warn!(backend = %name, error = %format!("{e:#}"), "a backend's storage does not answer");
                    let mut caps = capabilities(name, driver.as_ref(), Capacity { total_gb: 0.0, free_gb: 0.0 }, given);
                    caps["total_capacity_gb"] = json!("unknown");
                    caps["free_capacity_gb"] = json!("unknown");
                    caps
                }
            };
            out.push(json!({"name": pool, "capabilities": caps}));
        }
        Ok(out)
    }

    /// The capabilities of the backend `host` names (`<host>@<backend>`, with or without
    /// `#<pool>`): what a volume type's extra specs may ask of it.
    pub async fn backend_capabilities(&self, ctx: &AuthContext, host: &str) -> AppResult<Value> {
        require_admin(ctx, "volume_extension:capabilities")?;
        let backend = host.split('#').next().unwrap_or_default();
        let found = self.drivers.iter().find(|(name, d)| format!("{}@{name}", d.host()) == backend);
        let Some((name, driver)) = found else {
            return Err(Error::NotFound(format!("Backend {host} could not be found.")));
        };
        let prop = |kind: &str, title: &str, description: &str| json!({"type": kind, "title": title, "description": description});
        Ok(json!({
            "namespace": format!("OS::Storage::Capabilities::{backend}"),
            "vendor_name": VENDOR,
            "volume_backend_name": name,
            "pool_name": name,
            "driver_version": DRIVER_VERSION,
            "storage_protocol": driver.storage_protocol(),
            "display_name": null,
            "description": null,
            "visibility": null,
            "replication_targets": [],
            "properties": {
                "thin_provisioning": prop("boolean", "Thin Provisioning", "Volumes take only the space written to them."),
                "compression": prop("boolean", "Compression", "Enables compression (not offered here)."),
                "qos": prop("boolean", "QoS", "Back-end QoS (front-end QoS specs are applied by the compute host)."),
            },
        }))
    }
}

/// The scheduler's host as `os-services` lists it: the first backend's host.
pub(crate) fn scheduler_host(s: &VolumeService) -> String {
    let mut hosts: Vec<(&String, &str)> = s.drivers.iter().map(|(name, d)| (name, d.host())).collect();
    hosts.sort();
    hosts.first().map_or("stratus", |(_, host)| host).to_string()
}

/// One of the services Cinder would run here (`os-services`, `os-hosts`).
#[derive(Debug, Clone)]
pub struct ServiceRow {
    pub binary: &'static str,
    pub host: String,
    /// A `cinder-volume`'s backend (its driver's name).
    pub backend: Option<String>,
    /// The reason an operator gave when they disabled it (maybe empty); `None`:
    /// enabled.
    pub disabled: Option<String>,
}

/// What volumes and snapshots of one project take on a backend (`os-hosts/{host}`).
#[derive(Debug, Clone, Default)]
pub struct HostUsage {
    pub project: String,
    pub volume_count: i64,
    pub volume_gb: i64,
    pub snapshot_count: i64,
    pub snapshot_gb: i64,
}

impl VolumeService {
    /// The scheduler, one `cinder-volume` per backend (`<host>@<backend>`), and
    /// `cinder-backup` when there is a backup repository: all run in this service.
    pub async fn service_rows(&self) -> AppResult<Vec<ServiceRow>> {
        let disabled = self.disabled_backends().await?;
        let mut backends: Vec<(&String, &str)> = self.drivers.iter().map(|(name, d)| (name, d.host())).collect();
        backends.sort();
        let mut rows =
            vec![ServiceRow { binary: "cinder-scheduler", host: scheduler_host(self), backend: None, disabled: None }];
        for (name, host) in backends {
            rows.push(ServiceRow {
                binary: "cinder-volume",
                host: format!("{host}@{name}"),
                backend: Some(name.clone()),
                disabled: disabled.get(name.as_str()).cloned(),
            });
        }
        if self.backups.get().is_some() {
            rows.push(ServiceRow {
                binary: "cinder-backup",
                host: scheduler_host(self),
                backend: None,
                disabled: None,
            });
        }
        Ok(rows)
    }

    /// Whether backend `name`'s storage answers (its capacity can be read): 3.49's
    /// `backend_state`.
    pub async fn backend_up(&self, name: &str) -> bool {
        match self.drivers.get(name) {
            Some(d) => d.capacity().await.is_ok(),
            None => false,
        }
    }

    /// `GET /os-hosts/{host}` (admins): what the volumes and snapshots on backend
    /// `host` (`<host>@<backend>`, enabled) take, in all and per project (the first
    /// row, project `(total)`, is the sum).
    pub async fn host_usage(&self, ctx: &AuthContext, host: &str) -> AppResult<Vec<HostUsage>> {
        require_admin(ctx, "volume_extension:hosts")?;
        let rows = self.service_rows().await?;
        let Some(name) = rows
            .iter()
            .find(|r| r.binary == "cinder-volume" && r.host == host && r.disabled.is_none())
            .and_then(|r| r.host.split('@').nth(1))
        else {
            return Err(Error::NotFound(format!("Host {host} could not be found (an enabled cinder-volume host).")));
        };
        let volumes = self.store.volume_list(None).await?;
        let snapshots = self.store.snapshot_list(None, None).await?;
        let mut per: std::collections::BTreeMap<String, HostUsage> = Default::default();
        let mut total = HostUsage { project: "(total)".into(), ..Default::default() };
        for v in volumes.iter().filter(|v| v.backend == name) {
            let u = per
                .entry(v.project_id.clone())
                .or_insert_with(|| HostUsage { project: v.project_id.clone(), ..Default::default() });
            u.volume_count += 1;
            u.volume_gb += v.size;
            total.volume_count += 1;
            total.volume_gb += v.size;
        }
        let here: std::collections::HashSet<&str> =
            volumes.iter().filter(|v| v.backend == name).map(|v| v.id.as_str()).collect();
        for s in snapshots.iter().filter(|s| here.contains(s.volume_id.as_str())) {
            let u = per
                .entry(s.project_id.clone())
                .or_insert_with(|| HostUsage { project: s.project_id.clone(), ..Default::default() });
            u.snapshot_count += 1;
            u.snapshot_gb += s.size;
            total.snapshot_count += 1;
            total.snapshot_gb += s.size;
        }
        Ok(std::iter::once(total).chain(per.into_values()).collect())
    }

    /// The backends an operator disabled, with the reason given (empty: none).
    pub async fn disabled_backends(&self) -> AppResult<std::collections::HashMap<String, String>> {
        Ok(self.store.disabled_backends().await?)
    }

    /// `PUT /os-services/{enable|disable|disable-log-reason}` (admins): a backend's
    /// `cinder-volume` is taken out of scheduling (new volumes go to the others; its
    /// volumes stay usable) or put back. `freeze` and `thaw` (Cinder's replication
    /// failover) are not offered.
    pub async fn service_update(&self, ctx: &AuthContext, action: &str, body: &Value) -> AppResult<Value> {
        require_admin(ctx, "volume_extension:services:update")?;
        let reason = match action {
            "enable" => None,
            "disable" => Some(String::new()),
            "disable-log-reason" => match body.get("disabled_reason") {
                Some(Value::String(r)) if !r.trim().is_empty() && r.trim().chars().count() <= 255 => {
                    Some(r.trim().to_string())
                }
                _ => {
                    return Err(Error::BadRequest(
                        "disable-log-reason needs a disabled_reason of 1-255 characters.".into(),
                    ))
                }
            },
            "freeze" | "thaw" => {
                let why = "backends here have no replication to fail over; disable a backend instead";
                return Err(Error::BadRequest(format!("{action} is not offered: {why}.")));
            }
            other => return Err(Error::NotFound(format!("Unknown action {other}."))),
        };
        let host = body.get("host").and_then(Value::as_str).unwrap_or_default();
        let binary = body.get("binary").and_then(Value::as_str).unwrap_or_default();
        let missing = || Error::NotFound(format!("Service {binary} on host {host} could not be found."));
        let backend = match binary {
            "cinder-scheduler" if host == scheduler_host(self) => {
                return Err(Error::BadRequest(
                    "The scheduler cannot be disabled here: disable backends (cinder-volume) instead.".into(),
                ))
            }
            "cinder-volume" => self
                .drivers
                .iter()
                .find(|(name, d)| format!("{}@{name}", d.host()) == host)
                .map(|(name, _)| name.clone())
                .ok_or_else(missing)?,
            _ => return Err(missing()),
        };
        self.store.backend_disable(&backend, reason.as_deref()).await?;
        Ok(json!({
            "host": host,
            "binary": binary,
            "status": if reason.is_some() { "disabled" } else { "enabled" },
            "disabled": reason.is_some(),
            "disabled_reason": reason.filter(|r| !r.is_empty()),
        }))
    }
}
