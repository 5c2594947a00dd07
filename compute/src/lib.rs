//! The compute service: a Nova v2.1 compatible API (with microversions) for flavors,
//! keypairs, servers and their actions, server groups, hypervisors, quotas and usage;
//! placement and scheduling; sagas that build and delete servers through the compute
//! agents.
//!
//! Layers: [`api`] (HTTP, microversion-shaped views) → [`app`] (policy, validation,
//! sagas, reconciler) → [`store`] (SQL). [`scheduler`] picks hosts; [`clients`] calls
//! the network and image services.

pub mod api;
pub mod app;
pub mod clients;
pub mod config;
pub mod metadata;
pub mod microversion;
pub mod migrations;
pub mod scheduler;
pub mod store;

pub use app::ComputeService;
