//! Start-up repair of what a crash in the middle of an operation can leave behind. The
//! allocation table and the resource rows are the truth; documents and usage counters
//! are brought back in line with them.

use super::ports::{FLOATING_IP, ROUTER_GATEWAY, ROUTER_INTERFACE};
use super::NetworkService;
use crate::store::{Col, Record, Table};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use stratus_common::db::{now_text, parse_time};
use stratus_common::http::ApiResult;

/// What one pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub ports_fixed: usize,
    pub orphans_removed: usize,
    pub floating_ips_released: usize,
    pub usage_corrected: usize,
}

/// Service ports younger than this may belong to an operation still running in another
/// process, so they are left alone.
const GRACE_SECS: i64 = 120;

fn old_enough(r: &Record) -> bool {
    match (parse_time(&r.created_at), parse_time(&now_text())) {
        (Some(c), Some(n)) => (n - c).num_seconds() >= GRACE_SECS,
        _ => false,
    }
}

impl NetworkService {
    pub async fn reconcile(&self) -> ApiResult<ReconcileReport> {
        let mut report = ReconcileReport::default();
        // Each router's gateway port, as the router records it.
        let gateways: HashSet<String> = self
            .store
            .list(Table::Routers, None)
            .await?
            .into_iter()
            .filter_map(|r| r.control.gateway_port.clone())
            .collect();
        let attached: HashMap<String, String> =
            self.store.router_ports(None).await?.into_iter().map(|rp| (rp.port_id, rp.port_type)).collect();
        let fips = self.store.list(Table::FloatingIps, None).await?;
        let fip_ids: HashSet<&str> = fips.iter().map(|f| f.id.as_str()).collect();
        let allocations = self.store.ip_by_port(None).await?;
        let mut ports = Vec::new();
        for mut p in self.store.list(Table::Ports, None).await? {
            // A port the service made for an owner that is gone, or never took it (the
            // crash came between the port's write and its owner's). Ports users made are
            // theirs, whatever device they name.
            let service_made = !p.control.counted;
            let orphan = service_made
                && match p.str("device_owner") {
                    ROUTER_INTERFACE => !attached.contains_key(&p.id),
                    ROUTER_GATEWAY => !gateways.contains(&p.id),
                    FLOATING_IP => !fip_ids.contains(p.str("device_id")),
                    _ => false,
                };
            if orphan && old_enough(&p) {
                self.port_remove(&p).await?;
                report.orphans_removed += 1;
                continue;
            }
            // Addresses: the allocation table is the truth.
            let held: Vec<Value> = allocations
                .get(&p.id)
                .map(|v| v.iter().map(|(s, ip)| json!({"subnet_id": s, "ip_address": ip})).collect())
                .unwrap_or_default();
            let shown = p.doc.get("fixed_ips").and_then(Value::as_array).cloned().unwrap_or_default();
            let same = held.len() == shown.len() && held.iter().all(|h| shown.contains(h));
            if !same {
                p.doc.insert("fixed_ips".into(), Value::Array(held));
                self.store.set_doc(Table::Ports, &p.id, &p.doc, &p.control).await?;
                report.ports_fixed += 1;
            }
            ports.push(p);
        }
        // Floating IPs pointing at ports that no longer exist.
        let port_ids: HashSet<&str> = ports.iter().map(|p| p.id.as_str()).collect();
        for mut f in fips.iter().cloned() {
            let port = f.str("port_id").to_string();
            if !port.is_empty() && !port_ids.contains(port.as_str()) {
                for k in ["port_id", "fixed_ip_address", "router_id", "port_details"] {
                    f.doc.insert(k.into(), Value::Null);
                }
                f.doc.insert("status".into(), json!("DOWN"));
                self.store
                    .update(
                        Table::FloatingIps,
                        &f.id,
                        &[("port_id", Col::Text(String::new()))],
                        &f.doc,
                        &f.control,
                        None,
                    )
                    .await?;
                report.floating_ips_released += 1;
            }
        }
        report.usage_corrected = self.recount(&ports, &fips).await?;
        Ok(report)
    }

    /// Sets every project's usage to what its rows say, where they differ.
    async fn recount(&self, ports: &[Record], fips: &[Record]) -> ApiResult<usize> {
        let mut counts: HashMap<(String, &'static str), i64> = HashMap::new();
        let mut add =
            |project: &str, resource: &'static str| *counts.entry((project.to_string(), resource)).or_default() += 1;
        for n in self.store.list(Table::Networks, None).await? {
            add(&n.project_id, "network");
        }
        for s in self.store.list(Table::Subnets, None).await? {
            add(&s.project_id, "subnet");
        }
        for p in ports.iter().filter(|p| p.control.counted) {
            add(&p.project_id, "port");
        }
        for r in self.store.list(Table::Routers, None).await? {
            add(&r.project_id, "router");
        }
        for f in fips {
            add(&f.project_id, "floatingip");
        }
        for g in self.store.list(Table::SecurityGroups, None).await?.iter().filter(|g| !g.control.default_group) {
            add(&g.project_id, "security_group");
        }
        for r in self.store.list(Table::SecurityGroupRules, None).await?.iter().filter(|r| r.control.counted) {
            add(&r.project_id, "security_group_rule");
        }
        let mut corrected = 0;
        let mut projects: HashSet<String> = counts.keys().map(|(p, _)| p.clone()).collect();
        projects.extend(self.store.usage_projects().await?);
        for project in projects {
            let used = self.store.usage(&project).await?;
            for resource in super::quotas::RESOURCES {
                let want = counts.get(&(project.clone(), *resource)).copied().unwrap_or(0);
                if used.get(*resource).copied().unwrap_or(0) != want {
                    self.store.usage_set(&project, resource, want).await?;
                    corrected += 1;
                }
            }
        }
        Ok(corrected)
    }
}
