//! Ports: a node's NICs by MAC address. A MAC belongs to one port in the whole cloud.

use super::{bad, require_admin, AppResult, BaremetalService, Error};
use crate::store::Port;
use serde_json::{Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::{is_unique_violation, now_text};

/// A MAC address in canonical form (lower case, colons), or why it is not one.
pub fn canonical_mac(text: &str) -> AppResult<String> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok {
        return Err(bad(format!("Expected a MAC address but received {text}.")));
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

fn object(v: &Value, key: &str) -> AppResult<Map<String, Value>> {
    match v {
        Value::Object(o) => Ok(o.clone()),
        Value::Null => Ok(Map::new()),
        other => Err(bad(format!("{key} must be an object, not {other}."))),
    }
}

impl BaremetalService {
    pub async fn port_get(&self, ctx: &AuthContext, key: &str) -> AppResult<Port> {
        require_admin(ctx, "baremetal:port:get")?;
        self.store.port_get(key).await?.ok_or_else(|| Error::NotFound(format!("Port {key} could not be found.")))
    }

    /// Every port, or those of node `node` (an id or a name).
    pub async fn port_list(&self, ctx: &AuthContext, node: Option<&str>) -> AppResult<Vec<Port>> {
        require_admin(ctx, "baremetal:port:list")?;
        match node {
            Some(key) => {
                let n = self.node_lookup(key).await?;
                Ok(self.store.port_list(Some(&n.id)).await?)
            }
            None => Ok(self.store.port_list(None).await?),
        }
    }

    pub async fn port_create(&self, ctx: &AuthContext, body: &Map<String, Value>) -> AppResult<Port> {
        require_admin(ctx, "baremetal:port:create")?;
        let node_key = body
            .get("node_uuid")
            .or_else(|| body.get("node_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("A port needs node_uuid."))?;
        let node = self.node_lookup(node_key).await.map_err(|_| bad(format!("Node {node_key} could not be found.")))?;
        let address =
            canonical_mac(body.get("address").and_then(Value::as_str).ok_or_else(|| bad("A port needs an address."))?)?;
        let id = match body.get("uuid").and_then(Value::as_str) {
            Some(u) => {
                uuid::Uuid::parse_str(u).map_err(|_| bad(format!("Expected a UUID but received {u}.")))?.to_string()
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        let mut p = Port {
            id,
            address,
            node_id: node.id,
            extra: Map::new(),
            pxe_enabled: true,
            local_link_connection: Map::new(),
            physical_network: None,
            created_at: now_text(),
            updated_at: None,
        };
        apply(&mut p, body, &["node_uuid", "node_id", "address", "uuid"])?;
        match self.store.port_insert(&p).await {
            Ok(()) => Ok(p),
            Err(e) if is_unique_violation(&e) => {
                Err(Error::Conflict(format!("A port with MAC address {} already exists.", p.address)))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a JSON patch of top-level fields (and keys of `extra` and
    /// `local_link_connection`).
    pub async fn port_patch(&self, ctx: &AuthContext, key: &str, ops: &[Value]) -> AppResult<Port> {
        let mut p = self.port_get(ctx, key).await?;
        for op in ops {
            let kind = op["op"].as_str().ok_or_else(|| bad("Each patch operation needs an op."))?;
            let path = op["path"].as_str().ok_or_else(|| bad("Each patch operation needs a path."))?;
            let value = match kind {
                "add" | "replace" => {
                    op.get("value").cloned().ok_or_else(|| bad(format!("'{kind}' on {path} needs a value.")))?
                }
                "remove" => Value::Null,
                other => return Err(bad(format!("Unsupported patch operation {other}."))),
            };
            let parts: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').collect();
            match parts.as_slice() {
                ["address"] => {
                    p.address = canonical_mac(value.as_str().ok_or_else(|| bad("address must be a string."))?)?
                }
                ["node_uuid"] => {
                    let n = value.as_str().ok_or_else(|| bad("node_uuid must be a string."))?;
                    p.node_id = self.node_lookup(n).await.map_err(|_| bad(format!("Node {n} could not be found.")))?.id;
                }
                [field @ ("extra" | "local_link_connection"), sub] => {
                    let m = if *field == "extra" { &mut p.extra } else { &mut p.local_link_connection };
                    if value.is_null() {
                        m.remove(*sub);
                    } else {
                        m.insert(sub.to_string(), value);
                    }
                }
                [field] => apply(&mut p, &Map::from_iter([(field.to_string(), value)]), &[])?,
                _ => return Err(bad(format!("'{path}' can not be updated."))),
            }
        }
        match self.store.port_update(&mut p).await {
            Ok(true) => Ok(p),
            Ok(false) => Err(Error::NotFound(format!("Port {key} could not be found."))),
            Err(e) if is_unique_violation(&e) => {
                Err(Error::Conflict(format!("A port with MAC address {} already exists.", p.address)))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn port_delete(&self, ctx: &AuthContext, key: &str) -> AppResult<()> {
        let p = self.port_get(ctx, key).await?;
        let node = self.node_lookup(&p.node_id).await?;
        if node.provision_state == crate::model::ProvisionState::Active && !node.maintenance {
            return Err(Error::Conflict(format!(
                "Port {} belongs to active node {}; undeploy it first.",
                p.id, node.id
            )));
        }
        self.store.port_delete(&p.id).await?;
        Ok(())
    }
}

/// Writes the settable fields of `body` (other than `skip`) onto `p`.
fn apply(p: &mut Port, body: &Map<String, Value>, skip: &[&str]) -> AppResult<()> {
    for (k, v) in body {
        if skip.contains(&k.as_str()) {
            continue;
        }
        match k.as_str() {
            "extra" => p.extra = object(v, k)?,
            "local_link_connection" => p.local_link_connection = object(v, k)?,
            "pxe_enabled" => p.pxe_enabled = v.as_bool().ok_or_else(|| bad("pxe_enabled must be a boolean."))?,
            "physical_network" => {
                p.physical_network = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    _ => return Err(bad("physical_network must be a string.")),
                }
            }
            "is_smartnic" if v == &Value::Bool(false) => {}
            other => return Err(bad(format!("Unknown attribute for port: {other}."))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_canonical() {
        assert_eq!(canonical_mac("52:54:00:AB:cd:01").unwrap(), "52:54:00:ab:cd:01");
        assert_eq!(canonical_mac("52-54-00-ab-cd-01").unwrap(), "52:54:00:ab:cd:01");
        for bad in ["52:54:00:ab:cd", "52:54:00:ab:cd:0g", "", "525400abcd01"] {
            assert!(canonical_mac(bad).is_err(), "{bad}");
        }
    }
}
