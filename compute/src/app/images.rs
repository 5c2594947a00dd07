//! Nova's image proxy (`/images`, before 2.36): the image service's images read,
//! deleted and given metadata as the caller, whose rights the image service checks.
//! The API layer shows them as Nova did.

use super::{bad, conflict, forbidden, not_found, unavailable, AppResult, ComputeService};
use crate::clients::CallError;
use reqwest::Method;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::image_cache::image_properties;

fn refused(id: &str, e: CallError) -> super::Error {
    match e {
        CallError::Refused(404, _) => not_found(format!("Image {id} could not be found.")),
        CallError::Refused(403, m) | CallError::Refused(413, m) => forbidden(m),
        CallError::Refused(409, m) => conflict(m),
        CallError::Refused(_, m) => bad(m),
        CallError::Unavailable(m) => unavailable(m),
    }
}

/// An image's metadata, as Nova shows it: its properties (not the image service's own
/// fields), each as a string.
pub fn image_metadata(image: &Value) -> Map<String, Value> {
    image_properties(image)
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| json!(v.to_string()), |s| json!(s))))
        .collect()
}

impl ComputeService {
    /// An image the caller sees.
    pub async fn image_proxy_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Value> {
        let path = format!("/v2/images/{id}");
        self.clients.image_call(&ctx.token, Method::GET, &path, None).await.map_err(|e| refused(id, e))
    }

    /// Every image the caller sees, following the image service's pages.
    pub async fn image_proxy_list(&self, ctx: &AuthContext) -> AppResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut path = "/v2/images?limit=1000".to_string();
        loop {
            let page =
                self.clients.image_call(&ctx.token, Method::GET, &path, None).await.map_err(|e| refused("list", e))?;
            out.extend(page["images"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) if !next.is_empty() => path = next.to_string(),
                _ => return Ok(out),
            }
        }
    }

    pub async fn image_proxy_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let path = format!("/v2/images/{id}");
        self.clients.image_call(&ctx.token, Method::DELETE, &path, None).await.map_err(|e| refused(id, e))?;
        Ok(())
    }

    /// Sets these metadata items on the image (`replace`: and removes the others);
    /// the image as it is after.
    pub async fn image_proxy_set_metadata(
        &self,
        ctx: &AuthContext,
        id: &str,
        items: &Map<String, Value>,
        replace: bool,
    ) -> AppResult<Value> {
        let image = self.image_proxy_get(ctx, id).await?;
        let mut ops = Vec::new();
        if replace {
            for k in image_metadata(&image).keys().filter(|k| !items.contains_key(*k)) {
                ops.push(json!({"op": "remove", "path": format!("/{k}")}));
            }
        }
        for (k, v) in items {
            let op = if image.get(k).is_some_and(|x| !x.is_null()) { "replace" } else { "add" };
            ops.push(json!({"op": op, "path": format!("/{k}"), "value": v}));
        }
        if ops.is_empty() {
            return Ok(image);
        }
        self.clients.image_patch(&ctx.token, id, Value::Array(ops)).await.map_err(|e| refused(id, e))
    }

    /// Removes one metadata item (404 when the image has none of that name).
    pub async fn image_proxy_remove_metadata(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        let image = self.image_proxy_get(ctx, id).await?;
        if !image_metadata(&image).contains_key(key) {
            return Err(not_found(format!("Image {id} has no metadata item {key}.")));
        }
        let ops = json!([{"op": "remove", "path": format!("/{key}")}]);
        self.clients.image_patch(&ctx.token, id, ops).await.map_err(|e| refused(id, e))?;
        Ok(())
    }
}
