//! Local token verification with identity's public keys.
//!
//! The verifier keeps the keys and the revocations in memory and refreshes them from a
//! [`KeySource`]: on a timer, when a token names a key it does not know (a rotation it
//! has not seen yet), and when the bus says keys rotated. Revocation events arrive on
//! the bus and take effect at once; the timer covers a lost event.

use super::token::{KeyMaterial, Revocation, TokenClaims, KEYS_ROTATED_SUBJECT, REVOCATION_SUBJECT};
use crate::bus::Bus;
use base64::Engine as _;
use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where a verifier gets keys and revocations: identity's database in the identity
/// process, its HTTP API elsewhere.
pub trait KeySource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<KeyMaterial>>;
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("The request you have made requires authentication.")]
    Malformed,
    #[error("The token has expired.")]
    Expired,
    #[error("The token was signed by an unknown key.")]
    UnknownKey,
    #[error("The token has been revoked.")]
    Revoked,
}

pub struct TokenVerifier {
    source: Arc<dyn KeySource>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    revocations: RwLock<Vec<Revocation>>,
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Tokens whose signature was checked, with their claims: a client sends the same
    /// token with every request, and the signature check is the costly part. Expiry and
    /// revocation are still checked on every use; new keys empty it.
    verified: std::sync::Mutex<HashMap<String, TokenClaims>>,
}

/// How many verified tokens are remembered (the memory is emptied when full).
const VERIFIED_CAPACITY: usize = 4096;

impl TokenVerifier {
    /// A verifier loaded once from `source`.
    pub async fn new(source: Arc<dyn KeySource>) -> anyhow::Result<Arc<Self>> {
        let v = Arc::new(Self {
            source,
            keys: RwLock::new(HashMap::new()),
            revocations: RwLock::new(Vec::new()),
            last_refresh: tokio::sync::Mutex::new(None),
            verified: std::sync::Mutex::new(HashMap::new()),
        });
        v.refresh().await?;
        Ok(v)
    }

    /// Re-reads keys and revocations from the source.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let mut last = self.last_refresh.lock().await;
        let material = self.source.fetch().await?;
        self.install(material);
        *last = Some(Instant::now());
        Ok(())
    }

    fn install(&self, material: KeyMaterial) {
        let mut keys = HashMap::new();
        for k in material.keys {
            match DecodingKey::from_ed_components(&k.x) {
                Ok(d) => {
                    keys.insert(k.kid, d);
                }
                Err(err) => tracing::warn!(kid = %k.kid, error = %err, "ignoring malformed public key"),
            }
        }
        *self.keys.write().unwrap() = keys;
        *self.revocations.write().unwrap() = material.revocations;
        // A key may have gone: its tokens must be checked again.
        self.verified.lock().unwrap().clear();
    }

    /// Applies a revocation received from the bus at once.
    pub fn add_revocation(&self, r: Revocation) {
        let mut revs = self.revocations.write().unwrap();
        if !revs.contains(&r) {
            revs.push(r);
        }
    }

    /// Checks signature, expiry and revocation.
    pub async fn verify(&self, token: &str) -> Result<TokenClaims, VerifyError> {
        let known = self.verified.lock().unwrap().get(token).cloned();
        let claims = match known {
            Some(c) => c,
            None => {
                let c = self.check_signature(token).await?;
                let mut verified = self.verified.lock().unwrap();
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
                verified.insert(token.to_string(), c.clone());
                c
            }
        };
        // exp has one-second resolution; expires_at has microseconds.
        if claims.expires_at <= crate::db::now_text() {
            return Err(VerifyError::Expired);
        }
        if self.revocations.read().unwrap().iter().any(|r| r.matches(&claims)) {
            return Err(VerifyError::Revoked);
        }
        Ok(claims)
    }

    /// The token's claims if one of our keys signed it and it has not expired.
    async fn check_signature(&self, token: &str) -> Result<TokenClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        let kid = header.kid.ok_or(VerifyError::Malformed)?;
        if !self.keys.read().unwrap().contains_key(&kid) {
            self.refresh_for_unknown_key().await;
        }
        let claims = {
            let keys = self.keys.read().unwrap();
            let key = keys.get(&kid).ok_or(VerifyError::UnknownKey)?;
            let mut validation = Validation::new(Algorithm::EdDSA);
            validation.leeway = 0;
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["exp"]);
            match jsonwebtoken::decode::<TokenClaims>(token, key, &validation) {
                Ok(data) => data.claims,
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                    return Err(VerifyError::Expired)
                }
                Err(_) => return Err(VerifyError::Malformed),
            }
        };
        Ok(claims)
    }

    /// A token signed by a key we do not know may come from a rotation we have not seen:
    /// refresh, but at most once a second so garbage tokens cannot hammer identity.
    async fn refresh_for_unknown_key(&self) {
        {
            let last = self.last_refresh.lock().await;
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
        }
        if let Err(err) = self.refresh().await {
            tracing::warn!(error = %err, "could not refresh signing keys");
        }
    }

    /// Keeps the verifier current: listens for revocations and rotations on the bus and
    /// refreshes every `every`.
    pub fn spawn_background(self: &Arc<Self>, bus: Bus, every: Duration) {
        use crate::supervisor::SUPERVISOR;
        let (me, b) = (self.clone(), bus.clone());
        SUPERVISOR.spawn("auth.revocations", move |_task| {
            let (me, b) = (me.clone(), b.clone());
            async move {
                let mut sub = b.subscribe(REVOCATION_SUBJECT).await?;
                while let Some(m) = sub.next().await {
                    match m.json::<Revocation>() {
                        Ok(r) => me.add_revocation(r),
                        Err(err) => tracing::warn!(error = %err, "ignoring malformed revocation"),
                    }
                }
                Ok(())
            }
        });
        let (me, b) = (self.clone(), bus);
        SUPERVISOR.spawn("auth.key-rotations", move |_task| {
            let (me, b) = (me.clone(), b.clone());
            async move {
                let mut sub = b.subscribe(KEYS_ROTATED_SUBJECT).await?;
                while sub.next().await.is_some() {
                    if let Err(err) = me.refresh().await {
                        tracing::warn!(error = %err, "could not refresh signing keys after rotation");
                    }
                }
                Ok(())
            }
        });
        let me = self.clone();
        SUPERVISOR.spawn("auth.refresh", move |task| {
            let me = me.clone();
            async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let result = me.refresh().await;
                    task.pass(&result);
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "could not refresh keys and revocations");
                    }
                }
            }
        });
    }
}

/// Fetches key material from identity's HTTP API (for services in other processes).
pub struct HttpKeySource {
    client: reqwest::Client,
    identity_url: String,
}

impl HttpKeySource {
    pub fn new(identity_url: &str) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("HTTP client");
        Self { client, identity_url: identity_url.trim_end_matches('/').to_string() }
    }
}

impl KeySource for HttpKeySource {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<KeyMaterial>> {
        Box::pin(async move {
            let url = format!("{}/v3/OS-STRATUS/verification", self.identity_url);
            let resp = self.client.get(&url).send().await?.error_for_status()?;
            Ok(resp.json::<KeyMaterial>().await?)
        })
    }
}

/// Decodes a public key's `x` into its raw bytes (for tests and tools).
pub fn public_key_bytes(x: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x).ok()
}
