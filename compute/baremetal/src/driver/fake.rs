//! Fake hardware: nodes whose power and boot device live in memory. Tests and
//! benchmarks use it to run the conductor at scale; a test can make a node's BMC fail.

use super::{Bmc, Inventory};
use crate::model::{BootDevice, PowerState, PowerTarget};
use futures::future::BoxFuture;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct FakeState {
    pub power: PowerState,
    pub boot_device: BootDevice,
    /// Power actions done, in order (what a test checks the conductor asked for).
    pub actions: Vec<PowerTarget>,
}

#[derive(Default)]
pub struct FakeHardware {
    nodes: Mutex<HashMap<String, FakeState>>,
    broken: Mutex<HashSet<String>>,
}

impl FakeHardware {
    pub fn node(self: &Arc<Self>, id: &str) -> FakeBmc {
        FakeBmc { hw: self.clone(), id: id.to_string() }
    }

    pub fn state(&self, id: &str) -> Option<FakeState> {
        self.nodes.lock().unwrap().get(id).cloned()
    }

    /// Makes node `id`'s BMC answer every request with an error (or stop doing so).
    pub fn set_broken(&self, id: &str, broken: bool) {
        let mut b = self.broken.lock().unwrap();
        if broken {
            b.insert(id.to_string());
        } else {
            b.remove(id);
        }
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&mut FakeState) -> T) -> anyhow::Result<T> {
        anyhow::ensure!(!self.broken.lock().unwrap().contains(id), "the BMC of node {id} does not answer");
        let mut nodes = self.nodes.lock().unwrap();
        let st = nodes.entry(id.to_string()).or_insert_with(|| FakeState {
            power: PowerState::Off,
            boot_device: BootDevice::Disk,
            actions: Vec::new(),
        });
        Ok(f(st))
    }
}

pub struct FakeBmc {
    hw: Arc<FakeHardware>,
    id: String,
}

impl Bmc for FakeBmc {
    fn power_state(&self) -> BoxFuture<'_, anyhow::Result<PowerState>> {
        Box::pin(async move { self.hw.with(&self.id, |s| s.power) })
    }

    fn set_power(&self, target: PowerTarget) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            self.hw.with(&self.id, |s| {
                s.power = target.end_state();
                s.actions.push(target);
            })
        })
    }

    fn set_boot_device(&self, device: BootDevice, _persistent: bool) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move { self.hw.with(&self.id, |s| s.boot_device = device) })
    }

    fn boot_device(&self) -> BoxFuture<'_, anyhow::Result<Option<BootDevice>>> {
        Box::pin(async move { self.hw.with(&self.id, |s| Some(s.boot_device)) })
    }

    fn inventory(&self) -> BoxFuture<'_, anyhow::Result<Inventory>> {
        Box::pin(async move {
            self.hw.with(&self.id, |_| Inventory {
                cpus: Some(2),
                memory_mb: Some(4096),
                local_gb: Some(20),
                cpu_arch: Some("x86_64".into()),
                macs: Vec::new(),
            })
        })
    }
}
