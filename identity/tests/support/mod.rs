//! Test support: an identity service on a fresh database (SQLite, and PostgreSQL when
//! `STRATUS_TEST_POSTGRES` is set), driven in-process through its router.

#![allow(dead_code)]

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::db::{testing, Engine};
use stratus_identity::app::{BootstrapOptions, CatalogService};
use stratus_identity::config::IdentityConfig;
use stratus_identity::store::Store;
use stratus_identity::Identity;

pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const BASE: &str = "http://identity.test:5000";

pub struct TestCloud {
    pub engine: Engine,
    pub identity: Arc<Identity>,
    pub router: axum::Router,
    pub bus: Bus,
}

pub fn test_config() -> IdentityConfig {
    IdentityConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() }
}

impl TestCloud {
    pub async fn start(engine: Engine) -> Self {
        Self::start_with(engine, test_config(), Bus::Memory(MemoryBus::new())).await
    }

    pub async fn start_with(engine: Engine, config: IdentityConfig, bus: Bus) -> Self {
        let db = testing::fresh(engine).await;
        db.migrate(stratus_identity::migrations::MIGRATIONS).await.unwrap();
        Self::on_db(engine, db, config, bus).await
    }

    pub async fn on_db(engine: Engine, db: stratus_common::db::Db, config: IdentityConfig, bus: Bus) -> Self {
        let identity = Identity::new(Store::new(db), bus.clone(), config, BASE.to_string()).await.unwrap();
        identity
            .bootstrap(BootstrapOptions {
                admin_password: Some(ADMIN_PASSWORD.into()),
                region: "RegionOne".into(),
                services: vec![CatalogService {
                    service_type: "identity".into(),
                    name: "keystone".into(),
                    url: format!("{BASE}/v3"),
                }],
            })
            .await
            .unwrap();
        let router = stratus_identity::api::router(identity.clone(), 1024 * 1024);
        Self { engine, identity, router, bus }
    }

    /// Sends a request; returns status, the X-Subject-Token header and the JSON body.
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let r = stratus_test_support::send(&self.router, method, path, token, body, headers).await;
        let status = r.status;
        let subject = r.header("x-subject-token");
        let request_id = r.header("x-openstack-request-id");
        let json = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).unwrap_or(Value::String(String::from_utf8_lossy(&r.body).into()))
        };
        Resp { status, subject, request_id, json }
    }

    pub async fn login(&self, user: &str, password: &str, project: Option<&str>) -> Resp {
        let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}}});
        if let Some(p) = project {
            auth["scope"] = json!({"project": {"name": p, "domain": {"id": "default"}}});
        }
        self.call("POST", "/v3/auth/tokens", None, Some(json!({"auth": auth}))).await
    }

    pub async fn admin_token(&self) -> String {
        let r = self.login("admin", ADMIN_PASSWORD, Some("admin")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
        r.subject.unwrap()
    }

    /// Creates a project and a user holding `role` on it; returns (project id, user id).
    pub async fn project_with_user(
        &self,
        admin: &str,
        project: &str,
        user: &str,
        password: &str,
        role: &str,
    ) -> (String, String) {
        let p = self.call("POST", "/v3/projects", Some(admin), Some(json!({"project": {"name": project}}))).await;
        assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.json);
        let pid = p.json["project"]["id"].as_str().unwrap().to_string();
        let u = self
            .call("POST", "/v3/users", Some(admin), Some(json!({"user": {"name": user, "password": password}})))
            .await;
        assert_eq!(u.status, StatusCode::CREATED, "{:?}", u.json);
        let uid = u.json["user"]["id"].as_str().unwrap().to_string();
        let rid = self.role_id(admin, role).await;
        let g = self.call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(admin), None).await;
        assert_eq!(g.status, StatusCode::NO_CONTENT, "{:?}", g.json);
        (pid, uid)
    }

    pub async fn role_id(&self, admin: &str, name: &str) -> String {
        let r = self.call("GET", &format!("/v3/roles?name={name}"), Some(admin), None).await;
        r.json["roles"][0]["id"].as_str().unwrap().to_string()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub subject: Option<String>,
    pub request_id: Option<String>,
    pub json: Value,
}

/// Runs `f` once per configured engine.
#[macro_export]
macro_rules! each_engine {
    ($f:ident) => {
        for engine in stratus_common::db::testing::engines() {
            eprintln!("engine: {engine:?}");
            $f(engine).await;
        }
    };
}
