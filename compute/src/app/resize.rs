//! Rebuild (a new disk from an image, same server) and resize (another flavor, on the
//! same host) with confirm and revert.
//!
//! Both are one command to the host's agent, tracked like the power actions: the
//! server's task state says what is under way, the command is recorded before it is
//! sent and sent again by the reconciler until answered, and the answer finishes or
//! unwinds the change. A resize holds, until it ends, the larger of the old and new
//! flavors in quota (the server's `vcpus`/`ram`/`disk` columns are what it is charged
//! for) and both flavors on the host (the new one under `<id>:resize`); confirm keeps
//! the new, revert the old, a failure unwinds to the old.

use super::servers::{ref_id, refused};
use super::{bad, conflict, ComputeService};
use crate::store::{Allocation, Charged, Flavor, Server};
use serde_json::{json, Map, Value};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;
use stratus_common::http::ApiResult;
use stratus_compute_agent::protocol::{CommandResult, Op};

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

fn shape(f: &Value) -> (i64, i64, i64) {
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
    ) -> ApiResult<Server> {
        let mut server = self.server_for_action(ctx, id).await?;
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
        if !matches!(server.vm_state.as_str(), "active" | "stopped" | "error") || server.task_state.is_some() {
            return Err(conflict(format!(
                "Cannot 'rebuild' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.as_deref().unwrap_or("None")
            )));
        }
        for (k, v) in body {
            match (k.as_str(), v) {
                (
                    "imageRef" | "adminPass" | "preserve_ephemeral" | "OS-DCF:diskConfig" | "accessIPv4" | "accessIPv6",
                    _,
                ) => {}
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
        server.task_state = Some("rebuilding".into());
        server.doc.remove("fault");
        if !self.store.server_save(&mut server, Some(None)).await? {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.start_action(ctx, &server, "rebuild", request_id).await;
        let mut spec = Self::guest_spec(&server);
        let host = match server.host.as_deref() {
            Some(h) => self.store.host_get(h).await?,
            None => None,
        };
        let driver = host.map(|h| h.driver).unwrap_or_default();
        if let Err(e) = self.add_config_drive(&server, &driver, &mut spec).await {
            tracing::warn!(error = %e, "cannot gather the rebuilt server's metadata; its config drive stays as it was");
        }
        if let Err(e) = self.send(&mut server, Op::Rebuild, Some(spec)).await {
            tracing::warn!(error = %e, "cannot send a rebuild now; the reconciler will");
        }
        Ok(server)
    }

    /// `resize`: claims the new flavor on the server's host and the quota growth, then
    /// asks the agent. Refused at once (changing nothing) when it cannot fit.
    pub async fn server_resize(
        &self,
        ctx: &AuthContext,
        id: &str,
        flavor_ref: &str,
        request_id: &str,
    ) -> ApiResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if !matches!(server.vm_state.as_str(), "active" | "stopped") || server.task_state.is_some() {
            return Err(conflict(format!(
                "Cannot 'resize' instance {id} while it is in vm_state {} and task_state {}",
                server.vm_state,
                server.task_state.as_deref().unwrap_or("None")
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
        let a = Allocation { consumer_id: consumer.clone(), host: host.clone(), vcpus: nv, ram: nr, disk: nd };
        if !self.store.claim(&a).await? {
            return Err(bad(format!(
                "No valid host was found. Host {host} has no room for flavor {} (servers resize on their own host).",
                flavor.name
            )));
        }
        self.scheduler_refresh(Some(&host)).await;
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
        server.task_state = Some("resize_migrating".into());
        let saved = self.store.server_save_charging(&mut server, Some(None), &claims, &[]).await;
        if !matches!(saved, Ok(Charged::Saved)) {
            self.release_claims(&[&consumer], None).await?;
            return Err(match saved? {
                Charged::OverQuota => super::forbidden(self.quota_usage_message(&project, &claims).await),
                _ => conflict(format!("Instance {id} is busy with another task.")),
            });
        }
        self.start_action(ctx, &server, "resize", request_id).await;
        let mut spec = Self::guest_spec(&server);
        (spec.vcpus, spec.ram_mb, spec.disk_gb) = (nv, nr, nd);
        if let Err(e) = self.send(&mut server, Op::Resize, Some(spec)).await {
            tracing::warn!(error = %e, "cannot send a resize now; the reconciler will");
        }
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

    /// `confirmResize`: keeps the new flavor; the old one's claim goes.
    pub async fn server_confirm_resize(&self, ctx: &AuthContext, id: &str, request_id: &str) -> ApiResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.vm_state != "resized" || server.task_state.is_some() {
            return Err(conflict(format!("Instance {id} is not in VERIFY_RESIZE: it cannot be confirmed.")));
        }
        self.start_action(ctx, &server, "confirmResize", request_id).await;
        let resize = server.doc.remove("resize").unwrap_or(json!({}));
        self.release_claims(&[&server.id], None).await?;
        self.store.allocation_move(&resize_consumer(&server.id), &server.id).await?;
        server.vm_state = resize["old_vm_state"].as_str().unwrap_or("active").into();
        self.save_api(&mut server).await?;
        self.finish_action(&server, "confirmResize", None).await;
        self.notify("resize.confirm.end", &server).await;
        Ok(())
    }

    /// `revertResize`: back to the old flavor (the agent resizes the guest back).
    pub async fn server_revert_resize(&self, ctx: &AuthContext, id: &str, request_id: &str) -> ApiResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.vm_state != "resized" || server.task_state.is_some() {
            return Err(conflict(format!("Instance {id} is not in VERIFY_RESIZE: it cannot be reverted.")));
        }
        let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
        let (ov, or, od) = shape(&resize["old_flavor"]);
        let (nv, nr, nd) = shape(&resize["new_flavor"]);
        // While reverting the server holds the larger of both again (no limit: it had it).
        let claims = [("cores", (ov - nv).max(0), -1), ("ram", (or - nr).max(0), -1)];
        (server.vcpus, server.ram, server.disk) = (ov.max(nv), or.max(nr), od.max(nd));
        server.task_state = Some("resize_reverting".into());
        if self.store.server_save_charging(&mut server, Some(None), &claims, &[]).await? != Charged::Saved {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.start_action(ctx, &server, "revertResize", request_id).await;
        let mut spec = Self::guest_spec(&server);
        (spec.vcpus, spec.ram_mb, spec.disk_gb) = (ov, or, od);
        if let Err(e) = self.send(&mut server, Op::Resize, Some(spec)).await {
            tracing::warn!(error = %e, "cannot send a resize revert now; the reconciler will");
        }
        Ok(())
    }

    /// The agent's answer to a rebuild or resize (the recorded command's).
    pub(crate) async fn on_rebuild_or_resize(&self, mut server: Server, r: &CommandResult) -> anyhow::Result<()> {
        let task = server.task_state.clone().unwrap_or_default();
        let error = r.error.clone();
        match (r.op, task.as_str()) {
            (Op::Rebuild, "rebuilding") => {
                server.task_state = None;
                match &error {
                    None => {
                        server.power_state = r.power_state;
                        server.vm_state = super::actions::vm_state_of(r.power_state).into();
                        server.launched_at = Some(now_text());
                    }
                    Some(e) => {
                        server.vm_state = "error".into();
                        server.set_fault(e);
                    }
                }
                self.save(&mut server).await?;
                self.finish_action(&server, "rebuild", error.as_deref()).await;
                self.notify(if error.is_none() { "rebuild.end" } else { "rebuild.error" }, &server).await;
            }
            (Op::Resize, "resize_migrating") => {
                let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
                let (ov, or, od) = shape(&resize["old_flavor"]);
                let (nv, nr, nd) = shape(&resize["new_flavor"]);
                server.task_state = None;
                let releases;
                match &error {
                    None => {
                        server.doc.insert("flavor".into(), resize["new_flavor"].clone());
                        (server.vcpus, server.ram, server.disk) = (nv, nr, nd);
                        server.vm_state = "resized".into();
                        server.power_state = r.power_state;
                        releases = [("cores", (ov - nv).max(0)), ("ram", (or - nr).max(0))];
                    }
                    Some(e) => {
                        // Unwind: the old flavor, its quota and its claim only.
                        server.doc.remove("resize");
                        (server.vcpus, server.ram, server.disk) = (ov, or, od);
                        server.vm_state = resize["old_vm_state"].as_str().unwrap_or("active").into();
                        server.set_fault(e);
                        releases = [("cores", (nv - ov).max(0)), ("ram", (nr - or).max(0))];
                    }
                }
                if self.store.server_save_charging(&mut server, None, &[], &releases).await? != Charged::Saved {
                    anyhow::bail!("server {} changed meanwhile", server.id);
                }
                if error.is_some() {
                    self.release_claims(&[&resize_consumer(&server.id)], None).await?;
                }
                self.finish_action(&server, "resize", error.as_deref()).await;
                self.notify(if error.is_none() { "resize.end" } else { "resize.error" }, &server).await;
            }
            (Op::Resize, "resize_reverting") => {
                let resize = server.doc.get("resize").cloned().unwrap_or(json!({}));
                let (ov, or, od) = shape(&resize["old_flavor"]);
                let (nv, nr, _) = shape(&resize["new_flavor"]);
                server.task_state = None;
                match &error {
                    None => {
                        server.doc.insert("flavor".into(), resize["old_flavor"].clone());
                        server.doc.remove("resize");
                        (server.vcpus, server.ram, server.disk) = (ov, or, od);
                        server.vm_state = resize["old_vm_state"].as_str().unwrap_or("active").into();
                        server.power_state = r.power_state;
                        let releases = [("cores", (nv - ov).max(0)), ("ram", (nr - or).max(0))];
                        if self.store.server_save_charging(&mut server, None, &[], &releases).await? != Charged::Saved {
                            anyhow::bail!("server {} changed meanwhile", server.id);
                        }
                        self.release_claims(&[&resize_consumer(&server.id)], None).await?;
                    }
                    Some(e) => {
                        server.vm_state = "error".into();
                        server.set_fault(e);
                        self.save(&mut server).await?;
                    }
                }
                self.finish_action(&server, "revertResize", error.as_deref()).await;
                self.notify(if error.is_none() { "resize.revert.end" } else { "resize.revert.error" }, &server).await;
            }
            _ => {
                tracing::debug!(server = %server.id, op = ?r.op, %task, "result does not match the task under way");
                self.save(&mut server).await?;
            }
        }
        Ok(())
    }

    /// The command a rebuild or resize under way needs (for the reconciler's resends).
    pub(crate) fn pending_change(server: &Server) -> Option<(Op, stratus_compute_agent::protocol::GuestSpec)> {
        let mut spec = Self::guest_spec(server);
        let resize = server.doc.get("resize");
        let flavor = match server.task_state.as_deref() {
            Some("rebuilding") => return Some((Op::Rebuild, spec)),
            Some("resize_migrating") => resize?.get("new_flavor")?,
            Some("resize_reverting") => resize?.get("old_flavor")?,
            _ => return None,
        };
        (spec.vcpus, spec.ram_mb, spec.disk_gb) = shape(flavor);
        Some((Op::Resize, spec))
    }
}
