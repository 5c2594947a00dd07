//! `GET /v3/{project_id}/usage` (a Stratus extension): the GB-hours a project's
//! volumes and snapshots held over a window (`app::metering`), in the shape of Nova's
//! simple tenant usage: `start`/`end` in the query, the last 30 days by default; an
//! admin may name another project (`project_id`) or ask for every one (`all_tenants`).

use super::{all_projects, param, scope, AppState};
use crate::app::metering::{ProjectUsage, ResourceUsage};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::window::window;
use stratus_common::http::ApiResult;

fn line(r: &ResourceUsage) -> Value {
    json!({"id": r.id, "name": r.name, "size": r.size, "hours": r.hours, "gb_hours": r.gb_hours,
           "state": if r.held { "held" } else { "gone" }})
}

fn view(project: &str, u: &ProjectUsage, start: &str, stop: &str) -> Value {
    let of = |kind: &str| u.resources.iter().filter(|r| r.kind == kind).map(line).collect::<Vec<_>>();
    json!({
        "project_id": project, "start": start, "stop": stop,
        "total_volume_gb_hours": u.volume_gb_hours, "total_snapshot_gb_hours": u.snapshot_gb_hours,
        "volumes": of("volume"), "snapshots": of("snapshot"),
    })
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    scope(&ctx, &p)?;
    let (start, end) = window(&q, chrono::Duration::days(30))?;
    let end = end.min(chrono::Utc::now());
    let stamp = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let (from, to) = (stamp(start), stamp(end.max(start)));
    if all_projects(&q) && ctx.is_admin() {
        let all = s.usage(&ctx, None, start, end).await?;
        let usages: Vec<Value> = all.iter().map(|(p, u)| view(p, u, &from, &to)).collect();
        return Ok(Json(json!({"usages": usages})));
    }
    let project = q.get("project_id").map(String::as_str).unwrap_or(param(&p, "project_id"));
    let mut one = s.usage(&ctx, Some(project), start, end).await?;
    let u = one.remove(project).unwrap_or_default();
    Ok(Json(json!({"usage": view(project, &u, &from, &to)})))
}
