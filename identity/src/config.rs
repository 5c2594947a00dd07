//! The identity service's configuration section, `[identity]`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    pub port: u16,
    /// Lifetime of a token, in seconds.
    pub token_ttl_secs: i64,
    /// Password of the bootstrapped `admin` user; generated and printed once when empty.
    pub bootstrap_password: String,
    /// Failed password attempts before an account is locked; 0 disables lockout.
    pub lockout_failure_attempts: i64,
    /// How long a locked account stays locked, in seconds.
    pub lockout_duration_secs: i64,
    /// How often verifiers re-read signing keys and revocations, in seconds.
    pub refresh_secs: u64,
    /// Region the catalog is written for.
    pub region: String,
    /// Identity URL that services outside the identity process use to fetch keys and
    /// limits; empty means `http://public_host:port`.
    pub url: String,
    /// Argon2id memory cost in KiB (19 MiB by default, OWASP's recommendation).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
    /// How long an OAuth1 request token may wait for its user's authorisation, in
    /// seconds; 0 means no limit.
    pub oauth1_request_token_secs: i64,
    /// How long an OAuth1 access token lets its consumer get tokens, in seconds; 0
    /// means until its user deletes it.
    pub oauth1_access_token_secs: i64,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            port: 5000,
            token_ttl_secs: 3600,
            bootstrap_password: String::new(),
            lockout_failure_attempts: 5,
            lockout_duration_secs: 1800,
            refresh_secs: 10,
            region: "RegionOne".into(),
            url: String::new(),
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
            oauth1_request_token_secs: 28_800,
            oauth1_access_token_secs: 86_400,
        }
    }
}
