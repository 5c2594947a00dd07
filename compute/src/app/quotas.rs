//! Compute quotas: a view of identity's unified limits for the `compute` service, and
//! the usage counted here.

use super::AppResult;
use super::{forbidden, unavailable, ComputeService};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;

/// Nova's quota resources this service enforces.
pub const RESOURCES: &[&str] = &["instances", "cores", "ram", "key_pairs", "server_groups", "server_group_members"];

/// Nova's other quota keys: stored (as compute limits in identity) and shown, with Nova's
/// defaults, but not counted here — metadata and file injection are bounded by request
/// validation, and networking quotas are the network service's. Each with its default
/// and the microversion that removed it from the API (`None`: still there).
pub const LEGACY: &[(&str, i64, Option<u32>)] = &[
    ("metadata_items", 128, None),
    ("injected_files", 5, Some(57)),
    ("injected_file_content_bytes", 10240, Some(57)),
    ("injected_file_path_bytes", 255, Some(57)),
    ("floating_ips", 10, Some(36)),
    ("fixed_ips", -1, Some(36)),
    ("security_groups", 10, Some(36)),
    ("security_group_rules", 20, Some(36)),
];

/// Whether a quota key exists at microversion `2.minor`.
pub fn quota_key_shown(key: &str, minor: u32) -> bool {
    match LEGACY.iter().find(|(k, _, _)| *k == key) {
        Some((_, _, Some(removed))) => minor < *removed,
        _ => true,
    }
}

impl ComputeService {
    /// A project's limit for a resource (-1: unlimited).
    pub async fn limit(&self, project: &str, resource: &str) -> AppResult<i64> {
        let l = self.limits.limit(project, "compute", resource).await.map_err(unavailable)?;
        Ok(l.filter(|n| *n >= 0 && *n < i64::from(i32::MAX)).unwrap_or(-1))
    }

    pub async fn quota_show(&self, ctx: &AuthContext, project: &str, detail: bool) -> AppResult<Map<String, Value>> {
        if !(ctx.is_admin() || ctx.project_id() == Some(project)) {
            return Err(forbidden("Policy doesn't allow showing another project's quotas."));
        }
        let used: std::collections::HashMap<String, i64> = self.store.usage(project).await?.into_iter().collect();
        let mut out = Map::new();
        out.insert("id".into(), json!(project));
        for r in RESOURCES {
            let limit = self.limit(project, r).await?;
            let v = if detail {
                json!({"limit": limit, "in_use": used.get(*r).copied().unwrap_or(0), "reserved": 0})
            } else {
                json!(limit)
            };
            out.insert(r.to_string(), v);
        }
        for (r, default, _) in LEGACY {
            let l = self.limits.limit(project, "compute", r).await.map_err(unavailable)?;
            let limit = match l {
                Some(n) if n >= i64::from(i32::MAX) => -1,
                Some(n) => n,
                None => *default,
            };
            let v = if detail { json!({"limit": limit, "in_use": 0, "reserved": 0}) } else { json!(limit) };
            out.insert(r.to_string(), v);
        }
        Ok(out)
    }

    /// `GET /limits`: absolute limits and what the caller's project uses.
    pub async fn absolute_limits(&self, ctx: &AuthContext) -> AppResult<Value> {
        let project = super::project_of(ctx)?;
        let used: std::collections::HashMap<String, i64> = self.store.usage(&project).await?.into_iter().collect();
        let u = |k: &str| used.get(k).copied().unwrap_or(0);
        Ok(json!({
            "maxTotalInstances": self.limit(&project, "instances").await?,
            "maxTotalCores": self.limit(&project, "cores").await?,
            "maxTotalRAMSize": self.limit(&project, "ram").await?,
            "maxTotalKeypairs": self.limit(&project, "key_pairs").await?,
            "maxServerGroups": self.limit(&project, "server_groups").await?,
            "maxServerGroupMembers": self.limit(&project, "server_group_members").await?,
            "maxServerMeta": 128,
            "maxImageMeta": 128,
            "maxPersonality": 5,
            "maxPersonalitySize": 10240,
            "maxSecurityGroups": -1,
            "maxSecurityGroupRules": -1,
            "maxTotalFloatingIps": -1,
            "totalInstancesUsed": u("instances"),
            "totalCoresUsed": u("cores"),
            "totalRAMUsed": u("ram"),
            "totalServerGroupsUsed": u("server_groups"),
            "totalFloatingIpsUsed": 0,
            "totalSecurityGroupsUsed": 0,
        }))
    }
}

impl ComputeService {
    /// `PUT /os-quota-sets/{project}`: admins set compute limits, written to identity
    /// as unified limits with the caller's token.
    pub async fn quota_update(
        &self,
        ctx: &AuthContext,
        project: &str,
        body: &Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        super::require_admin(ctx, "os_compute_api:os-quota-sets:update")?;
        let wanted = quota_values(body, "quota_set")?;
        stratus_common::limits::write_limits(
            &self.clients.http,
            &self.clients.identity_url,
            ctx.token.as_ref(),
            "compute",
            project,
            &wanted,
        )
        .await?;
        self.limits.invalidate();
        let mut shown = self.quota_show(ctx, project, false).await?;
        shown.remove("id");
        Ok(shown)
    }

    /// `DELETE /os-quota-sets/{project}`: the project's own limits go; the defaults
    /// (identity's registered limits) apply again.
    pub async fn quota_delete(&self, ctx: &AuthContext, project: &str) -> AppResult<()> {
        super::require_admin(ctx, "os_compute_api:os-quota-sets:delete")?;
        stratus_common::limits::delete_limits(
            &self.clients.http,
            &self.clients.identity_url,
            ctx.token.as_ref(),
            "compute",
            project,
        )
        .await?;
        self.limits.invalidate();
        Ok(())
    }

    /// The limits every project starts with (identity's registered limits): `GET
    /// /os-quota-sets/{project}/defaults` and `GET /os-quota-class-sets/default`, under
    /// `id`. Nova's defaults stand for the keys nothing registered.
    pub async fn quota_defaults(&self, ctx: &AuthContext, id: &str) -> AppResult<Map<String, Value>> {
        let defaults = stratus_common::limits::read_defaults(
            &self.clients.http,
            &self.clients.identity_url,
            ctx.token.as_ref(),
            "compute",
        )
        .await?;
        let mut out = Map::new();
        out.insert("id".into(), json!(id));
        for r in RESOURCES {
            out.insert(r.to_string(), json!(defaults.get(*r).copied().unwrap_or(-1)));
        }
        for (r, default, _) in LEGACY {
            out.insert(r.to_string(), json!(defaults.get(*r).copied().unwrap_or(*default)));
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
        super::require_admin(ctx, "os_compute_api:os-quota-class-sets:update")?;
        stratus_common::limits::only_default_class(class)?;
        let wanted = quota_values(body, "quota_class_set")?;
        stratus_common::limits::write_defaults(
            &self.clients.http,
            &self.clients.identity_url,
            ctx.token.as_ref(),
            "compute",
            &wanted,
        )
        .await?;
        self.limits.invalidate();
        let mut shown = self.quota_defaults(ctx, class).await?;
        shown.remove("id");
        Ok(shown)
    }
}

/// The limits a quota request sets: known keys, each an integer of -1 (unlimited) or
/// more; `force` is taken and ignored, as Nova does with unified limits.
fn quota_values(body: &Map<String, Value>, field: &str) -> AppResult<Vec<(String, i64)>> {
    let mut wanted = Vec::new();
    for (k, v) in body {
        if k == "force" {
            continue;
        }
        if !RESOURCES.contains(&k.as_str()) && !LEGACY.iter().any(|(l, _, _)| l == k) {
            return Err(super::bad(format!(
                "Invalid input for field/attribute {field}: '{k}' is not a quota this cloud enforces."
            )));
        }
        let n = super::as_int(v).filter(|n| *n >= -1).ok_or_else(|| {
            super::bad(format!("Invalid input for field/attribute {k}: an integer of -1 (unlimited) or more."))
        })?;
        wanted.push((k.clone(), n));
    }
    Ok(wanted)
}
