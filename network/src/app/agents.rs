//! What the network agents tell the service and what the service keeps for them: each
//! agent's heartbeat (shown as Neutron's `/v2.0/agents`, alive while heartbeats keep
//! coming), the status of the ports it wired, and the DHCP port it serves each network
//! from. Admins and the `service` role only.

use super::ports::FLOATING_IP;
use super::{bad, neutron, NetworkService};
use crate::store::{Col, Control, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text, parse_time};
use stratus_common::http::ApiResult;

pub const DHCP: &str = "network:dhcp";
/// An agent is dead after this long without a heartbeat (Neutron's `agent_down_time`).
pub const AGENT_DOWN_SECS: i64 = 75;
pub const AGENT_TYPE: &str = "Linux bridge agent";
pub const AGENT_BINARY: &str = "stratus-network-agent";

/// The `device_id` of the DHCP port an agent on `host` serves a network from.
pub fn dhcp_device_id(host: &str) -> String {
    format!("dhcp-{host}")
}

fn require_agent(ctx: &AuthContext) -> ApiResult<()> {
    if ctx.is_admin() || ctx.has_role("service") {
        Ok(())
    } else {
        Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins and agents may do this."))
    }
}

fn valid_host(host: &str) -> ApiResult<()> {
    if host.is_empty() || host.len() > 255 || host.chars().any(|c| c.is_control() || c == '/') {
        return Err(bad("Invalid host name."));
    }
    Ok(())
}

/// Neutron shows agent times as `YYYY-MM-DD HH:MM:SS`.
fn neutron_time(t: &str) -> Value {
    match parse_time(t) {
        Some(t) => json!(t.format("%Y-%m-%d %H:%M:%S").to_string()),
        None => Value::Null,
    }
}

impl NetworkService {
    /// An agent's heartbeat and the status of the ports it wired. Ports not bound to
    /// `host` are left alone (a late report from a host the port has left).
    pub async fn agent_report(&self, ctx: &AuthContext, host: &str, body: Map<String, Value>) -> ApiResult<Value> {
        require_agent(ctx)?;
        valid_host(host)?;
        let mut statuses = Vec::new();
        if let Some(ports) = body.get("ports") {
            let ports = ports.as_object().ok_or_else(|| bad("Invalid input for ports: a map of port id to status."))?;
            for (id, st) in ports {
                match st.as_str().and_then(super::ports::PortStatus::parse) {
                    Some(s) => statuses.push((id.clone(), s.as_str().to_string())),
                    None => return Err(super::ports::PortStatus::invalid(&format!("port {id}"), &st.to_string())),
                }
            }
        }
        let configurations = match body.get("configurations") {
            None | Some(Value::Null) => json!({}),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err(bad("Invalid input for configurations: an object.")),
        };
        let agent = self.heartbeat(host, configurations).await?;
        let mut changed = 0;
        for (id, status) in statuses {
            let Some(mut p) = self.store.fetch(Table::Ports, &id).await? else { continue };
            // A router's ports run where its namespace is: on the network node whose
            // agent reports them, which they are then bound to (as Neutron binds them
            // to the L3 agent's host).
            let router_port = p.str("device_owner").starts_with("network:router_");
            let bound_here = p.str("binding:host_id") == host;
            if !(bound_here || router_port) || (bound_here && p.str("status") == status) {
                continue;
            }
            if router_port && !bound_here {
                p.doc.insert("binding:host_id".into(), json!(host));
            }
            p.doc.insert("status".into(), json!(status));
            if self.store.update(Table::Ports, &id, &[], &p.doc, &p.control, Some(p.revision_number)).await? {
                changed += 1;
                self.emit("port", "update", &p).await;
            }
        }
        Ok(json!({"agent": agent_view(&agent), "ports_changed": changed}))
    }

    async fn heartbeat(&self, host: &str, configurations: Value) -> ApiResult<Record> {
        for _ in 0..3 {
            let now = now_text();
            match self.store.list(Table::Agents, Some(("host", host))).await?.into_iter().next() {
                Some(mut a) => {
                    a.doc.insert("heartbeat_timestamp".into(), json!(now));
                    a.doc.insert("configurations".into(), configurations.clone());
                    self.store.update(Table::Agents, &a.id, &[], &a.doc, &a.control, None).await?;
                    return self.reread(Table::Agents, &a.id).await;
                }
                None => {
                    let id = uuid::Uuid::new_v4().to_string();
                    let doc: Map<String, Value> = json!({"host": host, "admin_state_up": true, "description": null,
                        "started_at": now, "heartbeat_timestamp": now, "configurations": configurations})
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                    match self
                        .store
                        .insert(Table::Agents, &id, "", &[("host", Col::Text(host.into()))], &doc, &Control::default())
                        .await
                    {
                        Ok(()) => return self.reread(Table::Agents, &id).await,
                        Err(e) if is_unique_violation(&e) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Err(neutron(StatusCode::CONFLICT, "Conflict", "The agent's record changed concurrently; try again."))
    }

    pub async fn agent_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        Self::require_admin_read(ctx)?;
        self.store.fetch(Table::Agents, id).await?.ok_or_else(|| super::missing(Table::Agents, id))
    }

    /// The agents, for admins; as Neutron's policy filters each item, anyone else gets
    /// an empty list rather than a refusal.
    pub async fn agent_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Record>> {
        if Self::require_admin_read(ctx).is_err() {
            return Ok(Vec::new());
        }
        Ok(self.store.list(Table::Agents, None).await?)
    }

    /// `PUT /v2.0/agents/{id}`: `admin_state_up` and `description`.
    pub async fn agent_update(&self, ctx: &AuthContext, id: &str, body: Map<String, Value>) -> ApiResult<Record> {
        let mut a = self.agent_get(ctx, id).await?;
        super::only(&body, &["admin_state_up", "description"], "agent")?;
        if let Some(v) = super::opt_bool(&body, "admin_state_up")? {
            a.doc.insert("admin_state_up".into(), json!(v));
        }
        if body.contains_key("description") {
            a.doc.insert("description".into(), super::opt_str(&body, "description")?.map_or(Value::Null, Value::from));
        }
        self.save(Table::Agents, &a, None).await?;
        self.reread(Table::Agents, id).await
    }

    pub async fn agent_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        let a = self.agent_get(ctx, id).await?;
        self.store.delete(Table::Agents, &a.id).await?;
        Ok(())
    }

    fn require_admin_read(ctx: &AuthContext) -> ApiResult<()> {
        if ctx.is_admin() || ctx.has_role("service") {
            Ok(())
        } else {
            Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins may see network agents."))
        }
    }

    /// The DHCP ports of `network_id` (all hosts, or one host's).
    pub(crate) async fn dhcp_ports(&self, network_id: &str, host: Option<&str>) -> ApiResult<Vec<Record>> {
        let device = host.map(dhcp_device_id);
        Ok(self
            .store
            .list(Table::Ports, Some(("network_id", network_id)))
            .await?
            .into_iter()
            .filter(|p| p.str("device_owner") == DHCP && device.as_deref().is_none_or(|d| p.str("device_id") == d))
            .collect())
    }

    /// Makes sure `host` has a DHCP port on `network_id` with an address on every subnet
    /// that has DHCP enabled, and returns it (`None` when no subnet wants DHCP). Repeating
    /// it changes nothing.
    pub async fn dhcp_port_ensure(&self, ctx: &AuthContext, host: &str, network_id: &str) -> ApiResult<Option<Record>> {
        require_agent(ctx)?;
        valid_host(host)?;
        let network = self
            .store
            .fetch(Table::Networks, network_id)
            .await?
            .ok_or_else(|| super::missing(Table::Networks, network_id))?;
        let mut wanted: Vec<String> = self
            .store
            .list(Table::Subnets, Some(("network_id", network_id)))
            .await?
            .into_iter()
            .filter(|s| s.flag("enable_dhcp"))
            .map(|s| s.id)
            .collect();
        wanted.sort();
        let existing = self.dhcp_ports(network_id, Some(host)).await?;
        for p in &existing {
            let mut has: Vec<String> = p.doc["fixed_ips"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["subnet_id"].as_str().map(str::to_string))
                .collect();
            has.sort();
            has.dedup();
            if has == wanted && existing.len() == 1 {
                return Ok(Some(p.clone()));
            }
        }
        for p in &existing {
            self.port_remove(p).await?;
        }
        if wanted.is_empty() {
            return Ok(None);
        }
        let fixed: Vec<Value> = wanted.iter().map(|s| json!({"subnet_id": s})).collect();
        let device = dhcp_device_id(host);
        let port =
            self.port_internal(&network.project_id, &network, DHCP, &device, Some(json!(fixed)), Some(host)).await?;
        Ok(Some(port))
    }

    /// Removes `host`'s DHCP port on `network_id` (the agent no longer serves it).
    pub async fn dhcp_port_release(&self, ctx: &AuthContext, host: &str, network_id: &str) -> ApiResult<()> {
        require_agent(ctx)?;
        for p in self.dhcp_ports(network_id, Some(host)).await? {
            self.port_remove(&p).await?;
        }
        Ok(())
    }
}

/// Whether a port takes part in DHCP as a client (not DHCP servers or floating IPs).
pub(crate) fn dhcp_client(p: &Record) -> bool {
    ![DHCP, FLOATING_IP].contains(&p.str("device_owner"))
}

pub fn agent_view(a: &Record) -> Value {
    let beat = a.str("heartbeat_timestamp");
    let alive = match (parse_time(beat), parse_time(&now_text())) {
        (Some(b), Some(now)) => (now - b).num_seconds() < AGENT_DOWN_SECS,
        _ => false,
    };
    json!({
        "id": a.id,
        "agent_type": AGENT_TYPE,
        "binary": AGENT_BINARY,
        "host": a.str("host"),
        "topic": "N/A",
        "availability_zone": null,
        "admin_state_up": a.doc.get("admin_state_up").cloned().unwrap_or(json!(true)),
        "alive": alive,
        "description": a.doc.get("description").cloned().unwrap_or(Value::Null),
        "configurations": a.doc.get("configurations").cloned().unwrap_or(json!({})),
        "created_at": neutron_time(&a.created_at),
        "started_at": neutron_time(a.str("started_at")),
        "heartbeat_timestamp": neutron_time(beat),
        "resources_synced": null,
        "ha_state": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(beat: &str) -> Record {
        let doc = json!({"host": "h1", "heartbeat_timestamp": beat, "started_at": beat, "configurations": {}});
        Record {
            id: "a".into(),
            project_id: Default::default(),
            doc: doc.as_object().cloned().unwrap(),
            control: Control::default(),
            revision_number: 1,
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            updated_at: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn an_agent_is_dead_after_missed_heartbeats() {
        let now = now_text();
        assert_eq!(agent_view(&agent(&now))["alive"], true);
        let old = stratus_common::db::time_text(chrono::Utc::now() - chrono::Duration::seconds(AGENT_DOWN_SECS + 1));
        let v = agent_view(&agent(&old));
        assert_eq!(v["alive"], false);
        assert_eq!(v["created_at"], "2026-01-01 00:00:00", "Neutron's time format");
        assert_eq!(agent_view(&agent("garbage"))["alive"], false);
    }
}
