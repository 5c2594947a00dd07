//! Subnets: a CIDR on a network with its gateway, allocation pools, DNS servers and host
//! routes. Validation happens here; allocation of addresses is in `ports`.

use super::{bad, neutron, not_found, only, opt_bool, opt_int, opt_str, NetworkService};
use crate::ipam::{parse_ip, to_ip, Cidr};
use crate::store::{Col, Control, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

const SUBNET_ATTRS: &[&str] = &[
    "name",
    "description",
    "network_id",
    "ip_version",
    "cidr",
    "gateway_ip",
    "allocation_pools",
    "dns_nameservers",
    "host_routes",
    "enable_dhcp",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "project_id",
    "tenant_id",
    "tags",
    "subnetpool_id",
    "service_types",
    "use_default_subnetpool",
    "prefixlen",
    "segment_id",
    "dns_publish_fixed_ip",
];
const SUBNET_MUTABLE: &[&str] =
    &["name", "description", "gateway_ip", "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp", "tags"];
const IPV6_MODES: &[&str] = &["slaac", "dhcpv6-stateful", "dhcpv6-stateless"];

impl NetworkService {
    pub async fn subnet_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, SUBNET_ATTRS, "subnet")?;
        let project = Self::owner(ctx, &body)?;
        let network_id = opt_str(&body, "network_id")?.ok_or_else(|| bad("Invalid input: network_id is required."))?;
        let network = self.network_get(ctx, &network_id).await?;
        if !Self::owns(ctx, &network) {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only the network's owner may add subnets to it.",
            ));
        }
        let asked_cidr = opt_str(&body, "cidr")?;
        if let Some(pool) = self.requested_pool(ctx, &body).await? {
            if opt_int(&body, "ip_version")?
                .is_some_and(|v| Some(v) != pool.doc.get("ip_version").and_then(Value::as_i64))
            {
                return Err(bad(format!("Invalid input: ip_version differs from subnet pool {}'s.", pool.id)));
            }
            let len = opt_int(&body, "prefixlen")?;
            let (pool_id, project, network_id) = (pool.id.clone(), project.clone(), network_id.clone());
            let body = &body;
            return self
                .allocate_from(&pool, asked_cidr.as_deref(), len, |cidr| async move {
                    self.subnet_make(ctx, body, &project, &network_id, cidr, Some(&pool_id)).await
                })
                .await;
        }
        if opt_int(&body, "prefixlen")?.is_some() {
            return Err(bad("Invalid input: prefixlen goes with a subnet pool (subnetpool_id)."));
        }
        let cidr_text = asked_cidr.ok_or_else(|| bad("Invalid input: cidr is required."))?;
        let cidr = Cidr::parse(&cidr_text).map_err(|e| neutron(StatusCode::BAD_REQUEST, "InvalidInput", e))?;
        self.subnet_make(ctx, &body, &project, &network_id, cidr, None).await
    }

    /// Makes a subnet of `cidr` (given, or taken from the pool `pool_id`).
    async fn subnet_make(
        &self,
        ctx: &AuthContext,
        body: &Map<String, Value>,
        project: &str,
        network_id: &str,
        cidr: Cidr,
        pool_id: Option<&str>,
    ) -> ApiResult<Record> {
        let body = body.clone();
        let cidr_text = cidr.to_string();
        let network_id = network_id.to_string();
        let project = project.to_string();
        let version = opt_int(&body, "ip_version")?.unwrap_or(if cidr.v6 { 6 } else { 4 });
        if version != 4 && version != 6 {
            return Err(bad(format!("Invalid input for ip_version: {version} is not 4 or 6.")));
        }
        if (version == 6) != cidr.v6 {
            return Err(bad(format!("Invalid input: cidr {cidr_text} does not match ip_version {version}.")));
        }
        // Loopback, multicast and the whole address space are never a tenant's network
        // (nor 0.0.0.0/8, "this network"); admins may still make what they need.
        if !ctx.is_admin() {
            let reserved = ["127.0.0.0/8", "224.0.0.0/4", "0.0.0.0/8", "255.255.255.255/32", "::1/128", "ff00::/8"];
            if let Some(r) = reserved.iter().filter_map(|r| Cidr::parse(r).ok()).find(|r| r.overlaps(&cidr)) {
                return Err(bad(format!("Invalid input: cidr {cidr_text} overlaps {r}, which is reserved.")));
            }
            if cidr.prefix == 0 {
                return Err(bad(format!("Invalid input: cidr {cidr_text} is every address.")));
            }
        }
        if !cidr.v6 && cidr.prefix > 30 {
            return Err(bad(format!("Invalid input: an IPv4 subnet must be /30 or larger, not /{}.", cidr.prefix)));
        }
        let ra = opt_str(&body, "ipv6_ra_mode")?;
        let addr_mode = opt_str(&body, "ipv6_address_mode")?;
        for (k, m) in [("ipv6_ra_mode", &ra), ("ipv6_address_mode", &addr_mode)] {
            if let Some(m) = m {
                if !cidr.v6 {
                    return Err(bad(format!("Invalid input: {k} applies to IPv6 subnets only.")));
                }
                if !IPV6_MODES.contains(&m.as_str()) {
                    return Err(bad(format!("Invalid input for {k}: {m} is not one of {}.", IPV6_MODES.join(", "))));
                }
            }
        }
        if let (Some(a), Some(b)) = (&ra, &addr_mode) {
            if a != b {
                return Err(bad("Invalid input: ipv6_ra_mode and ipv6_address_mode must match when both are set."));
            }
        }
        for other in self.store.list(Table::Subnets, Some(("network_id", &network_id))).await? {
            if let Ok(o) = Cidr::parse(other.str("cidr")) {
                if o.overlaps(&cidr) {
                    return Err(neutron(
                        StatusCode::BAD_REQUEST,
                        "InvalidInput",
                        format!(
                            "Invalid input for operation: Requested subnet with cidr: {cidr} for network: {network_id} overlaps with another subnet."
                        ),
                    ));
                }
            }
        }
        let gateway = match body.get("gateway_ip") {
            None => cidr.default_gateway(),
            Some(Value::Null) => None,
            Some(_) => Some(gateway_in(&cidr, &opt_str(&body, "gateway_ip")?.unwrap_or_default())?),
        };
        let pools = match body.get("allocation_pools") {
            None | Some(Value::Null) => cidr.default_pools(gateway),
            Some(v) => parse_pools(&cidr, v, gateway)?,
        };
        let mut doc = Map::new();
        doc.insert("name".into(), json!(opt_str(&body, "name")?.unwrap_or_default()));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("network_id".into(), json!(network_id));
        doc.insert("ip_version".into(), json!(version));
        doc.insert("cidr".into(), json!(cidr.to_string()));
        doc.insert("gateway_ip".into(), json!(gateway.map(|g| to_ip(cidr.v6, g).to_string())));
        doc.insert("allocation_pools".into(), pools_json(&cidr, &pools));
        doc.insert("dns_nameservers".into(), dns(&body, &cidr)?);
        doc.insert("host_routes".into(), host_routes(&body, &cidr)?);
        doc.insert("enable_dhcp".into(), json!(opt_bool(&body, "enable_dhcp")?.unwrap_or(true)));
        doc.insert("ipv6_ra_mode".into(), json!(ra));
        doc.insert("ipv6_address_mode".into(), json!(addr_mode));
        doc.insert("subnetpool_id".into(), json!(pool_id));
        doc.insert("segment_id".into(), Value::Null);
        doc.insert("service_types".into(), json!([]));
        doc.insert("dns_publish_fixed_ip".into(), json!(false));
        doc.insert("tags".into(), super::networks::tags(&body)?);
        self.claim(&project, "subnet").await?;
        let id = uuid::Uuid::new_v4().to_string();
        let cols = [("network_id", Col::Text(network_id.clone()))];
        if let Err(e) = self.store.insert(Table::Subnets, &id, &project, &cols, &doc, &Control::default()).await {
            self.store.usage_release(&project, "subnet").await?;
            return Err(e.into());
        }
        let r = self.reread(Table::Subnets, &id).await?;
        self.emit("subnet", "create", &r).await;
        Ok(r)
    }

    /// A subnet is visible with its network.
    pub async fn subnet_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        if let Some(r) = self.store.fetch(Table::Subnets, id).await? {
            if Self::owns(ctx, &r) || self.network_get(ctx, r.str("network_id")).await.is_ok() {
                return Ok(r);
            }
        }
        Err(not_found("SubnetNotFound", "Subnet", id))
    }

    pub async fn subnet_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Record>> {
        let visible: std::collections::HashSet<String> =
            self.network_list(ctx).await?.into_iter().map(|n| n.id).collect();
        Ok(self
            .store
            .list(Table::Subnets, None)
            .await?
            .into_iter()
            .filter(|s| Self::owns(ctx, s) || visible.contains(s.str("network_id")))
            .collect())
    }

    pub async fn subnet_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.subnet_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only the owner may change a subnet."));
        }
        only(&body, SUBNET_MUTABLE, "subnet")?;
        let cidr = Cidr::parse(r.str("cidr")).map_err(bad)?;
        let mut gateway = r.doc.get("gateway_ip").and_then(Value::as_str).and_then(parse_ip).map(|(_, n)| n);
        if let Some(v) = body.get("gateway_ip") {
            gateway = match v {
                Value::Null => None,
                _ => Some(gateway_in(&cidr, &opt_str(&body, "gateway_ip")?.unwrap_or_default())?),
            };
            r.doc.insert("gateway_ip".into(), json!(gateway.map(|g| to_ip(cidr.v6, g).to_string())));
        }
        if let Some(v) = body.get("allocation_pools") {
            let pools = parse_pools(&cidr, v, gateway)?;
            r.doc.insert("allocation_pools".into(), pools_json(&cidr, &pools));
        } else if body.contains_key("gateway_ip") {
            let pools = read_pools(&cidr, &r.doc);
            if let Some(g) = gateway {
                if pools.iter().any(|(s, e)| g >= *s && g <= *e) {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "GatewayConflictWithAllocationPools",
                        "The gateway is inside an allocation pool; change the pools too.",
                    ));
                }
            }
        }
        for k in body.keys() {
            match k.as_str() {
                "name" | "description" => {
                    r.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "enable_dhcp" => {
                    r.doc.insert(k.clone(), json!(opt_bool(&body, k)?.unwrap_or(false)));
                }
                "dns_nameservers" => {
                    r.doc.insert(k.clone(), dns(&body, &cidr)?);
                }
                "host_routes" => {
                    r.doc.insert(k.clone(), host_routes(&body, &cidr)?);
                }
                "tags" => {
                    r.doc.insert(k.clone(), super::networks::tags(&body)?);
                }
                _ => {}
            }
        }
        self.commit_update(ctx, Table::Subnets, &r, &[], if_revision).await
    }

    pub async fn subnet_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.subnet_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only the owner may delete a subnet."));
        }
        // Automatic (SLAAC, DHCPv6-stateless) addresses do not keep a subnet alive either:
        // as Neutron, they go from their ports (a router's interface still holds it).
        let auto = r.doc.get("ip_version") == Some(&json!(6))
            && matches!(r.doc.get("ipv6_address_mode").and_then(Value::as_str), Some("slaac" | "dhcpv6-stateless"));
        if auto {
            for mut p in self.store.list(Table::Ports, Some(("network_id", r.str("network_id")))).await? {
                let owner = p.str("device_owner").to_string();
                if owner == super::ports::ROUTER_INTERFACE || owner == super::agents::DHCP {
                    continue;
                }
                let fixed = p.doc.get("fixed_ips").and_then(Value::as_array).cloned().unwrap_or_default();
                let (gone, kept): (Vec<Value>, Vec<Value>) = fixed.into_iter().partition(|f| f["subnet_id"] == id);
                if gone.is_empty() {
                    continue;
                }
                p.doc.insert("fixed_ips".into(), Value::Array(kept));
                // The document and the addresses change together.
                let mut tx = self.store.db.pool.begin().await?;
                crate::store::Store::set_doc_in(&mut tx, Table::Ports, &p.id, &p.doc, &p.control).await?;
                for f in &gone {
                    crate::store::Store::ip_release_in(&mut tx, id, f["ip_address"].as_str().unwrap_or_default())
                        .await?;
                }
                tx.commit().await?;
                self.emit("port", "update", &p).await;
            }
        }
        // Addresses of DHCP ports do not keep a subnet alive: those ports go (agents make
        // new ones on the subnets that remain).
        let dhcp: Vec<_> = self
            .dhcp_ports(r.str("network_id"), None)
            .await?
            .into_iter()
            .filter(|p| p.doc["fixed_ips"].as_array().is_some_and(|a| a.iter().any(|f| f["subnet_id"] == id)))
            .collect();
        if self.store.ip_count_subnet(id).await? > dhcp.len() as i64 {
            return Err(neutron(
                StatusCode::CONFLICT,
                "SubnetInUse",
                format!("Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."),
            ));
        }
        for p in &dhcp {
            self.port_remove(p).await?;
        }
        self.store.delete(Table::Subnets, id).await?;
        self.store.usage_release(&r.project_id, "subnet").await?;
        self.emit("subnet", "delete", &r).await;
        Ok(())
    }
}

/// A gateway must be an address of the subnet, and not its network or broadcast address.
fn gateway_in(cidr: &Cidr, text: &str) -> ApiResult<u128> {
    let (v6, n) =
        parse_ip(text).ok_or_else(|| bad(format!("Invalid input for gateway_ip: {text} is not an IP address.")))?;
    if !cidr.contains(v6, n) {
        return Err(neutron(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: Gateway IP {text} is not in subnet {cidr}."),
        ));
    }
    if n == cidr.first() || (!cidr.v6 && n == cidr.last()) {
        return Err(neutron(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            format!("Invalid input for operation: Gateway IP {text} is the network or broadcast address of {cidr}."),
        ));
    }
    Ok(n)
}

fn parse_pools(cidr: &Cidr, v: &Value, gateway: Option<u128>) -> ApiResult<Vec<(u128, u128)>> {
    let list = v.as_array().ok_or_else(|| bad("Invalid input for allocation_pools: a list of {start, end}."))?;
    let mut pools: Vec<(u128, u128)> = Vec::new();
    let (lo, hi) = cidr.host_range().ok_or_else(|| bad("The subnet has no host addresses."))?;
    for p in list {
        let get = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .and_then(parse_ip)
                .ok_or_else(|| bad(format!("Invalid input for allocation_pools: {k} must be an IP address.")))
        };
        let ((v6a, s), (v6b, e)) = (get("start")?, get("end")?);
        if v6a != cidr.v6 || v6b != cidr.v6 || s > e || s < lo || e > hi {
            return Err(neutron(
                StatusCode::BAD_REQUEST,
                "InvalidAllocationPool",
                format!(
                    "The allocation pool {}-{} spans beyond the subnet cidr {cidr} or is not a valid range.",
                    to_ip(v6a, s),
                    to_ip(v6b, e)
                ),
            ));
        }
        if let Some(g) = gateway {
            if g >= s && g <= e {
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "GatewayConflictWithAllocationPools",
                    format!(
                        "Gateway ip {} conflicts with allocation pool {}-{}.",
                        to_ip(cidr.v6, g),
                        to_ip(v6a, s),
                        to_ip(v6b, e)
                    ),
                ));
            }
        }
        if pools.iter().any(|(a, b)| s <= *b && *a <= e) {
            return Err(neutron(StatusCode::BAD_REQUEST, "OverlappingAllocationPools", "Allocation pools overlap."));
        }
        pools.push((s, e));
    }
    pools.sort();
    Ok(pools)
}

fn pools_json(cidr: &Cidr, pools: &[(u128, u128)]) -> Value {
    Value::Array(
        pools
            .iter()
            .map(|(s, e)| json!({"start": to_ip(cidr.v6, *s).to_string(), "end": to_ip(cidr.v6, *e).to_string()}))
            .collect(),
    )
}

/// The allocation pools stored on a subnet document, as integers.
pub fn read_pools(cidr: &Cidr, doc: &Map<String, Value>) -> Vec<(u128, u128)> {
    doc.get("allocation_pools")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| {
                    let s = parse_ip(p.get("start")?.as_str()?)?.1;
                    let e = parse_ip(p.get("end")?.as_str()?)?.1;
                    (cidr.contains(cidr.v6, s) && cidr.contains(cidr.v6, e)).then_some((s, e))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn dns(body: &Map<String, Value>, _cidr: &Cidr) -> ApiResult<Value> {
    match body.get("dns_nameservers") {
        None | Some(Value::Null) => Ok(json!([])),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for d in a {
                let s = d
                    .as_str()
                    .filter(|s| parse_ip(s).is_some())
                    .ok_or_else(|| bad(format!("Invalid input for dns_nameservers: {d} is not an IP address.")))?;
                if out.contains(&json!(s)) {
                    return Err(bad(format!("Duplicate nameserver '{s}'.")));
                }
                out.push(json!(s));
            }
            Ok(Value::Array(out))
        }
        Some(_) => Err(bad("Invalid input for dns_nameservers: a list of IP addresses.")),
    }
}

fn host_routes(body: &Map<String, Value>, cidr: &Cidr) -> ApiResult<Value> {
    match body.get("host_routes") {
        None | Some(Value::Null) => Ok(json!([])),
        Some(Value::Array(a)) => {
            let mut out = Vec::new();
            for r in a {
                let dest = r.get("destination").and_then(Value::as_str).unwrap_or_default();
                let hop = r.get("nexthop").and_then(Value::as_str).unwrap_or_default();
                let d = Cidr::parse(dest).map_err(|e| bad(format!("Invalid input for host_routes: {e}")))?;
                let (v6, _) = parse_ip(hop).ok_or_else(|| {
                    bad(format!("Invalid input for host_routes: nexthop {hop} is not an IP address."))
                })?;
                if d.v6 != cidr.v6 || v6 != cidr.v6 {
                    return Err(bad(
                        "Invalid input for host_routes: the route's IP version differs from the subnet's.",
                    ));
                }
                out.push(json!({"destination": d.to_string(), "nexthop": hop}));
            }
            Ok(Value::Array(out))
        }
        Some(_) => Err(bad("Invalid input for host_routes: a list of {destination, nexthop}.")),
    }
}
