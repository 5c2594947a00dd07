//! The client library against a whole cloud started in-process (stratusd's all-in-one:
//! SQLite, the in-process bus, the fake hypervisor, the file volume backend), used as a
//! program would use it: credentials from the clouds.yaml the cloud writes, the token
//! cache, resources found by name, every page of a list, waiting, and the errors.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;
use stratus_client::resources::{Kind, FLAVOR, IMAGE, NETWORK, PROJECT, VOLUME};
use stratus_client::session::Method;
use stratus_client::wait::{wait_for, WaitError, GONE};
use stratus_client::{CloudConfig, Error, Session};

const PASSWORD: &str = "client-test-admin";

struct Cloud {
    dir: PathBuf,
    _serving: stratusd::runtime::Serving,
}

impl Cloud {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("stratus-client-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Tokens are cached under the test's own directory, not the user's.
        std::env::set_var("XDG_CACHE_HOME", dir.join("cache"));
        // Free ports: bound to learn them, released for the cloud to bind.
        let ports: Vec<u16> = {
            let held: Vec<_> = (0..8).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
            held.iter().map(|l| l.local_addr().unwrap().port()).collect()
        };
        let mut env: Vec<(String, String)> = [
            "IDENTITY__PORT",
            "IMAGE__PORT",
            "NETWORK__PORT",
            "COMPUTE__PORT",
            "COMPUTE__METADATA_PORT",
            "VOLUME__PORT",
            "RESERVATION__PORT",
            "BAREMETAL__PORT",
        ]
        .iter()
        .zip(&ports)
        .map(|(k, p)| (format!("STRATUS_{k}"), p.to_string()))
        .collect();
        env.push(("STRATUS_SERVER__DATA_DIR".into(), dir.join("data").display().to_string()));
        env.push(("STRATUS_NETWORK_AGENT__ENABLED".into(), "false".into()));
        env.push(("STRATUS_COMPUTE_AGENT__DRIVER".into(), "fake".into()));
        env.push(("STRATUS_LOG__LEVEL".into(), "warn".into()));
        let config = stratusd::config::Config::from_parts("", env).unwrap();
        let cloud = stratusd::all_in_one(config, Some(PASSWORD.into())).await.unwrap();
        let auth_url = format!("{}/v3", cloud.rt.identity_public_url());
        stratusd::runtime::write_client_files(&dir, &auth_url, &cloud.rt.config.identity.region, PASSWORD).unwrap();
        let serving = stratusd::runtime::bind_all(cloud.services).await.unwrap();
        Self { dir, _serving: serving }
    }

    fn config(&self) -> CloudConfig {
        CloudConfig::from_clouds_yaml(&self.dir.join("clouds.yaml"), "stratus").unwrap()
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn post(s: &Session, service: &str, path: &str, body: Value) -> Value {
    s.call(Method::POST, service, path, Some(&body), &[]).await.unwrap()
}

async fn names(kind: &Kind, s: &Session, path: &str) -> Vec<String> {
    let mut n: Vec<String> =
        kind.list_from(s, path).await.unwrap().iter().map(|r| r["name"].as_str().unwrap_or("").to_string()).collect();
    n.sort();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_uses_a_whole_cloud_through_the_library() {
    let cloud = Cloud::start().await;

    // Credentials from clouds.yaml; the second session reuses the cached token.
    let s = Session::connect(cloud.config()).await.unwrap();
    assert!(!s.from_cache());
    let again = Session::connect(cloud.config()).await.unwrap();
    assert!(again.from_cache() && again.token() == s.token());
    let admin_project = PROJECT.find(&s, "admin").await.unwrap();
    assert_eq!(s.project_id().as_deref(), admin_project["id"].as_str());
    // A wrong password is an authentication error that says what to check.
    let mut wrong = cloud.config();
    wrong.password = Some("not-it".into());
    let e = Session::connect(wrong).await.err().unwrap();
    assert!(matches!(e, Error::Auth(_)), "{e}");
    assert!(e.to_string().contains("check the password"), "{e}");
    // A service the catalog lacks.
    assert!(matches!(s.endpoint("container-infra"), Err(Error::NoEndpoint { .. })));

    // Find by name or ID; none, or several, by that name are errors of their own.
    for n in ["lib-a", "lib-b", "lib-c", "lib-twin", "lib-twin"] {
        post(&s, "network", "/v2.0/networks", json!({"network": {"name": n}})).await;
    }
    let a = NETWORK.find(&s, "lib-a").await.unwrap();
    assert_eq!(NETWORK.find(&s, a["id"].as_str().unwrap()).await.unwrap()["name"], "lib-a");
    let e = NETWORK.find(&s, "lib-none").await.unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("no network"), "{e}");
    let e = NETWORK.find(&s, "lib-twin").await.unwrap_err();
    assert!(matches!(e, Error::Ambiguous { count: 2, .. }), "{e}");

    // Every page, whatever each service's paging looks like: Neutron's and Nova's
    // `<key>_links`, Glance's `next`, Keystone's `links.next`.
    let all = names(&NETWORK, &s, "/v2.0/networks").await;
    assert_eq!(names(&NETWORK, &s, "/v2.0/networks?limit=1").await, all);
    assert!(all.len() >= 5, "{all:?}");
    for (n, ram) in [("lib.small", 512), ("lib.large", 2048)] {
        post(&s, "compute", "/flavors", json!({"flavor": {"name": n, "ram": ram, "vcpus": 1, "disk": 1}})).await;
    }
    let flavors = names(&FLAVOR, &s, "/flavors/detail").await;
    assert!(flavors.len() >= 2, "{flavors:?}");
    assert_eq!(names(&FLAVOR, &s, "/flavors/detail?limit=1").await, flavors);
    for n in ["lib-img-1", "lib-img-2", "lib-img-3"] {
        post(&s, "image", "/v2/images", json!({"name": n, "disk_format": "raw", "container_format": "bare"})).await;
    }
    let images = names(&IMAGE, &s, "/v2/images").await;
    assert_eq!(names(&IMAGE, &s, "/v2/images?limit=1").await, images);
    assert!(images.len() >= 3);
    let projects = names(&PROJECT, &s, "/projects").await;
    assert!(projects.contains(&"admin".to_string()), "{projects:?}");

    // Waiting: two volumes made and waited for, listed a page at a time, changed,
    // deleted and waited for until gone.
    let mut ids = Vec::new();
    for n in ["lib-vol-1", "lib-vol-2"] {
        let v = post(&s, "volumev3", "/volumes", json!({"volume": {"size": 1, "name": n}})).await;
        ids.push(v["volume"]["id"].as_str().unwrap().to_string());
    }
    let mut statuses = Vec::new();
    let ready = wait_for(&s, &VOLUME, &ids[0], "available", Duration::from_secs(60), |seen| {
        statuses.push(seen.status.to_string())
    })
    .await
    .unwrap();
    assert_eq!(ready["name"], "lib-vol-1");
    assert_eq!(statuses.last().map(String::as_str), Some("available"), "the observer saw every poll: {statuses:?}");
    wait_for(&s, &VOLUME, &ids[1], "available", Duration::from_secs(60), |_| {}).await.unwrap();
    assert_eq!(names(&VOLUME, &s, "/volumes/detail?limit=1").await, vec!["lib-vol-1", "lib-vol-2"]);
    let mut fields = serde_json::Map::new();
    fields.insert("name".into(), json!("lib-vol-renamed"));
    let changed = VOLUME.update(&s, &ids[0], fields, &[("tier".into(), Some("gold".into()))]).await.unwrap();
    assert_eq!(
        (changed["name"].clone(), changed["metadata"]["tier"].clone()),
        (json!("lib-vol-renamed"), json!("gold"))
    );
    // A status that never comes: the deadline, with what was seen.
    let e = wait_for(&s, &VOLUME, &ids[1], "in-use", Duration::from_millis(300), |_| {}).await.unwrap_err();
    assert!(matches!(&e, WaitError::TimedOut { status, .. } if status == "available"), "{e}");
    VOLUME.delete(&s, &ids[0]).await.unwrap();
    wait_for(&s, &VOLUME, &ids[0], GONE, Duration::from_secs(60), |_| {}).await.unwrap();
    // Gone while something else was awaited.
    VOLUME.delete(&s, &ids[1]).await.unwrap();
    let e = wait_for(&s, &VOLUME, &ids[1], "available", Duration::from_secs(60), |_| {}).await.unwrap_err();
    assert!(matches!(e, WaitError::Gone { .. }), "{e}");

    // A service's own refusal, with its message and status.
    let e = s.get("compute", "/servers/00000000-0000-0000-0000-000000000000").await.unwrap_err();
    assert!(matches!(&e, Error::Api { status: 404, message } if !message.is_empty()), "{e}");
    let e =
        s.call(Method::POST, "volumev3", "/volumes", Some(&json!({"volume": {"size": -1}})), &[]).await.unwrap_err();
    assert!(matches!(e, Error::Api { status: 400, .. }), "{e}");
}
