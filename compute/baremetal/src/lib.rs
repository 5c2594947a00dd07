//! The bare-metal service: an Ironic v1 compatible API for physical servers.
//!
//! Layers: [`api`] (HTTP, Ironic's shapes, microversions and errors) → [`app`] (who may
//! do what, the provisioning state machine of [`model`], and the conductor that does the
//! work) → [`store`] (SQL). [`driver`] reaches each node's BMC: Redfish, IPMI, or fake.
//!
//! Requests that touch hardware answer at once (202) and leave the work recorded on the
//! node; the conductor does it and lands the node on its target state or a failure
//! state with `last_error`. A restart finds the recorded work and finishes it.

pub mod api;
pub mod app;
pub mod config;
pub mod dhcp;
pub mod driver;
pub mod migrations;
pub mod model;
pub mod store;

pub use app::BaremetalService;
