//! Hypervisor drivers: what runs guests on a host. `fake` keeps guests in memory (tests
//! and benchmarks at scale); `libvirt` runs real guests; `ironic` makes bare-metal nodes
//! hosts.

pub mod fake;
pub mod ironic;
pub mod libvirt;

use crate::protocol::{Diagnostics, GuestSpec, GuestState, PortSpec, PowerState, VolumeSpec};
use futures::future::BoxFuture;

/// A host's capacity as the driver sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub vcpus: i64,
    pub ram_mb: i64,
    pub disk_gb: i64,
    pub hypervisor_type: String,
}

/// Operations are idempotent by server id: spawning a guest that runs, starting one
/// that runs, or destroying one that is gone succeeds and changes nothing.
pub trait HypervisorDriver: Send + Sync {
    fn name(&self) -> &'static str;
    fn capacity(&self) -> Capacity;
    /// The machine's uptime and load, for drivers that run one (libvirt: this host).
    fn uptime(&self) -> Option<String> {
        None
    }
    /// Creates and boots the guest; answers its power state.
    fn spawn<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    fn destroy<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<()>>;
    fn stop<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    fn start<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    fn reboot<'a>(&'a self, server_id: &'a str, hard: bool) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Freezes a running guest in memory (a paused one stays paused).
    fn pause<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Lets a paused guest run again (a running one keeps running).
    fn unpause<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Re-creates the guest's disk from `spec.image_id` (same identity, ports and
    /// power state); answers the power state.
    fn rebuild<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Gives the guest `spec`'s vCPUs, RAM and disk (growing the disk only); a guest
    /// that ran runs again afterwards. Already that size: nothing changes.
    fn resize<'a>(&'a self, server_id: &'a str, spec: &'a GuestSpec) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Plugs a NIC for the port into the guest (a port already plugged is fine).
    fn attach_interface<'a>(
        &'a self,
        server_id: &'a str,
        port: &'a PortSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Unplugs the port's NIC (one not plugged is fine).
    fn detach_interface<'a>(
        &'a self,
        server_id: &'a str,
        port_id: &'a str,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Plugs the volume into the guest, live and in its definition (one plugged
    /// already is fine).
    fn attach_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Unplugs the volume (one not plugged, or a guest that is gone, is fine).
    fn detach_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>>;
    /// Grows an attached volume to `volume.size_gb` (see `Op::ExtendVolume`).
    fn extend_volume<'a>(
        &'a self,
        server_id: &'a str,
        volume: &'a VolumeSpec,
    ) -> BoxFuture<'a, anyhow::Result<PowerState>> {
        let name = self.name();
        Box::pin(async move {
            anyhow::bail!("the {name} driver cannot extend volume {} of server {server_id}", volume.volume_id)
        })
    }
    /// Every guest on the host with its power state.
    fn guests(&self) -> BoxFuture<'_, anyhow::Result<Vec<GuestState>>>;
    fn console_log<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<String>>;
    /// What the host measures of the guest: state, memory, CPU time, NIC and disk
    /// counters.
    fn diagnostics<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<Diagnostics>> {
        let name = self.name();
        Box::pin(async move { anyhow::bail!("the {name} driver reports no diagnostics of server {server_id}") })
    }
    /// Copies the guest's root disk, whole (its backing image folded in), into a file
    /// for a snapshot, consistent as of one moment (a running guest is paused for the
    /// copy and runs on afterwards). The caller uploads the file and removes it.
    fn export_disk<'a>(&'a self, server_id: &'a str) -> BoxFuture<'a, anyhow::Result<DiskExport>> {
        let name = self.name();
        Box::pin(async move { anyhow::bail!("the {name} driver cannot snapshot server {server_id}'s disk") })
    }
}

/// A guest's disk copied for a snapshot: the file and its disk format (Glance's name).
#[derive(Debug, Clone, PartialEq)]
pub struct DiskExport {
    pub path: std::path::PathBuf,
    pub disk_format: &'static str,
}
