//! The bare-metal service's SQL. A node is saved whole, on the condition that its
//! revision is still the one read: the API, the conductor and the power sync never
//! overwrite each other's changes, on SQLite or PostgreSQL.

mod nodes;
mod ports;

pub use nodes::{DeployImage, Internal, Node};
pub use ports::Port;

use stratus_common::db::Db;

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Clone)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

/// A stored enum read back: an unknown value is corrupt data, reported as a decode error.
pub(crate) fn parse_enum<T: std::str::FromStr<Err = String>>(text: &str) -> StoreResult<T> {
    text.parse().map_err(|e: String| sqlx::Error::Decode(e.into()))
}

pub(crate) fn parse_object(text: &str) -> StoreResult<serde_json::Map<String, serde_json::Value>> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(e.into()))
}
