//! Security groups and their rules. Every project gets a `default` group the first time
//! it needs one (a partial unique index makes that race-free); rules are unique by a
//! signature of what they match.

use super::{bad, neutron, not_found, only, opt_int, opt_str, NetworkService};
use crate::ipam::{parse_ip, Cidr};
use crate::store::{Col, Control, NewRow, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

const RULE_ATTRS: &[&str] = &[
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
];
/// Protocols by name, as Neutron accepts them, with their IP protocol numbers.
const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("tcp", 6),
    ("egp", 8),
    ("udp", 17),
    ("ipv6-encap", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("ipv6-icmp", 58),
    ("icmpv6", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("ospf", 89),
    ("pgm", 113),
    ("sctp", 132),
    ("udplite", 136),
    ("dccp", 33),
    ("vrrp", 112),
];

impl NetworkService {
    /// The project's `default` group, created with its four rules on first use.
    pub async fn default_group(&self, project: &str) -> ApiResult<Record> {
        if let Some(g) = self
            .store
            .list(Table::SecurityGroups, Some(("project_id", project)))
            .await?
            .into_iter()
            .find(|g| g.control.default_group)
        {
            return Ok(g);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut doc = Map::new();
        doc.insert("name".into(), json!("default"));
        doc.insert("description".into(), json!("Default security group"));
        doc.insert("stateful".into(), json!(true));
        doc.insert("shared".into(), json!(false));
        doc.insert("tags".into(), json!([]));
        let control = Control { default_group: true, ..Control::default() };
        let mut rules = Vec::new();
        for ethertype in ["IPv4", "IPv6"] {
            rules.push(json!({"direction": "egress", "ethertype": ethertype}));
            rules.push(json!({"direction": "ingress", "ethertype": ethertype, "remote_group_id": id}));
        }
        match self.insert_group(&id, project, &[("is_default", Col::Int(Some(1)))], &doc, &control, rules).await {
            Ok(()) => {
                let g = self.reread(Table::SecurityGroups, &id).await?;
                self.emit("security_group", "create", &g).await;
                Ok(g)
            }
            // Another request created it first.
            Err(e) if stratus_common::db::is_unique_violation(&e) => self
                .store
                .list(Table::SecurityGroups, Some(("project_id", project)))
                .await?
                .into_iter()
                .find(|g| g.control.default_group)
                .ok_or_else(|| not_found("SecurityGroupNotFound", "Security group", "default")),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn group_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, &["name", "description", "project_id", "tenant_id", "stateful", "tags"], "security_group")?;
        let project = Self::owner(ctx, &body)?;
        let name = opt_str(&body, "name")?.unwrap_or_default();
        if name == "default" {
            return Err(neutron(
                StatusCode::CONFLICT,
                "SecurityGroupDefaultAlreadyExists",
                "Default security group already exists.",
            ));
        }
        self.default_group(&project).await?;
        let mut doc = Map::new();
        doc.insert("name".into(), json!(name));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("stateful".into(), json!(super::opt_bool(&body, "stateful")?.unwrap_or(true)));
        doc.insert("shared".into(), json!(false));
        doc.insert("tags".into(), super::networks::tags(&body)?);
        self.claim(&project, "security_group").await?;
        let id = uuid::Uuid::new_v4().to_string();
        let rules = vec![
            json!({"direction": "egress", "ethertype": "IPv4"}),
            json!({"direction": "egress", "ethertype": "IPv6"}),
        ];
        if let Err(e) = self.insert_group(&id, &project, &[], &doc, &Control::default(), rules).await {
            self.store.usage_release(&project, "security_group").await?;
            return Err(e.into());
        }
        let g = self.reread(Table::SecurityGroups, &id).await?;
        self.emit("security_group", "create", &g).await;
        Ok(g)
    }

    /// A group and its first rules, in one transaction.
    async fn insert_group(
        &self,
        id: &str,
        project: &str,
        cols: &[(&str, Col)],
        doc: &Map<String, Value>,
        control: &Control,
        rules: Vec<Value>,
    ) -> Result<(), sqlx::Error> {
        let mut built = Vec::new();
        for r in rules {
            let (rdoc, signature) = rule_doc(id, r.as_object().cloned().unwrap_or_default())
                .map_err(|e| sqlx::Error::Protocol(e.message))?;
            let rcols = [("security_group_id", Col::Text(id.into())), ("signature", Col::Text(signature))];
            built.push((uuid::Uuid::new_v4().to_string(), rdoc, rcols));
        }
        let rule_control = Control::default();
        let mut rows = vec![NewRow { table: Table::SecurityGroups, id, project_id: project, cols, doc, control }];
        for (rid, rdoc, rcols) in &built {
            rows.push(NewRow {
                table: Table::SecurityGroupRules,
                id: rid,
                project_id: project,
                cols: rcols,
                doc: rdoc,
                control: &rule_control,
            });
        }
        self.store.insert_all(&rows).await
    }

    pub async fn group_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        self.owned(ctx, Table::SecurityGroups, id).await
    }

    /// The caller's project's groups (creating its default group if needed); an admin
    /// asking for another project with `project_id` gets that project's. Limiting the
    /// list this way keeps the client's lookup of `default` unambiguous.
    /// The caller's groups, or project `asked_project`'s (an admin's), or every
    /// project's (`every`: an admin's `all_tenants`).
    pub async fn group_list(
        &self,
        ctx: &AuthContext,
        asked_project: Option<&str>,
        every: bool,
    ) -> ApiResult<Vec<Record>> {
        if every && ctx.is_admin() && asked_project.is_none() {
            return Ok(self.store.list(Table::SecurityGroups, None).await?);
        }
        let project = match (asked_project, ctx.project_id()) {
            (Some(p), _) if ctx.is_admin() => p.to_string(),
            (_, Some(own)) => own.to_string(),
            (_, None) => return Ok(vec![]),
        };
        if ctx.project_id() == Some(project.as_str()) && ctx.has_role("member") | ctx.is_admin() {
            self.default_group(&project).await?;
        }
        Ok(self.store.list(Table::SecurityGroups, Some(("project_id", &project))).await?)
    }

    pub async fn group_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut g = self.group_get(ctx, id).await?;
        only(&body, &["name", "description", "stateful", "tags"], "security_group")?;
        for k in body.keys() {
            match k.as_str() {
                "name" => {
                    let name = opt_str(&body, k)?.unwrap_or_default();
                    if g.control.default_group && name != "default" {
                        return Err(neutron(
                            StatusCode::CONFLICT,
                            "SecurityGroupCannotUpdateDefault",
                            "Updating default security group not allowed.",
                        ));
                    }
                    if !g.control.default_group && name == "default" {
                        return Err(neutron(
                            StatusCode::CONFLICT,
                            "SecurityGroupDefaultAlreadyExists",
                            "Default security group already exists.",
                        ));
                    }
                    g.doc.insert(k.clone(), json!(name));
                }
                "description" => {
                    g.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "stateful" => {
                    g.doc.insert(k.clone(), json!(super::opt_bool(&body, k)?.unwrap_or(true)));
                }
                "tags" => {
                    g.doc.insert(k.clone(), super::networks::tags(&body)?);
                }
                _ => {}
            }
        }
        self.commit_update(ctx, Table::SecurityGroups, &g, &[], if_revision).await
    }

    pub async fn group_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let g = self.group_get(ctx, id).await?;
        if g.control.default_group && !ctx.is_admin() {
            return Err(neutron(
                StatusCode::CONFLICT,
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        let in_use = self.store.referring(Table::Ports, id).await?.into_iter().any(|p| {
            p.doc
                .get("security_groups")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(id)))
        });
        if in_use {
            return Err(neutron(StatusCode::CONFLICT, "SecurityGroupInUse", format!("Security Group {id} in use.")));
        }
        // As Neutron: the rules of other groups that name it as their remote group go
        // with it, and so do its own.
        let mut rules: Vec<Record> = self
            .store
            .referring(Table::SecurityGroupRules, id)
            .await?
            .into_iter()
            .filter(|r| r.str("remote_group_id") == id && r.str("security_group_id") != id)
            .collect();
        rules.extend(self.store.list(Table::SecurityGroupRules, Some(("security_group_id", id))).await?);
        for r in rules {
            self.store.delete(Table::SecurityGroupRules, &r.id).await?;
            if r.str("security_group_id") != id {
                // Another group's rule: its agents redo that group's filters.
                self.emit("security_group_rule", "delete", &r).await;
            }
            if r.control.counted {
                self.store.usage_release(&r.project_id, "security_group_rule").await?;
            }
        }
        self.store.delete(Table::SecurityGroups, id).await?;
        if !g.control.default_group {
            self.store.usage_release(&g.project_id, "security_group").await?;
        }
        self.emit("security_group", "delete", &g).await;
        Ok(())
    }

    pub async fn rule_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, RULE_ATTRS, "security_group_rule")?;
        let group_id =
            opt_str(&body, "security_group_id")?.ok_or_else(|| bad("Invalid input: security_group_id is required."))?;
        let g = self.group_get(ctx, &group_id).await?;
        if let Some(remote) = opt_str(&body, "remote_group_id")? {
            match self.store.fetch(Table::SecurityGroups, &remote).await? {
                Some(rg) if rg.project_id == g.project_id || ctx.is_admin() => {}
                _ => return Err(not_found("SecurityGroupNotFound", "Security group", &remote)),
            }
        }
        self.claim(&g.project_id, "security_group_rule").await?;
        match self.rule_insert(&group_id, &g.project_id, body, true).await {
            Ok(r) => Ok(r),
            Err(e) => {
                self.store.usage_release(&g.project_id, "security_group_rule").await?;
                Err(e)
            }
        }
    }

    /// Validates and stores a rule; duplicates (same signature) answer 409.
    async fn rule_insert(
        &self,
        group_id: &str,
        project: &str,
        body: Map<String, Value>,
        announce: bool,
    ) -> ApiResult<Record> {
        let (doc, signature) = rule_doc(group_id, body)?;
        let control = Control { counted: announce, ..Control::default() };
        let id = uuid::Uuid::new_v4().to_string();
        let cols = [("security_group_id", Col::Text(group_id.into())), ("signature", Col::Text(signature.clone()))];
        match self.store.insert(Table::SecurityGroupRules, &id, project, &cols, &doc, &control).await {
            Ok(()) => {}
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                let existing = sqlx::query("SELECT id FROM network_security_group_rules WHERE signature = $1")
                    .bind(&signature)
                    .fetch_optional(&self.store.db.pool)
                    .await?
                    .map(|r| stratus_common::db::RowExt::text(&r, "id"))
                    .unwrap_or_default();
                return Err(neutron(
                    StatusCode::CONFLICT,
                    "SecurityGroupRuleExists",
                    format!("Security group rule already exists. Rule id is {existing}."),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.touch_group(group_id).await?;
        let r = self.reread(Table::SecurityGroupRules, &id).await?;
        if announce {
            self.emit("security_group_rule", "create", &r).await;
        }
        Ok(r)
    }

    /// A rule change is a change of its group: bump the group's revision so watchers
    /// (and `If-Match`) see it.
    async fn touch_group(&self, group_id: &str) -> ApiResult<()> {
        if let Some(g) = self.store.fetch(Table::SecurityGroups, group_id).await? {
            self.store.update(Table::SecurityGroups, group_id, &[], &g.doc, &g.control, None).await?;
        }
        Ok(())
    }

    pub async fn rule_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        self.owned(ctx, Table::SecurityGroupRules, id).await
    }

    /// Rules of the groups the caller would list.
    pub async fn rule_list(&self, ctx: &AuthContext, asked_project: Option<&str>) -> ApiResult<Vec<Record>> {
        let groups = self.group_list(ctx, asked_project, false).await?;
        let mut out = Vec::new();
        for g in groups {
            out.extend(self.store.list(Table::SecurityGroupRules, Some(("security_group_id", &g.id))).await?);
        }
        Ok(out)
    }

    pub async fn rule_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.rule_get(ctx, id).await?;
        if self.store.delete(Table::SecurityGroupRules, id).await? {
            if r.control.counted {
                self.store.usage_release(&r.project_id, "security_group_rule").await?;
            }
            self.touch_group(r.str("security_group_id")).await?;
            self.emit("security_group_rule", "delete", &r).await;
        }
        Ok(())
    }

    /// The rules of a group, for the group's view.
    pub async fn group_rules(&self, group_id: &str) -> ApiResult<Vec<Record>> {
        Ok(self.store.list(Table::SecurityGroupRules, Some(("security_group_id", group_id))).await?)
    }
}

/// A rule's document and its signature (what it matches, for the uniqueness check),
/// after validation.
fn rule_doc(group_id: &str, body: Map<String, Value>) -> ApiResult<(Map<String, Value>, String)> {
    let direction = opt_str(&body, "direction")?.unwrap_or_default();
    if direction != "ingress" && direction != "egress" {
        return Err(bad(format!("Invalid input for direction: '{direction}' is not ingress or egress.")));
    }
    let ethertype = opt_str(&body, "ethertype")?.unwrap_or_else(|| "IPv4".into());
    let v6 = match ethertype.to_ascii_lowercase().as_str() {
        "ipv4" => false,
        "ipv6" => true,
        _ => return Err(bad(format!("Invalid input for ethertype: '{ethertype}' is not IPv4 or IPv6."))),
    };
    let ethertype = if v6 { "IPv6" } else { "IPv4" };
    let protocol = match body.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) if s.is_empty() || s.eq_ignore_ascii_case("any") => None,
        Some(Value::String(s)) => Some(s.to_ascii_lowercase()),
        Some(_) => return Err(bad("Invalid input for protocol: a name or a number.")),
    };
    let number = match &protocol {
        None => None,
        Some(p) => Some(match p.parse::<u16>() {
            Ok(n) if n <= 255 => n as u8,
            Ok(_) => return Err(bad(format!("Invalid input for protocol: {p} is not 0 to 255."))),
            Err(_) => PROTOCOLS.iter().find(|(name, _)| name == p).map(|(_, n)| *n).ok_or_else(|| {
                neutron(
                    StatusCode::BAD_REQUEST,
                    "SecurityGroupRuleInvalidProtocol",
                    format!("Security group rule protocol {p} not supported."),
                )
            })?,
        }),
    };
    if number == Some(58) && !v6 {
        return Err(bad("Invalid input: ICMPv6 rules need ethertype IPv6."));
    }
    let min = opt_int(&body, "port_range_min")?;
    let max = opt_int(&body, "port_range_max")?;
    match number {
        Some(6) | Some(17) | Some(132) | Some(33) | Some(136) => {
            // Neutron's checks, in its order and with its messages.
            for port in [min, max].into_iter().flatten() {
                if !(1..=65535).contains(&port) {
                    return Err(neutron(
                        StatusCode::BAD_REQUEST,
                        "SecurityGroupInvalidPortValue",
                        format!("Invalid value for port {port}."),
                    ));
                }
            }
            let range_error = || {
                neutron(
                    StatusCode::BAD_REQUEST,
                    "SecurityGroupInvalidPortRange",
                    "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                )
            };
            match (min, max) {
                (None, Some(_)) => return Err(range_error()),
                (Some(a), Some(b)) if a > b => return Err(range_error()),
                _ => {}
            }
        }
        Some(1) | Some(58) => {
            for (k, field, v) in [("type", "port-range-min", min), ("code", "port-range-max", max)] {
                if let Some(v) = v.filter(|v| !(0..=255).contains(v)) {
                    return Err(neutron(
                        StatusCode::BAD_REQUEST,
                        "SecurityGroupInvalidIcmpValue",
                        format!("Invalid value for ICMP {k} ({field}) {v}. It must be 0 to 255."),
                    ));
                }
            }
            if let (None, Some(code)) = (min, max) {
                return Err(neutron(
                    StatusCode::BAD_REQUEST,
                    "SecurityGroupMissingIcmpType",
                    format!("ICMP code (port-range-max) {code} is provided but ICMP type (port-range-min) is missing."),
                ));
            }
        }
        _ if min.is_some() || max.is_some() => {
            return Err(bad("Port ranges apply only to TCP, UDP, SCTP, DCCP, UDP-Lite and ICMP rules."));
        }
        _ => {}
    }
    let (min, max) = match number {
        Some(6) | Some(17) | Some(132) | Some(33) | Some(136) if min.is_some() && max.is_none() => (min, min),
        _ => (min, max),
    };
    let remote_ip = match opt_str(&body, "remote_ip_prefix")? {
        None => None,
        Some(p) => {
            let (addr, len) = p.split_once('/').unwrap_or((p.as_str(), ""));
            let (pv6, n) = parse_ip(addr)
                .ok_or_else(|| bad(format!("Invalid input for remote_ip_prefix: '{p}' is not a CIDR.")))?;
            let bits = if pv6 { 128 } else { 32 };
            let len: u8 = if len.is_empty() {
                bits
            } else {
                len.parse()
                    .ok()
                    .filter(|l| *l <= bits)
                    .ok_or_else(|| bad(format!("Invalid input for remote_ip_prefix: '{p}'.")))?
            };
            if pv6 != v6 {
                return Err(bad(format!("Conflicting value ethertype {ethertype} for CIDR {p}.")));
            }
            let host_mask: u128 = if bits - len >= 128 { u128::MAX } else { (1u128 << (bits - len)) - 1 };
            let c =
                Cidr { v6: pv6, base: n & !host_mask & if pv6 { u128::MAX } else { u32::MAX as u128 }, prefix: len };
            Some(c.to_string())
        }
    };
    let remote_group = opt_str(&body, "remote_group_id")?;
    let remote_ag = opt_str(&body, "remote_address_group_id")?;
    if remote_ip.is_some() && remote_group.is_some() {
        return Err(neutron(
            StatusCode::BAD_REQUEST,
            "InvalidInput",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        ));
    }
    if remote_ag.is_some() {
        return Err(bad("Address groups are not supported."));
    }
    let any = if v6 { "::/0" } else { "0.0.0.0/0" };
    let signature = format!(
        "{group_id}|{direction}|{ethertype}|{}|{}|{}|{}|{}",
        number.map(|n| n.to_string()).unwrap_or_default(),
        min.map(|n| n.to_string()).unwrap_or_default(),
        max.map(|n| n.to_string()).unwrap_or_default(),
        remote_ip.as_deref().filter(|p| *p != any).unwrap_or(""),
        remote_group.as_deref().unwrap_or(""),
    );
    let mut doc = Map::new();
    doc.insert("security_group_id".into(), json!(group_id));
    doc.insert("direction".into(), json!(direction));
    doc.insert("ethertype".into(), json!(ethertype));
    doc.insert("protocol".into(), json!(protocol));
    doc.insert("port_range_min".into(), json!(min));
    doc.insert("port_range_max".into(), json!(max));
    doc.insert("remote_ip_prefix".into(), json!(remote_ip));
    doc.insert("remote_group_id".into(), json!(remote_group));
    doc.insert("remote_address_group_id".into(), Value::Null);
    doc.insert("normalized_cidr".into(), json!(remote_ip));
    doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
    doc.insert("belongs_to_default_sg".into(), json!(false));
    Ok((doc, signature))
}
