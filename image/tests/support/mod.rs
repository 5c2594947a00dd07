//! Test support: identity and image on one fresh database, driven through their
//! routers in-process.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::config::IdentityConfig;
use stratus_common::db::{testing, Engine};
use stratus_common::limits::LimitsClient;
use stratus_identity::app::{BootstrapOptions, InProcessLimitsSource};
use stratus_identity::Identity;
use stratus_image::backend::FilesystemBackend;
use stratus_image::ImageService;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-secret";

pub struct Cloud {
    pub identity: Arc<Identity>,
    pub images: Arc<ImageService>,
    pub identity_router: axum::Router,
    pub image_router: axum::Router,
    pub data_dir: PathBuf,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Cloud {
    pub async fn start(engine: Engine) -> Self {
        let db = testing::fresh(engine).await;
        db.migrate(stratus_identity::migrations::MIGRATIONS).await.unwrap();
        db.migrate(stratus_image::migrations::MIGRATIONS).await.unwrap();
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
        let data_dir = std::env::temp_dir().join(format!("stratus-image-test-{}", uuid::Uuid::new_v4()));
        let limits =
            LimitsClient::new(Arc::new(InProcessLimitsSource::new(identity.store.clone())), Duration::from_secs(60));
        limits.spawn_invalidation(bus.clone());
        let images = Arc::new(ImageService {
            store: stratus_image::store::Store::new(db),
            bus,
            backend: Arc::new(FilesystemBackend::new(data_dir.clone()).unwrap()),
            limits,
            public_url: "http://image".into(),
            max_image_bytes: 64 * 1024 * 1024,
        });
        let identity_router = stratus_identity::api::router(identity.clone(), 1 << 20);
        let image_router = stratus_image::api::router(images.clone(), identity.verifier.clone(), 1 << 20);
        Self { identity, images, identity_router, image_router, data_dir }
    }

    async fn send(router: &axum::Router, req: Request<Body>) -> Resp {
        let resp = router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        Resp { status, headers, body }
    }

    pub async fn identity_call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = Request::builder().method(method).uri(path).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        Self::send(&self.identity_router, req.body(body).unwrap()).await
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let req = Request::builder().method(method).uri(path).header("x-auth-token", token).header(
            "content-type",
            if method == "PATCH" { "application/openstack-images-v2.1-json-patch" } else { "application/json" },
        );
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        Self::send(&self.image_router, req.body(body).unwrap()).await
    }

    pub async fn call_body(&self, method: &str, path: &str, token: &str, body: Body, headers: &[(&str, &str)]) -> Resp {
        let mut req = Request::builder().method(method).uri(path).header("x-auth-token", token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::send(&self.image_router, req.body(body).unwrap()).await
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": user, "domain": {"id": "default"}, "password": password}}},
                                   "scope": {"project": {"name": project, "domain": {"id": "default"}}}}});
        let r = self.identity_call("POST", "/v3/auth/tokens?nocatalog", None, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        r.headers.get("x-subject-token").unwrap().to_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD, "admin").await
    }

    /// A project with a member user; returns (project id, the user's token).
    pub async fn member(&self, name: &str) -> (String, String) {
        let admin = self.admin().await;
        let p =
            self.identity_call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": name}}))).await;
        let pid = p.json()["project"]["id"].as_str().unwrap().to_string();
        let u = self
            .identity_call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": name, "password": "pw"}})))
            .await;
        let uid = u.json()["user"]["id"].as_str().unwrap().to_string();
        let roles = self.identity_call("GET", "/v3/roles?name=member", Some(&admin), None).await;
        let rid = roles.json()["roles"][0]["id"].as_str().unwrap().to_string();
        self.identity_call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(&admin), None).await;
        (pid, self.token(name, "pw", name).await)
    }

    /// Sets a project's image limit through identity.
    pub async fn set_limit(&self, project: &str, resource: &str, value: i64) {
        let admin = self.admin().await;
        let s = self.identity_call("GET", "/v3/services?type=image", Some(&admin), None).await;
        let sid = s.json()["services"][0]["id"].as_str().unwrap().to_string();
        let body = json!({"limits": [{"project_id": project, "service_id": sid, "resource_name": resource, "resource_limit": value}]});
        let r = self.identity_call("POST", "/v3/limits", Some(&admin), Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pub async fn create(&self, token: &str, body: Value) -> Value {
        let r = self.call("POST", "/v2/images", token, Some(body)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    pub async fn upload(&self, token: &str, id: &str, data: Vec<u8>) -> Resp {
        self.call_body(
            "PUT",
            &format!("/v2/images/{id}/file"),
            token,
            Body::from(data),
            &[("content-type", "application/octet-stream")],
        )
        .await
    }

    /// Files under the image data directory (data, staging and import).
    pub fn stored_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for d in ["images", "staging", "import"] {
            if let Ok(rd) = std::fs::read_dir(self.data_dir.join(d)) {
                for e in rd.flatten() {
                    out.push(format!("{d}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out
    }
}

/// A minimal qcow2 header: 1 GiB virtual size, optionally with a backing file.
pub fn qcow2(backing: bool) -> Vec<u8> {
    let mut h = vec![0u8; 128 * 1024];
    h[..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    if backing {
        h[8..16].copy_from_slice(&1024u64.to_be_bytes());
        h[16..20].copy_from_slice(&10u32.to_be_bytes());
        h[1024..1034].copy_from_slice(b"/etc/hosts");
    }
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    h[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    h
}

#[macro_export]
macro_rules! each_engine {
    ($f:ident) => {
        for engine in stratus_common::db::testing::engines() {
            eprintln!("engine: {engine:?}");
            $f(engine).await;
        }
    };
}
