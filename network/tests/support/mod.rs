//! Test support: identity and the network service on one fresh database, driven
//! through their routers in-process.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::config::IdentityConfig;
use stratus_common::db::{testing, Engine};
use stratus_common::limits::LimitsClient;
use stratus_identity::app::{BootstrapOptions, InProcessLimitsSource};
use stratus_identity::Identity;
use stratus_network::NetworkService;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-secret";

pub struct Cloud {
    pub identity: Arc<Identity>,
    pub network: Arc<NetworkService>,
    pub bus: Bus,
    identity_router: axum::Router,
    router: axum::Router,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The Neutron error type of an error response.
    pub fn kind(&self) -> &str {
        self.body["NeutronError"]["type"].as_str().unwrap_or("")
    }
}

impl Cloud {
    pub async fn start(engine: Engine) -> Self {
        Self::start_with(engine, stratus_network::driver::Driver::Agent).await
    }

    pub async fn start_with(engine: Engine, driver: stratus_network::driver::Driver) -> Self {
        let db = testing::fresh(engine).await;
        db.migrate(stratus_identity::migrations::MIGRATIONS).await.unwrap();
        db.migrate(stratus_network::migrations::MIGRATIONS).await.unwrap();
        let bus = Bus::Memory(MemoryBus::new());
        let config = IdentityConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() };
        let identity =
            Identity::new(stratus_identity::store::Store::new(db.clone()), bus.clone(), config, "http://id".into())
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
        let limits =
            LimitsClient::new(Arc::new(InProcessLimitsSource::new(identity.store.clone())), Duration::from_secs(60));
        limits.spawn_invalidation(bus.clone());
        let network = Arc::new(NetworkService {
            store: stratus_network::store::Store::new(db),
            bus: bus.clone(),
            limits,
            public_url: "http://network".into(),
            identity_url: "http://127.0.0.1:1".into(),
            http: reqwest::Client::new(),
            driver,
        });
        let identity_router = stratus_identity::api::router(identity.clone(), 1 << 20);
        let router = stratus_network::api::router(network.clone(), identity.verifier.clone(), 1 << 20);
        Self { identity, network, bus, identity_router, router }
    }

    async fn send(
        router: &axum::Router,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
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
        let bytes = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        Resp { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn identity_call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        Self::send(&self.identity_router, method, path, token, body, &[]).await
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        Self::send(&self.router, method, path, Some(token), body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        Self::send(&self.router, method, path, Some(token), body, headers).await
    }

    /// Creates and returns the resource, asserting 201.
    pub async fn create(&self, token: &str, collection: &str, key: &str, body: Value) -> Value {
        let r = self.call("POST", &format!("/v2.0/{collection}"), token, Some(json!({ key: body }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body[key].clone()
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
                                   "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = Self::send(&self.identity_router, "POST", "/v3/auth/tokens?nocatalog", None, Some(body), &[]).await;
        assert_eq!(r.status, StatusCode::CREATED);
        r.headers.get("x-subject-token").unwrap().to_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }

    /// A project with a user holding `role` on it; returns (project id, the user's token).
    pub async fn user_with(&self, name: &str, role: &str) -> (String, String) {
        let admin = self.admin().await;
        let p =
            self.identity_call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": name}}))).await;
        let pid = p.body["project"]["id"].as_str().unwrap().to_string();
        let u = self
            .identity_call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": name, "password": "pw"}})))
            .await;
        let uid = u.body["user"]["id"].as_str().unwrap().to_string();
        let roles = self.identity_call("GET", &format!("/v3/roles?name={role}"), Some(&admin), None).await;
        let rid = roles.body["roles"][0]["id"].as_str().unwrap().to_string();
        self.identity_call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(&admin), None).await;
        (pid, self.token(name, "pw", name).await)
    }

    pub async fn member(&self, name: &str) -> (String, String) {
        self.user_with(name, "member").await
    }

    /// Sets a project's network limit through identity (made, or changed if set before).
    pub async fn set_limit(&self, project: &str, resource: &str, value: i64) {
        let admin = self.admin().await;
        let s = self.identity_call("GET", "/v3/services?type=network", Some(&admin), None).await;
        let sid = s.body["services"][0]["id"].as_str().unwrap().to_string();
        let q = format!("/v3/limits?project_id={project}&service_id={sid}&resource_name={resource}");
        let existing = self.identity_call("GET", &q, Some(&admin), None).await;
        if let Some(lid) = existing.body["limits"][0]["id"].as_str() {
            let body = json!({"limit": {"resource_limit": value}});
            let r = self.identity_call("PATCH", &format!("/v3/limits/{lid}"), Some(&admin), Some(body)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            self.network.limits.invalidate();
            return;
        }
        let body = json!({"limits": [{"project_id": project, "service_id": sid, "resource_name": resource, "resource_limit": value}]});
        let r = self.identity_call("POST", "/v3/limits", Some(&admin), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        self.network.limits.invalidate();
    }

    /// The admin's external network `public` with the subnet 203.0.113.0/24; returns it.
    pub async fn public_network(&self, admin: &str) -> Value {
        let body = json!({"name": "public", "router:external": true, "provider:network_type": "flat"});
        let public = self.create(admin, "networks", "network", body).await;
        let subnet = json!({"network_id": public["id"], "cidr": "203.0.113.0/24", "enable_dhcp": false});
        self.create(admin, "subnets", "subnet", subnet).await;
        public
    }

    /// A network with one subnet; returns (network id, subnet id).
    pub async fn net_with_subnet(&self, token: &str, name: &str, cidr: &str) -> (String, String) {
        let n = self.create(token, "networks", "network", json!({"name": name})).await;
        let nid = n["id"].as_str().unwrap().to_string();
        let s = self
            .create(token, "subnets", "subnet", json!({"name": name, "network_id": nid, "cidr": cidr, "ip_version": 4}))
            .await;
        (nid, s["id"].as_str().unwrap().to_string())
    }
}

#[macro_export]
macro_rules! each_engine {
    ($f:ident) => {
        for engine in stratus_common::db::testing::engines() {
            $f(engine).await;
        }
    };
}
