//! Bare-metal nodes as compute hosts, as Nova's ironic driver makes them: every node of
//! the bare-metal service that has a resource class is one host, named by the node's
//! UUID, made of that class (`baremetal` → `CUSTOM_BAREMETAL`). A server the scheduler
//! places there takes the whole node: spawning it writes the server into the node
//! (`instance_uuid`, `instance_info.image_source`) and deploys it; destroying it
//! undeploys the node, which cleans itself and becomes available again. Power actions
//! go to the node's BMC through the bare-metal API. What a physical machine cannot do
//! (pause, resize, plugging NICs or volumes live) is refused.
//!
//! A node is offered (has capacity) only while it is `available`, out of maintenance
//! and free; one given to a server keeps its capacity so the server's claim stands.
//! Only nodes this driver deployed (`instance_info.stratus_compute`) are reported as
//! guests: a node deployed through the bare-metal API directly is not compute's.

use super::{Capacity, HypervisorDriver};
use crate::protocol::{GuestSpec, GuestState, PortSpec, PowerState, VolumeSpec};
use crate::Host;
use anyhow::{bail, Context};
use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratus_common::auth::service_token::TokenSource;

/// The bare-metal API version the driver speaks (resource classes: 1.21).
const API_VERSION: &str = "1.31";
/// The mark this driver leaves in the `instance_info` of the nodes it deploys.
const MARK: &str = "stratus_compute";

/// A node as the driver needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub resource_class: Option<String>,
    pub provision_state: String,
    pub power_state: Option<String>,
    pub maintenance: bool,
    pub instance_uuid: Option<String>,
    /// Deployed by this driver.
    pub ours: bool,
    pub last_error: Option<String>,
    pub cpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
}

impl NodeView {
    fn from_json(n: &Value) -> Self {
        let text = |k: &str| n.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
        // Properties are numbers, or numbers in strings (the client's `--property cpus=4`).
        let prop = |k: &str| {
            let v = &n["properties"][k];
            v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).unwrap_or(0)
        };
        Self {
            id: text("uuid").unwrap_or_default(),
            resource_class: text("resource_class"),
            provision_state: text("provision_state").unwrap_or_default(),
            power_state: text("power_state"),
            maintenance: n["maintenance"].as_bool().unwrap_or(false),
            instance_uuid: text("instance_uuid"),
            ours: n["instance_info"][MARK].as_bool().unwrap_or(false),
            last_error: text("last_error"),
            cpus: prop("cpus"),
            memory_mb: prop("memory_mb"),
            local_gb: prop("local_gb"),
        }
    }

    /// Nova's power state of the node.
    fn power(&self) -> PowerState {
        match self.power_state.as_deref() {
            Some("power on") => PowerState::Running,
            Some("power off") => PowerState::Shutdown,
            _ => PowerState::NoState,
        }
    }

    /// What placement may hand out: the whole node while it is free and available,
    /// or held by a server; nothing otherwise.
    fn capacity(&self) -> Capacity {
        let offered = !self.maintenance
            && (self.instance_uuid.is_some() || self.provision_state == "available")
            && self.cpus > 0
            && self.memory_mb > 0;
        let (vcpus, ram_mb, disk_gb) = if offered { (self.cpus, self.memory_mb, self.local_gb) } else { (0, 0, 0) };
        Capacity { vcpus, ram_mb, disk_gb, hypervisor_type: "ironic".into() }
    }
}

/// `baremetal` → `CUSTOM_BAREMETAL`, as placement names a node's resource class.
pub fn custom_resource_class(rc: &str) -> String {
    let norm: String =
        rc.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if norm.starts_with("CUSTOM_") {
        norm
    } else {
        format!("CUSTOM_{norm}")
    }
}

/// The bare-metal API, with the service's token.
pub struct BaremetalClient {
    base: String,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
}

impl BaremetalClient {
    pub fn new(base_url: &str, tokens: Arc<dyn TokenSource>) -> anyhow::Result<Self> {
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .build()?,
            tokens,
        })
    }

    /// One call; a refused token is renewed once. Answers the status and the body.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<(StatusCode, Value)> {
        for attempt in 0..2 {
            let token = self.tokens.token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("X-Auth-Token", &token)
                .header("X-OpenStack-Ironic-API-Version", API_VERSION);
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.context("cannot reach the bare-metal service")?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && attempt == 0 {
                self.tokens.refused(&token);
                continue;
            }
            let bytes = resp.bytes().await?;
            return Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)));
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// A success's body, or an error with the service's message.
    async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let (status, v) = self.call(method.clone(), path, body).await?;
        if !status.is_success() {
            bail!("{method} {path}: the bare-metal service answered {status}: {}", error_message(&v));
        }
        Ok(v)
    }

    /// Every node, page by page.
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeView>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let path = match &marker {
                Some(m) => format!("/v1/nodes/detail?limit=1000&marker={m}"),
                None => "/v1/nodes/detail?limit=1000".to_string(),
            };
            let page = self.ok(Method::GET, &path, None).await?;
            let nodes = page["nodes"].as_array().cloned().unwrap_or_default();
            out.extend(nodes.iter().map(NodeView::from_json));
            let next = page["next"]
                .as_str()
                .and_then(|n| n.split("marker=").nth(1))
                .map(|m| m.split('&').next().unwrap_or_default().to_string());
            match next {
                Some(m) if !nodes.is_empty() && marker.as_deref() != Some(m.as_str()) => marker = Some(m),
                _ => return Ok(out),
            }
        }
    }

    pub async fn node(&self, id: &str) -> anyhow::Result<NodeView> {
        Ok(NodeView::from_json(&self.ok(Method::GET, &format!("/v1/nodes/{id}"), None).await?))
    }

    async fn patch(&self, id: &str, ops: Value) -> anyhow::Result<NodeView> {
        Ok(NodeView::from_json(&self.ok(Method::PATCH, &format!("/v1/nodes/{id}"), Some(&ops)).await?))
    }

    async fn provision(&self, id: &str, target: &str) -> anyhow::Result<()> {
        self.ok(Method::PUT, &format!("/v1/nodes/{id}/states/provision"), Some(&json!({ "target": target })))
            .await
            .map(drop)
    }

    async fn power(&self, id: &str, target: &str) -> anyhow::Result<()> {
        self.ok(Method::PUT, &format!("/v1/nodes/{id}/states/power"), Some(&json!({ "target": target })))
            .await
            .map(drop)
    }
}

fn error_message(v: &Value) -> String {
    // Ironic's error body: {"error_message": "{\"faultstring\": ...}"} (a JSON string).
    let raw = v["error_message"].as_str().unwrap_or_default();
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|e| e["faultstring"].as_str().map(str::to_string))
        .unwrap_or_else(|| if raw.is_empty() { v.to_string() } else { raw.to_string() })
}

/// How long the driver waits for the bare-metal service.
#[derive(Debug, Clone, Copy)]
pub struct IronicOptions {
    /// A deploy, rebuild or undeploy (the node boots a ramdisk, writes the disk, reboots).
    pub deploy_timeout: Duration,
    /// A power change.
    pub power_timeout: Duration,
    /// The longest pause between two looks at a node that is busy (the first looks
    /// come sooner: 20 ms, doubling).
    pub poll: Duration,
}

impl Default for IronicOptions {
    fn default() -> Self {
        Self {
            deploy_timeout: Duration::from_secs(3600),
            power_timeout: Duration::from_secs(120),
            poll: Duration::from_secs(2),
        }
    }
}

/// The agent's hosts ([`crate::HostSource`]): the bare-metal service's nodes with a
/// resource class.
pub struct IronicNodes {
    nodes: Arc<Nodes>,
    availability_zone: String,
}

impl IronicNodes {
    pub fn new(client: BaremetalClient, opts: IronicOptions, availability_zone: &str) -> Arc<Self> {
        Arc::new(Self {
            nodes: Arc::new(Nodes { client, opts, seen: Mutex::new(HashMap::new()) }),
            availability_zone: availability_zone.to_string(),
        })
    }
}

/// What the drivers of one agent's nodes share: the API and each node as last seen
/// (for capacity and guests between two listings).
struct Nodes {
    client: BaremetalClient,
    opts: IronicOptions,
    seen: Mutex<HashMap<String, NodeView>>,
}

impl Nodes {
    fn seen(&self, id: &str) -> NodeView {
        self.seen.lock().unwrap().get(id).cloned().unwrap_or_default()
    }

    fn remember(&self, n: &NodeView) {
        self.seen.lock().unwrap().insert(n.id.clone(), n.clone());
    }

    /// Waits until `done` says the node is where it should be (`Some(Ok)`) or cannot
    /// get there (`Some(Err)`), within `timeout`.
    async fn wait<T>(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        done: impl Fn(&NodeView) -> Option<anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = Duration::from_millis(20).min(self.opts.poll);
        loop {
            let n = self.client.node(id).await?;
            self.remember(&n);
            if let Some(r) = done(&n) {
                return r;
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("node {id} did not {what} within {} s (it is {})", timeout.as_secs(), n.provision_state);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.opts.poll);
        }
    }

    /// Waits out a node's transitional state (a deploy or clean under way).
    async fn settled(&self, id: &str) -> anyhow::Result<NodeView> {
        self.wait(id, self.opts.deploy_timeout, "settle", |n| {
            (!transitional(&n.provision_state)).then(|| Ok(n.clone()))
        })
        .await
    }

    async fn deploy(&self, id: &str, server_id: &str, spec: &GuestSpec, verb: &str) -> anyhow::Result<PowerState> {
        let mut n = self.settled(id).await?;
        match n.instance_uuid.as_deref() {
            Some(other) if other != server_id => bail!("node {id} is in use by instance {other}"),
            Some(_) if n.provision_state == "active" && verb == "active" => return Ok(n.power()),
            Some(_) => {}
            None => {
                if n.maintenance {
                    bail!("node {id} is in maintenance");
                }
                if n.provision_state != "available" {
                    bail!("node {id} is {} (not available)", n.provision_state);
                }
            }
        }
        let mut info = json!({
            "image_source": spec.image_id,
            "root_gb": spec.disk_gb.to_string(),
            "display_name": spec.name,
            MARK: true,
        });
        if let (Some(k), Some(r)) = (&spec.kernel_id, &spec.ramdisk_id) {
            info["kernel"] = json!(k);
            info["ramdisk"] = json!(r);
        }
        n = self
            .client
            .patch(
                id,
                json!([
                    {"op": "add", "path": "/instance_uuid", "value": server_id},
                    {"op": "add", "path": "/instance_info", "value": info},
                ]),
            )
            .await?;
        self.remember(&n);
        if !(verb == "active" && n.provision_state == "active") {
            self.client.provision(id, verb).await?;
        }
        self.wait(id, self.opts.deploy_timeout, "deploy", |n| match n.provision_state.as_str() {
            "active" => Some(Ok(n.power())),
            "deploy failed" | "error" => Some(Err(anyhow::anyhow!(
                "node {id}: {} ({})",
                n.provision_state,
                n.last_error.clone().unwrap_or_default()
            ))),
            _ => None,
        })
        .await
    }

    async fn undeploy(&self, id: &str, server_id: &str) -> anyhow::Result<()> {
        let n = self.settled(id).await?;
        if n.instance_uuid.as_deref() != Some(server_id) {
            return Ok(());
        }
        match n.provision_state.as_str() {
            "active" | "deploy failed" | "error" | "wait call-back" => self.client.provision(id, "deleted").await?,
            _ => {
                // Never deployed (a spawn stopped after writing the server in): let go.
                let n = self
                    .client
                    .patch(
                        id,
                        json!([
                            {"op": "remove", "path": "/instance_uuid"},
                            {"op": "replace", "path": "/instance_info", "value": {}},
                        ]),
                    )
                    .await?;
                self.remember(&n);
                return Ok(());
            }
        }
        // The node lets go of the server when its undeploy starts; cleaning goes on
        // without us.
        self.wait(id, self.opts.deploy_timeout, "undeploy", |n| {
            (n.instance_uuid.as_deref() != Some(server_id)).then_some(Ok(()))
        })
        .await
    }

    async fn set_power(&self, id: &str, server_id: &str, target: &str, want: PowerState) -> anyhow::Result<PowerState> {
        let n = self.client.node(id).await?;
        if n.instance_uuid.as_deref() != Some(server_id) {
            bail!("node {id} does not run instance {server_id}");
        }
        if n.power() == want && target != "rebooting" {
            return Ok(want);
        }
        self.client.power(id, target).await?;
        self.wait(id, self.opts.power_timeout, "change its power", |n| (n.power() == want).then_some(Ok(want))).await
    }
}

fn transitional(state: &str) -> bool {
    matches!(
        state,
        "deploying" | "wait call-back" | "deleting" | "cleaning" | "clean wait" | "verifying" | "inspecting"
    )
}

impl crate::HostSource for IronicNodes {
    fn hosts(&self) -> BoxFuture<'_, anyhow::Result<Vec<Host>>> {
        async move {
            let listed = self.nodes.client.nodes().await?;
            let mut hosts = Vec::new();
            let mut seen = HashMap::new();
            for n in listed {
                let Some(rc) = n.resource_class.clone() else { continue };
                hosts.push(Host {
                    name: n.id.clone(),
                    availability_zone: self.availability_zone.clone(),
                    traits: Vec::new(),
                    resource_class: Some(custom_resource_class(&rc)),
                    ip: None,
                    driver: Arc::new(IronicDriver { node: n.id.clone(), nodes: self.nodes.clone() }),
                });
                seen.insert(n.id.clone(), n);
            }
            *self.nodes.seen.lock().unwrap() = seen;
            Ok(hosts)
        }
        .boxed()
    }
}

/// One node as a host.
pub struct IronicDriver {
    node: String,
    nodes: Arc<Nodes>,
}

fn unsupported<'a, T: Send + 'a>(what: &'static str) -> BoxFuture<'a, anyhow::Result<T>> {
    async move { bail!("a bare-metal server cannot {what}") }.boxed()
}

impl HypervisorDriver for IronicDriver {
    fn name(&self) -> &'static str {
        "ironic"
    }

    fn capacity(&self) -> Capacity {
        self.nodes.seen(&self.node).capacity()
    }

    fn spawn<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        self.nodes.deploy(&self.node, server_id, spec, "active").boxed()
    }

    fn destroy<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        self.nodes.undeploy(&self.node, server_id).boxed()
    }

    fn stop<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        self.nodes.set_power(&self.node, server_id, "power off", PowerState::Shutdown).boxed()
    }

    fn start<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        self.nodes.set_power(&self.node, server_id, "power on", PowerState::Running).boxed()
    }

    fn reboot<'a>(&'a self, server_id: &'a str, _hard: bool) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        self.nodes.set_power(&self.node, server_id, "rebooting", PowerState::Running).boxed()
    }

    fn pause<'a>(&'a self, _server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("be paused")
    }

    fn unpause<'a>(&'a self, _server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("be paused")
    }

    fn rebuild<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        self.nodes.deploy(&self.node, server_id, spec, "rebuild").boxed()
    }

    fn resize<'a>(&'a self, _server_id: &'a str, _spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("be resized")
    }

    fn attach_interface<'a>(
        &'a self,
        _server_id: &'a str,
        _port: &'a PortSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("have interfaces plugged while it runs")
    }

    fn detach_interface<'a>(
        &'a self,
        _server_id: &'a str,
        _port_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("have interfaces unplugged while it runs")
    }

    fn attach_volume<'a>(
        &'a self,
        _server_id: &'a str,
        _v: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("have volumes attached")
    }

    fn detach_volume<'a>(
        &'a self,
        _server_id: &'a str,
        _v: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        unsupported("have volumes attached")
    }

    fn guests(&self) -> BoxFuture<'_, anyhow::Result<Vec<GuestState>>> {
        let n = self.nodes.seen(&self.node);
        let guests = match (&n.instance_uuid, n.ours) {
            (Some(id), true) => vec![GuestState { server_id: id.into(), power_state: n.power() }],
            _ => Vec::new(),
        };
        async move { Ok(guests) }.boxed()
    }

    fn console_log<'a>(&'a self, _server_id: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
        async move { Ok(String::new()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_classes_are_named_as_placement_does() {
        assert_eq!(custom_resource_class("baremetal"), "CUSTOM_BAREMETAL");
        assert_eq!(custom_resource_class("gpu-a100.large"), "CUSTOM_GPU_A100_LARGE");
        assert_eq!(custom_resource_class("CUSTOM_X"), "CUSTOM_X");
    }

    #[test]
    fn only_a_free_available_node_or_one_in_use_is_offered() {
        let node = |state: &str, instance: Option<&str>, maintenance: bool| {
            NodeView::from_json(&json!({
                "uuid": "n1", "provision_state": state, "instance_uuid": instance, "maintenance": maintenance,
                "properties": {"cpus": "8", "memory_mb": 16384, "local_gb": 100}, "resource_class": "baremetal",
            }))
        };
        assert_eq!(node("available", None, false).capacity().vcpus, 8);
        assert_eq!(node("available", None, false).capacity().ram_mb, 16384);
        assert_eq!(node("active", Some("s1"), false).capacity().disk_gb, 100);
        assert_eq!(node("cleaning", None, false).capacity().vcpus, 0);
        assert_eq!(node("manageable", None, false).capacity().vcpus, 0);
        assert_eq!(node("available", None, true).capacity().vcpus, 0);
        let bare = NodeView::from_json(&json!({"uuid": "n2", "provision_state": "available"}));
        assert_eq!(bare.capacity().vcpus, 0, "a node without properties cannot be matched to a flavor");
    }

    #[test]
    fn ironic_error_bodies_give_their_fault_string() {
        let body = json!({"error_message": "{\"faultstring\": \"Node n1 is locked\", \"debuginfo\": null}"});
        assert_eq!(error_message(&body), "Node n1 is locked");
        assert_eq!(error_message(&json!({"x": 1})), "{\"x\":1}");
    }
}
