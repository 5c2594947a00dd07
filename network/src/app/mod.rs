//! The network service's application layer: visibility, validation, IPAM, quotas and
//! events. Errors carry Neutron's error types (`NetworkInUse`, `OverQuota`, ...).

pub mod agents;
pub mod desired;
pub mod floating_ips;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod reconcile;
pub mod routers;
pub mod security_groups;
pub mod subnetpools;
pub mod subnets;

use crate::store::{Col, Record, Store, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;
use stratus_common::http::{ApiError, ApiResult};
use stratus_common::limits::LimitsClient;

pub struct NetworkService {
    pub store: Store,
    pub bus: Bus,
    pub limits: Arc<LimitsClient>,
    pub public_url: String,
    /// Identity's API, where `/v2.0/quotas` writes go (as unified limits).
    pub identity_url: String,
    pub http: reqwest::Client,
    /// What binding a port to a host does (see [`crate::driver`]).
    pub driver: crate::driver::Driver,
}

pub fn neutron(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, message).with_kind(kind)
}

pub fn not_found(kind: &'static str, what: &str, id: &str) -> ApiError {
    neutron(StatusCode::NOT_FOUND, kind, format!("{what} {id} could not be found."))
}

/// Neutron's "not found" error for a row of `table`.
pub fn missing(table: Table, id: &str) -> ApiError {
    let (kind, what) = match table {
        Table::Networks => ("NetworkNotFound", "Network"),
        Table::Subnets => ("SubnetNotFound", "Subnet"),
        Table::Ports => ("PortNotFound", "Port"),
        Table::SecurityGroups => ("SecurityGroupNotFound", "Security group"),
        Table::SecurityGroupRules => ("SecurityGroupRuleNotFound", "Security group rule"),
        Table::Routers => ("RouterNotFound", "Router"),
        Table::FloatingIps => ("FloatingIPNotFound", "Floating IP"),
        Table::Agents => ("AgentNotFound", "Agent"),
        Table::SubnetPools => ("SubnetPoolNotFound", "Subnet pool"),
    };
    not_found(kind, what, id)
}

pub fn bad(message: impl Into<String>) -> ApiError {
    neutron(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Reads an optional attribute of a request object with the expected JSON type.
pub(crate) fn opt_str(body: &Map<String, Value>, key: &str) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.contains('\0') => Err(bad(format!("Invalid input for {key}: NUL characters."))),
        // Neutron's limit for names and descriptions (its database columns).
        Some(Value::String(s)) if matches!(key, "name" | "description") && s.chars().count() > 255 => Err(bad(
            format!("Invalid input for {key}: '{}…' exceeds 255 characters.", s.chars().take(20).collect::<String>()),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("Invalid input for {key}: it must be a string."))),
    }
}

pub(crate) fn opt_bool(body: &Map<String, Value>, key: &str) -> ApiResult<Option<bool>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(bad(format!("Invalid input for {key}: it must be a boolean."))),
    }
}

pub(crate) fn opt_int(body: &Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid input for {key}: it must be an integer."))),
    }
}

/// Rejects attributes the resource does not have.
pub(crate) fn only(body: &Map<String, Value>, allowed: &[&str], what: &str) -> ApiResult<()> {
    for k in body.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(format!("Unrecognized attribute(s) '{k}' for {what}.")));
        }
    }
    Ok(())
}

impl NetworkService {
    pub(crate) async fn emit(&self, resource: &str, action: &str, r: &Record) {
        self.bus
            .emit(
                &format!("network.{resource}.{action}.end"),
                &json!({"id": r.id, "project_id": r.project_id, "timestamp": now_text()}),
            )
            .await;
    }

    /// The project a request acts for: the token's, or `project_id`/`tenant_id` when an
    /// admin creates for another project.
    pub(crate) fn owner(ctx: &AuthContext, body: &Map<String, Value>) -> ApiResult<String> {
        let asked = opt_str(body, "project_id")?.or(opt_str(body, "tenant_id")?);
        match (asked, ctx.project_id()) {
            (Some(p), _) if ctx.is_admin() => Ok(p),
            (Some(p), Some(own)) if p == own => Ok(p),
            (Some(_), _) => Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only admins may create resources for another project.",
            )),
            (None, Some(own)) => Ok(own.to_string()),
            (None, None) => {
                Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "A project-scoped token is needed."))
            }
        }
    }

    /// Stores a changed document, honouring `If-Match` (412 when the revision moved on).
    pub(crate) async fn save(&self, table: Table, r: &Record, if_revision: Option<i64>) -> ApiResult<()> {
        self.save_with(table, r, &[], if_revision).await
    }

    pub(crate) async fn save_with(
        &self,
        table: Table,
        r: &Record,
        cols: &[(&str, Col)],
        if_revision: Option<i64>,
    ) -> ApiResult<()> {
        let saved = match self.store.update(table, &r.id, cols, &r.doc, &r.control, if_revision).await {
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                return Err(neutron(StatusCode::CONFLICT, "Conflict", "The new value is in use by another resource."))
            }
            other => other?,
        };
        if saved {
            Ok(())
        } else if if_revision.is_some() {
            Err(neutron(
                StatusCode::PRECONDITION_FAILED,
                "RevisionNumberConstraintFailed",
                format!("Constrained to {}, but the current revision is different.", if_revision.unwrap_or_default()),
            ))
        } else {
            Err(neutron(StatusCode::NOT_FOUND, "NotFound", format!("{} was deleted meanwhile.", r.id)))
        }
    }

    pub(crate) fn require_writer(ctx: &AuthContext) -> ApiResult<()> {
        if ctx.is_admin() || ctx.has_role("member") {
            Ok(())
        } else {
            Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Readers cannot change network resources."))
        }
    }

    pub(crate) fn owns(ctx: &AuthContext, r: &Record) -> bool {
        ctx.is_admin() || ctx.project_id() == Some(r.project_id.as_str())
    }

    /// A row that must exist (just written, or referenced by one that exists).
    pub(crate) async fn reread(&self, table: Table, id: &str) -> ApiResult<Record> {
        self.store.fetch(table, id).await?.ok_or_else(|| missing(table, id))
    }

    /// A row the caller owns (admins own all); anything else is "not found".
    pub(crate) async fn owned(&self, ctx: &AuthContext, table: Table, id: &str) -> ApiResult<Record> {
        match self.store.fetch(table, id).await? {
            Some(r) if Self::owns(ctx, &r) => Ok(r),
            _ => Err(missing(table, id)),
        }
    }

    /// Any resource as its own `*_get` shows it to the caller.
    pub async fn get(&self, ctx: &AuthContext, table: Table, id: &str) -> ApiResult<Record> {
        match table {
            Table::Networks => self.network_get(ctx, id).await,
            Table::Subnets => self.subnet_get(ctx, id).await,
            Table::Ports => self.port_get(ctx, id).await,
            Table::SecurityGroups => self.group_get(ctx, id).await,
            Table::SecurityGroupRules => self.rule_get(ctx, id).await,
            Table::Routers => self.router_get(ctx, id).await,
            Table::FloatingIps => self.fip_get(ctx, id).await,
            Table::Agents => self.agent_get(ctx, id).await,
            Table::SubnetPools => self.pool_get(ctx, id).await,
        }
    }

    /// Saves an updated resource, reads it back as the caller sees it, and announces it.
    pub(crate) async fn commit_update(
        &self,
        ctx: &AuthContext,
        table: Table,
        r: &Record,
        cols: &[(&str, Col)],
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        self.save_with(table, r, cols, if_revision).await?;
        let r = self.get(ctx, table, &r.id).await?;
        self.emit(table.resource(), "update", &r).await;
        Ok(r)
    }

    /// Changes a resource's tags with `f` (owners only) and returns the new list.
    pub async fn tags_change(
        &self,
        ctx: &AuthContext,
        table: Table,
        id: &str,
        f: impl FnOnce(&mut Vec<Value>) -> ApiResult<()>,
    ) -> ApiResult<Vec<Value>> {
        Self::require_writer(ctx)?;
        let mut r = self.get(ctx, table, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", "Only the owner may change tags."));
        }
        let mut tags: Vec<Value> = r.doc.get("tags").and_then(Value::as_array).cloned().unwrap_or_default();
        f(&mut tags)?;
        r.doc.insert("tags".into(), Value::Array(tags.clone()));
        self.save(table, &r, None).await?;
        Ok(tags)
    }

    pub(crate) async fn list_owned(
        &self,
        ctx: &AuthContext,
        table: Table,
        narrow: Option<(&str, &str)>,
    ) -> ApiResult<Vec<Record>> {
        Ok(self.store.list(table, narrow).await?.into_iter().filter(|r| Self::owns(ctx, r)).collect())
    }

    /// Counts one more `resource` against the project's unified limit (service type
    /// `network`), or answers 409 `OverQuota`.
    pub(crate) async fn claim(&self, project: &str, resource: &str) -> ApiResult<()> {
        let limit = self.quota_limit(project, resource).await?;
        if self.store.usage_claim(project, resource, limit).await? {
            Ok(())
        } else {
            Err(over_quota(resource))
        }
    }

    /// The project's unified limit on `resource` (None: unlimited).
    pub(crate) async fn quota_limit(&self, project: &str, resource: &str) -> ApiResult<Option<i64>> {
        self.limits.limit(project, "network", resource).await.map_err(|e| {
            tracing::error!(error = %e, "cannot read network quotas");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Quotas cannot be read right now; try again.")
        })
    }
}

/// Neutron's answer to a claim over its limit.
pub(crate) fn over_quota(resource: &str) -> ApiError {
    neutron(StatusCode::CONFLICT, "OverQuota", format!("Quota exceeded for resources: ['{resource}']."))
}
