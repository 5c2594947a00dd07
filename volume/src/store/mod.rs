//! The volume service's SQL. Rows are read as typed structs (lists and single rows
//! alike, through [`Db::json_rows`]); every save of a volume or snapshot checks its
//! revision, so a saga step and a request never overwrite each other's changes.

mod backend_states;
mod backups;
mod group_types;
mod groups;
mod messages;
mod metering;
mod qos;
mod snapshots;
mod transfers;
mod types;
mod volumes;

pub use backups::{Backup, BackupStatus};
pub use group_types::GroupType;
pub use groups::{Group, GroupSnapshot, GroupStatus};
pub use messages::Message;
pub use metering::{Metered, Period};
pub use qos::QosSpecs;
pub use snapshots::{Snapshot, SnapshotStatus};
pub use transfers::{Accepted, Transfer};
pub use types::VolumeType;
pub use volumes::{AttachStatus, Attachment, Volume, VolumeControl, VolumeStatus};

use stratus_common::db::Db;

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// The usage table quotas are counted in.
pub const USAGE: &str = "volume_usage";

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// What a project uses, by resource.
    pub async fn usage(&self, project: &str) -> StoreResult<std::collections::HashMap<String, i64>> {
        Ok(stratus_common::db::usage::of(&self.db, USAGE, project).await?.into_iter().collect())
    }
}

/// A map stored as JSON text.
pub(crate) fn json_text(m: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(m.clone()).to_string()
}
