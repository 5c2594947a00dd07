//! A project's quotas across the services (what it uses and may use) and its compute
//! usage over time: the three quota APIs (Nova's, Neutron's, Cinder's) read and set
//! by one command each, so nobody needs to know which service owns which limit.

use crate::create::id;
use crate::{find, kinds, output, usage, Failure, Format};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use stratus_client::session::Method;
use stratus_client::{Error, Session};

#[derive(Subcommand)]
pub enum QuotaVerb {
    /// Show the project's limits and what it uses, for every service the cloud runs
    #[command(after_help = "Examples:\n  stratus quota show\n  stratus quota show lab-3 -o json")]
    Show {
        /// The project, by name or ID (default: the session's)
        project: Option<String>,
    },
    /// Change a project's limits (admin); -1 means no limit
    #[command(
        after_help = "Example:\n  stratus quota set lab-3 --instances 20 --cores 40 --floating-ips 5 --gigabytes 500"
    )]
    Set(Box<QuotaSetArgs>),
}

/// The limits `quota set` changes, each the service's own key.
#[derive(clap::Args)]
pub struct QuotaSetArgs {
    /// The project, by name or ID
    pub project: String,
    /// Servers (compute)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub instances: Option<i64>,
    /// Virtual CPUs (compute)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub cores: Option<i64>,
    /// Memory in MiB (compute)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub ram: Option<i64>,
    /// Key pairs per user (compute)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub key_pairs: Option<i64>,
    /// Server groups (compute)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub server_groups: Option<i64>,
    /// Networks (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub networks: Option<i64>,
    /// Subnets (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub subnets: Option<i64>,
    /// Ports (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub ports: Option<i64>,
    /// Routers (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub routers: Option<i64>,
    /// Floating IPs (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub floating_ips: Option<i64>,
    /// Security groups (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub security_groups: Option<i64>,
    /// Security group rules (network)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub security_group_rules: Option<i64>,
    /// Volumes (block storage)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub volumes: Option<i64>,
    /// Gigabytes of volumes and snapshots (block storage)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub gigabytes: Option<i64>,
    /// Volume snapshots (block storage)
    #[arg(long, value_parser = limit(), allow_negative_numbers = true)]
    pub snapshots: Option<i64>,
}

fn limit() -> clap::builder::RangedI64ValueParser<i64> {
    clap::value_parser!(i64).range(-1..)
}

/// Which service owns a quota, and the key its API calls it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Compute,
    Network,
    Volume,
}

impl Service {
    const ALL: [Service; 3] = [Service::Compute, Service::Network, Service::Volume];

    fn catalog_type(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Volume => "volumev3",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::Compute => "compute",
            Service::Network => "network",
            Service::Volume => "volume",
        }
    }

    /// Compute from 2.36 on, where the limits nova-network had (floating IPs, security
    /// groups, fixed IPs) are gone from its quota set: the network service owns them.
    fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Service::Compute => &[("OpenStack-API-Version", "compute 2.36")],
            Service::Network | Service::Volume => &[],
        }
    }

    /// The path of the project's quotas, with what they use, and the body's wrapper.
    fn detail_path(self, project: &str) -> (String, &'static str) {
        match self {
            Service::Compute => (format!("/os-quota-sets/{project}/detail"), "quota_set"),
            Service::Network => (format!("/v2.0/quotas/{project}/details"), "quota"),
            Service::Volume => (format!("/os-quota-sets/{project}?usage=true"), "quota_set"),
        }
    }

    fn update_path(self, project: &str) -> (String, &'static str) {
        match self {
            Service::Compute => (format!("/os-quota-sets/{project}"), "quota_set"),
            Service::Network => (format!("/v2.0/quotas/{project}"), "quota"),
            Service::Volume => (format!("/os-quota-sets/{project}"), "quota_set"),
        }
    }
}

impl QuotaSetArgs {
    /// Each limit asked for, with its service and that service's key.
    fn changes(&self) -> Vec<(Service, &'static str, i64)> {
        use Service::*;
        let all = [
            (Compute, "instances", self.instances),
            (Compute, "cores", self.cores),
            (Compute, "ram", self.ram),
            (Compute, "key_pairs", self.key_pairs),
            (Compute, "server_groups", self.server_groups),
            (Network, "network", self.networks),
            (Network, "subnet", self.subnets),
            (Network, "port", self.ports),
            (Network, "router", self.routers),
            (Network, "floatingip", self.floating_ips),
            (Network, "security_group", self.security_groups),
            (Network, "security_group_rule", self.security_group_rules),
            (Volume, "volumes", self.volumes),
            (Volume, "gigabytes", self.gigabytes),
            (Volume, "snapshots", self.snapshots),
        ];
        all.into_iter().filter_map(|(s, k, v)| v.map(|v| (s, k, v))).collect()
    }
}

pub async fn quota(s: &Session, verb: QuotaVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    let project = match &verb {
        QuotaVerb::Show { project: Some(p) } => id(&find(&kinds::PROJECT, s, p).await?),
        QuotaVerb::Set(args) => id(&find(&kinds::PROJECT, s, &args.project).await?),
        QuotaVerb::Show { project: None } => {
            s.project_id().ok_or_else(|| usage("the session is not scoped to a project: name one".into()))?
        }
    };
    if let QuotaVerb::Set(args) = &verb {
        let changes = args.changes();
        if changes.is_empty() {
            return Err(usage("nothing to change: give at least one limit (see --help)".into()));
        }
        // Each service gets its own keys in one request.
        for service in Service::ALL {
            let body: Map<String, Value> =
                changes.iter().filter(|(sv, _, _)| *sv == service).map(|(_, k, v)| (k.to_string(), json!(v))).collect();
            if body.is_empty() {
                continue;
            }
            let (path, wrapper) = service.update_path(&project);
            s.call(Method::PUT, service.catalog_type(), &path, Some(&json!({ wrapper: body })), service.headers())
                .await?;
        }
    }
    let mut rows = Vec::new();
    for service in Service::ALL {
        let (path, wrapper) = service.detail_path(&project);
        match s.call(Method::GET, service.catalog_type(), &path, None, service.headers()).await {
            Ok(v) => rows.extend(quota_rows(service, &v[wrapper])),
            // A cloud without that service has no quotas for it.
            Err(Error::NoEndpoint { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !format.structured() {
        for r in &mut rows {
            if r["limit"] == json!(-1) {
                r["limit"] = json!("unlimited");
            }
        }
    }
    output::columns_table(
        &[("Service", "service"), ("Resource", "resource"), ("In use", "in_use"), ("Limit", "limit")],
        &rows,
        format,
        columns,
    )
    .map_err(usage)
}

/// For a refusal that names quotas (compute's "Quota exceeded for cores", the network
/// service's "Quota exceeded for resources: ['port']", block storage's
/// "VolumeLimitExceeded: ... gigabytes"), a line per quota named: what the session's
/// project uses and may use. None for any other refusal, or when nothing can be read.
pub async fn explain(s: &Session, message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    if !m.contains("quota") && !m.contains("limitexceeded") {
        return None;
    }
    let project = s.project_id()?;
    let words: std::collections::HashSet<&str> =
        m.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let mut lines = Vec::new();
    for service in Service::ALL {
        let (path, wrapper) = service.detail_path(&project);
        let Ok(v) = s.call(Method::GET, service.catalog_type(), &path, None, service.headers()).await else {
            continue;
        };
        for r in quota_rows(service, &v[wrapper]) {
            let resource = r["resource"].as_str().unwrap_or_default();
            if words.contains(resource) {
                let limit = match r["limit"].as_i64() {
                    Some(-1) => "no limit".to_string(),
                    Some(n) => format!("a limit of {n}"),
                    None => r["limit"].to_string(),
                };
                lines.push(format!("  {} quota {resource}: {} in use, {limit}", service.name(), r["in_use"]));
            }
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// One row per limit a service's detailed quota set shows (`{"key": {"in_use"|"used",
/// "limit", …}}`); -1 is no limit (shown
/// as "unlimited" in a table, -1 in JSON).
fn quota_rows(service: Service, set: &Value) -> Vec<Value> {
    let Some(m) = set.as_object() else { return Vec::new() };
    m.iter()
        .filter(|(_, v)| v.is_object())
        .map(|(k, v)| {
            let in_use = v.get("in_use").or_else(|| v.get("used")).cloned().unwrap_or(json!(0));
            json!({"service": service.name(), "resource": k, "in_use": in_use, "limit": v["limit"]})
        })
        .collect()
}

/// `stratus usage`: what the project's servers used over a window (server-hours, vCPU-,
/// memory- and disk-hours), from compute's simple tenant usage.
pub async fn usage_report(
    s: &Session,
    project: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    format: Format,
    columns: &[String],
) -> Result<(), Failure> {
    let project = match project {
        Some(p) => id(&find(&kinds::PROJECT, s, p).await?),
        None => s.project_id().ok_or_else(|| usage("the session is not scoped to a project: name one".into()))?,
    };
    let now = chrono::Utc::now().naive_utc();
    let start = match start {
        Some(t) => day_or_time(t)?,
        None => now - chrono::Duration::days(30),
    };
    let end = match end {
        Some(t) => day_or_time(t)?,
        None => now,
    };
    if start > end {
        return Err(usage("--start must come before --end".into()));
    }
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    // Asked to the microsecond: what was made in the last second is inside the window.
    let exact = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let path = format!("/os-simple-tenant-usage/{project}?start={}&end={}", exact(start), exact(end));
    let answer = s.get("compute", &path).await?;
    let u = &answer["tenant_usage"];
    let servers: Vec<Value> = u["server_usages"].as_array().cloned().unwrap_or_default();
    let storage = volume_usage(s, &project, &exact(start), &exact(end)).await?;
    let volumes: Vec<Value> = ["volumes", "snapshots"]
        .iter()
        .flat_map(|k| {
            let kind = k.trim_end_matches('s');
            storage[*k].as_array().cloned().unwrap_or_default().into_iter().map(move |mut l| {
                l["kind"] = json!(kind);
                l
            })
        })
        .collect();
    if format.structured() {
        let mut out = json!({
            "project_id": project, "start": fmt(start), "end": fmt(end),
            "server_hours": u["total_hours"].as_f64().unwrap_or(0.0),
            "vcpu_hours": u["total_vcpus_usage"].as_f64().unwrap_or(0.0),
            "memory_mb_hours": u["total_memory_mb_usage"].as_f64().unwrap_or(0.0),
            "disk_gb_hours": u["total_local_gb_usage"].as_f64().unwrap_or(0.0),
            "servers": servers,
        });
        if !storage.is_null() {
            out["volume_gb_hours"] = json!(storage["total_volume_gb_hours"].as_f64().unwrap_or(0.0));
            out["snapshot_gb_hours"] = json!(storage["total_snapshot_gb_hours"].as_f64().unwrap_or(0.0));
            out["volumes"] = json!(volumes);
        }
        output::document(format, &out);
        return Ok(());
    }
    let two = |v: &Value| format!("{:.2}", v.as_f64().unwrap_or(0.0));
    let rows: Vec<Value> = servers
        .iter()
        .map(|v| {
            json!({"name": v["name"], "state": v["state"], "flavor": v["flavor"], "hours": two(&v["hours"]),
                   "vcpus": v["vcpus"], "memory_mb": v["memory_mb"], "local_gb": v["local_gb"]})
        })
        .collect();
    output::emit(&format!("Usage of project {project} from {} to {} (UTC)\n", fmt(start), fmt(end)));
    output::columns_table(
        &[
            ("Server", "name"),
            ("State", "state"),
            ("Flavor", "flavor"),
            ("Hours", "hours"),
            ("vCPUs", "vcpus"),
            ("RAM (MiB)", "memory_mb"),
            ("Disk (GB)", "local_gb"),
        ],
        &rows,
        format,
        columns,
    )
    .map_err(usage)?;
    if format == Format::Table {
        output::emit(&format!(
            "\nTotal: {} server-hours, {} vCPU-hours, {} MiB-hours of memory, {} GB-hours of disk\n",
            two(&u["total_hours"]),
            two(&u["total_vcpus_usage"]),
            two(&u["total_memory_mb_usage"]),
            two(&u["total_local_gb_usage"])
        ));
        if !storage.is_null() {
            let rows: Vec<Value> = volumes
                .iter()
                .map(|v| {
                    let name = v["name"].as_str().filter(|n| !n.is_empty()).unwrap_or(v["id"].as_str().unwrap_or(""));
                    json!({"name": name, "kind": v["kind"], "state": v["state"], "size": v["size"],
                           "hours": two(&v["hours"]), "gb_hours": two(&v["gb_hours"])})
                })
                .collect();
            output::emit("\n");
            output::columns_table(
                &[
                    ("Volume", "name"),
                    ("Kind", "kind"),
                    ("State", "state"),
                    ("Size (GB)", "size"),
                    ("Hours", "hours"),
                    ("GB-hours", "gb_hours"),
                ],
                &rows,
                format,
                &[],
            )
            .map_err(usage)?;
            output::emit(&format!(
                "\nBlock storage: {} GB-hours of volumes, {} GB-hours of snapshots\n",
                two(&storage["total_volume_gb_hours"]),
                two(&storage["total_snapshot_gb_hours"])
            ));
        }
    }
    Ok(())
}

/// The GB-hours of the project's volumes and snapshots over the window, from the volume
/// service's usage (a Stratus extension); null when the cloud has no volume service or
/// one without it (another OpenStack's Cinder).
async fn volume_usage(s: &Session, project: &str, start: &str, end: &str) -> Result<Value, Failure> {
    if s.endpoint("volumev3").is_err() {
        return Ok(Value::Null);
    }
    match s.get("volumev3", &format!("/usage?project_id={project}&start={start}&end={end}")).await {
        Ok(answer) => Ok(answer["usage"].clone()),
        Err(e) if e.is_not_found() => Ok(Value::Null),
        Err(e) => Err(e.into()),
    }
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DD HH:MM` / `YYYY-MM-DDTHH:MM[:SS]`.
fn day_or_time(t: &str) -> Result<chrono::NaiveDateTime, Failure> {
    let t = t.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    for f in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(d);
        }
    }
    Err(usage(format!("{t:?} is not a date: write YYYY-MM-DD or \"YYYY-MM-DD HH:MM\" (UTC)")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_goes_to_the_service_that_owns_it() {
        let parsed = <crate::Cli as clap::Parser>::try_parse_from([
            "stratus",
            "quota",
            "set",
            "p",
            "--instances",
            "3",
            "--floating-ips",
            "-1",
            "--gigabytes",
            "50",
        ]);
        let Ok(crate::Cli { command: crate::Command::Quota { verb: QuotaVerb::Set(args) }, .. }) = parsed else {
            panic!("quota set did not parse")
        };
        assert_eq!(
            args.changes(),
            vec![
                (Service::Compute, "instances", 3),
                (Service::Network, "floatingip", -1),
                (Service::Volume, "gigabytes", 50)
            ]
        );
        let below = <crate::Cli as clap::Parser>::try_parse_from(["stratus", "quota", "set", "p", "--cores", "-2"]);
        assert!(below.is_err(), "a limit below -1 is a usage error");
    }

    #[test]
    fn detailed_quota_sets_of_every_service_read_alike() {
        let nova = json!({"id": "p", "instances": {"in_use": 2, "limit": 10, "reserved": 0}});
        let neutron = json!({"network": {"used": 1, "limit": -1, "reserved": 0}});
        assert_eq!(
            quota_rows(Service::Compute, &nova),
            vec![json!({"service": "compute", "resource": "instances", "in_use": 2, "limit": 10})]
        );
        assert_eq!(
            quota_rows(Service::Network, &neutron),
            vec![json!({"service": "network", "resource": "network", "in_use": 1, "limit": -1})]
        );
    }

    #[test]
    fn usage_windows_read_days_and_times() {
        assert_eq!(day_or_time("2026-01-02").ok().map(|t| t.to_string()).as_deref(), Some("2026-01-02 00:00:00"));
        assert_eq!(day_or_time("2026-01-02 13:30").ok().map(|t| t.to_string()).as_deref(), Some("2026-01-02 13:30:00"));
        assert!(day_or_time("yesterday").is_err());
    }
}
