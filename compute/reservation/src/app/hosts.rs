//! Reservable hosts (admin only, as Blazar's): a compute hypervisor made reservable,
//! with extra capabilities that leases select on; their allocations; the properties
//! known across hosts.

use super::{bad, require_admin, AppResult, Error, ReservationService};
use crate::store::{Allocation, Host};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text};

/// Host fields a client may not set as extra capabilities.
const FIXED: &[&str] = &[
    "id",
    "name",
    "hypervisor_hostname",
    "hypervisor_type",
    "hypervisor_version",
    "vcpus",
    "memory_mb",
    "local_gb",
    "cpu_info",
    "service_name",
    "trust_id",
    "created_at",
    "updated_at",
    "reservable",
];

fn check_capability(key: &str, value: &Value) -> AppResult<()> {
    if key.is_empty() || key.len() > 255 {
        return Err(bad(format!("Invalid extra capability name {key:?}: 1 to 255 characters.")));
    }
    if FIXED.contains(&key) {
        return Err(bad(format!("{key} is a host field, not an extra capability: it cannot be set.")));
    }
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(bad(format!("Extra capability {key} must be a string, a number or a boolean, not {other}."))),
    }
}

impl ReservationService {
    pub async fn host_create(&self, ctx: &AuthContext, mut body: Map<String, Value>) -> AppResult<Host> {
        require_admin(ctx, "oshosts:post")?;
        let name = match body.remove("name") {
            Some(Value::String(n)) if !n.trim().is_empty() => n,
            _ => return Err(bad("A host needs a name: the compute host or hypervisor hostname to make reservable.")),
        };
        for (k, v) in &body {
            check_capability(k, v)?;
        }
        let hv = self
            .compute
            .hypervisor(&name)
            .await
            .map_err(|e| Error::Unavailable(format!("Compute could not be asked about host {name}: {e:#}")))?
            .ok_or_else(|| Error::NotFound(format!("Compute has no host or hypervisor named {name}.")))?;
        let host = Host {
            id: 0,
            hypervisor_hostname: hv.hostname.clone(),
            hypervisor_type: hv.hypervisor_type,
            hypervisor_version: hv.hypervisor_version,
            vcpus: hv.vcpus,
            memory_mb: hv.memory_mb,
            local_gb: hv.local_gb,
            cpu_info: hv.cpu_info,
            service_name: if hv.service_host.is_empty() { hv.hostname.clone() } else { hv.service_host },
            extra: body,
            reservable: true,
            created_at: String::new(),
            updated_at: None,
        };
        match self.store.host_insert(&host).await {
            Ok(h) => Ok(h),
            Err(e) if is_unique_violation(&e) => {
                Err(Error::Conflict(format!("Host {} is already reservable.", host.hypervisor_hostname)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A host by its id or its hypervisor hostname.
    pub async fn host_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Host> {
        self.may_read_hosts(ctx, "oshosts:get")?;
        let found = match id.parse::<i64>() {
            Ok(n) => self.store.host_get(n).await?,
            Err(_) => self.store.host_list().await?.into_iter().find(|h| h.hypervisor_hostname == id),
        };
        found.ok_or_else(|| Error::NotFound(format!("Host {id} could not be found.")))
    }

    pub async fn host_list(&self, ctx: &AuthContext) -> AppResult<Vec<Host>> {
        self.may_read_hosts(ctx, "oshosts:get")?;
        Ok(self.store.host_list().await?)
    }

    /// Sets or (with a null value) removes extra capabilities: `{"values": {...}}` as
    /// blazarclient sends, or the pairs at the top level.
    pub async fn host_update(&self, ctx: &AuthContext, id: &str, body: Map<String, Value>) -> AppResult<Host> {
        require_admin(ctx, "oshosts:put")?;
        let changes = match body.get("values") {
            Some(Value::Object(v)) => v.clone(),
            Some(other) => return Err(bad(format!("values must be an object of capabilities, not {other}."))),
            None => body,
        };
        let host = self.host_get(ctx, id).await?;
        let mut extra = host.extra.clone();
        for (k, v) in changes {
            if v.is_null() {
                extra.remove(&k);
            } else {
                check_capability(&k, &v)?;
                extra.insert(k, v);
            }
        }
        self.store
            .host_set_extra(host.id, &extra)
            .await?
            .ok_or_else(|| Error::NotFound(format!("Host {id} could not be found.")))
    }

    pub async fn host_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_admin(ctx, "oshosts:delete")?;
        let host = self.host_get(ctx, id).await?;
        if self.store.host_delete(host.id, &now_text()).await? {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "Host {} is allocated to a current or future lease; delete or shorten those leases first.",
                host.hypervisor_hostname
            )))
        }
    }

    /// Hosts are the admin's; with `hosts_visible_to_projects` any project's users
    /// may read them too.
    fn may_read_hosts(&self, ctx: &AuthContext, what: &str) -> AppResult<()> {
        if self.settings.hosts_visible_to_projects && ctx.project_id().is_some() {
            return Ok(());
        }
        require_admin(ctx, what)
    }

    /// Every host, for the hardware catalog (no caller: the catalog is public when
    /// `hardware_catalog` is on; `None` otherwise).
    pub async fn hardware(&self) -> AppResult<Option<Vec<Host>>> {
        if !self.settings.hardware_catalog {
            return Ok(None);
        }
        Ok(Some(self.store.host_list().await?))
    }

    /// The extra capabilities hosts have: names, and with `detail` their values.
    pub async fn host_properties(&self, ctx: &AuthContext) -> AppResult<BTreeMap<String, BTreeSet<String>>> {
        self.may_read_hosts(ctx, "oshosts:get")?;
        let mut props: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for h in self.store.host_list().await? {
            for (k, v) in h.extra {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                props.entry(k).or_default().insert(text);
            }
        }
        Ok(props)
    }

    /// Current and future allocations, per host (every host, allocated or not).
    pub async fn host_allocations(&self, ctx: &AuthContext) -> AppResult<Vec<(Host, Vec<Allocation>)>> {
        self.may_read_hosts(ctx, "oshosts:get_allocations")?;
        let mut by_host: BTreeMap<i64, Vec<Allocation>> = BTreeMap::new();
        for a in self.store.allocations_current(&now_text()).await? {
            by_host.entry(a.host_id).or_default().push(a);
        }
        Ok(self
            .store
            .host_list()
            .await?
            .into_iter()
            .map(|h| {
                let mine = by_host.remove(&h.id).unwrap_or_default();
                (h, mine)
            })
            .collect())
    }
}
