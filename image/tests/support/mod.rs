//! Test support: identity and image on one fresh database, driven through their
//! routers in-process.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::db::Engine;
use stratus_image::backend::FilesystemBackend;
use stratus_image::ImageService;
pub use stratus_test_support::Reply as Resp;

pub struct Cloud {
    pub id: stratus_test_support::Identity,
    pub images: Arc<ImageService>,
    pub image_router: axum::Router,
    pub data_dir: PathBuf,
}

impl Cloud {
    pub async fn start(engine: Engine) -> Self {
        let id = stratus_test_support::Identity::start(engine, &[stratus_image::migrations::MIGRATIONS]).await;
        let data_dir = std::env::temp_dir().join(format!("stratus-image-test-{}", uuid::Uuid::new_v4()));
        let images = Arc::new(ImageService {
            store: stratus_image::store::Store::new(id.db.clone()),
            bus: id.bus.clone(),
            backend: Arc::new(FilesystemBackend::new(data_dir.clone()).unwrap()),
            limits: id.limits(),
            public_url: "http://image".into(),
            max_image_bytes: 64 * 1024 * 1024,
        });
        let image_router = stratus_image::api::router(images.clone(), id.identity.verifier.clone(), 1 << 20);
        Self { id, images, image_router, data_dir }
    }

    pub async fn identity_call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        self.id.call(method, path, token, body).await
    }

    /// A call into the image API (JSON patch for PATCH, as Glance wants).
    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let ct = if method == "PATCH" { "application/openstack-images-v2.1-json-patch" } else { "application/json" };
        stratus_test_support::send(&self.image_router, method, path, Some(token), body, &[("content-type", ct)]).await
    }

    pub async fn call_body(&self, method: &str, path: &str, token: &str, body: Body, headers: &[(&str, &str)]) -> Resp {
        use axum::http::Request;
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut req = Request::builder().method(method).uri(path).header("x-auth-token", token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.image_router.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        Resp { status, headers, body }
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        self.id.token(user, password, project).await
    }

    pub async fn admin(&self) -> String {
        self.id.admin().await
    }

    /// A project with a member user; returns (project id, the user's token).
    pub async fn member(&self, name: &str) -> (String, String) {
        self.id.member(name).await
    }

    /// Sets a project's image limit through identity.
    pub async fn set_limit(&self, project: &str, resource: &str, value: i64) {
        self.id.set_limit("image", project, resource, value).await;
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

pub use stratus_test_support::each_engine;
