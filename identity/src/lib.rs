//! The identity service: a Keystone v3 compatible API for domains, projects, users,
//! groups, roles, tokens, the service catalog, application credentials and quotas
//! (unified limits).
//!
//! Layers, strictly: [`api`] (HTTP handlers: parse, call, render) → [`app`]
//! (authorisation, validation, effects) → [`store`] (SQL).

pub mod api;
pub mod app;
pub mod config;
pub mod migrations;
pub mod store;

pub use app::Identity;
