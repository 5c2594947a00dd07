//! The compute agent: runs the guests of one or more hosts through a
//! [`driver::HypervisorDriver`], takes commands from its work queue on the bus, answers
//! with results, and reports each host's capacity and guests as its heartbeat.
//!
//! One agent process usually runs one host; with the fake driver it can run many
//! (`stratusd compute-agent --driver fake --fake-hosts 1000`), each with its own driver;
//! with the `ironic` driver its hosts are the bare-metal service's nodes, found again
//! before every report (a [`HostSource`]).

pub mod config;
pub mod config_drive;
pub mod driver;
/// The host's image cache (shared with the bare-metal conductor).
pub use stratus_common::image_cache as images;
/// The bus protocol, in a crate of its own so the compute service builds without libvirt.
pub use stratus_compute_protocol as protocol;

use driver::HypervisorDriver;
use futures::future::BoxFuture;
use protocol::{agent_queue, Command, CommandResult, HostReport, Op, REPORT_SUBJECT, RESULTS_QUEUE};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use stratus_common::bus::Bus;

/// One host the agent runs.
pub struct Host {
    pub name: String,
    pub availability_zone: String,
    pub traits: Vec<String>,
    /// The one custom resource class the host is made of (`CUSTOM_BAREMETAL`), for
    /// hosts a server takes whole (bare-metal nodes); `None` for hypervisors.
    pub resource_class: Option<String>,
    /// The address other hosts reach this one at (reported; see `HostReport::ip`).
    pub ip: Option<String>,
    pub driver: Arc<dyn HypervisorDriver>,
}

/// Where an agent whose hosts come and go finds them.
pub trait HostSource: Send + Sync {
    /// The hosts as of now.
    fn hosts(&self) -> BoxFuture<'_, anyhow::Result<Vec<Host>>>;
}

pub struct Agent {
    name: String,
    hosts: RwLock<HashMap<String, Arc<Host>>>,
    source: Option<Arc<dyn HostSource>>,
    bus: Bus,
    report_every: Duration,
    /// Commands for one server run one at a time.
    locks: Mutex<HashMap<protocol::ServerId, Arc<tokio::sync::Mutex<()>>>>,
    /// The image service snapshots are uploaded to (set once, before commands run).
    images: std::sync::OnceLock<Arc<images::ImageCache>>,
}

impl Agent {
    pub fn new(name: &str, hosts: Vec<Host>, bus: Bus, report_every: Duration) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            hosts: RwLock::new(hosts.into_iter().map(|h| (h.name.clone(), Arc::new(h))).collect()),
            source: None,
            bus,
            report_every,
            locks: Mutex::new(HashMap::new()),
            images: std::sync::OnceLock::new(),
        })
    }

    /// An agent whose hosts are what `source` lists, looked up again before every
    /// report and when a command names a host not seen yet.
    pub fn with_source(name: &str, source: Arc<dyn HostSource>, bus: Bus, report_every: Duration) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_string(),
            hosts: RwLock::new(HashMap::new()),
            source: Some(source),
            bus,
            report_every,
            locks: Mutex::new(HashMap::new()),
            images: std::sync::OnceLock::new(),
        })
    }

    /// Lists the hosts again from the agent's source (none: nothing changes), and says
    /// on the bus which hosts it runs now, so compute forgets the ones that went.
    pub async fn discover(&self) -> anyhow::Result<()> {
        let Some(source) = &self.source else { return Ok(()) };
        let found = source.hosts().await?;
        let names: Vec<protocol::HostName> = found.iter().map(|h| h.name.as_str().into()).collect();
        *self.hosts.write().unwrap() = found.into_iter().map(|h| (h.name.clone(), Arc::new(h))).collect();
        let now = protocol::AgentHosts { queue: self.queue(), hosts: names };
        if let Err(e) = self.bus.publish(protocol::AGENT_HOSTS_SUBJECT, serde_json::to_vec(&now)?).await {
            tracing::warn!(error = %e, "cannot say which hosts this agent runs");
        }
        Ok(())
    }

    /// Where snapshots go: the image service, through this host's image cache.
    pub fn set_image_service(&self, images: Arc<images::ImageCache>) {
        let _ = self.images.set(images);
    }

    /// Copies a guest's disk into the snapshot image the service made. An image that
    /// is `active` already was uploaded by an earlier try of this command; one that is
    /// gone was given up by the service (or its owner): both end the command.
    async fn snapshot(&self, host: &Host, cmd: &Command) -> anyhow::Result<protocol::PowerState> {
        let image = cmd
            .spec
            .as_ref()
            .and_then(|s| s.snapshot_image.clone())
            .ok_or_else(|| anyhow::anyhow!("a snapshot command without an image"))?;
        let images =
            self.images.get().ok_or_else(|| anyhow::anyhow!("this agent has no image service to upload to"))?;
        let power = || async {
            let guests = host.driver.guests().await?;
            Ok::<_, anyhow::Error>(
                guests
                    .iter()
                    .find(|g| g.server_id == cmd.server_id)
                    .map_or(protocol::PowerState::NoState, |g| g.power_state),
            )
        };
        match images.image_doc(&image).await?.as_ref().and_then(|d| d["status"].as_str().map(str::to_string)) {
            None => anyhow::bail!("the snapshot image {image} is gone"),
            Some(s) if s == "active" => return power().await,
            Some(s) if s == "queued" => {}
            Some(s) => anyhow::bail!("the snapshot image {image} is {s}, not queued"),
        }
        let export = host.driver.export_disk(&cmd.server_id).await?;
        let uploaded = images.upload(&image, &export.path, export.disk_format).await;
        let _ = std::fs::remove_file(&export.path);
        uploaded?;
        power().await
    }

    pub fn queue(&self) -> String {
        agent_queue(&self.name)
    }

    pub fn host(&self, name: &str) -> Option<Arc<Host>> {
        self.hosts.read().unwrap().get(name).cloned()
    }

    pub fn host_count(&self) -> usize {
        self.hosts.read().unwrap().len()
    }

    /// The driver of the agent's hosts (`fake`, `libvirt`, `ironic`).
    pub fn driver_name(&self) -> &'static str {
        if self.source.is_some() {
            return "ironic";
        }
        self.hosts.read().unwrap().values().next().map_or("none", |h| h.driver.name())
    }

    /// The host a command names; a source is asked again for one not seen yet.
    async fn host_for(&self, name: &str) -> anyhow::Result<Arc<Host>> {
        if let Some(h) = self.host(name) {
            return Ok(h);
        }
        if self.source.is_some() {
            self.discover().await?;
        }
        self.host(name).ok_or_else(|| anyhow::anyhow!("this agent does not run host {name}"))
    }

    /// Takes commands and reports until the bus closes.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let mut queue = self.bus.work(&self.queue(), Duration::from_secs(60)).await?;
        let reporter = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(me.report_every);
                loop {
                    tick.tick().await;
                    me.report_all().await;
                }
            })
        };
        let mut console = self.bus.subscribe(&protocol::console_subject(&self.queue())).await?;
        let consoles = {
            let me = self.clone();
            tokio::spawn(async move {
                while let Some(m) = console.next().await {
                    let ask: serde_json::Value = m.json().unwrap_or_default();
                    let host = ask["host"].as_str().unwrap_or_default();
                    let server = ask["server_id"].as_str().unwrap_or_default();
                    let answer = if ask["ask"] == "diagnostics" {
                        match me.diagnostics(host, server).await {
                            Ok(d) => serde_json::json!({ "diagnostics": d }),
                            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
                        }
                    } else {
                        match me.console_log(host, server).await {
                            Ok(out) => serde_json::json!({ "output": out }),
                            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
                        }
                    };
                    let _ = me.bus.respond(&m, answer.to_string().into_bytes()).await;
                }
            })
        };
        let limit = Arc::new(tokio::sync::Semaphore::new(256));
        while let Some(item) = queue.next().await {
            let cmd: Command = match serde_json::from_slice(item.payload()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "dropping a malformed compute command");
                    let _ = item.ack().await;
                    continue;
                }
            };
            let permit = limit.clone().acquire_owned().await?;
            let me = self.clone();
            tokio::spawn(async move {
                let result = me.handle(&cmd).await;
                match serde_json::to_vec(&result) {
                    Ok(bytes) => match me.bus.enqueue(RESULTS_QUEUE, bytes).await {
                        Ok(()) => {
                            let _ = item.ack().await;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot send a compute result; the command will come again");
                            let _ = item.nack().await;
                        }
                    },
                    Err(_) => {
                        let _ = item.ack().await;
                    }
                }
                drop(permit);
            });
        }
        reporter.abort();
        consoles.abort();
        Ok(())
    }

    /// Runs one command (idempotent by server id) and says how it went.
    pub async fn handle(&self, cmd: &Command) -> CommandResult {
        let lock = {
            let mut locks = self.locks.lock().unwrap();
            locks.entry(cmd.server_id.clone()).or_default().clone()
        };
        let guard = lock.lock().await;
        let outcome = self.execute(cmd).await;
        drop(guard);
        {
            let mut locks = self.locks.lock().unwrap();
            if locks.get(&cmd.server_id).is_some_and(|l| Arc::strong_count(l) <= 2) {
                locks.remove(&cmd.server_id);
            }
        }
        let (error, power_state) = match outcome {
            Ok(p) => (None, p),
            Err(e) => (Some(format!("{e:#}")), protocol::PowerState::NoState),
        };
        if let Some(e) = &error {
            tracing::warn!(server = %cmd.server_id, op = ?cmd.op, error = %e, "compute command failed");
        }
        CommandResult {
            action_id: cmd.action_id.clone(),
            server_id: cmd.server_id.clone(),
            host: cmd.host.clone(),
            op: cmd.op,
            error,
            power_state,
        }
    }

    async fn execute(&self, cmd: &Command) -> anyhow::Result<protocol::PowerState> {
        let host = self.host_for(&cmd.host).await?;
        let d = &host.driver;
        match cmd.op {
            Op::Snapshot => self.snapshot(&host, cmd).await,
            Op::Spawn => {
                let spec = cmd.spec.as_ref().ok_or_else(|| anyhow::anyhow!("spawn without a guest spec"))?;
                d.spawn(&cmd.server_id, spec).await
            }
            Op::Destroy => d.destroy(&cmd.server_id).await.map(|_| protocol::PowerState::NoState),
            Op::Stop => d.stop(&cmd.server_id).await,
            Op::Start => d.start(&cmd.server_id).await,
            Op::SoftReboot => d.reboot(&cmd.server_id, false).await,
            Op::HardReboot => d.reboot(&cmd.server_id, true).await,
            Op::Pause => d.pause(&cmd.server_id).await,
            Op::Unpause => d.unpause(&cmd.server_id).await,
            Op::Rebuild | Op::Resize => {
                let spec = cmd.spec.as_ref().ok_or_else(|| anyhow::anyhow!("{:?} without a guest spec", cmd.op))?;
                if cmd.op == Op::Rebuild {
                    d.rebuild(&cmd.server_id, spec).await
                } else {
                    d.resize(&cmd.server_id, spec).await
                }
            }
            Op::AttachInterface | Op::DetachInterface => {
                let port = cmd
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.first())
                    .ok_or_else(|| anyhow::anyhow!("an interface command without a port"))?;
                if cmd.op == Op::AttachInterface {
                    d.attach_interface(&cmd.server_id, port).await
                } else {
                    d.detach_interface(&cmd.server_id, &port.id).await
                }
            }
            Op::AttachVolume | Op::DetachVolume => {
                let volume = cmd
                    .spec
                    .as_ref()
                    .and_then(|s| s.volumes.first())
                    .ok_or_else(|| anyhow::anyhow!("a volume command without a volume"))?;
                if cmd.op == Op::AttachVolume {
                    d.attach_volume(&cmd.server_id, volume).await
                } else {
                    d.detach_volume(&cmd.server_id, volume).await
                }
            }
            Op::ExtendVolume => {
                let volume = cmd
                    .spec
                    .as_ref()
                    .and_then(|s| s.volumes.first())
                    .ok_or_else(|| anyhow::anyhow!("a volume command without a volume"))?;
                d.extend_volume(&cmd.server_id, volume).await
            }
        }
    }

    /// One host's report: its capacity and guests.
    pub async fn report(&self, host: &Host) -> anyhow::Result<HostReport> {
        let c = host.driver.capacity();
        let taken_at = Some(stratus_common::db::now_text());
        Ok(HostReport {
            host: host.name.as_str().into(),
            queue: self.queue(),
            availability_zone: host.availability_zone.clone(),
            hypervisor_type: c.hypervisor_type,
            driver: host.driver.name().to_string(),
            vcpus: c.vcpus,
            ram_mb: c.ram_mb,
            disk_gb: c.disk_gb,
            traits: host.traits.clone(),
            resource_class: host.resource_class.clone(),
            ip: host.ip.clone(),
            uptime: host.driver.uptime(),
            guests: host.driver.guests().await?,
            taken_at,
        })
    }

    /// Publishes every host's report (after finding the hosts again, for an agent
    /// with a source).
    pub async fn report_all(&self) {
        if let Err(e) = self.discover().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot list the agent's hosts");
        }
        let hosts: Vec<Arc<Host>> = self.hosts.read().unwrap().values().cloned().collect();
        for host in &hosts {
            match self.report(host).await {
                Ok(r) => match serde_json::to_vec(&r) {
                    Ok(bytes) => {
                        if let Err(e) = self.bus.publish(REPORT_SUBJECT, bytes).await {
                            tracing::warn!(error = %e, "cannot publish a host report");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot encode a host report"),
                },
                Err(e) => tracing::warn!(host = %host.name, error = %e, "cannot read the host's guests"),
            }
        }
    }

    pub async fn diagnostics(&self, host: &str, server_id: &str) -> anyhow::Result<protocol::Diagnostics> {
        self.host_for(host).await?.driver.diagnostics(server_id).await
    }

    pub async fn console_log(&self, host: &str, server_id: &str) -> anyhow::Result<String> {
        self.host_for(host).await?.driver.console_log(server_id).await
    }
}
