//! Credentials, as Keystone's: blobs a user keeps with identity (`/v3/credentials`),
//! and EC2-style access/secret pairs bound to a project
//! (`/v3/users/{id}/credentials/OS-EC2`), which are credentials of type `ec2` whose id
//! is the SHA-256 of the access key.
//!
//! A user manages their own; an admin manages anyone's. Another user's credential is
//! not there for the caller (404).

use super::policy;
use super::{write_error, Identity};
use crate::store::{new_id, Credential, Target};
use serde::Deserialize;
use serde_json::Value;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

/// Largest blob kept (Keystone's column is a TEXT; a credential is a key, not a file).
const BLOB_MAX: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    pub blob: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub user_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    #[serde(default)]
    pub blob: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub project_id: Option<String>,
}

/// An EC2 credential as its API shows it.
pub struct Ec2Credential {
    pub user_id: String,
    pub project_id: String,
    pub access: String,
    pub secret: String,
    pub trust_id: Option<String>,
}

/// The id of an `ec2` credential: the hex SHA-256 of its access key.
pub fn ec2_id(access: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, access.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// An `ec2` blob's access key (it must be a JSON object naming one).
fn ec2_access(blob: &str) -> ApiResult<String> {
    let v: Value = serde_json::from_str(blob)
        .map_err(|_| ApiError::bad_request("Invalid blob in credential: an ec2 blob is a JSON object."))?;
    match v.get("access") {
        Some(Value::String(a)) if !a.is_empty() => Ok(a.clone()),
        _ => Err(ApiError::bad_request("Invalid blob in credential: an ec2 blob names its 'access' key.")),
    }
}

impl Ec2Credential {
    fn from_credential(c: &Credential) -> Option<Self> {
        let v: Value = serde_json::from_str(&c.blob).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Self {
            user_id: c.user_id.clone(),
            project_id: c.project_id.clone().unwrap_or_default(),
            access: s("access")?,
            secret: s("secret").unwrap_or_default(),
            trust_id: s("trust_id"),
        })
    }
}

impl Identity {
    /// The credential, if the caller may see it (their own, or any for an admin).
    async fn credential_visible(&self, ctx: &AuthContext, id: &str) -> ApiResult<Credential> {
        match self.store.credential_fetch(id).await? {
            Some(c) if policy::is_self_or_admin(ctx, &c.user_id) => Ok(c),
            _ => Err(ApiError::not_found("credential", id)),
        }
    }

    /// An EC2 credential binds an existing project; a user binds only a project they hold
    /// a role on (an admin, any).
    async fn require_role_on(&self, ctx: &AuthContext, user_id: &str, project_id: &str) -> ApiResult<()> {
        if self.store.project_fetch(project_id).await?.is_none() {
            return Err(ApiError::bad_request(format!("Project {project_id} does not exist.")));
        }
        if !ctx.is_admin() && self.effective_roles(user_id, &Target::Project(project_id.to_string())).await?.is_empty()
        {
            return Err(ApiError::forbidden(format!(
                "User {user_id} has no role on project {project_id}: an EC2 credential is for a project the user works in."
            )));
        }
        Ok(())
    }

    pub async fn credential_create(&self, ctx: &AuthContext, req: CredentialCreate) -> ApiResult<Credential> {
        if !policy::is_self_or_admin(ctx, &req.user_id) {
            return Err(policy::forbidden("create_credential"));
        }
        if req.kind.trim().is_empty() || req.kind.len() > 255 {
            return Err(ApiError::bad_request("Invalid input for field 'type': 1 to 255 characters."));
        }
        if req.blob.len() > BLOB_MAX {
            return Err(ApiError::bad_request(format!("Invalid input for field 'blob': at most {BLOB_MAX} bytes.")));
        }
        if self.store.user_fetch(&req.user_id).await?.is_none() {
            return Err(ApiError::bad_request(format!("User {} does not exist.", req.user_id)));
        }
        let id = if req.kind == "ec2" {
            let project = req
                .project_id
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("An ec2 credential needs a project_id."))?;
            self.require_role_on(ctx, &req.user_id, project).await?;
            ec2_id(&ec2_access(&req.blob)?)
        } else {
            if let Some(p) = &req.project_id {
                if self.store.project_fetch(p).await?.is_none() {
                    return Err(ApiError::bad_request(format!("Project {p} does not exist.")));
                }
            }
            new_id()
        };
        let c = Credential { id, user_id: req.user_id, project_id: req.project_id, kind: req.kind, blob: req.blob };
        self.store.credential_create(&c).await.map_err(write_error("credential"))?;
        self.emit("credential", "created", &c.id).await;
        Ok(c)
    }

    /// The caller's credentials (an admin's view: everyone's), filtered by `user_id` and
    /// `type`.
    pub async fn credential_list(
        &self,
        ctx: &AuthContext,
        user_id: Option<&str>,
        kind: Option<&str>,
    ) -> ApiResult<Vec<Credential>> {
        let owner = if ctx.is_admin() { user_id } else { Some(ctx.user_id()) };
        let mut list = self.store.credential_list(owner).await?;
        list.retain(|c| user_id.is_none_or(|u| c.user_id == u) && kind.is_none_or(|k| c.kind == k));
        Ok(list)
    }

    pub async fn credential_get(&self, ctx: &AuthContext, id: &str) -> ApiResult<Credential> {
        self.credential_visible(ctx, id).await
    }

    /// Only the blob changes: a credential's type, user and project are fixed for its
    /// life (delete it and create another).
    pub async fn credential_update(&self, ctx: &AuthContext, id: &str, req: CredentialUpdate) -> ApiResult<Credential> {
        let mut c = self.credential_visible(ctx, id).await?;
        let fixed = [
            ("type", req.kind.as_deref(), Some(c.kind.as_str())),
            ("user_id", req.user_id.as_deref(), Some(c.user_id.as_str())),
            ("project_id", req.project_id.as_deref(), c.project_id.as_deref()),
        ];
        for (field, wanted, have) in fixed {
            if wanted.is_some() && wanted != have {
                return Err(ApiError::bad_request(format!(
                    "A credential's {field} cannot change: delete it and create another."
                )));
            }
        }
        if let Some(blob) = req.blob {
            if blob.len() > BLOB_MAX {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field 'blob': at most {BLOB_MAX} bytes."
                )));
            }
            if c.kind == "ec2" {
                ec2_access(&blob)?;
            }
            if !self.store.credential_set_blob(id, &blob).await? {
                return Err(ApiError::not_found("credential", id));
            }
            c.blob = blob;
        }
        self.emit("credential", "updated", id).await;
        Ok(c)
    }

    pub async fn credential_delete(&self, ctx: &AuthContext, id: &str) -> ApiResult<()> {
        self.credential_visible(ctx, id).await?;
        if !self.store.credential_delete(id).await? {
            return Err(ApiError::not_found("credential", id));
        }
        self.emit("credential", "deleted", id).await;
        Ok(())
    }

    /// The user whose EC2 credentials the caller manages: themselves, or anyone for an
    /// admin; another user is not there (404).
    async fn ec2_owner(&self, ctx: &AuthContext, user_id: &str) -> ApiResult<()> {
        if !policy::is_self_or_admin(ctx, user_id) || self.store.user_fetch(user_id).await?.is_none() {
            return Err(ApiError::not_found("user", user_id));
        }
        Ok(())
    }

    /// A new access/secret pair for the user on a project they hold a role on.
    pub async fn ec2_create(&self, ctx: &AuthContext, user_id: &str, project_id: &str) -> ApiResult<Ec2Credential> {
        self.ec2_owner(ctx, user_id).await?;
        if project_id.is_empty() {
            return Err(ApiError::bad_request("An EC2 credential needs a tenant_id (the project)."));
        }
        self.require_role_on(ctx, user_id, project_id).await?;
        let access = new_id();
        let secret = new_id();
        let blob = serde_json::json!({"access": access, "secret": secret, "trust_id": null}).to_string();
        let c = Credential {
            id: ec2_id(&access),
            user_id: user_id.to_string(),
            project_id: Some(project_id.to_string()),
            kind: "ec2".into(),
            blob,
        };
        self.store.credential_create(&c).await.map_err(write_error("credential"))?;
        self.emit("credential", "created", &c.id).await;
        Ok(Ec2Credential { user_id: c.user_id, project_id: project_id.to_string(), access, secret, trust_id: None })
    }

    pub async fn ec2_list(&self, ctx: &AuthContext, user_id: &str) -> ApiResult<Vec<Ec2Credential>> {
        self.ec2_owner(ctx, user_id).await?;
        let list = self.store.credential_list(Some(user_id)).await?;
        Ok(list.iter().filter(|c| c.kind == "ec2").filter_map(Ec2Credential::from_credential).collect())
    }

    pub async fn ec2_get(&self, ctx: &AuthContext, user_id: &str, access: &str) -> ApiResult<Ec2Credential> {
        self.ec2_owner(ctx, user_id).await?;
        self.store
            .credential_fetch(&ec2_id(access))
            .await?
            .filter(|c| c.kind == "ec2" && c.user_id == user_id)
            .and_then(|c| Ec2Credential::from_credential(&c))
            .ok_or_else(|| ApiError::not_found("EC2 credential", access))
    }

    pub async fn ec2_delete(&self, ctx: &AuthContext, user_id: &str, access: &str) -> ApiResult<()> {
        self.ec2_get(ctx, user_id, access).await?;
        self.store.credential_delete(&ec2_id(access)).await?;
        self.emit("credential", "deleted", &ec2_id(access)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_ids_are_the_access_keys_sha256() {
        assert_eq!(ec2_id("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(ec2_access(r#"{"access": "a", "secret": "s"}"#).unwrap(), "a");
        assert!(ec2_access("not json").is_err());
        assert!(ec2_access(r#"{"secret": "s"}"#).is_err());
    }
}
