//! Response bodies, shaped by the negotiated microversion as Nova shapes them (Tempest's
//! per-version schemas are the contract).

use crate::microversion::Version;
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Flavor, HostRow, Keypair, Server};
use serde_json::{json, Map, Value};

/// Nova's `status` from the VM and task states.
pub fn status(s: &Server) -> &'static str {
    use VmState::*;
    match (s.vm_state, s.task_state) {
        (Building, _) => "BUILD",
        (Active, Some(TaskState::Rebooting)) => "REBOOT",
        (Active | Stopped, Some(TaskState::RebootingHard)) => "HARD_REBOOT",
        (Active | Stopped | Error, Some(TaskState::Rebuilding)) => "REBUILD",
        (Resized, Some(TaskState::ResizeReverting)) => "REVERT_RESIZE",
        (Active | Stopped, Some(TaskState::ResizeMigrating | TaskState::ResizeReverting)) => "RESIZE",
        (Active, _) => "ACTIVE",
        (Stopped, _) => "SHUTOFF",
        (Paused, _) => "PAUSED",
        (Resized, _) => "VERIFY_RESIZE",
        (Error, _) => "ERROR",
        (Deleted, _) => "DELETED",
    }
}

fn links(base: &str, kind: &str, id: &str) -> Value {
    let root = base.trim_end_matches("/v2.1");
    json!([{"rel": "self", "href": format!("{base}/{kind}/{id}")},
           {"rel": "bookmark", "href": format!("{root}/{kind}/{id}")}])
}

/// The server's security groups as `[{"name": ...}]`.
pub fn security_groups(s: &Server) -> Vec<Value> {
    s.doc.get("security_groups").and_then(Value::as_array).into_iter().flatten().map(|n| json!({ "name": n })).collect()
}

/// The short form in `GET /servers`.
pub fn server_brief(s: &Server, base: &str) -> Value {
    json!({"id": s.id, "name": s.name, "links": links(base, "servers", &s.id)})
}

/// A host id as Nova makes it: a hash of host and project, so projects cannot compare.
pub fn host_id(s: &Server) -> String {
    match &s.host {
        Some(h) => {
            let d = ring::digest::digest(&ring::digest::SHA256, format!("{}{}", s.project_id, h).as_bytes());
            d.as_ref()[..28].iter().map(|b| format!("{b:02x}")).collect()
        }
        None => String::new(),
    }
}

pub fn server_view(s: &Server, v: Version, admin: bool, base: &str, show: bool) -> Value {
    let doc = &s.doc;
    let get = |k: &str| doc.get(k).cloned().unwrap_or(Value::Null);
    let flavor = doc.get("flavor").cloned().unwrap_or(json!({}));
    let flavor_view = if v.at_least(47) {
        json!({"vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
               "ephemeral": flavor["ephemeral"], "swap": flavor["swap"], "original_name": flavor["original_name"],
               "extra_specs": flavor.get("extra_specs").cloned().unwrap_or(json!({}))})
    } else {
        let id = flavor["id"].as_str().unwrap_or_default();
        json!({"id": id, "links": [{"rel": "bookmark", "href": format!("{}/flavors/{id}", base.trim_end_matches("/v2.1"))}]})
    };
    let image_id = s.str("image_id");
    let image = if image_id.is_empty() {
        json!("")
    } else {
        json!({"id": image_id, "links": [{"rel": "bookmark", "href": format!("{}/images/{image_id}", base.trim_end_matches("/v2.1"))}]})
    };
    let status = status(s);
    let sgs = security_groups(s);
    let mut o = Map::new();
    let mut put = |k: &str, val: Value| {
        o.insert(k.to_string(), val);
    };
    put("id", json!(s.id));
    put("name", json!(s.name));
    put("status", json!(status));
    put("tenant_id", json!(s.project_id));
    put("user_id", json!(s.user_id));
    put("metadata", doc.get("metadata").cloned().unwrap_or(json!({})));
    put("hostId", json!(host_id(s)));
    put("image", image);
    put("flavor", flavor_view);
    put("created", json!(s.created_at.get(..19).map(|t| format!("{t}Z")).unwrap_or_default()));
    put("updated", json!(s.updated_at.get(..19).map(|t| format!("{t}Z")).unwrap_or_default()));
    put("addresses", doc.get("addresses").cloned().unwrap_or(json!({})));
    put("accessIPv4", json!(doc.get("accessIPv4").and_then(Value::as_str).unwrap_or("")));
    put("accessIPv6", json!(doc.get("accessIPv6").and_then(Value::as_str).unwrap_or("")));
    put("links", links(base, "servers", &s.id));
    put("key_name", get("key_name"));
    put("config_drive", json!(if doc.get("config_drive") == Some(&json!(true)) { "True" } else { "" }));
    put("OS-DCF:diskConfig", json!(doc.get("disk_config").and_then(Value::as_str).unwrap_or("MANUAL")));
    let az = s
        .doc
        .get("host_az")
        .or_else(|| doc.get("availability_zone"))
        .and_then(Value::as_str)
        .unwrap_or(if s.host.is_some() { "nova" } else { "" })
        .to_string();
    put("OS-EXT-AZ:availability_zone", json!(az));
    put("OS-EXT-STS:power_state", json!(s.power_state.code()));
    put("OS-EXT-STS:task_state", json!(s.task_state));
    put("OS-EXT-STS:vm_state", json!(s.vm_state));
    put("OS-SRV-USG:launched_at", json!(s.launched_at.as_ref().and_then(|t| t.get(..26)).map(|t| t.to_string())));
    put("OS-SRV-USG:terminated_at", json!(s.terminated_at.as_ref().and_then(|t| t.get(..26)).map(|t| t.to_string())));
    let volumes: Vec<Value> = s
        .volumes()
        .iter()
        .map(|a| {
            let mut out = json!({"id": a.volume_id});
            if v.at_least(3) {
                out["delete_on_termination"] = json!(a.delete_on_termination);
            }
            out
        })
        .collect();
    put("os-extended-volumes:volumes_attached", json!(volumes));
    // As Nova: a server in no security group shows none, not an empty list.
    if !sgs.is_empty() {
        put("security_groups", json!(sgs));
    }
    // Nova shows progress only while a server is in one of these states.
    match status {
        "BUILD" | "REBUILD" | "RESIZE" | "MIGRATING" => put("progress", json!(0)),
        "ACTIVE" | "VERIFY_RESIZE" => put("progress", json!(100)),
        _ => {}
    }
    if status == "ERROR" || status == "DELETED" {
        if let Some(f) = doc.get("fault") {
            put("fault", f.clone());
        }
    }
    if admin {
        put("OS-EXT-SRV-ATTR:host", json!(s.host));
        put("OS-EXT-SRV-ATTR:hypervisor_hostname", json!(s.host));
        put("OS-EXT-SRV-ATTR:instance_name", json!(instance_name(&s.id)));
    }
    if v.at_least(3) && admin {
        put("OS-EXT-SRV-ATTR:reservation_id", get("reservation_id"));
        put("OS-EXT-SRV-ATTR:launch_index", get("launch_index"));
        put("OS-EXT-SRV-ATTR:kernel_id", json!(s.str("kernel_id")));
        put("OS-EXT-SRV-ATTR:ramdisk_id", json!(s.str("ramdisk_id")));
        put("OS-EXT-SRV-ATTR:hostname", get("hostname"));
        put("OS-EXT-SRV-ATTR:root_device_name", json!("/dev/vda"));
        put("OS-EXT-SRV-ATTR:user_data", get("user_data"));
    }
    if v.at_least(9) {
        put("locked", json!(s.locked));
    }
    if v.at_least(16) && admin {
        put("host_status", json!(if s.host.is_some() { "UP" } else { "" }));
    }
    if v.at_least(19) {
        put("description", get("description"));
    }
    if v.at_least(26) {
        put("tags", doc.get("tags").cloned().unwrap_or(json!([])));
    }
    if v.at_least(63) {
        put("trusted_image_certificates", Value::Null);
    }
    if v.at_least(71) && show {
        let groups: Vec<Value> = doc.get("hints").and_then(|h| h.get("group")).cloned().into_iter().collect();
        put("server_groups", json!(groups));
    }
    if v.at_least(73) {
        put("locked_reason", get("locked_reason"));
    }
    if v.at_least(90) && !admin {
        put("OS-EXT-SRV-ATTR:hostname", get("hostname"));
    }
    if v.at_least(96) {
        put("pinned_availability_zone", get("availability_zone"));
    }
    Value::Object(o)
}

/// The server in the answers to update and rebuild: below 2.75 Nova leaves out every
/// extension attribute there (zone, states, usage, host attributes, key, groups,
/// volumes); from 2.75 the full view. Rebuild also shows `user_data` from 2.57.
pub fn server_changed_view(s: &Server, v: Version, admin: bool, base: &str, rebuild: bool) -> Value {
    let mut o = server_view(s, v, admin, base, true);
    let Some(m) = o.as_object_mut() else { return o };
    if !v.at_least(75) {
        const EXTENSIONS: [&str; 3] = ["OS-EXT-", "OS-SRV-USG:", "os-extended-volumes:"];
        const OTHERS: [&str; 5] = ["config_drive", "key_name", "security_groups", "host_status", "server_groups"];
        m.retain(|k, _| !EXTENSIONS.iter().any(|p| k.starts_with(p)) && !OTHERS.contains(&k.as_str()));
        m.remove("progress");
        // Addresses without their extension attributes (type, MAC).
        if let Some(nets) = m.get_mut("addresses").and_then(Value::as_object_mut) {
            for addrs in nets.values_mut().filter_map(Value::as_array_mut) {
                for a in addrs.iter_mut().filter_map(Value::as_object_mut) {
                    a.retain(|k, _| k == "addr" || k == "version");
                }
            }
        }
    }
    // Nova's rebuild answer carries the key pair from 2.54 (a rebuild may change it).
    if rebuild && v.at_least(54) {
        let key = s.doc.get("key_name").cloned().filter(|k| k.as_str().is_some_and(|k| !k.is_empty()));
        m.insert("key_name".into(), key.unwrap_or(Value::Null));
    }
    if rebuild && v.at_least(57) {
        m.remove("OS-EXT-SRV-ATTR:user_data");
        m.insert("user_data".into(), s.doc.get("user_data").cloned().unwrap_or(Value::Null));
    }
    o
}

pub fn instance_name(id: &str) -> String {
    format!("instance-{}", &id[..8.min(id.len())])
}

pub fn flavor_view(f: &Flavor, v: Version, base: &str, detail: bool) -> Value {
    let mut o = json!({"id": f.id, "name": f.name, "links": links(base, "flavors", &f.id)});
    if v.at_least(55) {
        o["description"] = json!(f.description);
    }
    if !detail {
        return o;
    }
    o["ram"] = json!(f.ram);
    o["vcpus"] = json!(f.vcpus);
    o["disk"] = json!(f.disk);
    o["swap"] = if v.at_least(75) {
        json!(f.swap)
    } else if f.swap == 0 {
        json!("")
    } else {
        json!(f.swap)
    };
    o["OS-FLV-EXT-DATA:ephemeral"] = json!(f.ephemeral);
    o["OS-FLV-DISABLED:disabled"] = json!(f.disabled);
    o["os-flavor-access:is_public"] = json!(f.is_public);
    o["rxtx_factor"] = json!(1.0);
    if v.at_least(61) {
        o["extra_specs"] = Value::Object(f.extra_specs.clone());
    }
    o
}

pub fn keypair_view(k: &Keypair, v: Version, detail: bool) -> Value {
    let mut o = json!({"name": k.name, "public_key": k.public_key, "fingerprint": k.fingerprint});
    if v.at_least(2) {
        o["type"] = json!(k.kind);
    }
    if detail {
        o["user_id"] = json!(k.user_id);
        o["created_at"] = json!(k.created_at.get(..26).unwrap_or(&k.created_at));
        o["deleted"] = json!(false);
        o["deleted_at"] = Value::Null;
        o["updated_at"] = Value::Null;
        o["id"] = json!(1);
    }
    o
}

/// A hypervisor as `os-hypervisors` shows it; `id` is the host name from 2.53 on
/// (Nova's UUID there), an index before.
pub fn hypervisor_view(h: &HostRow, index: usize, v: Version, up: bool, detail: bool, running: i64) -> Value {
    let id = if v.at_least(53) { json!(h.host) } else { json!(index + 1) };
    let mut o = json!({"id": id, "hypervisor_hostname": h.host, "state": if up { "up" } else { "down" },
                       "status": if h.enabled { "enabled" } else { "disabled" }});
    if detail {
        // Hosts that are no machine of their own (fake hosts, bare-metal nodes) report
        // no address; Nova's schema wants one.
        o["host_ip"] = json!(h.host_ip.as_deref().unwrap_or("127.0.0.1"));
        o["hypervisor_type"] = json!(h.hypervisor_type);
        o["hypervisor_version"] = json!(1);
        o["service"] = json!({"host": h.host, "id": if v.at_least(53) { json!(h.host) } else { json!(index + 1) }, "disabled_reason": h.disabled_reason});
        if !v.at_least(88) {
            o["vcpus"] = json!(h.vcpus);
            o["memory_mb"] = json!(h.ram_mb);
            o["local_gb"] = json!(h.disk_gb);
            o["vcpus_used"] = json!(h.used_vcpus);
            o["memory_mb_used"] = json!(h.used_ram);
            o["local_gb_used"] = json!(h.used_disk);
            o["free_ram_mb"] = json!(h.ram_mb - h.used_ram);
            o["free_disk_gb"] = json!(h.disk_gb - h.used_disk);
            o["current_workload"] = json!(0);
            o["running_vms"] = json!(running);
            o["disk_available_least"] = json!(h.disk_gb - h.used_disk);
            // A JSON text below 2.28, an object from 2.28.
            o["cpu_info"] = if v.at_least(28) { json!({}) } else { json!("{}") };
        } else {
            o["uptime"] = json!(h.uptime);
        }
    }
    o
}
