//! Flavors: public ones for everyone, private ones for the projects given access.

use super::AppResult;
use super::{as_int, bad, conflict, not_found, require_admin, ComputeService};
use crate::store::Flavor;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;

impl ComputeService {
    /// Whether the caller may see (and boot from) a flavor.
    pub(crate) async fn flavor_visible(&self, ctx: &AuthContext, f: &Flavor) -> AppResult<bool> {
        if f.is_public || ctx.is_admin() {
            return Ok(true);
        }
        let Some(p) = ctx.project_id() else { return Ok(false) };
        Ok(self.store.flavor_access(&f.id).await?.iter().any(|x| x == p))
    }

    pub async fn flavor_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Flavor> {
        match self.store.flavor_get(id).await? {
            Some(f) if self.flavor_visible(ctx, &f).await? => Ok(f),
            _ => Err(not_found(format!("Flavor {id} could not be found."))),
        }
    }

    /// Flavors the caller sees; `is_public`: Some(true) public ones and the private
    /// ones the caller's project was given (as Nova), Some(false) private only
    /// (admins), None both.
    pub async fn flavor_list(&self, ctx: &AuthContext, is_public: Option<bool>) -> AppResult<Vec<Flavor>> {
        let shared: Vec<String> = match ctx.project_id() {
            Some(p) => self.store.flavors_shared_with(p).await?,
            None => Vec::new(),
        };
        let mut out: Vec<Flavor> = self
            .store
            .flavor_list()
            .await?
            .into_iter()
            .filter(|f| match is_public {
                Some(true) => f.is_public || shared.contains(&f.id),
                Some(false) => !f.is_public && (ctx.is_admin() || shared.contains(&f.id)),
                None => f.is_public || ctx.is_admin() || shared.contains(&f.id),
            })
            .collect();
        // Nova orders by flavorid by default... by memory_mb then id for the detail view.
        out.sort_by(|a, b| (a.ram, &a.id).cmp(&(b.ram, &b.id)));
        Ok(out)
    }

    pub async fn flavor_create(&self, ctx: &AuthContext, body: &Map<String, Value>) -> AppResult<Flavor> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:create")?;
        let name = body.get("name").and_then(Value::as_str).map(str::trim).unwrap_or("");
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(bad("Invalid input for field/attribute name: a flavor needs a name of 1-255 characters."));
        }
        let int = |k: &str, min: i64, required: bool| -> AppResult<i64> {
            match body.get(k) {
                None | Some(Value::Null) if !required => Ok(0),
                None | Some(Value::Null) => Err(bad(format!("Invalid input: '{k}' is a required property."))),
                Some(Value::String(s)) if s.is_empty() && !required => Ok(0),
                Some(v) => as_int(v)
                    .filter(|n| *n >= min && *n <= i64::from(i32::MAX))
                    .ok_or_else(|| bad(format!("Invalid input for field/attribute {k}: must be an integer >= {min}."))),
            }
        };
        let id = match body.get("id") {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            // Nova's pattern: letters, digits, '.', '_', '-' and inner spaces (no '/',
            // which would make the flavor's URL another one's).
            Some(Value::String(s))
                if !s.trim().is_empty()
                    && s.len() <= 255
                    && s.trim() == s
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ')) =>
            {
                s.to_string()
            }
            Some(v) if v.is_i64() => v.to_string(),
            _ => return Err(bad("Invalid input for field/attribute id.")),
        };
        let rxtx = body.get("rxtx_factor").and_then(Value::as_f64).unwrap_or(1.0);
        if rxtx <= 0.0 {
            return Err(bad("Invalid input for field/attribute rxtx_factor: must be positive."));
        }
        let flavor = Flavor {
            id: id.clone(),
            name: name.to_string(),
            vcpus: int("vcpus", 1, true)?,
            ram: int("ram", 1, true)?,
            disk: int("disk", 0, true)?,
            ephemeral: int("OS-FLV-EXT-DATA:ephemeral", 0, false)?,
            swap: int("swap", 0, false)?,
            is_public: match body.get("os-flavor-access:is_public") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => !s.eq_ignore_ascii_case("false"),
                _ => return Err(bad("Invalid input for field/attribute os-flavor-access:is_public.")),
            },
            disabled: false,
            description: body.get("description").and_then(Value::as_str).map(str::to_string),
            extra_specs: Map::new(),
        };
        match self.store.flavor_insert(&flavor).await {
            Ok(()) => Ok(flavor),
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                Err(conflict(format!("Flavor with name {name} or ID {id} already exists.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn flavor_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:delete")?;
        if self.store.flavor_delete(id).await? {
            Ok(())
        } else {
            Err(not_found(format!("Flavor {id} could not be found.")))
        }
    }

    pub async fn flavor_description(&self, ctx: &AuthContext, id: &str, d: Option<String>) -> AppResult<Flavor> {
        require_admin(ctx, "os_compute_api:os-flavor-manage:update")?;
        let mut f = self.flavor_get(ctx, id).await?;
        f.description = d;
        self.store.flavor_update(&f).await?;
        Ok(f)
    }

    /// Sets (merges) extra specs, or removes one (`value` None).
    pub async fn flavor_extra_specs(
        &self,
        ctx: &AuthContext,
        id: &str,
        set: Map<String, Value>,
        remove: Option<&str>,
    ) -> AppResult<Flavor> {
        require_admin(ctx, "os_compute_api:os-flavor-extra-specs:update")?;
        let mut f = self.flavor_get(ctx, id).await?;
        for (k, v) in set {
            if k.is_empty() || k.len() > 255 {
                return Err(bad("Extra spec keys must be 1-255 characters."));
            }
            let v = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(bad(format!("Invalid value for extra spec {k}: must be a string."))),
            };
            f.extra_specs.insert(k, Value::String(v));
        }
        if let Some(k) = remove {
            if f.extra_specs.remove(k).is_none() {
                return Err(not_found(format!("Flavor {id} has no extra specs with key {k}.")));
            }
        }
        self.store.flavor_update(&f).await?;
        Ok(f)
    }

    pub async fn flavor_access_list(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<String>> {
        let f = self.flavor_get(ctx, id).await?;
        if f.is_public {
            return Err(not_found("Access list not available for public flavors."));
        }
        Ok(self.store.flavor_access(id).await?)
    }

    pub async fn flavor_access_change(
        &self,
        ctx: &AuthContext,
        id: &str,
        project: &str,
        grant: bool,
    ) -> AppResult<Vec<String>> {
        require_admin(ctx, "os_compute_api:os-flavor-access")?;
        let f = self.flavor_get(ctx, id).await?;
        if f.is_public {
            return Err(conflict("Can not add access to a public flavor."));
        }
        let changed = self.store.flavor_access_set(id, project, grant).await?;
        if !changed && grant {
            return Err(conflict(format!(
                "Flavor access already exists for flavor {id} and project {project} combination."
            )));
        }
        if !changed {
            return Err(not_found(format!("Flavor access not found for {id} / {project} combination.")));
        }
        Ok(self.store.flavor_access(id).await?)
    }
}
