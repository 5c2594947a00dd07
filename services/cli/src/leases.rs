//! Lease commands that change things: create a lease of hosts (by node type) and
//! floating IPs for a number of hours, and delete leases; both with `--wait`.

use crate::wait::{wait_for, WaitArgs};
use crate::{find, kinds, output, usage, Failure, Format};
use clap::Subcommand;
use serde_json::{json, Value};
use stratus_client::session::Method;
use stratus_client::Session;

#[derive(Subcommand)]
pub enum LeaseVerb {
    /// List the project's leases
    List,
    /// Show one, by name or ID
    Show {
        /// Its name or ID
        name: String,
    },
    /// Reserve hosts (and floating IPs) for a time window
    #[command(
        after_help = "Examples:\n  stratus lease create gpu-4h --node-type gpu_rtx --hours 4 --wait\n  stratus lease create two-nodes --nodes 2 --node-type compute_skylake --start \"2026-12-24 09:00\" --end \"2026-12-24 17:00\"\n  stratus lease create with-ip --node-type compute_skylake --floating-ips 1 --network public --hours 8"
    )]
    Create {
        /// Its name
        name: String,
        /// How many hosts
        #[arg(long, default_value_t = 1)]
        nodes: u32,
        /// Only hosts whose `node_type` is this
        #[arg(long)]
        node_type: Option<String>,
        /// Floating IPs to reserve too (with --network)
        #[arg(long, default_value_t = 0)]
        floating_ips: u32,
        /// The external network the floating IPs come from, by name or ID
        #[arg(long)]
        network: Option<String>,
        /// When it starts: `now` or `YYYY-MM-DD HH:MM` (UTC)
        #[arg(long, default_value = "now")]
        start: String,
        /// How long it lasts, in hours (or give --end)
        #[arg(long, default_value_t = 1, conflicts_with = "end")]
        hours: u32,
        /// When it ends: `YYYY-MM-DD HH:MM` (UTC)
        #[arg(long)]
        end: Option<String>,
        #[command(flatten)]
        waiting: WaitArgs,
    },
    /// Rename a lease, or move its end: longer, shorter, or to a date
    #[command(after_help = "Examples:\n  stratus lease set my-lease --prolong 2\n  \
                            stratus lease set my-lease --end \"2030-01-01 10:00\" --name final-run")]
    Set {
        /// Its name or ID
        name: String,
        /// Its new name
        #[arg(long = "name", value_name = "NEW_NAME")]
        new_name: Option<String>,
        /// Hours more
        #[arg(long, value_name = "HOURS", conflicts_with_all = ["reduce", "end"])]
        prolong: Option<u32>,
        /// Hours fewer
        #[arg(long, value_name = "HOURS", conflicts_with = "end")]
        reduce: Option<u32>,
        /// Its new end: `YYYY-MM-DD HH:MM` (UTC)
        #[arg(long)]
        end: Option<String>,
    },
    /// Delete leases (their servers are deleted, their hosts and addresses given back)
    Delete {
        /// Their names or IDs
        #[arg(required = true)]
        names: Vec<String>,
        #[command(flatten)]
        waiting: WaitArgs,
    },
}

const FORMAT: &str = "%Y-%m-%d %H:%M";

/// The window's end: `end` as given, else `hours` after the start.
fn end_of(start: &str, hours: u32, end: Option<&str>) -> Result<String, Failure> {
    if let Some(e) = end {
        chrono::NaiveDateTime::parse_from_str(e, FORMAT)
            .map_err(|_| usage(format!("--end {e:?}: give YYYY-MM-DD HH:MM (UTC)")))?;
        return Ok(e.to_string());
    }
    let from = if start == "now" {
        chrono::Utc::now().naive_utc()
    } else {
        chrono::NaiveDateTime::parse_from_str(start, FORMAT)
            .map_err(|_| usage(format!("--start {start:?}: give now or YYYY-MM-DD HH:MM (UTC)")))?
    };
    // Whole minutes, rounded up, so the window is never shorter than asked.
    let end = from + chrono::Duration::hours(i64::from(hours)) + chrono::Duration::seconds(59);
    Ok(end.format(FORMAT).to_string())
}

pub async fn run(s: &Session, verb: LeaseVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        LeaseVerb::List | LeaseVerb::Show { .. } => Err(usage("list and show are not handled here".into())),
        LeaseVerb::Create { name, nodes, node_type, floating_ips, network, start, hours, end, waiting } => {
            let end = end_of(&start, hours, end.as_deref())?;
            let mut reservations = Vec::new();
            if nodes > 0 {
                let props = node_type.map(|t| json!(["==", "$node_type", t]).to_string()).unwrap_or_default();
                reservations.push(json!({"resource_type": "physical:host", "min": nodes, "max": nodes,
                                         "hypervisor_properties": "", "resource_properties": props}));
            }
            if floating_ips > 0 {
                let net =
                    network.ok_or_else(|| usage("--floating-ips needs --network (the external network)".into()))?;
                let net = find(&kinds::NETWORK, s, &net).await?;
                reservations.push(json!({"resource_type": "virtual:floatingip", "amount": floating_ips,
                                         "network_id": net["id"]}));
            }
            if reservations.is_empty() {
                return Err(usage("nothing to reserve: give --nodes or --floating-ips".into()));
            }
            let body = json!({"name": name, "start_date": start, "end_date": end,
                              "reservations": reservations, "events": []});
            let made = s.call(Method::POST, "reservation", "/leases", Some(&body), &[]).await?;
            let id = made["lease"]["id"].as_str().unwrap_or_default().to_string();
            let shown: Value = if waiting.wait {
                wait_for(s, &kinds::LEASE, &id, "ACTIVE", waiting.timeout).await?
            } else {
                made["lease"].clone()
            };
            output::record(&shown, format, columns).map_err(usage)
        }
        LeaseVerb::Set { name, new_name, prolong, reduce, end } => {
            let mut body = serde_json::Map::new();
            if let Some(n) = new_name {
                if n.trim().is_empty() {
                    return Err(usage("--name needs a name".into()));
                }
                body.insert("name".into(), json!(n));
            }
            // Blazar's shifts, which the service applies to the lease's end as it is then.
            match (prolong, reduce, end) {
                (Some(0), _, _) | (_, Some(0), _) => {
                    return Err(usage("--prolong and --reduce take hours, 1 or more".into()))
                }
                (Some(h), _, _) => {
                    body.insert("prolong_for".into(), json!(format!("{h}h")));
                }
                (_, Some(h), _) => {
                    body.insert("reduce_by".into(), json!(format!("{h}h")));
                }
                (_, _, Some(e)) => {
                    chrono::NaiveDateTime::parse_from_str(&e, FORMAT)
                        .map_err(|_| usage(format!("--end {e:?}: give YYYY-MM-DD HH:MM (UTC)")))?;
                    body.insert("end_date".into(), json!(e));
                }
                (None, None, None) => {}
            }
            if body.is_empty() {
                return Err(usage("nothing to change: give --name, --prolong, --reduce or --end".into()));
            }
            let lease = find(&kinds::LEASE, s, &name).await?;
            let id = lease["id"].as_str().unwrap_or_default();
            let changed =
                s.call(Method::PUT, "reservation", &format!("/leases/{id}"), Some(&Value::Object(body)), &[]).await?;
            output::record(&changed["lease"], format, columns).map_err(usage)
        }
        LeaseVerb::Delete { names, waiting } => {
            let mut ids = Vec::new();
            for n in &names {
                let l = find(&kinds::LEASE, s, n).await?;
                ids.push(l["id"].as_str().unwrap_or_default().to_string());
            }
            for id in &ids {
                s.call(Method::DELETE, "reservation", &format!("/leases/{id}"), None, &[]).await?;
            }
            if waiting.wait {
                for id in &ids {
                    wait_for(s, &kinds::LEASE, id, "GONE", waiting.timeout).await?;
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_end_hours_after_their_start() {
        assert_eq!(end_of("2030-01-01 10:00", 4, None).ok(), Some("2030-01-01 14:00".to_string()));
        assert_eq!(end_of("now", 1, Some("2030-01-01 10:00")).ok(), Some("2030-01-01 10:00".to_string()));
        assert!(end_of("tomorrow", 1, None).is_err());
        assert!(end_of("now", 1, Some("soon")).is_err());
        let from_now = end_of("now", 2, None).ok().unwrap_or_default();
        let parsed = chrono::NaiveDateTime::parse_from_str(&from_now, FORMAT).unwrap();
        let left = parsed - chrono::Utc::now().naive_utc();
        assert!(left >= chrono::Duration::minutes(119) && left <= chrono::Duration::minutes(121), "{left}");
    }
}
