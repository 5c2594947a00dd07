//! Identity's HTTP API (Keystone v3). Handlers parse the request, call the app layer
//! with the caller's context, and render the result; nothing here touches the store.

mod assignments;
mod auth;
mod catalog;
mod credentials;
mod domains;
mod endpoint_filters;
mod groups;
mod limits;
mod oauth1;
mod policies;
mod projects;
mod roles;
mod users;
mod version;
pub mod views;

use crate::Identity;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use stratus_common::auth::authenticate;
use stratus_common::http::pagination::{next_link, ListQuery};
use stratus_common::http::{service_router, ApiResult, ErrorStyle};

pub type AppState = Arc<Identity>;

/// The whole identity API with the shared layers (request ids, errors in Keystone's
/// shape, body limit, token verification, `/metrics`).
pub fn router(identity: Arc<Identity>, max_body_bytes: usize) -> Router {
    let verifier = identity.verifier.clone();
    let routes = Router::new()
        .route("/", get(version::versions))
        .route("/v3", get(version::v3))
        .route("/v3/", get(version::v3))
        .route("/v3/auth/tokens", post(auth::issue).get(auth::validate).delete(auth::revoke))
        .route("/v3/auth/catalog", get(auth::catalog))
        .route("/v3/auth/projects", get(auth::projects))
        .route("/v3/auth/domains", get(auth::domains))
        .route("/v3/auth/system", get(auth::system))
        .route("/v3/OS-STRATUS/verification", get(auth::verification))
        .route("/v3/OS-STRATUS/tasks", get(auth::tasks))
        .route("/v3/OS-REVOKE/events", get(auth::revoke_events))
        .route("/v3/domains", get(domains::list).post(domains::create))
        .route("/v3/domains/{id}", get(domains::show).patch(domains::update).delete(domains::delete))
        .route("/v3/projects", get(projects::list).post(projects::create))
        .route("/v3/projects/{id}", get(projects::show).patch(projects::update).delete(projects::delete))
        .route("/v3/projects/{id}/tags", get(projects::tags).put(projects::tags_set).delete(projects::tags_clear))
        .route(
            "/v3/projects/{id}/tags/{tag}",
            get(projects::tag_check).put(projects::tag_add).delete(projects::tag_remove),
        )
        .route("/v3/users", get(users::list).post(users::create))
        .route("/v3/users/{id}", get(users::show).patch(users::update).delete(users::delete))
        .route("/v3/users/{id}/password", post(users::change_password))
        .route("/v3/users/{id}/projects", get(users::projects))
        .route("/v3/users/{id}/groups", get(users::groups))
        .route("/v3/users/{id}/application_credentials", get(users::app_cred_list).post(users::app_cred_create))
        .route(
            "/v3/users/{id}/application_credentials/{cred}",
            get(users::app_cred_show).delete(users::app_cred_delete),
        )
        .route("/v3/users/{id}/credentials/OS-EC2", get(credentials::ec2_list).post(credentials::ec2_create))
        .route("/v3/users/{id}/credentials/OS-EC2/{access}", get(credentials::ec2_show).delete(credentials::ec2_delete))
        .route("/v3/OS-OAUTH1/consumers", get(oauth1::consumer_list).post(oauth1::consumer_create))
        .route(
            "/v3/OS-OAUTH1/consumers/{id}",
            get(oauth1::consumer_show).patch(oauth1::consumer_update).delete(oauth1::consumer_delete),
        )
        .route("/v3/OS-OAUTH1/request_token", post(oauth1::request_token))
        .route("/v3/OS-OAUTH1/authorize/{id}", put(oauth1::authorize))
        .route("/v3/OS-OAUTH1/access_token", post(oauth1::access_token_create))
        .route("/v3/users/{id}/OS-OAUTH1/access_tokens", get(oauth1::access_token_list))
        .route(
            "/v3/users/{id}/OS-OAUTH1/access_tokens/{token}",
            get(oauth1::access_token_show).delete(oauth1::access_token_delete),
        )
        .route("/v3/users/{id}/OS-OAUTH1/access_tokens/{token}/roles", get(oauth1::access_token_roles))
        .route("/v3/users/{id}/OS-OAUTH1/access_tokens/{token}/roles/{role}", get(oauth1::access_token_role))
        .route("/v3/OS-EP-FILTER/endpoint_groups", get(endpoint_filters::groups).post(endpoint_filters::group_create))
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}",
            get(endpoint_filters::group_show)
                .patch(endpoint_filters::group_update)
                .delete(endpoint_filters::group_delete),
        )
        .route("/v3/OS-EP-FILTER/endpoint_groups/{id}/endpoints", get(endpoint_filters::group_endpoints))
        .route("/v3/OS-EP-FILTER/endpoint_groups/{id}/projects", get(endpoint_filters::group_projects))
        .route(
            "/v3/OS-EP-FILTER/endpoint_groups/{id}/projects/{project}",
            put(endpoint_filters::group_project_add)
                .get(endpoint_filters::group_project_show)
                .delete(endpoint_filters::group_project_remove),
        )
        .route("/v3/OS-EP-FILTER/projects/{id}/endpoint_groups", get(endpoint_filters::project_groups))
        .route("/v3/OS-EP-FILTER/projects/{id}/endpoints", get(endpoint_filters::project_endpoints))
        .route(
            "/v3/OS-EP-FILTER/projects/{id}/endpoints/{endpoint}",
            put(endpoint_filters::project_endpoint_add)
                .get(endpoint_filters::project_endpoint_check)
                .delete(endpoint_filters::project_endpoint_remove),
        )
        .route("/v3/OS-EP-FILTER/endpoints/{id}/projects", get(endpoint_filters::endpoint_projects))
        .route("/v3/policies", get(policies::list).post(policies::create))
        .route("/v3/policies/{id}", get(policies::show).patch(policies::update).delete(policies::delete))
        .route("/v3/credentials", get(credentials::list).post(credentials::create))
        .route("/v3/credentials/{id}", get(credentials::show).patch(credentials::update).delete(credentials::delete))
        .route("/v3/groups", get(groups::list).post(groups::create))
        .route("/v3/groups/{id}", get(groups::show).patch(groups::update).delete(groups::delete))
        .route("/v3/groups/{id}/users", get(groups::users))
        .route(
            "/v3/groups/{id}/users/{user}",
            put(groups::add_user).get(groups::check_user).delete(groups::remove_user),
        )
        .route("/v3/roles", get(roles::list).post(roles::create))
        .route("/v3/roles/{id}", get(roles::show).patch(roles::update).delete(roles::delete))
        .route("/v3/roles/{id}/implies", get(roles::implies_list))
        .route(
            "/v3/roles/{id}/implies/{implied}",
            put(roles::implies_add).get(roles::implies_show).head(roles::implies_check).delete(roles::implies_remove),
        )
        .route("/v3/role_inferences", get(roles::inferences))
        .route("/v3/role_assignments", get(assignments::list))
        .route("/v3/projects/{target_id}/users/{actor_id}/roles", get(assignments::grant_list))
        .route(
            "/v3/projects/{target_id}/users/{actor_id}/roles/{role}",
            put(assignments::grant).get(assignments::grant_check).delete(assignments::revoke),
        )
        .route("/v3/projects/{target_id}/groups/{actor_id}/roles", get(assignments::grant_list))
        .route(
            "/v3/projects/{target_id}/groups/{actor_id}/roles/{role}",
            put(assignments::grant).get(assignments::grant_check).delete(assignments::revoke),
        )
        .route("/v3/domains/{target_id}/users/{actor_id}/roles", get(assignments::grant_list))
        .route(
            "/v3/domains/{target_id}/users/{actor_id}/roles/{role}",
            put(assignments::grant).get(assignments::grant_check).delete(assignments::revoke),
        )
        .route("/v3/domains/{target_id}/groups/{actor_id}/roles", get(assignments::grant_list))
        .route(
            "/v3/domains/{target_id}/groups/{actor_id}/roles/{role}",
            put(assignments::grant).get(assignments::grant_check).delete(assignments::revoke),
        )
        .route(
            "/v3/OS-INHERIT/domains/{target_id}/users/{actor_id}/roles/{role}/inherited_to_projects",
            put(assignments::inherited_grant).get(assignments::inherited_check).delete(assignments::inherited_revoke),
        )
        .route(
            "/v3/OS-INHERIT/domains/{target_id}/groups/{actor_id}/roles/{role}/inherited_to_projects",
            put(assignments::inherited_grant).get(assignments::inherited_check).delete(assignments::inherited_revoke),
        )
        .route(
            "/v3/OS-INHERIT/projects/{target_id}/users/{actor_id}/roles/{role}/inherited_to_projects",
            put(assignments::inherited_grant).get(assignments::inherited_check).delete(assignments::inherited_revoke),
        )
        .route(
            "/v3/OS-INHERIT/projects/{target_id}/groups/{actor_id}/roles/{role}/inherited_to_projects",
            put(assignments::inherited_grant).get(assignments::inherited_check).delete(assignments::inherited_revoke),
        )
        .route(
            "/v3/OS-INHERIT/domains/{target_id}/users/{actor_id}/roles/inherited_to_projects",
            get(assignments::inherited_list),
        )
        .route(
            "/v3/OS-INHERIT/domains/{target_id}/groups/{actor_id}/roles/inherited_to_projects",
            get(assignments::inherited_list),
        )
        .route("/v3/system/{actor}/{actor_id}/roles", get(assignments::system_grant_list))
        .route(
            "/v3/system/{actor}/{actor_id}/roles/{role}",
            put(assignments::system_grant).get(assignments::system_grant_check).delete(assignments::system_revoke),
        )
        .route("/v3/regions", get(catalog::region_list).post(catalog::region_create))
        .route(
            "/v3/regions/{id}",
            get(catalog::region_show)
                .put(catalog::region_create_with_id)
                .patch(catalog::region_update)
                .delete(catalog::region_delete),
        )
        .route("/v3/services", get(catalog::service_list).post(catalog::service_create))
        .route(
            "/v3/services/{id}",
            get(catalog::service_show).patch(catalog::service_update).delete(catalog::service_delete),
        )
        .route("/v3/endpoints", get(catalog::endpoint_list).post(catalog::endpoint_create))
        .route(
            "/v3/endpoints/{id}",
            get(catalog::endpoint_show).patch(catalog::endpoint_update).delete(catalog::endpoint_delete),
        )
        .route("/v3/registered_limits", get(limits::registered_list).post(limits::registered_create))
        .route(
            "/v3/registered_limits/{id}",
            get(limits::registered_show).patch(limits::registered_update).delete(limits::registered_delete),
        )
        .route("/v3/limits", get(limits::list).post(limits::create))
        .route("/v3/limits/model", get(limits::model))
        .route("/v3/limits/{id}", get(limits::show).patch(limits::update).delete(limits::delete))
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(identity);
    service_router("identity", ErrorStyle::Keystone, max_body_bytes, routes)
}

/// Renders a list in Keystone's shape after the shared filters, sort and paging.
/// [`list_response`] for typed items, written straight from them unless a filter or a
/// sort needs them as JSON objects.
pub(crate) fn typed_list_response<T: serde::Serialize>(
    base: &str,
    key: &str,
    path: &str,
    items: Vec<T>,
    params: &HashMap<String, String>,
    filterable: &[&str],
    id_of: fn(&T) -> &str,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    use stratus_common::http::pagination::Listing;
    let query = ListQuery::parse(params, filterable)?;
    let page = query.apply_typed(items, id_of)?;
    let self_url = format!("{base}/v3/{path}");
    let next = page.next_marker().map(|m| next_link(&self_url, params, m));
    Ok(Json(Listing { key, page: &page, self_url: &self_url, next_url: next.as_deref() }).into_response())
}

pub(crate) fn list_response(
    base: &str,
    key: &str,
    path: &str,
    items: Vec<Value>,
    params: &HashMap<String, String>,
    filterable: &[&str],
) -> ApiResult<Json<Value>> {
    let query = ListQuery::parse(params, filterable)?;
    let page = query.apply(items)?;
    let self_url = format!("{base}/v3/{path}");
    let next = page.next_marker.map(|m| next_link(&self_url, params, &m));
    Ok(Json(json!({
        key: page.items,
        "links": {"self": self_url, "previous": null, "next": next},
    })))
}
