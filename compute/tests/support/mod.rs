//! Test support: identity, image and network served on loopback ports (compute calls
//! them over HTTP, as in production), the compute service driven in-process through its
//! router, and fake hosts run by an in-process compute agent on the same bus.

#![allow(dead_code)]

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use stratus_common::auth::service_token::TokenSource;
use stratus_common::bus::Bus;
use stratus_common::db::Engine;
use stratus_compute::app::Settings;
use stratus_compute::scheduler::{Scheduler, Weigher};
use stratus_compute::ComputeService;
use stratus_compute_agent::driver::fake::{FakeDriver, FakeOptions};
use stratus_compute_agent::driver::{Capacity, HypervisorDriver};
use stratus_identity::Identity;
pub use stratus_test_support::eventually;

struct AdminTokens(Arc<Identity>);

impl TokenSource for AdminTokens {
    fn token(&self) -> futures::future::BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            Ok(self.0.internal_token("admin", "admin").await.map_err(|e| anyhow::anyhow!(e.message))?.token)
        })
    }
}

pub struct Cloud {
    pub id: stratus_test_support::Identity,
    pub compute: Arc<ComputeService>,
    pub bus: Bus,
    pub drivers: Vec<Arc<FakeDriver>>,
    pub agent: Arc<stratus_compute_agent::Agent>,
    pub image_url: String,
    pub image: Arc<stratus_image::ImageService>,
    pub network_url: String,
    /// The block-storage API (fake backend), which compute attaches volumes from.
    pub volume_url: String,
    pub volume: Arc<stratus_volume::VolumeService>,
    pub router: axum::Router,
    _dir: TempDir,
}

pub struct TempDir(pub std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// How the test cloud's hosts behave.
#[derive(Clone)]
pub struct Options {
    pub hosts: usize,
    pub fake: FakeOptions,
    /// Hosts (by index) whose every spawn fails.
    pub failing_hosts: Vec<usize>,
    pub settings: Settings,
}

impl Default for Options {
    fn default() -> Self {
        let settings = Settings {
            reconcile_every: Duration::from_secs(3600),
            command_timeout: Duration::from_secs(5),
            orphan_grace: Duration::from_millis(0),
            ..Default::default()
        };
        Self {
            hosts: 2,
            failing_hosts: Vec::new(),
            fake: FakeOptions {
                capacity: Capacity { vcpus: 4, ram_mb: 4096, disk_gb: 100, hypervisor_type: "fake".into() },
                ..Default::default()
            },
            settings,
        }
    }
}

impl Cloud {
    pub async fn start(engine: Engine) -> Self {
        Self::start_with(engine, Options::default()).await
    }

    pub async fn start_with(engine: Engine, opts: Options) -> Self {
        let id = stratus_test_support::Identity::start(
            engine,
            &[
                stratus_image::migrations::MIGRATIONS,
                stratus_network::migrations::MIGRATIONS,
                stratus_volume::migrations::MIGRATIONS,
                stratus_compute::migrations::MIGRATIONS,
            ],
        )
        .await;
        let (db, bus, identity) = (id.db.clone(), id.bus.clone(), id.identity.clone());
        let limits = || id.limits();
        let dir = std::env::temp_dir().join(format!("stratus-compute-test-{}", uuid::Uuid::new_v4()));
        let image = Arc::new(stratus_image::ImageService {
            store: stratus_image::store::Store::new(db.clone()),
            bus: bus.clone(),
            backend: Arc::new(stratus_image::backend::FilesystemBackend::new(dir.join("images")).unwrap()),
            limits: limits(),
            public_url: "http://image".into(),
            max_image_bytes: 1 << 20,
        });
        let image_url = serve(stratus_image::api::router(image.clone(), identity.verifier.clone(), 1 << 20)).await;
        let network = Arc::new(stratus_network::NetworkService {
            store: stratus_network::store::Store::new(db.clone()),
            bus: bus.clone(),
            limits: limits(),
            public_url: "http://network".into(),
            identity_url: "http://127.0.0.1:1".into(),
            http: reqwest::Client::new(),
            driver: stratus_network::driver::Driver::Fake,
        });
        let network_url = serve(stratus_network::api::router(network, identity.verifier.clone(), 1 << 20)).await;
        let volume_driver = Arc::new(stratus_volume::driver::FakeDriver::new());
        let volume = stratus_volume::VolumeService::new(
            stratus_volume::store::Store::new(db.clone()),
            bus.clone(),
            limits(),
            vec![volume_driver.clone() as Arc<dyn stratus_volume::driver::VolumeDriver>],
            "http://volume".into(),
            Default::default(),
            stratus_volume::app::ImageLink {
                http: reqwest::Client::new(),
                url: image_url.clone(),
                tokens: Some(Arc::new(AdminTokens(identity.clone()))),
                staging: dir.join("staging"),
            },
        );
        volume.start(Duration::from_secs(3600)).await.unwrap();
        let volume_url = serve(stratus_volume::api::router(volume.clone(), identity.verifier.clone(), 1 << 20)).await;
        let clients = stratus_compute::clients::Clients {
            http: reqwest::Client::new(),
            network_url: network_url.clone(),
            image_url: image_url.clone(),
            volume_url: volume_url.clone(),
            identity_url: "http://127.0.0.1:1".into(),
            tokens: Arc::new(AdminTokens(identity.clone())),
            network_names: Default::default(),
        };
        let scheduler = Scheduler::new(Weigher::Spread, opts.settings.host_down_after);
        let compute = ComputeService::new(
            stratus_compute::store::Store::new(db.clone()),
            bus.clone(),
            limits(),
            clients,
            scheduler,
            opts.settings.clone(),
        );
        compute.start().await.unwrap();
        let drivers: Vec<Arc<FakeDriver>> = (0..opts.hosts)
            .map(|i| {
                let mut f = opts.fake.clone();
                if opts.failing_hosts.contains(&i) {
                    f.failure_rate = 1.0;
                }
                Arc::new(FakeDriver::new(f))
            })
            .collect();
        let hosts = drivers
            .iter()
            .enumerate()
            .map(|(i, d)| stratus_compute_agent::Host {
                name: format!("host-{i}"),
                availability_zone: "nova".into(),
                traits: Vec::new(),
                resource_class: None,
                ip: None,
                driver: d.clone() as Arc<dyn HypervisorDriver>,
            })
            .collect();
        let agent = stratus_compute_agent::Agent::new("test", hosts, bus.clone(), Duration::from_secs(3600));
        agent.set_image_service(Arc::new(
            stratus_compute_agent::images::ImageCache::new(
                dir.join("agent-images"),
                &image_url,
                Arc::new(AdminTokens(identity.clone())),
            )
            .unwrap(),
        ));
        for h in 0..opts.hosts {
            let r = agent.report(&agent.host(&format!("host-{h}")).unwrap()).await.unwrap();
            compute.on_report(&r).await.unwrap();
        }
        tokio::spawn(agent.clone().run());
        let router = stratus_compute::api::router(compute.clone(), identity.verifier.clone(), 1 << 20);
        // The volume service tells compute when an attached volume grows.
        volume.set_compute_url(&format!("{}/v2.1", serve(router.clone()).await));
        Self {
            id,
            compute,
            bus,
            drivers,
            agent,
            image_url,
            image,
            network_url,
            volume_url,
            volume,
            router,
            _dir: TempDir(dir),
        }
    }

    async fn send(
        router: &axum::Router,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        version: &str,
    ) -> Resp {
        let header = format!("compute {version}");
        let headers: &[(&str, &str)] = if version.is_empty() { &[] } else { &[("openstack-api-version", &header)] };
        let r = stratus_test_support::send(router, method, path, token, body, headers).await;
        Resp { status: r.status, body: r.json() }
    }

    pub async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        Self::send(&self.router, method, &format!("/v2.1{path}"), Some(token), body, "").await
    }

    pub async fn call_v(&self, version: &str, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        Self::send(&self.router, method, &format!("/v2.1{path}"), Some(token), body, version).await
    }

    pub async fn identity_call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let r = self.id.call(method, path, token, body).await;
        Resp { status: r.status, body: r.json() }
    }

    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        self.id.token(user, password, project).await
    }

    pub async fn admin(&self) -> String {
        self.id.admin().await
    }

    /// A project with a member user; returns (project id, token).
    pub async fn member(&self, name: &str) -> (String, String) {
        self.id.member(name).await
    }

    /// Sets a project's compute limit through identity (a new limit, or a change).
    pub async fn set_limit(&self, project: &str, resource: &str, value: i64) {
        self.id.set_limit("compute", project, resource, value).await;
        self.compute.limits.invalidate();
    }

    pub async fn http(&self, method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new().request(method, url).header("x-auth-token", token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// A public, active image, a flavor `m1` (1 vCPU, 512 MiB, 1 GiB) and a shared
    /// network with a subnet; returns (image id, network id, subnet id).
    pub async fn basics(&self) -> (String, String, String) {
        let admin = self.admin().await;
        let id = self
            .image(
                &admin,
                json!({"name": "img", "disk_format": "raw", "container_format": "bare", "visibility": "public"}),
            )
            .await;
        let f = self
            .call(
                "POST",
                "/flavors",
                &admin,
                Some(json!({"flavor": {"name": "m1", "vcpus": 1, "ram": 512, "disk": 1, "id": "m1"}})),
            )
            .await;
        assert_eq!(f.status, StatusCode::OK, "{}", f.body);
        let net = self
            .http(
                reqwest::Method::POST,
                format!("{}/v2.0/networks", self.network_url),
                &admin,
                Some(json!({"network": {"name": "shared", "shared": true}})),
            )
            .await;
        let nid = net["network"]["id"].as_str().unwrap().to_string();
        let sub = self
            .http(
                reqwest::Method::POST,
                format!("{}/v2.0/subnets", self.network_url),
                &admin,
                Some(json!({"subnet": {"network_id": nid, "cidr": "10.9.0.0/24", "ip_version": 4}})),
            )
            .await;
        (id, nid, sub["subnet"]["id"].as_str().unwrap().to_string())
    }

    /// The status of a GET as `token`.
    pub async fn http_status(&self, url: &str, token: &str) -> u16 {
        reqwest::Client::new().get(url).header("x-auth-token", token).send().await.unwrap().status().as_u16()
    }

    /// The public image `basics` made.
    pub async fn basics_image(&self) -> String {
        let admin = self.admin().await;
        let v = self.http(reqwest::Method::GET, format!("{}/v2/images?name=img", self.image_url), &admin, None).await;
        v["images"][0]["id"].as_str().unwrap().to_string()
    }

    /// An active image made as `token` with these attributes (1 KiB of data); its id.
    pub async fn image(&self, token: &str, attrs: Value) -> String {
        let img = self.http(reqwest::Method::POST, format!("{}/v2/images", self.image_url), token, Some(attrs)).await;
        let id = img["id"].as_str().unwrap().to_string();
        let resp = reqwest::Client::new()
            .put(format!("{}/v2/images/{id}/file", self.image_url))
            .header("x-auth-token", token)
            .header("content-type", "application/octet-stream")
            .body(vec![7u8; 1024])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
        id
    }

    /// Ports whose device is `server` (as the admin sees them).
    pub async fn ports_of(&self, server: &str) -> Vec<Value> {
        let admin = self.admin().await;
        let v = self
            .http(reqwest::Method::GET, format!("{}/v2.0/ports?device_id={server}", self.network_url), &admin, None)
            .await;
        v["ports"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the server has `status` (or is gone, for "GONE").
    pub async fn wait_status(&self, token: &str, id: &str, status: &str) -> Value {
        for _ in 0..400 {
            let r = self.call("GET", &format!("/servers/{id}"), token, None).await;
            if status == "GONE" && r.status == StatusCode::NOT_FOUND {
                return Value::Null;
            }
            if r.body["server"]["status"] == json!(status) {
                return r.body["server"].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let row = self.compute.store.server_get(id).await.unwrap();
        let sagas = sqlx::query("SELECT kind, step, state, error FROM compute_sagas WHERE subject = $1")
            .bind(id)
            .fetch_all(&self.compute.store.db.pool)
            .await
            .unwrap();
        use stratus_common::db::RowExt;
        let sagas: Vec<String> = sagas
            .iter()
            .map(|r| format!("{} {} {} {}", r.text("kind"), r.int("step"), r.text("state"), r.text("error")))
            .collect();
        panic!(
            "server {id} never reached {status}: {:?} {:?} {sagas:?}",
            row.as_ref().map(|s| (&s.vm_state, &s.task_state, &s.host)),
            row.as_ref().map(|s| &s.doc)
        );
    }

    /// Used vCPUs summed over all hosts, and the number of allocations.
    pub async fn claimed(&self) -> (i64, usize) {
        let hosts = self.compute.store.host_list().await.unwrap();
        let used = hosts.iter().map(|h| h.used_vcpus).sum();
        (used, self.compute.store.allocation_consumers().await.unwrap().len())
    }

    /// Makes every fake host fail that share of its spawns, rebuilds and resizes.
    pub fn set_failure_rate(&self, rate: f64) {
        for d in &self.drivers {
            d.set_failure_rate(rate);
        }
    }

    /// Guests on all fake hosts.
    pub async fn guests(&self) -> usize {
        let mut n = 0;
        for d in &self.drivers {
            n += d.guests().await.unwrap().len();
        }
        n
    }

    pub async fn usage(&self, project: &str) -> std::collections::HashMap<String, i64> {
        self.compute.store.usage(project).await.unwrap().into_iter().collect()
    }
}
