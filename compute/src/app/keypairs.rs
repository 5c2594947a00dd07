//! Keypairs: a user's SSH public keys, imported or generated (Ed25519, the private key
//! returned once in OpenSSH format and never stored). Counted against `key_pairs`.

use super::AppResult;
use super::{bad, conflict, forbidden, not_found, ComputeService};
use crate::store::Keypair;
use base64::Engine as _;
use md5::{Digest, Md5};
use ring::signature::KeyPair as _;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

pub struct NewKeypair {
    pub keypair: Keypair,
    /// Only when generated.
    pub private_key: Option<String>,
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The key blob of an OpenSSH public key line (`type base64 [comment]`), checked.
pub fn parse_public_key(line: &str) -> Result<(String, Vec<u8>), String> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err("Keypair data is invalid: expected 'type base64-key [comment]'.".into());
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "Keypair data is invalid: the key is not base64.".to_string())?;
    let mut inner = Vec::new();
    put_string(&mut inner, kind.as_bytes());
    if !blob.starts_with(&inner) {
        return Err(format!("Keypair data is invalid: the key does not match its type {kind}."));
    }
    const KNOWN: &[&str] = &[
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    if !KNOWN.contains(&kind) {
        return Err(format!("Keypair data is invalid: unsupported key type {kind}."));
    }
    Ok((kind.to_string(), blob))
}

/// Nova's fingerprint: MD5 of the key blob as colon-separated hex.
pub fn fingerprint(blob: &[u8]) -> String {
    let d = Md5::digest(blob);
    d.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A new Ed25519 key: (public key line, OpenSSH private key).
pub fn generate(comment: &str) -> anyhow::Result<(String, String)> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow::anyhow!("key generation failed"))?;
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| anyhow::anyhow!("bad key"))?;
    let public = pair.public_key().as_ref().to_vec();
    // ring's PKCS#8 v2 document holds the 32-byte seed after a 16-byte prefix.
    let seed = pkcs8.as_ref()[16..48].to_vec();
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, &public);
    let b64 = base64::engine::general_purpose::STANDARD;
    let public_line = format!("ssh-ed25519 {} {comment}", b64.encode(&blob));
    let check: u32 = rand::random();
    let mut private = Vec::new();
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, &public);
    let mut secret = seed;
    secret.extend_from_slice(&public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut doc = b"openssh-key-v1\0".to_vec();
    put_string(&mut doc, b"none");
    put_string(&mut doc, b"none");
    put_string(&mut doc, b"");
    doc.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut doc, &blob);
    put_string(&mut doc, &private);
    let body = b64.encode(&doc);
    let lines: Vec<&str> = body.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    let pem = format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n", lines.join("\n"));
    Ok((public_line, pem))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.trim() == name
        && name.chars().all(|c| c.is_ascii_alphanumeric() || " -_.@".contains(c))
}

impl ComputeService {
    /// The user whose keypairs a request acts on: the caller, or `user_id` for admins.
    fn keypair_owner(ctx: &AuthContext, user_id: Option<&str>) -> AppResult<String> {
        match user_id {
            Some(u) if u != ctx.user_id() && !ctx.is_admin() => {
                Err(forbidden("Policy doesn't allow acting on another user's keypairs."))
            }
            Some(u) => Ok(u.to_string()),
            None => Ok(ctx.user_id().to_string()),
        }
    }

    pub async fn keypair_create(
        &self,
        ctx: &AuthContext,
        name: &str,
        public_key: Option<&str>,
        kind: &str,
        user_id: Option<&str>,
    ) -> AppResult<NewKeypair> {
        super::require_writer(ctx)?;
        let user = Self::keypair_owner(ctx, user_id)?;
        if !valid_name(name) {
            return Err(bad("Keypair name must be 1-255 characters: letters, digits, spaces, '-', '_', '.' or '@'."));
        }
        if kind != "ssh" && kind != "x509" {
            return Err(bad(format!("Invalid keypair type {kind}: use ssh or x509.")));
        }
        let (line, private_key) = match public_key {
            Some(k) => (k.trim().to_string(), None),
            None => {
                let (line, pem) = generate(&format!("Generated-by-Stratus {name}"))
                    .map_err(|e| super::Error::Internal(anyhow::anyhow!("keypair generation failed: {e}")))?;
                (line, Some(pem))
            }
        };
        let (_, blob) = parse_public_key(&line).map_err(bad)?;
        let keypair = Keypair {
            user_id: user.clone(),
            name: name.to_string(),
            kind: kind.to_string(),
            public_key: line,
            fingerprint: fingerprint(&blob),
            created_at: now_text(),
        };
        let project = ctx.project_id().unwrap_or("");
        let limit = self.limit(project, "key_pairs").await?;
        match self.store.keypair_insert(&keypair, limit).await {
            Ok(true) => Ok(NewKeypair { keypair, private_key }),
            Ok(false) => Err(forbidden("Quota exceeded, too many key pairs.")),
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                Err(conflict(format!("Key pair '{name}' already exists.")))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn keypair_get(&self, ctx: &AuthContext, name: &str, user_id: Option<&str>) -> AppResult<Keypair> {
        let user = Self::keypair_owner(ctx, user_id)?;
        self.store
            .keypair_get(&user, name)
            .await?
            .ok_or_else(|| not_found(format!("Keypair {name} not found for user {user}")))
    }

    pub async fn keypair_list(&self, ctx: &AuthContext, user_id: Option<&str>) -> AppResult<Vec<Keypair>> {
        let user = Self::keypair_owner(ctx, user_id)?;
        Ok(self.store.keypair_list(&user).await?)
    }

    pub async fn keypair_delete(&self, ctx: &AuthContext, name: &str, user_id: Option<&str>) -> AppResult<()> {
        super::require_writer(ctx)?;
        let user = Self::keypair_owner(ctx, user_id)?;
        if self.store.keypair_delete(&user, name).await? {
            Ok(())
        } else {
            Err(not_found(format!("Keypair {name} not found for user {user}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_md5_fingerprints() {
        let (line, pem) = generate("test").unwrap();
        let (kind, blob) = parse_public_key(&line).unwrap();
        assert_eq!(kind, "ssh-ed25519");
        assert_eq!(fingerprint(&blob).len(), 47);
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(parse_public_key("ssh-rsa AAAA").is_err());
        assert!(parse_public_key("nonsense").is_err());
    }
}
