//! The volume service's configuration section, `[volume]`.

use serde::{Deserialize, Serialize};
use stratus_common::config::{check_ip, check_url, ConfigError};

/// A volume backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeDriverKind {
    /// qcow2 files under the data directory, made with `qemu-img`.
    File,
    /// In memory (tests at scale).
    Fake,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeConfig {
    pub port: u16,
    /// Where volume bytes live: `file` (qcow2 files under `<data_dir>/volumes`) or
    /// `fake` (in memory; tests at scale).
    pub driver: VolumeDriverKind,
    /// How often unfinished volume sagas are driven again, in seconds.
    pub reconcile_secs: u64,
    /// The image API volumes are made from; empty = this deployment's own.
    pub image_url: String,
    /// The compute API (`…/v2.1`) told when an attached volume grows; empty = this
    /// deployment's own.
    pub compute_url: String,
    /// This storage host's name, as compute hosts name themselves: a compute host of
    /// this name reaches `file` volumes as files, any other over the network (NBD).
    /// Empty = `[compute_agent] host`, else the machine's host name.
    pub host: String,
    /// The address this storage host exports volumes at over NBD (compute hosts
    /// connect to it); empty = `[server] public_host`.
    pub nbd_address: String,
    /// The TCP ports NBD exports take, one per exported volume: `nbd_ports` ports
    /// from `nbd_first_port`.
    pub nbd_first_port: u16,
    pub nbd_ports: u16,
    /// Where backups are kept (a directory; a network file system shared by storage
    /// hosts works); empty = `<data_dir>/backups`.
    pub backup_dir: String,
    /// A Ceph pool that holds volumes too, as the backend `rbd` (volume types choose
    /// it with `volume_backend_name=rbd`); empty = none.
    pub rbd_pool: String,
    /// The Ceph cluster's configuration file (its monitors, the user's keyring).
    pub rbd_conf: String,
    /// The Ceph user (`client.<rbd_user>`) the service and the compute hosts act as.
    pub rbd_user: String,
    /// The UUID of the libvirt secret, defined on every compute host, that holds the
    /// user's key; empty when the cluster does not authenticate.
    pub rbd_secret_uuid: String,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        Self {
            port: 8776,
            driver: VolumeDriverKind::File,
            reconcile_secs: 30,
            image_url: String::new(),
            compute_url: String::new(),
            host: String::new(),
            nbd_address: String::new(),
            nbd_first_port: 10809,
            nbd_ports: 200,
            backup_dir: String::new(),
            rbd_pool: String::new(),
            rbd_conf: "/etc/ceph/ceph.conf".into(),
            rbd_user: "cinder".into(),
            rbd_secret_uuid: String::new(),
        }
    }
}

stratus_common::from_str_by_serde!(VolumeDriverKind);

impl VolumeConfig {
    /// Checks what types alone cannot; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_ip("volume.nbd_address", &self.nbd_address)?;
        if self.nbd_ports == 0 || u32::from(self.nbd_first_port) + u32::from(self.nbd_ports) > 65536 {
            return Err(ConfigError::Invalid(
                "volume.nbd_ports: at least one port, and nbd_first_port + nbd_ports at most 65536".into(),
            ));
        }
        check_url("volume.image_url", &self.image_url)?;
        if !self.rbd_pool.is_empty() {
            if self.rbd_conf.is_empty() || self.rbd_user.is_empty() {
                return Err(ConfigError::Invalid("volume.rbd_conf and volume.rbd_user: needed with rbd_pool".into()));
            }
            if !self.rbd_secret_uuid.is_empty() && uuid::Uuid::parse_str(&self.rbd_secret_uuid).is_err() {
                return Err(ConfigError::Invalid("volume.rbd_secret_uuid: not a UUID".into()));
            }
        }
        check_url("volume.compute_url", &self.compute_url)
    }
}
