//! Volume quotas: identity's unified limits for the `volume` service, and the usage
//! counted here (claimed in the transaction that makes what it counts).

use super::{bad, require_admin, AppResult, Error, VolumeService};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;

/// Cinder's quota resources this service counts and enforces.
pub const RESOURCES: &[&str] = &["volumes", "gigabytes", "snapshots"];
/// Cinder's other keys: `per_volume_gigabytes` (the largest single volume, enforced
/// at create and extend), and limits of what this cloud does not make yet (backups,
/// groups), which nothing can exceed. All are unified limits like the others.
pub const OTHER: &[&str] = &["per_volume_gigabytes", "backups", "backup_gigabytes", "groups"];

impl VolumeService {
    /// A project's limit for a resource (-1: unlimited).
    pub async fn limit(&self, project: &str, resource: &str) -> AppResult<i64> {
        let l = self
            .limits
            .limit(project, "volume", resource)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot read quotas: {e}")))?;
        Ok(l.filter(|n| *n >= 0 && *n < i64::from(i32::MAX)).unwrap_or(-1))
    }

    /// The limits of `resources` for a claim: `(resource, amount, limit)`.
    pub(crate) async fn claims<'a>(
        &self,
        project: &str,
        wants: &[(&'a str, i64)],
    ) -> AppResult<Vec<(&'a str, i64, i64)>> {
        let mut out = Vec::new();
        for (r, n) in wants {
            out.push((*r, *n, self.limit(project, r).await?));
        }
        Ok(out)
    }

    /// The refusal of a claim over quota, naming what is over and by how much.
    pub(crate) async fn over_quota(&self, project: &str, wants: &[(&str, i64)]) -> Error {
        let used = self.store.usage(project).await.unwrap_or_default();
        let mut over = Vec::new();
        for (r, n) in wants {
            let limit = self.limit(project, r).await.unwrap_or(-1);
            let in_use = used.get(*r).copied().unwrap_or(0);
            if limit >= 0 && in_use + n > limit {
                over.push(format!("{r} (requested {n}, in use {in_use}, limit {limit})"));
            }
        }
        Error::OverQuota(format!(
            "VolumeLimitExceeded: Maximum number of volume resources exceeded: {}.",
            over.join(", ")
        ))
    }

    pub async fn quota_show(&self, ctx: &AuthContext, project: &str, usage: bool) -> AppResult<Map<String, Value>> {
        if !super::visible(ctx, project) {
            return Err(Error::Forbidden("Policy doesn't allow showing another project's quotas.".into()));
        }
        let used = self.store.usage(project).await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(project));
        for r in RESOURCES {
            let limit = self.limit(project, r).await?;
            let v = if usage {
                json!({"limit": limit, "in_use": used.get(*r).copied().unwrap_or(0), "reserved": 0, "allocated": 0})
            } else {
                json!(limit)
            };
            out.insert(r.to_string(), v);
        }
        for r in OTHER {
            let limit = self.limit(project, r).await?;
            let v =
                if usage { json!({"limit": limit, "in_use": 0, "reserved": 0, "allocated": 0}) } else { json!(limit) };
            out.insert(r.to_string(), v);
        }
        Ok(out)
    }

    /// Refuses a volume larger than the project's `per_volume_gigabytes`.
    pub(crate) async fn check_volume_size(&self, project: &str, size: i64) -> AppResult<()> {
        let limit = self.limit(project, "per_volume_gigabytes").await?;
        if limit >= 0 && size > limit {
            return Err(Error::OverQuota(format!(
                "VolumeSizeExceedsLimit: Requested volume size {size}G is larger than maximum allowed limit {limit}G."
            )));
        }
        Ok(())
    }

    /// `DELETE /os-quota-sets/{project}`: the project's own limits go, and the defaults
    /// (registered limits) apply again.
    pub async fn quota_delete(&self, ctx: &AuthContext, project: &str) -> AppResult<()> {
        require_admin(ctx, "volume_extension:quotas:delete")?;
        stratus_common::limits::delete_limits(
            &self.identity.http,
            &self.identity.url,
            ctx.token.as_ref(),
            "volume",
            project,
        )
        .await?;
        self.limits.invalidate();
        Ok(())
    }

    /// The limits every project starts with (identity's registered limits), under `id`:
    /// `GET /os-quota-sets/{project}/defaults` and `GET /os-quota-class-sets/default`.
    pub async fn quota_defaults(&self, ctx: &AuthContext, id: &str) -> AppResult<Map<String, Value>> {
        let defaults = stratus_common::limits::read_defaults(
            &self.identity.http,
            &self.identity.url,
            ctx.token.as_ref(),
            "volume",
        )
        .await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        for r in RESOURCES.iter().chain(OTHER) {
            out.insert(r.to_string(), json!(defaults.get(*r).copied().unwrap_or(-1)));
        }
        Ok(out)
    }

    /// `GET /os-quota-class-sets/{class}`: the defaults, the one class there is.
    pub async fn quota_class_show(&self, ctx: &AuthContext, class: &str) -> AppResult<Map<String, Value>> {
        stratus_common::limits::only_default_class(class)?;
        self.quota_defaults(ctx, class).await
    }

    /// `PUT /os-quota-class-sets/default` (admins): changes every project's defaults.
    pub async fn quota_class_update(
        &self,
        ctx: &AuthContext,
        class: &str,
        body: &Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        require_admin(ctx, "volume_extension:quota_classes:update")?;
        stratus_common::limits::only_default_class(class)?;
        let wanted = quota_values(body, "quota_class_set")?;
        stratus_common::limits::write_defaults(
            &self.identity.http,
            &self.identity.url,
            ctx.token.as_ref(),
            "volume",
            &wanted,
        )
        .await?;
        self.limits.invalidate();
        let mut shown = self.quota_defaults(ctx, class).await?;
        shown.remove("id");
        Ok(shown)
    }

    /// `PUT /os-quota-sets/{project}`: admins set volume limits, written to identity as
    /// unified limits with the caller's token.
    pub async fn quota_update(
        &self,
        ctx: &AuthContext,
        project: &str,
        body: &Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        require_admin(ctx, "volume_extension:quotas:update")?;
        let wanted = quota_values(body, "quota_set")?;
        stratus_common::limits::write_limits(
            &self.identity.http,
            &self.identity.url,
            ctx.token.as_ref(),
            "volume",
            project,
            &wanted,
        )
        .await?;
        self.limits.invalidate();
        let mut shown = self.quota_show(ctx, project, false).await?;
        shown.remove("id");
        Ok(shown)
    }

    /// `GET /limits`: absolute limits and what the caller's project uses.
    pub async fn absolute_limits(&self, ctx: &AuthContext) -> AppResult<Value> {
        let project = super::project_of(ctx)?;
        let used = self.store.usage(&project).await?;
        let u = |k: &str| used.get(k).copied().unwrap_or(0);
        Ok(json!({
            "maxTotalVolumes": self.limit(&project, "volumes").await?,
            "maxTotalSnapshots": self.limit(&project, "snapshots").await?,
            "maxTotalVolumeGigabytes": self.limit(&project, "gigabytes").await?,
            "maxTotalBackups": -1,
            "maxTotalBackupGigabytes": -1,
            "totalVolumesUsed": u("volumes"),
            "totalSnapshotsUsed": u("snapshots"),
            "totalGigabytesUsed": u("gigabytes"),
            "totalBackupsUsed": 0,
            "totalBackupGigabytesUsed": 0,
        }))
    }
}

/// The limits a quota request sets: known keys, each an integer of -1 (unlimited) or
/// more (`force` and `id` are taken and ignored).
fn quota_values(body: &Map<String, Value>, field: &str) -> AppResult<Vec<(String, i64)>> {
    let mut wanted = Vec::new();
    for (k, v) in body {
        if k == "force" || k == "id" {
            continue;
        }
        if !RESOURCES.contains(&k.as_str()) && !OTHER.contains(&k.as_str()) {
            return Err(bad(format!(
                "Invalid input for field/attribute {field}: '{k}' is not a quota this cloud enforces."
            )));
        }
        let n = v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|n| *n >= -1)
            .ok_or_else(|| bad(format!("Quota limit {k} must be an integer of -1 (unlimited) or more.")))?;
        wanted.push((k.clone(), n));
    }
    Ok(wanted)
}
