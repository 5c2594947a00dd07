//! `GET /os-migrations` and `GET /servers/{id}/migrations` (admins).

use super::{base, paginate, AppState, Params};
use crate::microversion::Version;
use crate::store::MigrationRecord;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

/// A record as Nova shows it at microversion `v`: `migration_type` from 2.23, `uuid`
/// from 2.59, `user_id` and `project_id` from 2.80. Stratus's flavors have no integer
/// ids, so the flavor ids are null (Nova's schema allows it).
fn view(m: &MigrationRecord, v: Version) -> Value {
    let time = |t: &str| t.trim_end_matches('Z').to_string();
    let mut o = json!({
        "id": m.id, "status": m.status, "instance_uuid": m.instance_uuid,
        "source_compute": m.source_compute, "source_node": m.source_compute,
        "dest_compute": m.dest_compute, "dest_node": m.dest_compute, "dest_host": null,
        "old_instance_type_id": null, "new_instance_type_id": null,
        "created_at": time(&m.created_at), "updated_at": m.updated_at.as_deref().map(time),
    });
    if v.at_least(23) {
        o["migration_type"] = json!(m.migration_type);
    }
    if v.at_least(59) {
        o["uuid"] = json!(m.uuid);
    }
    if v.at_least(80) {
        o["user_id"] = json!(m.user_id);
        o["project_id"] = json!(m.project_id);
    }
    o
}

pub async fn list(State(s): State<AppState>, ctx: AuthContext, v: Version, q: Params) -> ApiResult<Json<Value>> {
    let mut filters = q.0.clone();
    if !v.at_least(59) {
        for k in ["changes-since", "limit", "marker"] {
            filters.remove(k);
        }
    }
    if !v.at_least(66) {
        filters.remove("changes-before");
    }
    if !v.at_least(80) {
        filters.remove("user_id");
        filters.remove("project_id");
    }
    let all = s.migration_list(&ctx, &filters).await?;
    let limit = filters.get("limit").and_then(|l| l.parse::<usize>().ok());
    let page = paginate(all, &filters, |m| m.uuid.as_str())?;
    let mut body = json!({"migrations": page.iter().map(|m| view(m, v)).collect::<Vec<_>>()});
    if let (Some(limit), Some(last)) = (limit, page.last()) {
        if page.len() == limit {
            body["migrations_links"] = json!([{"rel": "next", "href": format!("{}/os-migrations?limit={limit}&marker={}", base(&s), last.uuid)}]);
        }
    }
    Ok(Json(body))
}

pub async fn of_server(
    State(s): State<AppState>,
    ctx: AuthContext,
    v: Version,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = s.server_migrations(&ctx, &id).await?;
    Ok(Json(json!({"migrations": list.iter().map(|m| view(m, v)).collect::<Vec<_>>()})))
}
