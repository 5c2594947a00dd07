//! Floating IPs: an address on an external network, mapped (DNAT/SNAT) to a port's fixed
//! address through the router that joins the port's subnet to that external network.

use super::ports::FLOATING_IP;
use super::{bad, neutron, not_found, only, opt_str, NetworkService};
use crate::ipam::parse_ip;
use crate::store::{Col, Control, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

const FIP_ATTRS: &[&str] = &[
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
    "tags",
    "dns_name",
    "dns_domain",
    "qos_policy_id",
];

impl NetworkService {
    pub async fn fip_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, FIP_ATTRS, "floatingip")?;
        let project = Self::owner(ctx, &body)?;
        let net_id = opt_str(&body, "floating_network_id")?
            .ok_or_else(|| bad("Invalid input: floating_network_id is required."))?;
        let network = self.network_get(ctx, &net_id).await?;
        if !network.flag("router:external") {
            return Err(bad(format!("Bad floatingip request: Network {net_id} is not a valid external network.")));
        }
        let address = opt_str(&body, "floating_ip_address")?;
        if address.is_some() && !ctx.is_admin() {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only admins may choose a floating IP address.",
            ));
        }
        let fixed = match (opt_str(&body, "subnet_id")?, address) {
            (None, None) => {
                // One IPv4 address: the first IPv4 subnet of the external network.
                let subnets = self.store.list(Table::Subnets, Some(("network_id", &net_id))).await?;
                let v4 = subnets.iter().find(|s| s.doc.get("ip_version") == Some(&json!(4))).ok_or_else(|| {
                    bad(format!("Bad floatingip request: Network {net_id} has no IPv4 subnet for floating IPs."))
                })?;
                Some(json!([{"subnet_id": v4.id}]))
            }
            (s, a) => {
                let mut f = Map::new();
                if let Some(s) = s {
                    f.insert("subnet_id".into(), json!(s));
                }
                if let Some(a) = a {
                    f.insert("ip_address".into(), json!(a));
                }
                Some(json!([f]))
            }
        };
        let mut doc = Map::new();
        doc.insert("floating_network_id".into(), json!(net_id));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("tags".into(), super::networks::tags(&body)?);
        doc.insert("router_id".into(), Value::Null);
        doc.insert("port_id".into(), Value::Null);
        doc.insert("fixed_ip_address".into(), Value::Null);
        doc.insert("status".into(), json!("DOWN"));
        doc.insert("dns_name".into(), json!(""));
        doc.insert("dns_domain".into(), json!(""));
        doc.insert("qos_policy_id".into(), Value::Null);
        doc.insert("port_details".into(), Value::Null);
        self.claim(&project, "floatingip").await?;
        let id = uuid::Uuid::new_v4().to_string();
        let port = match self.port_internal("", &network, FLOATING_IP, &id, fixed, None).await {
            Ok(p) => p,
            Err(e) => {
                self.store.usage_release(&project, "floatingip").await?;
                return Err(e);
            }
        };
        let ip = port.doc["fixed_ips"][0]["ip_address"].clone();
        doc.insert("floating_ip_address".into(), ip);
        let control = Control { port: Some(port.id.clone()), ..Control::default() };
        let cols = [("floating_network_id", Col::Text(net_id.clone()))];
        if let Err(e) = self.store.insert(Table::FloatingIps, &id, &project, &cols, &doc, &control).await {
            self.port_remove(&port).await?;
            self.store.usage_release(&project, "floatingip").await?;
            return Err(e.into());
        }
        let mut r = self.reread(Table::FloatingIps, &id).await?;
        if let Some(port_id) = opt_str(&body, "port_id")? {
            if let Err(e) = self.associate(ctx, &mut r, &port_id, opt_str(&body, "fixed_ip_address")?).await {
                self.fip_remove(&r).await?;
                return Err(e);
            }
            self.store
                .update(Table::FloatingIps, &id, &[("port_id", Col::Text(port_id))], &r.doc, &r.control, None)
                .await?;
            r = self.reread(Table::FloatingIps, &id).await?;
        }
        self.emit("floatingip", "create", &r).await;
        Ok(r)
    }

    /// Points the floating IP at a port's fixed address, through the router that has a
    /// gateway on the floating IP's network and an interface on that address's subnet.
    async fn associate(
        &self,
        ctx: &AuthContext,
        fip: &mut Record,
        port_id: &str,
        fixed: Option<String>,
    ) -> ApiResult<()> {
        let port = self.port_get(ctx, port_id).await?;
        if port.project_id != fip.project_id && !ctx.is_admin() {
            return Err(not_found("PortNotFound", "Port", port_id));
        }
        let v4: Vec<(String, String)> = port.doc["fixed_ips"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| {
                        let ip = f["ip_address"].as_str()?;
                        (!parse_ip(ip)?.0).then(|| (f["subnet_id"].as_str().unwrap_or("").to_string(), ip.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (subnet_id, fixed_ip) = match fixed {
            Some(ip) => v4.iter().find(|(_, a)| *a == ip).cloned().ok_or_else(|| {
                bad(format!("Bad floatingip request: Port {port_id} does not have fixed ip {ip}."))
            })?,
            None if v4.len() == 1 => v4[0].clone(),
            None if v4.is_empty() => {
                return Err(bad(format!("Bad floatingip request: Port {port_id} does not have any IPv4 address.")))
            }
            None => {
                return Err(bad(format!(
                    "Bad floatingip request: Port {port_id} has multiple fixed IPv4 addresses. Must provide a specific IPv4 address when assigning a floating IP."
                )))
            }
        };
        let net_id = fip.str("floating_network_id").to_string();
        for other in self.store.list(Table::FloatingIps, Some(("port_id", port_id))).await? {
            if other.id != fip.id
                && other.str("fixed_ip_address") == fixed_ip
                && other.str("floating_network_id") == net_id
            {
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "FloatingIPPortAlreadyAssociated",
                    format!("Cannot associate floating IP {} with port {port_id} using fixed IP {fixed_ip}, as that fixed IP already has a floating IP on external network {net_id}.", fip.str("floating_ip_address")),
                ));
            }
        }
        let mut router_id = None;
        for r in self.store.list(Table::Routers, None).await? {
            if r.doc["external_gateway_info"]["network_id"].as_str() != Some(net_id.as_str()) {
                continue;
            }
            let on_subnet = self.router_interfaces(&r.id).await?.iter().any(|p| {
                p.doc["fixed_ips"].as_array().is_some_and(|a| a.iter().any(|f| f["subnet_id"] == json!(subnet_id)))
            });
            if on_subnet {
                router_id = Some(r.id);
                break;
            }
        }
        let router_id = router_id.ok_or_else(|| {
            neutron(
                StatusCode::NOT_FOUND,
                "ExternalGatewayForFloatingIPNotFound",
                format!("External network {net_id} is not reachable from subnet {subnet_id}. Therefore, cannot associate Port {port_id} with a Floating IP."),
            )
        })?;
        fip.doc.insert("port_id".into(), json!(port_id));
        fip.doc.insert("fixed_ip_address".into(), json!(fixed_ip));
        fip.doc.insert("router_id".into(), json!(router_id));
        fip.doc.insert("status".into(), json!("ACTIVE"));
        fip.doc.insert(
            "port_details".into(),
            json!({"name": port.str("name"), "network_id": port.str("network_id"), "mac_address": port.str("mac_address"),
                   "admin_state_up": port.doc["admin_state_up"], "status": port.str("status"), "device_id": port.str("device_id"),
                   "device_owner": port.str("device_owner")}),
        );
        Ok(())
    }

    fn disassociate(fip: &mut Record) {
        for k in ["port_id", "fixed_ip_address", "router_id", "port_details"] {
            fip.doc.insert(k.into(), Value::Null);
        }
        fip.doc.insert("status".into(), json!("DOWN"));
    }

    pub async fn fip_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        self.owned(ctx, Table::FloatingIps, id).await
    }

    /// The floating IPs the caller owns; with `port`, only those on that port (read by
    /// the indexed column, not the whole table).
    pub async fn fip_list(&self, ctx: &AuthContext, port: Option<&str>) -> ApiResult<Vec<Record>> {
        self.list_owned(ctx, Table::FloatingIps, port.map(|p| ("port_id", p))).await
    }

    pub async fn fip_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.fip_get(ctx, id).await?;
        only(&body, &["port_id", "fixed_ip_address", "description", "tags", "qos_policy_id"], "floatingip")?;
        if let Some(d) = opt_str(&body, "description")? {
            r.doc.insert("description".into(), json!(d));
        }
        if body.contains_key("tags") {
            r.doc.insert("tags".into(), super::networks::tags(&body)?);
        }
        let mut cols = Vec::new();
        if body.contains_key("port_id") {
            match opt_str(&body, "port_id")? {
                Some(port_id) => {
                    self.associate(ctx, &mut r, &port_id, opt_str(&body, "fixed_ip_address")?).await?;
                    cols.push(("port_id", Col::Text(port_id)));
                }
                None => {
                    Self::disassociate(&mut r);
                    cols.push(("port_id", Col::Text(String::new())));
                }
            }
        } else if body.contains_key("fixed_ip_address") {
            let port_id = r.str("port_id").to_string();
            if port_id.is_empty() {
                return Err(bad("Bad floatingip request: fixed_ip_address needs a port_id."));
            }
            self.associate(ctx, &mut r, &port_id, opt_str(&body, "fixed_ip_address")?).await?;
        }
        self.commit_update(ctx, Table::FloatingIps, &r, &cols, if_revision).await
    }

    pub async fn fip_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.fip_get(ctx, id).await?;
        self.fip_remove(&r).await
    }

    pub(crate) async fn fip_remove(&self, r: &Record) -> ApiResult<()> {
        if let Some(p) = self.store.fetch(Table::Ports, r.control.port.as_deref().unwrap_or_default()).await? {
            self.port_remove(&p).await?;
        }
        if self.store.delete(Table::FloatingIps, &r.id).await? {
            self.store.usage_release(&r.project_id, "floatingip").await?;
            self.emit("floatingip", "delete", r).await;
        }
        Ok(())
    }

    /// A port went away: floating IPs pointing at it let go (as Neutron does).
    pub(crate) async fn fip_release_port(&self, port_id: &str) -> ApiResult<()> {
        for mut f in self.store.list(Table::FloatingIps, Some(("port_id", port_id))).await? {
            Self::disassociate(&mut f);
            self.store
                .update(Table::FloatingIps, &f.id, &[("port_id", Col::Text(String::new()))], &f.doc, &f.control, None)
                .await?;
            self.emit("floatingip", "update", &f).await;
        }
        Ok(())
    }
}
