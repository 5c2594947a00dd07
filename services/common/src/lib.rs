//! What every Stratus service shares.
//!
//! - `config`: one TOML file, every key overridable by environment variable;
//! - `db`: the SQL database (SQLite or PostgreSQL) and per-service migrations;
//! - `bus`: events, requests and durable work queues (in-process or NATS);
//! - `http`: error bodies, request ids, metrics, JSON parsing, listing, serving;
//! - `auth`: token claims, local verification, the authenticated caller;
//! - `limits`: the quota client services use before creating resources;
//! - `image_cache`: images downloaded once from the image service and verified, for
//!   hosts that make disks from them;
//! - `saga`: persisted multi-step operations with undo, resumed after a crash;
//! - `supervisor`: background tasks restarted when they end, with their last run,
//!   success and error;
//! - `telemetry`: logging;
//! - `ids`: typed identifiers (a saga's, a project's), shared with every service.

pub mod auth;
pub mod bus;
pub mod config;
pub mod db;
pub mod http;
pub mod image_cache;
pub mod limits;
pub mod saga;
pub mod supervisor;
pub mod telemetry;

pub use stratus_ids as ids;
