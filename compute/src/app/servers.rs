//! Servers: the create request (validated against flavors, images, networks, ports,
//! keypairs and security groups, quota claimed with the rows in one transaction), what
//! callers may see, updates, and delete.

use super::volumes::BootSource;
use super::AppResult;
use super::{as_int, bad, conflict, forbidden, not_found, project_of, unavailable, ComputeService};
use crate::clients::CallError;
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{usage_claim, Control, Server, ServerFilter};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::saga::Saga;
use stratus_compute_protocol::PowerState;

/// The last path segment of an id-or-link (`flavorRef`, `imageRef`).
pub(crate) fn ref_id(v: &str) -> &str {
    v.trim_end_matches('/').rsplit('/').next().unwrap_or(v)
}

pub(crate) fn refused(what: &str, e: CallError) -> super::Error {
    match e {
        CallError::Refused(404, _) => bad(format!("{what} could not be found.")),
        CallError::Refused(_, m) => bad(format!("{what}: {m}")),
        CallError::Unavailable(m) => unavailable(m),
    }
}

/// [`refused`], except that a refusal for want of quota or rights (403, 413) is 403.
pub(crate) fn refused_or_forbidden(what: &str, e: CallError) -> super::Error {
    match e {
        CallError::Refused(413, m) | CallError::Refused(403, m) => super::forbidden(m),
        e => refused(what, e),
    }
}

/// How long an action waits for a volume attach or detach under way on its server.
const VOLUME_SAGA_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl ComputeService {
    /// The kernel and ramdisk an image names for direct boot (`kernel_id`,
    /// `ramdisk_id`), each checked as the requesting project sees it: an image may name
    /// any id, so naming one proves nothing. Only these ids, vouched for here, reach the
    /// compute agent, whose image cache fetches with the service's own rights.
    pub(crate) async fn boot_files(&self, token: &str, image: &Value) -> AppResult<Map<String, Value>> {
        let mut out = Map::new();
        for key in ["kernel_id", "ramdisk_id"] {
            let Some(id) = image.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()) else { continue };
            let what = format!("Image {id} (the {key} of image {})", image["id"].as_str().unwrap_or_default());
            let file = self.clients.image(token, id).await.map_err(|e| refused(&what, e))?;
            if file["status"] != "active" {
                return Err(bad(format!("{what} is not active.")));
            }
            out.insert(key.into(), json!(id));
        }
        Ok(out)
    }

    /// Creates `max_count` servers (or `min_count` when quota allows no more) and
    /// starts their create sagas. Answers the servers made.
    pub async fn server_create(
        &self,
        ctx: &AuthContext,
        body: &Map<String, Value>,
        mut hints: Map<String, Value>,
        request_id: &str,
        version: crate::microversion::Version,
    ) -> AppResult<Vec<Server>> {
        super::require_writer(ctx)?;
        let project = project_of(ctx)?;
        let token = ctx.token.to_string();
        let str_of = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
        let name = str_of("name").map(|n| n.trim().to_string()).unwrap_or_default();
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(bad("Invalid input for field/attribute name: a server needs a name of 1-255 characters."));
        }
        let tags = match body.get("tags") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => tags_checked(v)?,
        };
        let flavor_ref =
            str_of("flavorRef").ok_or_else(|| bad("Invalid input: 'flavorRef' is a required property."))?;
        let flavor = match self.flavor_get(ctx, ref_id(&flavor_ref)).await {
            Ok(f) if !f.disabled => f,
            _ => return Err(bad(format!("Flavor {flavor_ref} could not be found."))),
        };
        // A flavor made for a lease's `flavor:instance` reservation puts its servers
        // into that reservation.
        if let Some(r) = flavor.extra_specs.get(super::create::RESERVATION_SPEC).and_then(Value::as_str) {
            match hints.get("reservation").and_then(Value::as_str) {
                Some(asked) if asked != r => {
                    return Err(bad(format!("Flavor {flavor_ref} is reservation {r}'s; the hint names {asked}.")))
                }
                _ => {
                    hints.insert("reservation".into(), json!(r));
                }
            }
        }
        // What it boots: imageRef, or the boot_index 0 mapping (an image to copy onto
        // the host, a volume, or an image to make a volume from).
        let boot = self.boot_source(&token, &project, str_of("imageRef"), body.get("block_device_mapping_v2")).await?;
        let (image_id, image) = match &boot {
            BootSource::Image(id, image) => (id.clone(), image.clone()),
            BootSource::Volume(v) => (String::new(), v.image_meta.clone()),
        };
        let boot_files = self.boot_files(&token, &image).await?;
        let min_disk = as_int(&image["min_disk"]).unwrap_or(0);
        let min_ram = as_int(&image["min_ram"]).unwrap_or(0);
        if matches!(boot, BootSource::Image(..)) && flavor.disk > 0 && flavor.disk < min_disk {
            return Err(bad("Flavor's disk is too small for requested image."));
        }
        if flavor.ram < min_ram {
            return Err(bad("Flavor's memory is too small for requested image."));
        }
        let boot_volume = match &boot {
            BootSource::Volume(v) => Some(serde_json::to_value(v).map_err(anyhow::Error::from)?),
            BootSource::Image(..) => None,
        };
        // A server booting from a volume has no root disk on its host.
        let root_gb = if boot_volume.is_some() { 0 } else { flavor.disk };
        let requested = self.requested_networks(&token, &project, body.get("networks"), version).await?;
        let disk_config = body.get("OS-DCF:diskConfig").map(disk_config).transpose()?;
        let key = match str_of("key_name") {
            Some(k) => Some(
                self.store.keypair_get(ctx.user_id(), &k).await?.ok_or_else(|| bad("Invalid key_name provided."))?,
            ),
            None => None,
        };
        let (sg_names, sg_ids) = self.security_groups_for(&token, body.get("security_groups")).await?;
        let user_data = match body.get("user_data") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                if s.len() > 65535 || base64::engine::general_purpose::STANDARD.decode(s.trim()).is_err() {
                    return Err(bad("User data needs to be valid base64, at most 65535 bytes."));
                }
                Some(s.clone())
            }
            _ => return Err(bad("Invalid input for field/attribute user_data.")),
        };
        let access_v4 = body.get("accessIPv4").map(|v| access_ip("accessIPv4", v)).transpose()?.unwrap_or_default();
        let access_v6 = body.get("accessIPv6").map(|v| access_ip("accessIPv6", v)).transpose()?.unwrap_or_default();
        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => {
                if !metadata_valid(m) {
                    return Err(bad("Invalid metadata: keys of 1-255 characters, string values of at most 255."));
                }
                if m.len() > 128 {
                    return Err(forbidden("Quota exceeded for metadata items: at most 128."));
                }
                m.clone()
            }
            _ => return Err(bad("Invalid input for field/attribute metadata.")),
        };
        let (az, forced_host) = match str_of("availability_zone") {
            Some(a) if a.contains(':') => {
                super::require_admin(ctx, "forcing a host")?;
                let (z, h) = a.split_once(':').unwrap_or_default();
                (Some(z.to_string()).filter(|z| !z.is_empty()), Some(h.to_string()).filter(|h| !h.is_empty()))
            }
            Some(a) if !a.is_empty() => {
                if !self.store.host_list().await?.iter().any(|h| h.availability_zone == a) {
                    return Err(bad(format!("The requested availability zone is not available: {a}")));
                }
                (Some(a), None)
            }
            _ => (None, None),
        };
        if let Some(g) = hints.get("group").and_then(Value::as_str) {
            self.group_get(ctx, g).await.map_err(|_| bad(format!("Invalid server group {g}.")))?;
        }
        let count = |k: &str| -> AppResult<i64> {
            match body.get(k) {
                None | Some(Value::Null) => Ok(1),
                Some(v) => as_int(v)
                    .filter(|n| *n >= 1 && *n <= 1000)
                    .ok_or_else(|| bad(format!("Invalid input for field/attribute {k}."))),
            }
        };
        let min = count("min_count")?;
        let max = match body.get("max_count") {
            None | Some(Value::Null) => min,
            _ => count("max_count")?,
        };
        if max < min {
            return Err(bad("min_count must be <= max_count"));
        }
        if max > 1 && requested.iter().any(|r| r.get("port").is_some()) {
            return Err(bad("Multiple instances cannot be created with one given port."));
        }
        let flavor_doc = json!({"id": flavor.id, "original_name": flavor.name, "vcpus": flavor.vcpus, "ram": flavor.ram,
                                "disk": flavor.disk, "ephemeral": flavor.ephemeral, "swap": flavor.swap,
                                "extra_specs": flavor.extra_specs});
        let reservation_id = format!("r-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let member_limit =
            if hints.get("group").is_some() { self.limit(&project, "server_group_members").await? } else { -1 };
        let limits = [
            ("instances", self.limit(&project, "instances").await?),
            ("cores", self.limit(&project, "cores").await?),
            ("ram", self.limit(&project, "ram").await?),
        ];
        for n in [max, min] {
            let now = now_text();
            let mut servers: Vec<Server> = (0..n)
                .map(|i| {
                    let id = uuid::Uuid::new_v4().to_string();
                    let mut doc = Map::new();
                    doc.insert("image_id".into(), json!(image_id));
                    doc.extend(boot_files.clone());
                    if let Some(bv) = &boot_volume {
                        doc.insert("boot_volume".into(), bv.clone());
                    }
                    doc.insert("flavor".into(), flavor_doc.clone());
                    doc.insert("key_name".into(), json!(key.as_ref().map(|k| k.name.clone())));
                    doc.insert("key_data".into(), json!(key.as_ref().map(|k| k.public_key.clone())));
                    doc.insert("user_data".into(), json!(user_data));
                    doc.insert("metadata".into(), Value::Object(metadata.clone()));
                    doc.insert("security_groups".into(), json!(sg_names));
                    doc.insert("security_group_ids".into(), json!(sg_ids));
                    doc.insert("requested_networks".into(), json!(requested));
                    doc.insert("availability_zone".into(), json!(az));
                    doc.insert("forced_host".into(), json!(forced_host));
                    doc.insert("hints".into(), Value::Object(hints.clone()));
                    doc.insert("description".into(), json!(str_of("description")));
                    doc.insert("tags".into(), json!(tags));
                    doc.insert(
                        "config_drive".into(),
                        json!(body
                            .get("config_drive")
                            .map(|v| v.as_bool().unwrap_or(false) || v == "true")
                            .unwrap_or(false)),
                    );
                    doc.insert("accessIPv4".into(), json!(access_v4));
                    doc.insert("accessIPv6".into(), json!(access_v6));
                    doc.insert("disk_config".into(), json!(disk_config.as_deref().unwrap_or("MANUAL")));
                    doc.insert("reservation_id".into(), json!(reservation_id));
                    doc.insert("launch_index".into(), json!(i));
                    doc.insert("hostname".into(), json!(str_of("hostname").unwrap_or_else(|| hostname_of(&name))));
                    doc.insert("ports".into(), json!([]));
                    doc.insert("addresses".into(), json!({}));
                    Server {
                        id: id.into(),
                        project_id: project.clone().into(),
                        user_id: ctx.user_id().to_string(),
                        name: if n > 1 { format!("{name}-{}", i + 1) } else { name.clone() },
                        vm_state: VmState::Building,
                        task_state: Some(TaskState::Scheduling),
                        power_state: PowerState::NoState,
                        host: None,
                        vcpus: flavor.vcpus,
                        ram: flavor.ram,
                        disk: root_gb + flavor.ephemeral + (flavor.swap + 1023) / 1024,
                        charged: true,
                        locked: false,
                        deleted: false,
                        doc,
                        control: Control { saga_id: Some(Saga::new_id()), ..Default::default() },
                        rev: 0,
                        created_at: now.clone(),
                        updated_at: now.clone(),
                        launched_at: None,
                        terminated_at: None,
                    }
                })
                .collect();
            let claims = [
                ("instances", n, limits[0].1),
                ("cores", n * flavor.vcpus, limits[1].1),
                ("ram", n * flavor.ram, limits[2].1),
            ];
            let mut tx = self.store.db.pool.begin().await?;
            // One server's host claim is made here too when nothing but capacity
            // decides it: one transaction fewer for its saga, whose schedule step then
            // has no work. It comes before the quota: a transaction that locks both a
            // host row and the project's usage rows locks the host first (a delete gives
            // them back in that order), so two of them never wait on each other. Several
            // servers at once are left to their sagas: their host rows, taken in the
            // scheduler's order, could cross another request's.
            let mut claimed = None;
            if let [s] = servers.as_mut_slice() {
                if let Some(row) = self.claim_with_request(&mut tx, s).await? {
                    s.host = Some(row.host.clone());
                    claimed = Some(row);
                }
            }
            if !usage_claim(&mut tx, &project, &claims).await? {
                drop(tx);
                if n == min {
                    return Err(self.over_quota(&project, n, flavor.vcpus, flavor.ram, &limits).await);
                }
                continue;
            }
            let mut sagas = Vec::new();
            for s in &servers {
                self.store.server_insert(&mut tx, s).await?;
                let saga = Saga::fresh(
                    s.control.saga_id.clone().unwrap_or_default(),
                    super::create::KIND,
                    &s.id,
                    &super::create::BuildTries::default(),
                );
                self.sagas.insert_saga(&mut tx, &saga).await?;
                crate::store::Store::action_start_in(&mut tx, &Self::new_action(ctx, s, "create", request_id)).await?;
                sagas.push(saga);
            }
            // Group membership is written with the servers, so the scheduler's
            // anti-affinity check in the claim always sees every member.
            if let Some(g) = hints.get("group").and_then(Value::as_str) {
                let ids: Vec<String> = servers.iter().map(|s| s.id.to_string()).collect();
                if !crate::store::Store::group_join_in(&mut tx, g, &ids, member_limit).await? {
                    drop(tx);
                    return Err(forbidden(format!(
                        "Quota exceeded, too many servers in group: at most {member_limit} members (server_group_members)."
                    )));
                }
            }
            tx.commit().await?;
            if let Some(row) = claimed {
                self.scheduler.update(row);
            }
            for (s, mut saga) in servers.iter().zip(sagas) {
                self.notify("create.start", s).await;
                // The first drive starts from what was just written: no reads.
                saga.scratch = Some(Box::new(s.clone()));
                self.sagas.spawn_saga(saga);
            }
            return Ok(servers);
        }
        Err(bad("No servers could be created."))
    }

    async fn over_quota(&self, project: &str, n: i64, vcpus: i64, ram: i64, limits: &[(&str, i64); 3]) -> super::Error {
        let used: std::collections::HashMap<String, i64> =
            self.store.usage(project).await.unwrap_or_default().into_iter().collect();
        for (resource, limit) in limits {
            let want = match *resource {
                "instances" => n,
                "cores" => n * vcpus,
                _ => n * ram,
            };
            let u = used.get(*resource).copied().unwrap_or(0);
            if *limit >= 0 && u + want > *limit {
                return forbidden(format!(
                    "Quota exceeded for {resource}: Requested {want}, but already used {u} of {limit} {resource}"
                ));
            }
        }
        forbidden("Quota exceeded for instances.")
    }

    /// The NICs asked for: `[{"uuid"|"port", "fixed_ip"?}]`, `"auto"` or `"none"`.
    async fn requested_networks(
        &self,
        token: &str,
        project: &str,
        networks: Option<&Value>,
        version: crate::microversion::Version,
    ) -> AppResult<Vec<Value>> {
        let list = match networks {
            Some(Value::String(s)) if s == "none" => return Ok(Vec::new()),
            Some(Value::String(s)) if s == "auto" => None,
            None | Some(Value::Null) if version.at_least(37) => {
                return Err(bad("Invalid input: 'networks' is a required property."));
            }
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.clone()),
            _ => return Err(bad("Invalid input for field/attribute networks.")),
        };
        let Some(list) = list else {
            // "auto": the one network the project can use, if there is exactly one.
            let nets = self.clients.networks(token).await.map_err(|e| refused("Networks", e))?;
            let usable: Vec<&Value> = nets
                .iter()
                .filter(|n| n["router:external"] != json!(true))
                .filter(|n| n["project_id"] == json!(project) || n["shared"] == json!(true))
                .collect();
            return match usable.as_slice() {
                [] => Ok(Vec::new()),
                [one] => Ok(vec![json!({"uuid": one["id"]})]),
                _ => Err(conflict("Multiple possible networks found, use a Network ID to be more specific.")),
            };
        };
        let mut out = Vec::new();
        for r in list {
            let o = r.as_object().ok_or_else(|| bad("Invalid input for field/attribute networks."))?;
            if let Some(port) = o.get("port").and_then(Value::as_str) {
                let p = self.clients.port_as(token, port).await.map_err(|e| match e {
                    CallError::Refused(404, _) => bad(format!("Port {port} could not be found.")),
                    e => refused(&format!("Port {port}"), e),
                })?;
                if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                    return Err(conflict(format!("Port {port} is still in use.")));
                }
                // A port visible on one of the project's networks may still be another
                // project's (Nova's PortNotUsable).
                if p["project_id"].as_str() != Some(project) {
                    return Err(bad(format!(
                        "Port {port} not usable for the instance: it belongs to another project."
                    )));
                }
                out.push(json!({"port": port}));
            } else if let Some(net) = o.get("uuid").and_then(Value::as_str) {
                self.clients.network(token, net).await.map_err(|e| refused(&format!("Network {net}"), e))?;
                let mut req = json!({"uuid": net});
                if let Some(ip) = o.get("fixed_ip").and_then(Value::as_str) {
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        return Err(bad(format!("Invalid fixed IP address {ip}.")));
                    }
                    req["fixed_ip"] = json!(ip);
                }
                out.push(req);
            } else {
                return Err(bad("Each network needs a 'uuid' or a 'port'."));
            }
        }
        Ok(out)
    }

    /// Security group names → (names, ids), from the caller's groups.
    pub(crate) async fn security_groups_for(
        &self,
        token: &str,
        asked: Option<&Value>,
    ) -> AppResult<(Vec<String>, Vec<String>)> {
        let names: Vec<String> = match asked {
            None | Some(Value::Null) => return Ok((vec!["default".into()], Vec::new())),
            Some(Value::Array(a)) => a.iter().filter_map(|g| g["name"].as_str().map(str::to_string)).collect(),
            _ => return Err(bad("Invalid input for field/attribute security_groups.")),
        };
        if names.is_empty() {
            return Ok((vec!["default".into()], Vec::new()));
        }
        let groups = self.clients.security_groups(token).await.map_err(|e| refused("Security groups", e))?;
        let mut ids = Vec::new();
        let mut shown = Vec::new();
        for n in &names {
            let g = groups
                .iter()
                .find(|g| g["id"].as_str() == Some(n))
                .or_else(|| groups.iter().find(|g| g["name"].as_str() == Some(n)))
                .ok_or_else(|| bad(format!("Security group {n} not found.")))?;
            ids.push(g["id"].as_str().unwrap_or_default().to_string());
            shown.push(g["name"].as_str().unwrap_or(n).to_string());
        }
        Ok((shown, ids))
    }

    /// A server the caller may see (deleted ones only for admins asking for them).
    pub async fn server_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Server> {
        match self.store.server_get(id).await? {
            Some(s) if !s.deleted && (ctx.is_admin() || ctx.project_id() == Some(s.project_id.as_str())) => Ok(s),
            _ => Err(not_found(format!("Instance {id} could not be found."))),
        }
    }

    /// A server the caller may act on (not locked, unless admin: as in Nova, a lock
    /// holds for everyone else, the user who locked it included, until unlocked).
    pub(crate) async fn server_for_action(&self, ctx: &AuthContext, id: &str) -> AppResult<Server> {
        super::require_writer(ctx)?;
        let mut s = self.server_get(ctx, id).await?;
        if s.locked && !ctx.is_admin() {
            return Err(conflict(format!("Instance {id} is locked")));
        }
        // A volume attach or detach shows no task state (as Nova's) but holds the
        // server: its volume shows `in-use` a moment before its saga ends. A request
        // right then waits for that end rather than failing with 409.
        let deadline = std::time::Instant::now() + VOLUME_SAGA_WAIT;
        while s.task_state.is_none()
            && s.control.saga_id.is_some()
            && s.vm_state != VmState::Error
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            s = self.server_get(ctx, id).await?;
        }
        Ok(s)
    }

    /// A page of the servers the caller may list, newest first: those `keep` accepts,
    /// after `marker` (a server id), at most `limit`. Read from the database in chunks
    /// so a page costs what it shows, not what the project holds.
    pub async fn server_list(
        &self,
        ctx: &AuthContext,
        q: &ListQuery<'_>,
        keep: impl Fn(&Server) -> bool,
    ) -> AppResult<Vec<Server>> {
        let own = project_of(ctx).ok();
        let project = if ctx.is_admin() && q.all_tenants {
            q.project.map(str::to_string)
        } else {
            Some(own.ok_or_else(|| forbidden("A project-scoped token is needed."))?)
        };
        let only_deleted = q.deleted && ctx.is_admin();
        let include_deleted = only_deleted || q.changes_since.is_some();
        let filter =
            ServerFilter { project: project.as_deref(), host: None, include_deleted, changed_since: q.changes_since };
        let mut cursor = match q.marker {
            None => None,
            Some(m) => {
                let s =
                    self.store.server_get(m).await?.filter(|s| project.as_deref().is_none_or(|p| s.project_id == p));
                let s = s.ok_or_else(|| bad(format!("marker [{m}] not found")))?;
                Some((s.created_at, s.id.to_string()))
            }
        };
        let chunk = q.limit.clamp(100, 1000) as i64;
        let mut out = Vec::new();
        while out.len() < q.limit {
            let after = cursor.as_ref().map(|(a, i): &(String, String)| (a.as_str(), i.as_str()));
            let page = self.store.server_page(&filter, after, Some(chunk)).await?;
            let Some(last) = page.last() else { break };
            cursor = Some((last.created_at.clone(), last.id.to_string()));
            let full = page.len() as i64 == chunk;
            out.extend(page.into_iter().filter(|s| (!only_deleted || s.deleted) && keep(s)).take(q.limit - out.len()));
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Shows the server with fresh addresses (floating IPs come and go in the network
    /// service). The fresh addresses are only shown, never written back: a write here
    /// would race with the server's saga.
    pub async fn server_show(&self, ctx: &AuthContext, id: &str) -> AppResult<Server> {
        let mut s = self.server_get(ctx, id).await?;
        if s.task_state.is_none() && s.doc.get("ports").and_then(Value::as_array).is_some_and(|p| !p.is_empty()) {
            self.refresh_addresses(&mut s, true).await;
        }
        Ok(s)
    }

    pub async fn server_update(&self, ctx: &AuthContext, id: &str, body: &Map<String, Value>) -> AppResult<Server> {
        let s = self
            .change_api(ctx, id, |s| {
                for (k, v) in body {
                    match (k.as_str(), v) {
                        ("name", Value::String(n))
                            if !n.trim().is_empty() && n.chars().count() <= 255 && !n.chars().any(char::is_control) =>
                        {
                            s.name = n.trim().to_string()
                        }
                        ("description", Value::String(_) | Value::Null) => {
                            s.doc.insert("description".into(), v.clone());
                        }
                        ("accessIPv4" | "accessIPv6", _) => {
                            s.doc.insert(k.clone(), json!(access_ip(k, v)?));
                        }
                        ("hostname", Value::String(h)) => {
                            s.doc.insert("hostname".into(), json!(h));
                        }
                        ("OS-DCF:diskConfig", d) => {
                            s.doc.insert("disk_config".into(), json!(disk_config(d)?));
                        }
                        _ => return Err(bad(format!("Invalid input for field/attribute {k}."))),
                    }
                }
                Ok(())
            })
            .await?;
        self.notify("update", &s).await;
        Ok(s)
    }

    /// Replaces (`replace`) or merges server metadata; answers the result.
    pub async fn server_metadata(
        &self,
        ctx: &AuthContext,
        id: &str,
        m: Map<String, Value>,
        replace: bool,
    ) -> AppResult<Map<String, Value>> {
        if !metadata_valid(&m) {
            return Err(bad("Invalid metadata: keys of 1-255 characters, string values of at most 255."));
        }
        let s = self
            .change_api(ctx, id, |s| {
                let mut meta = if replace {
                    Map::new()
                } else {
                    s.doc.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default()
                };
                meta.extend(m.clone());
                if meta.len() > 128 {
                    return Err(forbidden("Quota exceeded for metadata items."));
                }
                s.doc.insert("metadata".into(), Value::Object(meta));
                Ok(())
            })
            .await?;
        Ok(s.doc.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default())
    }

    /// A server's tags (Nova 2.26).
    pub async fn server_tags(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<String>> {
        Ok(tags_of(&self.server_get(ctx, id).await?))
    }

    /// Replaces a server's tags (none: clears them); answers the result.
    /// `tags` as the request gave them (a JSON list; checked by [`tags_checked`]).
    pub async fn server_tags_set(&self, ctx: &AuthContext, id: &str, tags: &Value) -> AppResult<Vec<String>> {
        let tags = tags_checked(tags)?;
        let s = self
            .change_api(ctx, id, |s| {
                s.doc.insert("tags".into(), json!(tags));
                Ok(())
            })
            .await?;
        Ok(tags_of(&s))
    }

    /// Adds one tag; false when the server had it already.
    pub async fn server_tag_add(&self, ctx: &AuthContext, id: &str, tag: &str) -> AppResult<bool> {
        tag_valid(tag)?;
        let added = std::sync::atomic::AtomicBool::new(false);
        self.change_api(ctx, id, |s| {
            let mut tags = tags_of(s);
            let new = !tags.iter().any(|t| t == tag);
            if new {
                if tags.len() >= MAX_TAGS {
                    return Err(bad(format!("The number of tags exceeded the per-server limit {MAX_TAGS}")));
                }
                tags.push(tag.to_string());
                s.doc.insert("tags".into(), json!(tags));
            }
            added.store(new, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .await?;
        Ok(added.into_inner())
    }

    pub async fn server_tag_delete(&self, ctx: &AuthContext, id: &str, tag: &str) -> AppResult<()> {
        self.change_api(ctx, id, |s| {
            let mut tags = tags_of(s);
            let before = tags.len();
            tags.retain(|t| t != tag);
            if tags.len() == before {
                return Err(not_found(format!("Tag {tag} could not be found.")));
            }
            s.doc.insert("tags".into(), json!(tags));
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn server_metadata_delete(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<()> {
        self.change_api(ctx, id, |s| {
            let mut meta = s.doc.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
            if meta.remove(key).is_none() {
                return Err(not_found(format!("Metadata item was not found: {key}")));
            }
            s.doc.insert("metadata".into(), Value::Object(meta));
            Ok(())
        })
        .await?;
        Ok(())
    }

    pub async fn server_lock(&self, ctx: &AuthContext, id: &str, lock: bool, reason: Option<String>) -> AppResult<()> {
        super::require_writer(ctx)?;
        let mut s = self.server_get(ctx, id).await?;
        if !lock
            && !ctx.is_admin()
            && s.doc.get("locked_by").and_then(Value::as_str).is_some_and(|u| u != ctx.user_id())
        {
            return Err(forbidden("Only the user who locked the server, or an admin, may unlock it."));
        }
        s.locked = lock;
        if lock {
            s.doc.insert("locked_by".into(), json!(ctx.user_id()));
            s.doc.insert("locked_reason".into(), json!(reason));
        } else {
            s.doc.remove("locked_by");
            s.doc.remove("locked_reason");
        }
        self.save_api(&mut s).await?;
        Ok(())
    }

    /// `os-resetState` (an admin's repair tool, as Nova's): the server's `vm_state` is set
    /// to `active` or `error` and its task state cleared, whatever it was doing. Work
    /// still under way (a saga, a command) goes on and settles the server again when it
    /// ends.
    pub async fn server_reset_state(&self, ctx: &AuthContext, id: &str, state: &str) -> AppResult<()> {
        super::require_admin(ctx, "os-resetState")?;
        let vm_state = match state {
            "active" => VmState::Active,
            "error" => VmState::Error,
            other => {
                return Err(bad(format!(
                    "Invalid input for field/attribute state. Value: {other}. It must be active or error."
                )))
            }
        };
        let mut s = self.server_get(ctx, id).await?;
        s.vm_state = vm_state;
        s.task_state = None;
        self.save_api(&mut s).await?;
        Ok(())
    }

    /// `injectNetworkInfo` (an admin's): Nova's libvirt driver injects nothing (only the
    /// long-gone XenAPI driver did), so the call is checked and changes nothing, as there.
    pub async fn server_inject_network_info(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        super::require_admin(ctx, "injectNetworkInfo")?;
        self.server_get(ctx, id).await?;
        Ok(())
    }

    /// Deletes a server: a build under way is cancelled first (its saga unwinds), then
    /// the delete saga runs.
    pub async fn server_delete(&self, ctx: &AuthContext, id: &str, request_id: &str) -> AppResult<()> {
        let internal = |e: anyhow::Error| super::Error::Internal(e.context("cannot start deleting a server"));
        for _ in 0..20 {
            let mut s = self.server_for_action(ctx, id).await?;
            if s.task_state == Some(TaskState::Deleting) {
                return Ok(());
            }
            let action = Self::new_action(ctx, &s, "delete", request_id);
            s.control.delete_requested = true;
            let Some(saga) = s.control.saga_id.clone() else {
                // The usual case: the server, the delete saga and the action in one
                // transaction.
                if self.start_delete_with(&s, Some(&action)).await.map_err(internal)? {
                    self.notify("delete.start", &s).await;
                    return Ok(());
                }
                // A saga step saved the server at the same moment: read it again.
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            };
            // A saga is still running (a build, or a rebuild or resize): ask it to
            // unwind; its end deletes.
            s.task_state = Some(TaskState::Deleting);
            if !self.store.server_save(&mut s, None).await? {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
            if let Err(e) = self.store.action_start(&action).await {
                tracing::warn!(error = %e, "cannot record an instance action");
            }
            self.notify("delete.start", &s).await;
            if self.sagas.cancel(&saga, "The server was deleted before its task ended.").await? {
                self.sagas.spawn(&saga);
                return Ok(());
            }
            // It ended meanwhile.
            self.start_delete(&s).await.map_err(internal)?;
            return Ok(());
        }
        Err(conflict(format!("Instance {id} is changing too fast; try again.")))
    }
}

/// A hostname from a display name, as Nova makes one.
/// What a server listing asks for.
#[derive(Debug, Default)]
pub struct ListQuery<'a> {
    pub all_tenants: bool,
    pub project: Option<&'a str>,
    pub deleted: bool,
    pub changes_since: Option<&'a str>,
    pub marker: Option<&'a str>,
    pub limit: usize,
}

pub fn hostname_of(name: &str) -> String {
    let mut h: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    h = h.trim_matches('-').chars().take(63).collect();
    if h.is_empty() {
        "server".into()
    } else {
        h
    }
}

/// Nova's rule for server metadata: keys of 1-255 characters, string values of at most
/// 255.
fn metadata_valid(m: &Map<String, Value>) -> bool {
    m.iter()
        .all(|(k, v)| !k.is_empty() && k.chars().count() <= 255 && v.as_str().is_some_and(|v| v.chars().count() <= 255))
}

/// An access address as Nova keeps it: empty, or a valid address of the key's family in
/// its canonical form (RFC 5952 for IPv6).
pub(crate) fn access_ip(key: &str, v: &Value) -> AppResult<String> {
    let text = match v {
        Value::Null => return Ok(String::new()),
        Value::String(t) => t.trim(),
        _ => return Err(bad(format!("Invalid input for field/attribute {key}."))),
    };
    if text.is_empty() {
        return Ok(String::new());
    }
    let parsed = if key == "accessIPv4" {
        text.parse::<std::net::Ipv4Addr>().map(|a| a.to_string())
    } else {
        text.parse::<std::net::Ipv6Addr>().map(|a| a.to_string())
    };
    parsed.map_err(|_| {
        bad(format!("Invalid input for field/attribute {key}. Value: {text}. '{text}' is not a valid address."))
    })
}

/// `OS-DCF:diskConfig` as Nova takes it: `AUTO` (grow the root partition to the disk)
/// or `MANUAL`.
pub(crate) fn disk_config(v: &Value) -> AppResult<String> {
    match v.as_str() {
        Some(d @ ("AUTO" | "MANUAL")) => Ok(d.to_string()),
        _ => Err(bad(format!(
            "Invalid input for field/attribute OS-DCF:diskConfig. Value: {v}. It is not one of 'AUTO', 'MANUAL'."
        ))),
    }
}

/// At most this many tags on a server, as Nova allows.
const MAX_TAGS: usize = 50;

fn tags_of(s: &Server) -> Vec<String> {
    s.doc
        .get("tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A list of tags as Nova takes one, on create and on replace: strings, each valid,
/// duplicates dropped, at most [`MAX_TAGS`].
fn tags_checked(v: &Value) -> AppResult<Vec<String>> {
    let list = v.as_array().ok_or_else(|| bad("Invalid input for field/attribute tags: a list of strings."))?;
    let mut tags: Vec<String> = Vec::new();
    for t in list {
        let t = t.as_str().ok_or_else(|| bad("Invalid input for field/attribute tags: strings."))?;
        tag_valid(t)?;
        if !tags.iter().any(|x| x == t) {
            tags.push(t.to_string());
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(bad(format!("The number of tags exceeded the per-server limit {MAX_TAGS}")));
    }
    Ok(tags)
}

/// A tag as Nova takes one: 1 to 60 characters, no `/` or `,`.
pub(crate) fn tag_valid(t: &str) -> AppResult<()> {
    let n = t.chars().count();
    if n == 0 || n > 60 || t.contains('/') || t.contains(',') {
        return Err(bad(format!("Invalid tag {t:?}: 1 to 60 characters, without '/' or ','.")));
    }
    Ok(())
}
