//! Identity's datastore: one file per resource, methods named resource first
//! (`project_fetch`, `user_list`). Only identity reads these tables. The store does no
//! authorisation; the app layer has decided before it calls.

mod app_creds;
mod assignments;
mod catalog;
mod credentials;
mod domains;
mod endpoint_filters;
mod groups;
mod keys;
mod limits;
mod oauth1;
mod policy_documents;
mod projects;
mod revocations;
mod roles;
mod users;

pub use app_creds::AppCred;
pub use assignments::{Actor, Assignment, Target};
pub use catalog::{Endpoint, Region, Service};
pub use credentials::Credential;
pub use domains::Domain;
pub use endpoint_filters::EndpointGroup;
pub use groups::Group;
pub use keys::SigningKey;
pub use limits::{Limit, RegisteredLimit};
pub use oauth1::{AccessToken, Consumer, RequestToken};
pub use policy_documents::PolicyDocument;
pub use projects::Project;
pub use roles::Role;
pub use users::User;

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

/// A new resource id: 32 hex digits, as Keystone's.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Parses a JSON object column, empty object on anything else.
pub(crate) fn json_object(text: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}
