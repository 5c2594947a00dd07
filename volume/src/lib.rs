//! The volume service: a Cinder v3 compatible API for block storage.
//!
//! Layers: [`api`] (HTTP, Cinder's shapes and errors) → [`app`] (rules, quotas, the
//! sagas that make, copy, grow and remove volumes and snapshots) → [`store`] (SQL) and
//! [`driver`] (where the bytes live: qcow2 files under a directory, or in memory for
//! tests at scale).

pub mod api;
pub mod app;
pub mod config;
pub mod driver;
pub mod migrations;
pub mod store;

pub use app::VolumeService;
