//! Generic volume groups (3.13+) and group snapshots (3.14+): volumes of a group's
//! volume types kept together, snapshotted together, and made again together (a new
//! group from a group snapshot or from another group, 3.14).
//!
//! A group's and a group snapshot's own record holds no bytes: what they do is done by
//! the volume and snapshot sagas of their members. Work that ends when those end
//! (a group made from a source, a group or group snapshot being deleted, a group
//! snapshot being made) is recorded as `pending` on the group or group snapshot, and
//! [`VolumeService::settle_groups`] ends it once its members have settled: it runs
//! when a member's saga ends and at every reconciler pass, so a crash leaves nothing
//! pending for long.

use super::snapshots::SnapshotCreate;
use super::volumes::{check_text, VolumeCreate};
use super::{bad, invalid, not_found, project_of, require_admin, require_writer, visible, AppResult, VolumeService};
use crate::store::{Group, GroupSnapshot, GroupStatus, SnapshotStatus, Store, Volume, VolumeStatus, USAGE};
use serde::Deserialize;
use serde_json::Value;
use std::sync::atomic::Ordering;
use stratus_common::auth::AuthContext;
use stratus_common::db::now_text;

/// `POST /groups` (`group`).
#[derive(Debug, Default, Deserialize)]
pub struct GroupCreate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_type: Option<String>,
    pub volume_types: Option<Vec<String>>,
    pub availability_zone: Option<String>,
}

/// `PUT /groups/{id}` (`group`): volumes added and removed as comma-separated ids.
#[derive(Debug, Default, Deserialize)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub add_volumes: Option<String>,
    pub remove_volumes: Option<String>,
}

/// `POST /groups/action` `create-from-src`.
#[derive(Debug, Default, Deserialize)]
pub struct GroupFromSource {
    pub name: Option<String>,
    pub description: Option<String>,
    pub group_snapshot_id: Option<String>,
    pub source_group_id: Option<String>,
}

/// `POST /group_snapshots` (`group_snapshot`).
#[derive(Debug, Default, Deserialize)]
pub struct GroupSnapshotCreate {
    pub group_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
}

/// What a group's or group snapshot's pending work waits for: its deletion, or its
/// `n` members made (`members:<n>`).
const DELETION: &str = "deletion";

fn members_made(n: usize) -> String {
    format!("members:{n}")
}

/// How many members pending work `pending` waits for (`None`: it is a deletion).
fn expected_members(pending: &str) -> Option<usize> {
    pending.strip_prefix("members:").and_then(|n| n.parse().ok())
}

fn ids(list: &Option<String>) -> Vec<String> {
    list.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl VolumeService {
    pub async fn group_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Group> {
        match self.store.group_get(id).await? {
            Some(g) if !g.deleted && visible(ctx, &g.project_id) => Ok(g),
            _ => Err(not_found("Group", id)),
        }
    }

    pub async fn group_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<Group>> {
        let project = if all_projects && ctx.is_admin() { None } else { Some(project_of(ctx)?) };
        Ok(self.store.group_list(project.as_deref(), false).await?)
    }

    /// The live volumes of group `g`.
    pub async fn group_volumes(&self, g: &Group) -> AppResult<Vec<Volume>> {
        let all = self.store.volume_list(Some(&g.project_id)).await?;
        Ok(all.into_iter().filter(|v| v.group_id.as_deref() == Some(g.id.as_str())).collect())
    }

    /// A group the caller may put a volume of type `type_id` into (`POST /volumes`
    /// with `group_id`).
    pub(crate) async fn group_for_volume(&self, ctx: &AuthContext, id: &str, type_id: &str) -> AppResult<Group> {
        let g = self.group_get(ctx, id).await?;
        if !matches!(g.status, GroupStatus::Available | GroupStatus::Creating) {
            return Err(bad(format!("Invalid group: group {id} is {}, not available.", g.status.as_str())));
        }
        if !g.volume_type_ids.iter().any(|t| t == type_id) {
            return Err(bad(format!(
                "Invalid volume type: the volume's type is not one of group {id}'s volume types."
            )));
        }
        Ok(g)
    }

    pub async fn group_create(&self, ctx: &AuthContext, req: GroupCreate) -> AppResult<Group> {
        require_writer(ctx)?;
        let project = project_of(ctx)?;
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        if let Some(z) = req.availability_zone.as_deref().filter(|z| *z != super::ZONE) {
            return Err(bad(format!("Availability zone '{z}' is invalid.")));
        }
        let gt = req.group_type.ok_or_else(|| bad("Invalid input: a group needs a group_type."))?;
        let gt = self.group_type_get(ctx, &gt).await?;
        let wanted = req.volume_types.unwrap_or_default();
        if wanted.is_empty() {
            return Err(bad("Invalid input: a group needs at least one volume type (volume_types)."));
        }
        let mut types = Vec::new();
        for t in &wanted {
            types.push(self.type_get(ctx, t).await?.id);
        }
        let g = self.new_group(ctx, &project, name, description, gt.id, types, GroupStatus::Available, None, None);
        self.group_insert(g).await
    }

    #[allow(clippy::too_many_arguments)]
    fn new_group(
        &self,
        ctx: &AuthContext,
        project: &str,
        name: String,
        description: String,
        group_type_id: String,
        volume_type_ids: Vec<String>,
        status: GroupStatus,
        group_snapshot_id: Option<String>,
        source_group_id: Option<String>,
    ) -> Group {
        let now = now_text();
        Group {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.to_string(),
            user_id: ctx.user_id().to_string(),
            name,
            description,
            group_type_id,
            volume_type_ids,
            status,
            group_snapshot_id,
            source_group_id,
            pending: String::new(),
            deleted: false,
            rev: 0,
            created_at: now.clone(),
            updated_at: now,
        }
    }

    /// Writes a new group with its `groups` quota claim.
    async fn group_insert(&self, g: Group) -> AppResult<Group> {
        let claims = self.claims(&g.project_id, &[("groups", 1)], "").await?;
        let mut tx = self.store.db.pool.begin().await?;
        if !super::quotas::claim_in(&mut tx, &g.project_id, &claims).await? {
            drop(tx);
            return Err(self.over_quota(&g.project_id, &claims).await);
        }
        Store::group_insert_in(&mut tx, &g).await?;
        tx.commit().await?;
        self.notify("group.create", &g.id, &g.project_id, g.status.as_str()).await;
        Ok(g)
    }

    /// Renames a group, and adds or removes volumes: an added volume is the project's,
    /// available or in use, of one of the group's volume types and in no other group.
    pub async fn group_update(&self, ctx: &AuthContext, id: &str, req: GroupUpdate) -> AppResult<Group> {
        require_writer(ctx)?;
        for (what, v) in [("name", &req.name), ("description", &req.description)] {
            if let Some(v) = v {
                check_text(what, v)?;
            }
        }
        let mut g = self.group_get(ctx, id).await?;
        if g.status != GroupStatus::Available {
            return Err(bad(format!("Invalid group: group {id} is {}, not available.", g.status.as_str())));
        }
        let (add, remove) = (ids(&req.add_volumes), ids(&req.remove_volumes));
        if add.iter().any(|a| remove.contains(a)) {
            return Err(bad("Invalid input: a volume cannot be added and removed at once."));
        }
        // Checked first, all of them: a refusal changes nothing.
        let mut changes = Vec::new();
        for vid in &add {
            let v = self
                .volume_get(ctx, vid)
                .await
                .map_err(|_| bad(format!("Invalid volume: volume {vid} cannot be found.")))?;
            if v.project_id != g.project_id || !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse) {
                return Err(bad(format!(
                    "Invalid volume: volume {vid} is {}, not available or in-use.",
                    v.status.as_str()
                )));
            }
            if v.group_id.as_deref().is_some_and(|other| other != g.id) {
                return Err(bad(format!("Invalid volume: volume {vid} is in another group.")));
            }
            if !g.volume_type_ids.contains(&v.type_id) {
                return Err(bad(format!(
                    "Invalid volume: volume {vid}'s type is not one of the group's volume types."
                )));
            }
            changes.push((vid.clone(), Some(g.id.clone())));
        }
        for vid in &remove {
            let v = self
                .volume_get(ctx, vid)
                .await
                .map_err(|_| bad(format!("Invalid volume: volume {vid} cannot be found.")))?;
            if v.group_id.as_deref() != Some(g.id.as_str()) {
                return Err(bad(format!("Invalid volume: volume {vid} is not in group {id}.")));
            }
            changes.push((vid.clone(), None));
        }
        for (vid, group) in changes {
            self.volume_change(ctx, &vid, |v| {
                v.group_id = group.clone();
                Ok(())
            })
            .await?;
        }
        if let Some(n) = req.name {
            g.name = n;
        }
        if let Some(d) = req.description {
            g.description = d;
        }
        if !self.store.group_save(&mut g).await? {
            return Err(invalid(format!("Group {id} changed while the request ran; try again.")));
        }
        Ok(g)
    }

    /// Deletes a group; one that holds volumes only with `delete_volumes`, which
    /// deletes them (and their snapshots) first. A group with group snapshots stays.
    pub async fn group_delete(&self, ctx: &AuthContext, id: &str, delete_volumes: bool) -> AppResult<()> {
        require_writer(ctx)?;
        let mut g = self.group_get(ctx, id).await?;
        if !matches!(g.status, GroupStatus::Available | GroupStatus::Error | GroupStatus::ErrorDeleting) {
            return Err(bad(format!(
                "Invalid group: group status must be available or error, but current status is: {}.",
                g.status.as_str()
            )));
        }
        if !self.store.group_snapshot_list(None, Some(&g.id), false).await?.is_empty() {
            return Err(bad(format!("Invalid group: group {id} has group snapshots; delete them first.")));
        }
        let volumes = self.group_volumes(&g).await?;
        if !volumes.is_empty() && !delete_volumes {
            return Err(bad(
                "Invalid group: the group still holds volumes; the delete-volumes flag is required to delete it.",
            ));
        }
        if let Some(v) = volumes.iter().find(|v| !v.status.settled() && v.status != VolumeStatus::ErrorDeleting) {
            return Err(bad(format!(
                "Invalid volume: volume {} is {}; the group cannot be deleted now.",
                v.id,
                v.status.as_str()
            )));
        }
        g.status = GroupStatus::Deleting;
        g.pending = DELETION.into();
        if !self.store.group_save(&mut g).await? {
            return Err(invalid(format!("Group {id} changed while the request ran; try again.")));
        }
        self.groups_changed();
        // The settling pass starts the members' deletes: the same path that resumes
        // them after a crash between this save and their start.
        self.settle_groups().await
    }

    /// `reset_status` (3.20, admins).
    pub async fn group_reset_status(&self, ctx: &AuthContext, id: &str, status: &str) -> AppResult<()> {
        require_admin(ctx, "group:reset_status")?;
        let status = GroupStatus::parse(status).ok_or_else(|| bad(format!("Invalid status {status} for a group.")))?;
        let mut g = self.group_get(ctx, id).await?;
        g.status = status;
        g.pending.clear();
        if !self.store.group_save(&mut g).await? {
            return Err(invalid(format!("Group {id} changed while the request ran; try again.")));
        }
        Ok(())
    }

    /// `create-from-src` (3.14): a new group of the source's types whose volumes are
    /// copies of a group snapshot's snapshots or of another group's volumes; it is
    /// `creating` until they are all made.
    pub async fn group_create_from_src(&self, ctx: &AuthContext, req: GroupFromSource) -> AppResult<Group> {
        require_writer(ctx)?;
        let project = project_of(ctx)?;
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        // What each new volume copies: (a snapshot, or a volume), its type and size.
        let mut sources: Vec<(Option<String>, Option<String>, String, i64)> = Vec::new();
        let (source, gs_id, src_id) = match (&req.group_snapshot_id, &req.source_group_id) {
            (Some(gs), None) => {
                let snap = self.group_snapshot_get(ctx, gs).await?;
                if snap.status != GroupStatus::Available {
                    return Err(bad(format!(
                        "Invalid group snapshot: {gs} is {}, not available.",
                        snap.status.as_str()
                    )));
                }
                for s in self.group_snapshot_members(&snap).await? {
                    let v =
                        self.store.volume_get(&s.volume_id).await?.ok_or_else(|| not_found("Volume", &s.volume_id))?;
                    sources.push((Some(s.id), None, v.type_id, s.size));
                }
                (self.group_get(ctx, &snap.group_id).await?, Some(gs.clone()), None)
            }
            (None, Some(src)) => {
                let g = self.group_get(ctx, src).await?;
                if g.status != GroupStatus::Available {
                    return Err(bad(format!("Invalid group: {src} is {}, not available.", g.status.as_str())));
                }
                for v in self.group_volumes(&g).await? {
                    if v.status != VolumeStatus::Available {
                        return Err(bad(format!(
                            "Invalid volume: volume {} is {}, not available.",
                            v.id,
                            v.status.as_str()
                        )));
                    }
                    sources.push((None, Some(v.id), v.type_id, v.size));
                }
                (g, None, Some(src.clone()))
            }
            _ => return Err(bad("Invalid input: name either a group_snapshot_id or a source_group_id.")),
        };
        let status = if sources.is_empty() { GroupStatus::Available } else { GroupStatus::Creating };
        let mut g = self.new_group(
            ctx,
            &project,
            name,
            description,
            source.group_type_id.clone(),
            source.volume_type_ids.clone(),
            status,
            gs_id,
            src_id,
        );
        if !sources.is_empty() {
            g.pending = members_made(sources.len());
        }
        let g = self.group_insert(g).await?;
        self.groups_changed();
        for (snapshot_id, source_volid, type_id, size) in sources {
            let req = VolumeCreate {
                size: Some(Value::from(size)),
                snapshot_id,
                source_volid,
                volume_type: Some(type_id),
                group_id: Some(g.id.clone()),
                ..Default::default()
            };
            if let Err(e) = self.volume_create(ctx, &project, req).await {
                let _ = self.group_reset_to(&g.id, GroupStatus::Error).await;
                return Err(e);
            }
        }
        Ok(g)
    }

    async fn group_reset_to(&self, id: &str, status: GroupStatus) -> AppResult<()> {
        for _ in 0..5 {
            let Some(mut g) = self.store.group_get(id).await? else { return Ok(()) };
            g.status = status;
            g.pending.clear();
            if self.store.group_save(&mut g).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    pub async fn group_snapshot_get(&self, ctx: &AuthContext, id: &str) -> AppResult<GroupSnapshot> {
        match self.store.group_snapshot_get(id).await? {
            Some(s) if !s.deleted && visible(ctx, &s.project_id) => Ok(s),
            _ => Err(not_found("Group snapshot", id)),
        }
    }

    pub async fn group_snapshot_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<GroupSnapshot>> {
        let project = if all_projects && ctx.is_admin() { None } else { Some(project_of(ctx)?) };
        Ok(self.store.group_snapshot_list(project.as_deref(), None, false).await?)
    }

    /// The live snapshots of group snapshot `s`.
    async fn group_snapshot_members(&self, s: &GroupSnapshot) -> AppResult<Vec<crate::store::Snapshot>> {
        let all = self.store.snapshot_list(Some(&s.project_id), None).await?;
        Ok(all.into_iter().filter(|x| x.group_snapshot_id.as_deref() == Some(s.id.as_str())).collect())
    }

    /// Snapshots every volume of an available group (in-use ones too, crash-consistent);
    /// the group snapshot is `creating` until they are all made.
    pub async fn group_snapshot_create(&self, ctx: &AuthContext, req: GroupSnapshotCreate) -> AppResult<GroupSnapshot> {
        require_writer(ctx)?;
        let gid = req.group_id.ok_or_else(|| bad("Invalid input: a group snapshot needs a group_id."))?;
        let g = self.group_get(ctx, &gid).await?;
        if g.status != GroupStatus::Available {
            return Err(bad(format!("Invalid group: group {gid} is {}, not available.", g.status.as_str())));
        }
        let name = req.name.unwrap_or_default();
        let description = req.description.unwrap_or_default();
        check_text("name", &name)?;
        check_text("description", &description)?;
        let volumes = self.group_volumes(&g).await?;
        if let Some(v) = volumes.iter().find(|v| !matches!(v.status, VolumeStatus::Available | VolumeStatus::InUse)) {
            return Err(bad(format!(
                "Invalid volume: volume {} is {}, not available or in-use.",
                v.id,
                v.status.as_str()
            )));
        }
        let now = now_text();
        let s = GroupSnapshot {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: g.project_id.clone(),
            user_id: ctx.user_id().to_string(),
            group_id: g.id.clone(),
            group_type_id: g.group_type_id.clone(),
            name,
            description,
            status: if volumes.is_empty() { GroupStatus::Available } else { GroupStatus::Creating },
            pending: if volumes.is_empty() { String::new() } else { members_made(volumes.len()) },
            deleted: false,
            rev: 0,
            created_at: now.clone(),
            updated_at: now,
        };
        let mut tx = self.store.db.pool.begin().await?;
        Store::group_snapshot_insert_in(&mut tx, &s).await?;
        tx.commit().await?;
        self.groups_changed();
        for v in &volumes {
            let req = SnapshotCreate {
                volume_id: Some(v.id.clone()),
                name: Some(format!("snapshot-{}", s.id)),
                force: Some(Value::Bool(true)),
                group_snapshot_id: Some(s.id.clone()),
                ..Default::default()
            };
            if let Err(e) = self.snapshot_create(ctx, req).await {
                self.group_snapshot_reset_to(&s.id, GroupStatus::Error).await?;
                return Err(e);
            }
        }
        Ok(s)
    }

    async fn group_snapshot_reset_to(&self, id: &str, status: GroupStatus) -> AppResult<()> {
        for _ in 0..5 {
            let Some(mut s) = self.store.group_snapshot_get(id).await? else { return Ok(()) };
            s.status = status;
            s.pending.clear();
            if self.store.group_snapshot_save(&mut s).await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Deletes a group snapshot and its snapshots.
    pub async fn group_snapshot_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        let mut s = self.group_snapshot_get(ctx, id).await?;
        if !matches!(s.status, GroupStatus::Available | GroupStatus::Error | GroupStatus::ErrorDeleting) {
            return Err(bad(format!(
                "Invalid group snapshot: status must be available or error, but current status is: {}.",
                s.status.as_str()
            )));
        }
        s.status = GroupStatus::Deleting;
        s.pending = DELETION.into();
        if !self.store.group_snapshot_save(&mut s).await? {
            return Err(invalid(format!("Group snapshot {id} changed while the request ran; try again.")));
        }
        self.groups_changed();
        // The settling pass starts the members' deletes (and resumes them after a crash).
        self.settle_groups().await
    }

    /// `reset_status` (3.19, admins).
    pub async fn group_snapshot_reset_status(&self, ctx: &AuthContext, id: &str, status: &str) -> AppResult<()> {
        require_admin(ctx, "group:reset_group_snapshot_status")?;
        let status =
            GroupStatus::parse(status).ok_or_else(|| bad(format!("Invalid status {status} for a group snapshot.")))?;
        self.group_snapshot_get(ctx, id).await?;
        self.group_snapshot_reset_to(id, status).await
    }

    /// Records that group work is pending (after its record is written, before the
    /// members' work starts), so that the members' ends settle it.
    pub(crate) fn groups_changed(&self) {
        self.groups_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether group work may be pending: some was recorded since the last pass that
    /// found none (a member's end skips the reads otherwise).
    pub(crate) fn groups_may_be_pending(&self) -> bool {
        self.groups_gen.load(Ordering::SeqCst) != self.groups_settled_gen.load(Ordering::SeqCst)
    }

    /// Ends the pending work of groups and group snapshots whose members have settled:
    /// made (available, or error when one failed) or gone (the record deleted, a
    /// group's quota given back). Passes never overlap; a call made during a pass
    /// makes that pass run once more, so no member's end goes unseen.
    pub async fn settle_groups(&self) -> AppResult<()> {
        self.groups_dirty.store(true, Ordering::SeqCst);
        loop {
            {
                let Ok(_pass) = self.groups_settling.try_lock() else { return Ok(()) };
                while self.groups_dirty.swap(false, Ordering::SeqCst) {
                    // Work recorded after this read is seen by a later pass.
                    let generation = self.groups_gen.load(Ordering::SeqCst);
                    if !self.settle_pass().await? {
                        self.groups_settled_gen.fetch_max(generation, Ordering::SeqCst);
                    }
                }
            }
            if !self.groups_dirty.load(Ordering::SeqCst) {
                return Ok(());
            }
        }
    }

    /// One pass; answers whether work is still pending.
    async fn settle_pass(&self) -> AppResult<bool> {
        let mut left = false;
        for mut g in self.store.group_list(None, true).await? {
            let volumes = self.group_volumes(&g).await?;
            let done = match g.pending.as_str() {
                DELETION if volumes.is_empty() => {
                    g.deleted = true;
                    let mut tx = self.store.db.pool.begin().await?;
                    if Store::group_save_in(&mut tx, &g).await? {
                        stratus_common::db::usage::release(&mut tx, USAGE, &g.project_id, &[("groups", 1)]).await?;
                        tx.commit().await?;
                        self.notify("group.delete.end", &g.id, &g.project_id, "deleted").await;
                    } else {
                        left = true;
                    }
                    continue;
                }
                DELETION => {
                    // Members whose delete has not started (the request's, or one a
                    // crash cut short) are started now, with their snapshots.
                    for v in
                        volumes.iter().filter(|v| matches!(v.status, VolumeStatus::Available | VolumeStatus::Error))
                    {
                        if let Err(e) = self.volume_delete_start(v.clone(), false, true).await {
                            tracing::warn!(group = %g.id, volume = %v.id, error = %e, "a group member's delete cannot start");
                        }
                    }
                    volumes
                        .iter()
                        .any(|v| v.status == VolumeStatus::ErrorDeleting)
                        .then_some(GroupStatus::ErrorDeleting)
                }
                // Its volumes are still being written.
                p if volumes.len() < expected_members(p).unwrap_or(0) => None,
                _ if volumes.iter().any(|v| v.status == VolumeStatus::Error) => Some(GroupStatus::Error),
                _ if volumes.iter().all(|v| v.status == VolumeStatus::Available) => Some(GroupStatus::Available),
                _ => None,
            };
            match done {
                Some(status) => {
                    g.status = status;
                    g.pending.clear();
                    left |= !self.store.group_save(&mut g).await?;
                }
                None => left = true,
            }
        }
        for mut s in self.store.group_snapshot_list(None, None, true).await? {
            let members = self.group_snapshot_members(&s).await?;
            let done = match s.pending.as_str() {
                DELETION if members.is_empty() => {
                    s.deleted = true;
                    left |= !self.store.group_snapshot_save(&mut s).await?;
                    continue;
                }
                DELETION => {
                    for m in
                        members.iter().filter(|m| matches!(m.status, SnapshotStatus::Available | SnapshotStatus::Error))
                    {
                        if let Err(e) = self.snapshot_delete_start(m.clone(), false, true).await {
                            tracing::warn!(group_snapshot = %s.id, snapshot = %m.id, error = %e,
                                           "a group snapshot member's delete cannot start");
                        }
                    }
                    members
                        .iter()
                        .any(|m| m.status == SnapshotStatus::ErrorDeleting)
                        .then_some(GroupStatus::ErrorDeleting)
                }
                p if members.len() < expected_members(p).unwrap_or(0) => None,
                _ if members.iter().any(|m| m.status == SnapshotStatus::Error) => Some(GroupStatus::Error),
                _ if members.iter().all(|m| m.status == SnapshotStatus::Available) => Some(GroupStatus::Available),
                _ => None,
            };
            match done {
                Some(status) => {
                    s.status = status;
                    s.pending.clear();
                    left |= !self.store.group_snapshot_save(&mut s).await?;
                }
                None => left = true,
            }
        }
        Ok(left)
    }
}
