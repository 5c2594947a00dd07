//! Group types (3.11+, Cinder's generic volume groups): admins make them, with group
//! specs; every project sees the public ones. Groups themselves are not offered yet,
//! so a group type only describes; nothing is made of it.

use super::volumes::check_metadata;
use super::{bad, not_found, require_admin, AppResult, Error, VolumeService};
use crate::store::GroupType;
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// `POST`/`PUT /group_types[/{id}]` (`group_type`).
#[derive(Debug, Default, Deserialize)]
pub struct GroupTypeRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_public: Option<Value>,
    pub group_specs: Option<Map<String, Value>>,
}

fn check_name(name: &str) -> AppResult<()> {
    if name.trim().is_empty() || name.chars().count() > 255 {
        return Err(bad("A group type needs a name of 1-255 characters."));
    }
    Ok(())
}

impl VolumeService {
    pub async fn group_type_create(&self, ctx: &AuthContext, req: GroupTypeRequest) -> AppResult<GroupType> {
        require_admin(ctx, "group:group_types_manage")?;
        let name = req.name.unwrap_or_default().trim().to_string();
        check_name(&name)?;
        let group_specs = req.group_specs.unwrap_or_default();
        check_metadata(&group_specs)?;
        let description = req.description.unwrap_or_default();
        if description.chars().count() > 255 {
            return Err(bad("A group type's description has at most 255 characters."));
        }
        let t = GroupType {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            description,
            is_public: super::optional_flag("is_public", req.is_public.as_ref())?.unwrap_or(true),
            group_specs,
            created_at: now_text(),
        };
        if !self.store.group_type_insert(&t).await? {
            return Err(Error::InvalidState(format!("Group Type {} already exists.", t.name)));
        }
        Ok(t)
    }

    /// The group types the caller sees: every one for an admin (`is_public` filters:
    /// `true`, `false`, or `None` for all), the public ones for everyone else.
    pub async fn group_type_list(&self, ctx: &AuthContext, public: Option<&str>) -> AppResult<Vec<GroupType>> {
        let mut all = self.store.group_type_list().await?;
        let wanted = match public.map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => None,
            Some(v) => Some(
                stratus_common::http::pagination::parse_bool(v)
                    .ok_or_else(|| bad(format!("Invalid is_public filter '{v}'.")))?,
            ),
        };
        if !ctx.is_admin() {
            all.retain(|t| t.is_public);
        }
        if let Some(w) = wanted {
            all.retain(|t| t.is_public == w);
        }
        Ok(all)
    }

    /// A group type by id or name, if the caller may see it.
    pub async fn group_type_get(&self, ctx: &AuthContext, id: &str) -> AppResult<GroupType> {
        match self.store.group_type_get(id).await? {
            Some(t) if t.is_public || ctx.is_admin() => Ok(t),
            _ => Err(not_found("Group type", id)),
        }
    }

    /// Changes a group type (admins); `group_specs` in the body merges into its specs.
    pub async fn group_type_update(&self, ctx: &AuthContext, id: &str, req: GroupTypeRequest) -> AppResult<GroupType> {
        require_admin(ctx, "group:group_types_manage")?;
        let mut t = self.group_type_get(ctx, id).await?;
        if let Some(n) = req.name {
            check_name(&n)?;
            t.name = n.trim().to_string();
        }
        if let Some(d) = req.description {
            t.description = d;
        }
        if let Some(p) = super::optional_flag("is_public", req.is_public.as_ref())? {
            t.is_public = p;
        }
        if let Some(specs) = req.group_specs {
            check_metadata(&specs)?;
            t.group_specs.extend(specs);
        }
        if !self.store.group_type_save(&t).await? {
            return Err(Error::InvalidState(format!("Group Type {} already exists.", t.name)));
        }
        Ok(t)
    }

    pub async fn group_type_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_admin(ctx, "group:group_types_manage")?;
        let t = self.group_type_get(ctx, id).await?;
        self.store.group_type_delete(&t.id).await?;
        Ok(())
    }

    /// Sets (merging) group specs; answers those the request set.
    pub async fn group_specs_set(
        &self,
        ctx: &AuthContext,
        id: &str,
        specs: Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        require_admin(ctx, "group:group_types_specs")?;
        check_metadata(&specs)?;
        let mut t = self.group_type_get(ctx, id).await?;
        t.group_specs.extend(specs.clone());
        self.store.group_type_save(&t).await?;
        Ok(specs)
    }

    /// Removes one group spec.
    pub async fn group_spec_unset(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        require_admin(ctx, "group:group_types_specs")?;
        let mut t = self.group_type_get(ctx, id).await?;
        if t.group_specs.remove(key).is_none() {
            return Err(not_found("Group type spec", key));
        }
        self.store.group_type_save(&t).await?;
        Ok(())
    }
}
