//! The create saga: schedule and claim → ports → boot volume (for a server booting from
//! a volume: made from its image if asked, attached as the root disk) → spawn on the
//! host's agent → ACTIVE.
//! Quota is claimed before the saga starts, in the transaction that makes the server
//! row, so an over-quota request is refused at once and nothing exists. A failure at
//! any step unwinds: the guest is destroyed, ports deleted (or given back when the user
//! brought them), the host claim and quota released, the server put in ERROR with a
//! fault saying why. A failed spawn is first retried on other hosts.

use super::{changed, moved_on, server_step, service, ComputeService, ServerSaga};
use crate::scheduler::Request;
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Allocation, HostClaim, Server, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use stratus_common::db::now_text;
use stratus_common::saga::{
    nothing_to_undo, Outcome, Saga, SagaDef, SagaState, Step, StepError, StepFuture, StepResult,
};
use stratus_compute_protocol::{GuestSpec, HostName, Op, PortSpec, PowerState};

pub const KIND: &str = "create";

/// What the create saga's steps share: the builds that failed, so that a retry goes
/// elsewhere and the final fault tells the last reason.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BuildTries {
    /// Builds that failed and were retried on another host.
    pub retries: i64,
    /// Hosts that failed this build.
    pub avoid: Vec<HostName>,
    /// Why the last build failed.
    pub last_error: Option<String>,
}

pub struct CreateSaga(pub Weak<ComputeService>);

/// The steps, each beside its undo.
const STEPS: &[Step<CreateSaga>] = &[
    Step {
        name: "schedule",
        run: server_step!(step_schedule),
        undo: |def, saga, _| {
            Box::pin(async move {
                let s = service(&def.0)?;
                s.release_claims(&[&saga.subject], None).await?;
                Ok(())
            })
        },
    },
    Step {
        name: "ports",
        run: server_step!(step_ports),
        undo: |def, saga, _| {
            Box::pin(async move {
                let s = service(&def.0)?;
                if let Some(mut server) = s.store.server_get(&saga.subject).await? {
                    s.ports_remove(&mut server, true).await?;
                }
                Ok(())
            })
        },
    },
    Step {
        name: "boot_volume",
        run: server_step!(step_boot_volume),
        undo: |def, saga, _| Box::pin(async move { service(&def.0)?.boot_volume_release(&saga.subject).await }),
    },
    Step {
        name: "spawn",
        run: server_step!(step_spawn),
        undo: |def, saga, _| {
            Box::pin(async move {
                let s = service(&def.0)?;
                let Some(mut server) = s.store.server_get(&saga.subject).await? else { return Ok(()) };
                if let Some(host) = server.host.clone() {
                    // Untracked: the spawn may still be running there; a guest it
                    // leaves behind is an orphan the reconciler destroys.
                    s.send_untracked(&host, &server.id, Op::Destroy, None).await?;
                    server.control.spawn = None;
                    server.control.command = None;
                    s.save(&mut server).await?;
                }
                Ok(())
            })
        },
    },
    Step { name: "finish", run: server_step!(step_finish), undo: nothing_to_undo },
];

impl ServerSaga for CreateSaga {
    async fn load(&self, saga: &mut Saga) -> StepResult<Option<(Arc<ComputeService>, Server)>> {
        let s = service(&self.0)?;
        let Some(server) = s.server_for_step(saga).await? else {
            return Err(StepError::permanent("The server is gone."));
        };
        if server.deleted {
            return Err(StepError::permanent("The server was deleted."));
        }
        Ok(Some((s, server)))
    }
}

impl SagaDef for CreateSaga {
    type Data = BuildTries;

    fn kind(&self) -> &'static str {
        KIND
    }

    fn steps(&self) -> &'static [Step<Self>] {
        STEPS
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            if saga.state != SagaState::Failed {
                return Ok(());
            }
            let s = service(&self.0)?;
            let Some(mut server) = s.store.server_get(&saga.subject).await? else { return Ok(()) };
            server.vm_state = VmState::Error;
            server.task_state = None;
            server.host = None;
            server.set_fault(&saga.error);
            server.control.saga_id = None;
            let delete_requested = server.control.delete_requested;
            if delete_requested {
                server.task_state = Some(TaskState::Deleting);
            }
            // The quota is given back with the save, in one transaction.
            if !s.store.server_save_uncharged(&mut server).await? {
                return Err(changed(&server));
            }
            s.leave_group(&server).await?;
            s.finish_action(&server, "create", Some(&saga.error)).await;
            s.notify("create.error", &server).await;
            if delete_requested {
                s.start_delete(&server).await?;
            }
            Ok(())
        })
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        Box::pin(async move { service(&self.0)?.saga_stuck(saga, "create").await })
    }
}

/// What a server claims on a host: its flavor's share, in its reservation if any.
fn allocation(server: &Server, host: HostName, reservation: Option<String>) -> Allocation {
    Allocation {
        consumer_id: server.id.to_string(),
        host,
        vcpus: server.vcpus,
        ram: server.ram,
        disk: server.disk,
        reservation,
    }
}

/// The flavor extra spec naming the `flavor:instance` reservation a flavor was made
/// for (by the reservation service, at the lease's start): a server of that flavor
/// runs in the reservation, as if it had the `reservation` scheduler hint.
pub const RESERVATION_SPEC: &str = "aggregate_instance_extra_specs:reservation";

/// The lease reservation a server was booted into (its `reservation` scheduler hint).
pub(crate) fn reservation_of(server: &Server) -> Option<String> {
    server.doc.get("hints").and_then(|h| h.get("reservation")).and_then(Value::as_str).map(str::to_string)
}

impl ComputeService {
    /// What a server asks of a host.
    fn request_for(&self, server: &Server, avoid: Vec<HostName>) -> Request {
        let specs = server.doc.get("flavor").and_then(|f| f.get("extra_specs")).and_then(Value::as_object);
        let mut req = Request {
            vcpus: server.vcpus,
            ram: server.ram,
            disk: server.disk,
            availability_zone: server.doc.get("availability_zone").and_then(Value::as_str).map(str::to_string),
            avoid_hosts: avoid,
            reservation: reservation_of(server),
            project_id: server.project_id.clone(),
            ..Default::default()
        };
        for (k, v) in specs.into_iter().flatten() {
            if let Some(class) = k.strip_prefix("resources:").filter(|c| c.starts_with("CUSTOM_")) {
                let amount = v.as_str().and_then(|a| a.trim().parse::<i64>().ok()).or_else(|| v.as_i64());
                if amount.is_some_and(|a| a > 0) {
                    req.resource_class = Some(class.to_string());
                }
            }
            if let Some(t) = k.strip_prefix("trait:") {
                match v.as_str() {
                    Some("required") => req.required_traits.push(t.to_string()),
                    Some("forbidden") => req.forbidden_traits.push(t.to_string()),
                    _ => {}
                }
            }
        }
        if let Some(h) = server.doc.get("forced_host").and_then(Value::as_str) {
            req.only_hosts = Some(vec![h.into()]);
        }
        req
    }

    /// Gives back what `consumers` hold (on `host` only, when given) and updates the
    /// scheduler's view of the hosts freed.
    pub(crate) async fn release_claims(&self, consumers: &[&str], host: Option<&str>) -> crate::store::StoreResult<()> {
        for row in self.store.release(consumers, host).await? {
            self.scheduler.update(row);
        }
        Ok(())
    }

    pub(crate) async fn scheduler_refresh(&self, host: Option<&str>) {
        if let Some(h) = host {
            if let Ok(Some(row)) = self.store.host_get(h).await {
                self.scheduler.update(row);
            }
        }
    }

    /// The host claim of a server's first schedule, made inside its create request's
    /// transaction when nothing but capacity decides it (no server group, reservation or
    /// forced host). None when no host took it: the saga's schedule step then
    /// schedules, with its retries and its "no valid host".
    pub(crate) async fn claim_with_request(
        &self,
        conn: &mut sqlx::AnyConnection,
        server: &Server,
    ) -> crate::store::StoreResult<Option<crate::store::HostRow>> {
        let hints = server.doc.get("hints").and_then(Value::as_object);
        if hints.is_some_and(|h| h.contains_key("group") || h.contains_key("reservation")) {
            return Ok(None);
        }
        let req = self.request_for(server, Vec::new());
        if req.only_hosts.is_some() {
            return Ok(None);
        }
        for host in self.scheduler.select(&req, 3) {
            if let Some(row) = Store::claim_in(conn, &allocation(server, host, None)).await? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }

    async fn step_schedule(
        &self,
        _: &CreateSaga,
        server: &mut Server,
        saga: &mut Saga,
        tries: &mut BuildTries,
    ) -> StepResult<Outcome> {
        // Claimed with the create request itself (a first drive starts from the row it
        // wrote; a reschedule clears the host before coming back here).
        if saga.unbroken && server.host.is_some() {
            return Ok(Outcome::Next);
        }
        // A claim made before a crash: keep it (recording its host if the crash came
        // before the server was saved). A saga's first drive cannot have one.
        if !saga.fresh {
            let held = self.store.allocations(&server.id).await?;
            let kept = held.iter().find(|a| server.host.as_ref() == Some(&a.host)).or(held.first());
            if let Some(a) = kept {
                if server.host.as_ref() != Some(&a.host) {
                    server.host = Some(a.host.clone());
                    server.task_state = Some(TaskState::Scheduling);
                    self.save(server).await?;
                }
                return Ok(Outcome::Next);
            }
        }
        let mut avoid = tries.avoid.clone();
        avoid.extend(self.group_hosts_to_avoid(server).await?);
        let mut req = self.request_for(server, avoid);
        if let Some(only) = self.group_hosts_required(server).await? {
            req.only_hosts = Some(only);
        }
        let apart = self.anti_affinity_group(server).await?;
        for host in self.scheduler.select(&req, 20) {
            let a = allocation(server, host.clone(), req.reservation.clone());
            let (was_host, was_task) =
                (server.host.replace(host.clone()), server.task_state.replace(TaskState::Scheduling));
            match self.store.claim_apart(&a, apart.as_deref(), Some(server)).await? {
                HostClaim::Claimed(row) => {
                    self.scheduler.update(*row);
                    return Ok(Outcome::Next);
                }
                HostClaim::Refused => (server.host, server.task_state) = (was_host, was_task),
                HostClaim::ServerChanged => return Err(changed(server)),
            }
            // The view was stale: refresh the host and try the next one.
            self.scheduler_refresh(Some(&host)).await;
        }
        Err(StepError::Permanent(match &tries.last_error {
            Some(e) => format!("Build of instance {} failed on every host tried. Last error: {e}", server.id),
            None => "No valid host was found. There are not enough hosts available.".into(),
        }))
    }

    async fn step_ports(
        &self,
        _: &CreateSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut BuildTries,
    ) -> StepResult<Outcome> {
        let host = server.host.clone().unwrap_or_default();
        let requested: Vec<Value> =
            server.doc.get("requested_networks").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut ports: Vec<Value> = server.doc.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if requested.is_empty() && ports.is_empty() {
            // A server without networks: nothing to make, adopt or save (the spawn
            // step sets the task state).
            return Ok(Outcome::Next);
        }
        // Ports made by an earlier attempt of this step but not recorded (a crash, a
        // failure before the save) are found by their device id; in the saga's first,
        // unbroken drive there can be none.
        let existing = if requested.is_empty() || saga.unbroken {
            Vec::new()
        } else {
            match self.clients.ports_of(&server.id, &server.project_id).await {
                Ok(p) => p,
                Err(e) => return Err(e.into()),
            }
        };
        let az = server.doc.get("availability_zone").and_then(Value::as_str).unwrap_or("nova").to_string();
        for (i, r) in requested.iter().enumerate() {
            if ports.iter().any(|p| p["index"] == json!(i)) {
                continue;
            }
            let recorded: Vec<String> = ports.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();
            let port = if let Some(pid) = r["port"].as_str() {
                let body =
                    json!({"device_id": server.id, "device_owner": format!("compute:{az}"), "binding:host_id": host});
                match self.clients.port_update(pid, body).await {
                    Ok(p) => json!({"index": i, "id": pid, "created": false, "port": p}),
                    Err(e) => return Err(e.into()),
                }
            } else {
                let net = r["uuid"].as_str().unwrap_or_default();
                // A port made before a crash, not yet recorded: adopt it.
                let adopt = existing.iter().find(|p| {
                    p["network_id"].as_str() == Some(net) && !recorded.iter().any(|id| p["id"].as_str() == Some(id))
                });
                let p = match adopt {
                    Some(p) => p.clone(),
                    None => {
                        let mut body = json!({"network_id": net, "project_id": server.project_id, "device_id": server.id,
                                              "device_owner": format!("compute:{az}"), "binding:host_id": host,
                                              "name": ""});
                        if let Some(ip) = r["fixed_ip"].as_str() {
                            body["fixed_ips"] = json!([{"ip_address": ip}]);
                        }
                        if let Some(sgs) =
                            server.doc.get("security_group_ids").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                        {
                            body["security_groups"] = sgs.clone();
                        }
                        match self.clients.port_create(body).await {
                            Ok(p) => p,
                            Err(e) => return Err(e.into()),
                        }
                    }
                };
                json!({"index": i, "id": p["id"], "created": true, "port": p})
            };
            // Recorded with the save below; one made and not recorded (a crash before
            // the save) is adopted by the next attempt.
            ports.push(port);
        }
        // After a reschedule the ports move with the server.
        for p in ports.iter_mut() {
            if p["port"]["binding:host_id"].as_str() != Some(host.as_str()) {
                let id = p["id"].as_str().unwrap_or_default().to_string();
                match self.clients.port_update(&id, json!({"binding:host_id": host})).await {
                    Ok(np) => p["port"] = np,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        server.doc.insert("ports".into(), Value::Array(ports));
        self.refresh_addresses(server, false).await;
        // Run again on a built server (a repeated step), it must not look building.
        if server.vm_state == VmState::Building {
            server.task_state = Some(TaskState::Spawning);
        }
        // In the saga's first, unbroken drive the spawn step comes next and saves (it
        // sends the first spawn command); a crash or failure before that only repeats
        // this step, which then adopts the ports it made. A later drive saves here.
        if !saga.unbroken {
            self.save(server).await?;
        }
        Ok(Outcome::Next)
    }

    /// Removes the server's ports: deletes those made for it, gives back those the
    /// user brought. Tolerates ports already gone; finds unrecorded ones by device id.
    /// With `save`, the server is saved with no ports and no addresses (the delete
    /// saga does that in its last save instead).
    pub(crate) async fn ports_remove(&self, server: &mut Server, save: bool) -> anyhow::Result<()> {
        let ports: Vec<Value> = server.doc.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
        let brought: Vec<String> = server
            .doc
            .get("requested_networks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r["port"].as_str().map(str::to_string))
            .collect();
        let mut ids: Vec<String> = ports.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();
        // Ports made but not yet recorded (a crash in between) are found by device id.
        if Self::may_have_ports(server) && !Self::ports_all_recorded(server) {
            match self.clients.ports_of(&server.id, &server.project_id).await {
                Ok(found) => ids.extend(found.iter().filter_map(|p| p["id"].as_str().map(str::to_string))),
                Err(e) => anyhow::bail!(e),
            }
        }
        ids.sort();
        ids.dedup();
        for id in ids {
            if brought.contains(&id) {
                let body = json!({"device_id": "", "device_owner": "", "binding:host_id": ""});
                match self.clients.port_update(&id, body).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => anyhow::bail!(e),
                }
            } else {
                self.clients.port_delete(&id).await.map_err(|e| anyhow::anyhow!(e))?;
            }
        }
        if save && (server.doc.get("ports") != Some(&json!([])) || server.doc.get("addresses") != Some(&json!({}))) {
            server.doc.insert("ports".into(), json!([]));
            server.doc.insert("addresses".into(), json!({}));
            self.save(server).await?;
        }
        Ok(())
    }

    /// Whether ports may exist for the server: it asked for networks, has ports, or
    /// had an interface attached.
    pub(crate) fn may_have_ports(server: &Server) -> bool {
        let non_empty = |k: &str| server.doc.get(k).and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        non_empty("requested_networks") || non_empty("ports") || server.doc.contains_key("interfaces_attached")
    }

    /// Whether the recorded ports are all the server can have: one is recorded for
    /// every network it asked for, and no interface was ever attached. A port made and
    /// not yet recorded (a crash between the two) leaves one of them short.
    pub(crate) fn ports_all_recorded(server: &Server) -> bool {
        if server.doc.contains_key("interfaces_attached") {
            return false;
        }
        let requested = server.doc.get("requested_networks").and_then(Value::as_array).map_or(0, Vec::len);
        let ports = server.doc.get("ports").and_then(Value::as_array);
        (0..requested).all(|i| ports.is_some_and(|p| p.iter().any(|p| p["index"] == json!(i))))
    }

    /// Rebuilds `addresses` from the server's ports (and, with `floating`, the
    /// floating IPs on them). Keeps the old value when the network service is away.
    pub(crate) async fn refresh_addresses(&self, server: &mut Server, floating: bool) {
        let ports: Vec<Value> = server.doc.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
        if ports.is_empty() {
            server.doc.insert("addresses".into(), json!({}));
            return;
        }
        let net_ids: Vec<String> =
            ports.iter().filter_map(|p| p["port"]["network_id"].as_str().map(str::to_string)).collect();
        let names = match self.clients.network_names(&net_ids).await {
            Ok(n) => n,
            Err(_) => return,
        };
        let fips = if floating {
            let ids: Vec<String> = ports.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();
            self.clients.floating_ips_of(&ids).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut addresses = serde_json::Map::new();
        for p in &ports {
            let port = &p["port"];
            let net = port["network_id"].as_str().unwrap_or_default();
            let name =
                names.iter().find(|(id, _)| id == net).map(|(_, n)| n.clone()).unwrap_or_else(|| net.to_string());
            let mac = port["mac_address"].clone();
            let entry = addresses.entry(name).or_insert_with(|| json!([]));
            for ip in port["fixed_ips"].as_array().into_iter().flatten() {
                let addr = ip["ip_address"].as_str().unwrap_or_default();
                let version = if addr.contains(':') { 6 } else { 4 };
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!({"version": version, "addr": addr, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}));
                }
            }
            for f in fips.iter().filter(|f| f["port_id"] == p["id"]) {
                if let Some(a) = entry.as_array_mut() {
                    a.push(json!({"version": 4, "addr": f["floating_ip_address"], "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac}));
                }
            }
        }
        server.doc.insert("addresses".into(), Value::Object(addresses));
    }

    pub(crate) fn guest_spec(server: &Server) -> GuestSpec {
        let ports = server
            .doc
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| PortSpec {
                id: p["id"].as_str().unwrap_or_default().into(),
                mac_address: p["port"]["mac_address"].as_str().unwrap_or_default().into(),
                network_id: p["port"]["network_id"].as_str().unwrap_or_default().into(),
            })
            .collect();
        GuestSpec {
            name: server.name.clone(),
            vcpus: server.vcpus,
            ram_mb: server.ram,
            disk_gb: server.disk,
            image_id: server.str("image_id").to_string(),
            kernel_id: server.doc.get("kernel_id").and_then(Value::as_str).map(str::to_string),
            ramdisk_id: server.doc.get("ramdisk_id").and_then(Value::as_str).map(str::to_string),
            ports,
            user_data: server.doc.get("user_data").and_then(Value::as_str).map(str::to_string),
            key_data: server.doc.get("key_data").and_then(Value::as_str).map(str::to_string),
            config_drive: None,
            volumes: server
                .volumes()
                .into_iter()
                .map(|v| stratus_compute_protocol::VolumeSpec {
                    volume_id: v.volume_id,
                    device: v.device,
                    driver_volume_type: v.connection["driver_volume_type"].as_str().unwrap_or_default().to_string(),
                    data: v.connection["data"].clone(),
                    boot: v.boot,
                    size_gb: None,
                })
                .collect(),
            command_line: super::volumes::boot_volume_of(server)
                .and_then(|b| b.image_meta["os_command_line"].as_str().map(str::to_string)),
            snapshot_image: None,
        }
    }

    async fn step_boot_volume(
        &self,
        _: &CreateSaga,
        server: &mut Server,
        _: &mut Saga,
        _: &mut BuildTries,
    ) -> StepResult<Outcome> {
        self.boot_volume_prepare(server).await?;
        Ok(Outcome::Next)
    }

    async fn step_spawn(
        &self,
        _: &CreateSaga,
        server: &mut Server,
        saga: &mut Saga,
        tries: &mut BuildTries,
    ) -> StepResult<Outcome> {
        let host = server.host.clone().unwrap_or_default();
        if let Some(result) = server.control.spawn.clone() {
            if result.host == host {
                let Some(error) = result.error else { return Ok(Outcome::Next) };
                // The host failed the build: try another one, a bounded number of times.
                return self.reschedule(server, tries, &host, error).await;
            }
        }
        let row = self.host_row(&host).await?.filter(|h| self.scheduler.is_up(h));
        let Some(row) = row else {
            return self.reschedule(server, tries, &host, format!("Host {host} went down during the build.")).await;
        };
        if !self.command_due(server, Op::Spawn) {
            return Ok(Outcome::Pending);
        }
        let mut spec = Self::guest_spec(server);
        self.add_config_drive(server, &row.driver, &mut spec).await?;
        if spec.config_drive.is_some() {
            // Shown as Nova shows a server with a config drive.
            server.doc.insert("config_drive".into(), json!(true));
        }
        server.task_state = Some(TaskState::Spawning);
        self.send_to(server, &row, Op::Spawn, Some(spec), Some(saga)).await?;
        Ok(Outcome::Pending)
    }

    async fn reschedule(
        &self,
        server: &mut Server,
        tries: &mut BuildTries,
        host: &str,
        error: String,
    ) -> StepResult<Outcome> {
        let retries = tries.retries;
        if retries >= self.settings.build_retries {
            return Err(StepError::Permanent(format!(
                "Build of instance {} failed after {} attempts: {error}",
                server.id,
                retries + 1
            )));
        }
        tracing::info!(server = %server.id, host, error = %error, "build failed; rescheduling");
        self.send_untracked(host, &server.id, Op::Destroy, None).await?;
        self.release_claims(&[&server.id], Some(host)).await?;
        tries.retries = retries + 1;
        tries.last_error = Some(error);
        tries.avoid.push(host.into());
        server.control.spawn = None;
        server.control.command = None;
        server.host = None;
        self.save(server).await?;
        Ok(Outcome::Goto("schedule"))
    }

    async fn step_finish(
        &self,
        _: &CreateSaga,
        server: &mut Server,
        saga: &mut Saga,
        _: &mut BuildTries,
    ) -> StepResult<Outcome> {
        if server.vm_state == VmState::Active && server.task_state.is_none() {
            return Ok(Outcome::Next);
        }
        let power = server.control.spawn.as_ref().map_or(PowerState::Running, |r| r.power_state);
        server.vm_state = VmState::Active;
        server.task_state = None;
        server.power_state = power;
        server.launched_at = Some(now_text());
        server.control.saga_id = None;
        server.control.command = None;
        // The server, its instance action and the saga's end in one transaction.
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, server, None).await? {
            return Err(changed(server));
        }
        Store::action_finish_in(&mut tx, &server.id, "create", "Success", None).await?;
        if !self.sagas.finish_in(&mut tx, saga).await? {
            return Err(moved_on(saga));
        }
        tx.commit().await?;
        server.rev += 1;
        self.notify("create.end", server).await;
        Ok(Outcome::Finished)
    }
}
