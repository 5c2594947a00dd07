//! The CRUD routes of every collection, dispatched on the collection's name: parse the
//! wrapped body, call the app layer, render, filter and page.

use super::query::ListQuery;
use super::{views, AppState};
use crate::app::{bad, neutron};
use crate::store::{Record, Table};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiJson, ApiResult};

/// The collections served by these routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Network,
    Subnet,
    Port,
    SecurityGroup,
    SecurityGroupRule,
    Router,
    FloatingIp,
    SubnetPool,
}

impl Kind {
    pub fn from_collection(c: &str) -> ApiResult<Self> {
        Ok(match c {
            "networks" => Kind::Network,
            "subnets" => Kind::Subnet,
            "ports" => Kind::Port,
            "security-groups" => Kind::SecurityGroup,
            "security-group-rules" => Kind::SecurityGroupRule,
            "routers" => Kind::Router,
            "floatingips" => Kind::FloatingIp,
            "subnetpools" => Kind::SubnetPool,
            _ => {
                return Err(neutron(
                    StatusCode::NOT_FOUND,
                    "HTTPNotFound",
                    format!("The resource {c} could not be found."),
                ))
            }
        })
    }

    /// The key a single resource is wrapped in.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Subnet => "subnet",
            Kind::Port => "port",
            Kind::SecurityGroup => "security_group",
            Kind::SecurityGroupRule => "security_group_rule",
            Kind::Router => "router",
            Kind::FloatingIp => "floatingip",
            Kind::SubnetPool => "subnetpool",
        }
    }

    /// The key a list is wrapped in.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Subnet => "subnets",
            Kind::Port => "ports",
            Kind::SecurityGroup => "security_groups",
            Kind::SecurityGroupRule => "security_group_rules",
            Kind::Router => "routers",
            Kind::FloatingIp => "floatingips",
            Kind::SubnetPool => "subnetpools",
        }
    }

    pub fn collection(self) -> &'static str {
        match self {
            Kind::SecurityGroup => "security-groups",
            Kind::SecurityGroupRule => "security-group-rules",
            _ => self.plural(),
        }
    }

    pub fn table(self) -> Table {
        match self {
            Kind::Network => Table::Networks,
            Kind::Subnet => Table::Subnets,
            Kind::Port => Table::Ports,
            Kind::SecurityGroup => Table::SecurityGroups,
            Kind::SecurityGroupRule => Table::SecurityGroupRules,
            Kind::Router => Table::Routers,
            Kind::FloatingIp => Table::FloatingIps,
            Kind::SubnetPool => Table::SubnetPools,
        }
    }
}

/// The object inside `{"network": {...}}`.
/// The request's items: one under the singular key, or several (bulk) under the plural.
fn unwrap(kind: Kind, body: Value) -> ApiResult<(Vec<Map<String, Value>>, bool)> {
    if body.get(kind.singular()).is_none() {
        if let Some(items) = body.get(kind.plural()) {
            let items = items
                .as_array()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| bad(format!("Invalid input: '{}' must be a non-empty list.", kind.plural())))?;
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Object(m) => out.push(m.clone()),
                    _ => return Err(bad(format!("Invalid input: each of '{}' must be an object.", kind.plural()))),
                }
            }
            return Ok((out, true));
        }
    }
    Ok((vec![super::wrapped(body, kind.singular())?], false))
}

async fn create_one(s: &AppState, ctx: &AuthContext, kind: Kind, body: Map<String, Value>) -> ApiResult<Record> {
    Ok(match kind {
        Kind::Network => s.network_create(ctx, body).await?,
        Kind::Subnet => s.subnet_create(ctx, body).await?,
        Kind::Port => s.port_create(ctx, body).await?,
        Kind::SecurityGroup => s.group_create(ctx, body).await?,
        Kind::SecurityGroupRule => s.rule_create(ctx, body).await?,
        Kind::Router => s.router_create(ctx, body).await?,
        Kind::FloatingIp => s.fip_create(ctx, body).await?,
        Kind::SubnetPool => s.pool_create(ctx, body).await?,
    })
}

async fn delete_one(s: &AppState, ctx: &AuthContext, kind: Kind, id: &str) -> ApiResult<()> {
    match kind {
        Kind::Network => s.network_delete(ctx, id).await?,
        Kind::Subnet => s.subnet_delete(ctx, id).await?,
        Kind::Port => s.port_delete(ctx, id).await?,
        Kind::SecurityGroup => s.group_delete(ctx, id).await?,
        Kind::SecurityGroupRule => s.rule_delete(ctx, id).await?,
        Kind::Router => s.router_delete(ctx, id).await?,
        Kind::FloatingIp => s.fip_delete(ctx, id).await?,
        Kind::SubnetPool => s.pool_delete(ctx, id).await?,
    }
    Ok(())
}

/// `If-Match: revision_number=N`, Neutron's compare-and-swap on updates.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(v) = headers.get("if-match") else { return Ok(None) };
    let v = v.to_str().unwrap_or_default();
    v.trim()
        .strip_prefix("revision_number=")
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| bad(format!("If-Match header '{v}' must be revision_number=<integer>.")))
}

/// Renders records of one kind; networks need their subnets, groups their rules.
pub async fn render(s: &AppState, kind: Kind, records: Vec<Record>) -> ApiResult<Vec<Value>> {
    Ok(match kind {
        Kind::Network => {
            let subnets = s.network_subnet_ids(&records).await?;
            records.into_iter().map(|r| views::network(r, &subnets)).collect()
        }
        Kind::Subnet => records.into_iter().map(views::subnet).collect(),
        Kind::Port => records.into_iter().map(views::port).collect(),
        Kind::SecurityGroupRule => records.into_iter().map(views::rule).collect(),
        Kind::Router => records.into_iter().map(views::router).collect(),
        Kind::FloatingIp => records.into_iter().map(views::floating_ip).collect(),
        Kind::SubnetPool => records.into_iter().map(views::subnetpool).collect(),
        Kind::SecurityGroup => {
            let mut out = Vec::with_capacity(records.len());
            for g in records {
                let rules = s.group_rules(&g.id).await?;
                out.push(views::group(g, rules));
            }
            out
        }
    })
}

async fn render_one(s: &AppState, kind: Kind, r: &Record) -> ApiResult<Json<Value>> {
    let v = render(s, kind, vec![r.clone()]).await?.pop().unwrap_or(Value::Null);
    Ok(Json(json!({ kind.singular(): v })))
}

/// `POST /v2.0/{collection}`: one resource, or several at once (`{"ports": [...]}`), all
/// or nothing: when one of a bulk request is refused, those already made are deleted
/// and the refusal is the answer.
pub async fn create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(collection): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let kind = Kind::from_collection(&collection)?;
    let (items, bulk) = unwrap(kind, body)?;
    let mut made = Vec::with_capacity(items.len());
    for item in items {
        match create_one(&s, &ctx, kind, item).await {
            Ok(r) => made.push(r),
            Err(e) => {
                for r in made.iter().rev() {
                    if let Err(undo) = delete_one(&s, &ctx, kind, &r.id).await {
                        tracing::warn!(id = %r.id, error = ?undo, "cannot undo part of a refused bulk create");
                    }
                }
                return Err(e);
            }
        }
    }
    if !bulk {
        return Ok((StatusCode::CREATED, render_one(&s, kind, &made[0]).await?));
    }
    let views = render(&s, kind, made).await?;
    Ok((StatusCode::CREATED, Json(json!({ kind.plural(): views }))))
}

pub async fn list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(collection): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let kind = Kind::from_collection(&collection)?;
    let q = ListQuery::parse(raw.as_deref())?;
    let asked_project = q.one("project_id").or(q.one("tenant_id"));
    // An admin asking for every project's (Nova's and Cinder's `all_tenants`): the
    // security groups of all projects, as Nova's proxy lists them.
    let every = ctx.is_admin()
        && q.pairs.iter().any(|(k, v)| {
            matches!(k.as_str(), "all_tenants" | "all_projects")
                && stratus_common::http::pagination::parse_bool(v).unwrap_or(v.is_empty() || v == "1")
        });
    // Pages of ports in the default order are read from the database in chunks until
    // the page is full, not all at once.
    if kind == Kind::Port && q.limit.is_some() && q.sort.is_empty() && !q.page_reverse {
        return port_pages(&s, &ctx, &q).await;
    }
    let records = match kind {
        Kind::Network => s.network_list(&ctx).await?,
        Kind::Subnet => s.subnet_list(&ctx).await?,
        Kind::Port => {
            let narrow =
                q.one("device_id").map(|d| ("device_id", d)).or(q.one("network_id").map(|n| ("network_id", n)));
            s.port_list(&ctx, narrow).await?
        }
        Kind::SecurityGroup => s.group_list(&ctx, asked_project, every).await?,
        Kind::SecurityGroupRule => s.rule_list(&ctx, asked_project).await?,
        Kind::Router => s.router_list(&ctx).await?,
        Kind::FloatingIp => s.fip_list(&ctx, q.one("port_id")).await?,
        Kind::SubnetPool => s.pool_list(&ctx).await?,
    };
    let (page, more) = q.apply(render(&s, kind, records).await?)?;
    Ok(list_body(&s, kind, &q, page, more))
}

fn list_body(s: &AppState, kind: Kind, q: &ListQuery, page: Vec<Value>, more: bool) -> Json<Value> {
    let mut body = Map::new();
    if more {
        if let Some(last) = page.last().and_then(|i| i["id"].as_str()) {
            let href = q.next_link(&format!("{}/v2.0/{}", s.public_url, kind.collection()), last);
            body.insert(format!("{}_links", kind.plural()), json!([{"rel": "next", "href": href}]));
        }
    }
    body.insert(kind.plural().into(), Value::Array(page.into_iter().map(|i| q.select(i)).collect()));
    Json(Value::Object(body))
}

/// One page of ports: reads them in creation order, a chunk at a time, keeps those the
/// caller may see and the query matches, and stops when the page (plus one, to know
/// whether more follow) is full.
async fn port_pages(s: &AppState, ctx: &AuthContext, q: &ListQuery) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(usize::MAX);
    let (page, more) =
        s.port_page(ctx, q.marker.as_deref(), limit, |r| Some(views::port(r)).filter(|v| q.matches(v))).await?;
    Ok(list_body(s, Kind::Port, q, page, more))
}

async fn fetch(s: &AppState, ctx: &AuthContext, kind: Kind, id: &str) -> ApiResult<Record> {
    s.get(ctx, kind.table(), id).await
}

pub async fn show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let kind = Kind::from_collection(&collection)?;
    let q = ListQuery::parse(raw.as_deref())?;
    let r = fetch(&s, &ctx, kind, &id).await?;
    let Json(mut v) = render_one(&s, kind, &r).await?;
    let inner = v[kind.singular()].take();
    Ok(Json(json!({ kind.singular(): q.select(inner) })))
}

pub async fn update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let kind = Kind::from_collection(&collection)?;
    let body = super::wrapped(body, kind.singular())?;
    let rev = if_match(&headers)?;
    let r = match kind {
        Kind::Network => s.network_update(&ctx, &id, body, rev).await?,
        Kind::Subnet => s.subnet_update(&ctx, &id, body, rev).await?,
        Kind::Port => s.port_update(&ctx, &id, body, rev).await?,
        Kind::SecurityGroup => s.group_update(&ctx, &id, body, rev).await?,
        Kind::SecurityGroupRule => {
            return Err(bad("Security group rules cannot be updated; delete and create instead."))
        }
        Kind::Router => s.router_update(&ctx, &id, body, rev).await?,
        Kind::FloatingIp => s.fip_update(&ctx, &id, body, rev).await?,
        Kind::SubnetPool => s.pool_update(&ctx, &id, body, rev).await?,
    };
    render_one(&s, kind, &r).await
}

pub async fn delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    delete_one(&s, &ctx, Kind::from_collection(&collection)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v2.0/routers/{id}/add_router_interface`.
pub async fn router_interface_add(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.router_add_interface(&ctx, &id, body).await?))
}

/// `PUT /v2.0/routers/{id}/remove_router_interface`.
pub async fn router_interface_remove(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    Ok(Json(s.router_remove_interface(&ctx, &id, body).await?))
}

/// Tags: `GET/PUT/DELETE /v2.0/{collection}/{id}/tags` and `PUT/DELETE .../tags/{tag}`.
pub async fn tags_get(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = Kind::from_collection(&collection)?;
    let r = fetch(&s, &ctx, kind, &id).await?;
    Ok(Json(json!({"tags": r.doc.get("tags").cloned().unwrap_or(json!([]))})))
}

async fn tags_change(
    s: &AppState,
    ctx: &AuthContext,
    kind: Kind,
    id: &str,
    f: impl FnOnce(&mut Vec<Value>) -> ApiResult<()>,
) -> ApiResult<Vec<Value>> {
    s.tags_change(ctx, kind.table(), id, f).await
}

fn valid_tag(t: &str) -> ApiResult<()> {
    if t.is_empty() || t.len() > 255 || t.contains(',') || t.contains('/') {
        return Err(bad(format!("Invalid tag '{t}': 1 to 255 characters, without ',' or '/'.")));
    }
    Ok(())
}

pub async fn tags_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let kind = Kind::from_collection(&collection)?;
    let new =
        body.get("tags").and_then(Value::as_array).cloned().ok_or_else(|| bad("Body must be {\"tags\": [...]}."))?;
    for t in &new {
        valid_tag(t.as_str().ok_or_else(|| bad("Tags are strings."))?)?;
    }
    let tags = tags_change(&s, &ctx, kind, &id, |tags| {
        *tags = Vec::new();
        for t in new {
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        Ok(())
    })
    .await?;
    Ok(Json(json!({ "tags": tags })))
}

pub async fn tags_clear(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let kind = Kind::from_collection(&collection)?;
    tags_change(&s, &ctx, kind, &id, |tags| {
        tags.clear();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn tag_put(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let kind = Kind::from_collection(&collection)?;
    valid_tag(&tag)?;
    tags_change(&s, &ctx, kind, &id, |tags| {
        if !tags.contains(&json!(tag)) {
            tags.push(json!(tag));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED)
}

pub async fn tag_check(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let kind = Kind::from_collection(&collection)?;
    let r = fetch(&s, &ctx, kind, &id).await?;
    if r.doc.get("tags").and_then(Value::as_array).is_some_and(|a| a.contains(&json!(tag))) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(neutron(StatusCode::NOT_FOUND, "TagNotFound", format!("Tag {tag} could not be found.")))
    }
}

pub async fn tag_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((collection, id, tag)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let kind = Kind::from_collection(&collection)?;
    tags_change(&s, &ctx, kind, &id, |tags| {
        let before = tags.len();
        tags.retain(|t| t.as_str() != Some(tag.as_str()));
        if tags.len() == before {
            return Err(neutron(StatusCode::NOT_FOUND, "TagNotFound", format!("Tag {tag} could not be found.")));
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
