//! Token signing keys and their rotation, like Keystone's fernet key repository.
//!
//! Keys live in identity's table. At any time there is one `primary` (signs new
//! tokens), one `staged` (published already, so every verifier knows it before it
//! starts signing) and up to [`MAX_SECONDARY`] `secondary` former primaries (still
//! accepted until the tokens they signed expire). Rotation promotes staged to primary,
//! demotes primary to secondary, drops the oldest secondaries and stages a new key, in
//! one transaction. A token therefore survives at least `MAX_SECONDARY` rotations:
//! rotate no more often than the token lifetime divided by that.

use crate::store::{SigningKey, Store};
use base64::Engine as _;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use std::sync::RwLock;
use stratus_common::auth::token::{KeyMaterial, PublicKey, TokenClaims};
use stratus_common::auth::KeySource;
use stratus_common::db::{now_text, time_text};

pub const MAX_SECONDARY: usize = 2;

pub struct KeyRing {
    store: Store,
    signer: RwLock<Option<(String, EncodingKey)>>,
}

fn generate(state: &str) -> anyhow::Result<SigningKey> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("bad key"))?;
    Ok(SigningKey {
        kid: uuid::Uuid::new_v4().simple().to_string()[..16].to_string(),
        private_key: base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()),
        public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        state: state.to_string(),
        created_at: now_text(),
    })
}

impl KeyRing {
    pub fn new(store: Store) -> Self {
        Self { store, signer: RwLock::new(None) }
    }

    /// Creates a primary and a staged key when there are none.
    pub async fn ensure(&self) -> anyhow::Result<()> {
        let keys = self.store.signing_key_list().await?;
        let mut insert = Vec::new();
        if !keys.iter().any(|k| k.state == "primary") {
            insert.push(generate("primary")?);
        }
        if !keys.iter().any(|k| k.state == "staged") {
            insert.push(generate("staged")?);
        }
        if !insert.is_empty() {
            if let Err(err) = self.store.signing_key_apply(&insert, &[], &[]).await {
                // Another process created them at the same moment: use theirs.
                tracing::debug!(error = %err, "signing keys created concurrently");
            }
        }
        Ok(())
    }

    /// Loads the current primary key for signing.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let keys = self.store.signing_key_list().await?;
        let primary =
            keys.iter().find(|k| k.state == "primary").ok_or_else(|| anyhow::anyhow!("no primary signing key"))?;
        let der = base64::engine::general_purpose::STANDARD.decode(&primary.private_key)?;
        let key = EncodingKey::from_ed_der(&der);
        *self.signer.write().unwrap() = Some((primary.kid.clone(), key));
        Ok(())
    }

    /// Rotates the keys; returns the new primary's id.
    pub async fn rotate(&self) -> anyhow::Result<String> {
        self.ensure().await?;
        let keys = self.store.signing_key_list().await?;
        let staged = keys.iter().find(|k| k.state == "staged").ok_or_else(|| anyhow::anyhow!("no staged key"))?;
        let mut set_state: Vec<(String, &'static str)> = vec![(staged.kid.clone(), "primary")];
        let mut secondaries: Vec<&SigningKey> = keys.iter().filter(|k| k.state == "secondary").collect();
        if let Some(primary) = keys.iter().find(|k| k.state == "primary") {
            set_state.push((primary.kid.clone(), "secondary"));
        }
        // Newest first; keep MAX_SECONDARY - 1 old ones beside the primary being demoted.
        secondaries.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let remove: Vec<String> = secondaries.iter().skip(MAX_SECONDARY - 1).map(|k| k.kid.clone()).collect();
        let new_staged = generate("staged")?;
        self.store.signing_key_apply(&[new_staged], &set_state, &remove).await?;
        self.reload().await?;
        Ok(staged.kid.clone())
    }

    pub fn sign(&self, claims: &TokenClaims) -> anyhow::Result<String> {
        let guard = self.signer.read().unwrap();
        let (kid, key) = guard.as_ref().ok_or_else(|| anyhow::anyhow!("signing key not loaded"))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, key)?)
    }
}

/// Verification material straight from identity's tables (inside identity).
pub struct IdentityKeySource {
    store: Store,
    token_ttl_secs: i64,
}

impl IdentityKeySource {
    pub fn new(store: Store, token_ttl_secs: i64) -> Self {
        Self { store, token_ttl_secs }
    }

    pub async fn material(&self) -> anyhow::Result<KeyMaterial> {
        let keys = self
            .store
            .signing_key_list()
            .await?
            .into_iter()
            .map(|k| PublicKey { kid: k.kid, x: k.public_key })
            .collect();
        // A revocation older than the longest token lifetime can match no live token.
        let since = time_text(chrono::Utc::now() - chrono::Duration::seconds(self.token_ttl_secs + 60));
        let revocations = self.store.revocation_list_since(&since).await?;
        Ok(KeyMaterial { keys, revocations })
    }
}

impl KeySource for IdentityKeySource {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<KeyMaterial>> {
        Box::pin(self.material())
    }
}
