//! Nodes as requests see them: enrolment, changes by JSON patch, and the requests that
//! give the conductor work (provisioning verbs and power), which answer at once and
//! leave the node busy until the conductor is done.

use super::{bad, require_admin, AppResult, BaremetalService, Error};
use crate::model::{BootDevice, HardwareType, PowerTarget, ProvisionState, Verb, Work};
use crate::store::Node;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::is_unique_violation;

/// Fields a node is created with or patched in, besides the three objects.
const TEXT_FIELDS: &[&str] = &["name", "driver", "resource_class", "description", "owner", "lessee", "instance_uuid"];
const OBJECT_FIELDS: &[&str] = &["driver_info", "properties", "extra", "instance_info"];
/// Interfaces a node shows; a request may name them only with the value it would get.
pub const FIXED_INTERFACES: &[(&str, &str)] = &[
    ("bios_interface", "no-bios"),
    ("console_interface", "no-console"),
    ("network_interface", "noop"),
    ("raid_interface", "no-raid"),
    ("rescue_interface", "no-rescue"),
    ("storage_interface", "noop"),
    ("vendor_interface", "no-vendor"),
];

/// The interfaces of a node of `hardware` that follow from it.
pub fn hardware_interfaces(hardware: HardwareType) -> [(&'static str, &'static str); 4] {
    let p = hardware.power_interface();
    let inspect = match hardware {
        HardwareType::Redfish => "redfish",
        HardwareType::Ipmi => "no-inspect",
        HardwareType::Fake => "fake",
    };
    let boot = match hardware {
        HardwareType::Fake => "fake",
        _ => "ipxe",
    };
    [("power_interface", p), ("management_interface", p), ("inspect_interface", inspect), ("boot_interface", boot)]
}

pub(crate) fn hardware_of(n: &Node) -> AppResult<HardwareType> {
    HardwareType::parse(&n.driver).ok_or_else(|| bad(format!("The node's driver {} is not enabled.", n.driver)))
}

/// A valid node name: a host name's characters (RFC 3986 unreserved), not a UUID.
fn check_name(name: &str) -> AppResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        && uuid::Uuid::parse_str(name).is_err();
    if ok {
        Ok(())
    } else {
        Err(bad(format!("Expected a logical name but received {name}.")))
    }
}

/// A node's patchable fields as one JSON document (what a JSON patch applies to).
fn patchable(n: &Node) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(n.name));
    m.insert("driver".into(), json!(n.driver));
    m.insert("driver_info".into(), Value::Object(n.driver_info.clone()));
    m.insert("properties".into(), Value::Object(n.properties.clone()));
    m.insert("extra".into(), Value::Object(n.extra.clone()));
    m.insert("instance_info".into(), Value::Object(n.instance_info.clone()));
    m.insert("instance_uuid".into(), json!(n.instance_uuid));
    m.insert("resource_class".into(), json!(n.resource_class));
    m.insert("description".into(), json!(n.description));
    m.insert("owner".into(), json!(n.owner));
    m.insert("lessee".into(), json!(n.lessee));
    m.insert("deploy_interface".into(), json!(n.deploy_interface));
    m
}

/// Writes fields from `m` (a create body or a patched document) onto `n`, checking each.
fn apply_fields(n: &mut Node, m: &Map<String, Value>) -> AppResult<()> {
    for (k, v) in m {
        let key = k.as_str();
        if TEXT_FIELDS.contains(&key) {
            let text = match v {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => return Err(bad(format!("{key} must be a string, not {other}."))),
            };
            match key {
                "name" => {
                    if let Some(t) = &text {
                        check_name(t)?;
                    }
                    n.name = text;
                }
                "driver" => {
                    let d = text.ok_or_else(|| bad("A node needs a driver."))?;
                    let hw = HardwareType::parse(&d).ok_or_else(|| {
                        bad(format!("Cannot load specified driver: {d}. Enabled: redfish, ipmi, fake-hardware."))
                    })?;
                    if !hw.deploy_interfaces().contains(&n.deploy_interface.as_str()) {
                        n.deploy_interface = hw.deploy_interfaces()[0].to_string();
                    }
                    n.driver = d;
                }
                "resource_class" => {
                    if text.as_ref().is_some_and(|t| t.len() > 80) {
                        return Err(bad("resource_class is at most 80 characters."));
                    }
                    n.resource_class = text;
                }
                "description" => n.description = text,
                "owner" => n.owner = text,
                "lessee" => n.lessee = text,
                "instance_uuid" => n.instance_uuid = text,
                _ => unreachable!(),
            }
        } else if OBJECT_FIELDS.contains(&key) {
            let obj = match v {
                Value::Object(o) => o.clone(),
                Value::Null => Map::new(),
                other => return Err(bad(format!("{key} must be an object, not {other}."))),
            };
            match key {
                "driver_info" => n.driver_info = obj,
                "properties" => n.properties = obj,
                "extra" => n.extra = obj,
                _ => n.instance_info = obj,
            }
        } else if key == "deploy_interface" {
            let d = v.as_str().ok_or_else(|| bad("deploy_interface must be a string."))?;
            let hw = hardware_of(n)?;
            if !hw.deploy_interfaces().contains(&d) {
                return Err(bad(format!(
                    "Could not find the deploy interface {d} for hardware type {}: it has {}.",
                    n.driver,
                    hw.deploy_interfaces().join(", ")
                )));
            }
            n.deploy_interface = d.to_string();
        } else if key.ends_with("_interface") {
            let hw = hardware_of(n)?;
            let expected = FIXED_INTERFACES
                .iter()
                .chain(hardware_interfaces(hw).iter())
                .find(|(name, _)| *name == key)
                .map(|(_, v)| *v)
                .ok_or_else(|| bad(format!("Unknown attribute {key}.")))?;
            if v.as_str() != Some(expected) && !v.is_null() {
                return Err(bad(format!("Hardware type {} supports only {key} {expected}.", n.driver)));
            }
        } else {
            return Err(bad(format!("Unknown attribute for node: {key}.")));
        }
    }
    Ok(())
}

/// One JSON patch operation (`add`, `replace`, `remove`) applied to `doc`.
fn apply_patch_op(doc: &mut Map<String, Value>, op: &Value) -> AppResult<()> {
    let kind = op["op"].as_str().ok_or_else(|| bad("Each patch operation needs an op."))?;
    let path = op["path"].as_str().ok_or_else(|| bad("Each patch operation needs a path."))?;
    let parts: Vec<String> = path
        .strip_prefix('/')
        .ok_or_else(|| bad(format!("Invalid patch path {path}.")))?
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let top = parts[0].as_str();
    if !doc.contains_key(top) {
        return Err(bad(format!("'{path}' is an internal attribute or unknown and can not be updated")));
    }
    let (last, parents) = parts.split_last().expect("a path has a part");
    let mut cur = &mut *doc;
    for p in parents {
        let next = cur.entry(p.clone()).or_insert_with(|| Value::Object(Map::new()));
        if next.is_null() {
            *next = Value::Object(Map::new());
        }
        cur = next.as_object_mut().ok_or_else(|| bad(format!("Cannot patch inside {p}: it is not an object.")))?;
    }
    match kind {
        "add" | "replace" => {
            let value = op.get("value").cloned().ok_or_else(|| bad(format!("'{kind}' on {path} needs a value.")))?;
            if kind == "replace" && !cur.contains_key(last) {
                return Err(bad(format!("Cannot replace {path}: it is not set.")));
            }
            cur.insert(last.clone(), value);
        }
        "remove" => {
            if cur.remove(last).is_none() {
                return Err(bad(format!("Cannot remove {path}: it is not set.")));
            }
            if parents.is_empty() {
                // Removing a top-level field resets it.
                let reset = if OBJECT_FIELDS.contains(&last.as_str()) { json!({}) } else { Value::Null };
                cur.insert(last.clone(), reset);
            }
        }
        other => return Err(bad(format!("Unsupported patch operation {other}: use add, replace or remove."))),
    }
    Ok(())
}

impl BaremetalService {
    /// The node `key` (id or name), for an admin.
    pub async fn node_get(&self, ctx: &AuthContext, key: &str) -> AppResult<Node> {
        require_admin(ctx, "baremetal:node:get")?;
        self.node_lookup(key).await
    }

    pub(crate) async fn node_lookup(&self, key: &str) -> AppResult<Node> {
        self.store.node_get(key).await?.ok_or_else(|| Error::NotFound(format!("Node {key} could not be found.")))
    }

    pub async fn node_list(&self, ctx: &AuthContext) -> AppResult<Vec<Node>> {
        require_admin(ctx, "baremetal:node:list")?;
        Ok(self.store.node_list().await?)
    }

    /// Enrols a node. From API 1.11 on it starts in `enroll`; older clients get it
    /// `available` at once, as Ironic does.
    pub async fn node_create(&self, ctx: &AuthContext, mut body: Map<String, Value>, version: u32) -> AppResult<Node> {
        require_admin(ctx, "baremetal:node:create")?;
        let id = match body.remove("uuid") {
            None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
            Some(Value::String(u)) => {
                uuid::Uuid::parse_str(&u).map_err(|_| bad(format!("Expected a UUID but received {u}.")))?.to_string()
            }
            Some(other) => return Err(bad(format!("Expected a UUID but received {other}."))),
        };
        let driver = body.get("driver").and_then(Value::as_str).ok_or_else(|| bad("A node needs a driver."))?;
        let hw = HardwareType::parse(driver).ok_or_else(|| {
            bad(format!("Cannot load specified driver: {driver}. Enabled: redfish, ipmi, fake-hardware."))
        })?;
        let state = if version >= 11 { ProvisionState::Enroll } else { ProvisionState::Available };
        let mut n = Node::new(id, driver.to_string(), hw.deploy_interfaces()[0].to_string(), state);
        // The driver first, so interfaces are checked against it.
        if let Some(d) = body.remove("driver") {
            apply_fields(&mut n, &Map::from_iter([("driver".to_string(), d)]))?;
        }
        apply_fields(&mut n, &body)?;
        n.provision_updated_at = Some(n.created_at.clone());
        match self.store.node_insert(&n).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(Error::Conflict(match &n.name {
                    Some(name) => format!("A node with name {name} or UUID {} already exists.", n.id),
                    None => format!("A node with UUID {} already exists.", n.id),
                }))
            }
            Err(e) => return Err(e.into()),
        }
        self.notify("create.end", &n).await;
        Ok(n)
    }

    /// Applies a JSON patch to a node that no conductor is working on.
    pub async fn node_patch(&self, ctx: &AuthContext, key: &str, ops: &[Value]) -> AppResult<Node> {
        require_admin(ctx, "baremetal:node:update")?;
        let mut n = self.node_lookup(key).await?;
        self.check_unlocked(&n)?;
        let mut doc = patchable(&n);
        for op in ops {
            apply_patch_op(&mut doc, op)?;
        }
        let before = n.clone();
        // The driver first, so interfaces are checked against the new one.
        if doc["driver"] != json!(n.driver) {
            if n.provision_state == ProvisionState::Active {
                return Err(Error::Conflict("The driver of an active node cannot change.".into()));
            }
            apply_fields(&mut n, &Map::from_iter([("driver".to_string(), doc["driver"].clone())]))?;
        }
        doc.remove("driver");
        apply_fields(&mut n, &doc)?;
        if n == before {
            return Ok(n);
        }
        self.save_or_conflict(&mut n).await?;
        self.notify("update.end", &n).await;
        Ok(n)
    }

    pub async fn node_delete(&self, ctx: &AuthContext, key: &str) -> AppResult<()> {
        require_admin(ctx, "baremetal:node:delete")?;
        let n = self.node_lookup(key).await?;
        self.check_unlocked(&n)?;
        let deletable = matches!(
            n.provision_state,
            ProvisionState::Enroll
                | ProvisionState::Manageable
                | ProvisionState::Available
                | ProvisionState::InspectFailed
                | ProvisionState::CleanFailed
        ) && n.instance_uuid.is_none();
        if !deletable && !n.maintenance {
            return Err(Error::Conflict(format!(
                "Can not delete node {} while it is in provision state \"{}\"{}. Undeploy it, or set maintenance first.",
                n.id,
                n.provision_state,
                if n.instance_uuid.is_some() { " with an instance" } else { "" }
            )));
        }
        if !self.store.node_delete(&n).await? {
            return Err(Error::Conflict(format!("Node {} changed meanwhile; retry.", n.id)));
        }
        self.notify("delete.end", &n).await;
        Ok(())
    }

    /// `PUT /nodes/{id}/states/provision`: checks the verb is allowed from the node's
    /// state and hands the work to the conductor (or lands at once where there is none).
    pub async fn node_provision(
        &self,
        ctx: &AuthContext,
        key: &str,
        body: &Map<String, Value>,
        version: u32,
    ) -> AppResult<()> {
        require_admin(ctx, "baremetal:node:set_provision_state")?;
        let target =
            body.get("target").and_then(Value::as_str).ok_or_else(|| bad("A provision request needs a target."))?;
        let verb: Verb = target.parse().map_err(|_| {
            bad(format!(
                "\"{target}\" is not a valid provision target: use manage, provide, inspect, clean, active, rebuild or deleted."
            ))
        })?;
        if version < verb.min_version() {
            return Err(Error::BadRequest(format!(
                "The \"{target}\" target needs API version 1.{} or later.",
                verb.min_version()
            )));
        }
        let mut n = self.node_lookup(key).await?;
        self.check_unlocked(&n)?;
        let t = verb.transition(n.provision_state);
        if !t.from.contains(&n.provision_state) {
            return Err(Error::BadRequest(format!(
                "The requested action \"{target}\" can not be performed on node \"{}\" while it is in state \"{}\".",
                n.id, n.provision_state
            )));
        }
        if n.maintenance && verb != Verb::Manage {
            return Err(Error::BadRequest(format!(
                "Node {} is in maintenance mode: {}",
                n.id,
                n.maintenance_reason.clone().unwrap_or_default()
            )));
        }
        let hw = hardware_of(&n)?;
        match verb {
            Verb::Deploy | Verb::Rebuild => {
                if let Some(cd) = body.get("configdrive").filter(|v| !v.is_null()) {
                    n.instance_info.insert("configdrive".into(), cd.clone());
                }
                self.check_deployable(&n).await?;
            }
            Verb::Clean if !body.get("clean_steps").is_some_and(Value::is_array) => {
                return Err(bad("Manual cleaning needs clean_steps (a list)."));
            }
            Verb::Manage if t.during.is_some() => self.check_driver_info(&n, hw)?,
            _ => {}
        }
        n.last_error = None;
        match t.during {
            Some(during) => {
                n.enter(during, Some(t.target));
                n.work = Some(Work::Provision(verb));
                n.conductor = Some(self.settings.conductor.clone());
            }
            None => n.enter(t.target, None),
        }
        self.save_or_conflict(&mut n).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// `PUT /nodes/{id}/states/power`.
    pub async fn node_power(&self, ctx: &AuthContext, key: &str, body: &Map<String, Value>) -> AppResult<()> {
        require_admin(ctx, "baremetal:node:set_power_state")?;
        let target =
            body.get("target").and_then(Value::as_str).ok_or_else(|| bad("A power request needs a target."))?;
        let target: PowerTarget = target.parse().map_err(|_| {
            bad(format!(
                "\"{target}\" is not a valid power target: use power on, power off, rebooting, soft power off or soft rebooting."
            ))
        })?;
        if let Some(t) = body.get("timeout") {
            if t.as_u64().unwrap_or(0) == 0 {
                return Err(bad("The power timeout must be a positive integer."));
            }
        }
        let mut n = self.node_lookup(key).await?;
        self.check_unlocked(&n)?;
        self.check_driver_info(&n, hardware_of(&n)?)?;
        n.target_power_state = Some(target);
        n.last_error = None;
        n.work = Some(Work::Power(target));
        n.conductor = Some(self.settings.conductor.clone());
        self.save_or_conflict(&mut n).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// `PUT /nodes/{id}/maintenance` (with a reason) and `DELETE` (without).
    pub async fn node_maintenance(
        &self,
        ctx: &AuthContext,
        key: &str,
        on: bool,
        reason: Option<String>,
    ) -> AppResult<()> {
        require_admin(ctx, "baremetal:node:set_maintenance")?;
        let mut n = self.node_lookup(key).await?;
        n.maintenance = on;
        n.maintenance_reason = if on { reason } else { None };
        self.save_or_conflict(&mut n).await?;
        if !on {
            self.sync_failures.lock().unwrap().remove(&n.id);
        }
        Ok(())
    }

    /// Sets the device the node boots from next (at once, through its BMC).
    pub async fn node_set_boot_device(
        &self,
        ctx: &AuthContext,
        key: &str,
        device: &str,
        persistent: bool,
    ) -> AppResult<()> {
        require_admin(ctx, "baremetal:node:set_boot_device")?;
        let device: BootDevice = device.parse().map_err(|_| {
            bad(format!(
                "Invalid boot device {device}: use {}.",
                BootDevice::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let n = self.node_lookup(key).await?;
        self.check_unlocked(&n)?;
        let bmc = self.bmc_of(&n)?;
        bmc.set_boot_device(device, persistent).await.map_err(|e| Error::Bmc(format!("{e:#}")))
    }

    pub async fn node_boot_device(&self, ctx: &AuthContext, key: &str) -> AppResult<Option<BootDevice>> {
        require_admin(ctx, "baremetal:node:get_boot_device")?;
        let n = self.node_lookup(key).await?;
        let bmc = self.bmc_of(&n)?;
        bmc.boot_device().await.map_err(|e| Error::Bmc(format!("{e:#}")))
    }

    /// `GET /nodes/{id}/validate`: whether each interface has what it needs.
    pub async fn node_validate(&self, ctx: &AuthContext, key: &str) -> AppResult<Value> {
        require_admin(ctx, "baremetal:node:validate")?;
        let n = self.node_lookup(key).await?;
        let hw = hardware_of(&n)?;
        let verdict = |r: AppResult<()>| match r {
            Ok(()) => json!({"result": true, "reason": null}),
            Err(e) => json!({"result": false, "reason": e.to_string()}),
        };
        let unsupported = |what: &str| json!({"result": null, "reason": format!("not supported: no {what} interface")});
        let power = verdict(self.check_driver_info(&n, hw));
        Ok(json!({
            "power": power,
            "management": power,
            "deploy": verdict(self.check_deployable(&n).await),
            "boot": verdict(self.check_driver_info(&n, hw)),
            "inspect": if hw == HardwareType::Ipmi { unsupported("inspect") } else { power.clone() },
            "network": {"result": true, "reason": null},
            "console": unsupported("console"),
            "raid": unsupported("raid"),
            "rescue": unsupported("rescue"),
            "bios": unsupported("bios"),
            "storage": {"result": true, "reason": null},
        }))
    }

    /// The BMC of `n`, or why its `driver_info` does not name one.
    pub(crate) fn bmc_of(&self, n: &Node) -> AppResult<Box<dyn crate::driver::Bmc>> {
        let hw = hardware_of(n)?;
        self.check_driver_info(n, hw)?;
        self.drivers.bmc(&n.id, hw, &n.driver_info).map_err(|e| bad(format!("{e:#}")))
    }

    fn check_driver_info(&self, n: &Node, hw: HardwareType) -> AppResult<()> {
        let (required, _) = hw.driver_info_keys();
        let missing: Vec<&str> =
            required.iter().copied().filter(|k| crate::driver::info_text(&n.driver_info, k).is_none()).collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "The following required driver parameters are missing from node {}: {}",
                n.id,
                missing.join(", ")
            )));
        }
        self.drivers.bmc(&n.id, hw, &n.driver_info).map(|_| ()).map_err(|e| bad(format!("{e:#}")))
    }

    /// Whether the node has what its deploy interface needs.
    async fn check_deployable(&self, n: &Node) -> AppResult<()> {
        match n.deploy_interface.as_str() {
            "fake" => Ok(()),
            "direct" => {
                let source = n.instance_info.get("image_source").and_then(Value::as_str).unwrap_or("");
                if source.is_empty() {
                    return Err(bad(format!("Node {}: instance_info.image_source is required to deploy.", n.id)));
                }
                if !self.settings.deploy.ramdisk_configured() {
                    return Err(bad(format!(
                        "Node {}: the direct deploy needs the deploy ramdisk ([baremetal] deploy_kernel and \
                         deploy_ramdisk), or deploy_interface fake to boot the node from its disk as it is.",
                        n.id
                    )));
                }
                if !(source.starts_with("http://") || source.starts_with("https://")) && self.images.is_none() {
                    return Err(bad(format!("Node {}: no image service to fetch image {source} from.", n.id)));
                }
                // The node is known by a NIC's MAC when it network-boots.
                if !self.store.port_list(Some(&n.id)).await?.iter().any(|p| p.pxe_enabled) {
                    return Err(bad(format!(
                        "Node {}: the direct deploy needs a port with pxe_enabled (openstack baremetal port create MAC --node {}).",
                        n.id, n.id
                    )));
                }
                Ok(())
            }
            other => Err(bad(format!("Unknown deploy interface {other}."))),
        }
    }

    pub(crate) fn check_unlocked(&self, n: &Node) -> AppResult<()> {
        if n.work.is_some() {
            return Err(Error::Locked(
                n.id.clone(),
                n.conductor.clone().unwrap_or_else(|| self.settings.conductor.clone()),
            ));
        }
        Ok(())
    }

    pub(crate) async fn save_or_conflict(&self, n: &mut Node) -> AppResult<()> {
        match self.store.node_save(n).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Conflict(format!("Node {} changed meanwhile; retry.", n.id))),
            Err(e) if is_unique_violation(&e) => Err(Error::Conflict(format!(
                "Another node already has the name {} or instance {}.",
                n.name.clone().unwrap_or_default(),
                n.instance_uuid.clone().unwrap_or_default()
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_add_replace_and_remove_nested_keys() {
        let mut n = Node::new("u".into(), "fake-hardware".into(), "fake".into(), ProvisionState::Enroll);
        let mut doc = patchable(&n);
        apply_patch_op(&mut doc, &json!({"op": "add", "path": "/driver_info/redfish_address", "value": "http://b"}))
            .unwrap();
        apply_patch_op(&mut doc, &json!({"op": "add", "path": "/properties/capabilities~1x", "value": "1"})).unwrap();
        apply_patch_op(&mut doc, &json!({"op": "replace", "path": "/name", "value": "n1"})).unwrap();
        assert!(apply_patch_op(&mut doc, &json!({"op": "remove", "path": "/extra/missing"})).is_err());
        assert!(apply_patch_op(&mut doc, &json!({"op": "add", "path": "/provision_state", "value": "active"})).is_err());
        assert!(apply_patch_op(&mut doc, &json!({"op": "move", "path": "/name"})).is_err());
        doc.remove("driver");
        apply_fields(&mut n, &doc).unwrap();
        assert_eq!(n.driver_info["redfish_address"], "http://b");
        assert_eq!(n.properties["capabilities/x"], "1");
        assert_eq!(n.name.as_deref(), Some("n1"));
        let mut doc = patchable(&n);
        apply_patch_op(&mut doc, &json!({"op": "remove", "path": "/name"})).unwrap();
        doc.remove("driver");
        apply_fields(&mut n, &doc).unwrap();
        assert_eq!(n.name, None);
    }

    #[test]
    fn names_and_interfaces_are_checked() {
        assert!(check_name("node-1.rack_2~a").is_ok());
        assert!(check_name("has space").is_err());
        assert!(check_name("6f1d6a2e-2b7b-4a54-a5c4-2bc0b8a44a61").is_err());
        let mut n = Node::new("u".into(), "redfish".into(), "direct".into(), ProvisionState::Enroll);
        let ok = json!({"deploy_interface": "fake", "power_interface": "redfish", "network_interface": "noop"});
        apply_fields(&mut n, ok.as_object().unwrap()).unwrap();
        assert_eq!(n.deploy_interface, "fake");
        for bad in [json!({"power_interface": "ipmitool"}), json!({"deploy_interface": "iscsi"}), json!({"colour": 1})]
        {
            assert!(apply_fields(&mut n, bad.as_object().unwrap()).is_err(), "{bad}");
        }
    }
}
