//! `/v2/metadefs/*`: Glance's metadata definitions catalog — namespaces, and the
//! objects, properties, tags and resource type associations inside them.

use super::AppState;
use crate::app::metadefs::{AssociationBody, NamespaceBody, NamespaceDetail, NamespaceQuery, TagsBody};
use crate::store::{Association, Item, ItemKind, Namespace};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use stratus_common::auth::AuthContext;
use stratus_common::http::pagination::{next_link, parse_bool};
use stratus_common::http::{ApiError, ApiJson, ApiResult};

/// Glance's default and largest page of namespaces.
const PAGE_DEFAULT: usize = 25;
const PAGE_MAX: usize = 1000;

fn time(t: &str) -> String {
    stratus_common::db::parse_time(t).map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()).unwrap_or_default()
}

fn ns_path(ns: &str) -> String {
    format!("/v2/metadefs/namespaces/{}", urlencoding::encode(ns))
}

/// The collection segment (`objects`, `properties`, `tags`) of a namespace's contents.
fn kind_of(segment: &str) -> ApiResult<ItemKind> {
    match segment {
        "objects" => Ok(ItemKind::Object),
        "properties" => Ok(ItemKind::Property),
        "tags" => Ok(ItemKind::Tag),
        other => Err(ApiError::not_found("metadata definition collection", other)),
    }
}

fn segment(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Object => "objects",
        ItemKind::Property => "properties",
        ItemKind::Tag => "tags",
    }
}

fn namespace_view(ns: &Namespace) -> Map<String, Value> {
    let mut v = json!({
        "namespace": ns.namespace,
        "visibility": ns.visibility,
        "protected": ns.protected,
        "owner": ns.owner,
        "created_at": time(&ns.created_at),
        "updated_at": time(&ns.updated_at),
        "self": ns_path(&ns.namespace),
        "schema": "/v2/schemas/metadefs/namespace",
    });
    let m = v.as_object_mut().expect("an object");
    if let Some(d) = &ns.display_name {
        m.insert("display_name".into(), d.clone().into());
    }
    if let Some(d) = &ns.description {
        m.insert("description".into(), d.clone().into());
    }
    std::mem::take(m)
}

fn association_view(a: &Association) -> Value {
    let mut v = json!({"name": a.resource_type, "created_at": time(&a.created_at), "updated_at": time(&a.updated_at)});
    if let Some(p) = &a.prefix {
        v["prefix"] = p.clone().into();
    }
    if let Some(t) = &a.properties_target {
        v["properties_target"] = t.clone().into();
    }
    v
}

/// One object, property or tag as Glance shows it.
fn item_view(ns: &str, kind: ItemKind, item: &Item) -> Value {
    match kind {
        ItemKind::Property => {
            let mut v = item.body.clone();
            v["name"] = item.name.clone().into();
            v
        }
        ItemKind::Tag => {
            json!({"name": item.name, "created_at": time(&item.created_at), "updated_at": time(&item.updated_at)})
        }
        ItemKind::Object => {
            let mut v = item.body.clone();
            v["name"] = item.name.clone().into();
            v["created_at"] = time(&item.created_at).into();
            v["updated_at"] = time(&item.updated_at).into();
            v["self"] = format!("{}/objects/{}", ns_path(ns), urlencoding::encode(&item.name)).into();
            v["schema"] = "/v2/schemas/metadefs/object".into();
            v
        }
    }
}

/// Properties are a map from name to definition.
fn properties_map(items: &[Item]) -> Value {
    Value::Object(items.iter().map(|p| (p.name.clone(), p.body.clone())).collect())
}

fn detail_view(d: &NamespaceDetail) -> Value {
    let mut m = namespace_view(&d.ns);
    if !d.associations.is_empty() {
        m.insert("resource_type_associations".into(), d.associations.iter().map(association_view).collect());
    }
    if !d.properties.is_empty() {
        m.insert("properties".into(), properties_map(&d.properties));
    }
    if !d.objects.is_empty() {
        let objects = d.objects.iter().map(|o| item_view(&d.ns.namespace, ItemKind::Object, o)).collect();
        m.insert("objects".into(), objects);
    }
    if !d.tags.is_empty() {
        m.insert("tags".into(), d.tags.iter().map(|t| json!({"name": t.name})).collect());
    }
    Value::Object(m)
}

pub async fn namespaces_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = match params.get("limit") {
        None => PAGE_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if n > 0 => n.min(PAGE_MAX),
            _ => return Err(ApiError::bad_request(format!("Invalid limit '{l}': use a positive integer."))),
        },
    };
    let q = NamespaceQuery {
        limit: Some(limit),
        marker: params.get("marker").cloned(),
        sort_key: params.get("sort_key").cloned(),
        sort_dir: params.get("sort_dir").cloned(),
        visibility: params.get("visibility").cloned(),
        resource_types: params.get("resource_types").cloned(),
    };
    let (list, next) = s.namespace_list(&ctx, &q).await?;
    let namespaces: Vec<Value> = list
        .iter()
        .map(|(ns, assoc)| {
            let mut m = namespace_view(ns);
            if !assoc.is_empty() {
                m.insert("resource_type_associations".into(), assoc.iter().map(association_view).collect());
            }
            Value::Object(m)
        })
        .collect();
    let mut body = json!({
        "namespaces": namespaces,
        "first": "/v2/metadefs/namespaces",
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if let Some(marker) = next {
        body["next"] = next_link("/v2/metadefs/namespaces", &params, &marker).into();
    }
    Ok(Json(body))
}

pub async fn namespace_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    ApiJson(b): ApiJson<NamespaceBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = s.namespace_create(&ctx, b).await?;
    Ok((StatusCode::CREATED, Json(detail_view(&d))))
}

pub async fn namespace_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(ns): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let d = s.namespace_detail(&ctx, &ns, params.get("resource_type").map(String::as_str)).await?;
    Ok(Json(detail_view(&d)))
}

pub async fn namespace_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(ns): Path<String>,
    ApiJson(b): ApiJson<NamespaceBody>,
) -> ApiResult<Json<Value>> {
    let ns = s.namespace_update(&ctx, &ns, b).await?;
    Ok(Json(Value::Object(namespace_view(&ns))))
}

pub async fn namespace_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(ns): Path<String>,
) -> ApiResult<StatusCode> {
    s.namespace_delete(&ctx, &ns).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn items_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = kind_of(&coll)?;
    let items = s.metadef_items(&ctx, &ns, kind).await?;
    Ok(Json(match kind {
        ItemKind::Property => {
            json!({"properties": properties_map(&items), "schema": "/v2/schemas/metadefs/properties"})
        }
        ItemKind::Object => json!({
            "objects": items.iter().map(|o| item_view(&ns, kind, o)).collect::<Vec<_>>(),
            "schema": "/v2/schemas/metadefs/objects",
        }),
        ItemKind::Tag => json!({"tags": items.iter().map(|t| item_view(&ns, kind, t)).collect::<Vec<_>>()}),
    }))
}

/// `POST .../objects` and `.../properties` create one; `POST .../tags` creates several
/// (replacing the namespace's tags unless `X-Openstack-Append: true`).
pub async fn items_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let kind = kind_of(&coll)?;
    if kind == ItemKind::Tag {
        let b: TagsBody = serde_json::from_value(body).map_err(|e| {
            ApiError::bad_request(format!("Invalid tags: {e} (send {{\"tags\": [{{\"name\": ...}}]}})."))
        })?;
        let append = headers
            .get("x-openstack-append")
            .and_then(|v| v.to_str().ok())
            .map(|v| parse_bool(v).ok_or_else(|| ApiError::bad_request("X-Openstack-Append is true or false.")))
            .transpose()?
            .unwrap_or(false);
        let tags = s.metadef_tags_create(&ctx, &ns, b, append).await?;
        let tags: Vec<Value> = tags.iter().map(|t| json!({"name": t.name})).collect();
        return Ok((StatusCode::CREATED, Json(json!({"tags": tags}))));
    }
    let item = s.metadef_item_create(&ctx, &ns, kind, &body).await?;
    Ok((StatusCode::CREATED, Json(item_view(&ns, kind, &item))))
}

pub async fn items_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.metadef_item_delete(&ctx, &ns, kind_of(&coll)?, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn item_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let kind = kind_of(&coll)?;
    let item = s.metadef_item(&ctx, &ns, kind, &name).await?;
    Ok(Json(item_view(&ns, kind, &item)))
}

/// `POST .../tags/{name}`: one tag, named by the path.
pub async fn item_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll, name)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let kind = kind_of(&coll)?;
    if kind != ItemKind::Tag {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Create {} with POST to .../{}.", segment(kind), segment(kind)),
        ));
    }
    let item = s.metadef_item_create(&ctx, &ns, kind, &json!({"name": name})).await?;
    Ok((StatusCode::CREATED, Json(item_view(&ns, kind, &item))))
}

pub async fn item_update(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll, name)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let kind = kind_of(&coll)?;
    let item = s.metadef_item_update(&ctx, &ns, kind, &name, &body).await?;
    Ok(Json(item_view(&ns, kind, &item)))
}

pub async fn item_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, coll, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    s.metadef_item_delete(&ctx, &ns, kind_of(&coll)?, Some(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn resource_types(State(s): State<AppState>, _ctx: AuthContext) -> ApiResult<Json<Value>> {
    let list = s.resource_types().await?;
    let list: Vec<Value> = list
        .iter()
        .map(|r| json!({"name": r.name, "created_at": time(&r.created_at), "updated_at": time(&r.updated_at)}))
        .collect();
    Ok(Json(json!({"resource_types": list})))
}

pub async fn associations_list(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(ns): Path<String>,
) -> ApiResult<Json<Value>> {
    let list = s.associations(&ctx, &ns).await?;
    Ok(Json(json!({"resource_type_associations": list.iter().map(association_view).collect::<Vec<_>>()})))
}

pub async fn association_create(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(ns): Path<String>,
    ApiJson(b): ApiJson<AssociationBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let a = s.association_create(&ctx, &ns, b).await?;
    Ok((StatusCode::CREATED, Json(association_view(&a))))
}

pub async fn association_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path((ns, rt)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.association_delete(&ctx, &ns, &rt).await?;
    Ok(StatusCode::NO_CONTENT)
}
