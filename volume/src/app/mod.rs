//! The volume service's rules: who may do what, quotas, and the sagas that do the
//! work on a backend. One file per resource; `sagas.rs` holds the step tables.

pub mod attachment_records;
pub mod attachments;
pub mod backends;
pub mod backup_sagas;
pub mod backups;
mod error;
pub mod group_types;
pub mod groups;
pub mod images;
pub mod messages;
pub mod metering;
pub mod online_extend;
pub mod qos;
pub mod quotas;
pub mod revert;
pub mod sagas;
pub mod scheduler;
pub mod snapshots;
pub mod transfers;
pub mod types;
pub mod volumes;

pub use error::{bad, invalid, not_found, AppResult, Error};
pub use images::ImageLink;

use crate::driver::VolumeDriver;
use crate::store::Store;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use stratus_common::auth::AuthContext;
use stratus_common::bus::Bus;
use stratus_common::db::now_text;
use stratus_common::limits::LimitsClient;
use stratus_common::saga::{Saga, SagaRunner};

/// The name of the type volumes get when none is asked for (as Cinder's).
pub const DEFAULT_TYPE: &str = "__DEFAULT__";
/// The availability zone every volume is in.
pub const ZONE: &str = "nova";

/// Where the service reaches identity to write quotas.
#[derive(Clone, Default)]
pub struct IdentityLink {
    pub http: reqwest::Client,
    pub url: String,
}

pub struct VolumeService {
    pub store: Store,
    pub bus: Bus,
    pub limits: Arc<LimitsClient>,
    /// Backends by name; volume types pick one with `volume_backend_name`.
    pub drivers: HashMap<String, Arc<dyn VolumeDriver>>,
    /// The backend of types that name none.
    pub default_backend: String,
    pub sagas: SagaRunner,
    pub public_url: String,
    pub identity: IdentityLink,
    pub images: ImageLink,
    /// The compute API (`…/v2.1`), told when an attached volume grows so that the
    /// guest's disk grows too (`volume-extended`); unset, attached volumes are not
    /// extended. Set once both services are up ([`VolumeService::set_compute_url`]).
    pub compute_url: std::sync::OnceLock<String>,
    /// Where backups are kept ([`VolumeService::set_backup_repository`]); without
    /// one, backups are refused.
    pub backups: std::sync::OnceLock<crate::driver::backups::BackupRepository>,
    /// A member of a group or group snapshot changed since the last settling pass,
    /// and the pass itself (`app::groups`).
    pub(crate) groups_dirty: std::sync::atomic::AtomicBool,
    /// Counts group work recorded, and the count the last pass that found none
    /// pending had seen (`VolumeService::groups_may_be_pending`).
    pub(crate) groups_gen: std::sync::atomic::AtomicU64,
    pub(crate) groups_settled_gen: std::sync::atomic::AtomicU64,
    pub(crate) groups_settling: tokio::sync::Mutex<()>,
}

impl VolumeService {
    pub fn new(
        store: Store,
        bus: Bus,
        limits: Arc<LimitsClient>,
        drivers: Vec<Arc<dyn VolumeDriver>>,
        public_url: String,
        identity: IdentityLink,
        images: ImageLink,
    ) -> Arc<Self> {
        let default_backend = drivers.first().map(|d| d.name().to_string()).unwrap_or_default();
        let drivers = drivers.into_iter().map(|d| (d.name().to_string(), d)).collect();
        Arc::new_cyclic(|me: &Weak<VolumeService>| {
            let sagas = SagaRunner::new(store.db.clone(), "volume_sagas", sagas::definitions(me));
            Self {
                store,
                bus,
                limits,
                drivers,
                default_backend,
                sagas,
                public_url,
                identity,
                images,
                compute_url: Default::default(),
                backups: Default::default(),
                groups_dirty: Default::default(),
                // Work left by an earlier run may be pending: the first pass looks.
                groups_gen: std::sync::atomic::AtomicU64::new(1),
                groups_settled_gen: Default::default(),
                groups_settling: Default::default(),
            }
        })
    }

    /// Where the compute API is (see [`VolumeService::compute_url`]); set once.
    pub fn set_compute_url(&self, url: &str) {
        let _ = self.compute_url.set(url.trim_end_matches('/').to_string());
    }

    /// Makes the default type if there is none, and drives sagas left by an earlier run.
    pub async fn start(self: &Arc<Self>, reconcile_every: Duration) -> anyhow::Result<()> {
        self.ensure_default_type().await?;
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn_every("volume.reconciler", reconcile_every, move || {
            let me = me.clone();
            async move {
                me.sagas.resume_all().await?;
                // The reconciler's pass always reads.
                me.groups_changed();
                me.settle_groups().await.map_err(|e| anyhow::anyhow!("{e}"))
            }
        });
        let me = self.clone();
        stratus_common::supervisor::SUPERVISOR.spawn_every("volume.exports", reconcile_every, move || {
            let me = me.clone();
            async move { me.volumes_keep_serving().await }
        });
        Ok(())
    }

    pub(crate) fn driver(&self, backend: &str) -> Result<Arc<dyn VolumeDriver>, Error> {
        self.drivers
            .get(backend)
            .cloned()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("backend {backend} is not configured here")))
    }

    /// The storage host of the backend volume `v` is on.
    pub fn backend_host(&self, v: &crate::store::Volume) -> &str {
        self.drivers.get(&v.backend).map_or("stratus", |d| d.host())
    }

    /// The storage host of volume `v`'s backend, for an admin (only they see it).
    pub fn admin_host(&self, ctx: &AuthContext, v: &crate::store::Volume) -> Option<&str> {
        ctx.is_admin().then(|| self.backend_host(v))
    }

    /// Writes a new saga with the transaction that makes its subject, then drives it in
    /// the background once committed (the caller commits, then calls [`Self::run`]).
    pub(crate) fn new_saga<T: serde::Serialize>(kind: &str, subject: &str, data: &T) -> Saga {
        Saga::fresh(Saga::new_id(), kind, subject, data)
    }

    pub(crate) fn run(&self, saga: Saga) {
        self.sagas.spawn_saga(saga);
    }

    /// Announces a lifecycle event (`volume.<what>`).
    pub(crate) async fn notify(&self, what: &str, id: &str, project: &str, status: &str) {
        self.bus
            .emit(
                &format!("volume.{what}"),
                &json!({"id": id, "project_id": project, "status": status, "timestamp": now_text()}),
            )
            .await;
    }
}

/// A yes/no a client may send as a boolean or as text (`"True"`, `"false"`, ...);
/// `None` when absent or null, 400 naming `name` otherwise.
pub(crate) fn optional_flag(name: &str, v: Option<&serde_json::Value>) -> AppResult<Option<bool>> {
    use serde_json::Value;
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(t)) => stratus_common::http::pagination::parse_bool(t)
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid value '{t}' for {name}."))),
        Some(other) => Err(bad(format!("Invalid value '{other}' for {name}."))),
    }
}

/// [`optional_flag`], absent meaning false.
pub(crate) fn flag(name: &str, v: Option<&serde_json::Value>) -> AppResult<bool> {
    Ok(optional_flag(name, v)?.unwrap_or(false))
}

/// Policy: admin, or a member of the project (readers may only read).
pub(crate) fn require_writer(ctx: &AuthContext) -> AppResult<()> {
    if ctx.is_admin() || ctx.has_role("member") {
        Ok(())
    } else {
        Err(Error::Forbidden("Policy doesn't allow this operation: readers cannot change volumes.".into()))
    }
}

pub(crate) fn require_admin(ctx: &AuthContext, what: &str) -> AppResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("Policy doesn't allow {what} to be performed.")))
    }
}

pub(crate) fn project_of(ctx: &AuthContext) -> AppResult<String> {
    ctx.project_id().map(str::to_string).ok_or_else(|| Error::Forbidden("A project-scoped token is needed.".into()))
}

/// Whether the caller may see something of `project`.
pub(crate) fn visible(ctx: &AuthContext, project: &str) -> bool {
    ctx.is_admin() || ctx.project_id() == Some(project)
}
