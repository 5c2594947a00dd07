//! Volume quotas: identity's unified limits for the `volume` service, and the usage
//! counted here (claimed in the transaction that makes what it counts).

use super::{bad, require_admin, AppResult, Error, VolumeService};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;

/// Cinder's quota resources this service counts and enforces.
pub const RESOURCES: &[&str] = &["volumes", "gigabytes", "snapshots", "backups", "backup_gigabytes", "groups"];
/// Cinder's other key: `per_volume_gigabytes` (the largest single volume, enforced at
/// create and extend), a unified limit like the others.
pub const OTHER: &[&str] = &["per_volume_gigabytes"];
/// The resources also counted per volume type, as Cinder's `volumes_<type name>`,
/// `gigabytes_<type name>` and `snapshots_<type name>`.
pub const PER_TYPE: &[&str] = &["volumes", "gigabytes", "snapshots"];

/// One quota a change counts against: the usage row it counts in, the quota's name
/// (as limits and messages name it), how much, and the project's limit (-1: none).
#[derive(Debug, Clone)]
pub struct Claim {
    pub usage_key: String,
    pub name: String,
    pub amount: i64,
    pub limit: i64,
}

/// The usage row of a per-type resource. Rows go by the type's id, so a renamed type
/// keeps what its volumes use; limits go by its name, as Cinder's API says them.
pub fn typed_key(resource: &str, type_id: &str) -> String {
    format!("{resource}@{type_id}")
}

/// What a change gives back: the project-wide amounts and the type's.
pub fn releases(wants: &[(&str, i64)], type_id: &str) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = wants.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    out.extend(type_releases(wants, type_id));
    out
}

/// The per-type part of [`releases`] alone.
pub fn type_releases(wants: &[(&str, i64)], type_id: &str) -> Vec<(String, i64)> {
    match type_id {
        "" => Vec::new(),
        id => wants.iter().map(|(r, n)| (typed_key(r, id), *n)).collect(),
    }
}

/// Borrowed views for `stratus_common::db::usage`.
pub fn as_refs(v: &[(String, i64)]) -> Vec<(&str, i64)> {
    v.iter().map(|(k, n)| (k.as_str(), *n)).collect()
}

/// Claims `claims` for `project` in `tx`; false (nothing claimed) when one is over.
pub async fn claim_in(tx: &mut stratus_common::db::Tx, project: &str, claims: &[Claim]) -> Result<bool, sqlx::Error> {
    let rows: Vec<(&str, i64, i64)> = claims.iter().map(|c| (c.usage_key.as_str(), c.amount, c.limit)).collect();
    stratus_common::db::usage::claim(tx, crate::store::USAGE, project, &rows).await
}

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

    /// What `wants` counts against in a project: the project-wide quotas, and those of
    /// the volume type `type_id` (`volumes_<name>`, ...).
    pub(crate) async fn claims(&self, project: &str, wants: &[(&str, i64)], type_id: &str) -> AppResult<Vec<Claim>> {
        let mut out = Vec::new();
        for (r, n) in wants {
            out.push(Claim {
                usage_key: r.to_string(),
                name: r.to_string(),
                amount: *n,
                limit: self.limit(project, r).await?,
            });
        }
        out.extend(self.type_claims(project, wants, type_id).await?);
        Ok(out)
    }

    /// The per-type part of [`Self::claims`] alone (what a retype moves).
    pub(crate) async fn type_claims(
        &self,
        project: &str,
        wants: &[(&str, i64)],
        type_id: &str,
    ) -> AppResult<Vec<Claim>> {
        let type_name = match type_id {
            "" => None,
            id => self.store.type_get(id).await?.filter(|t| t.id == id).map(|t| t.name),
        };
        let mut out = Vec::new();
        if let Some(t) = type_name {
            for (r, n) in wants {
                let name = format!("{r}_{t}");
                let limit = self.limit(project, &name).await?;
                out.push(Claim { usage_key: typed_key(r, type_id), name, amount: *n, limit });
            }
        }
        Ok(out)
    }

    /// The refusal of a claim over quota, naming what is over and by how much.
    pub(crate) async fn over_quota(&self, project: &str, claims: &[Claim]) -> Error {
        let used = self.store.usage(project).await.unwrap_or_default();
        let mut over = Vec::new();
        for c in claims {
            let in_use = used.get(&c.usage_key).copied().unwrap_or(0);
            if c.limit >= 0 && in_use + c.amount > c.limit {
                over.push(format!("{} (requested {}, in use {in_use}, limit {})", c.name, c.amount, c.limit));
            }
        }
        Error::OverQuota(format!(
            "VolumeLimitExceeded: Maximum number of volume resources exceeded: {}.",
            over.join(", ")
        ))
    }

    /// The per-type quotas of the volume types `project` may use (every type with
    /// `None`, for admins): (name as limits say it, usage row). Another project's
    /// private type is not named to a member.
    async fn type_quotas(&self, project: Option<&str>) -> AppResult<Vec<(String, String)>> {
        let types = match project {
            None => self.store.type_list().await?,
            Some(p) => self.store.type_list_for(p).await?,
        };
        let mut out = Vec::new();
        for t in types {
            for r in PER_TYPE {
                out.push((format!("{r}_{}", t.name), typed_key(r, &t.id)));
            }
        }
        Ok(out)
    }

    /// Checks a quota body against the quotas there are (the per-type ones included).
    async fn quota_values(&self, body: &Map<String, Value>, field: &str) -> AppResult<Vec<(String, i64)>> {
        let typed: Vec<String> = self.type_quotas(None).await?.into_iter().map(|(name, _)| name).collect();
        quota_values(body, field, &typed)
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
        let scope = (!ctx.is_admin()).then_some(project);
        for (name, key) in self.type_quotas(scope).await? {
            let limit = self.limit(project, &name).await?;
            let v = if usage {
                json!({"limit": limit, "in_use": used.get(&key).copied().unwrap_or(0), "reserved": 0, "allocated": 0})
            } else {
                json!(limit)
            };
            out.insert(name, v);
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
        let scope = if ctx.is_admin() { None } else { Some(super::project_of(ctx)?) };
        for (name, _) in self.type_quotas(scope.as_deref()).await? {
            let n = defaults.get(&name).copied().unwrap_or(-1);
            out.insert(name, json!(n));
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
        let wanted = self.quota_values(body, "quota_class_set").await?;
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
        let wanted = self.quota_values(body, "quota_set").await?;
        // A project limit needs a registered one: a type's quotas are registered
        // (unlimited by default) the first time one is set.
        let defaults = stratus_common::limits::read_defaults(
            &self.identity.http,
            &self.identity.url,
            ctx.token.as_ref(),
            "volume",
        )
        .await?;
        let unregistered: Vec<(String, i64)> =
            wanted.iter().filter(|(k, _)| !defaults.contains_key(k)).map(|(k, _)| (k.clone(), -1)).collect();
        if !unregistered.is_empty() {
            stratus_common::limits::write_defaults(
                &self.identity.http,
                &self.identity.url,
                ctx.token.as_ref(),
                "volume",
                &unregistered,
            )
            .await?;
        }
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
            "maxTotalBackups": self.limit(&project, "backups").await?,
            "maxTotalBackupGigabytes": self.limit(&project, "backup_gigabytes").await?,
            "totalVolumesUsed": u("volumes"),
            "totalSnapshotsUsed": u("snapshots"),
            "totalGigabytesUsed": u("gigabytes"),
            "totalBackupsUsed": u("backups"),
            "totalBackupGigabytesUsed": u("backup_gigabytes"),
        }))
    }
}

/// The limits a quota request sets: known keys, each an integer of -1 (unlimited) or
/// more (`force` and `id` are taken and ignored).
fn quota_values(body: &Map<String, Value>, field: &str, typed: &[String]) -> AppResult<Vec<(String, i64)>> {
    let mut wanted = Vec::new();
    for (k, v) in body {
        if k == "force" || k == "id" {
            continue;
        }
        if !RESOURCES.contains(&k.as_str()) && !OTHER.contains(&k.as_str()) && !typed.contains(k) {
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
