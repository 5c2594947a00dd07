//! How stored records look on the wire: the document plus the standard attributes
//! every Neutron resource carries.

use crate::store::Record;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Neutron shows times to the second, in UTC.
pub fn neutron_time(t: &str) -> String {
    match t.get(..19) {
        Some(s) => format!("{s}Z"),
        None => t.to_string(),
    }
}

/// The common part: the document, plus ids, revision and times.
pub fn base(r: Record) -> Map<String, Value> {
    let mut m = r.doc;
    m.insert("id".into(), json!(r.id));
    m.insert("tenant_id".into(), json!(r.project_id));
    m.insert("project_id".into(), json!(r.project_id));
    m.insert("revision_number".into(), json!(r.revision_number));
    m.insert("created_at".into(), json!(neutron_time(&r.created_at)));
    m.insert("updated_at".into(), json!(neutron_time(&r.updated_at)));
    m
}

/// A network with the ids of its subnets.
pub fn network(r: Record, subnets: &HashMap<String, Vec<String>>) -> Value {
    let own = subnets.get(&r.id).cloned().unwrap_or_default();
    let mut m = base(r);
    m.insert("subnets".into(), json!(own));
    m.insert("status".into(), json!("ACTIVE"));
    m.insert("availability_zone_hints".into(), json!([]));
    m.insert("availability_zones".into(), json!(["nova"]));
    m.insert("ipv4_address_scope".into(), Value::Null);
    m.insert("ipv6_address_scope".into(), Value::Null);
    m.insert("l2_adjacency".into(), json!(true));
    m.entry("is_default").or_insert(json!(false));
    m.entry("dns_domain").or_insert(json!(""));
    m.insert("qos_policy_id".into(), Value::Null);
    Value::Object(m)
}

pub fn subnet(r: Record) -> Value {
    Value::Object(base(r))
}

pub fn port(r: Record) -> Value {
    let mut m = base(r);
    m.insert("qos_policy_id".into(), Value::Null);
    m.insert("qos_network_policy_id".into(), Value::Null);
    m.entry("propagate_uplink_status").or_insert(json!(false));
    m.entry("dns_assignment").or_insert(json!([]));
    Value::Object(m)
}

pub fn rule(r: Record) -> Value {
    Value::Object(base(r))
}

/// A group with its rules.
pub fn group(r: Record, rules: Vec<Record>) -> Value {
    let mut m = base(r);
    m.insert("security_group_rules".into(), Value::Array(rules.into_iter().map(rule).collect()));
    Value::Object(m)
}

pub fn router(r: Record) -> Value {
    Value::Object(base(r))
}

pub fn subnetpool(r: Record) -> Value {
    Value::Object(base(r))
}

pub fn floating_ip(r: Record) -> Value {
    Value::Object(base(r))
}
