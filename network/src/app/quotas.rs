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
        let base = self.identity_url.trim_end_matches('/');
        let token = ctx.token.as_ref();
        let get = |url: String| self.http.get(url).header("x-auth-token", token).send();
        let services: Value = get(format!("{base}/v3/services?type=network"))
            .await
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        let service_id = services["services"][0]["id"]
            .as_str()
            .ok_or_else(|| unavailable("no network service in the catalog"))?
            .to_string();
        let existing: Value = get(format!("{base}/v3/limits?project_id={project}&service_id={service_id}"))
            .await
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)?;
        for (resource, n) in wanted {
            // Unified limits have no "unlimited"; a very large limit stands for it.
            let n = if n < 0 { i64::from(i32::MAX) } else { n };
            let found =
                existing["limits"].as_array().and_then(|a| a.iter().find(|l| l["resource_name"] == json!(resource)));
            let resp = match found.and_then(|l| l["id"].as_str()) {
                Some(id) => {
                    self.http
                        .patch(format!("{base}/v3/limits/{id}"))
                        .header("x-auth-token", token)
                        .json(&json!({"limit": {"resource_limit": n}}))
                        .send()
                        .await
                }
                None => {
                    self.http
                        .post(format!("{base}/v3/limits"))
                        .header("x-auth-token", token)
                        .json(&json!({"limits": [{"service_id": service_id, "project_id": project, "resource_name": resource, "resource_limit": n}]}))
                        .send()
                        .await
                }
            }
            .map_err(unavailable)?;
            if !resp.status().is_success() {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                return Err(match status {
                    400..=499 => ApiError::new(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
                        format!("Identity refused the quota: {text}"),
                    ),
                    _ => unavailable(text),
                });
            }
        }
        self.limits.invalidate();
        self.quota_show(ctx, project).await
    }
}
