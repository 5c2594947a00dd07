//! Identity's application layer: authorisation, validation, and the effects of each
//! operation (store writes, revocations, events). HTTP handlers only parse and render;
//! they call these methods with the caller's [`AuthContext`].

pub mod app_creds;
mod bootstrap;
pub mod catalog;
pub mod credentials;
pub mod domains;
pub mod endpoint_filters;
pub mod groups;
mod keys;
pub mod limits;
pub mod oauth1;
mod passwords;
pub mod policy;
pub mod policy_documents;
pub mod projects;
pub mod roles;
pub mod tokens;
pub mod users;

pub use bootstrap::{BootstrapOptions, BootstrapReport, CatalogService, DEFAULT_LIMITS};
pub use catalog::{CatalogEndpoint, CatalogEntry};
pub use keys::{IdentityKeySource, KeyRing};
pub use limits::InProcessLimitsSource;
pub use passwords::Passwords;
pub use roles::{AssignmentQuery, RoleAssignmentView};
pub use tokens::IssuedToken;

use crate::config::IdentityConfig;
use crate::store::Store;
use serde_json::json;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use stratus_common::auth::{Revocation, TokenVerifier};
use stratus_common::bus::Bus;
use stratus_common::db::{is_foreign_key_violation, is_unique_violation, now_text};
use stratus_common::http::{ApiError, ApiResult};

/// Everything identity's operations need; shared by all handlers.
pub struct Identity {
    pub store: Store,
    pub bus: Bus,
    pub config: IdentityConfig,
    /// Public base URL of this service (`http://host:5000`).
    pub public_url: String,
    pub passwords: Passwords,
    pub keys: KeyRing,
    pub verifier: Arc<TokenVerifier>,
    catalog_cache: RwLock<Option<Arc<Vec<CatalogEntry>>>>,
    /// The endpoint filters' links, read with the catalog.
    filters_cache: RwLock<Option<Arc<endpoint_filters::EndpointFilters>>>,
}

impl Identity {
    /// Loads (or creates) the signing keys and starts verifying with them.
    pub async fn new(store: Store, bus: Bus, config: IdentityConfig, public_url: String) -> anyhow::Result<Arc<Self>> {
        let keys = KeyRing::new(store.clone());
        keys.ensure().await?;
        keys.reload().await?;
        let source = Arc::new(IdentityKeySource::new(store.clone(), config.token_ttl_secs));
        let verifier = TokenVerifier::new(source).await?;
        verifier.spawn_background(bus.clone(), Duration::from_secs(config.refresh_secs.max(1)));
        let passwords = Passwords::new(config.argon2_memory_kib, config.argon2_iterations)?;
        let me = Arc::new(Self {
            store,
            bus,
            config,
            public_url,
            passwords,
            keys,
            verifier,
            catalog_cache: RwLock::new(None),
            filters_cache: RwLock::new(None),
        });
        me.spawn_key_refresh();
        Ok(me)
    }

    /// Keeps this process's signing key current after rotations made elsewhere.
    fn spawn_key_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let bus = self.bus.clone();
        let every = Duration::from_secs(self.config.refresh_secs.max(1));
        tokio::spawn(async move {
            let mut sub = bus.subscribe(stratus_common::auth::token::KEYS_ROTATED_SUBJECT).await.ok();
            loop {
                let nudged = async {
                    match sub.as_mut() {
                        Some(s) => {
                            s.next().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = nudged => {},
                    _ = tokio::time::sleep(every) => {},
                }
                let Some(me) = weak.upgrade() else { return };
                if let Err(err) = me.keys.reload().await {
                    tracing::warn!(error = %err, "could not reload signing keys");
                }
                let since = stratus_common::db::time_text(
                    chrono::Utc::now() - chrono::Duration::seconds(me.config.token_ttl_secs * 2),
                );
                let _ = me.store.revocation_prune(&since).await;
            }
        });
    }

    /// Publishes a lifecycle event (`identity.project.created`, ...).
    pub(crate) async fn emit(&self, resource: &str, action: &str, id: &str) {
        self.bus
            .emit(&format!("identity.{resource}.{action}"), &json!({"resource_info": id, "timestamp": now_text()}))
            .await;
    }

    /// Records a revocation, applies it in this process at once, and publishes it so
    /// every other service applies it too.
    pub(crate) async fn revoke(&self, mut r: Revocation) -> ApiResult<()> {
        let now = now_text();
        if r.issued_before.is_empty() {
            r.issued_before = now.clone();
        }
        r.revoked_at = now;
        self.store.revocation_create(&r).await?;
        self.verifier.add_revocation(r.clone());
        self.bus.emit(stratus_common::auth::token::REVOCATION_SUBJECT, &r).await;
        Ok(())
    }

    pub(crate) fn invalidate_catalog(&self) {
        *self.catalog_cache.write().unwrap() = None;
        *self.filters_cache.write().unwrap() = None;
    }
}

/// Maps a store error on a write: duplicates are 409, dangling references 400.
pub(crate) fn write_error(what: &str) -> impl Fn(sqlx::Error) -> ApiError + '_ {
    move |err| {
        if is_unique_violation(&err) {
            ApiError::conflict(format!("Conflict occurred attempting to store {what} - Duplicate entry."))
        } else if is_foreign_key_violation(&err) {
            ApiError::bad_request(format!("The {what} refers to something that does not exist."))
        } else {
            ApiError::from(err)
        }
    }
}

/// Names must be non-empty and at most 255 characters, as in Keystone.
pub(crate) fn validate_name(what: &str, name: &str) -> ApiResult<()> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request(format!("Invalid input for field '{what}.name': it must not be empty.")));
    }
    // Keystone's schema: 64 characters for projects, domains and groups; 255 otherwise.
    let max = if matches!(what, "project" | "domain" | "group") { 64 } else { 255 };
    if name.chars().count() > max {
        return Err(ApiError::bad_request(format!("Invalid input for field '{what}.name': at most {max} characters.")));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("Invalid input for field '{what}.name': control characters.")));
    }
    Ok(())
}
