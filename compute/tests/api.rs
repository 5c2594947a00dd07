//! Compute API tests: in-process against a real database (SQLite, and PostgreSQL when
//! STRATUS_TEST_POSTGRES is set), with identity, image and network on loopback and
//! fake hosts on the in-process bus.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use stratus_common::db::{Engine, RowExt};
use stratus_common::saga::SagaDef;
use support::{Cloud, Options};

fn server_body(image: &str, net: &str, name: &str) -> Value {
    json!({"server": {"name": name, "imageRef": image, "flavorRef": "m1", "networks": [{"uuid": net}]}})
}

async fn create(c: &Cloud, token: &str, body: Value) -> String {
    let r = c.call("POST", "/servers", token, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_string()
}

/// Nothing of the server is left: no ports, no host claims, no quota.
async fn assert_nothing_left(c: &Cloud, project: &str, server: &str) {
    assert!(c.ports_of(server).await.is_empty(), "ports left behind");
    assert_eq!(c.claimed().await, (0, 0), "host claims left behind");
    let u = c.usage(project).await;
    assert_eq!(u.get("instances").copied().unwrap_or(0), 0, "quota left behind: {u:?}");
    assert_eq!(u.get("cores").copied().unwrap_or(0), 0);
}

async fn flavors_keypairs_and_versions(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (_, member) = c.member("p1").await;
    let f = c
        .call(
            "POST",
            "/flavors",
            &admin,
            Some(json!({"flavor": {"name": "small", "vcpus": 2, "ram": 1024, "disk": 10}})),
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.body);
    let fid = f.body["flavor"]["id"].as_str().unwrap().to_string();
    let denied = c
        .call("POST", "/flavors", &member, Some(json!({"flavor": {"name": "x", "vcpus": 1, "ram": 1, "disk": 1}})))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert!(denied.body["forbidden"]["message"].is_string(), "Nova error shape: {}", denied.body);
    let bad = c
        .call("POST", "/flavors", &admin, Some(json!({"flavor": {"name": "y", "vcpus": 0, "ram": 1, "disk": 1}})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["badRequest"]["message"].is_string());
    // 2.1: the plain list has id, name, links only; the detail has no extra_specs.
    let list = c.call("GET", "/flavors", &member, None).await;
    let keys: Vec<&String> = list.body["flavors"][0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let d = c.call("GET", &format!("/flavors/{fid}"), &member, None).await;
    assert!(d.body["flavor"].get("extra_specs").is_none() && d.body["flavor"].get("description").is_none());
    assert_eq!(d.body["flavor"]["swap"], json!(""));
    let d = c.call_v("2.61", "GET", &format!("/flavors/{fid}"), &member, None).await;
    assert_eq!(d.body["flavor"]["extra_specs"], json!({}));
    let too_new = c.call_v("2.500", "GET", "/flavors", &member, None).await;
    assert_eq!(too_new.status, StatusCode::NOT_ACCEPTABLE);
    let missing = c.call("GET", "/flavors/nope", &member, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body["itemNotFound"]["message"].is_string());
    // Private flavors: hidden until access is given.
    let p = c.call("POST", "/flavors", &admin, Some(json!({"flavor": {"name": "priv", "vcpus": 1, "ram": 64, "disk": 1, "os-flavor-access:is_public": false}}))).await;
    let pid = p.body["flavor"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.call("GET", &format!("/flavors/{pid}"), &member, None).await.status, StatusCode::NOT_FOUND);

    // Keypairs: generated below 2.92, imported, unique per user, counted.
    let k = c.call_v("2.10", "POST", "/os-keypairs", &member, Some(json!({"keypair": {"name": "gen"}}))).await;
    assert_eq!(k.status, StatusCode::CREATED, "{}", k.body);
    assert!(k.body["keypair"]["private_key"].as_str().unwrap().contains("OPENSSH PRIVATE KEY"));
    let public = k.body["keypair"]["public_key"].as_str().unwrap().to_string();
    let dup = c
        .call_v(
            "2.10",
            "POST",
            "/os-keypairs",
            &member,
            Some(json!({"keypair": {"name": "gen", "public_key": public}})),
        )
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let junk = c
        .call_v(
            "2.10",
            "POST",
            "/os-keypairs",
            &member,
            Some(json!({"keypair": {"name": "j", "public_key": "ssh-rsa !!!"}})),
        )
        .await;
    assert_eq!(junk.status, StatusCode::BAD_REQUEST);
    let need = c.call_v("2.92", "POST", "/os-keypairs", &member, Some(json!({"keypair": {"name": "n"}}))).await;
    assert_eq!(need.status, StatusCode::BAD_REQUEST);
    let imported = c
        .call_v("2.92", "POST", "/os-keypairs", &admin, Some(json!({"keypair": {"name": "gen", "public_key": public}})))
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "keypair names are per user");
    assert_eq!(c.call("GET", "/os-keypairs", &member, None).await.body["keypairs"].as_array().unwrap().len(), 1);
    assert_eq!(c.call_v("2.10", "DELETE", "/os-keypairs/gen", &member, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v("2.10", "DELETE", "/os-keypairs/gen", &member, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn flavors_keypairs_versions() {
    each_engine!(flavors_keypairs_and_versions);
}

async fn lifecycle(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let (_, other) = c.member("p2").await;
    let id = create(&c, &token, server_body(&image, &net, "vm")).await;
    let s = c.wait_status(&token, &id, "ACTIVE").await;
    assert_eq!(s["OS-EXT-STS:power_state"], json!(1));
    assert!(s["addresses"]["shared"][0]["addr"].as_str().unwrap().starts_with("10.9.0."));
    assert_eq!(c.ports_of(&id).await.len(), 1);
    assert_eq!(c.claimed().await, (1, 1));
    assert_eq!(c.usage(&project).await["instances"], 1);
    // 2.47 embeds the flavor; 2.1 links to it.
    let v = c.call_v("2.47", "GET", &format!("/servers/{id}"), &token, None).await;
    assert_eq!(v.body["server"]["flavor"]["vcpus"], json!(1));
    assert!(s["flavor"]["id"].is_string());
    // Another project sees nothing and can do nothing.
    assert_eq!(c.call("GET", &format!("/servers/{id}"), &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &other, None).await.status, StatusCode::NOT_FOUND);
    assert!(c.call("GET", "/servers", &other, None).await.body["servers"].as_array().unwrap().is_empty());

    let stop = c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-stop": null}))).await;
    assert_eq!(stop.status, StatusCode::ACCEPTED, "{}", stop.body);
    c.wait_status(&token, &id, "SHUTOFF").await;
    let again = c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-stop": null}))).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-start": null}))).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let log = c
        .call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-getConsoleOutput": {"length": 50}})))
        .await;
    assert!(log.body["output"].as_str().unwrap().contains("booting"), "{}", log.body);
    let actions = c.call("GET", &format!("/servers/{id}/os-instance-actions"), &token, None).await;
    let names: Vec<&str> =
        actions.body["instanceActions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(names.contains(&"create") && names.contains(&"stop") && names.contains(&"start"), "{names:?}");

    // A guest shut down from inside shows SHUTOFF once its host reports.
    let host = s["OS-EXT-SRV-ATTR:host"].as_str().map(str::to_string);
    let host = match host {
        Some(h) => h,
        None => c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap(),
    };
    let idx: usize = host.trim_start_matches("host-").parse().unwrap();
    assert!(c.drivers[idx].set_power_state(&id, 4));
    let report = c.agent.report(c.agent.host(&host).unwrap()).await.unwrap();
    c.compute.on_report(&report).await.unwrap();
    c.wait_status(&token, &id, "SHUTOFF").await;

    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
    assert_eq!(c.guests().await, 0);
}

#[tokio::test]
async fn server_lifecycle() {
    each_engine!(lifecycle);
}

async fn quota_race(engine: Engine) {
    let opts = Options {
        fake: stratus_compute_agent::driver::fake::FakeOptions {
            capacity: stratus_compute_agent::driver::Capacity {
                vcpus: 64,
                ram_mb: 65536,
                disk_gb: 1000,
                hypervisor_type: "fake".into(),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    c.set_limit(&project, "instances", 10).await;
    c.set_limit(&project, "cores", 100).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let body = server_body(&image, &net, &format!("vm{i}"));
        tasks.push(c.call("POST", "/servers", &token, Some(body)));
    }
    let results = futures::future::join_all(tasks).await;
    let accepted: Vec<String> = results
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .map(|r| r.body["server"]["id"].as_str().unwrap().to_string())
        .collect();
    let refused = results.iter().filter(|r| r.status == StatusCode::FORBIDDEN).count();
    assert_eq!((accepted.len(), refused), (10, 10), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    for id in &accepted {
        c.wait_status(&token, id, "ACTIVE").await;
    }
    assert_eq!(c.usage(&project).await["instances"], 10);
    for id in &accepted {
        c.call("DELETE", &format!("/servers/{id}"), &token, None).await;
    }
    for id in &accepted {
        c.wait_status(&token, id, "GONE").await;
    }
    assert_nothing_left(&c, &project, &accepted[0]).await;
}

#[tokio::test]
async fn quota_is_enforced_atomically() {
    each_engine!(quota_race);
}

async fn failures_unwind(engine: Engine) {
    // Every host fails every build: retried elsewhere, then ERROR, nothing kept.
    let c = Cloud::start_with(engine, Options { failing_hosts: vec![0, 1], ..Default::default() }).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let id = create(&c, &token, server_body(&image, &net, "doomed")).await;
    let s = c.wait_status(&token, &id, "ERROR").await;
    assert!(s["fault"]["message"].as_str().unwrap().contains("injected spawn failure"), "{}", s["fault"]);
    assert_nothing_left(&c, &project, &id).await;
    // An ERROR server deletes cleanly, and twice is harmless.
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;

    // The network service refuses the port (address outside the subnet).
    let mut body = server_body(&image, &net, "badip");
    body["server"]["networks"][0]["fixed_ip"] = json!("192.0.2.9");
    let id = create(&c, &token, body).await;
    let s = c.wait_status(&token, &id, "ERROR").await;
    assert!(!s["fault"]["message"].as_str().unwrap().is_empty());
    assert_nothing_left(&c, &project, &id).await;

    // No host is big enough.
    let admin = c.admin().await;
    c.call(
        "POST",
        "/flavors",
        &admin,
        Some(json!({"flavor": {"name": "huge", "vcpus": 1000, "ram": 512, "disk": 1, "id": "huge"}})),
    )
    .await;
    let mut body = server_body(&image, &net, "huge");
    body["server"]["flavorRef"] = json!("huge");
    c.set_limit(&project, "cores", 5000).await;
    let id = create(&c, &token, body).await;
    let s = c.wait_status(&token, &id, "ERROR").await;
    assert!(s["fault"]["message"].as_str().unwrap().contains("No valid host"), "{}", s["fault"]);
    assert_nothing_left(&c, &project, &id).await;

    // Bad requests change nothing.
    for body in [
        json!({"server": {"name": "x", "imageRef": "nope", "flavorRef": "m1", "networks": [{"uuid": net}]}}),
        json!({"server": {"name": "x", "imageRef": image, "flavorRef": "nope", "networks": [{"uuid": net}]}}),
        json!({"server": {"name": "x", "imageRef": image, "flavorRef": "m1", "networks": [{"uuid": "nope"}]}}),
        json!({"server": {"name": "", "imageRef": image, "flavorRef": "m1"}}),
        json!({"server": {"name": "x", "imageRef": image, "flavorRef": "m1", "key_name": "nope"}}),
        json!({"nothing": {}}),
    ] {
        let r = c.call("POST", "/servers", &token, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body} → {}", r.body);
    }
    let list = c.call("GET", "/servers", &token, None).await;
    assert_eq!(list.body["servers"].as_array().unwrap().len(), 2, "only the two ERROR servers remain");
}

#[tokio::test]
async fn failures_unwind_and_leave_nothing() {
    each_engine!(failures_unwind);
}

async fn reschedule(engine: Engine) {
    let c = Cloud::start_with(engine, Options { failing_hosts: vec![0], ..Default::default() }).await;
    let (image, net, _) = c.basics().await;
    let (_, token) = c.member("p1").await;
    for i in 0..4 {
        let id = create(&c, &token, server_body(&image, &net, &format!("r{i}"))).await;
        let s = c.wait_status(&token, &id, "ACTIVE").await;
        let host = c.compute.store.server_get(&id).await.unwrap().unwrap().host;
        assert_eq!(host.as_deref(), Some("host-1"), "{s}");
        let ports = c.ports_of(&id).await;
        assert_eq!(ports[0]["binding:host_id"], json!("host-1"), "the port follows the server");
    }
    let (_, n) = c.claimed().await;
    assert_eq!(n, 4, "no claim left on the failed host");
}

#[tokio::test]
async fn failed_builds_reschedule() {
    each_engine!(reschedule);
}

async fn saga_idempotency(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let id = create(&c, &token, server_body(&image, &net, "vm")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let row = sqlx::query("SELECT id FROM compute_sagas WHERE subject = $1 AND kind = 'create'")
        .bind(&id)
        .fetch_one(&c.compute.store.db.pool)
        .await
        .unwrap();
    let mut saga = c.compute.sagas.get(&row.text("id")).await.unwrap().unwrap();
    let def = stratus_compute::app::create::CreateSaga(std::sync::Arc::downgrade(&c.compute));
    // Every step again: each succeeds and changes nothing.
    for step in 0..def.steps().len() {
        let out = def.run(step, &mut saga).await.unwrap();
        assert!(matches!(out, stratus_common::saga::Outcome::Next), "step {step}: {out:?}");
    }
    assert_eq!(c.claimed().await, (1, 1));
    assert_eq!(c.ports_of(&id).await.len(), 1);
    // Every undo, twice: the second pass finds nothing to do and fails on nothing.
    for _ in 0..2 {
        for step in (0..def.steps().len()).rev() {
            def.undo(step, &mut saga).await.unwrap();
        }
    }
    assert!(c.ports_of(&id).await.is_empty());
    assert_eq!(c.claimed().await, (0, 0));
    // The delete saga after a full unwind still ends cleanly.
    c.call("DELETE", &format!("/servers/{id}"), &token, None).await;
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
}

#[tokio::test]
async fn saga_steps_are_idempotent_and_undo_twice() {
    each_engine!(saga_idempotency);
}

async fn delete_during_build(engine: Engine) {
    let mut opts = Options::default();
    opts.fake.boot_delay = std::time::Duration::from_millis(300);
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let id = create(&c, &token, server_body(&image, &net, "short")).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
    // The guest the interrupted build made is destroyed too.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for h in 0..2 {
        let r = c.agent.report(c.agent.host(&format!("host-{h}")).unwrap()).await.unwrap();
        c.compute.on_report(&r).await.unwrap();
    }
    for _ in 0..100 {
        if c.guests().await == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("a guest was left on a host");
}

#[tokio::test]
async fn delete_during_build_unwinds() {
    each_engine!(delete_during_build);
}
