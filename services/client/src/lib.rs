//! A client for Stratus (and other OpenStack clouds): credentials found as the openstack
//! client finds them ([`config::CloudConfig`]), a session with a cached token and the
//! service catalog ([`session::Session`]), and errors that say what to do next.
//!
//! ```no_run
//! # async fn demo() -> Result<(), stratus_client::Error> {
//! let cfg = stratus_client::CloudConfig::load(Some("mycloud"))?; // clouds.yaml + OS_*
//! let session = stratus_client::Session::connect(cfg).await?;   // cached token, or a login
//! let servers = session.get("compute", "/servers/detail").await?;
//! println!("{}", servers["servers"].as_array().map_or(0, Vec::len));
//! # Ok(()) }
//! ```

pub mod config;
pub mod resources;
pub mod session;
pub mod wait;

pub use config::CloudConfig;
pub use session::Session;

/// What can go wrong, each with what to do about it in its message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The credentials or clouds.yaml are missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    /// The identity service refused the credentials.
    #[error("authentication failed: {0}; check the password, user, project and domain")]
    Auth(String),
    /// A service could not be reached.
    #[error("cannot reach {0}")]
    Unreachable(String),
    /// The catalog has no such service.
    #[error("the catalog has no {service} endpoint for interface {interface}{}", region.as_ref().map(|r| format!(" in region {r}")).unwrap_or_default())]
    NoEndpoint { service: String, interface: String, region: Option<String> },
    /// A service answered with an error.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// No resource of this kind has that name or ID.
    #[error("no {kind} with the name or ID {name:?}")]
    NotFound { kind: &'static str, name: String },
    /// Several resources of this kind have that name.
    #[error("{count} {kind}s are named {name:?}: use an ID")]
    Ambiguous { kind: &'static str, name: String, count: usize },
}

impl Error {
    /// A 404 from a service, or no resource by that name.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api { status: 404, .. } | Error::NotFound { .. })
    }
}
