//! The image service's datastore: images, members, and per-project usage counters.

mod images;
mod members;
mod usage;

pub use images::{Image, ImageStatus};
pub use members::Member;

use stratus_common::db::Db;

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}
