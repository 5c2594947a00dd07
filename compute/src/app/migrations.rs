//! `os-migrations` (admins): the records of servers' resizes, filtered as Nova's are.

use super::{bad, require_admin, AppResult, ComputeService};
use crate::store::MigrationRecord;
use std::collections::HashMap;
use stratus_common::auth::AuthContext;

/// The filters of `GET /os-migrations` (`changes-since` and paging from 2.59,
/// `changes-before` from 2.66, `user_id` and `project_id` from 2.80).
pub fn matches(m: &MigrationRecord, q: &HashMap<String, String>) -> AppResult<bool> {
    let eq = |key: &str, have: &str| q.get(key).is_none_or(|want| want == have);
    let host_ok = q.get("host").is_none_or(|h| *h == m.source_compute || *h == m.dest_compute);
    let changed = m.updated_at.as_deref().unwrap_or(&m.created_at);
    let since_ok = match q.get("changes-since") {
        Some(t) => changed >= normalise_time(t)?.as_str(),
        None => true,
    };
    let before_ok = match q.get("changes-before") {
        Some(t) => changed <= normalise_time(t)?.as_str(),
        None => true,
    };
    Ok(eq("instance_uuid", &m.instance_uuid)
        && eq("status", &m.status)
        && eq("migration_type", &m.migration_type)
        && eq("user_id", &m.user_id)
        && eq("project_id", &m.project_id)
        && host_ok
        && since_ok
        && before_ok)
}

/// A time filter as the records keep times (RFC 3339, UTC).
fn normalise_time(t: &str) -> AppResult<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&chrono::Utc))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").map(|n| n.and_utc()))
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").map(|n| n.and_utc()))
        .map_err(|_| bad(format!("Invalid input for query parameters: {t:?} is not a time.")))?;
    Ok(stratus_common::db::time_text(parsed))
}

impl ComputeService {
    /// `GET /os-migrations`: every record the filters let through, newest first.
    pub async fn migration_list(
        &self,
        ctx: &AuthContext,
        q: &HashMap<String, String>,
    ) -> AppResult<Vec<MigrationRecord>> {
        require_admin(ctx, "os_compute_api:os-migrations:index")?;
        let mut out = Vec::new();
        for m in self.store.migration_list().await? {
            if matches(&m, q)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// `GET /servers/{id}/migrations`: the server's live migrations under way. Servers
    /// do not live-migrate here, so there are none; the server must exist.
    pub async fn server_migrations(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<MigrationRecord>> {
        require_admin(ctx, "os_compute_api:servers:migrations:index")?;
        self.server_for_action(ctx, id).await?;
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MigrationRecord {
        MigrationRecord {
            id: 1,
            uuid: "u".into(),
            instance_uuid: "i".into(),
            project_id: "p".into(),
            user_id: "x".into(),
            source_compute: "h1".into(),
            dest_compute: "h1".into(),
            status: "finished".into(),
            migration_type: "resize".into(),
            created_at: "2026-12-07T10:00:00.000000Z".into(),
            updated_at: Some("2026-12-07T10:05:00.000000Z".into()),
        }
    }

    #[test]
    fn filters_as_nova_does() {
        let q = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let m = record();
        assert!(matches(&m, &q(&[])).unwrap());
        assert!(matches(&m, &q(&[("host", "h1"), ("status", "finished"), ("migration_type", "resize")])).unwrap());
        assert!(!matches(&m, &q(&[("instance_uuid", "j")])).unwrap());
        assert!(matches(&m, &q(&[("changes-since", "2026-12-07T10:04:00Z")])).unwrap());
        assert!(!matches(&m, &q(&[("changes-since", "2026-12-07T10:06:00")])).unwrap());
        assert!(!matches(&m, &q(&[("changes-before", "2026-12-07T10:04:00Z")])).unwrap());
        assert!(matches(&m, &q(&[("changes-since", "yesterday")])).is_err());
    }
}
