//! QoS specs (admins): named limits associated with volume types. Specs of a
//! `front-end` or `both` consumer travel with a volume's connection info
//! (`data.qos_specs`), and the compute host applies the ones it knows to the guest's
//! disk (libvirt's `<iotune>`: `total_bytes_sec`, `read_iops_sec`, ...).

use super::{bad, not_found, require_admin, AppResult, Error, VolumeService};
use crate::store::{QosSpecs, Volume};
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

const CONSUMERS: &[&str] = &["front-end", "back-end", "both"];

fn check_specs(specs: &Map<String, Value>) -> AppResult<()> {
    for (k, v) in specs {
        if k.is_empty() || k.len() > 255 || v.as_str().is_none_or(|s| s.len() > 255) {
            return Err(bad(format!("Invalid QoS spec {k}: keys and string values of 1-255 characters.")));
        }
    }
    Ok(())
}

impl VolumeService {
    /// `POST /qos-specs`: `name`, `consumer` (default `back-end`) and the specs.
    pub async fn qos_create(&self, ctx: &AuthContext, mut body: Map<String, Value>) -> AppResult<QosSpecs> {
        require_admin(ctx, "volume_extension:qos_specs_manage:create")?;
        let name = match body.remove("name") {
            Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => n.trim().to_string(),
            _ => return Err(bad("QoS specs need a name of 1-255 characters.")),
        };
        let consumer = match body.remove("consumer") {
            None => "back-end".to_string(),
            Some(Value::String(c)) if CONSUMERS.contains(&c.as_str()) => c,
            Some(c) => return Err(bad(format!("Invalid consumer {c}: use front-end, back-end or both."))),
        };
        check_specs(&body)?;
        let q = QosSpecs { id: uuid::Uuid::new_v4().to_string(), name, consumer, specs: body, created_at: now_text() };
        if !self.store.qos_insert(&q).await? {
            return Err(Error::InvalidState(format!("QoS Specs {} already exists.", q.name)));
        }
        Ok(q)
    }

    pub async fn qos_list(&self, ctx: &AuthContext) -> AppResult<Vec<QosSpecs>> {
        require_admin(ctx, "volume_extension:qos_specs_manage:get_all")?;
        Ok(self.store.qos_list().await?)
    }

    pub async fn qos_get(&self, ctx: &AuthContext, id: &str) -> AppResult<QosSpecs> {
        require_admin(ctx, "volume_extension:qos_specs_manage:get")?;
        self.store.qos_get(id).await?.ok_or_else(|| not_found("QoS specs", id))
    }

    /// Adds or changes keys; answers the keys given.
    pub async fn qos_set_keys(
        &self,
        ctx: &AuthContext,
        id: &str,
        keys: Map<String, Value>,
    ) -> AppResult<Map<String, Value>> {
        let mut q = self.qos_get(ctx, id).await?;
        check_specs(&keys)?;
        if keys.contains_key("name") || keys.contains_key("consumer") {
            return Err(bad("Only specs can be changed: name and consumer stay as they were made."));
        }
        q.specs.extend(keys.clone());
        self.store.qos_save_specs(&q).await?;
        Ok(keys)
    }

    /// Removes keys; every one must be there.
    pub async fn qos_unset_keys(&self, ctx: &AuthContext, id: &str, keys: &[String]) -> AppResult<()> {
        let mut q = self.qos_get(ctx, id).await?;
        for k in keys {
            if q.specs.remove(k).is_none() {
                return Err(not_found(&format!("QoS spec key of specs {id}:"), k));
            }
        }
        self.store.qos_save_specs(&q).await?;
        Ok(())
    }

    /// Deletes QoS specs; ones still associated only with `force` (the associations go).
    pub async fn qos_delete(&self, ctx: &AuthContext, id: &str, force: bool) -> AppResult<()> {
        let q = self.qos_get(ctx, id).await?;
        if !force && !self.qos_types(&q.id).await?.is_empty() {
            return Err(bad(format!("QoS Specs {id} is still associated with entities.")));
        }
        self.store.qos_delete(&q.id).await?;
        Ok(())
    }

    /// The types associated with QoS specs `id`: (type id, type name).
    pub async fn qos_associations(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<(String, String)>> {
        let q = self.qos_get(ctx, id).await?;
        self.qos_types(&q.id).await
    }

    async fn qos_types(&self, id: &str) -> AppResult<Vec<(String, String)>> {
        let types = self.store.type_list().await?;
        Ok(types.into_iter().filter(|t| t.qos_specs_id == id).map(|t| (t.id, t.name)).collect())
    }

    /// Associates QoS specs `id` with type `type_id` (a type has at most one).
    pub async fn qos_associate(&self, ctx: &AuthContext, id: &str, type_id: &str) -> AppResult<()> {
        let q = self.qos_get(ctx, id).await?;
        let t = self.store.type_get(type_id).await?.ok_or_else(|| not_found("Volume type", type_id))?;
        if !self.store.type_set_qos(&t.id, &q.id).await? {
            return Err(bad(format!("Type {} is already associated with another qos specs.", t.id)));
        }
        Ok(())
    }

    /// Ends the association of QoS specs `id` with type `type_id`, or with every type.
    pub async fn qos_disassociate(&self, ctx: &AuthContext, id: &str, type_id: Option<&str>) -> AppResult<()> {
        let q = self.qos_get(ctx, id).await?;
        match type_id {
            Some(tid) => {
                let t = self.store.type_get(tid).await?.ok_or_else(|| not_found("Volume type", tid))?;
                if t.qos_specs_id != q.id {
                    return Err(not_found(&format!("Association of QoS specs {id} with type"), tid));
                }
                self.store.type_set_qos(&t.id, "").await?;
            }
            None => self.store.qos_disassociate_all(&q.id).await?,
        }
        Ok(())
    }

    /// The specs the compute host applies to volume `v`'s disk: those of its type's
    /// QoS specs when their consumer is `front-end` or `both`.
    pub(crate) async fn front_end_qos(&self, v: &Volume) -> AppResult<Option<Map<String, Value>>> {
        let Some(t) = self.store.type_get(&v.type_id).await? else { return Ok(None) };
        if t.qos_specs_id.is_empty() {
            return Ok(None);
        }
        let Some(q) = self.store.qos_get(&t.qos_specs_id).await? else { return Ok(None) };
        Ok((q.consumer != "back-end").then_some(q.specs))
    }
}
