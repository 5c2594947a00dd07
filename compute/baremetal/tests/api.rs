//! Bare-metal API tests: in-process against a real database (SQLite, and PostgreSQL
//! when STRATUS_TEST_POSTGRES is set), identity in-process, nodes on fake hardware. The
//! conductor's passes are run by the tests themselves, so each step is observable (the
//! end-to-end tests drive real BMCs with the conductor running on its own).

use axum::http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::Arc;
use stratus_baremetal::app::Settings;
use stratus_baremetal::driver::{Bmc, Drivers};
use stratus_baremetal::model::{BootDevice, PowerState};
use stratus_baremetal::BaremetalService;
use stratus_common::db::Engine;
use stratus_test_support::{each_engine, send, Identity};

const V: (&str, &str) = ("X-OpenStack-Ironic-API-Version", "1.31");

struct Cloud {
    id: Identity,
    svc: Arc<BaremetalService>,
    drivers: Drivers,
    router: axum::Router,
    admin: String,
    /// A directory of the test's own, removed with the cloud.
    work: Option<std::path::PathBuf>,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(w) = &self.work {
            let _ = std::fs::remove_dir_all(w);
        }
    }
}

impl Cloud {
    async fn start(engine: Engine) -> Self {
        let id = Identity::start(engine, &[stratus_baremetal::migrations::MIGRATIONS]).await;
        let drivers = Drivers::new(reqwest::Client::new());
        let (svc, router) = Self::service(&id, drivers.clone());
        let admin = id.admin().await;
        Self { id, svc, drivers, router, admin, work: None }
    }

    /// A service over the test's database: a second one is the service after a restart.
    fn service(id: &Identity, drivers: Drivers) -> (Arc<BaremetalService>, axum::Router) {
        let settings = Settings {
            public_url: "http://bm".into(),
            power_timeout: std::time::Duration::from_secs(2),
            ..Default::default()
        };
        let svc = BaremetalService::new(
            stratus_baremetal::store::Store::new(id.db.clone()),
            id.bus.clone(),
            drivers,
            settings,
            None,
        );
        let router = stratus_baremetal::api::router(svc.clone(), id.identity.verifier.clone(), 1 << 20);
        (svc, router)
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = send(&self.router, method, path, Some(token), body, &[V]).await;
        (r.status, r.json())
    }

    async fn node(&self, name: &str) -> Value {
        let (code, n) = self.call("GET", &format!("/v1/nodes/{name}"), &self.admin, None).await;
        assert_eq!(code, StatusCode::OK, "{n}");
        n
    }

    async fn create(&self, name: &str) -> String {
        let (code, n) =
            self.call("POST", "/v1/nodes", &self.admin, Some(json!({"driver": "fake-hardware", "name": name}))).await;
        assert_eq!(code, StatusCode::CREATED, "{n}");
        n["uuid"].as_str().unwrap().to_string()
    }

    async fn provision(&self, name: &str, target: &str) -> (StatusCode, Value) {
        self.call("PUT", &format!("/v1/nodes/{name}/states/provision"), &self.admin, Some(json!({"target": target})))
            .await
    }

    /// Asks for `target` and lets the conductor do it; the node's state after.
    async fn step(&self, name: &str, target: &str) -> String {
        let (code, body) = self.provision(name, target).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{target}: {body}");
        self.svc.work_pass().await.unwrap();
        self.node(name).await["provision_state"].as_str().unwrap().to_string()
    }
}

async fn lifecycle(engine: Engine) {
    let c = Cloud::start(engine).await;
    let id = c.create("n1").await;
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "enroll");
    assert_eq!(n["uuid"], id.as_str());
    for (target, state) in [("manage", "manageable"), ("inspect", "manageable"), ("provide", "available")] {
        assert_eq!(c.step("n1", target).await, state, "{target}");
    }
    let n = c.node("n1").await;
    assert_eq!(n["properties"]["cpus"], 2);
    assert_eq!(n["power_state"], "power off");
    let (code, _) = c
        .call(
            "PATCH",
            "/v1/nodes/n1",
            &c.admin,
            Some(json!([{"op": "add", "path": "/instance_info/image_source", "value": "glance://img"}])),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(c.step("n1", "active").await, "active");
    let hw = c.drivers.fake.state(&id).unwrap();
    assert_eq!((hw.power, hw.boot_device), (PowerState::On, BootDevice::Disk));
    assert_eq!(c.step("n1", "deleted").await, "available");
    let n = c.node("n1").await;
    assert_eq!(n["instance_info"], json!({}));
    assert_eq!(c.drivers.fake.state(&id).unwrap().power, PowerState::Off);
    let (code, _) = c.call("DELETE", "/v1/nodes/n1", &c.admin, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = c.call("GET", "/v1/nodes/n1", &c.admin, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_node_walks_enroll_to_active_and_back() {
    each_engine!(lifecycle);
}

async fn refusals(engine: Engine) {
    let c = Cloud::start(engine).await;
    c.create("n1").await;
    // Out of order, unknown, or asked of a busy node: refused, nothing changes.
    let (code, body) = c.provision("n1", "active").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let fault: Value = serde_json::from_str(body["error_message"].as_str().unwrap()).unwrap();
    assert!(fault["faultstring"].as_str().unwrap().contains("can not be performed"), "{fault}");
    assert_eq!(fault["faultcode"], "Client");
    assert_eq!(c.provision("n1", "explode").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.provision("n1", "manage").await.0, StatusCode::ACCEPTED);
    let (code, body) = c.provision("n1", "manage").await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let (code, _) =
        c.call("PATCH", "/v1/nodes/n1", &c.admin, Some(json!([{"op": "add", "path": "/extra/a", "value": 1}]))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(c.node("n1").await["reservation"], "localhost");
    c.svc.work_pass().await.unwrap();
    assert_eq!(c.node("n1").await["reservation"], Value::Null);

    // Bad bodies.
    for body in [
        json!({"driver": "warp"}),
        json!({"name": "n2"}),
        json!({"driver": "fake-hardware", "name": "has space"}),
        json!({"driver": "fake-hardware", "colour": "red"}),
        json!({"driver": "fake-hardware", "power_interface": "ipmitool"}),
        json!({"driver": "fake-hardware", "uuid": "not-a-uuid"}),
    ] {
        let (code, r) = c.call("POST", "/v1/nodes", &c.admin, Some(body.clone())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}: {r}");
    }
    let (code, _) = c.call("POST", "/v1/nodes", &c.admin, Some(json!({"driver": "fake-hardware", "name": "n1"}))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = c
        .call("PATCH", "/v1/nodes/n1", &c.admin, Some(json!([{"op": "replace", "path": "/uuid", "value": "x"}])))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) =
        c.call("POST", "/v1/ports", &c.admin, Some(json!({"node_uuid": "n1", "address": "52:54:00:zz:00:01"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) =
        c.call("PUT", "/v1/nodes/n1/states/power", &c.admin, Some(json!({"target": "power sideways"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Ironic's default policy: a project member sees nothing and may do nothing.
    let (_, member) = c.id.member("p1").await;
    for (method, path, body) in [
        ("GET", "/v1/nodes", None),
        ("GET", "/v1/nodes/n1", None),
        ("POST", "/v1/nodes", Some(json!({"driver": "fake-hardware"}))),
        ("PUT", "/v1/nodes/n1/states/power", Some(json!({"target": "power on"}))),
        ("GET", "/v1/ports", None),
        ("GET", "/v1/drivers", None),
    ] {
        let (code, _) = c.call(method, path, &member, body).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{method} {path}");
    }

    // Microversions: out of range is 406, with the range in the headers.
    let r =
        send(&c.router, "GET", "/v1/nodes", Some(&c.admin), None, &[("X-OpenStack-Ironic-API-Version", "1.99")]).await;
    assert_eq!(r.status, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(r.header("x-openstack-ironic-api-maximum-version").as_deref(), Some("1.31"));
    assert_eq!(r.header("x-openstack-ironic-api-minimum-version").as_deref(), Some("1.1"));
    // Before 1.11 a node is available as soon as it is made.
    let r = send(
        &c.router,
        "POST",
        "/v1/nodes",
        Some(&c.admin),
        Some(json!({"driver": "fake-hardware", "name": "old"})),
        &[("X-OpenStack-Ironic-API-Version", "1.10")],
    )
    .await;
    assert_eq!(r.json()["provision_state"], "available");
}

#[tokio::test]
async fn bad_requests_change_nothing_and_nodes_are_the_operators() {
    each_engine!(refusals);
}

async fn restart(engine: Engine) {
    let c = Cloud::start(engine).await;
    let id = c.create("n1").await;
    assert_eq!(c.step("n1", "manage").await, "manageable");
    assert_eq!(c.step("n1", "provide").await, "available");
    // The request is accepted, then the process dies before the conductor runs.
    assert_eq!(c.provision("n1", "active").await.0, StatusCode::ACCEPTED);
    assert_eq!(c.node("n1").await["provision_state"], "deploying");
    drop(c.svc.clone());
    let (svc2, _) = Cloud::service(&c.id, c.drivers.clone());
    assert_eq!(svc2.work_pass().await.unwrap(), 1);
    let n = c.node("n1").await;
    assert_eq!((n["provision_state"].as_str(), n["reservation"].clone()), (Some("active"), Value::Null));
    assert_eq!(c.drivers.fake.state(&id).unwrap().power, PowerState::On);
    // Nothing is done twice: a second pass finds no work.
    assert_eq!(svc2.work_pass().await.unwrap(), 0);
}

#[tokio::test]
async fn work_accepted_before_a_crash_is_finished_after_it() {
    each_engine!(restart);
}

async fn bmc_failures(engine: Engine) {
    let c = Cloud::start(engine).await;
    let id = c.create("n1").await;
    c.drivers.fake.set_broken(&id, true);
    // Verification fails: back to enroll, with the reason.
    assert_eq!(c.step("n1", "manage").await, "enroll");
    let n = c.node("n1").await;
    assert!(n["last_error"].as_str().unwrap().contains("does not answer"), "{n}");
    c.drivers.fake.set_broken(&id, false);
    assert_eq!(c.step("n1", "manage").await, "manageable");
    assert_eq!(c.node("n1").await["last_error"], Value::Null);
    assert_eq!(c.step("n1", "provide").await, "available");
    // A deploy whose BMC dies fails the deploy; the node can be undeployed after.
    c.drivers.fake.set_broken(&id, true);
    assert_eq!(c.step("n1", "active").await, "deploy failed");
    c.drivers.fake.set_broken(&id, false);
    assert_eq!(c.step("n1", "deleted").await, "available");

    // The power sync: a change behind the cloud's back is seen; a BMC that stops
    // answering puts the node into maintenance after three failed reads.
    let (code, _) = c.call("PUT", "/v1/nodes/n1/states/power", &c.admin, Some(json!({"target": "power on"}))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    c.svc.work_pass().await.unwrap();
    assert_eq!(c.node("n1").await["power_state"], "power on");
    c.drivers.fake.node(&id).set_power(stratus_baremetal::model::PowerTarget::Off).await.unwrap();
    assert_eq!(c.svc.power_sync_pass().await.unwrap(), 1);
    assert_eq!(c.node("n1").await["power_state"], "power off");
    c.drivers.fake.set_broken(&id, true);
    for _ in 0..3 {
        c.svc.power_sync_pass().await.unwrap();
    }
    let n = c.node("n1").await;
    assert_eq!(n["maintenance"], true);
    assert_eq!(n["fault"], "power failure");
    assert!(n["maintenance_reason"].as_str().unwrap().contains("sync_power_state"));
}

#[tokio::test]
async fn bmc_failures_leave_nodes_where_they_can_be_retried() {
    each_engine!(bmc_failures);
}

async fn lists(engine: Engine) {
    let c = Cloud::start(engine).await;
    for i in 0..5 {
        c.create(&format!("n{i}")).await;
    }
    c.step("n1", "manage").await;
    let (_, l) = c.call("GET", "/v1/nodes?limit=2", &c.admin, None).await;
    assert_eq!(l["nodes"].as_array().unwrap().len(), 2);
    assert!(l["next"].as_str().unwrap().contains("marker="), "{l}");
    assert_eq!(l["nodes"][0].as_object().unwrap().len(), 7, "the short view: {l}");
    let (_, l) = c.call("GET", "/v1/nodes?provision_state=manageable&fields=uuid,name", &c.admin, None).await;
    assert_eq!(l["nodes"], json!([{"uuid": c.node("n1").await["uuid"], "name": "n1"}]));
    let (_, l) = c.call("GET", "/v1/nodes/detail?sort_key=name&sort_dir=desc", &c.admin, None).await;
    let names: Vec<&str> = l["nodes"].as_array().unwrap().iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["n4", "n3", "n2", "n1", "n0"]);
    assert!(l["nodes"][0]["driver_info"].is_object());
    let (code, _) = c.call("GET", "/v1/nodes?sort_dir=sideways", &c.admin, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    let (code, p) =
        c.call("POST", "/v1/ports", &c.admin, Some(json!({"node_uuid": "n2", "address": "52:54:00:AA:00:01"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{p}");
    let (code, _) =
        c.call("POST", "/v1/ports", &c.admin, Some(json!({"node_uuid": "n3", "address": "52:54:00:aa:00:01"}))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, l) = c.call("GET", "/v1/nodes/n2/ports", &c.admin, None).await;
    assert_eq!(l["ports"], json!([{"uuid": p["uuid"], "address": "52:54:00:aa:00:01", "links": p["links"]}]));
    let (_, l) = c.call("GET", "/v1/ports/?node=n3", &c.admin, None).await;
    assert_eq!(l["ports"], json!([]));
    let (code, p2) = c
        .call(
            "PATCH",
            &format!("/v1/ports/{}", p["uuid"].as_str().unwrap()),
            &c.admin,
            Some(json!([{"op": "replace", "path": "/node_uuid", "value": "n3"},
                        {"op": "add", "path": "/extra/switch", "value": "sw1"}])),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{p2}");
    assert_eq!(p2["node_uuid"], c.node("n3").await["uuid"]);
    assert_eq!(p2["extra"]["switch"], "sw1");
    // Deleting a node takes its ports with it.
    assert_eq!(c.call("DELETE", "/v1/nodes/n3", &c.admin, None).await.0, StatusCode::NO_CONTENT);
    let (_, l) = c.call("GET", "/v1/ports", &c.admin, None).await;
    assert_eq!(l["ports"], json!([]));
}

#[tokio::test]
async fn lists_filter_page_and_sort_and_ports_follow_their_nodes() {
    each_engine!(lists);
}

/// A stand-in for an image URL: `/img` serves `bytes`.
async fn image_server(bytes: &'static [u8]) -> String {
    let app = axum::Router::new().route("/img", axum::routing::get(move || async move { bytes.to_vec() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/img", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A cloud whose conductor has a deploy ramdisk (two files; the tests play the ramdisk).
async fn direct_cloud(engine: Engine, timeout: std::time::Duration) -> Cloud {
    let id = Identity::start(engine, &[stratus_baremetal::migrations::MIGRATIONS]).await;
    let work = std::env::temp_dir().join(format!("stratus-bm-direct-{}", uuid_text()));
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("vmlinuz"), b"kernel").unwrap();
    std::fs::write(work.join("initrd"), b"ramdisk").unwrap();
    let drivers = Drivers::new(reqwest::Client::new());
    let mut settings = Settings { public_url: "http://bm".into(), ..Default::default() };
    settings.power_timeout = std::time::Duration::from_secs(2);
    settings.deploy = stratus_baremetal::app::deploy::DeploySettings {
        agent_url: "http://10.9.0.1:6385".into(),
        kernel: Some(work.join("vmlinuz")),
        ramdisk: Some(work.join("initrd")),
        kernel_args: "console=ttyS0".into(),
        callback_timeout: timeout,
        work_dir: work.clone(),
    };
    let svc = BaremetalService::new(
        stratus_baremetal::store::Store::new(id.db.clone()),
        id.bus.clone(),
        drivers.clone(),
        settings,
        None,
    );
    let router = stratus_baremetal::api::router(svc.clone(), id.identity.verifier.clone(), 1 << 20);
    let admin = id.admin().await;
    Cloud { id, svc, drivers, router, admin, work: Some(work) }
}

fn uuid_text() -> String {
    format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
        .replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

const MAC: &str = "52:54:00:12:34:56";

impl Cloud {
    /// A fake-hardware node with the direct deploy and a port, made manageable.
    async fn direct_node(&self, name: &str) -> String {
        let body = json!({"driver": "fake-hardware", "name": name, "deploy_interface": "direct"});
        let (code, n) = self.call("POST", "/v1/nodes", &self.admin, Some(body)).await;
        assert_eq!(code, StatusCode::CREATED, "{n}");
        let (code, p) =
            self.call("POST", "/v1/ports", &self.admin, Some(json!({"node_uuid": name, "address": MAC}))).await;
        assert_eq!(code, StatusCode::CREATED, "{p}");
        assert_eq!(self.step(name, "manage").await, "manageable");
        n["uuid"].as_str().unwrap().to_string()
    }

    /// What a network-booting node with the port's MAC is told, and the token in it.
    async fn ipxe(&self) -> (String, Option<String>) {
        let r = send(&self.router, "GET", &format!("/v1/agent/ipxe?mac={MAC}"), None, None, &[]).await;
        let script = String::from_utf8(r.body.clone()).unwrap();
        let token = script.split_whitespace().find_map(|w| w.strip_prefix("stratus.token=")).map(str::to_string);
        (script, token)
    }

    /// The ramdisk's calls: its task, and its report.
    async fn agent(&self, id: &str, token: &str, what: &str, report: Option<&str>) -> (StatusCode, String) {
        let path = format!("/v1/agent/{id}/{what}?token={token}");
        let req = match report {
            Some(text) => axum::http::Request::post(&path).body(axum::body::Body::from(text.to_string())),
            None => axum::http::Request::get(&path).body(axum::body::Body::empty()),
        };
        tower_oneshot(&self.router, req.unwrap()).await
    }
}

async fn tower_oneshot(router: &axum::Router, req: axum::http::Request<axum::body::Body>) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).to_string())
}

async fn direct(engine: Engine) {
    let c = direct_cloud(engine, std::time::Duration::from_secs(600)).await;
    let id = c.direct_node("n1").await;
    // Nothing to do yet: the node boots from its disk; a MAC no port has is unknown.
    assert!(c.ipxe().await.0.contains("sanboot"));
    let r = send(&c.router, "GET", "/v1/agent/ipxe?mac=52:54:00:00:00:09", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = send(&c.router, "GET", "/v1/agent/boot.ipxe", None, None, &[]).await;
    assert!(String::from_utf8_lossy(&r.body)
        .contains("chain --autofree http://10.9.0.1:6385/v1/agent/ipxe?mac=${net${i}/mac}"));

    // provide: cleaning boots the ramdisk, which wipes, reports, and the node rests.
    let (code, _) = c.provision("n1", "provide").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    c.svc.work_pass().await.unwrap();
    assert_eq!(c.node("n1").await["provision_state"], "clean wait");
    c.svc.work_pass().await.unwrap();
    let hw = c.drivers.fake.state(&id).unwrap();
    assert_eq!((hw.power, hw.boot_device), (PowerState::On, BootDevice::Pxe), "booted into the ramdisk");
    let (script, token) = c.ipxe().await;
    let token = token.expect("the script carries the run's token");
    assert!(
        script.contains("kernel http://10.9.0.1:6385/v1/agent/kernel stratus.api=http://10.9.0.1:6385"),
        "{script}"
    );
    assert_eq!(c.agent(&id, "not-the-token", "task", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.agent(&id, &token, "task", None).await.1.trim(), "wipe");
    let r = send(&c.router, "GET", "/v1/agent/ramdisk", None, None, &[]).await;
    assert_eq!(r.body, b"ramdisk");
    assert_eq!(c.agent(&id, &token, "result", Some("ok")).await.0, StatusCode::NO_CONTENT);
    c.svc.work_pass().await.unwrap();
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "available");
    assert_eq!(c.drivers.fake.state(&id).unwrap().power, PowerState::Off);
    // The token died with the run.
    assert_eq!(c.agent(&id, &token, "task", None).await.0, StatusCode::NOT_FOUND);

    // deploy: the image comes from a URL (its md5 checked), is served to the ramdisk,
    // which writes it and reports; the node then boots from its disk.
    let bytes: &'static [u8] = b"a whole-disk image";
    let url = image_server(bytes).await;
    let md5 = "62a1ae8fa8a8c5bb9a1c2c8f0fe4c5d1";
    let patch = json!([{"op": "add", "path": "/instance_info/image_source", "value": url},
                       {"op": "add", "path": "/instance_info/image_checksum", "value": md5}]);
    assert_eq!(c.call("PATCH", "/v1/nodes/n1", &c.admin, Some(patch)).await.0, StatusCode::OK);
    assert_eq!(c.provision("n1", "active").await.0, StatusCode::ACCEPTED);
    c.svc.work_pass().await.unwrap();
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "deploy failed", "the checksum does not match: {n}");
    assert!(n["last_error"].as_str().unwrap().contains("checksum"), "{n}");

    let good = format!("{:x}", md5::Md5::digest(bytes));
    let patch = json!([{"op": "replace", "path": "/instance_info/image_checksum", "value": good}]);
    assert_eq!(c.call("PATCH", "/v1/nodes/n1", &c.admin, Some(patch)).await.0, StatusCode::OK);
    assert_eq!(c.provision("n1", "active").await.0, StatusCode::ACCEPTED);
    c.svc.work_pass().await.unwrap();
    assert_eq!(c.node("n1").await["provision_state"], "wait call-back");
    c.svc.work_pass().await.unwrap();
    let (_, token) = c.ipxe().await;
    let token = token.unwrap();
    let task = c.agent(&id, &token, "task", None).await.1;
    let words: Vec<&str> = task.split_whitespace().collect();
    assert_eq!(words[0], "write", "{task}");
    assert_eq!(words[2], format!("{:x}", sha2::Sha256::digest(bytes)));
    assert_eq!(words[3], bytes.len().to_string());
    let image_path = words[1].strip_prefix("http://10.9.0.1:6385").unwrap();
    let r = send(&c.router, "GET", image_path, None, None, &[]).await;
    assert_eq!(r.body, bytes);
    assert_eq!(c.agent(&id, &token, "result", Some("ok")).await.0, StatusCode::NO_CONTENT);
    // A second report of the same run changes nothing.
    assert_eq!(c.agent(&id, &token, "result", Some("error late")).await.0, StatusCode::NOT_FOUND);
    c.svc.work_pass().await.unwrap();
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "active", "{n}");
    let hw = c.drivers.fake.state(&id).unwrap();
    assert_eq!((hw.power, hw.boot_device), (PowerState::On, BootDevice::Disk));
    assert_eq!(n["driver_internal_info"], json!({}), "the token is never shown");

    // A ramdisk that fails says why; the deploy fails with it.
    assert_eq!(c.step("n1", "deleted").await, "clean wait");
    c.svc.work_pass().await.unwrap();
    let (_, token) = c.ipxe().await;
    let token = token.unwrap();
    assert_eq!(c.agent(&id, &token, "result", Some("error no disk found")).await.0, StatusCode::NO_CONTENT);
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "clean failed");
    assert!(n["last_error"].as_str().unwrap().contains("no disk found"), "{n}");
}

#[tokio::test]
async fn the_direct_deploy_talks_to_its_ramdisk_through_the_api() {
    each_engine!(direct);
}

async fn callback_timeout(engine: Engine) {
    let c = direct_cloud(engine, std::time::Duration::from_millis(1)).await;
    let id = c.direct_node("n1").await;
    assert_eq!(c.provision("n1", "provide").await.0, StatusCode::ACCEPTED);
    c.svc.work_pass().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.svc.work_pass().await.unwrap();
    let n = c.node("n1").await;
    assert_eq!(n["provision_state"], "clean failed");
    assert!(n["last_error"].as_str().unwrap().contains("did not report"), "{n}");
    assert_eq!(c.drivers.fake.state(&id).unwrap().power, PowerState::Off);
}

#[tokio::test]
async fn a_ramdisk_that_never_reports_fails_the_step_in_time() {
    each_engine!(callback_timeout);
}
