//! `GET /v2/images`: visibility rules, filters, sorting and paging, as Glance.

use super::ImageService;
use crate::store::Image;
use serde_json::Value;
use std::cmp::Ordering;
use stratus_common::auth::AuthContext;
use stratus_common::db::parse_time;
use stratus_common::http::pagination::parse_bool;
use stratus_common::http::{ApiError, ApiResult};

const SORTABLE: &[&str] = &[
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
    "visibility",
    "owner",
    "min_disk",
    "min_ram",
    "virtual_size",
];

/// One page of images and the marker of the next page, if there is one.
pub struct ImagePage {
    pub images: Vec<Image>,
    pub next_marker: Option<String>,
    pub limit: usize,
}

fn field(img: &Image, key: &str) -> Value {
    match key {
        "name" => img.name.clone().map(Value::String).unwrap_or(Value::Null),
        "status" => Value::String(img.status.as_str().into()),
        "container_format" => img.container_format.clone().map(Value::String).unwrap_or(Value::Null),
        "disk_format" => img.disk_format.clone().map(Value::String).unwrap_or(Value::Null),
        "size" => img.size.map(Value::from).unwrap_or(Value::Null),
        "virtual_size" => img.virtual_size.map(Value::from).unwrap_or(Value::Null),
        "id" => Value::String(img.id.clone()),
        "created_at" => Value::String(img.created_at.clone()),
        "updated_at" => Value::String(img.updated_at.clone()),
        "visibility" => Value::String(img.visibility.clone()),
        "owner" => Value::String(img.owner.clone()),
        "min_disk" => Value::from(img.min_disk),
        "min_ram" => Value::from(img.min_ram),
        _ => Value::Null,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_i64().cmp(&y.as_i64()),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// `gt:2026-01-01T00:00:00Z` style comparisons on times.
fn time_matches(value: &str, spec: &str) -> ApiResult<bool> {
    let (op, t) = spec
        .split_once(':')
        .filter(|(op, _)| ["gt", "gte", "lt", "lte", "eq", "neq"].contains(op))
        .unwrap_or(("eq", spec));
    let want = parse_time(t).ok_or_else(|| ApiError::bad_request(format!("Invalid time '{t}' in filter.")))?;
    let have = parse_time(value).unwrap_or_default();
    Ok(match op {
        "gt" => have > want,
        "gte" => have >= want,
        "lt" => have < want,
        "lte" => have <= want,
        "neq" => have != want,
        _ => have == want,
    })
}

/// A non-negative integer parameter (Glance refuses `limit=-1`).
fn int_param(params: &[(String, String)], key: &str) -> ApiResult<Option<i64>> {
    match params.iter().find(|(k, _)| k == key) {
        None => Ok(None),
        Some((_, v)) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid {key} '{v}': must be a non-negative integer."))),
    }
}

/// `asc` or `desc` (true: descending); anything else is refused.
fn sort_dir(d: &str) -> ApiResult<bool> {
    match d.trim() {
        "asc" => Ok(false),
        "desc" => Ok(true),
        other => Err(ApiError::bad_request(format!("Invalid sort direction '{other}': use asc or desc."))),
    }
}

impl ImageService {
    pub async fn image_query(&self, ctx: &AuthContext, params: &[(String, String)]) -> ApiResult<ImagePage> {
        let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        // The default listing (only limit and marker) is paged in SQL; everything else
        // takes the general path below, which gives the same pages (tested).
        if params.iter().all(|(k, _)| k == "limit" || k == "marker") {
            let limit = int_param(params, "limit")?.map(|l| l.clamp(0, 1000) as usize).unwrap_or(25);
            let project = Self::project(ctx)?;
            let marker = match get("marker") {
                Some(m) => Some(
                    self.image_visible(ctx, m)
                        .await
                        .map_err(|_| ApiError::bad_request(format!("Marker {m} could not be found.")))?,
                ),
                None => None,
            };
            let mut images =
                self.store.image_page_default(project, ctx.is_admin(), marker.as_ref(), limit as i64).await?;
            let mut next_marker = None;
            if images.len() > limit {
                images.truncate(limit);
                next_marker = images.last().map(|i| i.id.clone());
            }
            return Ok(ImagePage { images, next_marker, limit });
        }
        let project = ctx.project_id().unwrap_or("");
        let visibility = get("visibility");
        if let Some(v) = visibility {
            if !["public", "private", "shared", "community", "all"].contains(&v) {
                return Err(ApiError::bad_request(format!("Invalid visibility value: {v}")));
            }
        }
        let member_status = get("member_status").unwrap_or("accepted");
        if !["pending", "accepted", "rejected", "all"].contains(&member_status) {
            return Err(ApiError::bad_request(format!("Invalid member_status value: {member_status}")));
        }
        let os_hidden = match get("os_hidden") {
            None => false,
            Some(v) => parse_bool(v).ok_or_else(|| ApiError::bad_request(format!("Invalid os_hidden value: {v}")))?,
        };
        let limit = int_param(params, "limit")?.map(|l| l.clamp(0, 1000) as usize).unwrap_or(25);
        let size_min = int_param(params, "size_min")?;
        let size_max = int_param(params, "size_max")?;
        let ids: Option<Vec<&str>> = get("id").map(|v| v.strip_prefix("in:").unwrap_or(v).split(',').collect());
        let tags: Vec<&str> = params.iter().filter(|(k, _)| k == "tag").map(|(_, v)| v.as_str()).collect();
        let reserved = [
            "limit",
            "marker",
            "sort",
            "sort_key",
            "sort_dir",
            "visibility",
            "member_status",
            "os_hidden",
            "size_min",
            "size_max",
            "id",
            "tag",
            "created_at",
            "updated_at",
        ];

        let mut images = Vec::new();
        for (img, status) in self.image_list(ctx).await? {
            let mine = img.owner == project;
            let shared_status = status.as_deref();
            // Which images a listing shows at all, as Glance.
            let listed = match visibility {
                None => {
                    mine || img.visibility == "public"
                        || (shared_status.is_some() && (member_status == "all" || shared_status == Some(member_status)))
                        || (ctx.is_admin() && img.visibility != "community")
                }
                Some("all") => true,
                Some("community") => img.visibility == "community",
                Some("shared") => {
                    img.visibility == "shared"
                        && (mine && !ctx.is_admin()
                            || shared_status.is_some_and(|s| member_status == "all" || s == member_status)
                            || (ctx.is_admin() && shared_status.is_none() && !mine))
                }
                Some(v) => img.visibility == v,
            };
            // Hidden images show only when asked for with os_hidden=true.
            if !listed || img.os_hidden != os_hidden {
                continue;
            }
            if let Some(ids) = &ids {
                if !ids.contains(&img.id.as_str()) {
                    continue;
                }
            }
            if !tags.iter().all(|t| img.tags.iter().any(|x| x == t)) {
                continue;
            }
            if size_min.is_some_and(|m| img.size.unwrap_or(0) < m)
                || size_max.is_some_and(|m| img.size.unwrap_or(0) > m)
            {
                continue;
            }
            if let Some(spec) = get("created_at") {
                if !time_matches(&img.created_at, spec)? {
                    continue;
                }
            }
            if let Some(spec) = get("updated_at") {
                if !time_matches(&img.updated_at, spec)? {
                    continue;
                }
            }
            let mut ok = true;
            for (k, v) in params {
                if reserved.contains(&k.as_str()) {
                    continue;
                }
                let have = match k.as_str() {
                    "name" | "status" | "owner" | "disk_format" | "container_format" => {
                        field(&img, k).as_str().map(str::to_string)
                    }
                    "protected" => Some(img.protected.to_string()),
                    "min_disk" | "min_ram" => Some(field(&img, k).to_string()),
                    other => img.extra.get(other).and_then(Value::as_str).map(str::to_string),
                };
                let want =
                    if k == "protected" { parse_bool(v).map(|b| b.to_string()).unwrap_or_default() } else { v.clone() };
                if have.as_deref() != Some(want.as_str()) {
                    ok = false;
                    break;
                }
            }
            if ok {
                images.push(img);
            }
        }

        // Sorting: `sort=name:asc,size:desc` or `sort_key=...&sort_dir=...`.
        let mut keys: Vec<(String, bool)> = Vec::new();
        if let Some(sort) = get("sort") {
            for part in sort.split(',') {
                let (k, d) = part.split_once(':').unwrap_or((part, "desc"));
                keys.push((k.trim().to_string(), sort_dir(d)?));
            }
        } else {
            let dirs: Vec<&str> = params.iter().filter(|(k, _)| k == "sort_dir").map(|(_, v)| v.as_str()).collect();
            for d in &dirs {
                sort_dir(d)?;
            }
            for (i, (_, k)) in params.iter().filter(|(k, _)| k == "sort_key").enumerate() {
                keys.push((k.clone(), sort_dir(dirs.get(i).or(dirs.first()).copied().unwrap_or("desc"))?));
            }
        }
        if keys.is_empty() {
            keys.push(("created_at".into(), true));
        }
        for (k, _) in &keys {
            if !SORTABLE.contains(&k.as_str()) {
                return Err(ApiError::bad_request(format!("Invalid sort key: {k}")));
            }
        }
        images.sort_by(|a, b| {
            for (k, desc) in &keys {
                let o = compare(&field(a, k), &field(b, k));
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            b.id.cmp(&a.id)
        });
        if let Some(marker) = get("marker") {
            let pos = images
                .iter()
                .position(|i| i.id == marker)
                .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?;
            images.drain(..=pos);
        }
        let mut next_marker = None;
        if images.len() > limit {
            images.truncate(limit);
            next_marker = images.last().map(|i| i.id.clone());
        }
        Ok(ImagePage { images, next_marker, limit })
    }
}
