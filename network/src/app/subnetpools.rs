//! Subnet pools (Neutron's `subnet_allocation`): address space a project (or, when
//! shared, everyone) takes subnets from by size instead of by CIDR.
//!
//! A pool holds prefixes of one IP version and the prefix lengths it hands out (min,
//! default, max). A subnet made with `subnetpool_id` (or `use_default_subnetpool`)
//! gets the lowest free block of its prefix length inside the pool, or the CIDR it
//! asked for when that lies inside the pool and is free. Prefixes can be added to a
//! pool, never taken away; a pool with subnets cannot be deleted.

use super::{bad, neutron, only, opt_bool, opt_int, opt_str, NetworkService};
use crate::ipam::Cidr;
use crate::store::{Control, Record, Table};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::ApiResult;

const POOL_ATTRS: &[&str] = &[
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "shared",
    "is_default",
    "default_quota",
    "address_scope_id",
    "project_id",
    "tenant_id",
    "tags",
];
const POOL_MUTABLE: &[&str] = &[
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "is_default",
    "default_quota",
    "address_scope_id",
    "tags",
];

/// Allocations from pools happen one at a time in this process, so two subnets never
/// get the same block. (One network service allocates; see docs/architecture.md.)
static ALLOCATING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pool_not_found(id: &str) -> stratus_common::http::ApiError {
    super::not_found("SubnetPoolNotFound", "Subnet pool", id)
}

/// The pool's prefixes, parsed (stored normalised, so they parse).
pub fn prefixes_of(pool: &Record) -> Vec<Cidr> {
    pool.doc
        .get("prefixes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.as_str().and_then(|s| Cidr::parse(s).ok())).collect())
        .unwrap_or_default()
}

/// Parses `prefixes`: CIDRs of one IP version (host bits cleared, as Neutron does),
/// without duplicates, in order.
fn parse_prefixes(v: &Value) -> ApiResult<Vec<Cidr>> {
    let list = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("Invalid input: prefixes must be a non-empty list."))?;
    let mut out: Vec<Cidr> = Vec::new();
    for p in list {
        let text = p.as_str().ok_or_else(|| bad("Invalid input: each prefix must be a CIDR string."))?;
        let c = Cidr::parse_masked(text).map_err(|e| neutron(StatusCode::BAD_REQUEST, "InvalidInput", e))?;
        if out.first().is_some_and(|f| f.v6 != c.v6) {
            return Err(bad("Invalid input: a subnet pool's prefixes are all of one IP version."));
        }
        if !out.iter().any(|o| c.within(o)) {
            out.retain(|o| !o.within(&c));
            out.push(c);
        }
    }
    out.sort_by_key(|c| (c.first(), c.prefix));
    Ok(out)
}

/// Checks the prefix lengths of a pool (`min <= default <= max`, within the family, and
/// no shorter than its prefixes allow).
fn check_lengths(prefixes: &[Cidr], min: i64, default: i64, max: i64) -> ApiResult<()> {
    let family_max = prefixes.first().map(|c| c.max_prefix() as i64).unwrap_or(32);
    let shortest = prefixes.iter().map(|c| c.prefix as i64).min().unwrap_or(0);
    if !(0..=family_max).contains(&min) || !(0..=family_max).contains(&max) || !(0..=family_max).contains(&default) {
        return Err(bad(format!("Invalid input: prefix lengths are 0 to {family_max} for this pool.")));
    }
    if !(min <= default && default <= max) {
        return Err(bad(format!(
            "Invalid input: min_prefixlen {min} <= default_prefixlen {default} <= max_prefixlen {max} must hold."
        )));
    }
    if max < shortest {
        return Err(bad(format!("Invalid input: max_prefixlen {max} is shorter than every prefix of the pool.")));
    }
    Ok(())
}

fn prefixes_json(p: &[Cidr]) -> Value {
    Value::Array(p.iter().map(|c| json!(c.to_string())).collect())
}

impl NetworkService {
    pub(crate) fn pool_visible(ctx: &AuthContext, r: &Record) -> bool {
        Self::owns(ctx, r) || r.flag("shared")
    }

    pub async fn pool_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Record> {
        match self.store.fetch(Table::SubnetPools, id).await? {
            Some(r) if Self::pool_visible(ctx, &r) => Ok(r),
            _ => Err(pool_not_found(id)),
        }
    }

    pub async fn pool_list(&self, ctx: &AuthContext) -> ApiResult<Vec<Record>> {
        let all = self.store.list(Table::SubnetPools, None).await?;
        Ok(all.into_iter().filter(|r| Self::pool_visible(ctx, r)).collect())
    }

    /// Only admins share pools or make one the default of its IP version.
    fn pool_admin_only(ctx: &AuthContext, body: &Map<String, Value>) -> ApiResult<()> {
        for k in ["shared", "is_default"] {
            if opt_bool(body, k)? == Some(true) && !ctx.is_admin() {
                return Err(neutron(StatusCode::FORBIDDEN, "PolicyNotAuthorized", format!("Only admins may set {k}.")));
            }
        }
        if body.get("address_scope_id").is_some_and(|v| !v.is_null()) {
            return Err(bad("Address scopes are not offered: address_scope_id must be null."));
        }
        Ok(())
    }

    /// Refuses a second default pool of one IP version.
    async fn one_default(&self, version: i64, except: Option<&str>) -> ApiResult<()> {
        let taken = self.store.list(Table::SubnetPools, None).await?.into_iter().any(|p| {
            p.flag("is_default")
                && p.doc.get("ip_version").and_then(Value::as_i64) == Some(version)
                && Some(p.id.as_str()) != except
        });
        if taken {
            return Err(bad(format!("Invalid input: there is already a default subnet pool for IPv{version}.")));
        }
        Ok(())
    }

    pub async fn pool_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        only(&body, POOL_ATTRS, "subnetpool")?;
        Self::pool_admin_only(ctx, &body)?;
        let project = Self::owner(ctx, &body)?;
        let prefixes = parse_prefixes(body.get("prefixes").unwrap_or(&Value::Null))?;
        let v6 = prefixes[0].v6;
        let family_max = if v6 { 128 } else { 32 };
        let min = opt_int(&body, "min_prefixlen")?.unwrap_or(if v6 { 64 } else { 8 });
        let max = opt_int(&body, "max_prefixlen")?.unwrap_or(family_max);
        let default = opt_int(&body, "default_prefixlen")?.unwrap_or(min);
        check_lengths(&prefixes, min, default, max)?;
        let version = if v6 { 6 } else { 4 };
        let is_default = opt_bool(&body, "is_default")?.unwrap_or(false);
        if is_default {
            self.one_default(version, None).await?;
        }
        let quota = match body.get("default_quota") {
            None | Some(Value::Null) => Value::Null,
            Some(_) => json!(opt_int(&body, "default_quota")?
                .filter(|q| *q >= 0)
                .ok_or_else(|| bad("Invalid input: default_quota must be 0 or more."))?),
        };
        let mut doc = Map::new();
        doc.insert("name".into(), json!(opt_str(&body, "name")?.unwrap_or_default()));
        doc.insert("description".into(), json!(opt_str(&body, "description")?.unwrap_or_default()));
        doc.insert("prefixes".into(), prefixes_json(&prefixes));
        doc.insert("ip_version".into(), json!(version));
        doc.insert("min_prefixlen".into(), json!(min));
        doc.insert("default_prefixlen".into(), json!(default));
        doc.insert("max_prefixlen".into(), json!(max));
        doc.insert("shared".into(), json!(opt_bool(&body, "shared")?.unwrap_or(false)));
        doc.insert("is_default".into(), json!(is_default));
        doc.insert("default_quota".into(), quota);
        doc.insert("address_scope_id".into(), Value::Null);
        doc.insert("tags".into(), super::networks::tags(&body)?);
        let id = uuid::Uuid::new_v4().to_string();
        self.store.insert(Table::SubnetPools, &id, &project, &[], &doc, &Control::default()).await?;
        let r = self.reread(Table::SubnetPools, &id).await?;
        self.emit("subnetpool", "create", &r).await;
        Ok(r)
    }

    pub async fn pool_update(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: Map<String, Value>,
        if_revision: Option<i64>,
    ) -> ApiResult<Record> {
        Self::require_writer(ctx)?;
        let mut r = self.pool_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only the owner may change a subnet pool.",
            ));
        }
        only(&body, POOL_MUTABLE, "subnetpool")?;
        Self::pool_admin_only(ctx, &body)?;
        let mut prefixes = prefixes_of(&r);
        if let Some(v) = body.get("prefixes") {
            let wanted = parse_prefixes(v)?;
            if wanted.first().is_some_and(|w| w.v6 != prefixes[0].v6) {
                return Err(bad("Invalid input: a subnet pool's prefixes are all of one IP version."));
            }
            // Address space is only ever added: each old prefix must lie in a new one.
            if let Some(lost) = prefixes.iter().find(|o| !wanted.iter().any(|w| o.within(w))) {
                return Err(bad(format!(
                    "Invalid input: prefix {lost} would be taken out of the pool; prefixes can only be added."
                )));
            }
            prefixes = wanted;
        }
        let int = |k: &str| -> ApiResult<i64> {
            Ok(match opt_int(&body, k)? {
                Some(n) => n,
                None => r.doc.get(k).and_then(Value::as_i64).unwrap_or_default(),
            })
        };
        let (min, default, max) = (int("min_prefixlen")?, int("default_prefixlen")?, int("max_prefixlen")?);
        check_lengths(&prefixes, min, default, max)?;
        if opt_bool(&body, "is_default")? == Some(true) {
            self.one_default(r.doc.get("ip_version").and_then(Value::as_i64).unwrap_or(4), Some(id)).await?;
        }
        for k in body.keys() {
            match k.as_str() {
                "name" | "description" => {
                    r.doc.insert(k.clone(), json!(opt_str(&body, k)?.unwrap_or_default()));
                }
                "is_default" => {
                    r.doc.insert(k.clone(), json!(opt_bool(&body, k)?.unwrap_or(false)));
                }
                "default_quota" => {
                    r.doc.insert(k.clone(), body[k].clone());
                }
                "tags" => {
                    r.doc.insert(k.clone(), super::networks::tags(&body)?);
                }
                _ => {}
            }
        }
        r.doc.insert("prefixes".into(), prefixes_json(&prefixes));
        r.doc.insert("min_prefixlen".into(), json!(min));
        r.doc.insert("default_prefixlen".into(), json!(default));
        r.doc.insert("max_prefixlen".into(), json!(max));
        self.commit_update(ctx, Table::SubnetPools, &r, &[], if_revision).await
    }

    pub async fn pool_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        Self::require_writer(ctx)?;
        let r = self.pool_get(ctx, id).await?;
        if !Self::owns(ctx, &r) {
            return Err(neutron(
                StatusCode::FORBIDDEN,
                "PolicyNotAuthorized",
                "Only the owner may delete a subnet pool.",
            ));
        }
        let _one_at_a_time = ALLOCATING.lock().await;
        if self.pool_subnets(id).await?.next().is_some() {
            return Err(neutron(
                StatusCode::CONFLICT,
                "SubnetPoolInUse",
                format!("Unable to complete operation on subnet pool {id}: it has subnets allocated from it."),
            ));
        }
        self.store.delete(Table::SubnetPools, id).await?;
        self.emit("subnetpool", "delete", &r).await;
        Ok(())
    }

    /// The CIDRs of the subnets taken from a pool.
    async fn pool_subnets(&self, id: &str) -> ApiResult<impl Iterator<Item = Cidr>> {
        let subnets = self.store.list(Table::Subnets, None).await?;
        Ok(subnets
            .into_iter()
            .filter(move |s| s.doc.get("subnetpool_id").and_then(Value::as_str) == Some(id))
            .filter_map(|s| Cidr::parse(s.str("cidr")).ok())
            .collect::<Vec<_>>()
            .into_iter())
    }

    /// The pool a subnet request names (`subnetpool_id`, or the default pool of its IP
    /// version with `use_default_subnetpool`), if any.
    pub(crate) async fn requested_pool(
        &self,
        ctx: &AuthContext,
        body: &Map<String, Value>,
    ) -> ApiResult<Option<Record>> {
        if let Some(id) = opt_str(body, "subnetpool_id")? {
            return Ok(Some(self.pool_get(ctx, &id).await?));
        }
        if opt_bool(body, "use_default_subnetpool")? != Some(true) {
            return Ok(None);
        }
        let version = opt_int(body, "ip_version")?.unwrap_or(4);
        let found = self
            .pool_list(ctx)
            .await?
            .into_iter()
            .find(|p| p.flag("is_default") && p.doc.get("ip_version").and_then(Value::as_i64) == Some(version));
        found.map(Some).ok_or_else(|| bad(format!("Invalid input: there is no default subnet pool for IPv{version}.")))
    }

    /// Takes a CIDR from a pool for a new subnet, and runs `make` with it while no other
    /// allocation can run: the subnet is written before the next one looks.
    pub(crate) async fn allocate_from<F, Fut>(
        &self,
        pool: &Record,
        asked_cidr: Option<&str>,
        asked_len: Option<i64>,
        make: F,
    ) -> ApiResult<Record>
    where
        F: FnOnce(Cidr) -> Fut,
        Fut: std::future::Future<Output = ApiResult<Record>>,
    {
        let _one_at_a_time = ALLOCATING.lock().await;
        let prefixes = prefixes_of(pool);
        let int = |k: &str| pool.doc.get(k).and_then(Value::as_i64).unwrap_or_default();
        let (min, default, max) = (int("min_prefixlen"), int("default_prefixlen"), int("max_prefixlen"));
        let taken: Vec<Cidr> = self.pool_subnets(&pool.id).await?.collect();
        let cidr = match asked_cidr {
            Some(text) => {
                let c = Cidr::parse(text).map_err(|e| neutron(StatusCode::BAD_REQUEST, "InvalidInput", e))?;
                if !prefixes.iter().any(|p| c.within(p)) {
                    return Err(bad(format!("Invalid input: cidr {c} is not inside subnet pool {}.", pool.id)));
                }
                if (c.prefix as i64) < min || (c.prefix as i64) > max {
                    return Err(bad(format!(
                        "Invalid input: prefix length {} is outside the pool's {min} to {max}.",
                        c.prefix
                    )));
                }
                if taken.iter().any(|t| t.overlaps(&c)) {
                    return Err(neutron(
                        StatusCode::CONFLICT,
                        "SubnetAllocationError",
                        format!(
                            "Failed to allocate subnet: cidr {c} overlaps a subnet already taken from pool {}.",
                            pool.id
                        ),
                    ));
                }
                c
            }
            None => {
                let len = asked_len.unwrap_or(default);
                if len < min || len > max {
                    return Err(bad(format!("Invalid input: prefixlen {len} is outside the pool's {min} to {max}.")));
                }
                Cidr::first_free(&prefixes, len as u8, &taken).ok_or_else(|| {
                    neutron(
                        StatusCode::CONFLICT,
                        "SubnetAllocationError",
                        format!("Failed to allocate subnet: subnet pool {} has no free /{len} left.", pool.id),
                    )
                })?
            }
        };
        make(cidr).await
    }
}
