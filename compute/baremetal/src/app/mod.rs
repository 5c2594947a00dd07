//! The bare-metal service's rules: who may do what to nodes and ports, the provisioning
//! state machine ([`crate::model`]) as requests see it, and the conductor that does the
//! work on the hardware. One file per resource; `conductor.rs` holds the worker.

pub mod conductor;
pub mod deploy;
mod error;
pub mod nodes;
pub mod ports;

pub use error::{bad, AppResult, Error};

use crate::driver::Drivers;
use crate::store::{Node, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;

#[derive(Debug, Clone)]
pub struct Settings {
    pub public_url: String,
    /// This conductor's name, shown in a busy node's `reservation`.
    pub conductor: String,
    /// The longest the conductor sleeps between looks for work.
    pub tick: Duration,
    /// How often the power state of idle nodes is read from their BMCs.
    pub power_sync_every: Duration,
    /// Consecutive failed power reads after which a node goes into maintenance.
    pub power_sync_failures: u32,
    /// How long a power request may take to show on the BMC.
    pub power_timeout: Duration,
    /// The direct deploy: the ramdisk, where nodes reach the API, the wait bound.
    pub deploy: deploy::DeploySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_url: String::new(),
            conductor: "localhost".into(),
            tick: Duration::from_secs(1),
            power_sync_every: Duration::from_secs(60),
            power_sync_failures: 3,
            power_timeout: Duration::from_secs(60),
            deploy: deploy::DeploySettings {
                callback_timeout: Duration::from_secs(1800),
                work_dir: std::env::temp_dir().join("stratus-baremetal"),
                ..Default::default()
            },
        }
    }
}

pub struct BaremetalService {
    pub store: Store,
    pub bus: Bus,
    pub drivers: Drivers,
    pub settings: Settings,
    /// Where images named by id are fetched from (none: only http(s) URLs deploy).
    pub images: Option<Arc<stratus_common::image_cache::ImageCache>>,
    /// Wakes the conductor when a node is given work.
    pub(crate) wake: tokio::sync::Notify,
    /// Nodes the conductor is working on now, so no node is worked on twice at once.
    pub(crate) busy: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Consecutive failed power reads per node.
    pub(crate) sync_failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl BaremetalService {
    pub fn new(
        store: Store,
        bus: Bus,
        drivers: Drivers,
        settings: Settings,
        images: Option<Arc<stratus_common::image_cache::ImageCache>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            bus,
            drivers,
            settings,
            images,
            wake: tokio::sync::Notify::new(),
            busy: Default::default(),
            sync_failures: Default::default(),
        })
    }

    /// Announces a node's lifecycle event (`baremetal.node.<what>`).
    pub(crate) async fn notify(&self, what: &str, n: &Node) {
        let body = json!({"node_uuid": n.id, "name": n.name, "provision_state": n.provision_state.as_str(),
                          "power_state": n.power_state.map(|p| p.as_str()), "last_error": n.last_error,
                          "instance_uuid": n.instance_uuid, "timestamp": now_text()});
        self.bus.emit(&format!("baremetal.node.{what}"), &body).await;
    }
}

/// Ironic's default policy: nodes, ports and drivers are the cloud operator's.
pub(crate) fn require_admin(ctx: &AuthContext, what: &str) -> AppResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("{what} is disallowed by policy")))
    }
}
