//! What every service's tests share, so each test suite only adds its own service:
//!
//! - [`Identity`]: a fresh database on one engine (SQLite, or PostgreSQL when
//!   `STRATUS_TEST_POSTGRES` is set, see [`stratus_common::db::testing`]) with the
//!   migrations asked for, an in-process bus, and an identity service bootstrapped with
//!   an `admin` (password [`ADMIN_PASSWORD`]), cheap password hashing, and a limits
//!   client; users, projects, tokens and limits made through identity's own API;
//! - [`send`]: one request into a router, answered as [`Reply`];
//! - [`eventually`]: polls until a condition holds;
//! - [`each_engine!`]: runs a test body once per configured engine.

pub mod saga;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::db::{testing, Db, Engine, Migration};
use stratus_common::limits::LimitsClient;
use stratus_identity::app::{BootstrapOptions, InProcessLimitsSource};
use stratus_identity::config::IdentityConfig;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The password of every user [`Identity::user_with`] makes.
pub const USER_PASSWORD: &str = "pw";

/// An identity configuration with cheap password hashing (tests hash a lot).
pub fn fast_identity_config() -> IdentityConfig {
    IdentityConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() }
}

/// A reply from a router: status, headers and the raw body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// Sends one request into `router`: JSON `body` (content type `application/json`
/// unless `headers` say otherwise), `X-Auth-Token` when a token is given.
pub async fn send(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        req = req.header("content-type", "application/json");
    }
    if let Some(t) = token {
        req = req.header("x-auth-token", t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
    let resp = router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    Reply { status, headers, body }
}

/// Identity on a fresh database, for the tests of the services that use it.
pub struct Identity {
    pub db: Db,
    pub bus: Bus,
    pub identity: Arc<stratus_identity::Identity>,
    pub router: axum::Router,
}

impl Identity {
    /// A fresh database on `engine` with identity's migrations and `more`, a memory bus,
    /// and identity bootstrapped.
    pub async fn start(engine: Engine, more: &[&[Migration]]) -> Self {
        let db = testing::fresh(engine).await;
        db.migrate(stratus_identity::migrations::MIGRATIONS).await.unwrap();
        for m in more {
            db.migrate(m).await.unwrap();
        }
        let bus = Bus::Memory(MemoryBus::new());
        let store = stratus_identity::store::Store::new(db.clone());
        let identity = stratus_identity::Identity::new(store, bus.clone(), fast_identity_config(), "http://id".into())
            .await
            .unwrap();
        identity
            .bootstrap(BootstrapOptions {
                admin_password: Some(ADMIN_PASSWORD.into()),
                region: "RegionOne".into(),
                services: vec![],
            })
            .await
            .unwrap();
        let router = stratus_identity::api::router(identity.clone(), 1 << 20);
        Self { db, bus, identity, router }
    }

    /// A limits client reading identity in-process, its cache emptied on every change.
    pub fn limits(&self) -> Arc<LimitsClient> {
        let source = Arc::new(InProcessLimitsSource::new(self.identity.store.clone()));
        let limits = LimitsClient::new(source, Duration::from_secs(60));
        limits.spawn_invalidation(self.bus.clone());
        limits
    }

    /// A call into identity's API.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        send(&self.router, method, path, token, body, &[]).await
    }

    /// A project-scoped password token.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
                                   "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self.call("POST", "/v3/auth/tokens?nocatalog", None, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
        r.header("x-subject-token").unwrap()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }

    /// A project named `name` with a user of the same name holding `role` on it;
    /// returns (project id, the user's token).
    pub async fn user_with(&self, name: &str, role: &str) -> (String, String) {
        let admin = self.admin().await;
        let p = self.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": name}}))).await;
        let pid = p.json()["project"]["id"].as_str().unwrap().to_string();
        let u = self
            .call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": name, "password": USER_PASSWORD}})))
            .await;
        let uid = u.json()["user"]["id"].as_str().unwrap().to_string();
        let roles = self.call("GET", &format!("/v3/roles?name={role}"), Some(&admin), None).await;
        let rid = roles.json()["roles"][0]["id"].as_str().unwrap().to_string();
        let g = self.call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(&admin), None).await;
        assert_eq!(g.status, StatusCode::NO_CONTENT);
        (pid, self.token(name, USER_PASSWORD, name).await)
    }

    /// [`Identity::user_with`] the `member` role.
    pub async fn member(&self, name: &str) -> (String, String) {
        self.user_with(name, "member").await
    }

    /// Sets a project's limit of `resource` for the service of type `service_type`
    /// (made, or changed if set before). The caller empties its limits cache.
    pub async fn set_limit(&self, service_type: &str, project: &str, resource: &str, value: i64) {
        let admin = self.admin().await;
        let s = self.call("GET", &format!("/v3/services?type={service_type}"), Some(&admin), None).await;
        let sid = s.json()["services"][0]["id"].as_str().unwrap().to_string();
        let q = format!("/v3/limits?project_id={project}&service_id={sid}&resource_name={resource}");
        let existing = self.call("GET", &q, Some(&admin), None).await;
        if let Some(lid) = existing.json()["limits"][0]["id"].as_str() {
            let body = json!({"limit": {"resource_limit": value}});
            let r = self.call("PATCH", &format!("/v3/limits/{lid}"), Some(&admin), Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.json());
            return;
        }
        let body = json!({"limits": [{"project_id": project, "service_id": sid, "resource_name": resource, "resource_limit": value}]});
        let r = self.call("POST", "/v3/limits", Some(&admin), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    }
}

/// Polls `check` every 20 ms until it holds, for at most ten seconds.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs `$f(engine).await` once per configured engine.
#[macro_export]
macro_rules! each_engine {
    ($f:ident) => {
        for engine in stratus_common::db::testing::engines() {
            eprintln!("engine: {engine:?}");
            $f(engine).await;
        }
    };
}
