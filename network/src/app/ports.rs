//! Ports: a guest's (or router's) attachment to a network, with its MAC, addresses,
//! security groups and binding. Addresses come from the subnets' pools; the allocation
//! table's primary key keeps them unique however many creates race.

use super::subnets::read_pools;
use super::{bad, neutron, not_found, only, opt_bool, opt_str, NetworkService};
use crate::ipam::{parse_ip, to_ip, Cidr};
use crate::store::{Col, Control, NewRow, Record, Store, Table};
use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Map, Value};
use sqlx::AnyConnection;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::http::{ApiError, ApiResult};

const PORT_ATTRS: &[&str] = &[
    "name",
    "description",
    "network_id",
    "admin_state_up",
    "mac_address",
    "fixed_ips",
    "device_id",
    "device_owner",
    "security_groups",
    "port_security_enabled",
    "allowed_address_pairs",
    "binding:host_id",
    "binding:profile",
    "binding:vnic_type",
    "project_id",
    "tenant_id",
    "tags",
    "dns_name",
    "extra_dhcp_opts",
    "qos_policy_id",
    "propagate_uplink_status",
    "status",
];
pub const ROUTER_INTERFACE: &str = "network:router_interface";
pub const ROUTER_GATEWAY: &str = "network:router_gateway";
pub const FLOATING_IP: &str = "network:floatingip";
/// Port attributes only admins (and the service, which is one) may write.
/// A port's status, as Neutron names it; anything else is refused where it comes in
/// (an admin's create or update, an agent's report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PortStatus {
    Active,
    Down,
    Build,
    Error,
}

impl PortStatus {
    pub const ALL: [PortStatus; 4] = [PortStatus::Active, PortStatus::Down, PortStatus::Build, PortStatus::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            PortStatus::Active => "ACTIVE",
            PortStatus::Down => "DOWN",
            PortStatus::Build => "BUILD",
            PortStatus::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The refusal of a status that is none of these.
    pub fn invalid(what: &str, s: &str) -> stratus_common::http::ApiError {
        let all: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
        stratus_common::http::ApiError::bad_request(format!(
            "Invalid status {s:?} for {what}: one of {}.",
            all.join(", ")
        ))
    }
}

const ADMIN_ONLY: &[&str] = &["status", "mac_address", "binding:host_id", "binding:profile"];

fn admin_only(attr: &str) -> ApiError {
    neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", format!("Only admins may set {attr}."))
}

/// An address a port asks for: on a subnet, optionally a given one.
#[derive(Debug, Clone)]
pub struct IpRequest {
    pub subnet: Record,
    pub address: Option<u128>,
    /// How many of the subnet's addresses were taken, read before the transaction (a
    /// hint that picks random tries or a scan); read in the transaction when absent.
    pub used: Option<i64>,
}

impl NetworkService {
    pub async fn port_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, PORT_ATTRS, "port")?;
        let project = Self::owner(ctx, &body)?;
        let network_id = opt_str(&body, "network_id")?.ok_or_else(|| bad("Invalid input: network_id is required."))?;
        let network = self.network_get(ctx, &network_id).await?;
        if !ctx.is_admin() && network.project_id != project && !network.flag("shared") {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only admins may create ports on another project's network.",
            ));
        }
        if !ctx.is_admin() {
            for k in ADMIN_ONLY {
                if body.contains_key(*k) && *k != "mac_address" {
                    return Err(admin_only(k));
                }
            }
        }
        let device_owner = opt_str(&body, "device_owner")?.unwrap_or_default();
        self.check_device(ctx, &project, &device_owner, opt_str(&body, "device_id")?.as_deref().unwrap_or("")).await?;
        let port_security = match opt_bool(&body, "port_security_enabled")? {
            Some(v) => v,
            None => network.doc.get("port_security_enabled").and_then(Value::as_bool).unwrap_or(true),
        };
        let security_groups = match body.get("security_groups") {
            Some(v) if !v.is_null() => self.port_groups(ctx, &project, v).await?,
            _ if port_security && !device_owner.starts_with("network:") => vec![self.default_group(&project).await?.id],
            _ => vec![],
        };
        let pairs = address_pairs(&body)?;
        no_dhcp_options(&body)?;
        if !port_security && (!security_groups.is_empty() || !pairs.is_empty()) {
            return Err(neutron(
                StatusCode::CONFLICT,
                "PortSecurityAndIPRequiredForSecurityGroups",
                "Port security must be enabled to have security groups or allowed address pairs.",
            ));
        }
        self.port_build(&project, &network, &body, security_groups, pairs, port_security, None).await
    }

    /// What a caller may write as a port's device: `network:*` owners (router
    /// interfaces and gateways, DHCP servers, floating IPs) are the service's own, and a
    /// `device_id` naming a router belongs to that router's project. Neither ever makes a
    /// port part of a router or DHCP server (those are recorded apart), but a port must
    /// not claim to be something its owner could not have made.
    async fn check_device(&self, ctx: &AuthContext, project: &str, owner: &str, device_id: &str) -> ApiResult<()> {
        if ctx.is_admin() {
            return Ok(());
        }
        if owner.starts_with("network:") {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                format!("device_owner {owner} is reserved for the network service; use the router API to attach a port to a router."),
            ));
        }
        if !device_id.is_empty() {
            if let Some(router) = self.store.fetch(Table::Routers, device_id).await? {
                if router.project_id != project {
                    return Err(neutron(
                        StatusCode::FORBIDDEN,
                        "DeviceIDNotOwnedByTenant",
                        format!("The following device_id {device_id} is not owned by your tenant or matches another tenants router."),
                    ));
                }
            }
        }
        Ok(())
    }
    /// A port the service makes for itself (router interfaces and gateways, floating
    /// IPs, DHCP ports): no security groups, not counted against a quota. With `host`,
    /// bound there and active from the start (the agent asked for it).
    pub(crate) async fn port_internal(
        &self,
        project: &str,
        network: &Record,
        device_owner: &str,
        device_id: &str,
        fixed_ips: Option<Value>,
        host: Option<&str>,
    ) -> ApiResult<Record> {
        let mut body = Map::new();
        body.insert("device_owner".into(), json!(device_owner));
        body.insert("device_id".into(), json!(device_id));
        if let Some(f) = fixed_ips {
            body.insert("fixed_ips".into(), f);
        }
        if let Some(h) = host {
            body.insert("binding:host_id".into(), json!(h));
            body.insert("status".into(), json!(PortStatus::Active.as_str()));
        } else if let Some(s) = self.driver.status_of_router_port(device_owner) {
            body.insert("status".into(), json!(s.as_str()));
        }
        // A router's interface or gateway is recorded as the router's in the same
        // transaction as the port.
        let router = [ROUTER_INTERFACE, ROUTER_GATEWAY].contains(&device_owner).then_some(device_id);
        self.port_build(project, network, &body, vec![], vec![], false, Some(router)).await
    }

    /// Stores a port whose request passed the policy checks: claims quota (unless the
    /// service makes it for itself: `internal` is `Some`, naming the router that attaches
    /// it, if one does), picks a MAC, allocates addresses, all in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn port_build(
        &self,
        project: &str,
        network: &Record,
        body: &Map<String, Value>,
        security_groups: Vec<String>,
        pairs: Vec<Value>,
        port_security: bool,
        internal: Option<Option<&str>>,
    ) -> ApiResult<Record> {
        let counted = internal.is_none();
        let body = body.clone();
        let project = project.to_string();
        let network_id = network.id.clone();
        let device_owner = opt_str(&body, "device_owner")?.unwrap_or_default();
        let mut requests = self.ip_requests(&network_id, body.get("fixed_ips")).await?;
        // Read outside the transaction: the writer connection is the scarce one.
        for r in requests.iter_mut().filter(|r| r.address.is_none()) {
            r.used = Some(self.store.ip_count_subnet(&r.subnet.id).await?);
        }
        let mut doc = Map::new();
        doc.insert("name".into(), json!(opt_str(&body, "name")?.unwrap_or_default()));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("network_id".into(), json!(network_id));
        doc.insert("admin_state_up".into(), json!(opt_bool(&body, "admin_state_up")?.unwrap_or(true)));
        let status = match opt_str(&body, "status")? {
            None => PortStatus::Down,
            Some(s) => PortStatus::parse(&s).ok_or_else(|| PortStatus::invalid("a port", &s))?,
        };
        doc.insert("status".into(), json!(status.as_str()));
        doc.insert("device_id".into(), json!(opt_str(&body, "device_id")?.unwrap_or_default()));
        doc.insert("device_owner".into(), json!(device_owner));
        doc.insert("security_groups".into(), json!(security_groups));
        doc.insert("port_security_enabled".into(), json!(port_security));
        doc.insert("allowed_address_pairs".into(), Value::Array(pairs));
        doc.insert("extra_dhcp_opts".into(), json!([]));
        doc.insert("dns_name".into(), json!(opt_str(&body, "dns_name")?.unwrap_or_default()));
        doc.insert("tags".into(), super::networks::tags(&body)?);
        doc.insert("fixed_ips".into(), json!([]));
        set_binding(&mut doc, &body)?;
        let asked_mac = match opt_str(&body, "mac_address")? {
            Some(m) => Some(normalize_mac(&m)?),
            None => None,
        };
        let limit = if counted { self.quota_limit(&project, "port").await? } else { None };
        let id = uuid::Uuid::new_v4().to_string();
        let may_take_gateway = device_owner == ROUTER_INTERFACE || device_owner == ROUTER_GATEWAY;
        // The port with its MAC, its addresses and the quota claim in one transaction:
        // an error or a crash anywhere leaves none of them behind. The claim comes last,
        // so the project's usage row stays locked only until the commit.
        let now = now_text();
        let mut tx = self.store.db.pool.begin().await?;
        let control = Control { counted, ..Control::default() };
        Self::port_insert(&mut tx, &id, &project, asked_mac, &mut doc, &control, &now).await?;
        let mac = doc["mac_address"].as_str().unwrap_or_default().to_string();
        let fixed = Self::allocate_all(&mut tx, &id, &mac, &requests, may_take_gateway).await?;
        doc.insert("fixed_ips".into(), fixed);
        Store::set_doc_in(&mut tx, Table::Ports, &id, &doc, &control).await?;
        if let Some(Some(router)) = internal {
            Store::router_port_add_in(&mut tx, router, &id, &device_owner).await?;
        }
        if counted && !Store::usage_claim_in(&mut tx, &project, "port", limit).await? {
            return Err(super::over_quota("port"));
        }
        tx.commit().await?;
        // The row as written (no need to read it back).
        let r = Record {
            id,
            project_id: project.into(),
            doc,
            control,
            revision_number: 1,
            created_at: now.clone(),
            updated_at: now,
        };
        self.emit("port", "create", &r).await;
        Ok(r)
    }

    /// Inserts the port row (inside the caller's transaction) with a unique MAC, which it
    /// records in `doc`: the asked one (409 if taken) or a random one in OpenStack's
    /// `fa:16:3e` prefix, retried on collision. The document names its network.
    async fn port_insert(
        conn: &mut AnyConnection,
        id: &str,
        project: &str,
        asked: Option<String>,
        doc: &mut Map<String, Value>,
        control: &Control,
        now: &str,
    ) -> ApiResult<()> {
        let network_id = doc["network_id"].as_str().unwrap_or_default().to_string();
        for _ in 0..16 {
            let mac = asked.clone().unwrap_or_else(|| {
                let b: [u8; 3] = rand::thread_rng().gen();
                format!("fa:16:3e:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2])
            });
            doc.insert("mac_address".into(), json!(mac));
            let cols = [
                ("network_id", Col::Text(network_id.clone())),
                ("mac_address", Col::Text(mac.clone())),
                ("device_id", Col::Text(doc["device_id"].as_str().unwrap_or_default().into())),
            ];
            let row = NewRow { table: Table::Ports, id, project_id: project, cols: &cols, doc, control };
            if Store::insert_in(conn, &row, now, true).await? {
                return Ok(());
            }
            if asked.is_some() {
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "MacAddressInUse",
                    format!("Unable to complete operation for network {network_id}. The mac address {mac} is in use."),
                ));
            }
        }
        Err(neutron(StatusCode::SERVICE_UNAVAILABLE, "MacAddressGenerationFailure", "No free MAC address was found."))
    }

    /// Turns `fixed_ips` into address requests; without it, one address from the first
    /// IPv4 subnet and one from each IPv6 subnet, as Neutron does.
    async fn ip_requests(&self, network_id: &str, fixed: Option<&Value>) -> ApiResult<Vec<IpRequest>> {
        let subnets = self.store.list(Table::Subnets, Some(("network_id", network_id))).await?;
        let Some(fixed) = fixed.filter(|v| !v.is_null()) else {
            let mut out = Vec::new();
            if let Some(s) = subnets.iter().find(|s| s.doc.get("ip_version") == Some(&json!(4))) {
                out.push(IpRequest { subnet: s.clone(), address: None, used: None });
            }
            for s in subnets.iter().filter(|s| s.doc.get("ip_version") == Some(&json!(6))) {
                out.push(IpRequest { subnet: s.clone(), address: None, used: None });
            }
            return Ok(out);
        };
        let list =
            fixed.as_array().ok_or_else(|| bad("Invalid input for fixed_ips: a list of {subnet_id, ip_address}."))?;
        let mut out: Vec<IpRequest> = Vec::new();
        for f in list {
            let obj =
                f.as_object().ok_or_else(|| bad("Invalid input for fixed_ips: a list of {subnet_id, ip_address}."))?;
            only(obj, &["subnet_id", "ip_address"], "fixed_ips")?;
            let address = match opt_str(obj, "ip_address")? {
                Some(a) => Some(
                    parse_ip(&a)
                        .ok_or_else(|| bad(format!("Invalid input for fixed_ips: {a} is not an IP address.")))?,
                ),
                None => None,
            };
            let subnet = match opt_str(obj, "subnet_id")? {
                Some(sid) => subnets.iter().find(|s| s.id == sid).cloned().ok_or_else(|| {
                    bad(format!("Invalid input for operation: Failed to create port on network {network_id}, because fixed_ips included invalid subnet {sid}."))
                })?,
                None => {
                    let (v6, n) = address.ok_or_else(|| bad("Invalid input for fixed_ips: give a subnet_id or an ip_address."))?;
                    subnets
                        .iter()
                        .find(|s| Cidr::parse(s.str("cidr")).is_ok_and(|c| c.contains(v6, n)))
                        .cloned()
                        .ok_or_else(|| bad(format!("Invalid input: no subnet of network {network_id} holds {}.", to_ip(v6, n))))?
                }
            };
            let cidr = Cidr::parse(subnet.str("cidr")).map_err(bad)?;
            if let Some((v6, n)) = address {
                if !cidr.contains(v6, n) || n == cidr.first() || (!v6 && n == cidr.last()) {
                    return Err(neutron(
                        StatusCode::BAD_REQUEST,
                        "InvalidIpForSubnet",
                        format!("IP address {} is not a valid IP for the specified subnet.", to_ip(v6, n)),
                    ));
                }
            }
            out.push(IpRequest { subnet, address: address.map(|(_, n)| n), used: None });
        }
        Ok(out)
    }

    /// Allocates every request for a port, inside the caller's transaction.
    async fn allocate_all(
        conn: &mut AnyConnection,
        port_id: &str,
        mac: &str,
        requests: &[IpRequest],
        may_take_gateway: bool,
    ) -> ApiResult<Value> {
        let mut fixed = Vec::new();
        for req in requests {
            let ip = Self::allocate(&mut *conn, port_id, mac, req, may_take_gateway).await?;
            fixed.push(json!({"subnet_id": req.subnet.id, "ip_address": ip}));
        }
        Ok(Value::Array(fixed))
    }

    /// One address on a subnet: the asked one, or a free one from the pools. Large,
    /// sparse pools are tried at random; otherwise the lowest free addresses are read
    /// and one of them taken, retried when another port won the race.
    async fn allocate(
        conn: &mut AnyConnection,
        port_id: &str,
        mac: &str,
        req: &IpRequest,
        may_take_gateway: bool,
    ) -> ApiResult<String> {
        let subnet = &req.subnet;
        let cidr = Cidr::parse(subnet.str("cidr")).map_err(bad)?;
        let gateway = subnet.doc.get("gateway_ip").and_then(Value::as_str).and_then(parse_ip).map(|(_, n)| n);
        // SLAAC and DHCPv6-stateless subnets: a port's address is its MAC's modified
        // EUI-64 in the /64 (what the guest configures from router advertisements).
        let auto = cidr.v6
            && cidr.prefix == 64
            && matches!(
                subnet.doc.get("ipv6_address_mode").and_then(Value::as_str),
                Some("slaac" | "dhcpv6-stateless")
            );
        if auto && !may_take_gateway {
            if let Some(n) = req.address {
                return Err(bad(format!(
                    "Invalid input: IPv6 address {} cannot be assigned to a port on subnet {}: the subnet gives automatic (EUI-64) addresses.",
                    to_ip(true, n),
                    subnet.id
                )));
            }
            let n = crate::ipam::eui64(cidr.first(), mac)
                .ok_or_else(|| bad(format!("Invalid input: {mac} makes no EUI-64 address.")))?;
            let text = to_ip(true, n).to_string();
            return if Store::ip_allocate(&mut *conn, &subnet.id, &text, port_id).await? {
                Ok(text)
            } else {
                Err(in_use(&text, &subnet.id))
            };
        }
        if let Some(n) = req.address {
            let text = to_ip(cidr.v6, n).to_string();
            if Some(n) == gateway && !may_take_gateway {
                return Err(in_use(&text, &subnet.id));
            }
            return if Store::ip_allocate(&mut *conn, &subnet.id, &text, port_id).await? {
                Ok(text)
            } else {
                Err(in_use(&text, &subnet.id))
            };
        }
        let pools = read_pools(&cidr, &subnet.doc);
        let size: u128 = pools.iter().map(|(s, e)| e - s + 1).sum();
        if size > 1024 {
            let used = match req.used {
                Some(n) => n,
                None => Store::ip_count_subnet_in(&mut *conn, &subnet.id).await?,
            } as u128;
            if used * 2 < size {
                for _ in 0..8 {
                    let mut k = rand::thread_rng().gen_range(0..size);
                    let n = pools
                        .iter()
                        .find_map(|(s, e)| {
                            if k <= e - s {
                                Some(s + k)
                            } else {
                                k -= e - s + 1;
                                None
                            }
                        })
                        .unwrap_or(pools[0].0);
                    let text = to_ip(cidr.v6, n).to_string();
                    if Store::ip_allocate(&mut *conn, &subnet.id, &text, port_id).await? {
                        return Ok(text);
                    }
                }
            }
        }
        for _ in 0..64 {
            let taken = Store::ip_allocated(&mut *conn, &subnet.id).await?;
            let mut free = Vec::new();
            'pools: for (s, e) in &pools {
                let mut n = *s;
                while n <= *e {
                    let text = to_ip(cidr.v6, n).to_string();
                    if !taken.contains(&text) {
                        free.push(text);
                        if free.len() >= 8 {
                            break 'pools;
                        }
                    }
                    n += 1;
                }
            }
            if free.is_empty() {
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "IpAddressGenerationFailure",
                    format!("No more IP addresses available on network {}.", subnet.str("network_id")),
                ));
            }
            let pick = free.swap_remove(rand::thread_rng().gen_range(0..free.len()));
            if Store::ip_allocate(&mut *conn, &subnet.id, &pick, port_id).await? {
                return Ok(pick);
            }
        }
        Err(neutron(StatusCode::CONFLICT, "IpAddressGenerationFailure", "Could not allocate an address; try again."))
    }

    /// Admins see every port; others their own and those on networks they own.
    pub async fn port_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        if let Some(r) = self.store.fetch(Table::Ports, id).await? {
            if Self::owns(ctx, &r) {
                return Ok(r);
            }
            if let Some(n) = self.store.fetch(Table::Networks, r.str("network_id")).await? {
                if Self::owns(ctx, &n) {
                    return Ok(r);
                }
            }
        }
        Err(not_found("PortNotFound", "Port", id))
    }

    /// Ports the caller may see, narrowed in SQL by one indexed column when the query has
    /// it (`device_id` or `network_id`).
    pub async fn port_list(&self, ctx: &AuthContext, narrow: Option<(&str, &str)>) -> ApiResult<Vec<Record>> {
        let visible = self.port_visibility(ctx).await?;
        Ok(self.store.list(Table::Ports, narrow).await?.into_iter().filter(|p| visible(p)).collect())
    }

    /// One page of the ports the caller may see, in creation order after `marker`: reads
    /// the table a chunk at a time and stops once `limit` ports (plus one, to know whether
    /// more follow) passed `keep`, which renders and filters. Returns the page and
    /// whether more follow.
    pub async fn port_page(
        &self,
        ctx: &AuthContext,
        marker: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(Record) -> Option<Value>,
    ) -> ApiResult<(Vec<Value>, bool)> {
        const CHUNK: i64 = 500;
        let visible = self.port_visibility(ctx).await?;
        let mut after = match marker {
            Some(m) => match self.store.fetch(Table::Ports, m).await?.filter(|r| visible(r)) {
                Some(r) => Some((r.created_at, r.id)),
                None => return Err(super::bad(format!("Marker {m} could not be found."))),
            },
            None => None,
        };
        let mut page = Vec::new();
        loop {
            let chunk = self
                .store
                .list_after(Table::Ports, after.as_ref().map(|(c, i)| (c.as_str(), i.as_str())), CHUNK)
                .await?;
            let done = (chunk.len() as i64) < CHUNK;
            after = chunk.last().map(|r| (r.created_at.clone(), r.id.clone()));
            page.extend(chunk.into_iter().filter(|r| visible(r)).filter_map(&mut keep));
            if page.len() > limit || done {
                break;
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// Which ports the caller may see: all for admins; else its own and those on
    /// networks it owns.
    /// A token without a project sees none (the service's own ports, such as router
    /// gateways, belong to no project, and must not match an empty one).
    pub async fn port_visibility(&self, ctx: &AuthContext) -> ApiResult<impl Fn(&Record) -> bool + use<>> {
        let admin = ctx.is_admin();
        let project = ctx.project_id().filter(|p| !p.is_empty()).map(str::to_string);
        let own_networks: std::collections::HashSet<String> = match (&project, admin) {
            (Some(project), false) => self
                .store
                .list(Table::Networks, Some(("project_id", project)))
                .await?
                .into_iter()
                .map(|n| n.id)
                .collect(),
            _ => Default::default(),
        };
        Ok(move |p: &Record| {
            admin
                || project
                    .as_ref()
                    .is_some_and(|own| p.project_id == *own || own_networks.contains(p.str("network_id")))
        })
    }

    pub async fn port_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.port_get(ctx, id).await?;
        only(&body, PORT_ATTRS, "port")?;
        for k in ["network_id", "project_id", "tenant_id"] {
            if body.contains_key(k) {
                return Err(bad(format!("Cannot update read-only attribute {k}.")));
            }
        }
        if !ctx.is_admin() {
            for k in ADMIN_ONLY {
                if body.contains_key(*k) {
                    return Err(admin_only(k));
                }
            }
            if body.contains_key("device_owner") || body.contains_key("device_id") {
                if self.store.router_of_port(id).await?.is_some() {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "PortInUse",
                        format!(
                            "Port {id} is attached to a router: its device can change only through the router API."
                        ),
                    ));
                }
                let owner = match opt_str(&body, "device_owner")? {
                    Some(o) => o,
                    None => r.str("device_owner").to_string(),
                };
                let device = match opt_str(&body, "device_id")? {
                    Some(d) => d,
                    None => r.str("device_id").to_string(),
                };
                let project = r.project_id.clone();
                self.check_device(ctx, &project, &owner, &device).await?;
            }
        }
        no_dhcp_options(&body)?;
        let mut cols = Vec::new();
        for k in body.keys() {
            match k.as_str() {
                "name" | "description" | "device_owner" | "dns_name" => {
                    r.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "device_id" => {
                    let d = opt_str(&body, k)?.unwrap_or_default();
                    cols.push(("device_id", Col::Text(d.clone())));
                    r.doc.insert(k.clone(), json!(d));
                }
                "admin_state_up" | "port_security_enabled" => {
                    r.doc.insert(k.clone(), json!(opt_bool(&body, k)?.unwrap_or(true)));
                }
                "status" => {
                    let s = opt_str(&body, k)?.unwrap_or_default();
                    let status = PortStatus::parse(&s).ok_or_else(|| PortStatus::invalid("a port", &s))?;
                    r.doc.insert(k.clone(), json!(status.as_str()));
                }
                "mac_address" => {
                    let m = normalize_mac(&opt_str(&body, k)?.unwrap_or_default())?;
                    cols.push(("mac_address", Col::Text(m.clone())));
                    r.doc.insert(k.clone(), json!(m));
                }
                "security_groups" => {
                    let groups = match body.get(k) {
                        Some(v) if !v.is_null() => self.port_groups(ctx, &r.project_id, v).await?,
                        _ => vec![],
                    };
                    r.doc.insert(k.clone(), json!(groups));
                }
                "allowed_address_pairs" => {
                    r.doc.insert(k.clone(), Value::Array(address_pairs(&body)?));
                }
                "tags" => {
                    r.doc.insert(k.clone(), super::networks::tags(&body)?);
                }
                _ => {}
            }
        }
        let host_before = r.str("binding:host_id").to_string();
        set_binding(&mut r.doc, &body)?;
        let host_now = r.str("binding:host_id").to_string();
        if host_now != host_before && !body.contains_key("status") {
            r.doc.insert("status".into(), json!(self.driver.status_on_bind(&host_now).as_str()));
        }
        let secure = r.doc.get("port_security_enabled").and_then(Value::as_bool).unwrap_or(true);
        let has_groups = r.doc.get("security_groups").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let has_pairs = r.doc.get("allowed_address_pairs").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        if !secure && (has_groups || has_pairs) {
            return Err(neutron(
                StatusCode::CONFLICT,
                "PortSecurityAndIPRequiredForSecurityGroups",
                "Port security must be enabled to have security groups or allowed address pairs.",
            ));
        }
        if let Some(fixed) = body.get("fixed_ips") {
            let network_id = r.str("network_id").to_string();
            let wanted = self.ip_requests(&network_id, Some(fixed)).await?;
            r.doc.insert("fixed_ips".into(), self.reallocate(&r, &wanted).await?);
        }
        self.commit_update(ctx, Table::Ports, &r, &cols, if_revision).await
    }

    /// Moves a port to a new set of addresses: keeps those it has, takes the new ones,
    /// releases the rest. If a new one can't be had, the port keeps its old set.
    async fn reallocate(&self, port: &Record, wanted: &[IpRequest]) -> ApiResult<Value> {
        let current: Vec<(String, String)> = port
            .doc
            .get("fixed_ips")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|f| {
                        (
                            f["subnet_id"].as_str().unwrap_or("").to_string(),
                            f["ip_address"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let gateway_ok = [ROUTER_INTERFACE, ROUTER_GATEWAY].contains(&port.str("device_owner"));
        let mut result = Vec::new();
        let mut taken_now: Vec<(String, String)> = Vec::new();
        for w in wanted {
            let keep = current.iter().find(|(s, ip)| {
                *s == w.subnet.id
                    && w.address.is_none_or(|n| parse_ip(ip).map(|(_, m)| m) == Some(n))
                    && !result.iter().any(|x: &(String, String)| x.1 == *ip)
            });
            if let Some(k) = keep {
                result.push(k.clone());
                continue;
            }
            let mut conn = self.store.db.pool.acquire().await?;
            let got = Self::allocate(&mut conn, &port.id, port.str("mac_address"), w, gateway_ok).await;
            conn.release();
            match got {
                Ok(ip) => {
                    taken_now.push((w.subnet.id.clone(), ip.clone()));
                    result.push((w.subnet.id.clone(), ip));
                }
                Err(e) => {
                    for (s, ip) in taken_now {
                        self.store.ip_release(&s, &ip).await?;
                    }
                    return Err(e);
                }
            }
        }
        for c in &current {
            if !result.contains(c) {
                self.store.ip_release(&c.0, &c.1).await?;
            }
        }
        Ok(Value::Array(result.into_iter().map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip})).collect()))
    }

    pub async fn port_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.port_get(ctx, id).await?;
        if !ctx.is_admin() {
            let router_port = self.store.router_of_port(id).await?;
            if router_port.is_some_and(|rp| rp.port_type == ROUTER_INTERFACE) {
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "L3PortInUse",
                    format!(
                        "Port {id} cannot be deleted directly via the port API: has device owner {ROUTER_INTERFACE}."
                    ),
                ));
            }
        }
        self.port_remove(&r).await
    }

    /// Removes a port and everything it holds, whoever asked.
    pub(crate) async fn port_remove(&self, r: &Record) -> ApiResult<()> {
        self.fip_release_port(&r.id).await?;
        if self.store.port_delete(&r.id, &r.project_id, r.control.counted).await? {
            self.emit("port", "delete", r).await;
        }
        Ok(())
    }

    /// Validates a port's security groups: each must exist and belong to the port's
    /// project (admins may use any).
    async fn port_groups(&self, ctx: &AuthContext, project: &str, v: &Value) -> ApiResult<Vec<String>> {
        let ids = v.as_array().ok_or_else(|| bad("Invalid input for security_groups: a list of ids."))?;
        let mut out = Vec::new();
        for id in ids {
            let id = id.as_str().ok_or_else(|| bad("Invalid input for security_groups: a list of ids."))?;
            match self.store.fetch(Table::SecurityGroups, id).await? {
                Some(g) if g.project_id == project || ctx.is_admin() => {
                    if !out.contains(&g.id) {
                        out.push(g.id)
                    }
                }
                _ => return Err(not_found("SecurityGroupNotFound", "Security group", id)),
            }
        }
        Ok(out)
    }
}

fn in_use(ip: &str, subnet: &str) -> ApiError {
    neutron(
        StatusCode::CONFLICT,
        "IpAddressAlreadyAllocated",
        format!("IP address {ip} already allocated in subnet {subnet}"),
    )
}

/// `aa:bb:cc:dd:ee:ff`, lower case; multicast and all-zero MACs are refused.
fn normalize_mac(m: &str) -> ApiResult<String> {
    let parts: Vec<&str> = m.split([':', '-']).collect();
    let bytes: Option<Vec<u8>> =
        (parts.len() == 6).then(|| parts.iter().map(|p| u8::from_str_radix(p, 16).ok()).collect()).flatten();
    match bytes {
        Some(b) if b[0] & 1 == 0 && b.iter().any(|x| *x != 0) && parts.iter().all(|p| p.len() == 2) => {
            Ok(b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(":"))
        }
        _ => Err(bad(format!("Invalid input for mac_address: '{m}' is not a valid unicast MAC address."))),
    }
}

fn address_pairs(body: &Map<String, Value>) -> ApiResult<Vec<Value>> {
    match body.get("allowed_address_pairs") {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|p| {
                let ip = p.get("ip_address").and_then(Value::as_str).unwrap_or_default();
                if !valid_pair_address(ip) {
                    return Err(bad(format!(
                        "Invalid input for allowed_address_pairs: '{ip}' is not an IP address or CIDR."
                    )));
                }
                let mut out = json!({"ip_address": ip});
                if let Some(m) = p.get("mac_address").and_then(Value::as_str) {
                    out["mac_address"] = json!(normalize_mac(m)?);
                }
                Ok(out)
            })
            .collect(),
        Some(_) => Err(bad("Invalid input for allowed_address_pairs: a list of {ip_address, mac_address}.")),
    }
}

/// `extra_dhcp_opts`: the DHCP servers here do not apply per-port options, so asking
/// for any is refused rather than silently dropped (an empty list is fine).
fn no_dhcp_options(body: &Map<String, Value>) -> ApiResult<()> {
    match body.get("extra_dhcp_opts") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(_) => {
            Err(bad("extra_dhcp_opts are not supported by this cloud (the extra_dhcp_opt extension is not offered)."))
        }
    }
}

/// An allowed address pair's address: an IP address, or one with a prefix length
/// that fits its family (`/0`–`/32`, `/0`–`/128`), written in plain digits. The agent
/// writes it into the host's firewall, so nothing else may pass.
fn valid_pair_address(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Some((v6, _)) = parse_ip(addr) else { return false };
    match prefix {
        None => true,
        Some(p) => {
            let max = if v6 { 128 } else { 32 };
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= max)
        }
    }
}

/// The binding attributes: bound to a host, a port is wired as a Linux bridge port.
fn set_binding(doc: &mut Map<String, Value>, body: &Map<String, Value>) -> ApiResult<()> {
    if let Some(v) = body.get("binding:vnic_type") {
        let t = v.as_str().unwrap_or("normal");
        if !["normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder"].contains(&t) {
            return Err(bad(format!("Invalid input for binding:vnic_type: {t}.")));
        }
        doc.insert("binding:vnic_type".into(), json!(t));
    }
    doc.entry("binding:vnic_type").or_insert(json!("normal"));
    if let Some(v) = body.get("binding:profile") {
        if !(v.is_object() || v.is_null()) {
            return Err(bad("Invalid input for binding:profile: an object."));
        }
        doc.insert("binding:profile".into(), if v.is_null() { json!({}) } else { v.clone() });
    }
    doc.entry("binding:profile").or_insert(json!({}));
    if body.contains_key("binding:host_id") {
        doc.insert("binding:host_id".into(), json!(opt_str(body, "binding:host_id")?.unwrap_or_default()));
    }
    let host = doc.get("binding:host_id").and_then(Value::as_str).unwrap_or_default().to_string();
    doc.insert("binding:host_id".into(), json!(host));
    if host.is_empty() {
        doc.insert("binding:vif_type".into(), json!("unbound"));
        doc.insert("binding:vif_details".into(), json!({}));
    } else {
        doc.insert("binding:vif_type".into(), json!("bridge"));
        doc.insert("binding:vif_details".into(), json!({"port_filter": true, "connectivity": "l2"}));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{normalize_mac, valid_pair_address};

    #[test]
    fn pair_addresses_fit_their_family() {
        for ok in ["10.0.0.5", "10.0.0.0/24", "10.0.0.5/32", "0.0.0.0/0", "fd00::1", "fd00::/64", "::/0", "fd00::1/128"]
        {
            assert!(valid_pair_address(ok), "{ok}");
        }
        for bad in [
            "10.2.0.50/33",
            "::1/255",
            "10.0.0.1/+5",
            "10.0.0.1/",
            "10.0.0.1/ 8",
            "10.0.0.1/0008",
            "x/8",
            "",
            "10.0.0.1/8/8",
        ] {
            assert!(!valid_pair_address(bad), "{bad}");
        }
    }

    #[test]
    fn macs_are_normalized_and_checked() {
        assert_eq!(normalize_mac("FA:16:3E:00:11:22").unwrap(), "fa:16:3e:00:11:22");
        assert_eq!(normalize_mac("fa-16-3e-00-11-22").unwrap(), "fa:16:3e:00:11:22");
        assert!(normalize_mac("01:00:5e:00:00:01").is_err());
        assert!(normalize_mac("00:00:00:00:00:00").is_err());
        assert!(normalize_mac("fa:16:3e:00:11").is_err());
        assert!(normalize_mac("fa:16:3e:0:11:22").is_err());
    }
}

#[cfg(test)]
mod status_tests {
    use super::PortStatus;

    #[test]
    fn port_statuses_are_neutrons_and_nothing_else() {
        for s in PortStatus::ALL {
            assert_eq!(PortStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(PortStatus::parse("active"), None, "case matters, as in Neutron");
        assert_eq!(PortStatus::parse("BANANA"), None);
        assert_eq!(PortStatus::invalid("a port", "BANANA").status.as_u16(), 400);
    }
}
