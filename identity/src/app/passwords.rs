//! Password and secret hashing with argon2id, off the async threads.
//!
//! Hashes run on the blocking pool, at most one per core at a time so a burst of logins
//! cannot exhaust memory (each hash takes `memory_kib`). An unknown user is checked
//! against a fixed dummy hash, so it costs the same as a wrong password.

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct Passwords {
    params: Params,
    permits: Arc<Semaphore>,
    dummy_hash: String,
}

impl Passwords {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params =
            Params::new(memory_kib, iterations, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let dummy_hash = hash_with(&params, "stratus-dummy-password")?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(cores)), dummy_hash })
    }

    pub async fn hash(&self, secret: &str) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let params = self.params.clone();
        let secret = secret.to_string();
        tokio::task::spawn_blocking(move || hash_with(&params, &secret)).await?
    }

    /// Whether `secret` matches `hash`; with no hash, does the same work and says no.
    pub async fn verify(&self, secret: &str, hash: Option<&str>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else { return false };
        let (hash, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let secret = secret.to_string();
        let ok = tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&hash) else { return false };
            Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok()
        })
        .await
        .unwrap_or(false);
        ok && real
    }
}

fn hash_with(params: &Params, secret: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    Ok(argon.hash_password(secret.as_bytes(), &salt).map_err(|e| anyhow::anyhow!("argon2: {e}"))?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let p = Passwords::new(1024, 1).unwrap();
        let h = p.hash("s3cret").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("s3cret", Some(&h)).await);
        assert!(!p.verify("wrong", Some(&h)).await);
        assert!(!p.verify("stratus-dummy-password", None).await);
    }
}
