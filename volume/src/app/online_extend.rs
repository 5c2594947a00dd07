//! Growing an attached volume (3.42), as Cinder and Nova do it: the volume service
//! takes the request (the volume `extending`, already showing its new size), tells the
//! compute service `volume-extended` (`POST /os-server-external-events`), whose host
//! has the hypervisor grow the image it has open, so that the guest sees the larger
//! disk at once; compute answers with `os-extend_volume_completion` (Cinder 3.71's
//! action) and the volume is `in-use` again. If compute refuses or fails, or says
//! nothing within ten minutes, the volume goes back to its size, still `in-use`, and
//! the project gets a user message. The saga is `volume_extend` (`app::sagas`).
//!
//! Only a volume attached to one server, through a connection its host can grow, can
//! grow: a volume reached over NBD is held open by its storage host, so compute
//! refuses it, and the volume keeps its size.

use super::{bad, require_admin, AppResult, VolumeService};
use crate::store::{AttachStatus, Volume, VolumeStatus};
use serde_json::{json, Value};
use stratus_common::auth::AuthContext;
use stratus_common::saga::StepError;

impl VolumeService {
    /// The server whose guest's disk would grow with `v`, if it can grow attached.
    pub(crate) fn extendable_attachment(&self, v: &Volume) -> AppResult<String> {
        if self.compute_url.get().is_none() {
            return Err(bad(format!(
                "Invalid volume: volume {} is attached, and this volume service knows no compute service to grow \
                 the guest's disk; detach it to extend it.",
                v.id
            )));
        }
        match v.attachments.as_slice() {
            [a] if a.status == AttachStatus::Attached => Ok(a.server_id.clone()),
            _ => Err(bad(format!(
                "Invalid volume: volume {} must be attached to exactly one server to be extended while in use.",
                v.id
            ))),
        }
    }

    /// Tells compute that volume `volume`, attached to `server`, grew.
    pub(crate) async fn tell_compute_extended(&self, server: &str, volume: &str) -> Result<(), StepError> {
        let url = self.compute_url.get().ok_or_else(|| StepError::permanent("No compute service is configured."))?;
        let tokens = self.images.tokens.as_ref().ok_or_else(|| StepError::permanent("The service has no token."))?;
        let token = tokens.token().await.map_err(StepError::Transient)?;
        let body = json!({"events": [{"name": "volume-extended", "server_uuid": server, "tag": volume}]});
        let resp = self
            .identity
            .http
            .post(format!("{url}/os-server-external-events"))
            .header("X-Auth-Token", token)
            .header("OpenStack-API-Version", "compute 2.51")
            .json(&body)
            .send()
            .await
            .map_err(|e| StepError::Transient(anyhow::anyhow!("the compute service: {e}")))?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or_default();
        if status.is_server_error() {
            return Err(StepError::Transient(anyhow::anyhow!("the compute service answered {status}")));
        }
        match answer["events"][0]["code"].as_u64() {
            Some(200) => Ok(()),
            code => Err(StepError::permanent(format!(
                "The compute service did not take the volume-extended event for server {server} ({status}, event code {}).",
                code.map_or_else(|| "none".to_string(), |c| c.to_string())
            ))),
        }
    }

    /// `os-extend_volume_completion` (compute, with the service's token): whether the
    /// guest's disk grew. The extend saga goes on with the answer; a volume not
    /// growing any more takes none.
    pub async fn volume_extend_completion(&self, ctx: &AuthContext, id: &str, error: bool) -> AppResult<()> {
        require_admin(ctx, "volume_extension:volume_admin_actions:extend_volume_completion")?;
        let v = self
            .volume_change(ctx, id, |v| {
                if v.status == VolumeStatus::Extending && v.control.extend_asked_at.is_some() {
                    v.control.extend_result = Some(!error);
                }
                Ok(())
            })
            .await?;
        if let Some(saga) = &v.control.saga_id {
            self.sagas.spawn(saga);
        }
        Ok(())
    }
}
