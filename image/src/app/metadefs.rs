//! The metadata definitions catalog (Glance's metadefs): which keys a resource's
//! metadata may carry, with their types and allowed values, grouped in namespaces.
//!
//! As in Glance, everyone reads public namespaces and their own project's private ones;
//! only administrators change the catalog. A protected namespace, and anything in it,
//! cannot be deleted until it is unprotected.

use super::ImageService;
use crate::store::{Association, Item, ItemKind, Namespace, NewNamespace, ResourceType};
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text};
use stratus_common::http::{ApiError, ApiResult};

/// The JSON-schema types a property may have.
const PROPERTY_TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];
/// The keys of a property definition (Glance's `PropertyType`).
const PROPERTY_KEYS: &[&str] = &[
    "title",
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "maxLength",
    "minLength",
    "pattern",
    "items",
    "readonly",
    "operators",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];
/// Longest namespace, object and property name (Glance's columns).
const NAME_MAX: usize = 80;
const TAG_MAX: usize = 255;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceBody {
    namespace: String,
    display_name: Option<String>,
    description: Option<String>,
    visibility: Option<String>,
    protected: Option<bool>,
    owner: Option<String>,
    #[serde(default)]
    resource_type_associations: Vec<AssociationBody>,
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    objects: Vec<Value>,
    #[serde(default)]
    tags: Vec<TagBody>,
    // What a client may send back from a view; not the caller's to set.
    #[serde(rename = "self")]
    _self: Option<Value>,
    #[serde(rename = "schema")]
    _schema: Option<Value>,
    #[serde(rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(rename = "updated_at")]
    _updated_at: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationBody {
    name: String,
    prefix: Option<String>,
    properties_target: Option<String>,
    #[serde(rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(rename = "updated_at")]
    _updated_at: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagBody {
    name: String,
    #[serde(rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(rename = "updated_at")]
    _updated_at: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    tags: Vec<TagBody>,
}

/// A namespace with everything in it, as `show` answers.
pub struct NamespaceDetail {
    pub ns: Namespace,
    pub associations: Vec<Association>,
    pub objects: Vec<Item>,
    pub properties: Vec<Item>,
    pub tags: Vec<Item>,
}

/// The namespace listing's query (Glance's parameters).
#[derive(Default)]
pub struct NamespaceQuery {
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub sort_key: Option<String>,
    pub sort_dir: Option<String>,
    pub visibility: Option<String>,
    pub resource_types: Option<String>,
}

fn check_name(what: &str, name: &str, max: usize) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request(format!("A {what} needs a name.")));
    }
    if name.chars().count() > max {
        return Err(ApiError::bad_request(format!("A {what} name is at most {max} characters.")));
    }
    if name.contains('/') {
        return Err(ApiError::bad_request(format!("A {what} name cannot contain '/'.")));
    }
    Ok(())
}

fn check_visibility(v: &str) -> ApiResult<()> {
    match v {
        "public" | "private" => Ok(()),
        _ => Err(ApiError::bad_request(format!("Invalid visibility '{v}': use public or private."))),
    }
}

fn non_negative(def: &Map<String, Value>, key: &str) -> ApiResult<()> {
    match def.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.as_u64().is_some() => Ok(()),
        Some(_) => Err(ApiError::bad_request(format!("A property's '{key}' must be a non-negative integer."))),
    }
}

/// Checks a property definition (a JSON-schema fragment: `title` and `type` required)
/// and returns it without its name.
pub fn property_definition(name: &str, value: &Value) -> ApiResult<Value> {
    let Value::Object(def) = value else {
        return Err(ApiError::bad_request(format!("The definition of property '{name}' must be an object.")));
    };
    let mut def = def.clone();
    def.remove("name");
    if let Some(k) = def.keys().find(|k| !PROPERTY_KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown key '{k}' in property '{name}': a property has {}.",
            PROPERTY_KEYS.join(", ")
        )));
    }
    match def.get("title") {
        Some(Value::String(t)) if !t.is_empty() => {}
        _ => return Err(ApiError::bad_request(format!("Property '{name}' needs a 'title' (a string)."))),
    }
    match def.get("type").and_then(Value::as_str) {
        Some(t) if PROPERTY_TYPES.contains(&t) => {}
        _ => {
            return Err(ApiError::bad_request(format!(
                "Property '{name}' needs a 'type', one of {}.",
                PROPERTY_TYPES.join(", ")
            )))
        }
    }
    for key in ["enum", "operators"] {
        if !matches!(def.get(key), None | Some(Value::Null) | Some(Value::Array(_))) {
            return Err(ApiError::bad_request(format!("A property's '{key}' must be a list.")));
        }
    }
    for key in ["minimum", "maximum"] {
        if !matches!(def.get(key), None | Some(Value::Null) | Some(Value::Number(_))) {
            return Err(ApiError::bad_request(format!("A property's '{key}' must be a number.")));
        }
    }
    for key in ["minLength", "maxLength", "minItems", "maxItems"] {
        non_negative(&def, key)?;
    }
    for key in ["readonly", "uniqueItems", "additionalItems"] {
        if !matches!(def.get(key), None | Some(Value::Null) | Some(Value::Bool(_))) {
            return Err(ApiError::bad_request(format!("A property's '{key}' must be true or false.")));
        }
    }
    for key in ["description", "pattern"] {
        if !matches!(def.get(key), None | Some(Value::Null) | Some(Value::String(_))) {
            return Err(ApiError::bad_request(format!("A property's '{key}' must be a string.")));
        }
    }
    if let Some(items) = def.get("items").filter(|v| !v.is_null()) {
        let ok = items.as_object().is_some_and(|m| {
            m.keys().all(|k| k == "type" || k == "enum")
                && m.get("type").and_then(Value::as_str).is_none_or(|t| PROPERTY_TYPES.contains(&t))
                && matches!(m.get("enum"), None | Some(Value::Null) | Some(Value::Array(_)))
        });
        if !ok {
            return Err(ApiError::bad_request("A property's 'items' is an object with a 'type' and an 'enum'."));
        }
    }
    def.retain(|_, v| !v.is_null());
    Ok(Value::Object(def))
}

/// Checks a property body (`name` and the definition) and splits it.
fn property_body(body: &Value) -> ApiResult<(String, Value)> {
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    check_name("property", &name, NAME_MAX)?;
    Ok((name.clone(), property_definition(&name, body)?))
}

/// Checks an object body (`name`, `description`, `required`, `properties`) and splits it.
fn object_body(body: &Value) -> ApiResult<(String, Value)> {
    let Value::Object(m) = body else {
        return Err(ApiError::bad_request("An object must be a JSON object."));
    };
    const KEYS: &[&str] =
        &["name", "description", "required", "properties", "self", "schema", "created_at", "updated_at"];
    if let Some(k) = m.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Unknown key '{k}' in an object: an object has name, description, required and properties."
        )));
    }
    let name = m.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    check_name("object", &name, NAME_MAX)?;
    let mut def = Map::new();
    match m.get("description") {
        None | Some(Value::Null) => {}
        Some(Value::String(d)) => {
            def.insert("description".into(), d.clone().into());
        }
        Some(_) => return Err(ApiError::bad_request("An object's description must be a string.")),
    }
    match m.get("required") {
        None | Some(Value::Null) => {}
        Some(Value::Array(r)) if r.iter().all(Value::is_string) => {
            def.insert("required".into(), Value::Array(r.clone()));
        }
        Some(_) => return Err(ApiError::bad_request("An object's 'required' is a list of property names.")),
    }
    match m.get("properties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            let mut checked = Map::new();
            for (pname, pdef) in props {
                check_name("property", pname, NAME_MAX)?;
                checked.insert(pname.clone(), property_definition(pname, pdef)?);
            }
            def.insert("properties".into(), Value::Object(checked));
        }
        Some(_) => return Err(ApiError::bad_request("An object's properties are an object of definitions.")),
    }
    Ok((name, Value::Object(def)))
}

fn tag_name(t: &TagBody) -> ApiResult<String> {
    check_name("tag", &t.name, TAG_MAX)?;
    Ok(t.name.clone())
}

fn duplicate(what: &str, name: &str, ns: &str) -> ApiError {
    ApiError::conflict(format!("A {what} named '{name}' already exists in namespace '{ns}'."))
}

fn item_not_found(kind: ItemKind, name: &str) -> ApiError {
    let what = match kind {
        ItemKind::Object => "metadata definition object",
        ItemKind::Property => "metadata definition property",
        ItemKind::Tag => "metadata definition tag",
    };
    ApiError::not_found(what, name)
}

/// Maps a duplicate-name insert to a 409 naming it.
fn or_duplicate(e: sqlx::Error, what: &str, name: &str, ns: &str) -> ApiError {
    if is_unique_violation(&e) {
        duplicate(what, name, ns)
    } else {
        e.into()
    }
}

impl ImageService {
    fn metadefs_admin(ctx: &AuthContext) -> ApiResult<()> {
        if ctx.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("Only administrators change metadata definitions."))
        }
    }

    fn namespace_readable(ctx: &AuthContext, ns: &Namespace) -> bool {
        ctx.is_admin() || ns.visibility == "public" || ctx.project_id() == Some(ns.owner.as_str())
    }

    /// A namespace the caller may read, or 404 (a private one of another project is not
    /// there for them).
    pub async fn namespace_visible(&self, ctx: &AuthContext, name: &str) -> ApiResult<Namespace> {
        match self.store.namespace_fetch(name).await? {
            Some(ns) if Self::namespace_readable(ctx, &ns) => Ok(ns),
            _ => Err(ApiError::not_found("metadata definition namespace", name)),
        }
    }

    /// A namespace the caller may change: visible to them, and they an administrator.
    async fn namespace_managed(&self, ctx: &AuthContext, name: &str) -> ApiResult<Namespace> {
        let ns = self.namespace_visible(ctx, name).await?;
        Self::metadefs_admin(ctx)?;
        Ok(ns)
    }

    fn unprotected(ns: &Namespace, what: &str) -> ApiResult<()> {
        if ns.protected {
            Err(ApiError::forbidden(format!(
                "Namespace '{}' is protected: unprotect it before deleting {what}.",
                ns.namespace
            )))
        } else {
            Ok(())
        }
    }

    pub async fn namespace_list(
        &self,
        ctx: &AuthContext,
        q: &NamespaceQuery,
    ) -> ApiResult<(Vec<(Namespace, Vec<Association>)>, Option<String>)> {
        if let Some(v) = &q.visibility {
            check_visibility(v)?;
        }
        let key = q.sort_key.as_deref().unwrap_or("created_at");
        if !["created_at", "updated_at", "namespace", "display_name"].contains(&key) {
            return Err(ApiError::bad_request(format!(
                "Invalid sort_key '{key}': use created_at, updated_at, namespace or display_name."
            )));
        }
        let desc = match q.sort_dir.as_deref().unwrap_or("desc") {
            "desc" => true,
            "asc" => false,
            d => return Err(ApiError::bad_request(format!("Invalid sort_dir '{d}': use asc or desc."))),
        };
        let wanted_types: Option<Vec<&str>> =
            q.resource_types.as_deref().map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect());
        let all_assoc = self.store.associations(None).await?;
        let mut list: Vec<(Namespace, Vec<Association>)> = self
            .store
            .namespaces()
            .await?
            .into_iter()
            .filter(|ns| Self::namespace_readable(ctx, ns))
            .filter(|ns| q.visibility.as_ref().is_none_or(|v| &ns.visibility == v))
            .map(|ns| {
                let assoc = all_assoc.iter().filter(|a| a.namespace_id == ns.id).cloned().collect::<Vec<_>>();
                (ns, assoc)
            })
            .filter(|(_, assoc)| {
                wanted_types.as_ref().is_none_or(|w| assoc.iter().any(|a| w.contains(&a.resource_type.as_str())))
            })
            .collect();
        let sort_value = |ns: &Namespace| -> String {
            match key {
                "updated_at" => ns.updated_at.clone(),
                "namespace" => ns.namespace.clone(),
                "display_name" => ns.display_name.clone().unwrap_or_default(),
                _ => ns.created_at.clone(),
            }
        };
        list.sort_by(|(a, _), (b, _)| {
            let o = sort_value(a).cmp(&sort_value(b)).then_with(|| a.namespace.cmp(&b.namespace));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
        if let Some(marker) = &q.marker {
            let at = list.iter().position(|(ns, _)| &ns.namespace == marker).ok_or_else(|| {
                ApiError::bad_request(format!("Marker '{marker}' is not a namespace in this listing."))
            })?;
            list.drain(..=at);
        }
        let mut next = None;
        if let Some(limit) = q.limit {
            if list.len() > limit {
                list.truncate(limit);
                next = list.last().map(|(ns, _)| ns.namespace.clone());
            }
        }
        Ok((list, next))
    }

    /// Creates a namespace with the associations, properties, objects and tags its body
    /// carries, all at once.
    pub async fn namespace_create(&self, ctx: &AuthContext, b: NamespaceBody) -> ApiResult<NamespaceDetail> {
        Self::metadefs_admin(ctx)?;
        check_name("namespace", &b.namespace, NAME_MAX)?;
        let visibility = b.visibility.unwrap_or_else(|| "private".into());
        check_visibility(&visibility)?;
        let owner = match b.owner.filter(|o| !o.is_empty()) {
            Some(o) => o,
            None => Self::project(ctx)?.to_string(),
        };
        let now = now_text();
        let ns = Namespace {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: b.namespace,
            display_name: b.display_name,
            description: b.description,
            visibility,
            protected: b.protected.unwrap_or(false),
            owner,
            created_at: now.clone(),
            updated_at: now,
        };
        let mut items = Vec::new();
        for (name, def) in &b.properties {
            check_name("property", name, NAME_MAX)?;
            items.push((ItemKind::Property, name.clone(), property_definition(name, def)?));
        }
        for o in &b.objects {
            let (name, def) = object_body(o)?;
            items.push((ItemKind::Object, name, def));
        }
        for t in &b.tags {
            items.push((ItemKind::Tag, tag_name(t)?, Value::Object(Map::new())));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some((kind, name, _)) = items.iter().find(|(k, n, _)| !seen.insert((k.as_str(), n.clone()))) {
            return Err(duplicate(kind.as_str(), name, &ns.namespace));
        }
        let mut associations = Vec::new();
        for a in b.resource_type_associations {
            check_name("resource type", &a.name, NAME_MAX)?;
            if associations.iter().any(|(n, _, _)| n == &a.name) {
                return Err(ApiError::conflict(format!("Resource type '{}' is associated twice.", a.name)));
            }
            associations.push((a.name, a.prefix, a.properties_target));
        }
        let created =
            self.store.namespace_create(NewNamespace { ns: &ns, items: &items, associations: &associations }).await;
        created.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict(format!("A namespace named '{}' already exists.", ns.namespace))
            } else {
                e.into()
            }
        })?;
        self.namespace_detail(ctx, &ns.namespace, None).await
    }

    /// A namespace with its contents; with `resource_type`, property names carry the
    /// prefix that type's association gives them.
    pub async fn namespace_detail(
        &self,
        ctx: &AuthContext,
        name: &str,
        resource_type: Option<&str>,
    ) -> ApiResult<NamespaceDetail> {
        let ns = self.namespace_visible(ctx, name).await?;
        let associations = self.store.associations(Some(&ns.id)).await?;
        let mut objects = self.store.items(&ns.id, ItemKind::Object).await?;
        let mut properties = self.store.items(&ns.id, ItemKind::Property).await?;
        let tags = self.store.items(&ns.id, ItemKind::Tag).await?;
        let prefix = resource_type
            .and_then(|rt| associations.iter().find(|a| a.resource_type == rt))
            .and_then(|a| a.prefix.clone())
            .unwrap_or_default();
        if !prefix.is_empty() {
            for p in &mut properties {
                p.name = format!("{prefix}{}", p.name);
            }
            for o in &mut objects {
                if let Some(Value::Object(props)) = o.body.get_mut("properties") {
                    *props = std::mem::take(props).into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)).collect();
                }
            }
        }
        Ok(NamespaceDetail { ns, associations, objects, properties, tags })
    }

    /// Replaces a namespace's own fields, as Glance's PUT: absent visibility and
    /// protection go back to private and unprotected; a new `namespace` renames it.
    pub async fn namespace_update(&self, ctx: &AuthContext, name: &str, b: NamespaceBody) -> ApiResult<Namespace> {
        let mut ns = self.namespace_managed(ctx, name).await?;
        check_name("namespace", &b.namespace, NAME_MAX)?;
        let visibility = b.visibility.unwrap_or_else(|| "private".into());
        check_visibility(&visibility)?;
        ns.namespace = b.namespace;
        ns.display_name = b.display_name;
        ns.description = b.description;
        ns.visibility = visibility;
        ns.protected = b.protected.unwrap_or(false);
        if let Some(owner) = b.owner.filter(|o| !o.is_empty()) {
            ns.owner = owner;
        }
        match self.store.namespace_update(&ns).await {
            Ok(true) => {}
            Ok(false) => return Err(ApiError::not_found("metadata definition namespace", name)),
            Err(e) if is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("A namespace named '{}' already exists.", ns.namespace)))
            }
            Err(e) => return Err(e.into()),
        }
        self.namespace_visible(ctx, &ns.namespace).await
    }

    pub async fn namespace_delete(&self, ctx: &AuthContext, name: &str) -> ApiResult<()> {
        let ns = self.namespace_managed(ctx, name).await?;
        Self::unprotected(&ns, "it")?;
        self.store.namespace_delete(&ns.id).await?;
        Ok(())
    }

    pub async fn metadef_items(&self, ctx: &AuthContext, ns: &str, kind: ItemKind) -> ApiResult<Vec<Item>> {
        let ns = self.namespace_visible(ctx, ns).await?;
        Ok(self.store.items(&ns.id, kind).await?)
    }

    pub async fn metadef_item(&self, ctx: &AuthContext, ns: &str, kind: ItemKind, name: &str) -> ApiResult<Item> {
        let ns = self.namespace_visible(ctx, ns).await?;
        self.store.item_fetch(&ns.id, kind, name).await?.ok_or_else(|| item_not_found(kind, name))
    }

    /// Checks an object's or property's body; the name and the stored definition.
    fn item_body(kind: ItemKind, body: &Value) -> ApiResult<(String, Value)> {
        match kind {
            ItemKind::Object => object_body(body),
            ItemKind::Property => property_body(body),
            ItemKind::Tag => {
                let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                check_name("tag", &name, TAG_MAX)?;
                Ok((name, Value::Object(Map::new())))
            }
        }
    }

    /// Creates one object, property or tag (a tag's name may come from the path).
    pub async fn metadef_item_create(
        &self,
        ctx: &AuthContext,
        ns_name: &str,
        kind: ItemKind,
        body: &Value,
    ) -> ApiResult<Item> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        let (name, def) = Self::item_body(kind, body)?;
        self.store
            .items_add(&ns.id, kind, &[(name.clone(), def)], false)
            .await
            .map_err(|e| or_duplicate(e, kind.as_str(), &name, &ns.namespace))?;
        self.store.item_fetch(&ns.id, kind, &name).await?.ok_or_else(|| item_not_found(kind, &name))
    }

    /// Replaces one object, property or tag (renaming it when the body names another).
    pub async fn metadef_item_update(
        &self,
        ctx: &AuthContext,
        ns_name: &str,
        kind: ItemKind,
        name: &str,
        body: &Value,
    ) -> ApiResult<Item> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        let (new_name, def) = Self::item_body(kind, body)?;
        match self.store.item_update(&ns.id, kind, name, &new_name, &def).await {
            Ok(true) => {}
            Ok(false) => return Err(item_not_found(kind, name)),
            Err(e) => return Err(or_duplicate(e, kind.as_str(), &new_name, &ns.namespace)),
        }
        self.store.item_fetch(&ns.id, kind, &new_name).await?.ok_or_else(|| item_not_found(kind, &new_name))
    }

    /// Deletes one item, or with `None` every item of the kind.
    pub async fn metadef_item_delete(
        &self,
        ctx: &AuthContext,
        ns_name: &str,
        kind: ItemKind,
        name: Option<&str>,
    ) -> ApiResult<()> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        Self::unprotected(&ns, &format!("its {}s", kind.as_str()))?;
        let gone = self.store.items_delete(&ns.id, kind, name).await?;
        match name {
            Some(name) if gone == 0 => Err(item_not_found(kind, name)),
            _ => Ok(()),
        }
    }

    /// Creates several tags at once: they replace the namespace's tags, or with
    /// `append` join them. A duplicate name changes nothing (409).
    pub async fn metadef_tags_create(
        &self,
        ctx: &AuthContext,
        ns_name: &str,
        b: TagsBody,
        append: bool,
    ) -> ApiResult<Vec<Item>> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        let mut names = Vec::new();
        for t in &b.tags {
            let name = tag_name(t)?;
            if names.iter().any(|(n, _)| n == &name) {
                return Err(duplicate("tag", &name, &ns.namespace));
            }
            names.push((name, Value::Object(Map::new())));
        }
        if append {
            let existing = self.store.items(&ns.id, ItemKind::Tag).await?;
            if let Some((name, _)) = names.iter().find(|(n, _)| existing.iter().any(|t| &t.name == n)) {
                return Err(duplicate("tag", name, &ns.namespace));
            }
        }
        self.store.items_add(&ns.id, ItemKind::Tag, &names, !append).await.map_err(|e| {
            // Only a tag added by another request meanwhile can still collide.
            if is_unique_violation(&e) {
                ApiError::conflict(format!(
                    "A tag of this request was added to namespace '{}' meanwhile.",
                    ns.namespace
                ))
            } else {
                e.into()
            }
        })?;
        let all = self.store.items(&ns.id, ItemKind::Tag).await?;
        Ok(all.into_iter().filter(|t| names.iter().any(|(n, _)| n == &t.name)).collect())
    }

    pub async fn resource_types(&self) -> ApiResult<Vec<ResourceType>> {
        Ok(self.store.resource_types().await?)
    }

    pub async fn associations(&self, ctx: &AuthContext, ns_name: &str) -> ApiResult<Vec<Association>> {
        let ns = self.namespace_visible(ctx, ns_name).await?;
        Ok(self.store.associations(Some(&ns.id)).await?)
    }

    pub async fn association_create(
        &self,
        ctx: &AuthContext,
        ns_name: &str,
        b: AssociationBody,
    ) -> ApiResult<Association> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        check_name("resource type", &b.name, NAME_MAX)?;
        self.store
            .association_add(&ns.id, &b.name, b.prefix.as_deref(), b.properties_target.as_deref())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ApiError::conflict(format!("Namespace '{}' is already associated with '{}'.", ns.namespace, b.name))
                } else {
                    e.into()
                }
            })?;
        let list = self.store.associations(Some(&ns.id)).await?;
        list.into_iter()
            .find(|a| a.resource_type == b.name)
            .ok_or_else(|| ApiError::not_found("resource type association", &b.name))
    }

    pub async fn association_delete(&self, ctx: &AuthContext, ns_name: &str, resource_type: &str) -> ApiResult<()> {
        let ns = self.namespace_managed(ctx, ns_name).await?;
        Self::unprotected(&ns, "its resource type associations")?;
        if self.store.association_delete(&ns.id, resource_type).await? {
            Ok(())
        } else {
            Err(ApiError::not_found("resource type association", resource_type))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn property_definitions_are_checked() {
        let ok =
            property_definition("p", &json!({"title": "T", "type": "string", "enum": ["a"], "name": "p"})).unwrap();
        assert_eq!(ok, json!({"title": "T", "type": "string", "enum": ["a"]}), "the name is not part of it");
        for bad in [
            json!({"type": "string"}),
            json!({"title": "T"}),
            json!({"title": "T", "type": "text"}),
            json!({"title": "T", "type": "string", "colour": 1}),
            json!({"title": "T", "type": "string", "enum": "a"}),
            json!({"title": "T", "type": "integer", "minimum": "1"}),
            json!({"title": "T", "type": "string", "maxLength": -1}),
            json!({"title": "T", "type": "array", "items": {"type": "text"}}),
            json!("string"),
        ] {
            assert!(property_definition("p", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects_keep_only_their_fields() {
        let (name, def) = object_body(&json!({
            "name": "o", "description": "d", "required": ["x"],
            "properties": {"x": {"title": "X", "type": "integer", "minimum": 0}},
            "schema": "/v2/schemas/metadefs/object"
        }))
        .unwrap();
        assert_eq!(name, "o");
        assert_eq!(def["properties"]["x"]["minimum"], 0);
        assert!(def.get("schema").is_none());
        assert!(object_body(&json!({"name": "o", "required": [1]})).is_err());
        assert!(object_body(&json!({"name": "o", "properties": {"x": {"type": "integer"}}})).is_err());
        assert!(object_body(&json!({"name": ""})).is_err());
        assert!(object_body(&json!({"name": "o", "extra": 1})).is_err());
    }
}
