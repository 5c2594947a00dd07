//! The fake hypervisor: guests are entries in a map. Boot delay and failure rate are
//! configurable so tests can exercise slow hosts and failed builds, and one process
//! can run a thousand fake hosts for benchmarks.

use super::{Capacity, DiskExport, HypervisorDriver};
use crate::protocol::{Diagnostics, DiskStats, GuestSpec, GuestState, NicStats, PortSpec, PowerState, VolumeSpec};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FakeOptions {
    pub capacity: Capacity,
    /// How long a spawn, a rebuild and a resize take (each boots the guest).
    pub boot_delay: Duration,
    /// Share of spawns, rebuilds and resizes that fail, 0.0 to 1.0.
    pub failure_rate: f64,
}

impl Default for FakeOptions {
    fn default() -> Self {
        Self {
            capacity: Capacity { vcpus: 64, ram_mb: 262_144, disk_gb: 4096, hypervisor_type: "fake".into() },
            boot_delay: Duration::ZERO,
            failure_rate: 0.0,
        }
    }
}

struct Guest {
    power_state: PowerState,
    log: String,
    /// Ports with a NIC in the guest.
    ports: Vec<String>,
    /// Volumes plugged in: (volume id, device).
    volumes: Vec<(String, String)>,
    /// What the guest runs: (vCPUs, MiB of RAM, image).
    shape: (i64, i64, String),
}

pub struct FakeDriver {
    options: FakeOptions,
    guests: Mutex<BTreeMap<String, Guest>>,
    /// Share of spawns and resizes that fail (changeable while running, for tests).
    failure_rate: Mutex<f64>,
}

impl FakeDriver {
    pub fn new(options: FakeOptions) -> Self {
        let failure_rate = Mutex::new(options.failure_rate);
        Self { options, guests: Mutex::new(BTreeMap::new()), failure_rate }
    }

    /// Makes this share of spawns and resizes fail from now on.
    pub fn set_failure_rate(&self, rate: f64) {
        *self.failure_rate.lock().unwrap() = rate;
    }

    fn fails(&self) -> bool {
        let rate = *self.failure_rate.lock().unwrap();
        rate > 0.0 && rand::random::<f64>() < rate
    }

    /// The ports plugged into a guest (`None`: no such guest).
    pub fn ports_of(&self, server_id: &str) -> Option<Vec<String>> {
        self.guests.lock().unwrap().get(server_id).map(|g| g.ports.clone())
    }

    /// The volumes plugged into a guest, with their devices (`None`: no such guest).
    pub fn volumes_of(&self, server_id: &str) -> Option<Vec<(String, String)>> {
        self.guests.lock().unwrap().get(server_id).map(|g| g.volumes.clone())
    }

    /// A guest's vCPUs, RAM and image (`None`: no such guest).
    pub fn shape_of(&self, server_id: &str) -> Option<(i64, i64, String)> {
        self.guests.lock().unwrap().get(server_id).map(|g| g.shape.clone())
    }

    /// Changes a guest's power state behind the service's back (a guest shutting down
    /// from inside), for reconciler tests.
    pub fn set_power_state(&self, server_id: &str, state: PowerState) -> bool {
        match self.guests.lock().unwrap().get_mut(server_id) {
            Some(g) => {
                g.power_state = state;
                true
            }
            None => false,
        }
    }

    fn set(&self, server_id: &str, state: PowerState, line: &str) -> anyhow::Result<PowerState> {
        let mut guests = self.guests.lock().unwrap();
        let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
        g.power_state = state;
        g.log.push_str(line);
        g.log.push('\n');
        Ok(state)
    }
}

impl HypervisorDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn capacity(&self) -> Capacity {
        self.options.capacity.clone()
    }

    fn spawn<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            if let Some(g) = self.guests.lock().unwrap().get(server_id) {
                return Ok(g.power_state);
            }
            if !self.options.boot_delay.is_zero() {
                tokio::time::sleep(self.options.boot_delay).await;
            }
            if self.fails() {
                anyhow::bail!("fake hypervisor: injected spawn failure");
            }
            let log = format!("fake guest {} booting\n{} login:\n", server_id, spec.name);
            self.guests.lock().unwrap().entry(server_id.to_string()).or_insert(Guest {
                power_state: PowerState::Running,
                log,
                ports: spec.ports.iter().map(|p| p.id.to_string()).collect(),
                volumes: spec.volumes.iter().map(|v| (v.volume_id.clone(), v.device.clone())).collect(),
                shape: (spec.vcpus, spec.ram_mb, spec.image_id.clone()),
            });
            Ok(PowerState::Running)
        })
    }

    fn destroy<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.guests.lock().unwrap().remove(server_id);
            Ok(())
        })
    }

    fn stop<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move { self.set(server_id, PowerState::Shutdown, "reboot: Power down") })
    }

    fn start<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move { self.set(server_id, PowerState::Running, "fake guest booting") })
    }

    fn reboot<'a>(&'a self, server_id: &'a str, hard: bool) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            self.set(server_id, PowerState::Running, if hard { "fake guest reset" } else { "fake guest rebooting" })
        })
    }

    fn pause<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move { self.set(server_id, PowerState::Paused, "fake guest paused") })
    }

    fn unpause<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move { self.set(server_id, PowerState::Running, "fake guest unpaused") })
    }

    fn rebuild<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            // The guest boots again.
            if !self.options.boot_delay.is_zero() {
                tokio::time::sleep(self.options.boot_delay).await;
            }
            if self.fails() {
                anyhow::bail!("fake hypervisor: injected rebuild failure");
            }
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            if g.shape.2 != spec.image_id {
                g.shape.2 = spec.image_id.clone();
                g.log = format!("fake guest {server_id} rebuilt from image {}\n{} login:\n", spec.image_id, spec.name);
            }
            Ok(g.power_state)
        })
    }

    fn resize<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            // The guest boots again.
            if !self.options.boot_delay.is_zero() {
                tokio::time::sleep(self.options.boot_delay).await;
            }
            if self.fails() {
                anyhow::bail!("fake hypervisor: injected resize failure");
            }
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            if (g.shape.0, g.shape.1) != (spec.vcpus, spec.ram_mb) {
                g.shape.0 = spec.vcpus;
                g.shape.1 = spec.ram_mb;
                g.log.push_str(&format!("fake guest resized to {} vCPUs, {} MiB\n", spec.vcpus, spec.ram_mb));
            }
            Ok(g.power_state)
        })
    }

    fn attach_interface<'a>(
        &'a self,
        server_id: &'a str,
        port: &'a PortSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            if !g.ports.iter().any(|p| *p == port.id) {
                g.ports.push(port.id.to_string());
                g.log.push_str(&format!("virtio_net: new NIC {}\n", port.mac_address));
            }
            Ok(g.power_state)
        })
    }

    fn detach_interface<'a>(
        &'a self,
        server_id: &'a str,
        port_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            g.ports.retain(|p| p != port_id);
            Ok(g.power_state)
        })
    }

    fn attach_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            if !g.volumes.iter().any(|(v, _)| *v == volume.volume_id) {
                g.volumes.push((volume.volume_id.clone(), volume.device.clone()));
                g.log.push_str(&format!("virtio_blk: new disk {} ({})\n", volume.device, volume.volume_id));
            }
            Ok(g.power_state)
        })
    }

    fn detach_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let mut guests = self.guests.lock().unwrap();
            let Some(g) = guests.get_mut(server_id) else { return Ok(PowerState::NoState) };
            g.volumes.retain(|(v, _)| *v != volume.volume_id);
            Ok(g.power_state)
        })
    }

    fn extend_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let mut guests = self.guests.lock().unwrap();
            let g = guests.get_mut(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            if !g.volumes.iter().any(|(v, _)| *v == volume.volume_id) {
                anyhow::bail!("volume {} is not attached to server {server_id}", volume.volume_id);
            }
            let size = volume.size_gb.ok_or_else(|| anyhow::anyhow!("an extend without a size"))?;
            g.log.push_str(&format!("virtio_blk: {} capacity change to {size} GiB\n", volume.device));
            Ok(g.power_state)
        })
    }

    fn guests(&self) -> BoxFuture<'_, anyhow::Result<Vec<GuestState>>> {
        Box::pin(async move {
            Ok(self
                .guests
                .lock()
                .unwrap()
                .iter()
                .map(|(id, g)| GuestState { server_id: id.into(), power_state: g.power_state })
                .collect())
        })
    }

    fn console_log<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let guests = self.guests.lock().unwrap();
            Ok(guests.get(server_id).map(|g| g.log.clone()).unwrap_or_default())
        })
    }

    /// A guest in memory has its shape and its devices, and nothing measured: the
    /// counters are unknown (`None`), not zero.
    fn diagnostics<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<Diagnostics>> {
        Box::pin(async move {
            let guests = self.guests.lock().unwrap();
            let g = guests.get(server_id).ok_or_else(|| anyhow::anyhow!("no guest {server_id} on this host"))?;
            let state = match g.power_state {
                PowerState::Running => "running",
                PowerState::Paused => "paused",
                PowerState::Crashed => "crashed",
                PowerState::Shutdown => "shutdown",
                _ => "pending",
            };
            let disk = |name: String| DiskStats { name, ..Default::default() };
            Ok(Diagnostics {
                state: state.into(),
                driver: "fake".into(),
                hypervisor: Some("fake".into()),
                hypervisor_os: None,
                uptime: None,
                config_drive: false,
                memory_max_kib: Some(g.shape.1 * 1024),
                memory_used_kib: None,
                num_cpus: g.shape.0,
                cpu_time_ns: None,
                nics: g.ports.iter().map(|_| NicStats::default()).collect(),
                disks: std::iter::once(disk("vda".into()))
                    .chain(g.volumes.iter().map(|(_, dev)| disk(dev.trim_start_matches("/dev/").to_string())))
                    .collect(),
            })
        })
    }

    /// A guest in memory has no disk: its snapshot is 64 KiB of raw data that name the
    /// guest and the image it runs, so a test can tell one snapshot from another.
    fn export_disk<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<DiskExport>> {
        Box::pin(async move {
            let image = match self.guests.lock().unwrap().get(server_id) {
                Some(g) => g.shape.2.clone(),
                None => anyhow::bail!("no guest {server_id} on this host"),
            };
            let mut data = format!("stratus fake disk of server {server_id}, image {image}\n").into_bytes();
            data.resize(64 << 10, 0);
            let dir = std::env::temp_dir().join("stratus-fake-snapshots");
            std::fs::create_dir_all(&dir)?;
            // Commands for one server run one at a time: one file per server will do.
            let path = dir.join(format!("{server_id}.raw"));
            std::fs::write(&path, data)?;
            Ok(DiskExport { path, disk_format: "raw" })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operations_are_idempotent_by_server_id() {
        let d = FakeDriver::new(FakeOptions::default());
        let spec = GuestSpec { name: "vm".into(), ..Default::default() };
        assert_eq!(d.spawn("s1", &spec).await.unwrap(), PowerState::Running);
        assert_eq!(d.spawn("s1", &spec).await.unwrap(), PowerState::Running);
        assert_eq!(d.guests().await.unwrap().len(), 1);
        assert_eq!(d.stop("s1").await.unwrap(), PowerState::Shutdown);
        assert_eq!(
            d.spawn("s1", &spec).await.unwrap(),
            PowerState::Shutdown,
            "spawn of an existing guest changes nothing"
        );
        d.destroy("s1").await.unwrap();
        d.destroy("s1").await.unwrap();
        assert!(d.guests().await.unwrap().is_empty());
        assert!(d.start("s1").await.is_err());
    }

    #[tokio::test]
    async fn a_snapshot_names_the_guest_and_its_image() {
        let d = FakeDriver::new(FakeOptions::default());
        assert!(d.export_disk("s1").await.is_err(), "no guest, no disk");
        d.spawn("s1", &GuestSpec { image_id: "img-1".into(), ..Default::default() }).await.unwrap();
        let export = d.export_disk("s1").await.unwrap();
        let data = std::fs::read(&export.path).unwrap();
        std::fs::remove_file(&export.path).unwrap();
        assert_eq!((export.disk_format, data.len()), ("raw", 64 << 10));
        assert!(data.starts_with(b"stratus fake disk of server s1, image img-1\n"));
    }

    #[tokio::test]
    async fn failure_rate_one_fails_every_spawn() {
        let d = FakeDriver::new(FakeOptions { failure_rate: 1.0, ..Default::default() });
        assert!(d.spawn("s1", &GuestSpec::default()).await.is_err());
        assert!(d.guests().await.unwrap().is_empty());
    }
}
