//! The image service: a Glance v2 compatible API for images and their data.
//!
//! Layers: [`api`] (HTTP) → [`app`] (rules, upload pipeline, reconciler) → [`store`]
//! (SQL) and [`backend`] (where bytes live); [`inspect`] knows disk formats.

pub mod api;
pub mod app;
pub mod backend;
pub mod config;
pub mod inspect;
pub mod migrations;
pub mod store;

pub use app::ImageService;
