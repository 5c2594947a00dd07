//! Image records: create, read, list, update (JSON patch), delete, deactivate.

use super::{not_found, ImageService};
use crate::inspect::{CONTAINER_FORMATS, DISK_FORMATS};
use crate::store::{Image, ImageStatus};
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::http::{ApiError, ApiResult};

/// Attributes the server sets; a client trying to set one gets 403.
pub const READ_ONLY: &[&str] = &[
    "status",
    "size",
    "virtual_size",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "direct_url",
    "locations",
    "location",
];
/// Core attributes a client may set.
const CORE: &[&str] = &[
    "id",
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "disk_format",
    "container_format",
    "min_disk",
    "min_ram",
    "tags",
    "owner",
];
const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

fn read_only(key: &str) -> ApiError {
    ApiError::forbidden(format!("Attribute '{key}' is read-only."))
}

fn bad(key: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid value for '{key}': {why}."))
}

/// Applies one attribute to an image, validating it.
fn set_attribute(ctx: &AuthContext, img: &mut Image, key: &str, value: &Value) -> ApiResult<()> {
    if READ_ONLY.contains(&key) {
        return Err(read_only(key));
    }
    // Glance keeps the os_glance_ namespace for itself.
    if key.starts_with("os_glance") {
        return Err(ApiError::forbidden(format!("Attribute '{key}' is reserved.")));
    }
    match key {
        "id" => return Err(read_only(key)),
        "name" => {
            img.name = match value {
                Value::Null => None,
                Value::String(s) if s.chars().count() <= 255 => Some(s.clone()),
                _ => return Err(bad(key, "a string of at most 255 characters")),
            }
        }
        "visibility" => {
            let v = value
                .as_str()
                .filter(|v| VISIBILITIES.contains(v))
                .ok_or_else(|| bad(key, "one of public, private, shared, community"))?;
            if v == "public" && !ctx.is_admin() {
                return Err(ApiError::forbidden("Only administrators may publicize images."));
            }
            img.visibility = v.to_string();
        }
        "protected" | "os_hidden" => {
            let b = value.as_bool().ok_or_else(|| bad(key, "true or false"))?;
            if key == "protected" {
                img.protected = b
            } else {
                img.os_hidden = b
            }
        }
        "disk_format" | "container_format" => {
            if !matches!(img.status, ImageStatus::Queued) {
                return Err(ApiError::forbidden(format!(
                    "Attribute '{key}' can be set only while the image is queued."
                )));
            }
            let allowed = if key == "disk_format" { DISK_FORMATS } else { CONTAINER_FORMATS };
            let v = match value {
                Value::Null => None,
                Value::String(s) if allowed.contains(&s.as_str()) => Some(s.clone()),
                _ => return Err(bad(key, &format!("one of {}", allowed.join(", ")))),
            };
            if key == "disk_format" {
                img.disk_format = v
            } else {
                img.container_format = v
            }
        }
        "min_disk" | "min_ram" => {
            let n = value.as_i64().filter(|n| *n >= 0).ok_or_else(|| bad(key, "a non-negative integer"))?;
            if key == "min_disk" {
                img.min_disk = n
            } else {
                img.min_ram = n
            }
        }
        "tags" => {
            let tags: Vec<String> = serde_json::from_value(value.clone()).map_err(|_| bad(key, "a list of strings"))?;
            if tags.iter().any(|t| t.is_empty() || t.chars().count() > 255) {
                return Err(bad(key, "tags of 1 to 255 characters"));
            }
            let mut unique = Vec::new();
            for t in tags {
                if !unique.contains(&t) {
                    unique.push(t);
                }
            }
            img.tags = unique;
        }
        "owner" => {
            if !ctx.is_admin() {
                return Err(ApiError::forbidden("Only administrators may set an image's owner."));
            }
            img.owner = value.as_str().ok_or_else(|| bad(key, "a project id"))?.to_string();
        }
        _ => {
            // Extra properties: strings, as Glance stores them.
            let s = match value {
                Value::String(s) => s.clone(),
                Value::Null => return Err(bad(key, "a string")),
                other => other.to_string(),
            };
            if key.len() > 255 || s.len() > 65535 {
                return Err(bad(key, "a property name of at most 255 and a value of at most 65535 characters"));
            }
            img.extra.insert(key.to_string(), Value::String(s));
        }
    }
    Ok(())
}

impl ImageService {
    /// `POST /v2/images`: a queued image record, counted against `image_count_total`.
    pub async fn image_create(&self, ctx: &AuthContext, body: Map<String, Value>) -> ApiResult<Image> {
        let project = Self::project(ctx)?.to_string();
        if !ctx.has_role("member") && !ctx.is_admin() {
            return Err(ApiError::forbidden("Readers cannot create images."));
        }
        let id = match body.get("id") {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok() => s.clone(),
            Some(_) => return Err(bad("id", "a UUID")),
        };
        let now = now_text();
        let mut img = Image {
            id,
            name: None,
            owner: project,
            status: ImageStatus::Queued,
            visibility: "shared".into(),
            protected: false,
            os_hidden: false,
            disk_format: None,
            container_format: None,
            size: None,
            virtual_size: None,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            tags: vec![],
            extra: Map::new(),
            created_at: now.clone(),
            updated_at: now,
        };
        for (k, v) in &body {
            if k != "id" {
                set_attribute(ctx, &mut img, k, v)?;
            }
        }
        let (count_limit, _) = self.quotas(&img.owner).await?;
        match self.store.image_create(&img, count_limit).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(ApiError::payload_too_large(format!(
                    "Image count quota exceeded: the project may have at most {} images.",
                    count_limit.unwrap_or(0)
                )))
            }
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("An image with identifier {} already exists.", img.id)))
            }
            Err(e) => return Err(e.into()),
        }
        let img = self.store.image_fetch(&img.id).await?.ok_or_else(|| not_found(&img.id))?;
        self.emit("create", &img).await;
        Ok(img)
    }

    /// Images the caller may list, with their member status for the caller's project.
    pub async fn image_list(&self, ctx: &AuthContext) -> ApiResult<Vec<(Image, Option<String>)>> {
        let project = ctx.project_id();
        let scope = if ctx.is_admin() { None } else { Some(Self::project(ctx)?) };
        let mut list = self.store.image_list_candidates(scope).await?;
        if ctx.is_admin() {
            // Admins see everything; member status still refers to their own project.
            if let Some(p) = project {
                for (img, status) in list.iter_mut() {
                    *status = self.store.member_fetch(&img.id, p).await?.map(|m| m.status);
                    let _ = img;
                }
            }
        }
        Ok(list)
    }

    /// `PATCH /v2/images/{id}` with a JSON patch (`add`, `replace`, `remove`).
    pub async fn image_patch(&self, ctx: &AuthContext, id: &str, ops: Vec<Value>) -> ApiResult<Image> {
        let mut img = self.image_owned(ctx, id).await?;
        for op in &ops {
            // JSON patch (`{"op": "replace", "path": "/name"}`, media type
            // openstack-images-v2.1-json-patch) or Glance's older draft form
            // (`{"replace": "/name"}`, v2.0-json-patch).
            let (kind, path) = match op["op"].as_str() {
                Some(kind) => (
                    kind,
                    op["path"].as_str().ok_or_else(|| ApiError::bad_request("Each patch operation needs a 'path'."))?,
                ),
                None => ["add", "replace", "remove"]
                    .into_iter()
                    .find_map(|k| op[k].as_str().map(|p| (k, p)))
                    .ok_or_else(|| ApiError::bad_request("Each patch operation needs an 'op'."))?,
            };
            let key = path.strip_prefix('/').ok_or_else(|| ApiError::bad_request(format!("Invalid path '{path}'.")))?;
            if key.is_empty() || key.contains('/') {
                return Err(ApiError::bad_request(format!("Invalid path '{path}'.")));
            }
            match kind {
                "add" | "replace" => {
                    let value =
                        op.get("value").ok_or_else(|| ApiError::bad_request("A patch operation needs a 'value'."))?;
                    if kind == "replace"
                        && !CORE.contains(&key)
                        && !READ_ONLY.contains(&key)
                        && !img.extra.contains_key(key)
                    {
                        return Err(ApiError::conflict(format!("Property {key} does not exist.")));
                    }
                    set_attribute(ctx, &mut img, key, value)?;
                }
                "remove" => {
                    if READ_ONLY.contains(&key) || CORE.contains(&key) {
                        return Err(ApiError::forbidden(format!("Attribute '{key}' cannot be removed.")));
                    }
                    if img.extra.remove(key).is_none() {
                        return Err(ApiError::conflict(format!("Property {key} does not exist.")));
                    }
                }
                other => return Err(ApiError::bad_request(format!("Unsupported patch operation '{other}'."))),
            }
        }
        self.store.image_update(&img).await?;
        let img = self.store.image_fetch(id).await?.ok_or_else(|| not_found(id))?;
        self.emit("update", &img).await;
        Ok(img)
    }

    pub async fn image_tag(&self, ctx: &AuthContext, id: &str, tag: &str, add: bool) -> ApiResult<()> {
        let mut img = self.image_owned(ctx, id).await?;
        if add {
            if tag.is_empty() || tag.chars().count() > 255 {
                return Err(bad("tag", "1 to 255 characters"));
            }
            if !img.tags.iter().any(|t| t == tag) {
                img.tags.push(tag.to_string());
            }
        } else {
            let before = img.tags.len();
            img.tags.retain(|t| t != tag);
            if before == img.tags.len() {
                return Err(ApiError::not_found("tag", tag));
            }
        }
        self.store.image_update(&img).await?;
        Ok(())
    }

    /// `DELETE /v2/images/{id}`: removes the record, its data, and its quota usage.
    pub async fn image_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        let img = self.image_owned(ctx, id).await?;
        if img.protected {
            return Err(ApiError::forbidden(format!("Image {id} is protected and cannot be deleted.")));
        }
        self.store.image_delete(&img).await?;
        if let Err(e) = self.backend.delete(id).await {
            // The record is gone; the reconciler removes orphaned data later.
            tracing::warn!(image = id, error = %e, "image data not removed yet");
        }
        self.emit("delete", &img).await;
        Ok(())
    }

    /// `POST /v2/images/{id}/actions/deactivate|reactivate`.
    pub async fn image_set_active(&self, ctx: &AuthContext, id: &str, active: bool) -> ApiResult<()> {
        let img = self.image_owned(ctx, id).await?;
        let (from, to) = if active {
            (ImageStatus::Deactivated, ImageStatus::Active)
        } else {
            (ImageStatus::Active, ImageStatus::Deactivated)
        };
        if img.status == to {
            return Ok(());
        }
        if !self.store.image_transition(id, &[from], to, None).await? {
            return Err(ApiError::bad_request(format!(
                "Image {id} is {}: only {} images can be {}.",
                img.status.as_str(),
                from.as_str(),
                if active { "reactivated" } else { "deactivated" }
            )));
        }
        let img = self.store.image_fetch(id).await?.ok_or_else(|| not_found(id))?;
        self.emit(if active { "reactivate" } else { "deactivate" }, &img).await;
        Ok(())
    }
}
