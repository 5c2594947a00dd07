//! The hardware catalog in the shape of Chameleon's reference API, which python-chi's
//! `chi.hardware` and `chi.context.list_sites` read (base URL `CHI_RESOURCE_API_URL`,
//! here `http://HOST:1234/reference`): one site named after the region, and one node
//! per reservable host, described from the host's record and its extra capabilities.
//! Served without a token, as Chameleon's is, and only when `[reservation]
//! hardware_catalog` is on; otherwise every path is a 404.

use super::AppState;
use crate::store::Host;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::http::{ApiError, ApiResult};

/// `CHI@UC` → `uc`, as python-chi derives a site's path from its region name.
pub fn site_uid(region: &str) -> String {
    region.split_once('@').map_or(region, |(_, s)| s).to_lowercase()
}

fn not_found() -> ApiError {
    ApiError::new(axum::http::StatusCode::NOT_FOUND, "The resource could not be found.")
}

async fn hosts(s: &AppState) -> ApiResult<Vec<Host>> {
    s.hardware().await?.ok_or_else(not_found)
}

/// `GET /reference/sites.json`
pub async fn sites(State(s): State<AppState>) -> ApiResult<Json<Value>> {
    hosts(&s).await?;
    let web = s.settings.public_url.rsplit_once(':').map_or(s.settings.public_url.as_str(), |(base, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            base
        } else {
            s.settings.public_url.as_str()
        }
    });
    let site = json!({
        "uid": site_uid(&s.settings.region), "name": s.settings.region, "type": "site", "site_class": "CHI",
        "web": web, "location": "", "user_support_contact": "", "description": "Stratus",
    });
    Ok(Json(json!({"items": [site], "total": 1, "offset": 0})))
}

/// `GET /reference/sites/{site}/clusters/{cluster}/nodes.json`
pub async fn nodes(
    State(s): State<AppState>,
    Path((site, _cluster)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let hosts = hosts(&s).await?;
    if site != site_uid(&s.settings.region) {
        return Err(not_found());
    }
    let items: Vec<Value> = hosts.iter().map(node).collect();
    Ok(Json(json!({"total": items.len(), "offset": 0, "items": items})))
}

/// `GET /reference/sites/{site}/clusters/{cluster}/nodes/{uid}.json`
pub async fn node_show(
    State(s): State<AppState>,
    Path((site, _cluster, file)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let hosts = hosts(&s).await?;
    let uid = file.strip_suffix(".json").unwrap_or(&file);
    if site != site_uid(&s.settings.region) {
        return Err(not_found());
    }
    hosts.iter().find(|h| h.hypervisor_hostname == uid).map(|h| Json(node(h))).ok_or_else(not_found)
}

fn text(extra: &Map<String, Value>, key: &str) -> Option<String> {
    match extra.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::String(_) | Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn truthy(v: Option<String>) -> bool {
    v.is_some_and(|s| !matches!(s.to_ascii_lowercase().as_str(), "false" | "no" | "none" | "0" | "off"))
}

/// `1536` MiB → `1.5 GiB`.
fn humanized(bytes: i64, unit: i64, suffix: &str) -> String {
    let n = bytes as f64 / unit as f64;
    if n.fract() == 0.0 {
        format!("{n:.0} {suffix}")
    } else {
        format!("{n:.1} {suffix}")
    }
}

/// A host as the reference API describes a node.
pub fn node(h: &Host) -> Value {
    let cpu: Value = serde_json::from_str(&h.cpu_info).unwrap_or(Value::Null);
    let extra = &h.extra;
    let ram = h.memory_mb * 1024 * 1024;
    let disk = h.local_gb * 1_000_000_000;
    let storage: Vec<Value> = if h.local_gb > 0 {
        vec![json!({"device": "sda", "size": disk, "humanized_size": humanized(disk, 1_000_000_000, "GB")})]
    } else {
        Vec::new()
    };
    json!({
        "uid": h.hypervisor_hostname,
        "type": "node",
        "node_name": text(extra, "node_name").unwrap_or_else(|| h.hypervisor_hostname.clone()),
        "node_type": text(extra, "node_type"),
        "architecture": {
            "platform_type": cpu["arch"].as_str().map(str::to_string).or_else(|| text(extra, "cpu_arch")).unwrap_or_else(|| "x86_64".into()),
            "smp_size": text(extra, "cpu_sockets").and_then(|s| s.parse::<i64>().ok()).unwrap_or(1),
            "smt_size": h.vcpus,
        },
        "processor": {
            "model": cpu["model"].as_str().map(str::to_string).or_else(|| text(extra, "cpu_model")),
            "vendor": cpu["vendor"].as_str().map(str::to_string),
        },
        "main_memory": {"ram_size": ram, "humanized_ram_size": humanized(ram, 1 << 30, "GiB")},
        "storage_devices": storage,
        "gpu": {"gpu": truthy(text(extra, "gpu")), "gpu_model": text(extra, "gpu_model"), "gpu_count": text(extra, "gpu_count").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0)},
        "network_adapters": [],
        "placement": {"node": text(extra, "placement.node"), "rack": text(extra, "placement.rack")},
        "bios": {},
        "hypervisor_type": h.hypervisor_type,
        "version": h.updated_at.clone().unwrap_or_else(|| h.created_at.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_are_named_as_python_chi_derives_them() {
        assert_eq!(site_uid("CHI@UC"), "uc");
        assert_eq!(site_uid("CHI@Stratus"), "stratus");
        assert_eq!(site_uid("RegionOne"), "regionone");
    }

    #[test]
    fn a_host_is_described_as_a_node() {
        let mut extra = Map::new();
        extra.insert("node_type".into(), json!("gpu_rtx"));
        extra.insert("gpu".into(), json!("True"));
        let h = Host {
            id: 1,
            hypervisor_hostname: "n1".into(),
            hypervisor_type: "ironic".into(),
            hypervisor_version: 1,
            vcpus: 48,
            memory_mb: 196_608,
            local_gb: 240,
            cpu_info: r#"{"arch": "x86_64", "model": "Cascadelake"}"#.into(),
            service_name: "n1".into(),
            extra,
            reservable: true,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: None,
        };
        let n = node(&h);
        assert_eq!(
            (&n["uid"], &n["node_type"], &n["architecture"]["smt_size"]),
            (&json!("n1"), &json!("gpu_rtx"), &json!(48))
        );
        assert_eq!(n["main_memory"]["humanized_ram_size"], "192 GiB");
        assert_eq!(n["gpu"]["gpu"], true);
        assert_eq!(n["processor"]["model"], "Cascadelake");
        assert_eq!(n["storage_devices"][0]["humanized_size"], "240 GB");
    }
}
