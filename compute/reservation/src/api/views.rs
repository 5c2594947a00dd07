//! Blazar's shapes: leases with their reservations and events, hosts with their extra
//! capabilities flattened in, allocations per host. Lease dates as
//! `%Y-%m-%dT%H:%M:%S.%f`, record times as `%Y-%m-%d %H:%M:%S` (what python-chi parses).

use crate::app::leases::LeaseDetail;
use crate::model::{lease_date, record_time};
use crate::store::{Allocation, FloatingIp, Host};
use serde_json::{json, Value};

/// A stored time as a lease date (unreadable: shown as stored).
fn date(t: &str) -> Value {
    stratus_common::db::parse_time(t).map(|t| json!(lease_date(t))).unwrap_or_else(|| json!(t))
}

fn record(t: Option<&str>) -> Value {
    match t {
        Some(t) => stratus_common::db::parse_time(t).map(|t| json!(record_time(t))).unwrap_or_else(|| json!(t)),
        None => Value::Null,
    }
}

pub fn lease(d: &LeaseDetail) -> Value {
    let l = &d.lease;
    let reservations: Vec<Value> = d
        .reservations
        .iter()
        .map(|r| {
            let mut v = json!({
                "id": r.id, "lease_id": r.lease_id, "resource_id": r.id, "resource_type": r.resource_type,
                "status": r.status.as_str(), "missing_resources": r.missing_resources,
                "resources_changed": r.resources_changed,
                "created_at": record(Some(&r.created_at)), "updated_at": record(r.updated_at.as_deref()),
            });
            let extra = if r.resource_type == crate::model::VIRTUAL_FLOATINGIP {
                json!({"network_id": r.network_id, "amount": r.max, "required_floatingips": r.required_floatingips})
            } else if r.resource_type == crate::model::FLAVOR_INSTANCE {
                // `flavor_id` is the flavor to boot with (the reservation's own, made at
                // the start); the flavor reserved is in `resource_properties`.
                json!({"amount": r.max, "vcpus": r.vcpus, "memory_mb": r.memory_mb, "disk_gb": r.disk_gb,
                       "affinity": r.affinity, "resource_properties": r.resource_properties, "flavor_id": r.id,
                       "aggregate_id": Value::Null, "server_group_id": Value::Null, "before_end": r.before_end,
                       "on_start": r.on_start})
            } else {
                json!({"min": r.min, "max": r.max, "hypervisor_properties": r.hypervisor_properties,
                       "resource_properties": r.resource_properties, "before_end": r.before_end, "on_start": r.on_start})
            };
            if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
                m.extend(e);
            }
            v
        })
        .collect();
    let events: Vec<Value> = d
        .events
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "lease_id": e.lease_id, "event_type": e.event_type.as_str(), "time": date(&e.time),
                "status": e.status.as_str(),
            })
        })
        .collect();
    json!({
        "id": l.id, "name": l.name, "start_date": date(&l.start_date), "end_date": date(&l.end_date),
        "before_end_date": l.before_end_date.as_deref().map(date), "status": l.status.as_str(), "degraded": l.degraded,
        "user_id": l.user_id, "project_id": l.project_id, "trust_id": Value::Null,
        "created_at": record(Some(&l.created_at)), "updated_at": record(l.updated_at.as_deref()),
        "reservations": reservations, "events": events,
    })
}

pub fn host(h: &Host) -> Value {
    let mut v = json!({
        "id": h.id.to_string(), "hypervisor_hostname": h.hypervisor_hostname, "hypervisor_type": h.hypervisor_type,
        "hypervisor_version": h.hypervisor_version, "vcpus": h.vcpus, "cpu_info": h.cpu_info, "memory_mb": h.memory_mb,
        "local_gb": h.local_gb, "service_name": h.service_name, "trust_id": Value::Null, "reservable": h.reservable,
        "created_at": record(Some(&h.created_at)), "updated_at": record(h.updated_at.as_deref()),
    });
    if let Value::Object(m) = &mut v {
        for (k, val) in &h.extra {
            m.entry(k.clone()).or_insert_with(|| val.clone());
        }
    }
    v
}

pub fn allocation(h: &Host, allocations: &[Allocation]) -> Value {
    let reservations: Vec<Value> = allocations
        .iter()
        .map(|a| {
            json!({"id": a.reservation_id, "lease_id": a.lease_id, "start_date": date(&a.start_date),
                        "end_date": date(&a.end_date)})
        })
        .collect();
    json!({"resource_id": h.id.to_string(), "reservations": reservations})
}

/// A reservable floating IP; `reservable` is false while a lease holds it now.
pub fn floatingip(f: &FloatingIp) -> Value {
    json!({
        "id": f.id, "floating_network_id": f.floating_network_id, "floating_ip_address": f.floating_ip_address,
        "subnet_id": f.subnet_id, "reservable": f.reservable,
        "created_at": record(Some(&f.created_at)), "updated_at": record(f.updated_at.as_deref()),
    })
}
