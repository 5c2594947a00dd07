//! User messages: what the project is told of a failure that came after its request
//! was answered (Cinder's `/messages`, 3.3+). Kept 30 days, as Cinder's default.

use super::{not_found, project_of, require_writer, visible, AppResult, VolumeService};
use crate::store::Message;
use stratus_common::auth::AuthContext;
use stratus_common::db::{now_text, time_text};

/// How long a message is kept.
const KEPT: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// One kind of event, in Cinder's terms: the action and what went wrong.
pub struct Event {
    /// `<action>_<detail>` of Cinder's event id (`001_003`).
    pub code: &'static str,
    /// The action, as Cinder words it (`schedule allocate volume`).
    pub action: &'static str,
    /// What went wrong, as Cinder words it.
    pub detail: &'static str,
}

/// A volume no backend could take.
pub const NO_BACKEND: Event = Event {
    code: "001_003",
    action: "schedule allocate volume",
    detail: "Could not find any available weighted backend",
};

/// An attached volume whose guest's disk could not grow.
pub const EXTEND_FAILED: Event =
    Event { code: "007_011", action: "extend volume", detail: "Compute failed to extend volume" };

/// A message about `resource_uuid` (a `VOLUME`) for `project`: the event's words, then
/// the particulars.
pub fn message(project: &str, request_id: &str, resource_uuid: &str, event: &Event, particulars: &str) -> Message {
    let now = chrono::Utc::now();
    Message {
        id: uuid::Uuid::new_v4().to_string(),
        project_id: project.to_string(),
        request_id: request_id.to_string(),
        resource_type: "VOLUME".into(),
        resource_uuid: resource_uuid.to_string(),
        event_id: format!("VOLUME_VOLUME_{}", event.code),
        message_level: "ERROR".into(),
        user_message: format!("{}: {} ({particulars}).", event.action, event.detail),
        created_at: now_text(),
        expires_at: time_text(now + KEPT),
    }
}

impl VolumeService {
    /// The caller's project's messages (every project's for an admin asking for all).
    pub async fn message_list(&self, ctx: &AuthContext, all_projects: bool) -> AppResult<Vec<Message>> {
        if all_projects && ctx.is_admin() {
            return Ok(self.store.message_list(None).await?);
        }
        Ok(self.store.message_list(Some(&project_of(ctx)?)).await?)
    }

    pub async fn message_get(&self, ctx: &AuthContext, id: &str) -> AppResult<Message> {
        match self.store.message_get(id).await? {
            Some(m) if visible(ctx, &m.project_id) => Ok(m),
            _ => Err(not_found("Message", id)),
        }
    }

    pub async fn message_delete(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        require_writer(ctx)?;
        let m = self.message_get(ctx, id).await?;
        if !self.store.message_delete(&m.id).await? {
            return Err(not_found("Message", id));
        }
        Ok(())
    }
}
