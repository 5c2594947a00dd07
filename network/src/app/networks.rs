//! Networks, the VPCs: isolated per project unless shared; `router:external` ones give
//! floating IPs and router gateways. Each VXLAN network gets a VNI, unique by
//! constraint; its MTU leaves room for the VXLAN header.

use super::{bad, neutron, not_found, only, opt_bool, opt_int, opt_str, NetworkService};
use crate::store::{Col, Control, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

/// MTU of a VXLAN network on a 1500-byte underlay (50 bytes of encapsulation).
pub const VXLAN_MTU: i64 = 1450;
pub const FLAT_MTU: i64 = 1500;
const MAX_VNI: i64 = (1 << 24) - 1;

const NETWORK_ATTRS: &[&str] = &[
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "project_id",
    "tenant_id",
    "port_security_enabled",
    "availability_zone_hints",
    "tags",
    "dns_domain",
    "is_default",
];

impl NetworkService {
    pub async fn network_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, NETWORK_ATTRS, "network")?;
        let project = Self::owner(ctx, &body)?;
        let admin_only = [
            "shared",
            "router:external",
            "provider:network_type",
            "provider:physical_network",
            "provider:segmentation_id",
        ];
        for k in admin_only {
            if !ctx.is_admin() && body.get(k).is_some_and(|v| !v.is_null() && v != &json!(false)) {
                return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", format!("Only admins may set {k}.")));
            }
        }
        let network_type = opt_str(&body, "provider:network_type")?.unwrap_or_else(|| "vxlan".into());
        let physical = opt_str(&body, "provider:physical_network")?;
        let (max_mtu, physical) = match network_type.as_str() {
            "vxlan" => {
                if physical.is_some() {
                    return Err(bad("A vxlan network has no provider:physical_network."));
                }
                (VXLAN_MTU, None)
            }
            "flat" => (FLAT_MTU, Some(physical.unwrap_or_else(|| "external".into()))),
            other => return Err(bad(format!("Network type {other} is not supported: use vxlan or flat."))),
        };
        let mtu = opt_int(&body, "mtu")?.unwrap_or(max_mtu);
        if !(68..=max_mtu).contains(&mtu) {
            return Err(bad(format!("Invalid MTU {mtu}: a {network_type} network allows 68 to {max_mtu}.")));
        }
        let mut doc = Map::new();
        doc.insert("name".into(), json!(opt_str(&body, "name")?.unwrap_or_default()));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("admin_state_up".into(), json!(opt_bool(&body, "admin_state_up")?.unwrap_or(true)));
        doc.insert("shared".into(), json!(opt_bool(&body, "shared")?.unwrap_or(false)));
        doc.insert("router:external".into(), json!(opt_bool(&body, "router:external")?.unwrap_or(false)));
        doc.insert("port_security_enabled".into(), json!(opt_bool(&body, "port_security_enabled")?.unwrap_or(true)));
        doc.insert("mtu".into(), json!(mtu));
        doc.insert("provider:network_type".into(), json!(network_type));
        doc.insert("provider:physical_network".into(), json!(physical));
        doc.insert("tags".into(), tags(&body)?);
        self.claim(&project, "network").await?;
        let id = uuid::Uuid::new_v4().to_string();
        let result =
            self.network_insert(&id, &project, &network_type, opt_int(&body, "provider:segmentation_id")?, doc).await;
        if result.is_err() {
            self.store.usage_release(&project, "network").await?;
        }
        let r = result?;
        self.emit("network", "create", &r).await;
        Ok(r)
    }

    /// Inserts with a free VNI: a random one, retried if another network took it.
    async fn network_insert(
        &self,
        id: &str,
        project: &str,
        network_type: &str,
        asked: Option<i64>,
        mut doc: Map<String, Value>,
    ) -> ApiResult<Record> {
        for _ in 0..32 {
            let vni = match (network_type, asked) {
                ("vxlan", Some(v)) if (1..=MAX_VNI).contains(&v) => Some(v),
                ("vxlan", Some(v)) => {
                    return Err(bad(format!("Invalid segmentation id {v}: a VNI is 1 to {MAX_VNI}.")))
                }
                ("vxlan", None) => Some(rand::random::<i64>().rem_euclid(MAX_VNI) + 1),
                _ => None,
            };
            doc.insert("provider:segmentation_id".into(), json!(vni));
            let cols = [("network_type", Col::Text(network_type.into())), ("segmentation_id", Col::Int(vni))];
            match self.store.insert(Table::Networks, id, project, &cols, &doc, &Control::default()).await {
                Ok(()) => return self.reread(Table::Networks, id).await,
                Err(e) if stratus_common::db::is_unique_violation(&e) && asked.is_none() => continue,
                Err(e) if stratus_common::db::is_unique_violation(&e) => {
                    return Err(neutron(StatusCode::CONFLICT, "SegmentationIdInUse", "That segmentation id is in use."))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(neutron(
            StatusCode::SERVICE_UNAVAILABLE,
            "NoNetworkAvailable",
            "No free segmentation id was found; try again.",
        ))
    }

    /// Network id → ids of its subnets, for the networks about to be shown.
    pub async fn network_subnet_ids(
        &self,
        networks: &[Record],
    ) -> ApiResult<std::collections::HashMap<String, Vec<String>>> {
        let all = match networks {
            [one] => self.store.list(Table::Subnets, Some(("network_id", &one.id))).await?,
            _ => self.store.list(Table::Subnets, None).await?,
        };
        let mut out: std::collections::HashMap<String, Vec<String>> = Default::default();
        for sn in all {
            out.entry(sn.str("network_id").to_string()).or_default().push(sn.id);
        }
        Ok(out)
    }

    /// Admins see every network; others their own, shared and external ones.
    pub fn network_visible(ctx: &AuthContext, r: &Record) -> bool {
        Self::owns(ctx, r) || r.flag("shared") || r.flag("router:external")
    }

    pub async fn network_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        match self.store.fetch(Table::Networks, id).await? {
            Some(r) if Self::network_visible(ctx, &r) => Ok(r),
            _ => Err(not_found("NetworkNotFound", "Network", id)),
        }
    }

    pub async fn network_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Record>> {
        Ok(self
            .store
            .list(Table::Networks, None)
            .await?
            .into_iter()
            .filter(|r| Self::network_visible(ctx, r))
            .collect())
    }

    pub async fn network_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.network_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only the owner may change a network."));
        }
        only(
            &body,
            &[
                "name",
                "description",
                "admin_state_up",
                "shared",
                "router:external",
                "mtu",
                "port_security_enabled",
                "tags",
            ],
            "network",
        )?;
        for k in body.keys() {
            match k.as_str() {
                "name" | "description" => {
                    r.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "shared" | "router:external" if !ctx.is_admin() => {
                    return Err(neutron(
                        StatusCode::FORBIDDEN,
                        "PolicyNotAuthorized",
                        format!("Only admins may set {k}."),
                    ))
                }
                "admin_state_up" | "shared" | "router:external" | "port_security_enabled" => {
                    r.doc.insert(k.clone(), json!(opt_bool(&body, k)?.unwrap_or(false)));
                }
                "mtu" => {
                    let max = if r.str("provider:network_type") == "vxlan" { VXLAN_MTU } else { FLAT_MTU };
                    let mtu = opt_int(&body, k)?.unwrap_or(max);
                    if !(68..=max).contains(&mtu) {
                        return Err(bad(format!("Invalid MTU {mtu}: this network allows 68 to {max}.")));
                    }
                    r.doc.insert(k.clone(), json!(mtu));
                }
                "tags" => {
                    r.doc.insert(k.clone(), tags(&body)?);
                }
                _ => {}
            }
        }
        self.commit_update(ctx, Table::Networks, &r, &[], if_revision).await
    }

    pub async fn network_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.network_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only the owner may delete a network."));
        }
        // DHCP ports belong to the network's agents, not to its users: they go with it.
        for p in self.dhcp_ports(id, None).await? {
            self.port_remove(&p).await?;
        }
        // An external network takes its floating IPs with it, as Neutron's does; any
        // other port (a router's gateway, a user's) keeps it in use, and then nothing
        // is removed.
        let in_use = || {
            neutron(
                StatusCode::CONFLICT,
                "NetworkInUse",
                format!("Unable to complete operation on network {id}. There are one or more ports still in use on the network."),
            )
        };
        let ports = self.store.list(Table::Ports, Some(("network_id", id))).await?;
        if ports.iter().any(|p| p.str("device_owner") != super::ports::FLOATING_IP) {
            return Err(in_use());
        }
        for f in self.store.list(Table::FloatingIps, Some(("floating_network_id", id))).await? {
            self.fip_remove(&f).await?;
        }
        // A port made meanwhile still stops the delete.
        if self.store.count(Table::Ports, "network_id", id).await? > 0 {
            return Err(in_use());
        }
        for s in self.store.list(Table::Subnets, Some(("network_id", id))).await? {
            self.store.delete(Table::Subnets, &s.id).await?;
            self.store.usage_release(&s.project_id, "subnet").await?;
        }
        self.store.delete(Table::Networks, id).await?;
        self.store.usage_release(&r.project_id, "network").await?;
        self.emit("network", "delete", &r).await;
        Ok(())
    }
}

pub(crate) fn tags(body: &Map<String, Value>) -> ApiResult<Value> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(json!([])),
        Some(Value::Array(a)) if a.iter().all(|t| t.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 255)) => {
            Ok(Value::Array(a.clone()))
        }
        Some(_) => Err(bad("Invalid input for tags: a list of strings of 1 to 255 characters.")),
    }
}
