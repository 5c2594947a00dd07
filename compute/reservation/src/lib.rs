//! The reservation service: a Blazar v1 compatible API for leasing hosts.
//!
//! Layers: [`api`] (HTTP, Blazar's shapes and errors) → [`app`] (who may do what,
//! allocation, the lease event schedule) → [`store`] (SQL). Hosts are hypervisors that
//! compute knows; [`compute`] is how the service reads them and hands them to a
//! lease's reservation (compute's scheduler then places only that reservation's
//! servers on them) and takes them back.
//!
//! Allocation is atomic: every allocation runs in one transaction that first takes the
//! allocation lock row, then checks for overlapping windows, then writes; two leases can
//! never hold one host at once, under any concurrency, on SQLite or PostgreSQL.

pub mod api;
pub mod app;
pub mod client;
pub mod compute;
pub mod config;
pub mod filter;
pub mod migrations;
pub mod model;
pub mod network;
pub mod store;

pub use app::ReservationService;
