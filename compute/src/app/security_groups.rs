//! Nova's security-group proxy (`os-security-groups`, `os-security-group-rules`,
//! microversions below 2.36): the network service's security groups in Nova's shapes,
//! read and changed with the caller's own token, so the network service's rules and
//! isolation hold. Only ingress rules are shown, as Nova shows them.

use super::{bad, conflict, forbidden, not_found, AppResult, ComputeService, Error};
use crate::clients::CallError;
use reqwest::Method;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;

/// A security group in Nova's shape, from the network service's.
pub fn group_view(sg: &Value, names: &Map<String, Value>) -> Value {
    let rules: Vec<Value> = sg["security_group_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["direction"] == "ingress")
        .map(|r| rule_view(r, names))
        .collect();
    json!({
        "id": sg["id"], "name": sg["name"], "description": sg["description"].as_str().unwrap_or(""),
        "tenant_id": sg["tenant_id"].as_str().or_else(|| sg["project_id"].as_str()).unwrap_or(""), "rules": rules,
    })
}

/// A rule in Nova's shape: ports widened to the whole range when the network service
/// has none, the peer group by name (`names`: group id → `{name, tenant_id}`) or the
/// CIDR (everywhere, when neither).
pub fn rule_view(r: &Value, names: &Map<String, Value>) -> Value {
    let protocol = r["protocol"].as_str().map(str::to_lowercase);
    let (from, to) = match (&r["port_range_min"], &r["port_range_max"], protocol.as_deref()) {
        (Value::Null, Value::Null, Some("tcp" | "udp")) => (json!(1), json!(65535)),
        (Value::Null, Value::Null, Some("icmp")) => (json!(-1), json!(-1)),
        (a, b, _) => (a.clone(), b.clone()),
    };
    let (group, range) = match r["remote_group_id"].as_str() {
        Some(g) => (names.get(g).cloned().unwrap_or_else(|| json!({})), json!({})),
        None => (json!({}), json!({"cidr": r["remote_ip_prefix"].as_str().unwrap_or("0.0.0.0/0")})),
    };
    json!({"id": r["id"], "parent_group_id": r["security_group_id"], "ip_protocol": protocol, "from_port": from,
           "to_port": to, "group": group, "ip_range": range})
}

/// Group id → `{name, tenant_id}`, for the rules' peer groups.
fn names_of(groups: &Value) -> Map<String, Value> {
    groups
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| Some((g["id"].as_str()?.to_string(), json!({"name": g["name"], "tenant_id": g["tenant_id"]}))))
        .collect()
}

/// A network-service refusal in Nova's terms (a missing group is 404; what the network
/// service finds in conflict, Nova calls a bad request).
pub(crate) fn refused(what: &str, e: CallError) -> Error {
    match e {
        CallError::Refused(404, _) => not_found(format!("{what} could not be found.")),
        CallError::Refused(403, m) => forbidden(m),
        CallError::Refused(400 | 409, m) => bad(m),
        CallError::Refused(_, m) => conflict(m),
        CallError::Unavailable(m) => Error::Unavailable(m),
    }
}

/// Nova requires UUIDs of the network service's groups (400 otherwise).
fn uuid_of<'a>(what: &str, id: &'a str) -> AppResult<&'a str> {
    uuid::Uuid::parse_str(id).map(|_| id).map_err(|_| bad(format!("Invalid {what} id {id}: it must be a UUID.")))
}

/// Nova's checks of a group's name and description (both strings of at most 255).
fn text_field<'a>(b: &'a Map<String, Value>, key: &str) -> AppResult<&'a str> {
    match b.get(key) {
        Some(Value::String(s)) if s.chars().count() <= 255 => Ok(s),
        Some(Value::Null) | None if key == "description" => Ok(""),
        _ => Err(bad(format!("Invalid input for field/attribute {key}: a string of at most 255 characters."))),
    }
}

impl ComputeService {
    async fn sg_call(
        &self,
        ctx: &AuthContext,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> AppResult<Value> {
        self.clients.network_call(&ctx.token, method, path, body).await.map_err(|e| refused(what, e))
    }

    /// Names (and owners) of the groups the caller sees, for the rules' peer groups.
    async fn sg_names(&self, ctx: &AuthContext) -> AppResult<Map<String, Value>> {
        let all = self
            .sg_call(
                ctx,
                Method::GET,
                "/v2.0/security-groups?fields=id&fields=name&fields=tenant_id",
                None,
                "Security groups",
            )
            .await?;
        Ok(names_of(&all["security_groups"]))
    }

    /// The caller's groups (an admin's `all_tenants`: every project's).
    pub async fn sg_list(&self, ctx: &AuthContext, all_tenants: bool) -> AppResult<Vec<Value>> {
        let path = match ctx.project_id() {
            Some(p) if !(all_tenants && ctx.is_admin()) => format!("/v2.0/security-groups?project_id={p}"),
            _ => "/v2.0/security-groups?all_tenants=1".to_string(),
        };
        let all = self.sg_call(ctx, Method::GET, &path, None, "Security groups").await?;
        // The list holds every group the caller's rules can name (their project's, or
        // more): the peers' names come from it, with no second call.
        let names = names_of(&all["security_groups"]);
        Ok(all["security_groups"].as_array().into_iter().flatten().map(|g| group_view(g, &names)).collect())
    }

    pub async fn sg_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        let what = format!("Security group {id}");
        let g = self
            .sg_call(
                ctx,
                Method::GET,
                &format!("/v2.0/security-groups/{}", uuid_of("security group", id)?),
                None,
                &what,
            )
            .await?;
        Ok(group_view(&g["security_group"], &self.sg_names(ctx).await?))
    }

    pub async fn sg_create(&self, ctx: &AuthContext, b: &Map<String, Value>) -> AppResult<Value> {
        let (name, description) = (text_field(b, "name")?, text_field(b, "description")?);
        if name.is_empty() {
            return Err(bad("Invalid input for field/attribute name: it may not be empty."));
        }
        let body = json!({"security_group": {"name": name, "description": description}});
        let g = self.sg_call(ctx, Method::POST, "/v2.0/security-groups", Some(body), "Security group").await?;
        Ok(group_view(&g["security_group"], &Map::new()))
    }

    pub async fn sg_update(&self, ctx: &AuthContext, id: &str, b: &Map<String, Value>) -> AppResult<Value> {
        let (name, description) = (text_field(b, "name")?, text_field(b, "description")?);
        let what = format!("Security group {id}");
        let body = json!({"security_group": {"name": name, "description": description}});
        let path = format!("/v2.0/security-groups/{}", uuid_of("security group", id)?);
        let g = self.sg_call(ctx, Method::PUT, &path, Some(body), &what).await?;
        Ok(group_view(&g["security_group"], &self.sg_names(ctx).await?))
    }

    pub async fn sg_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let what = format!("Security group {id}");
        let path = format!("/v2.0/security-groups/{}", uuid_of("security group", id)?);
        self.sg_call(ctx, Method::DELETE, &path, None, &what).await.map(drop)
    }

    /// An ingress rule, as Nova takes it: a protocol (tcp, udp, icmp), ports within the
    /// protocol's range, and a CIDR or a peer group (everywhere when neither).
    pub async fn sg_rule_create(&self, ctx: &AuthContext, b: &Map<String, Value>) -> AppResult<Value> {
        let parent = b
            .get("parent_group_id")
            .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())));
        let parent = parent.ok_or_else(|| bad("Invalid input: parent_group_id is required."))?;
        uuid_of("security group", &parent)?;
        let protocol = b.get("ip_protocol").and_then(Value::as_str).map(str::to_lowercase);
        let port = |k: &str| -> AppResult<Option<i64>> {
            match b.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| bad(format!("Invalid port {k}: {v}"))),
            }
        };
        let (from, to) = (port("from_port")?, port("to_port")?);
        let (lo, hi) = match protocol.as_deref() {
            Some("tcp" | "udp") => (1, 65535),
            Some("icmp") => (-1, 255),
            Some(p) => return Err(bad(format!("Invalid IP protocol {p}: tcp, udp or icmp."))),
            None => return Err(bad("Invalid input: ip_protocol is required.")),
        };
        for (k, v) in [("from_port", from), ("to_port", to)] {
            if v.is_some_and(|v| v < lo || v > hi) {
                return Err(bad(format!("Invalid port range: {k} must be between {lo} and {hi}.")));
            }
        }
        if let (Some(f), Some(t)) = (from, to) {
            if protocol.as_deref() != Some("icmp") && f > t {
                return Err(bad(format!("Invalid port range {f}:{t}: the first port comes before the last.")));
            }
        }
        let mut rule =
            json!({"security_group_id": parent, "direction": "ingress", "ethertype": "IPv4", "protocol": protocol});
        if protocol.as_deref() == Some("icmp") {
            // Nova's icmp: from_port is the type, to_port the code; -1 is any.
            if let Some(t) = from.filter(|t| *t >= 0) {
                rule["port_range_min"] = json!(t);
                if let Some(c) = to.filter(|c| *c >= 0) {
                    rule["port_range_max"] = json!(c);
                }
            }
        } else {
            rule["port_range_min"] = json!(from);
            rule["port_range_max"] = json!(to);
        }
        match (
            b.get("cidr").and_then(Value::as_str).filter(|c| !c.is_empty()),
            b.get("group_id").and_then(Value::as_str),
        ) {
            (Some(_), Some(_)) => return Err(bad("Invalid input: give a cidr or a group_id, not both.")),
            (Some(c), None) => {
                if c.contains(':') {
                    rule["ethertype"] = json!("IPv6");
                }
                rule["remote_ip_prefix"] = json!(c);
            }
            (None, Some(g)) => rule["remote_group_id"] = json!(uuid_of("security group", g)?),
            (None, None) => rule["remote_ip_prefix"] = json!("0.0.0.0/0"),
        }
        let what = format!("Security group {parent}");
        let made = self
            .sg_call(ctx, Method::POST, "/v2.0/security-group-rules", Some(json!({"security_group_rule": rule})), &what)
            .await?;
        let mut view = rule_view(&made["security_group_rule"], &self.sg_names(ctx).await?);
        if let Some(c) = b.get("cidr").and_then(Value::as_str).filter(|c| !c.is_empty()) {
            // Nova answers the CIDR as it was given (the network service keeps the
            // network's address).
            view["ip_range"] = json!({"cidr": c});
        }
        Ok(view)
    }

    pub async fn sg_rule_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let path = format!("/v2.0/security-group-rules/{}", uuid_of("security group rule", id)?);
        self.sg_call(ctx, Method::DELETE, &path, None, &format!("Security group rule {id}")).await.map(drop)
    }

    /// The groups of a server's ports, in Nova's shape.
    pub async fn server_security_groups(&self, ctx: &AuthContext, server_id: &str) -> AppResult<Vec<Value>> {
        let server = self.server_get(ctx, server_id).await?;
        let ports =
            self.clients.ports_of(&server.id, server.project_id.as_str()).await.map_err(|e| refused("Ports", e))?;
        let mut ids: Vec<String> = ports
            .iter()
            .flat_map(|p| p["security_groups"].as_array().cloned().unwrap_or_default())
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        let names = self.sg_names(ctx).await?;
        let mut out = Vec::new();
        for id in ids {
            match self.clients.network_call(&ctx.token, Method::GET, &format!("/v2.0/security-groups/{id}"), None).await
            {
                Ok(g) => out.push(group_view(&g["security_group"], &names)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(refused("Security group", e)),
            }
        }
        Ok(out)
    }
}
