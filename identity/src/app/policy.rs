//! Authorisation like Keystone's default policies.
//!
//! - `admin` (on any scope) manages everything: the cloud administrator.
//! - A project's `member` and `reader` see their own project and user, their own role
//!   assignments and the project's limits; they cannot manage identity resources.
//! - Everyone manages their own password and application credentials.
//! - A resource the caller may not see answers 404, as if it did not exist; an action
//!   the caller may not take on a resource they can see answers 403.

use stratus_common::auth::AuthContext;
use stratus_common::http::{ApiError, ApiResult};

/// Keystone's message for a refused action.
pub fn forbidden(action: &str) -> ApiError {
    ApiError::forbidden(format!("You are not authorized to perform the requested action: identity:{action}."))
}

pub fn require_admin(ctx: &AuthContext, action: &str) -> ApiResult<()> {
    if ctx.is_admin() {
        Ok(())
    } else {
        Err(forbidden(action))
    }
}

/// The caller may act on this user's own resources (itself, or an admin).
pub fn is_self_or_admin(ctx: &AuthContext, user_id: &str) -> bool {
    ctx.is_admin() || ctx.user_id() == user_id
}
