//! Quotas: Neutron's `/v2.0/quotas` is a view of identity's unified limits for the
//! `network` service. Reads come from the limits client; writes go to identity's limits
//! API with the caller's own token, so identity decides who may change them.

use super::{bad, neutron, NetworkService};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

/// Neutron's quota resources, in the order it lists them.
pub const RESOURCES: &[&str] =
    &["network", "subnet", "port", "router", "floatingip", "security_group", "security_group_rule"];

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "cannot reach identity for network quotas");
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Quotas cannot be read or written right now; try again.")
}

impl NetworkService {
    fn may_see_quota(ctx: &AuthContext, project: &str) -> ApiResult<()> {
        if ctx.is_admin() || ctx.project_id() == Some(project) {
            Ok(())
        } else {
            Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "You may only see your own project's quotas."))
        }
    }

    /// The effective limit per resource (-1: unlimited).
    pub async fn quota_show(&self, ctx: &AuthContext, project: &str) -> ApiResult<Map<String, Value>> {
        Self::may_see_quota(ctx, project)?;
        let limits = self.limits.project_limits(project, "network").await.map_err(unavailable)?;
        let shown = |r: &str| match limits.get(r).copied() {
            Some(n) if n < i64::from(i32::MAX) => n,
            _ => -1,
        };
        Ok(RESOURCES.iter().map(|r| (r.to_string(), json!(shown(r)))).collect())
    }

    /// Every project's default limits (identity's registered limits for `network`), as
    /// `/v2.0/quotas/{project}/default` shows them.
    pub async fn quota_defaults(&self, ctx: &AuthContext, project: &str) -> ApiResult<Map<String, Value>> {
        Self::may_see_quota(ctx, project)?;
        let defaults =
            stratus_common::limits::read_defaults(&self.http, &self.identity_url, ctx.token.as_ref(), "network")
                .await?;
        Ok(RESOURCES.iter().map(|r| (r.to_string(), json!(defaults.get(*r).copied().unwrap_or(-1)))).collect())
    }

    /// `DELETE /v2.0/quotas/{project}` (admins): the project's own limits go, and the
    /// defaults apply again.
    pub async fn quota_delete(&self, ctx: &AuthContext, project: &str) -> ApiResult<()> {
        if !ctx.is_admin() {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins may change quotas."));
        }
        stratus_common::limits::delete_limits(&self.http, &self.identity_url, ctx.token.as_ref(), "network", project)
            .await?;
        self.limits.invalidate();
        Ok(())
    }

    /// Limits with what is in use, as `/v2.0/quotas/{project}/details` shows them.
    pub async fn quota_details(&self, ctx: &AuthContext, project: &str) -> ApiResult<Map<String, Value>> {
        let limits = self.quota_show(ctx, project).await?;
        let used = self.store.usage(project).await?;
        Ok(limits
            .into_iter()
            .map(|(k, limit)| {
                let u = used.get(&k).copied().unwrap_or(0);
                (k, json!({"limit": limit, "used": u, "reserved": 0}))
            })
            .collect())
    }

    /// Sets project limits through identity (`POST`/`PATCH /v3/limits`).
    pub async fn quota_set(
        &self,
        ctx: &AuthContext,
        project: &str,
        body: Map<String, Value>,
    ) -> ApiResult<Map<String, Value>> {
        if !ctx.is_admin() {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only admins may change quotas."));
        }
        let mut wanted = Vec::new();
        // `check_limit` (sent by the client): refuse limits below what is in use.
        let check = matches!(body.get("check_limit"), Some(Value::Bool(true)));
        let used = self.store.usage(project).await?;
        for (k, v) in &body {
            if k == "check_limit" || k == "force" {
                continue;
            }
            if !RESOURCES.contains(&k.as_str()) {
                return Err(bad(format!("Unrecognized attribute(s) '{k}' for quota.")));
            }
            let n = v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).filter(|n| *n >= -1);
            let n = n.ok_or_else(|| bad(format!("Invalid input for {k}: an integer of -1 (unlimited) or more.")))?;
            let in_use = used.get(k).copied().unwrap_or(0);
            if check && n >= 0 && n < in_use {
                return Err(neutron(
                    StatusCode::BAD_REQUEST,
                    "InvalidQuotaValue",
                    format!(
                        "Quota limit {n} for {k} must be greater than or equal to already used and reserved {in_use}."
                    ),
                ));
            }
            wanted.push((k.clone(), n));
        }
        stratus_common::limits::write_limits(
            &self.http,
            &self.identity_url,
            ctx.token.as_ref(),
            "network",
            project,
            &wanted,
        )
        .await?;
        self.limits.invalidate();
        self.quota_show(ctx, project).await
    }
}
