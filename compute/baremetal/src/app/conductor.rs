//! The conductor: does the work requests leave on nodes, through each node's BMC, and
//! keeps the recorded power state true to the hardware.
//!
//! Work is level-triggered: a node's `work` column says what is owed and its
//! provisioning state says how far it got, so after a crash the next pass picks the node
//! up where it was and runs the remaining steps (each is idempotent: powering off a node
//! that is off, setting a boot device already set). Nothing stays in a transitional
//! state: every pass ends with the node on its target or on the verb's failure state
//! with `last_error` saying why.

use super::nodes::hardware_of;
use super::BaremetalService;
use crate::driver::Bmc;
use crate::model::{BootDevice, PowerState, PowerTarget, ProvisionState, Verb, Work};
use crate::store::{Internal, Node, Port};
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::db::now_text;

/// Nodes worked on at once.
const PARALLEL: usize = 16;

impl BaremetalService {
    /// Starts the conductor and the power sync in the background.
    pub fn start(self: &Arc<Self>) {
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn("baremetal.conductor", move |task| {
            let me = me.clone();
            async move {
                loop {
                    let result = me.work_pass().await;
                    task.pass(&result);
                    if let Err(e) = &result {
                        tracing::warn!(error = %format!("{e:#}"), "conductor pass failed; the next one retries");
                    }
                    tokio::select! {
                        _ = me.wake.notified() => {}
                        _ = tokio::time::sleep(me.settings.tick) => {}
                    }
                }
            }
        });
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn_every(
            "baremetal.power-sync",
            self.settings.power_sync_every,
            move || {
                let me = me.clone();
                async move { me.power_sync_pass().await }
            },
        );
    }

    /// Does all the work nodes are owed now (a node already being worked on is left to
    /// that run). The number of nodes worked on.
    pub async fn work_pass(self: &Arc<Self>) -> anyhow::Result<usize> {
        let nodes = self.store.nodes_with_work().await?;
        let mine: Vec<Node> = {
            let mut busy = self.busy.lock().unwrap();
            nodes.into_iter().filter(|n| busy.insert(n.id.clone())).collect()
        };
        let count = mine.len();
        futures::stream::iter(mine)
            .map(|n| {
                let me = self.clone();
                async move {
                    let id = n.id.clone();
                    if let Err(e) = me.work_on(n).await {
                        tracing::warn!(node = %id, error = %format!("{e:#}"), "node work not finished; retried next pass");
                    }
                    me.busy.lock().unwrap().remove(&id);
                }
            })
            .buffer_unordered(PARALLEL)
            .collect::<Vec<()>>()
            .await;
        Ok(count)
    }

    /// Runs node `n`'s work to its end. An error here is the database's: the work stays
    /// recorded and the next pass does it again.
    async fn work_on(&self, n: Node) -> anyhow::Result<()> {
        let Some(work) = n.work else { return Ok(()) };
        let bmc = match self.bmc_of(&n) {
            Ok(b) => b,
            Err(e) => {
                // The node cannot be reached at all: the work fails as a whole.
                return self.fail(&n.id, work, &e.to_string()).await;
            }
        };
        match work {
            Work::Power(target) => {
                let outcome = self.power(bmc.as_ref(), target).await;
                let now = bmc.power_state().await.ok();
                let node = self
                    .update(&n.id, |node| {
                        node.work = None;
                        node.conductor = None;
                        node.target_power_state = None;
                        match &outcome {
                            Ok(p) => {
                                node.power_state = Some(*p);
                                node.last_error = None;
                            }
                            Err(e) => {
                                node.power_state = now.or(node.power_state);
                                node.last_error = Some(format!("Failed to change power state to '{target}': {e:#}"));
                            }
                        }
                    })
                    .await?;
                self.notify(if outcome.is_ok() { "power_set.end" } else { "power_set.error" }, &node).await;
                Ok(())
            }
            Work::Provision(verb) => {
                let mut node = n;
                // One phase per transitional state; undeploy passes through two. A node
                // waiting for its ramdisk is left until it reports (or times out).
                loop {
                    let before = (node.provision_state, node.revision);
                    node = self.phase(bmc.as_ref(), verb, node).await?;
                    if node.work.is_none()
                        || node.provision_state.is_waiting()
                        || (node.provision_state, node.revision) == before
                    {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Does the step of the node's current transitional state and saves where it leads;
    /// the node after (still with work when the next step is another, or when the
    /// conductor now waits for the deploy ramdisk).
    async fn phase(&self, bmc: &dyn Bmc, verb: Verb, n: Node) -> anyhow::Result<Node> {
        let t = verb.transition(n.provision_state);
        let target = n.target_provision_state.unwrap_or(t.target);
        let direct = n.deploy_interface == "direct";
        let wipe = direct && self.settings.deploy.ramdisk_configured();
        let result: anyhow::Result<NodeChange> = match n.provision_state {
            ProvisionState::Verifying => bmc.power_state().await.map(|p| NodeChange::power(p, target)),
            ProvisionState::Inspecting => self
                .inspect(bmc, &n)
                .await
                .map(|props| NodeChange { properties: Some(props), ..NodeChange::to(target) }),
            ProvisionState::Cleaning if wipe && n.internal.agent_done.is_none() => {
                self.power(bmc, PowerTarget::Off).await.map(|p| NodeChange {
                    internal: Some(Internal { agent_token: Some(super::deploy::new_token()), ..Default::default() }),
                    ..NodeChange::power(p, ProvisionState::CleanWait)
                })
            }
            ProvisionState::Cleaning => self
                .power(bmc, PowerTarget::Off)
                .await
                .map(|p| NodeChange { internal: Some(Default::default()), ..NodeChange::power(p, target) }),
            ProvisionState::Deploying if direct && n.internal.agent_done.is_none() => {
                match self.prepare_image(&n).await {
                    Ok(image) => self.power(bmc, PowerTarget::Off).await.map(|p| NodeChange {
                        internal: Some(Internal {
                            agent_token: Some(super::deploy::new_token()),
                            agent_done: None,
                            image: Some(image),
                        }),
                        ..NodeChange::power(p, ProvisionState::WaitCallBack)
                    }),
                    Err(e) => Err(e.context("cannot prepare the image")),
                }
            }
            ProvisionState::Deploying => self
                .boot_from_disk(bmc)
                .await
                .map(|p| NodeChange { internal: Some(Default::default()), ..NodeChange::power(p, target) }),
            ProvisionState::Deleting => self.power(bmc, PowerTarget::Off).await.map(|p| NodeChange {
                clear_instance: true,
                internal: Some(Default::default()),
                ..NodeChange::power(p, ProvisionState::Cleaning)
            }),
            waiting if waiting.is_waiting() => {
                // The ramdisk reports through the API; here only the wait is bounded.
                let since = n.provision_updated_at.as_deref().and_then(stratus_common::db::parse_time);
                let timeout = self.settings.deploy.callback_timeout;
                let late = since.is_some_and(|t| {
                    chrono::Utc::now().signed_duration_since(t).to_std().unwrap_or_default() > timeout
                });
                if !late {
                    // The token is saved, so the ramdisk can be booted; a node found off
                    // (just prepared, or its ramdisk gave up) is booted (again).
                    if let Err(e) = self.boot_ramdisk(bmc).await {
                        tracing::warn!(node = %n.id, error = %format!("{e:#}"), "cannot boot the deploy ramdisk yet");
                    }
                    return Ok(n);
                }
                let _ = self.power(bmc, PowerTarget::Off).await;
                Err(anyhow::anyhow!("the deploy ramdisk did not report within {timeout:?}"))
            }
            other => {
                // Work on a node that is not in a working state (an older crash): drop it.
                tracing::warn!(node = %n.id, state = %other, "work found on a node at rest; dropped");
                return self
                    .update(&n.id, |node| {
                        node.work = None;
                        node.conductor = None;
                        node.target_provision_state = None;
                    })
                    .await;
            }
        };
        let from = n.provision_state;
        match result {
            Ok(change) => {
                let node = self
                    .update(&n.id, |node| {
                        if let Some(p) = change.power {
                            node.power_state = Some(p);
                        }
                        if let Some(props) = &change.properties {
                            node.properties.extend(props.clone());
                            node.inspection_finished_at = Some(now_text());
                        }
                        if change.clear_instance {
                            node.instance_info.clear();
                            node.instance_uuid = None;
                        }
                        if let Some(i) = &change.internal {
                            node.internal = i.clone();
                        }
                        node.last_error = None;
                        if change.next.is_transitional() {
                            node.enter(change.next, node.target_provision_state);
                        } else {
                            node.enter(change.next, None);
                            node.work = None;
                            node.conductor = None;
                        }
                    })
                    .await?;
                tracing::info!(node = %node.id, from = %from, to = %node.provision_state, "provisioning step done");
                if node.work.is_none() {
                    self.notify("provision_set.end", &node).await;
                }
                Ok(node)
            }
            Err(e) => {
                let on_failure = from.on_failure();
                let message = format!("{} failed: {e:#}", step_name(from));
                tracing::warn!(node = %n.id, error = %message, "provisioning step failed");
                let node = self
                    .update(&n.id, |node| {
                        node.enter(on_failure, None);
                        node.work = None;
                        node.conductor = None;
                        node.internal = Default::default();
                        node.last_error = Some(message.clone());
                    })
                    .await?;
                self.notify("provision_set.error", &node).await;
                Ok(node)
            }
        }
    }

    /// Network-boots a node that waits for its deploy ramdisk, if it is off.
    async fn boot_ramdisk(&self, bmc: &dyn Bmc) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.settings.deploy.ramdisk_configured(),
            "no deploy ramdisk is configured ([baremetal] deploy_kernel and deploy_ramdisk)"
        );
        if bmc.power_state().await? == PowerState::On {
            return Ok(());
        }
        bmc.set_boot_device(BootDevice::Pxe, false).await?;
        self.power(bmc, PowerTarget::On).await?;
        Ok(())
    }

    /// The end of every deploy: off, boot from the disk from now on, on.
    async fn boot_from_disk(&self, bmc: &dyn Bmc) -> anyhow::Result<PowerState> {
        self.power(bmc, PowerTarget::Off).await?;
        bmc.set_boot_device(BootDevice::Disk, true).await?;
        self.power(bmc, PowerTarget::On).await
    }

    /// Ends work that cannot start (no BMC to reach) on the verb's failure state.
    async fn fail(&self, id: &str, work: Work, message: &str) -> anyhow::Result<()> {
        let node = self
            .update(id, |node| {
                node.work = None;
                node.conductor = None;
                node.last_error = Some(message.to_string());
                match work {
                    Work::Power(_) => node.target_power_state = None,
                    Work::Provision(_) => {
                        let on_failure = node.provision_state.on_failure();
                        node.enter(on_failure, None);
                    }
                }
            })
            .await?;
        self.notify("provision_set.error", &node).await;
        Ok(())
    }

    /// Asks for `target` and waits (bounded) until the BMC shows it.
    async fn power(&self, bmc: &dyn Bmc, target: PowerTarget) -> anyhow::Result<PowerState> {
        let want = target.end_state();
        if let Err(e) = bmc.set_power(target).await {
            // The node may have got there by itself meanwhile (a deploy ramdisk powers
            // off after it reports): then the request has nothing left to do.
            let off_or_on = matches!(target, PowerTarget::On | PowerTarget::Off | PowerTarget::SoftOff);
            if !(off_or_on && bmc.power_state().await.ok() == Some(want)) {
                return Err(e);
            }
        }
        let deadline = tokio::time::Instant::now() + self.settings.power_timeout;
        loop {
            let now = bmc.power_state().await?;
            if now == want {
                return Ok(now);
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("the node is still {now} after {:?}", self.settings.power_timeout);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Out-of-band inspection: the properties learnt, and a port for each new MAC.
    async fn inspect(&self, bmc: &dyn Bmc, n: &Node) -> anyhow::Result<serde_json::Map<String, Value>> {
        let inv = bmc.inventory().await?;
        let mut props = serde_json::Map::new();
        if let Some(c) = inv.cpus {
            props.insert("cpus".into(), c.into());
        }
        if let Some(m) = inv.memory_mb {
            props.insert("memory_mb".into(), m.into());
        }
        if let Some(g) = inv.local_gb {
            props.insert("local_gb".into(), g.into());
        }
        if let Some(a) = inv.cpu_arch {
            props.insert("cpu_arch".into(), a.into());
        }
        for mac in inv.macs {
            let Ok(address) = super::ports::canonical_mac(&mac) else { continue };
            if self.store.port_get(&address).await?.is_some() {
                continue;
            }
            let port = Port {
                id: uuid::Uuid::new_v4().to_string(),
                address,
                node_id: n.id.clone(),
                extra: Default::default(),
                pxe_enabled: true,
                local_link_connection: Default::default(),
                physical_network: None,
                created_at: now_text(),
                updated_at: None,
            };
            if let Err(e) = self.store.port_insert(&port).await {
                if !stratus_common::db::is_unique_violation(&e) {
                    return Err(e.into());
                }
            }
        }
        Ok(props)
    }

    /// Reads node `id`, changes it with `f` and saves it, again if someone else saved it
    /// meanwhile (a maintenance flag set during the work).
    async fn update(&self, id: &str, f: impl Fn(&mut Node)) -> anyhow::Result<Node> {
        for _ in 0..10 {
            let Some(mut node) = self.store.node_get(id).await? else {
                anyhow::bail!("node {id} is gone");
            };
            f(&mut node);
            if self.store.node_save(&mut node).await? {
                return Ok(node);
            }
        }
        anyhow::bail!("node {id} kept changing; the work is retried")
    }

    /// Reads the power state of every idle node from its BMC and records changes. A node
    /// whose BMC fails `power_sync_failures` times in a row goes into maintenance.
    pub async fn power_sync_pass(self: &Arc<Self>) -> anyhow::Result<usize> {
        let nodes = self.store.node_list().await?;
        let idle: Vec<Node> = nodes.into_iter().filter(|n| n.work.is_none() && !n.maintenance).collect();
        let changed = futures::stream::iter(idle)
            .map(|n| {
                let me = self.clone();
                async move { me.sync_one(n).await.unwrap_or(false) }
            })
            .buffer_unordered(PARALLEL)
            .filter(|c| futures::future::ready(*c))
            .count()
            .await;
        Ok(changed)
    }

    async fn sync_one(&self, n: Node) -> anyhow::Result<bool> {
        let Ok(bmc) = self.bmc_of(&n) else { return Ok(false) };
        match bmc.power_state().await {
            Ok(p) => {
                self.sync_failures.lock().unwrap().remove(&n.id);
                if n.power_state == Some(p) {
                    return Ok(false);
                }
                let mut node = n;
                node.power_state = Some(p);
                Ok(self.store.node_save(&mut node).await?)
            }
            Err(e) => {
                let failures = {
                    let mut f = self.sync_failures.lock().unwrap();
                    let c = f.entry(n.id.clone()).or_insert(0);
                    *c += 1;
                    *c
                };
                tracing::warn!(node = %n.id, failures, error = %format!("{e:#}"), "power state read failed");
                if failures < self.settings.power_sync_failures {
                    return Ok(false);
                }
                let mut node = n;
                node.maintenance = true;
                node.maintenance_reason = Some(format!("During sync_power_state, max retries exceeded: {e:#}"));
                node.power_state = None;
                Ok(self.store.node_save(&mut node).await?)
            }
        }
    }

    /// The hardware type of `n`, for callers outside the app layer.
    pub fn hardware(&self, n: &Node) -> Option<crate::model::HardwareType> {
        hardware_of(n).ok()
    }
}

/// What a successful step changes on the node.
struct NodeChange {
    next: ProvisionState,
    power: Option<PowerState>,
    properties: Option<serde_json::Map<String, Value>>,
    clear_instance: bool,
    /// The conductor's notes to keep (replacing what was there).
    internal: Option<Internal>,
}

impl NodeChange {
    fn to(next: ProvisionState) -> Self {
        Self { next, power: None, properties: None, clear_instance: false, internal: None }
    }

    fn power(p: PowerState, next: ProvisionState) -> Self {
        Self { power: Some(p), ..Self::to(next) }
    }
}

fn step_name(state: ProvisionState) -> &'static str {
    match state {
        ProvisionState::Verifying => "Verification",
        ProvisionState::Inspecting => "Inspection",
        ProvisionState::Cleaning | ProvisionState::CleanWait => "Cleaning",
        ProvisionState::Deploying | ProvisionState::WaitCallBack => "Deploy",
        ProvisionState::Deleting => "Tear down",
        _ => "Work",
    }
}
