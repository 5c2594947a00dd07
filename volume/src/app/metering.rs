//! Usage for metering: the GB-hours of a project's volumes and snapshots over a
//! window, from the periods the store records with every change of size, project or
//! existence (`store::metering`). A Stratus extension: Cinder leaves this to
//! notifications; here `GET /v3/{project_id}/usage` answers it.

use super::{AppResult, Error, VolumeService};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use stratus_common::auth::AuthContext;
use stratus_common::db::{parse_time, time_text};

/// One volume's or snapshot's use inside the window.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceUsage {
    pub id: String,
    /// `volume` or `snapshot`.
    pub kind: String,
    pub name: String,
    /// GiB at the end of its last period in the window.
    pub size: i64,
    /// Hours it existed inside the window.
    pub hours: f64,
    pub gb_hours: f64,
    /// Whether it still exists (held now, by this project).
    pub held: bool,
}

/// A project's use over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectUsage {
    pub volume_gb_hours: f64,
    pub snapshot_gb_hours: f64,
    pub resources: Vec<ResourceUsage>,
}

impl VolumeService {
    /// The use of one project (`only`; a member may ask for their own) or, for an
    /// admin asking for none, of every project, over `[start, end)` (the end no later
    /// than now).
    pub async fn usage(
        &self,
        ctx: &AuthContext,
        only: Option<&str>,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> AppResult<BTreeMap<String, ProjectUsage>> {
        let now = Utc::now();
        let end = end.min(now);
        let project = ctx
            .readable_project(only)
            .map_err(|()| Error::Forbidden("Policy doesn't allow showing another project's usage.".into()))?;
        let mut out: BTreeMap<String, ProjectUsage> = BTreeMap::new();
        if end <= start {
            return Ok(out);
        }
        let periods = self.store.periods(project.as_deref(), &time_text(start), &time_text(end)).await?;
        // One line per resource and project, its periods summed in order.
        let mut lines: BTreeMap<(String, String), ResourceUsage> = BTreeMap::new();
        let mut order: Vec<(String, String)> = Vec::new();
        for p in periods {
            let (Some(from), to) = (parse_time(&p.started_at), p.ended_at.as_deref().and_then(parse_time)) else {
                continue;
            };
            let (from, to) = (from.max(start), to.unwrap_or(now).min(end));
            if to <= from {
                continue;
            }
            let hours = (to - from).num_milliseconds() as f64 / 3_600_000.0;
            let key = (p.project_id.clone(), p.resource_id.clone());
            let line = lines.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                ResourceUsage {
                    id: p.resource_id.clone(),
                    kind: p.kind.clone(),
                    name: p.name.clone(),
                    size: 0,
                    hours: 0.0,
                    gb_hours: 0.0,
                    held: false,
                }
            });
            line.size = p.size;
            line.hours += hours;
            line.gb_hours += hours * p.size as f64;
            line.held = p.ended_at.is_none();
        }
        for key in order {
            let Some(line) = lines.remove(&key) else { continue };
            let u = out.entry(key.0).or_default();
            if line.kind == "snapshot" {
                u.snapshot_gb_hours += line.gb_hours;
            } else {
                u.volume_gb_hours += line.gb_hours;
            }
            u.resources.push(line);
        }
        Ok(out)
    }
}
