//! Routers: connect a project's subnets to each other and, through an external gateway
//! (with SNAT), to an external network; floating IPs are reached through them. A
//! router's interfaces and gateway are ports it owns (`device_id` = the router).

use super::ports::{ROUTER_GATEWAY, ROUTER_INTERFACE};
use super::{bad, neutron, not_found, only, opt_bool, opt_str, NetworkService};
use crate::ipam::{parse_ip, Cidr};
use crate::store::{Col, Control, Record, Store, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

const ROUTER_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "project_id",
    "tenant_id",
    "tags",
    "distributed",
    "ha",
    "flavor_id",
    "availability_zone_hints",
    "enable_ndp_proxy",
];

impl NetworkService {
    pub async fn router_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, ROUTER_ATTRS, "router")?;
        let project = Self::owner(ctx, &body)?;
        for k in ["distributed", "ha"] {
            if opt_bool(&body, k)? == Some(true) {
                return Err(bad(format!("{k} routers are not supported.")));
            }
        }
        if body.get("routes").is_some_and(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
            return Err(bad("Routes can be set once the router has interfaces."));
        }
        let mut doc = Map::new();
        doc.insert("name".into(), json!(opt_str(&body, "name")?.unwrap_or_default()));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("admin_state_up".into(), json!(opt_bool(&body, "admin_state_up")?.unwrap_or(true)));
        doc.insert("status".into(), json!("ACTIVE"));
        doc.insert("external_gateway_info".into(), Value::Null);
        doc.insert("routes".into(), json!([]));
        doc.insert("distributed".into(), json!(false));
        doc.insert("ha".into(), json!(false));
        doc.insert("flavor_id".into(), Value::Null);
        doc.insert("availability_zone_hints".into(), json!([]));
        doc.insert("availability_zones".into(), json!(["nova"]));
        doc.insert("tags".into(), super::networks::tags(&body)?);
        self.claim(&project, "router").await?;
        let id = uuid::Uuid::new_v4().to_string();
        if let Err(e) = self.store.insert(Table::Routers, &id, &project, &[], &doc, &Control::default()).await {
            self.store.usage_release(&project, "router").await?;
            return Err(e.into());
        }
        let mut r = self.reread(Table::Routers, &id).await?;
        // `{}` means no gateway, as `null` does (Neutron's clients send either).
        let wants_gateway = |v: &&Value| !v.is_null() && v.as_object().is_none_or(|o| !o.is_empty());
        if let Some(info) = body.get("external_gateway_info").filter(wants_gateway) {
            if let Err(e) = self.set_gateway(ctx, &mut r, info).await {
                self.store.delete(Table::Routers, &id).await?;
                self.store.usage_release(&project, "router").await?;
                return Err(e);
            }
            self.store.set_doc(Table::Routers, &id, &r.doc, &r.control).await?;
        }
        let r = self.reread(Table::Routers, &id).await?;
        self.emit("router", "create", &r).await;
        Ok(r)
    }

    pub async fn router_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        self.owned(ctx, Table::Routers, id).await
    }

    pub async fn router_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Record>> {
        self.list_owned(ctx, Table::Routers, None).await
    }

    pub async fn router_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.router_get(ctx, id).await?;
        only(&body, &["name", "description", "admin_state_up", "external_gateway_info", "routes", "tags"], "router")?;
        for k in body.keys() {
            match k.as_str() {
                "name" | "description" => {
                    r.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "admin_state_up" => {
                    r.doc.insert(k.clone(), json!(opt_bool(&body, k)?.unwrap_or(true)));
                }
                "tags" => {
                    r.doc.insert(k.clone(), super::networks::tags(&body)?);
                }
                "routes" => {
                    let routes = self.valid_routes(&r, &body[k]).await?;
                    r.doc.insert(k.clone(), routes);
                }
                _ => {}
            }
        }
        if let Some(info) = body.get("external_gateway_info") {
            let wanted = info.get("network_id").and_then(Value::as_str).unwrap_or("");
            let current = r.doc["external_gateway_info"]["network_id"].as_str().unwrap_or("").to_string();
            let asks_ips = info.get("external_fixed_ips").is_some();
            if wanted.is_empty() {
                self.clear_gateway(&mut r).await?;
            } else if wanted != current || asks_ips {
                self.clear_gateway(&mut r).await?;
                self.set_gateway(ctx, &mut r, info).await?;
            } else if let Some(snat) = info.get("enable_snat") {
                if !ctx.is_admin() && snat == &json!(false) {
                    // Neutron's default policy: only admins turn SNAT off.
                    return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins may disable SNAT."));
                }
                r.doc["external_gateway_info"]["enable_snat"] = json!(snat.as_bool().unwrap_or(true));
            }
        }
        self.commit_update(ctx, Table::Routers, &r, &[], if_revision).await
    }

    /// Gives the router a port on an external network.
    async fn set_gateway(&self, ctx: &AuthContext, r: &mut Record, info: &Value) -> ApiResult<()> {
        let info = info.as_object().ok_or_else(|| bad("Invalid input for external_gateway_info: an object."))?;
        only(info, &["network_id", "enable_snat", "external_fixed_ips", "qos_policy_id"], "external_gateway_info")?;
        let net_id = opt_str(info, "network_id")?
            .ok_or_else(|| bad("Invalid input: external_gateway_info needs a network_id."))?;
        let network = self.network_get(ctx, &net_id).await?;
        if !network.flag("router:external") {
            return Err(bad(format!("Bad router request: Network {net_id} is not an external network.")));
        }
        let snat = opt_bool(info, "enable_snat")?.unwrap_or(true);
        if !snat && !ctx.is_admin() {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins may disable SNAT."));
        }
        let fixed = info.get("external_fixed_ips").filter(|v| !v.is_null()).cloned();
        if fixed.is_some() && !ctx.is_admin() {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only admins may choose external_fixed_ips.",
            ));
        }
        let port = self.port_internal("", &network, ROUTER_GATEWAY, &r.id, fixed, None).await?;
        r.doc.insert(
            "external_gateway_info".into(),
            json!({"network_id": net_id, "enable_snat": snat, "external_fixed_ips": port.doc.get("fixed_ips").cloned().unwrap_or(json!([]))}),
        );
        r.control.gateway_port = Some(port.id);
        Ok(())
    }

    /// Takes the gateway away, unless floating IPs reach their ports through it.
    async fn clear_gateway(&self, r: &mut Record) -> ApiResult<()> {
        let Some(port_id) = r.control.gateway_port.clone() else { return Ok(()) };
        if self.store.list(Table::FloatingIps, None).await?.iter().any(|f| f.str("router_id") == r.id) {
            return Err(neutron(
                StatusCode::CONFLICT,
                "RouterExternalGatewayInUseByFloatingIp",
                format!("Gateway cannot be updated for router {}, since a gateway to external network is required by one or more floating IPs.", r.id),
            ));
        }
        if let Some(p) = self.store.fetch(Table::Ports, &port_id).await? {
            self.port_remove(&p).await?;
        }
        r.doc.insert("external_gateway_info".into(), Value::Null);
        r.control.gateway_port = None;
        Ok(())
    }

    /// Static routes: each next hop must be on one of the router's interface subnets.
    async fn valid_routes(&self, r: &Record, v: &Value) -> ApiResult<Value> {
        let list = match v {
            Value::Null => return Ok(json!([])),
            Value::Array(a) => a,
            _ => return Err(bad("Invalid input for routes: a list of {destination, nexthop}.")),
        };
        // Next hops may sit on any subnet the router is on, its gateway's included (as Neutron).
        let mut subnets = self.interface_subnets(&r.id).await?;
        let gw_ips =
            r.doc.get("external_gateway_info").and_then(|g| g.get("external_fixed_ips")).and_then(Value::as_array);
        for f in gw_ips.into_iter().flatten() {
            if let Some(s) = self.store.fetch(Table::Subnets, f["subnet_id"].as_str().unwrap_or("")).await? {
                subnets.push(s);
            }
        }
        let mut out: Vec<Value> = Vec::new();
        for route in list {
            let dest = route.get("destination").and_then(Value::as_str).unwrap_or_default();
            let hop = route.get("nexthop").and_then(Value::as_str).unwrap_or_default();
            let d = Cidr::parse(dest).map_err(|e| bad(format!("Invalid input for routes: {e}")))?;
            let (v6, n) = parse_ip(hop)
                .ok_or_else(|| bad(format!("Invalid input for routes: nexthop {hop} is not an IP address.")))?;
            let reachable = subnets.iter().any(|s| Cidr::parse(s.str("cidr")).is_ok_and(|c| c.contains(v6, n)));
            if !reachable || d.v6 != v6 {
                return Err(neutron(
                    StatusCode::BAD_REQUEST,
                    "InvalidRoutes",
                    format!("Invalid format for routes: the nexthop {hop} is not connected with router {}.", r.id),
                ));
            }
            let entry = json!({"destination": d.to_string(), "nexthop": hop});
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
        Ok(Value::Array(out))
    }

    /// The router's interface ports: the ones it attached itself (through
    /// `add_router_interface`), never ports that merely name it as their device.
    pub async fn router_interfaces(&self, router_id: &str) -> ApiResult<Vec<Record>> {
        Ok(self.store.router_ports_of_type(router_id, ROUTER_INTERFACE).await?)
    }

    /// The subnets the router has interfaces on.
    async fn interface_subnets(&self, router_id: &str) -> ApiResult<Vec<Record>> {
        let mut out = Vec::new();
        for p in self.router_interfaces(router_id).await? {
            for f in p.doc.get("fixed_ips").and_then(Value::as_array).cloned().unwrap_or_default() {
                if let Some(s) = self.store.fetch(Table::Subnets, f["subnet_id"].as_str().unwrap_or("")).await? {
                    out.push(s);
                }
            }
        }
        Ok(out)
    }

    /// `PUT /routers/{id}/add_router_interface` with a `subnet_id` (the router takes the
    /// subnet's gateway address) or a `port_id` (an unused port of the caller's).
    pub async fn router_add_interface(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
    ) -> ApiResult<Value> {
        Self::require_writer(ctx)?;
        let r = self.router_get(ctx, id).await?;
        let subnet_id = opt_str(&body, "subnet_id")?;
        let port_id = opt_str(&body, "port_id")?;
        let existing = self.interface_subnets(id).await?;
        let check_subnet = |s: &Record| -> ApiResult<()> {
            let c = Cidr::parse(s.str("cidr")).map_err(bad)?;
            for e in &existing {
                if e.id == s.id {
                    return Err(bad(format!("Bad router request: Router already has a port on subnet {}.", s.id)));
                }
                if Cidr::parse(e.str("cidr")).is_ok_and(|o| o.overlaps(&c)) {
                    return Err(bad(format!(
                        "Bad router request: Cidr {c} of subnet {} overlaps with cidr {} of subnet {}.",
                        s.id,
                        e.str("cidr"),
                        e.id
                    )));
                }
            }
            Ok(())
        };
        let port = match (subnet_id, port_id) {
            (Some(_), Some(_)) => return Err(bad("Bad router request: Cannot specify both subnet-id and port-id.")),
            (None, None) => return Err(bad("Bad router request: Either subnet_id or port_id must be specified.")),
            (Some(sid), None) => {
                let s = self.subnet_get(ctx, &sid).await?;
                let network = self.reread(Table::Networks, s.str("network_id")).await?;
                if network.flag("router:external") {
                    return Err(bad("Bad router request: an external network's subnet can't be a router interface; use the gateway."));
                }
                if !Self::owns(ctx, &s) && !network.flag("shared") {
                    return Err(not_found("SubnetNotFound", "Subnet", &sid));
                }
                let gateway = s.doc.get("gateway_ip").and_then(Value::as_str).map(str::to_string).ok_or_else(|| {
                    bad(format!("Bad router request: Subnet for router interface must have a gateway IP ({sid})."))
                })?;
                check_subnet(&s)?;
                let fixed = json!([{"subnet_id": sid, "ip_address": gateway}]);
                self.port_internal(&r.project_id, &network, ROUTER_INTERFACE, id, Some(fixed), None).await?
            }
            (None, Some(pid)) => {
                let p = self.port_get(ctx, &pid).await?;
                if p.project_id != r.project_id && !ctx.is_admin() {
                    return Err(neutron(
                        StatusCode::FORBIDDEN,
                        "PolicyNotAuthorized",
                        format!("Port {pid} belongs to another project than router {id}."),
                    ));
                }
                if !p.str("device_id").is_empty() || !p.str("device_owner").is_empty() {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "PortInUse",
                        format!("Port {pid} is in use by device {}.", p.str("device_id")),
                    ));
                }
                let fixed = p.doc.get("fixed_ips").and_then(Value::as_array).cloned().unwrap_or_default();
                if fixed.is_empty() {
                    return Err(bad(format!(
                        "Bad router request: Router port must have at least one fixed IP ({pid})."
                    )));
                }
                for f in &fixed {
                    if let Some(s) = self.store.fetch(Table::Subnets, f["subnet_id"].as_str().unwrap_or("")).await? {
                        check_subnet(&s)?;
                    }
                }
                let mut p = p;
                p.doc.insert("device_owner".into(), json!(ROUTER_INTERFACE));
                p.doc.insert("device_id".into(), json!(id));
                p.doc.insert("security_groups".into(), json!([]));
                if let Some(s) = self.driver.status_of_router_port(ROUTER_INTERFACE) {
                    p.doc.insert("status".into(), json!(s.as_str()));
                }
                // The port becomes the router's and shows it in one transaction, and
                // only if nobody changed the port since it was read.
                let mut tx = self.store.db.pool.begin().await?;
                let attached = Store::router_port_add_in(&mut tx, id, &pid, ROUTER_INTERFACE).await?;
                let cols = [("device_id", Col::Text(id.into()))];
                let saved =
                    Store::update_in(&mut tx, Table::Ports, &pid, &cols, &p.doc, &p.control, Some(p.revision_number))
                        .await?;
                if !attached || !saved {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "PortInUse",
                        format!("Port {pid} changed or was attached meanwhile; try again."),
                    ));
                }
                tx.commit().await?;
                self.reread(Table::Ports, &pid).await?
            }
        };
        self.emit("router", "update", &r).await;
        Ok(interface_info(&r, &port))
    }

    /// `PUT /routers/{id}/remove_router_interface`: refused while a floating IP reaches
    /// a port on that subnet through this router.
    pub async fn router_remove_interface(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
    ) -> ApiResult<Value> {
        Self::require_writer(ctx)?;
        let r = self.router_get(ctx, id).await?;
        let subnet_id = opt_str(&body, "subnet_id")?;
        let port_id = opt_str(&body, "port_id")?;
        if subnet_id.is_none() && port_id.is_none() {
            return Err(bad("Bad router request: Either subnet_id or port_id must be specified."));
        }
        let port = self
            .router_interfaces(id)
            .await?
            .into_iter()
            .find(|p| {
                port_id.as_deref().is_none_or(|pid| p.id == pid)
                    && subnet_id.as_deref().is_none_or(|sid| {
                        p.doc["fixed_ips"].as_array().is_some_and(|a| a.iter().any(|f| f["subnet_id"] == json!(sid)))
                    })
            })
            .ok_or_else(|| {
                neutron(
                    StatusCode::NOT_FOUND,
                    "RouterInterfaceNotFoundForSubnet",
                    format!(
                        "Router {id} has no interface on {}.",
                        subnet_id.clone().or(port_id.clone()).unwrap_or_default()
                    ),
                )
            })?;
        let subnets: Vec<String> = port.doc["fixed_ips"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["subnet_id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        for fip in self.store.list(Table::FloatingIps, None).await? {
            if fip.str("router_id") != id {
                continue;
            }
            if let Some(fixed_port) = self.store.fetch(Table::Ports, fip.str("port_id")).await? {
                let behind = fixed_port.doc["fixed_ips"].as_array().is_some_and(|a| {
                    a.iter().any(|f| {
                        f["ip_address"] == fip.doc["fixed_ip_address"]
                            && subnets.iter().any(|s| f["subnet_id"] == json!(s))
                    })
                });
                if behind {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "RouterInterfaceInUseByFloatingIP",
                        format!("Router interface for subnet {} on router {id} cannot be deleted, as it is required by one or more floating IPs.", subnets.join(", ")),
                    ));
                }
            }
        }
        let route_hops: Vec<&Value> = r.doc["routes"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        for hop in route_hops {
            let nexthop = hop["nexthop"].as_str().unwrap_or_default();
            let (v6, n) = parse_ip(nexthop).unwrap_or((false, 0));
            for sid in &subnets {
                if let Some(s) = self.store.fetch(Table::Subnets, sid).await? {
                    if Cidr::parse(s.str("cidr")).is_ok_and(|c| c.contains(v6, n)) {
                        return Err(neutron(
                            StatusCode::CONFLICT,
                            "RouterInterfaceInUseByRoute",
                            format!("Router interface for subnet {sid} on router {id} cannot be deleted, as it is required by one or more routes."),
                        ));
                    }
                }
            }
        }
        let info = interface_info(&r, &port);
        self.port_remove(&port).await?;
        self.emit("router", "update", &r).await;
        Ok(info)
    }

    pub async fn router_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let mut r = self.router_get(ctx, id).await?;
        if !self.router_interfaces(id).await?.is_empty() {
            return Err(neutron(StatusCode::CONFLICT, "RouterInUse", format!("Router {id} still has ports")));
        }
        self.clear_gateway(&mut r).await?;
        if self.store.delete(Table::Routers, id).await? {
            self.store.usage_release(&r.project_id, "router").await?;
            self.emit("router", "delete", &r).await;
        }
        Ok(())
    }
}

fn interface_info(r: &Record, port: &Record) -> Value {
    let subnets: Vec<Value> = port.doc["fixed_ips"]
        .as_array()
        .map(|a| a.iter().map(|f| f["subnet_id"].clone()).collect())
        .unwrap_or_default();
    json!({
        "id": r.id, "tenant_id": r.project_id, "project_id": r.project_id, "port_id": port.id,
        "network_id": port.str("network_id"), "subnet_id": subnets.first().cloned().unwrap_or(Value::Null),
        "subnet_ids": subnets,
    })
}
