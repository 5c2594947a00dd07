//! Nodes, ports and drivers in Ironic's shapes. Secrets in `driver_info` (and a config
//! drive in `instance_info`) are shown as `******`, as Ironic does.

use crate::app::nodes::{hardware_interfaces, FIXED_INTERFACES};
use crate::model::{is_secret_key, HardwareType};
use crate::store::{Node, Port};
use serde_json::{json, Map, Value};

/// The fields of a node list without `detail` or `fields`.
pub const NODE_LIST_FIELDS: &[&str] =
    &["uuid", "instance_uuid", "maintenance", "power_state", "provision_state", "name", "links"];
/// The fields of a port list without `detail` or `fields`.
pub const PORT_LIST_FIELDS: &[&str] = &["uuid", "address", "links"];

/// A stored time as Ironic shows it (`+00:00`, not `Z`).
pub fn time(t: &Option<String>) -> Value {
    match t {
        Some(t) => Value::from(t.strip_suffix('Z').map(|s| format!("{s}+00:00")).unwrap_or_else(|| t.clone())),
        None => Value::Null,
    }
}

fn links(base: &str, kind: &str, id: &str) -> Value {
    json!([{"href": format!("{base}/v1/{kind}/{id}"), "rel": "self"},
           {"href": format!("{base}/{kind}/{id}"), "rel": "bookmark"}])
}

fn masked(m: &Map<String, Value>, secret: impl Fn(&str) -> bool) -> Value {
    Value::Object(
        m.iter().map(|(k, v)| (k.clone(), if secret(k) { Value::from("******") } else { v.clone() })).collect(),
    )
}

/// A node; `conductor` is the conductor that serves it.
pub fn node(base: &str, conductor: &str, n: &Node) -> Value {
    let mut v = json!({
        "uuid": n.id,
        "name": n.name,
        "driver": n.driver,
        "driver_info": masked(&n.driver_info, is_secret_key),
        "driver_internal_info": {},
        "properties": n.properties,
        "extra": n.extra,
        "instance_info": masked(&n.instance_info, |k| k == "configdrive" || is_secret_key(k)),
        "instance_uuid": n.instance_uuid,
        "power_state": n.power_state.map(|p| p.as_str()),
        "target_power_state": n.target_power_state.map(|p| p.as_str()),
        "provision_state": n.provision_state.as_str(),
        "target_provision_state": n.target_provision_state.map(|p| p.as_str()),
        "provision_updated_at": time(&n.provision_updated_at),
        "maintenance": n.maintenance,
        "maintenance_reason": n.maintenance_reason,
        "fault": if n.maintenance && n.maintenance_reason.as_deref().is_some_and(|r| r.contains("sync_power_state")) {
            Value::from("power failure")
        } else {
            Value::Null
        },
        "last_error": n.last_error,
        "reservation": n.work.and(n.conductor.clone()),
        "conductor": n.conductor.clone().unwrap_or_else(|| conductor.to_string()),
        "conductor_group": "",
        "console_enabled": false,
    });
    let more = json!({
        "resource_class": n.resource_class,
        "deploy_interface": n.deploy_interface,
        "traits": [],
        "owner": n.owner,
        "lessee": n.lessee,
        "description": n.description,
        "protected": false,
        "protected_reason": null,
        "retired": false,
        "retired_reason": null,
        "automated_clean": null,
        "chassis_uuid": null,
        "allocation_uuid": null,
        "clean_step": {},
        "deploy_step": {},
        "raid_config": {},
        "target_raid_config": {},
        "network_data": {},
        "inspection_started_at": time(&n.inspection_started_at),
        "inspection_finished_at": time(&n.inspection_finished_at),
        "created_at": time(&Some(n.created_at.clone())),
        "updated_at": time(&n.updated_at),
        "links": links(base, "nodes", &n.id),
        "ports": links(base, "nodes", &format!("{}/ports", n.id)),
        "states": links(base, "nodes", &format!("{}/states", n.id)),
    });
    let o = v.as_object_mut().expect("an object");
    if let Value::Object(m) = more {
        o.extend(m);
    }
    for (k, val) in FIXED_INTERFACES {
        o.insert(k.to_string(), Value::from(*val));
    }
    if let Some(hw) = HardwareType::parse(&n.driver) {
        for (k, val) in hardware_interfaces(hw) {
            o.insert(k.to_string(), Value::from(val));
        }
    }
    v
}

pub fn states(n: &Node) -> Value {
    json!({
        "power_state": n.power_state.map(|p| p.as_str()),
        "target_power_state": n.target_power_state.map(|p| p.as_str()),
        "provision_state": n.provision_state.as_str(),
        "target_provision_state": n.target_provision_state.map(|p| p.as_str()),
        "provision_updated_at": time(&n.provision_updated_at),
        "last_error": n.last_error,
        "console_enabled": false,
        "raid_config": {},
        "target_raid_config": {},
        "boot_mode": null,
        "secure_boot": null,
    })
}

pub fn port(base: &str, p: &Port) -> Value {
    json!({
        "uuid": p.id,
        "address": p.address,
        "node_uuid": p.node_id,
        "extra": p.extra,
        "internal_info": {},
        "local_link_connection": p.local_link_connection,
        "pxe_enabled": p.pxe_enabled,
        "physical_network": p.physical_network,
        "portgroup_uuid": null,
        "is_smartnic": false,
        "name": null,
        "created_at": time(&Some(p.created_at.clone())),
        "updated_at": time(&p.updated_at),
        "links": links(base, "ports", &p.id),
    })
}

pub fn driver(base: &str, hw: HardwareType, conductor: &str, detail: bool) -> Value {
    let mut v = json!({
        "name": hw.name(),
        "hosts": [conductor],
        "type": "dynamic",
        "links": links(base, "drivers", hw.name()),
        "properties": links(base, "drivers", &format!("{}/properties", hw.name())),
    });
    if detail {
        let o = v.as_object_mut().expect("an object");
        let mut interfaces: Vec<(&str, &str)> = FIXED_INTERFACES.to_vec();
        interfaces.extend(hardware_interfaces(hw));
        for (k, val) in interfaces {
            let short = k.trim_end_matches("_interface");
            o.insert(format!("default_{short}_interface"), Value::from(val));
            o.insert(format!("enabled_{short}_interfaces"), json!([val]));
        }
        o.insert("default_deploy_interface".into(), Value::from(hw.deploy_interfaces()[0]));
        o.insert("enabled_deploy_interfaces".into(), json!(hw.deploy_interfaces()));
    }
    v
}

/// `driver_info` keys a hardware type takes, with what they mean.
pub fn driver_properties(hw: HardwareType) -> Value {
    let (required, optional) = hw.driver_info_keys();
    let mut m = Map::new();
    for k in required {
        m.insert(k.to_string(), Value::from(format!("{k}. Required.")));
    }
    for k in optional {
        m.insert(k.to_string(), Value::from(format!("{k}. Optional.")));
    }
    Value::Object(m)
}

/// Keeps only `fields` of a view (Ironic's `?fields=`).
pub fn only(v: Value, fields: &[String]) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.into_iter().filter(|(k, _)| fields.iter().any(|f| f == k)).collect()),
        other => other,
    }
}
