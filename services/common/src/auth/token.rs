//! What a token says, and how a verifier recognises a revoked one.
//!
//! Tokens are Ed25519-signed JWTs. The claims carry everything a service needs to
//! authorise a request (user, scope, roles with implied roles expanded), so no service
//! calls identity per request. Only identity holds private keys; every service verifies
//! with the public keys identity publishes.

use serde::{Deserialize, Serialize};

/// An id and a name, as tokens and Keystone bodies show users, projects and domains.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenUser {
    pub id: String,
    pub name: String,
    pub domain: NamedRef,
}

/// What a token is scoped to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Scope {
    Unscoped,
    Project { id: String, name: String, domain: NamedRef },
    Domain { id: String, name: String },
    System,
}

/// The application credential a token was obtained with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenAppCred {
    pub id: String,
    pub name: String,
    pub restricted: bool,
}

/// The OAuth1 access token (and its consumer) a token was obtained with (OS-OAUTH1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenOAuth1 {
    pub access_token_id: String,
    pub consumer_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    /// The user's id (JWT subject).
    pub sub: String,
    /// Expiry and issue time in seconds since the epoch (JWT registered claims).
    pub exp: i64,
    pub iat: i64,
    /// Issue and expiry time with microseconds, RFC 3339.
    pub issued_at: String,
    pub expires_at: String,
    /// Random id of this token, shown as the first of `audit_ids`.
    pub audit_id: String,
    /// Audit id of the token this one was re-scoped from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_chain: Option<String>,
    pub user: TokenUser,
    pub methods: Vec<String>,
    pub scope: Scope,
    /// Roles on the scope, implied roles included.
    #[serde(default)]
    pub roles: Vec<NamedRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_cred: Option<TokenAppCred>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth1: Option<TokenOAuth1>,
}

impl TokenClaims {
    pub fn project_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Project { id, .. } => Some(id),
            _ => None,
        }
    }
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.name == name)
    }
}

/// A public verification key as identity publishes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicKey {
    /// Key id, carried in each token's header.
    pub kid: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding (as in a JWK `x`).
    pub x: String,
}

/// A revocation event: every token that matches all the given fields and was issued at
/// or before `issued_before` is refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Revocation {
    #[serde(default)]
    pub audit_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub domain_id: Option<String>,
    #[serde(default)]
    pub app_cred_id: Option<String>,
    #[serde(default)]
    pub role_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_id: Option<String>,
    pub issued_before: String,
    pub revoked_at: String,
}

impl Revocation {
    pub fn matches(&self, t: &TokenClaims) -> bool {
        if t.issued_at > self.issued_before {
            return false;
        }
        if let Some(a) = &self.audit_id {
            if &t.audit_id != a && t.audit_chain.as_ref() != Some(a) {
                return false;
            }
        }
        if let Some(u) = &self.user_id {
            if &t.sub != u {
                return false;
            }
        }
        if let Some(p) = &self.project_id {
            if t.project_id() != Some(p.as_str()) {
                return false;
            }
        }
        if let Some(d) = &self.domain_id {
            let in_domain = &t.user.domain.id == d
                || match &t.scope {
                    Scope::Project { domain, .. } => &domain.id == d,
                    Scope::Domain { id, .. } => id == d,
                    _ => false,
                };
            if !in_domain {
                return false;
            }
        }
        if let Some(r) = &self.role_id {
            if !t.roles.iter().any(|role| &role.id == r) {
                return false;
            }
        }
        if let Some(c) = &self.app_cred_id {
            if t.app_cred.as_ref().map(|a| &a.id) != Some(c) {
                return false;
            }
        }
        if let Some(c) = &self.consumer_id {
            if t.oauth1.as_ref().map(|o| &o.consumer_id) != Some(c) {
                return false;
            }
        }
        if let Some(a) = &self.access_token_id {
            if t.oauth1.as_ref().map(|o| &o.access_token_id) != Some(a) {
                return false;
            }
        }
        true
    }
}

/// What a verifier needs from identity: the keys and the revocations in force.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct KeyMaterial {
    pub keys: Vec<PublicKey>,
    pub revocations: Vec<Revocation>,
}

/// Bus subject on which identity publishes each [`Revocation`].
pub const REVOCATION_SUBJECT: &str = "identity.revocation";
/// Bus subject on which identity announces a key rotation.
pub const KEYS_ROTATED_SUBJECT: &str = "identity.keys.rotated";
