//! The network API (Neutron v2.0). Handlers parse and render; the app layer decides.

mod agents;
mod query;
mod resources;
pub mod views;

use crate::app::neutron;
use crate::NetworkService;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::auth::{authenticate, AuthContext, TokenVerifier};
use stratus_common::http::{service_router, ApiJson, ApiResult, ErrorStyle};

pub use resources::Kind;

pub type AppState = Arc<NetworkService>;

pub fn router(service: Arc<NetworkService>, verifier: Arc<TokenVerifier>, max_body_bytes: usize) -> Router {
    let routes = Router::new()
        .route("/", get(versions))
        .route("/v2.0", get(resource_index))
        .route("/v2.0/", get(resource_index))
        .route("/v2.0/extensions", get(extensions))
        .route("/v2.0/extensions/{alias}", get(extension))
        .route("/v2.0/quotas", get(quota_list))
        .route("/v2.0/quotas/{project}", get(quota_show).put(quota_set).delete(quota_delete))
        .route("/v2.0/quotas/{project}/details", get(quota_details))
        .route("/v2.0/quotas/{project}/default", get(quota_defaults))
        .route("/v2.0/os-stratus/hosts/{host}/desired-state", get(desired_state))
        .route("/v2.0/os-stratus/hosts/{host}/report", put(agents::report))
        .route(
            "/v2.0/os-stratus/hosts/{host}/dhcp-ports/{network}",
            put(agents::dhcp_port_ensure).delete(agents::dhcp_port_release),
        )
        .route("/v2.0/agents", get(agents::list))
        .route("/v2.0/agents/{id}", get(agents::show).put(agents::update).delete(agents::delete))
        .route("/v2.0/routers/{id}/add_router_interface", put(resources::router_interface_add))
        .route("/v2.0/routers/{id}/remove_router_interface", put(resources::router_interface_remove))
        .route("/v2.0/{collection}", get(resources::list).post(resources::create))
        .route("/v2.0/{collection}/{id}", get(resources::show).put(resources::update).delete(resources::delete))
        .route(
            "/v2.0/{collection}/{id}/tags",
            get(resources::tags_get).put(resources::tags_put).delete(resources::tags_clear),
        )
        .route(
            "/v2.0/{collection}/{id}/tags/{tag}",
            get(resources::tag_check).put(resources::tag_put).delete(resources::tag_delete),
        )
        .layer(axum::middleware::from_fn_with_state(verifier, authenticate))
        .with_state(service);
    service_router("network", ErrorStyle::Neutron, max_body_bytes, routes)
}

async fn versions(State(s): State<AppState>) -> Json<Value> {
    Json(
        json!({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{}/v2.0/", s.public_url)}]}]}),
    )
}

async fn resource_index(State(s): State<AppState>) -> Json<Value> {
    let resources: Vec<Value> = [
        Kind::Network,
        Kind::Subnet,
        Kind::Port,
        Kind::SecurityGroup,
        Kind::SecurityGroupRule,
        Kind::Router,
        Kind::FloatingIp,
    ]
    .iter()
    .map(|k| {
        json!({"name": k.singular(), "collection": k.plural(),
                   "links": [{"rel": "self", "href": format!("{}/v2.0/{}", s.public_url, k.collection())}]})
    })
    .collect();
    Json(json!({ "resources": resources }))
}

/// The extensions this service implements, and only those: clients change behaviour on
/// what is listed here (for example `external-gateway-multihoming`).
const EXTENSIONS: &[(&str, &str, &str)] = &[
    ("standard-attr-description", "standard-attr-description", "Extension to add descriptions to standard attributes"),
    (
        "standard-attr-revisions",
        "Resource revision numbers",
        "This extension will display the revision number of neutron resources.",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, port, network, security_group",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "revision-if-match",
        "If-Match constraints based on revision_number",
        "Extension indicating that If-Match based on revision_number is supported.",
    ),
    ("fields", "Fields selection", "Filter the fields returned in responses."),
    ("pagination", "Pagination support", "Extension that indicates that pagination is enabled."),
    ("sorting", "Sorting support", "Extension that indicates that sorting is enabled."),
    ("project-id", "project_id field enabled", "Extension that indicates that project_id field is enabled."),
    ("quotas", "Quota management support", "Expose functions for quotas management per project"),
    ("quota_details", "Quota details management support", "Expose functions for quotas usage statistics per project"),
    ("provider", "Provider Network", "Expose mapping of virtual networks to physical networks"),
    ("external-net", "Neutron external network", "Adds external network attribute to network resource."),
    (
        "subnet-external-network",
        "Subnet External Network",
        "Subnets of external networks are visible to every project.",
    ),
    ("net-mtu", "Network MTU", "Provides MTU attribute for a network resource."),
    ("net-mtu-writable", "Network MTU (writable)", "Provides a writable MTU attribute for a network resource."),
    ("binding", "Port Binding", "Expose port bindings of a virtual port to external application"),
    ("port-security", "Port Security", "Provides port security"),
    ("allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"),
    ("security-group", "security-group", "The security groups extension."),
    ("router", "Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway."),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode", "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway"),
    ("extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"),
    ("fip-port-details", "Floating IP Port Details Extension", "Add port_details attribute to Floating IP resource"),
    ("stateful-security-group", "Stateful security group", "Indicates if the security group is stateful or not"),
    ("subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"),
    ("default-subnetpools", "Default Subnetpools", "Provides ability to mark and use a subnetpool as the default."),
];

fn extension_view(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description, "updated": "2025-01-01T00:00:00-00:00", "links": []})
}

async fn extensions() -> Json<Value> {
    Json(json!({"extensions": EXTENSIONS.iter().map(|(a, n, d)| extension_view(a, n, d)).collect::<Vec<_>>()}))
}

async fn extension(Path(alias): Path<String>) -> ApiResult<Json<Value>> {
    match EXTENSIONS.iter().find(|(a, _, _)| *a == alias) {
        Some((a, n, d)) => Ok(Json(json!({"extension": extension_view(a, n, d)}))),
        None => Err(neutron(
            StatusCode::NOT_FOUND,
            "ExtensionNotFound",
            format!("Extension with alias {alias} does not exist"),
        )),
    }
}

/// Projects with quotas set: the caller's own (a full list would need identity's view).
async fn quota_list(State(s): State<AppState>, ctx: AuthContext) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    if let Some(p) = ctx.project_id() {
        let mut q = s.quota_show(&ctx, p).await?;
        q.insert("project_id".into(), json!(p));
        q.insert("tenant_id".into(), json!(p));
        out.push(Value::Object(q));
    }
    Ok(Json(json!({ "quotas": out })))
}

async fn quota_show(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota": s.quota_show(&ctx, &project).await?})))
}

async fn quota_defaults(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota": s.quota_defaults(&ctx, &project).await?})))
}

async fn quota_delete(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(project): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    s.quota_delete(&ctx, &project).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn quota_details(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota": s.quota_details(&ctx, &project).await?})))
}

async fn quota_set(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(project): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"quota": s.quota_set(&ctx, &project, wrapped(body, "quota")?).await?})))
}

pub(crate) use stratus_common::http::wrapped;

/// `GET /v2.0/os-stratus/hosts/{host}/desired-state[?routers=true]`: what the network
/// agent on `host` must have (admins and the `service` role).
async fn desired_state(
    State(s): State<AppState>,
    ctx: AuthContext,
    Path(host): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let routers = q.get("routers").and_then(|v| stratus_common::http::pagination::parse_bool(v)).unwrap_or(false);
    Ok(Json(s.desired_state(&ctx, &host, routers).await?))
}
