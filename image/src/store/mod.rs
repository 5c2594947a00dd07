//! The image service's datastore: images, members, per-project usage counters, and the
//! metadata definitions catalog.

mod images;
mod members;
mod metadefs;
mod usage;

pub use images::{Image, ImageStatus};
pub use members::Member;
pub use metadefs::{Association, Item, ItemKind, Namespace, NewNamespace, ResourceType};

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
