//! A running server's network attachments: interfaces (`os-interface`: `server add|remove
//! network|port`), fixed IPs (`addFixedIp`, `removeFixedIp`) and security groups
//! (`addSecurityGroup`, `removeSecurityGroup`). The network service holds the truth
//! (ports); the server's document keeps a copy for its views, refreshed after every
//! change, and the host's agent is told to plug or unplug the NIC.

use super::servers::refused;
use super::AppResult;
use super::{bad, conflict, not_found, ComputeService};
use crate::store::TaskState;
use crate::store::VmState;
use crate::store::{strings, Server};
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_compute_protocol::{GuestSpec, Op, PortSpec};

/// The server's ports as recorded in its document.
fn recorded_ports(s: &Server) -> Vec<Value> {
    s.doc.get("ports").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// An `interfaceAttachment` view of a port.
pub fn attachment_view(port: &Value) -> Value {
    let fixed: Vec<Value> = port["fixed_ips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|ip| json!({"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}))
        .collect();
    json!({"port_id": port["id"], "net_id": port["network_id"], "mac_addr": port["mac_address"],
           "port_state": port["status"], "fixed_ips": fixed, "tag": null})
}

impl ComputeService {
    /// A server whose attachments may change now: ACTIVE or SHUTOFF, nothing under way.
    async fn server_for_network_change(&self, ctx: &AuthContext, id: &str, what: &str) -> AppResult<Server> {
        let s = self.server_for_action(ctx, id).await?;
        self.refuse_on_bare_metal(&s, what)?;
        if !matches!(s.vm_state, VmState::Active | VmState::Stopped) || s.busy() || s.host.is_none() {
            return Err(conflict(format!(
                "Cannot '{what}' instance {id} while it is in vm_state {} and task_state {}",
                s.vm_state,
                s.task_state.map_or("None", TaskState::as_str)
            )));
        }
        Ok(s)
    }

    /// The network service says a port of server `id` changed (`network-changed`,
    /// `network-vif-deleted`): its ports and addresses are read again, as Nova refreshes
    /// its network info cache. A server busy with another task is refused (its task
    /// records its ports when it ends).
    pub async fn server_network_changed(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        let mut server = self.server_for_action(ctx, id).await?;
        if server.busy() {
            return Err(conflict(format!("Instance {id} is busy with another task.")));
        }
        self.resync_ports(&mut server).await
    }

    /// Re-reads the server's ports from the network service into its document (and
    /// its addresses), then saves it.
    async fn resync_ports(&self, server: &mut Server) -> AppResult<()> {
        let live = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        let old = recorded_ports(server);
        let ports: Vec<Value> = live
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let before = old.iter().find(|o| o["id"] == p["id"]);
                let index = before.map(|o| o["index"].clone()).unwrap_or(json!(100 + i));
                let created = before.map(|o| o["created"].clone()).unwrap_or(json!(false));
                json!({"index": index, "id": p["id"], "created": created, "port": p})
            })
            .collect();
        server.doc.insert("ports".into(), Value::Array(ports));
        self.refresh_addresses(server, true).await;
        self.save_api(server).await
    }

    /// Tells the host's agent to plug or unplug the port's NIC (the agent's answer is
    /// not awaited: the port's status shows whether the NIC is up).
    async fn tell_agent(&self, server: &Server, op: Op, port: &Value) {
        let Some(host) = server.host.as_deref() else { return };
        let spec = GuestSpec {
            name: server.name.clone(),
            ports: vec![PortSpec {
                id: port["id"].as_str().unwrap_or_default().into(),
                mac_address: port["mac_address"].as_str().unwrap_or_default().into(),
                network_id: port["network_id"].as_str().unwrap_or_default().into(),
            }],
            ..Default::default()
        };
        if let Err(e) = self.send_untracked(host, &server.id, op, Some(spec)).await {
            tracing::warn!(server = %server.id, error = %e, "cannot reach the host's agent for an interface change");
        }
    }

    /// `POST /servers/{id}/os-interface`: attaches an existing port (`port_id`) or a new
    /// port on a network (`net_id`, optionally with `fixed_ips`).
    pub async fn interface_attach(
        &self,
        ctx: &AuthContext,
        id: &str,
        body: &serde_json::Map<String, Value>,
        request_id: &str,
    ) -> AppResult<Value> {
        let mut server = self.server_for_network_change(ctx, id, "attach_interface").await?;
        let host = server.host.clone().unwrap_or_default();
        let az = server.doc.get("availability_zone").and_then(Value::as_str).unwrap_or("nova").to_string();
        let owner = format!("compute:{az}");
        let port_id = body.get("port_id").and_then(Value::as_str).filter(|p| !p.is_empty());
        let net_id = body.get("net_id").and_then(Value::as_str).filter(|n| !n.is_empty());
        match (port_id, net_id) {
            (Some(_), Some(_)) => return Err(bad("Give either port_id or net_id, not both.")),
            (None, None) => return Err(bad("A port_id or a net_id is required.")),
            _ => {}
        }
        // Recorded before any port is made, so a delete after a crash looks for ports.
        if !server.doc.contains_key("interfaces_attached") {
            server.doc.insert("interfaces_attached".into(), json!(true));
            self.save_api(&mut server).await?;
        }
        let port = match (port_id, net_id) {
            (Some(pid), None) => {
                let p = self.clients.port_as(&ctx.token, pid).await.map_err(|e| refused(&format!("Port {pid}"), e))?;
                if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) {
                    return Err(conflict(format!("Port {pid} is still in use.")));
                }
                if p["project_id"].as_str() != Some(server.project_id.as_str()) && !ctx.is_admin() {
                    return Err(bad(format!("Port {pid} belongs to another project.")));
                }
                let update = json!({"device_id": server.id, "device_owner": owner, "binding:host_id": host});
                let p = self.clients.port_update(pid, update).await.map_err(|e| refused("Port", e))?;
                // A port the user brought stays when the server goes.
                if let Some(Value::Array(req)) = server.doc.get_mut("requested_networks") {
                    req.push(json!({"port": pid}));
                }
                p
            }
            (None, Some(net)) => {
                self.clients.network(&ctx.token, net).await.map_err(|e| refused(&format!("Network {net}"), e))?;
                let mut req = json!({"network_id": net, "project_id": server.project_id, "device_id": server.id,
                                     "device_owner": owner, "binding:host_id": host, "name": ""});
                match body.get("fixed_ips") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(ips)) if ips.iter().all(|ip| ip["ip_address"].is_string()) => {
                        req["fixed_ips"] =
                            json!(ips.iter().map(|ip| json!({"ip_address": ip["ip_address"]})).collect::<Vec<_>>());
                    }
                    Some(_) => return Err(bad("Invalid input for field/attribute fixed_ips.")),
                }
                if let Some(sgs) =
                    server.doc.get("security_group_ids").filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
                {
                    req["security_groups"] = sgs.clone();
                }
                self.clients.port_create(req).await.map_err(|e| refused("Port", e))?
            }
            _ => unreachable!("checked above"),
        };
        self.start_action(ctx, &server, "attach_interface", request_id).await;
        if let Err(e) = self.resync_ports(&mut server).await {
            // Nothing may be left half done: a port made here goes again.
            if net_id.is_some() {
                let _ = self.clients.port_delete(port["id"].as_str().unwrap_or_default()).await;
            }
            self.finish_action(&server, "attach_interface", Some(&e.to_string())).await;
            return Err(e);
        }
        self.tell_agent(&server, Op::AttachInterface, &port).await;
        self.finish_action(&server, "attach_interface", None).await;
        self.notify("interface_attach.end", &server).await;
        Ok(attachment_view(&port))
    }

    /// `DELETE /servers/{id}/os-interface/{port_id}`: a port made for the server is
    /// deleted, one the user brought is released.
    pub async fn interface_detach(
        &self,
        ctx: &AuthContext,
        id: &str,
        port_id: &str,
        request_id: &str,
    ) -> AppResult<()> {
        let mut server = self.server_for_network_change(ctx, id, "detach_interface").await?;
        let ports = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        let Some(port) = ports.iter().find(|p| p["id"].as_str() == Some(port_id)).cloned() else {
            return Err(not_found(format!("Port {port_id} is not attached")));
        };
        self.start_action(ctx, &server, "detach_interface", request_id).await;
        let brought = server
            .doc
            .get("requested_networks")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|x| x["port"].as_str() == Some(port_id)));
        let result = if brought {
            let release = json!({"device_id": "", "device_owner": "", "binding:host_id": ""});
            self.clients.port_update(port_id, release).await.map(|_| ())
        } else {
            self.clients.port_delete(port_id).await
        };
        result.map_err(|e| refused("Port", e))?;
        if let Some(Value::Array(req)) = server.doc.get_mut("requested_networks") {
            req.retain(|x| x["port"].as_str() != Some(port_id));
        }
        self.resync_ports(&mut server).await?;
        self.tell_agent(&server, Op::DetachInterface, &port).await;
        self.finish_action(&server, "detach_interface", None).await;
        self.notify("interface_detach.end", &server).await;
        Ok(())
    }

    /// `GET /servers/{id}/os-interface[/{port_id}]`.
    pub async fn interfaces(&self, ctx: &AuthContext, id: &str) -> AppResult<Vec<Value>> {
        let server = self.server_get(ctx, id).await?;
        let ports = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        Ok(ports.iter().map(attachment_view).collect())
    }

    /// `addFixedIp`: one more address on the server's port on that network.
    pub async fn fixed_ip_add(&self, ctx: &AuthContext, id: &str, network_id: &str) -> AppResult<()> {
        let mut server = self.server_for_network_change(ctx, id, "addFixedIp").await?;
        let ports = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        let Some(port) = ports.iter().find(|p| p["network_id"].as_str() == Some(network_id)) else {
            return Err(bad(format!("Network {network_id} is not attached to instance {id}.")));
        };
        let mut ips: Vec<Value> = port["fixed_ips"].as_array().cloned().unwrap_or_default();
        let Some(subnet) = ips.first().map(|ip| ip["subnet_id"].clone()) else {
            return Err(bad(format!("The port of instance {id} on network {network_id} has no subnet.")));
        };
        ips.push(json!({"subnet_id": subnet}));
        let pid = port["id"].as_str().unwrap_or_default();
        self.clients.port_update(pid, json!({"fixed_ips": ips})).await.map_err(|e| refused("Fixed IP", e))?;
        self.resync_ports(&mut server).await
    }

    /// `removeFixedIp`: takes the address off whichever of the server's ports has it.
    pub async fn fixed_ip_remove(&self, ctx: &AuthContext, id: &str, address: &str) -> AppResult<()> {
        let mut server = self.server_for_network_change(ctx, id, "removeFixedIp").await?;
        let ports = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        let has = |p: &&Value| {
            p["fixed_ips"].as_array().is_some_and(|ips| ips.iter().any(|ip| ip["ip_address"].as_str() == Some(address)))
        };
        let Some(port) = ports.iter().find(has) else {
            return Err(bad(format!("Instance {id} has no fixed IP {address}.")));
        };
        let ips: Vec<Value> = port["fixed_ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|ip| ip["ip_address"].as_str() != Some(address))
            .map(|ip| json!({"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}))
            .collect();
        let pid = port["id"].as_str().unwrap_or_default();
        self.clients.port_update(pid, json!({"fixed_ips": ips})).await.map_err(|e| refused("Fixed IP", e))?;
        self.resync_ports(&mut server).await
    }

    /// `addSecurityGroup` / `removeSecurityGroup` (by name or id): changes every port
    /// of the server and its recorded groups.
    pub async fn security_group_change(&self, ctx: &AuthContext, id: &str, group: &str, add: bool) -> AppResult<()> {
        let what = if add { "addSecurityGroup" } else { "removeSecurityGroup" };
        let mut server = self.server_for_action(ctx, id).await?;
        if server.busy() || server.vm_state == VmState::Building {
            return Err(conflict(format!("Cannot '{what}' instance {id} while it is being changed")));
        }
        let (names, ids) = self.security_groups_for(&ctx.token, Some(&json!([{ "name": group }]))).await?;
        let (name, gid) = (names[0].clone(), ids[0].clone());
        let mut have_ids = server.strings("security_group_ids");
        let mut have_names = server.strings("security_groups");
        let ports = self.clients.ports_of(&server.id, &server.project_id).await.map_err(|e| refused("Ports", e))?;
        let on_ports = ports.iter().any(|p| {
            p["security_groups"].as_array().is_some_and(|g| g.iter().any(|x| x.as_str() == Some(gid.as_str())))
        });
        let present = have_ids.contains(&gid) || on_ports || (have_ids.is_empty() && have_names.contains(&name));
        if add && present {
            return Err(bad(format!("Security group {name} is already associated with the instance {id}")));
        }
        if !add && !present {
            return Err(bad(format!("Security group {name} not associated with the instance {id}")));
        }
        for p in &ports {
            let mut groups = strings(&p["security_groups"]);
            if add {
                groups.push(gid.clone());
            } else {
                groups.retain(|g| g != &gid);
            }
            let pid = p["id"].as_str().unwrap_or_default();
            self.clients
                .port_update(pid, json!({ "security_groups": groups }))
                .await
                .map_err(|e| refused("Security group", e))?;
        }
        if add {
            have_ids.push(gid);
            have_names.push(name);
        } else {
            have_ids.retain(|g| g != &gid);
            have_names.retain(|n| n != &name);
        }
        server.doc.insert("security_group_ids".into(), json!(have_ids));
        server.doc.insert("security_groups".into(), json!(have_names));
        if ports.is_empty() {
            self.save_api(&mut server).await
        } else {
            self.resync_ports(&mut server).await
        }
    }
}
