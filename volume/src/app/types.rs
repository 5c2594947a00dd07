//! Volume types: named sets of extra specs, which pick the backends their volumes go to
//! (`app::scheduler`).
//! Admins manage them; everyone sees the public ones.

use super::{bad, not_found, require_admin, AppResult, Error, VolumeService, DEFAULT_TYPE};
use crate::store::VolumeType;
use serde::Deserialize;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// `POST /types` and `PUT /types/{id}` bodies (`volume_type`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(rename = "os-volume-type-access:is_public", alias = "is_public")]
    pub is_public: Option<bool>,
    pub extra_specs: Option<Map<String, Value>>,
}

/// Whether volumes of type `t` are multiattach: its `multiattach` extra spec says
/// `<is> True` (as Cinder's), or plainly `True`.
pub fn multiattach(t: &VolumeType) -> bool {
    t.extra_specs.get("multiattach").and_then(Value::as_str).is_some_and(|s| {
        let s = s.trim();
        let s = s.strip_prefix("<is>").map(str::trim).unwrap_or(s);
        s.eq_ignore_ascii_case("true")
    })
}

fn check_specs(specs: &Map<String, Value>) -> AppResult<()> {
    for (k, v) in specs {
        if k.is_empty() || k.len() > 255 || !v.is_string() {
            return Err(bad(format!("Invalid extra spec {k}: keys of 1-255 characters, string values.")));
        }
    }
    Ok(())
}

impl VolumeService {
    pub(crate) async fn ensure_default_type(&self) -> AppResult<()> {
        if self.store.type_get(DEFAULT_TYPE).await?.is_none() {
            self.store
                .type_insert(&VolumeType {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: DEFAULT_TYPE.into(),
                    description: "Default Volume Type".into(),
                    is_public: true,
                    extra_specs: Map::new(),
                    created_at: now_text(),
                    qos_specs_id: String::new(),
                })
                .await?;
        }
        Ok(())
    }

    pub async fn type_create(&self, ctx: &AuthContext, req: TypeRequest) -> AppResult<VolumeType> {
        require_admin(ctx, "volume_extension:types_manage")?;
        let name = req.name.unwrap_or_default().trim().to_string();
        if name.is_empty() || name.len() > 255 {
            return Err(bad("A volume type needs a name of 1-255 characters."));
        }
        let extra_specs = req.extra_specs.unwrap_or_default();
        check_specs(&extra_specs)?;
        let t = VolumeType {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            description: req.description.unwrap_or_default(),
            is_public: req.is_public.unwrap_or(true),
            extra_specs,
            created_at: now_text(),
            qos_specs_id: String::new(),
        };
        if !self.store.type_insert(&t).await? {
            return Err(Error::InvalidState(format!("Volume Type {} already exists.", t.name)));
        }
        Ok(t)
    }

    /// Every type's name by id (to show a volume's type by name, as Cinder does).
    pub async fn type_names(&self) -> AppResult<std::collections::HashMap<String, String>> {
        Ok(self.store.type_list().await?.into_iter().map(|t| (t.id, t.name)).collect())
    }

    /// The types the caller may use: every one for an admin, else the public ones and
    /// the private ones given to the caller's project.
    pub async fn type_list(&self, ctx: &AuthContext) -> AppResult<Vec<VolumeType>> {
        if ctx.is_admin() {
            return Ok(self.store.type_list().await?);
        }
        match ctx.project_id() {
            Some(p) => Ok(self.store.type_list_for(p).await?),
            None => Ok(self.store.type_list().await?.into_iter().filter(|t| t.is_public).collect()),
        }
    }

    /// A type by id or name, if the caller may see it (a private type another
    /// project was given is not found, as Cinder answers).
    pub async fn type_get(&self, ctx: &AuthContext, id: &str) -> AppResult<VolumeType> {
        match self.store.type_get(id).await? {
            Some(t) if t.is_public || ctx.is_admin() => Ok(t),
            Some(t) if ctx.project_id().is_some() => {
                let given = self.store.type_access_list(&t.id).await?;
                if given.iter().any(|p| Some(p.as_str()) == ctx.project_id()) {
                    Ok(t)
                } else {
                    Err(not_found("Volume type", id))
                }
            }
            _ => Err(not_found("Volume type", id)),
        }
    }

    /// The projects a private type was given (admins; a public type has no such list).
    pub async fn type_access_list(&self, ctx: &AuthContext, id: &str) -> AppResult<(String, Vec<String>)> {
        require_admin(ctx, "volume_extension:volume_type_access")?;
        let t = self.type_get(ctx, id).await?;
        if t.is_public {
            return Err(not_found("Volume type access list of the public type", id));
        }
        Ok((t.id.clone(), self.store.type_access_list(&t.id).await?))
    }

    /// Gives (`add`) or takes a private type from `project` (admins).
    pub async fn type_access_change(&self, ctx: &AuthContext, id: &str, project: &str, add: bool) -> AppResult<()> {
        require_admin(ctx, "volume_extension:volume_type_access:addProjectAccess")?;
        let t = self.type_get(ctx, id).await?;
        if t.is_public {
            return Err(bad("Invalid volume type: Type access modification is not applicable to public volume type."));
        }
        if project.is_empty() || project.len() > 64 {
            return Err(bad("A project ID of 1-64 characters is needed."));
        }
        if add {
            if !self.store.type_access_add(&t.id, project).await? {
                return Err(Error::InvalidState(format!(
                    "Volume type access for {} / {project} combination already exists.",
                    t.id
                )));
            }
        } else if !self.store.type_access_remove(&t.id, project).await? {
            return Err(not_found(&format!("Volume type access for project {project} of type"), &t.id));
        }
        Ok(())
    }

    pub async fn type_update(&self, ctx: &AuthContext, id: &str, req: TypeRequest) -> AppResult<VolumeType> {
        require_admin(ctx, "volume_extension:types_manage")?;
        let mut t = self.type_get(ctx, id).await?;
        if let Some(n) = req.name {
            let n = n.trim().to_string();
            if n.is_empty() || n.len() > 255 {
                return Err(bad("A volume type needs a name of 1-255 characters."));
            }
            t.name = n;
        }
        if let Some(d) = req.description {
            t.description = d;
        }
        if let Some(p) = req.is_public {
            t.is_public = p;
        }
        if !self.store.type_update(&t).await? {
            return Err(Error::InvalidState(format!("Volume Type {} already exists.", t.name)));
        }
        Ok(t)
    }

    pub async fn type_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_admin(ctx, "volume_extension:types_manage")?;
        let t = self.type_get(ctx, id).await?;
        if t.name == DEFAULT_TYPE {
            return Err(bad("The default volume type cannot be deleted."));
        }
        if !self.store.type_delete(&t.id).await? {
            return Err(bad(format!("Target volume type {} is still in use.", t.name)));
        }
        Ok(())
    }

    /// Adds or changes extra specs; answers the type's specs.
    pub async fn type_specs_set(
        &self,
        ctx: &AuthContext,
        id: &str,
        specs: Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        require_admin(ctx, "volume_extension:types_extra_specs:create")?;
        check_specs(&specs)?;
        let mut t = self.type_get(ctx, id).await?;
        t.extra_specs.extend(specs);
        self.store.type_update(&t).await?;
        Ok(t.extra_specs)
    }

    pub async fn type_spec_unset(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        require_admin(ctx, "volume_extension:types_extra_specs:delete")?;
        let mut t = self.type_get(ctx, id).await?;
        if t.extra_specs.remove(key).is_none() {
            return Err(not_found("Volume type extra spec", key));
        }
        self.store.type_update(&t).await?;
        Ok(())
    }
}
