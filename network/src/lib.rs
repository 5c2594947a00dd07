//! The network service: a Neutron v2.0 compatible API for networks, subnets with IPAM,
//! ports and security groups.
//!
//! Layers: [`api`] (HTTP: routing, queries, views) → [`app`] (rules, IPAM, quotas,
//! events) → [`store`] (SQL); [`ipam`] is address arithmetic.

pub mod api;
pub mod app;
pub mod config;
pub mod driver;
pub mod ipam;
pub mod migrations;
pub mod store;

pub use app::NetworkService;
