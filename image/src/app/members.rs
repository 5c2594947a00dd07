//! Sharing: an owner adds projects as members of a `shared` image; each member accepts
//! (or rejects) it for itself.

use super::ImageService;
use crate::store::Member;
use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

impl ImageService {
    pub async fn member_add(&self, ctx: &AuthContext, image_id: &str, member: &str) -> ApiResult<Member> {
        let img = self.image_owned(ctx, image_id).await?;
        if img.visibility != "shared" {
            return Err(ApiError::forbidden(format!(
                "Image {image_id} is {}: only shared images have members.",
                img.visibility
            )));
        }
        if member.is_empty() || member == img.owner {
            return Err(ApiError::bad_request("A member must be another project."));
        }
        match self.store.member_create(image_id, member).await {
            Ok(()) => {}
            Err(e) if stratus_common::db::is_unique_violation(&e) => {
                return Err(ApiError::conflict(format!("Project {member} is already a member of image {image_id}.")))
            }
            Err(e) => return Err(e.into()),
        }
        self.store.member_fetch(image_id, member).await?.ok_or_else(|| ApiError::not_found("member", member))
    }

    /// The owner sees every member; a member sees only itself.
    pub async fn member_list(&self, ctx: &AuthContext, image_id: &str) -> ApiResult<Vec<Member>> {
        let img = self.image_visible(ctx, image_id).await?;
        let mut list = self.store.member_list(image_id).await?;
        if !(ctx.is_admin() || ctx.project_id() == Some(img.owner.as_str())) {
            list.retain(|m| Some(m.member_id.as_str()) == ctx.project_id());
        }
        Ok(list)
    }

    pub async fn member_get(&self, ctx: &AuthContext, image_id: &str, member: &str) -> ApiResult<Member> {
        self.member_list(ctx, image_id)
            .await?
            .into_iter()
            .find(|m| m.member_id == member)
            .ok_or_else(|| ApiError::not_found("member", member))
    }

    /// Only the member itself decides whether it accepts an image.
    pub async fn member_set_status(
        &self,
        ctx: &AuthContext,
        image_id: &str,
        member: &str,
        status: &str,
    ) -> ApiResult<Member> {
        self.image_visible(ctx, image_id).await?;
        if !MEMBER_STATUSES.contains(&status) {
            return Err(ApiError::bad_request(format!(
                "Invalid member status '{status}': use pending, accepted or rejected."
            )));
        }
        self.store.member_fetch(image_id, member).await?.ok_or_else(|| ApiError::not_found("member", member))?;
        if ctx.project_id() != Some(member) {
            return Err(ApiError::forbidden("Only the member project can change its membership status."));
        }
        self.store.member_set_status(image_id, member, status).await?;
        self.store.member_fetch(image_id, member).await?.ok_or_else(|| ApiError::not_found("member", member))
    }

    pub async fn member_remove(&self, ctx: &AuthContext, image_id: &str, member: &str) -> ApiResult<()> {
        self.image_owned(ctx, image_id).await?;
        self.store.member_fetch(image_id, member).await?.ok_or_else(|| ApiError::not_found("member", member))?;
        self.store.member_delete(image_id, member).await?;
        Ok(())
    }
}
