//! Test support: identity and the network service on one fresh database, driven
//! through their routers in-process.

#![allow(dead_code)]

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::bus::Bus;
use stratus_common::db::Engine;
use stratus_network::NetworkService;
use stratus_test_support::Reply;

pub struct Cloud {
    pub id: stratus_test_support::Identity,
    pub network: Arc<NetworkService>,
    pub bus: Bus,
    router: axum::Router,
}

/// A reply with its JSON body read.
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl From<Reply> for Resp {
    fn from(r: Reply) -> Self {
        let body = r.json();
        Self { status: r.status, headers: r.headers, body }
    }
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
        let id = stratus_test_support::Identity::start(engine, &[stratus_network::migrations::MIGRATIONS]).await;
        let network = Arc::new(NetworkService {
            store: stratus_network::store::Store::new(id.db.clone()),
            bus: id.bus.clone(),
            limits: id.limits(),
            public_url: "http://network".into(),
            identity_url: "http://127.0.0.1:1".into(),
            http: reqwest::Client::new(),
            driver,
        });
        let router = stratus_network::api::router(network.clone(), id.identity.verifier.clone(), 1 << 20);
        let bus = id.bus.clone();
        Self { id, network, bus, router }
    }

    pub async fn identity_call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.id.call(method, path, token, body).await.into()
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        stratus_test_support::send(&self.router, method, path, Some(token), body, headers).await.into()
    }

    /// Creates and returns the resource, asserting 201.
    pub async fn create(&self, token: &str, collection: &str, key: &str, body: Value) -> Value {
        let r = self.call("POST", &format!("/v2.0/{collection}"), token, Some(json!({ key: body }))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body[key].clone()
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        self.id.token(user, password, project).await
    }

    pub async fn admin(&self) -> String {
        self.id.admin().await
    }

    /// A project with a user holding `role` on it; returns (project id, the user's token).
    pub async fn user_with(&self, name: &str, role: &str) -> (String, String) {
        self.id.user_with(name, role).await
    }

    pub async fn member(&self, name: &str) -> (String, String) {
        self.id.member(name).await
    }

    /// Sets a project's network limit through identity (made, or changed if set before).
    pub async fn set_limit(&self, project: &str, resource: &str, value: i64) {
        self.id.set_limit("network", project, resource, value).await;
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
