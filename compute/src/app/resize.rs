//! The requests that change a server on its host: rebuild (a new disk from an image,
//! same server) and resize (another flavor, on the same host) with confirm and revert.
//!
//! Rebuild, resize and revert each start a saga (see `change.rs`) in the transaction
//! that records the request: the server's task state, what it claims and the instance
//! action. A resize holds, until it ends, the larger of the old and new flavors in quota
//! (the server's `vcpus`/`ram`/`disk` columns are what it is charged for) and both
//! flavors on the host (the new one under `<id>:resize`); confirm keeps the new, revert
//! the old, a failure unwinds to the old.

use super::change::Change;
use super::create::reservation_of;
use super::servers::{ref_id, refused};
use super::AppResult;
use super::{bad, conflict, ComputeService};
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{Allocation, Charged, Flavor, Server, Store, OPEN_MIGRATIONS};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::saga::{NoData, Saga};

/// The consumer holding a resize's new flavor on the host.
pub fn resize_consumer(server_id: &str) -> String {
    format!("{server_id}:resize")
}

/// A flavor as a server's document keeps it.
pub fn flavor_doc(f: &Flavor) -> Value {
    json!({"id": f.id, "original_name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk,
           "ephemeral": f.ephemeral, "swap": f.swap, "extra_specs": f.extra_specs})
}

/// GiB of disk a flavor takes on a host (root, ephemeral and swap).
pub fn flavor_disk(f: &Value) -> i64 {
    let n = |k: &str| f[k].as_i64().unwrap_or(0);
    n("disk") + n("ephemeral") + (n("swap") + 1023) / 1024
}

pub(crate) fn shape(f: &Value) -> (i64, i64, i64) {
    (f["vcpus"].as_i64().unwrap_or(0), f["ram"].as_i64().unwrap_or(0), flavor_disk(f))
}

impl ComputeService {
    /// `rebuild`: the same server from (possibly) another image.
    pub async fn server_rebuild(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: &Map<String, Value>,
        request_id: &str,
    ) -> AppResult<Server> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.doc.contains_key("boot_volume") {
            return Err(bad("Rebuilding a server that boots from a volume is not supported by this cloud."));
        }
        let image_ref = body
            .get("imageRef")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| bad("Invalid input for field/attribute rebuild: 'imageRef' is a required property."))?;
        let image_id = ref_id(image_ref).to_string();
        let image =
            self.clients.image(&ctx.token, &image_id).await.map_err(|e| refused(&format!("Image {image_id}"), e))?;
        if image["status"] != "active" {
            return Err(bad(format!("Image {image_id} is not active.")));
        }
        let boot_files = self.boot_files(&ctx.token, &image).await?;
        if !matches!(server.vm_state, VmState::Active | VmState::Stopped | VmState::Error) || server.busy() {
            return Err(conflict(format!(
                "Cannot 'rebuild' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        for (k, v) in body {
            match (k.as_str(), v) {
                ("imageRef" | "adminPass" | "preserve_ephemeral", _) => {}
                ("OS-DCF:diskConfig", d) => {
                    server.doc.insert("disk_config".into(), json!(super::servers::disk_config(d)?));
                }
                ("accessIPv4" | "accessIPv6", _) => {
                    server.doc.insert(k.clone(), json!(super::servers::access_ip(k, v)?));
                }
                ("name", Value::String(n)) if !n.trim().is_empty() && n.len() <= 255 => server.name = n.trim().into(),
                ("description", Value::String(_) | Value::Null) => {
                    server.doc.insert("description".into(), v.clone());
                }
                ("metadata", Value::Object(m)) if m.values().all(Value::is_string) => {
                    server.doc.insert("metadata".into(), v.clone());
                }
                ("user_data", Value::String(_) | Value::Null) => {
                    server.doc.insert("user_data".into(), v.clone());
                }
                ("key_name", Value::Null) => {
                    server.doc.insert("key_name".into(), Value::Null);
                    server.doc.insert("key_data".into(), Value::Null);
                }
                ("key_name", Value::String(k)) => {
                    let key = self
                        .store
                        .keypair_get(ctx.user_id(), k)
                        .await?
                        .ok_or_else(|| bad("Invalid key_name provided."))?;
                    server.doc.insert("key_name".into(), json!(key.name));
                    server.doc.insert("key_data".into(), json!(key.public_key));
                }
                ("hostname", Value::String(h)) => {
                    server.doc.insert("hostname".into(), json!(h));
                }
                _ => return Err(bad(format!("Invalid input for field/attribute {k}."))),
            }
        }
        server.doc.insert("image_id".into(), json!(image_id));
        server.doc.remove("kernel_id");
        server.doc.remove("ramdisk_id");
        server.doc.extend(boot_files);
        server.task_state = Some(TaskState::Rebuilding);
        server.doc.remove("fault");
        let saga = self.change_saga(&mut server, Change::Rebuild);
        let action = Self::new_action(ctx, &server, "rebuild", request_id);
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, &server, Some(None)).await? {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        Store::action_start_in(&mut tx, &action).await?;
        tx.commit().await?;
        server.rev += 1;
        self.start_change(saga, &server);
        Ok(server)
    }

    /// The saga of a change, recorded on the server (whose save writes it with the saga).
    fn change_saga(&self, server: &mut Server, change: Change) -> Saga {
        let saga = Saga::fresh(Saga::new_id(), change.kind(), &server.id, &NoData {});
        server.control.saga_id = Some(saga.id.clone());
        saga
    }

    /// Drives a change's saga, just written with `server`, in the background.
    fn start_change(&self, mut saga: Saga, server: &Server) {
        saga.scratch = Some(Box::new(server.clone()));
        self.sagas.spawn_saga(saga);
    }

    /// `resize`: claims the new flavor on the server's host and the quota growth, then
    /// asks the agent. Refused at once (changing nothing) when it cannot fit.
    pub async fn server_resize(
        &self,
        ctx: &AuthContext,
        id: &str,
        flavor_ref: &str,
        disk_config: Option<&Value>,
        request_id: &str,
    ) -> AppResult<()> {
        let disk_config = disk_config.map(super::servers::disk_config).transpose()?;
        let mut server = self.server_for_action(ctx, id).await?;
        self.refuse_on_bare_metal(&server, "resize")?;
        if !matches!(server.vm_state, VmState::Active | VmState::Stopped) || server.busy() {
            return Err(conflict(format!(
                "Cannot 'resize' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.map_or("None", TaskState::as_str)
            )));
        }
        let flavor = match self.flavor_get(ctx, ref_id(flavor_ref)).await {
            Ok(f) => f,
            Err(_) => return Err(bad(format!("Unable to find flavor {flavor_ref}"))),
        };
        let old = server.doc.get("flavor").cloned().unwrap_or(json!({}));
        if old["id"].as_str() == Some(flavor.id.as_str()) {
            return Err(bad("When resizing, instances must change flavor!"));
        }
        let new = flavor_doc(&flavor);
        let (ov, or, od) = shape(&old);
        let (nv, nr, nd) = shape(&new);
        if flavor.disk < old["disk"].as_i64().unwrap_or(0) {
            return Err(bad("Resize to smaller disk flavor is not allowed."));
        }
        let host = server.host.clone().ok_or_else(|| conflict(format!("Instance {id} has no host.")))?;
        let consumer = resize_consumer(&server.id);
        let a = Allocation {
            consumer_id: consumer.clone(),
            host: host.clone(),
            vcpus: nv,
            ram: nr,
            disk: nd,
            reservation: reservation_of(&server),
        };
        let project = server.project_id.clone();
        let limits = [("cores", self.limit(&project, "cores").await?), ("ram", self.limit(&project, "ram").await?)];
        let claims = [("cores", (nv - ov).max(0), limits[0].1), ("ram", (nr - or).max(0), limits[1].1)];
        server.doc.insert(
            "resize".into(),
            json!({"old_flavor": old, "new_flavor": new, "old_vm_state": server.vm_state, "started_at": now_text()}),
        );
        server.vcpus = ov.max(nv);
        server.ram = or.max(nr);
        server.disk = od.max(nd);
        if let Some(d) = disk_config {
            server.doc.insert("disk_config".into(), json!(d));
        }
        server.task_state = Some(TaskState::ResizeMigrating);
        server.doc.remove("fault");
        let saga = self.change_saga(&mut server, Change::Resize);
        let action = Self::new_action(ctx, &server, "resize", request_id);
        // The host claim, the quota, the saga and the instance action: all or nothing.
        let mut tx = self.store.db.pool.begin().await?;
        // What an earlier resize may have left (none should) goes first.
        let stale = Store::release_in(&mut tx, &[&consumer], None).await?;
        // The quota first, as Nova: over quota is 403 whether or not the host has room.
        match Store::server_save_charging_in(&mut tx, &server, Some(None), &claims, &[]).await? {
            Charged::Saved => {}
            Charged::OverQuota => {
                drop(tx);
                return Err(super::forbidden(self.quota_usage_message(&project, &claims).await));
            }
            Charged::Changed => return Err(conflict(format!("Instance {id} is busy with another task."))),
        }
        let Some(row) = Store::claim_in(&mut tx, &a).await? else {
            return Err(bad(format!(
                "No valid host was found. Host {host} has no room for flavor {}, or is disabled (servers resize on their own host).",
                flavor.name
            )));
        };
        self.sagas.insert_saga(&mut tx, &saga).await?;
        Store::action_start_in(&mut tx, &action).await?;
        Store::migration_insert_in(&mut tx, &server.id, &project, ctx.user_id(), host.as_str()).await?;
        tx.commit().await?;
        server.rev += 1;
        for r in stale.into_iter().chain([row]) {
            self.scheduler.update(r);
        }
        self.start_change(saga, &server);
        Ok(())
    }

    async fn quota_usage_message(&self, project: &str, claims: &[(&str, i64, i64)]) -> String {
        let usage: std::collections::HashMap<String, i64> =
            self.store.usage(project).await.unwrap_or_default().into_iter().collect();
        for (resource, want, limit) in claims {
            let used = usage.get(*resource).copied().unwrap_or(0);
            if *limit >= 0 && used + want > *limit {
                return format!(
                    "Quota exceeded for {resource}: Requested {want}, but already used {used} of {limit} {resource}"
                );
            }
        }
        "Quota exceeded.".into()
    }

    /// `confirmResize`: keeps the new flavor; the old one's claim goes. Nothing to do
    /// on the host: one transaction.
    pub async fn server_confirm_resize(&self, ctx: &AuthContext, id: &str, request_id: &str) -> AppResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.vm_state != VmState::Resized || server.busy() {
            return Err(conflict(format!("Instance {id} is not in VERIFY_RESIZE: it cannot be confirmed.")));
        }
        let action = Self::new_action(ctx, &server, "confirmResize", request_id);
        let resize = server.doc.remove("resize").unwrap_or(json!({}));
        server.vm_state = resize["old_vm_state"].as_str().and_then(|v| v.parse().ok()).unwrap_or(VmState::Active);
        let mut tx = self.store.db.pool.begin().await?;
        if !Store::server_save_in(&mut tx, &server, Some(None)).await? {
            return Err(conflict(format!("Instance {id} changed while the request ran; try again.")));
        }
        let freed = Store::release_in(&mut tx, &[&server.id], None).await?;
        Store::allocation_move_in(&mut tx, &resize_consumer(&server.id), &server.id).await?;
        Store::action_start_in(&mut tx, &action).await?;
        Store::action_finish_in(&mut tx, &server.id, "confirmResize", "Success", None).await?;
        Store::migration_move_in(&mut tx, &server.id, OPEN_MIGRATIONS, "confirmed").await?;
        tx.commit().await?;
        server.rev += 1;
        for row in freed {
            self.scheduler.update(row);
        }
        self.notify("resize.confirm.end", &server).await;
        Ok(())
    }

    /// `revertResize`: back to the old flavor (the agent resizes the guest back).
    pub async fn server_revert_resize(&self, ctx: &AuthContext, id: &str, request_id: &str) -> AppResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.vm_state != VmState::Resized || server.busy() {
            return Err(conflict(format!("Instance {id} is not in VERIFY_RESIZE: it cannot be reverted.")));
        }
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        let (ov, or, od) = shape(&resize["old_flavor"]);
        let (nv, nr, nd) = shape(&resize["new_flavor"]);
        // While reverting the server holds the larger of both again (no limit: it had it).
        let claims = [("cores", (ov - nv).max(0), -1), ("ram", (or - nr).max(0), -1)];
        (server.vcpus, server.ram, server.disk) = (ov.max(nv), or.max(nr), od.max(nd));
        server.task_state = Some(TaskState::ResizeReverting);
        let saga = self.change_saga(&mut server, Change::Revert);
        let action = Self::new_action(ctx, &server, "revertResize", request_id);
        let mut tx = self.store.db.pool.begin().await?;
        if Store::server_save_charging_in(&mut tx, &server, Some(None), &claims, &[]).await? != Charged::Saved {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.sagas.insert_saga(&mut tx, &saga).await?;
        Store::action_start_in(&mut tx, &action).await?;
        Store::migration_move_in(&mut tx, &server.id, OPEN_MIGRATIONS, "reverting").await?;
        tx.commit().await?;
        server.rev += 1;
        self.start_change(saga, &server);
        Ok(())
    }
}
