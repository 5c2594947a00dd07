//! Volume transfers: a project offers an available volume, with its snapshots (all
//! available); anyone given the transfer's id and its key (shown once, at creation)
//! accepts them into their own project, the quota moving with them in one transaction.
//! Keys are kept salted and hashed; a wrong key is refused (400) and changes nothing.
//! 3.55's `no_snapshots: true` offers a volume without snapshots alone (one with
//! snapshots is refused: they would be left behind in a project that no longer has
//! their volume).

use super::{bad, invalid, not_found, project_of, require_writer, visible, AppResult, Error, VolumeService};
use crate::store::{Accepted, Transfer, VolumeStatus};
use sha2::{Digest, Sha256};
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

fn hash(salt: &str, key: &str) -> String {
    let d = Sha256::digest(format!("{salt}:{key}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl VolumeService {
    /// Offers a volume; answers the transfer and its key (never shown again).
    pub async fn transfer_create(
        &self,
        ctx: &AuthContext,
        volume_id: &str,
        name: Option<String>,
        no_snapshots: bool,
    ) -> AppResult<(Transfer, String)> {
        require_writer(ctx)?;
        let name = name.unwrap_or_default();
        super::volumes::check_text("name", &name)?;
        for _ in 0..10 {
            let mut v = self.volume_get(ctx, volume_id).await?;
            if v.status != VolumeStatus::Available {
                return Err(bad(format!(
                    "Invalid volume: Status of volume must be available, but current status is: {}.",
                    v.status.as_str()
                )));
            }
            if let Some(g) = &v.group_id {
                return Err(bad(format!(
                    "Invalid volume: Volume {volume_id} is in group {g}; remove it from the group to transfer it."
                )));
            }
            let snaps = self.store.snapshot_list(None, Some(&v.id)).await?;
            if no_snapshots && !snaps.is_empty() {
                return Err(bad(format!(
                    "Invalid volume: Volume {volume_id} has snapshots; transfer them with it (no_snapshots false) \
                     or delete them first."
                )));
            }
            if let Some(s) = snaps.iter().find(|s| s.status.as_str() != "available") {
                return Err(bad(format!(
                    "Invalid snapshot: Snapshot {} of volume {volume_id} is {}; its snapshots must be available \
                     to go with it.",
                    s.id,
                    s.status.as_str()
                )));
            }
            let key = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
            let salt = uuid::Uuid::new_v4().simple().to_string();
            let t = Transfer {
                id: uuid::Uuid::new_v4().to_string(),
                volume_id: v.id.clone(),
                project_id: v.project_id.clone(),
                name: name.clone(),
                key_hash: hash(&salt, &key),
                salt,
                no_snapshots,
                created_at: now_text(),
            };
            v.status = VolumeStatus::AwaitingTransfer;
            if self.store.transfer_create(&v, &t).await? {
                self.notify("transfer.create", &v.id, &v.project_id, "awaiting-transfer").await;
                return Ok((t, key));
            }
        }
        Err(invalid(format!("Volume {volume_id} changed while the request ran; try again.")))
    }

    /// A transfer of the caller's project.
    pub async fn transfer_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Transfer> {
        match self.store.transfer_get(id).await? {
            Some(t) if visible(ctx, &t.project_id) => Ok(t),
            _ => Err(not_found("Transfer", id)),
        }
    }

    pub async fn transfer_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<Transfer>> {
        if all_projects && ctx.is_admin() {
            return Ok(self.store.transfer_list(None).await?);
        }
        Ok(self.store.transfer_list(Some(&project_of(ctx)?)).await?)
    }

    /// Withdraws a transfer: the volume is available again to its project.
    pub async fn transfer_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        for _ in 0..10 {
            let t = self.transfer_get(ctx, id).await?;
            let Some(mut v) = self.store.volume_get(&t.volume_id).await? else {
                return Err(not_found("Volume", &t.volume_id));
            };
            v.status = VolumeStatus::Available;
            if self.store.transfer_delete(&t, &v).await? {
                return Ok(());
            }
        }
        Err(invalid(format!("Transfer {id} changed while the request ran; try again.")))
    }

    /// Takes a volume offered to anyone holding the transfer's id and key into the
    /// caller's project.
    pub async fn transfer_accept(&self, ctx: &AuthContext, id: &str, key: &str) -> AppResult<Transfer> {
        require_writer(ctx)?;
        let project = project_of(ctx)?;
        for _ in 0..10 {
            // Anyone may accept: the transfer is found whatever the caller's project.
            let t = self.store.transfer_get(id).await?.ok_or_else(|| not_found("Transfer", id))?;
            if !same(&hash(&t.salt, key), &t.key_hash) {
                return Err(bad(format!("Invalid auth key: Attempt to transfer {id} with invalid auth key.")));
            }
            let v = self.store.volume_get(&t.volume_id).await?.ok_or_else(|| not_found("Volume", &t.volume_id))?;
            let snaps = if t.no_snapshots { Vec::new() } else { self.store.snapshot_list(None, Some(&v.id)).await? };
            let snap_gb: i64 = snaps.iter().map(|s| s.size).sum();
            let mut wants = vec![("volumes", 1), ("gigabytes", v.size + snap_gb)];
            if !snaps.is_empty() {
                wants.push(("snapshots", snaps.len() as i64));
            }
            let claims = self.claims(&project, &wants, &v.type_id).await?;
            match self.store.transfer_accept(&t, &v, &snaps, &project, ctx.user_id(), &claims).await? {
                Accepted::Done => {
                    self.notify("transfer.accept", &v.id, &project, "available").await;
                    return Ok(t);
                }
                Accepted::OverQuota => return Err(self.over_quota(&project, &claims).await),
                Accepted::Changed => continue,
            }
        }
        Err(Error::InvalidState(format!("Transfer {id} changed while the request ran; try again.")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_salted_and_compared_whole() {
        let h = super::hash("salt", "key");
        assert_ne!(h, super::hash("other", "key"));
        assert!(super::same(&h, &super::hash("salt", "key")));
        assert!(!super::same(&h, &super::hash("salt", "kez")));
        assert!(!super::same("ab", "abc"));
    }
}
