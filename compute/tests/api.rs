//! Compute API tests: in-process against a real database (SQLite, and PostgreSQL when
//! STRATUS_TEST_POSTGRES is set), with identity, image and network on loopback and
//! fake hosts on the in-process bus.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use stratus_common::db::{Engine, RowExt};
use stratus_compute::store::{Allocation, HostClaim};
use stratus_test_support::each_engine;
use support::{eventually, Cloud, Options, Resp};

fn server_body(image: &str, net: &str, name: &str) -> Value {
    json!({"server": {"name": name, "imageRef": image, "flavorRef": "m1", "networks": [{"uuid": net}]}})
}

async fn create(c: &Cloud, token: &str, body: Value) -> String {
    let r = c.call("POST", "/servers", token, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // Exactly Nova's keys: Tempest's schema refuses any other (a `name` broke it).
    let mut keys: Vec<&str> = r.body["server"].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["OS-DCF:diskConfig", "adminPass", "id", "links", "security_groups"], "{}", r.body);
    r.body["server"]["id"].as_str().unwrap().to_string()
}

/// Nothing of the server is left: no ports, no host claims, no quota.
async fn assert_nothing_left(c: &Cloud, project: &str, server: &str) {
    assert!(c.ports_of(server).await.is_empty(), "ports left behind");
    assert_eq!(c.claimed().await, (0, 0), "host claims left behind");
    let u = c.usage(project).await;
    assert_eq!(u.get("instances").copied().unwrap_or(0), 0, "quota left behind: {u:?}");
    assert_eq!(u.get("cores").copied().unwrap_or(0), 0);
    // Every saga of the server ended, and every instance action of it finished.
    assert!(c.compute.sagas.unfinished(Some(server)).await.unwrap().is_empty(), "saga left unfinished");
    let open = sqlx::query("SELECT action FROM compute_actions WHERE server_id = $1 AND finish_time IS NULL")
        .bind(server)
        .fetch_all(&c.compute.store.db.pool)
        .await
        .unwrap();
    assert!(
        open.is_empty(),
        "instance actions left open: {:?}",
        open.iter().map(|r| r.text("action")).collect::<Vec<_>>()
    );
}

async fn flavors_keypairs_and_versions(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (project, member) = c.member("p1").await;
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
    for id in ["a/b", " lead", "nul\u{0}"] {
        let body = json!({"flavor": {"name": "z", "id": id, "vcpus": 1, "ram": 1, "disk": 1}});
        assert_eq!(c.call("POST", "/flavors", &admin, Some(body)).await.status, StatusCode::BAD_REQUEST, "{id:?}");
    }
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
    let listed = |body: &Value| body["flavors"].as_array().unwrap().iter().any(|f| f["id"] == pid.as_str());
    assert!(!listed(&c.call("GET", "/flavors/detail", &member, None).await.body));
    let action = format!("/flavors/{pid}/action");
    let grant = c.call("POST", &action, &admin, Some(json!({"addTenantAccess": {"tenant": project}}))).await;
    assert_eq!(grant.status, StatusCode::OK, "{}", grant.body);
    // Listed to the project's members from then on (as Nova lists them, whatever
    // is_public a member asks for), until the access is taken back.
    assert!(listed(&c.call("GET", "/flavors/detail", &member, None).await.body));
    assert!(listed(&c.call("GET", "/flavors?is_public=false", &member, None).await.body));
    assert_eq!(c.call("GET", &format!("/flavors/{pid}"), &member, None).await.status, StatusCode::OK);
    let revoke = c.call("POST", &action, &admin, Some(json!({"removeTenantAccess": {"tenant": project}}))).await;
    assert_eq!(revoke.status, StatusCode::OK, "{}", revoke.body);
    assert!(!listed(&c.call("GET", "/flavors/detail", &member, None).await.body));

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
    let unpause = c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"unpause": null}))).await;
    assert_eq!(unpause.status, StatusCode::CONFLICT, "a running server cannot be unpaused");
    let pause = c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"pause": null}))).await;
    assert_eq!(pause.status, StatusCode::ACCEPTED, "{}", pause.body);
    let paused = c.wait_status(&token, &id, "PAUSED").await;
    assert_eq!(paused["OS-EXT-STS:power_state"], json!(3));
    assert_eq!(paused["OS-EXT-STS:vm_state"], json!("paused"));
    let stop = c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-stop": null}))).await;
    assert_eq!(stop.status, StatusCode::CONFLICT, "a paused server is unpaused, not stopped");
    c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"unpause": null}))).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let log = c
        .call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"os-getConsoleOutput": {"length": 50}})))
        .await;
    assert!(log.body["output"].as_str().unwrap().contains("booting"), "{}", log.body);
    let actions = c.call("GET", &format!("/servers/{id}/os-instance-actions"), &token, None).await;
    let names: Vec<&str> =
        actions.body["instanceActions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert!(names.contains(&"create") && names.contains(&"stop") && names.contains(&"start"), "{names:?}");
    assert!(names.contains(&"pause") && names.contains(&"unpause"), "{names:?}");

    // A guest shut down from inside shows SHUTOFF once its host reports.
    let host = s["OS-EXT-SRV-ATTR:host"].as_str().map(str::to_string);
    let host = match host {
        Some(h) => h,
        None => c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap().to_string(),
    };
    let idx: usize = host.trim_start_matches("host-").parse().unwrap();
    assert!(c.drivers[idx].set_power_state(&id, stratus_compute_protocol::PowerState::Shutdown));
    // A report listed before the server's last save is older than the server: it
    // changes nothing (a build that ended after its host listed its guests).
    let old = c.agent.report(&c.agent.host(&host).unwrap()).await.unwrap();
    let r = c.call("PUT", &format!("/servers/{id}"), &token, Some(json!({"server": {"name": "vm"}}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    c.compute.on_report(&old).await.unwrap();
    let s = c.call("GET", &format!("/servers/{id}"), &token, None).await.body;
    assert_eq!(
        (s["server"]["status"].as_str(), s["server"]["OS-EXT-STS:power_state"].as_i64()),
        (Some("ACTIVE"), Some(1))
    );
    let report = c.agent.report(&c.agent.host(&host).unwrap()).await.unwrap();
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
    // As the issue puts it: 100 concurrent creates against a quota of 50.
    c.set_limit(&project, "instances", 50).await;
    c.set_limit(&project, "cores", 1000).await;
    c.set_limit(&project, "ram", 1_000_000).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
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
    assert_eq!((accepted.len(), refused), (50, 50), "{:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    for id in &accepted {
        c.wait_status(&token, id, "ACTIVE").await;
    }
    assert_eq!(c.usage(&project).await["instances"], 50);
    for id in &accepted {
        c.call("DELETE", &format!("/servers/{id}"), &token, None).await;
    }
    for id in &accepted {
        c.wait_status(&token, id, "GONE").await;
    }
    assert_nothing_left(&c, &project, &accepted[0]).await;

    // All or nothing across resources: a create within the instance limit but over
    // the cores limit counts nothing at all.
    c.set_limit(&project, "instances", 10).await;
    c.set_limit(&project, "cores", 1).await;
    let r = c.call("POST", "/servers", &token, Some(server_body(&image, &net, "too-many-cores"))).await;
    let first = r.body["server"]["id"].as_str().unwrap().to_string();
    c.wait_status(&token, &first, "ACTIVE").await;
    let before = c.usage(&project).await;
    let r = c.call("POST", "/servers", &token, Some(server_body(&image, &net, "over"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(c.usage(&project).await, before);
    assert_eq!((before["instances"], before["cores"]), (1, 1));
    c.call("DELETE", &format!("/servers/{first}"), &token, None).await;
    c.wait_status(&token, &first, "GONE").await;
    assert_nothing_left(&c, &project, &first).await;
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

/// What a server saga's end must not depend on (states, counts; not ids or times),
/// read once it no longer changes (a guest destroyed untracked goes a moment later).
async fn end_of(c: &Cloud, id: &str) -> Value {
    let read = || async {
        let s = c.compute.store.server_get(id).await.unwrap().unwrap();
        let claims = sqlx::query("SELECT consumer_id, vcpus FROM compute_allocations WHERE consumer_id LIKE $1")
            .bind(format!("{id}%"))
            .fetch_all(&c.compute.store.db.pool)
            .await
            .unwrap();
        let open = sqlx::query("SELECT action FROM compute_actions WHERE server_id = $1 AND finish_time IS NULL")
            .bind(id)
            .fetch_all(&c.compute.store.db.pool)
            .await
            .unwrap();
        let usage = c.usage(&s.project_id).await;
        let guest = c.drivers.iter().find_map(|d| d.shape_of(id)).map(|(vcpus, _, _)| vcpus);
        json!({
            "vm_state": s.vm_state, "task_state": s.task_state, "deleted": s.deleted,
            "fault": s.doc.get("fault").is_some(), "vcpus": s.vcpus, "on_host": s.host.is_some(),
            "ports": c.ports_of(id).await.len(),
            "claims": claims.iter().map(|r| r.int("vcpus")).collect::<Vec<_>>(),
            "instances": usage.get("instances"), "cores": usage.get("cores"),
            "open_actions": open.len(), "guest_vcpus": guest,
        })
    };
    let mut last = read().await;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        let now = read().await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("server {id} keeps changing: {last}");
}

async fn generic_server_sagas(engine: Engine) {
    use stratus_test_support::saga::check_saga;
    // Room for every scenario's server (they are kept to be compared).
    let mut opts = Options::default();
    opts.fake.capacity.vcpus = 256;
    opts.fake.capacity.ram_mb = 256 * 1024;
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let admin = c.admin().await;
    let body = json!({"flavor": {"name": "m2", "vcpus": 2, "ram": 1024, "disk": 1, "id": "m2"}});
    assert_eq!(c.call("POST", "/flavors", &admin, Some(body)).await.status, StatusCode::OK);
    let runner = &c.compute.sagas;
    let observe = |id: String| {
        let c = &c;
        async move { end_of(c, &id).await }
    };
    // A server for a scenario, in its own project (quota is compared per project),
    // ACTIVE when `ready`.
    let (image, net) = (&image, &net);
    let server = |label: String, ready: bool| {
        let c = &c;
        async move {
            let (_, token) = c.member(&label).await;
            let id = create(c, &token, server_body(image, net, &label)).await;
            if ready {
                c.wait_status(&token, &id, "ACTIVE").await;
            }
            (id, token)
        }
    };
    let act = |id: String, token: String, body: Value| {
        let c = &c;
        async move {
            let r = c.call("POST", &format!("/servers/{id}/action"), &token, Some(body)).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            id
        }
    };

    // Create: a clean end is ACTIVE with its port, claim, quota and guest; a failed one
    // is ERROR with nothing held; a stuck one ERROR with the reason.
    let r = check_saga(runner, "create", |l| async { server(l, false).await.0 }, observe).await;
    assert_eq!(
        (&r.ok["vm_state"], &r.ok["ports"], &r.ok["claims"], &r.ok["instances"], &r.ok["guest_vcpus"]),
        (&json!("active"), &json!(1), &json!([1]), &json!(1), &json!(1)),
        "{}",
        r.ok
    );
    let failed = r.failures_alike();
    assert_eq!(
        (&failed["vm_state"], &failed["fault"], &failed["ports"], &failed["claims"], &failed["instances"]),
        (&json!("error"), &json!(true), &json!(0), &json!([]), &json!(0)),
        "{failed}"
    );
    assert_eq!((&failed["guest_vcpus"], &failed["open_actions"]), (&Value::Null, &json!(0)), "{failed}");
    let (stuck, end) = &r.stuck;
    assert_eq!((&end["vm_state"], &end["fault"]), (&json!("error"), &json!(true)), "{end}");
    let fault = c.compute.store.server_get(stuck).await.unwrap().unwrap().doc["fault"]["message"].clone();
    assert!(fault.as_str().unwrap().contains("stuck at its step schedule"), "{fault}");
    // Deleting a server whose create is stuck unwinds it, then deletes.
    assert_eq!(c.call("DELETE", &format!("/servers/{stuck}"), &admin, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&admin, stuck, "GONE").await;
    eprintln!("create: {} scenarios", r.scenarios);

    // Delete: only goes forward; one that fails for good leaves the server in ERROR,
    // and deleting it again ends clean.
    let start_delete = |l: String| async {
        let (id, token) = server(l, true).await;
        assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
        id
    };
    let r = check_saga(runner, "delete", start_delete, observe).await;
    assert_eq!(
        (&r.ok["deleted"], &r.ok["ports"], &r.ok["claims"], &r.ok["instances"], &r.ok["guest_vcpus"]),
        (&json!(true), &json!(0), &json!([]), &json!(0), &Value::Null),
        "{}",
        r.ok
    );
    for (_, id, end) in r.failed.iter().chain([&(String::new(), r.stuck.0.clone(), r.stuck.1.clone())]) {
        assert_eq!((&end["vm_state"], &end["fault"]), (&json!("error"), &json!(true)), "{end}");
        if end["task_state"].is_null() {
            // Failed for good (not stuck): deleting again ends clean.
            assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &admin, None).await.status, StatusCode::NO_CONTENT);
            c.wait_status(&admin, id, "GONE").await;
            let gone = end_of(&c, id).await;
            assert_eq!((&gone["deleted"], &gone["claims"], &gone["ports"]), (&json!(true), &json!([]), &json!(0)));
        }
    }
    eprintln!("delete: {} scenarios", r.scenarios);

    // Resize: a clean end is VERIFY_RESIZE on the larger flavor, both flavors claimed
    // and the larger charged; a failed one back on the old flavor, its quota and claim.
    let start_resize = |l: String| async {
        let (id, token) = server(l, true).await;
        act(id, token, json!({"resize": {"flavorRef": "m2"}})).await
    };
    let r = check_saga(runner, "resize", start_resize, observe).await;
    assert_eq!(
        (&r.ok["vm_state"], &r.ok["vcpus"], &r.ok["claims"], &r.ok["cores"], &r.ok["guest_vcpus"]),
        (&json!("resized"), &json!(2), &json!([1, 2]), &json!(2), &json!(2)),
        "{}",
        r.ok
    );
    let failed = r.failures_alike();
    assert_eq!(
        (&failed["vm_state"], &failed["vcpus"], &failed["claims"], &failed["cores"], &failed["fault"]),
        (&json!("active"), &json!(1), &json!([1]), &json!(1), &json!(true)),
        "{failed}"
    );

    // Revert: back on the old flavor; a failed revert leaves ERROR with both claims
    // to be given back by the delete.
    let start_revert = |l: String| async {
        let (id, token) = server(l, true).await;
        let id = act(id, token.clone(), json!({"resize": {"flavorRef": "m2"}})).await;
        c.wait_status(&token, &id, "VERIFY_RESIZE").await;
        act(id, token, json!({"revertResize": null})).await
    };
    let r = check_saga(runner, "resize_revert", start_revert, observe).await;
    assert_eq!(
        (&r.ok["vm_state"], &r.ok["vcpus"], &r.ok["claims"], &r.ok["cores"], &r.ok["guest_vcpus"]),
        (&json!("active"), &json!(1), &json!([1]), &json!(1), &json!(1)),
        "{}",
        r.ok
    );
    let end = r.failures_alike();
    assert_eq!((&end["vm_state"], &end["fault"]), (&json!("error"), &json!(true)), "{end}");

    // Rebuild: ACTIVE again on the same flavor; a failed one ERROR with the reason.
    let start_rebuild = |l: String| async {
        let (id, token) = server(l, true).await;
        act(id, token, json!({"rebuild": {"imageRef": image}})).await
    };
    let r = check_saga(runner, "rebuild", start_rebuild, observe).await;
    assert_eq!((&r.ok["vm_state"], &r.ok["claims"], &r.ok["fault"]), (&json!("active"), &json!([1]), &json!(false)));
    let end = r.failures_alike();
    assert_eq!((&end["vm_state"], &end["claims"], &end["fault"]), (&json!("error"), &json!([1]), &json!(true)));
}

#[tokio::test]
async fn server_sagas_pass_the_generic_saga_tests() {
    each_engine!(generic_server_sagas);
}

async fn stale_claims(engine: Engine) {
    // A claim recorded on a server that changed meanwhile claims nothing.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let id = create(&c, &token, server_body(&image, &net, "vm")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let mut stale = c.compute.store.server_get(&id).await.unwrap().unwrap();
    stale.rev -= 1;
    // On the other host (the server holds a claim on its own already).
    let other = if stale.host.as_deref() == Some("host-0") { "host-1" } else { "host-0" };
    let a = Allocation { consumer_id: id.clone(), host: other.into(), vcpus: 1, ram: 64, disk: 0, reservation: None };
    let out = c.compute.store.claim_apart(&a, None, Some(&mut stale)).await.unwrap();
    assert!(matches!(out, HostClaim::ServerChanged), "{out:?}");
    assert_eq!(c.claimed().await, (1, 1));
    c.call("DELETE", &format!("/servers/{id}"), &token, None).await;
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
}

#[tokio::test]
async fn a_claim_on_a_stale_server_claims_nothing() {
    each_engine!(stale_claims);
}

async fn whole_node_claims(engine: Engine) {
    // A bare-metal node is one host a server takes whole: handed out as it is (no
    // ratios, nothing reserved), and to one claim of concurrent ones however small.
    let c = Cloud::start(engine).await;
    let report = stratus_compute_protocol::HostReport {
        host: "node-1".into(),
        queue: "compute.agent.bm".into(),
        availability_zone: "nova".into(),
        hypervisor_type: "ironic".into(),
        driver: "ironic".into(),
        vcpus: 4,
        ram_mb: 8192,
        disk_gb: 20,
        traits: Vec::new(),
        resource_class: Some("CUSTOM_BAREMETAL".into()),
        ip: None,
        uptime: None,
        guests: Vec::new(),
        taken_at: None,
    };
    let row = c.compute.store.host_report(&report, &Default::default()).await.unwrap();
    assert_eq!((row.cap_vcpus, row.cap_ram, row.cap_disk), (4, 8192, 20));
    assert_eq!(row.resource_class.as_deref(), Some("CUSTOM_BAREMETAL"));
    // A machine's agent reports its uptime, shown by os-hypervisors; a node has none.
    let machine = stratus_compute_protocol::HostReport {
        host: "machine-1".into(),
        hypervisor_type: "QEMU".into(),
        resource_class: None,
        uptime: Some(" 10:02:03 up 3 days,  4:05,  load average: 0.10, 0.20, 0.30".into()),
        ..report.clone()
    };
    c.compute.store.host_report(&machine, &Default::default()).await.unwrap();
    let admin = c.admin().await;
    let up = c.call_v("2.53", "GET", "/os-hypervisors/machine-1/uptime", &admin, None).await;
    assert_eq!(up.body["hypervisor"]["uptime"], json!(machine.uptime), "{}", up.body);
    let none = c.call_v("2.53", "GET", "/os-hypervisors/node-1/uptime", &admin, None).await;
    assert_eq!(none.status, StatusCode::NOT_IMPLEMENTED, "{}", none.body);
    let shown = c.call_v("2.88", "GET", "/os-hypervisors/machine-1", &admin, None).await;
    assert_eq!(shown.body["hypervisor"]["uptime"], json!(machine.uptime), "{}", shown.body);
    let claim = |i: usize| {
        let a = Allocation {
            consumer_id: format!("server-{i}"),
            host: "node-1".into(),
            vcpus: 1,
            ram: 512,
            disk: 1,
            reservation: None,
        };
        let store = c.compute.store.clone();
        async move { store.claim_apart(&a, None, None).await.unwrap() }
    };
    let outcomes = futures::future::join_all((0..4).map(claim)).await;
    let won = outcomes.iter().filter(|o| matches!(o, HostClaim::Claimed(_))).count();
    assert_eq!(won, 1, "{outcomes:?}");
    c.compute.store.release(&["server-0", "server-1", "server-2", "server-3"], None).await.unwrap();
    assert!(matches!(claim(9).await, HostClaim::Claimed(_)), "released, the node is free again");

    // The agent says which nodes it runs now: a node that went is forgotten, unless a
    // server is placed on it; another agent's hosts are not touched.
    let node2 = stratus_compute_protocol::HostReport { host: "node-2".into(), ..report.clone() };
    c.compute.store.host_report(&node2, &Default::default()).await.unwrap();
    let gone = stratus_compute_protocol::AgentHosts { queue: "compute.agent.bm".into(), hosts: vec![] };
    c.compute.on_agent_hosts(&gone).await.unwrap();
    let left: Vec<String> =
        c.compute.store.host_list().await.unwrap().into_iter().map(|h| h.host.to_string()).collect();
    assert!(left.contains(&"node-1".to_string()), "node-1 holds server-9's claim: {left:?}");
    assert!(!left.contains(&"node-2".to_string()), "{left:?}");
    assert!(left.contains(&"host-0".to_string()), "the fake agent's hosts stay: {left:?}");
}

#[tokio::test]
async fn a_bare_metal_node_goes_to_one_server() {
    each_engine!(whole_node_claims);
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
        let r = c.agent.report(&c.agent.host(&format!("host-{h}")).unwrap()).await.unwrap();
        c.compute.on_report(&r).await.unwrap();
    }
    eventually("the interrupted build's guest is destroyed", || async { c.guests().await == 0 }).await;
}

#[tokio::test]
async fn delete_during_build_unwinds() {
    each_engine!(delete_during_build);
}

async fn listing_pages(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, _, _) = c.basics().await;
    let (pager, token) = c.member("pager").await;
    let (_, other) = c.member("other").await;
    let mut made = Vec::new();
    for i in 0..5 {
        let mut body = server_body(&image, "", &format!("srv-{i}"));
        body["server"]["networks"] = json!("none");
        made.push(create(&c, &token, body).await);
    }
    for id in &made {
        c.wait_status(&token, id, "ACTIVE").await;
    }
    // Newest first, two per page, each full page linking to the next.
    let mut seen = Vec::new();
    let mut path = "/servers/detail?limit=2&status=active".to_string();
    loop {
        let r = c.call("GET", &path, &token, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let page: Vec<String> =
            r.body["servers"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
        seen.extend(page.clone());
        match r.body["servers_links"][0]["href"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), 2);
                assert!(next.contains("status=active") && next.contains(&format!("marker={}", page[1])), "{next}");
                path = next.split_once("/v2.1").unwrap().1.to_string();
            }
            None => break,
        }
    }
    let mut expected = made.clone();
    expected.reverse();
    assert_eq!(seen, expected, "every server once, newest first");
    // A filter that matches little still fills the page from further back.
    let r = c.call("GET", "/servers?limit=1&name=srv-0", &token, None).await;
    assert_eq!(r.body["servers"][0]["id"], json!(made[0]));
    // Markers are checked, and another project's server is no marker.
    let r = c.call("GET", "/servers?marker=nope", &token, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.call("GET", &format!("/servers?marker={}", made[2]), &other, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.call("GET", "/servers?limit=-1", &token, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Without a limit, the page holds everything (up to 1,000) and no link.
    let r = c.call("GET", "/servers", &token, None).await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 5);
    assert!(r.body.get("servers_links").is_none());
    // An administrator names another project with `all_tenants`; without it, as in Nova,
    // `tenant_id` is ignored and the list is the administrator's own project's.
    let admin = c.admin().await;
    let count = |r: Resp| r.body["servers"].as_array().map(Vec::len);
    assert_eq!(count(c.call("GET", &format!("/servers?tenant_id={pager}"), &admin, None).await), Some(0));
    let all = c.call("GET", &format!("/servers?all_tenants=1&tenant_id={pager}"), &admin, None).await;
    assert_eq!(count(all), Some(5));
    // Every project's usage is for administrators; a member reads their own project's.
    let usage = "/os-simple-tenant-usage";
    assert_eq!(c.call("GET", usage, &token, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", &format!("{usage}/{pager}"), &token, None).await.status, StatusCode::OK);
    assert_eq!(c.call("GET", usage, &admin, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn listing_is_paged_newest_first() {
    each_engine!(listing_pages);
}

/// A request to the metadata API as the network agent's proxy sends it for `server`.
async fn metadata(
    c: &Cloud,
    method: &str,
    path: &str,
    server: &str,
    project: &str,
    body: &str,
) -> (StatusCode, String) {
    use tower::ServiceExt;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"proxy-secret");
    let signature: String =
        ring::hmac::sign(&key, server.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("x-instance-id", server)
        .header("x-tenant-id", project)
        .header("x-instance-id-signature", signature)
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let router = stratus_compute::metadata::router(c.compute.clone(), "proxy-secret");
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn server_password(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, _, _) = c.basics().await;
    let (project, token) = c.member("pw").await;
    let (_, other) = c.member("pw-other").await;
    let mut body = server_body(&image, "", "pw");
    body["server"]["networks"] = json!("none");
    let id = create(&c, &token, body).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let path = format!("/servers/{id}/os-server-password");
    let shown = |r: Resp| r.body["password"].as_str().map(str::to_string);
    assert_eq!(shown(c.call("GET", &path, &token, None).await), Some(String::new()));

    // The guest's agent posts it once; a second post is refused until the owner clears it.
    let posted = "c2VjcmV0LWVuY3J5cHRlZC13aXRoLXRoZS1rZXk=";
    let file = "/openstack/latest/password";
    assert_eq!(metadata(&c, "POST", file, &id, &project, posted).await.0, StatusCode::OK);
    assert_eq!(metadata(&c, "POST", file, &id, &project, "again").await.0, StatusCode::CONFLICT);
    assert_eq!(metadata(&c, "GET", file, &id, &project, "").await, (StatusCode::OK, posted.to_string()));
    assert_eq!(metadata(&c, "POST", file, &id, "pw-other", posted).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        metadata(&c, "POST", "/openstack/latest/meta_data.json", &id, &project, "x").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(shown(c.call("GET", &path, &token, None).await), Some(posted.to_string()));
    // The server's own view never carries it; another project cannot read or clear it.
    let view = c.call("GET", &format!("/servers/{id}"), &token, None).await;
    assert!(!view.body.to_string().contains(posted), "{}", view.body);
    assert_eq!(c.call("GET", &path, &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &path, &other, None).await.status, StatusCode::NOT_FOUND);

    assert_eq!(c.call("DELETE", &path, &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(shown(c.call("GET", &path, &token, None).await), Some(String::new()));
    let long = "x".repeat(257);
    assert_eq!(metadata(&c, "POST", file, &id, &project, &long).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(metadata(&c, "POST", file, &id, &project, "new").await.0, StatusCode::OK);
}

async fn diagnostics(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, _, _) = c.basics().await;
    let (_, token) = c.member("diag").await;
    let mut body = server_body(&image, "", "diag");
    body["server"]["networks"] = json!("none");
    let id = create(&c, &token, body).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let admin = c.admin().await;
    let path = format!("/servers/{id}/diagnostics");
    assert_eq!(c.call("GET", &path, &token, None).await.status, StatusCode::FORBIDDEN, "an admin's, as Nova's");
    // 2.48's standard form: what the fake host knows, and null for what it measures not.
    let r = c.call_v("2.48", "GET", &path, &admin, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let d = &r.body;
    assert_eq!(
        (d["state"].as_str(), d["driver"].as_str(), d["num_disks"].as_i64()),
        (Some("running"), Some("fake"), Some(1))
    );
    assert!(
        d["memory_details"]["maximum"].as_i64().is_some_and(|m| m > 0) && d["memory_details"]["used"].is_null(),
        "{d}"
    );
    assert_eq!(d["disk_details"][0]["read_bytes"], Value::Null);
    // Before 2.48, flat keys.
    let old = c.call("GET", &path, &admin, None).await;
    assert!(old.body.get("vda_read").is_some() && old.body.get("state").is_none(), "{}", old.body);
    assert_eq!(c.call("GET", "/servers/nope/diagnostics", &admin, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admins_read_a_guests_diagnostics() {
    each_engine!(diagnostics);
}

#[tokio::test]
async fn guests_post_their_password_and_owners_read_and_clear_it() {
    each_engine!(server_password);
}

async fn interfaces(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("nics").await;
    let id = create(&c, &token, server_body(&image, &net, "nic")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let first = c.ports_of(&id).await[0]["id"].as_str().unwrap().to_string();
    let guest_ports = || {
        let drivers = c.drivers.clone();
        let id = id.clone();
        async move { drivers.iter().find_map(|d| d.ports_of(&id)).unwrap_or_default() }
    };

    // A new port on a network, with a chosen address.
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/os-interface"),
            &token,
            Some(json!({"interfaceAttachment": {"net_id": net, "fixed_ips": [{"ip_address": "10.9.0.77"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let made = r.body["interfaceAttachment"]["port_id"].as_str().unwrap().to_string();
    assert_eq!(r.body["interfaceAttachment"]["fixed_ips"][0]["ip_address"], "10.9.0.77");
    assert_eq!(r.body["interfaceAttachment"]["net_id"], json!(net));
    let list = c.call("GET", &format!("/servers/{id}/os-interface"), &token, None).await;
    assert_eq!(list.body["interfaceAttachments"].as_array().unwrap().len(), 2);
    let shown = c.call("GET", &format!("/servers/{id}"), &token, None).await;
    assert!(shown.body["server"]["addresses"].to_string().contains("10.9.0.77"), "{}", shown.body);
    eventually("the agent plugged the NIC", || async { guest_ports().await.contains(&made) }).await;

    // One more address on that port, then off again.
    let r =
        c.call("POST", &format!("/servers/{id}/action"), &token, Some(json!({"addFixedIp": {"networkId": net}}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let ips: usize = c.ports_of(&id).await.iter().map(|p| p["fixed_ips"].as_array().unwrap().len()).sum();
    assert_eq!(ips, 3);
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/action"),
            &token,
            Some(json!({"removeFixedIp": {"address": "10.9.0.77"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/action"),
            &token,
            Some(json!({"removeFixedIp": {"address": "10.9.0.77"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an address the server does not have");

    // The user's own port: attached, then released (not deleted) on detach.
    let mine = c
        .http(
            reqwest::Method::POST,
            format!("{}/v2.0/ports", c.network_url),
            &token,
            Some(json!({"port": {"network_id": net, "name": "mine"}})),
        )
        .await;
    let mine = mine["port"]["id"].as_str().unwrap().to_string();
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/os-interface"),
            &token,
            Some(json!({"interfaceAttachment": {"port_id": mine}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A port in use cannot be attached twice; bad bodies are refused.
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/os-interface"),
            &token,
            Some(json!({"interfaceAttachment": {"port_id": mine}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r =
        c.call("POST", &format!("/servers/{id}/os-interface"), &token, Some(json!({"interfaceAttachment": {}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.ports_of(&id).await.len(), 3);
    for port in [&made, &mine] {
        let r = c.call("DELETE", &format!("/servers/{id}/os-interface/{port}"), &token, None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let r = c.call("DELETE", &format!("/servers/{id}/os-interface/{made}"), &token, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let left: Vec<String> = c.ports_of(&id).await.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(left, vec![first.clone()]);
    let mine_now = c.http(reqwest::Method::GET, format!("{}/v2.0/ports/{mine}", c.network_url), &token, None).await;
    assert_eq!(mine_now["port"]["device_id"], "", "the user's port is released, not deleted");
    let all =
        c.http(reqwest::Method::GET, format!("{}/v2.0/ports?network_id={net}", c.network_url), &token, None).await;
    assert!(!all.to_string().contains(&made), "the port compute made is deleted");

    // Security groups, by name, on every port.
    let sg = c
        .http(
            reqwest::Method::POST,
            format!("{}/v2.0/security-groups", c.network_url),
            &token,
            Some(json!({"security_group": {"name": "web"}})),
        )
        .await;
    let sg_id = sg["security_group"]["id"].as_str().unwrap().to_string();
    let action_path = format!("/servers/{id}/action");
    let act = |body: Value| c.call("POST", &action_path, &token, Some(body));
    assert_eq!(act(json!({"addSecurityGroup": {"name": "web"}})).await.status, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"addSecurityGroup": {"name": "web"}})).await.status, StatusCode::BAD_REQUEST);
    assert!(c.ports_of(&id).await[0]["security_groups"].as_array().unwrap().contains(&json!(sg_id)));
    let groups = c.call("GET", &format!("/servers/{id}/os-security-groups"), &token, None).await;
    assert!(groups.body.to_string().contains("web"), "{}", groups.body);
    assert_eq!(act(json!({"removeSecurityGroup": {"name": "web"}})).await.status, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"removeSecurityGroup": {"name": "web"}})).await.status, StatusCode::BAD_REQUEST);
    assert!(!c.ports_of(&id).await[0]["security_groups"].as_array().unwrap().contains(&json!(sg_id)));
    assert_eq!(act(json!({"addSecurityGroup": {"name": "nope"}})).await.status, StatusCode::BAD_REQUEST);
    // Out of every group, the server shows none (no key at all, as Nova).
    assert_eq!(act(json!({"removeSecurityGroup": {"name": "default"}})).await.status, StatusCode::ACCEPTED);
    let shown = c.call("GET", &format!("/servers/{id}"), &token, None).await;
    assert!(shown.body["server"].get("security_groups").is_none(), "{}", shown.body);
    assert_eq!(act(json!({"addSecurityGroup": {"name": "default"}})).await.status, StatusCode::ACCEPTED);
    let shown = c.call("GET", &format!("/servers/{id}"), &token, None).await;
    assert_eq!(shown.body["server"]["security_groups"], json!([{"name": "default"}]));

    // Another project can do none of this.
    let (_, other) = c.member("nosy").await;
    let r = c
        .call(
            "POST",
            &format!("/servers/{id}/os-interface"),
            &other,
            Some(json!({"interfaceAttachment": {"net_id": net}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Deleting the server leaves nothing.
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
}

#[tokio::test]
async fn interfaces_fixed_ips_and_security_groups() {
    each_engine!(interfaces);
}

async fn resize_and_rebuild(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let admin = c.admin().await;
    for (id, vcpus, ram) in [("m2", 2, 1024), ("m4", 4, 2048), ("m1000", 1000, 512)] {
        let body = json!({"flavor": {"name": id, "vcpus": vcpus, "ram": ram, "disk": 1, "id": id}});
        assert_eq!(c.call("POST", "/flavors", &admin, Some(body)).await.status, StatusCode::OK);
    }
    let (project, token) = c.member("resizer").await;
    let id = create(&c, &token, server_body(&image, &net, "grow")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let path = format!("/servers/{id}/action");
    let act = |body: Value| c.call("POST", &path, &token, Some(body));
    let cores = || async { c.usage(&project).await.get("cores").copied().unwrap_or(0) };
    let shape = || {
        let drivers = c.drivers.clone();
        let id = id.clone();
        async move { drivers.iter().find_map(|d| d.shape_of(&id)).map(|s| (s.0, s.1)) }
    };

    // Up to m2: both flavors held on the host until confirmed.
    assert_eq!(act(json!({"resize": {"flavorRef": "m2"}})).await.status, StatusCode::ACCEPTED);
    let s = c.wait_status(&token, &id, "VERIFY_RESIZE").await;
    assert_eq!(s["flavor"]["id"], "m2");
    assert_eq!(cores().await, 2);
    assert_eq!(c.claimed().await.0, 3, "old and new flavor both claimed");
    assert_eq!(shape().await, Some((2, 1024)));
    assert_eq!(act(json!({"confirmResize": null})).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "ACTIVE").await;
    assert_eq!(c.claimed().await, (2, 1));
    assert_eq!(act(json!({"confirmResize": null})).await.status, StatusCode::CONFLICT);

    // Down to m1 and back again: the revert restores m2 everywhere.
    assert_eq!(act(json!({"resize": {"flavorRef": "m1"}})).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "VERIFY_RESIZE").await;
    assert_eq!(cores().await, 1);
    assert_eq!(act(json!({"revertResize": null})).await.status, StatusCode::ACCEPTED);
    let s = c.wait_status(&token, &id, "ACTIVE").await;
    assert_eq!(s["flavor"]["id"], "m2");
    assert_eq!((cores().await, c.claimed().await), (2, (2, 1)));
    assert_eq!(shape().await, Some((2, 1024)));

    // Refusals change nothing: same flavor, over quota, no room on the host, bad input.
    assert_eq!(act(json!({"resize": {"flavorRef": "m2"}})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"resize": {"flavorRef": "nope"}})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"resize": {}})).await.status, StatusCode::BAD_REQUEST);
    c.set_limit(&project, "cores", 3).await;
    let r = act(json!({"resize": {"flavorRef": "m4"}})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    c.set_limit(&project, "cores", 5000).await;
    assert_eq!(act(json!({"resize": {"flavorRef": "m1000"}})).await.status, StatusCode::BAD_REQUEST);
    let s = c.call("GET", &format!("/servers/{id}"), &token, None).await.body;
    assert_eq!((s["server"]["status"].as_str(), cores().await, c.claimed().await), (Some("ACTIVE"), 2, (2, 1)));

    // Each resize is a migration record (os-migrations, admins): confirmed, reverted;
    // the refused ones left none.
    let listed = c.call_v("2.80", "GET", &format!("/os-migrations?instance_uuid={id}"), &admin, None).await;
    let records = listed.body["migrations"].as_array().unwrap().clone();
    let statuses: Vec<&str> = records.iter().map(|m| m["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["reverted", "confirmed"], "{}", listed.body);
    let m = &records[0];
    assert_eq!((m["migration_type"].as_str(), m["project_id"].as_str()), (Some("resize"), Some(project.as_str())));
    assert_eq!(m["source_compute"], m["dest_compute"], "resizes stay on their host");
    let old = c.call("GET", &format!("/os-migrations?status=confirmed&instance_uuid={id}"), &admin, None).await;
    let old = &old.body["migrations"][0];
    assert!(old.get("migration_type").is_none() && old.get("uuid").is_none(), "2.1 shows neither: {old}");
    let page = c.call_v("2.59", "GET", "/os-migrations?limit=1", &admin, None).await;
    assert_eq!(page.body["migrations"].as_array().unwrap().len(), 1);
    assert!(page.body["migrations_links"][0]["href"].as_str().unwrap().contains("marker="));
    assert_eq!(c.call("GET", "/os-migrations", &token, None).await.status, StatusCode::FORBIDDEN);
    let live = c.call("GET", &format!("/servers/{id}/migrations"), &admin, None).await;
    assert_eq!(live.body["migrations"], json!([]), "no live migration is under way");

    // Rebuild: same server, new name, REBUILD then ACTIVE, recorded as an action.
    let r = act(json!({"rebuild": {"imageRef": image, "name": "rebuilt"}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(r.body["server"]["adminPass"].is_string());
    let s = c.wait_status(&token, &id, "ACTIVE").await;
    assert_eq!(s["name"], "rebuilt");
    assert_eq!(act(json!({"rebuild": {"imageRef": "nope"}})).await.status, StatusCode::BAD_REQUEST);
    // At 2.57 the answer carries the key pair and user data; the disk config changes.
    let bad_config = json!({"rebuild": {"imageRef": image, "OS-DCF:diskConfig": "SOMETIMES"}});
    assert_eq!(act(bad_config).await.status, StatusCode::BAD_REQUEST);
    let rebuild = json!({"rebuild": {"imageRef": image, "OS-DCF:diskConfig": "AUTO"}});
    let r = c.call_v("2.57", "POST", &format!("/servers/{id}/action"), &token, Some(rebuild)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let answer = &r.body["server"];
    assert!(answer["key_name"].is_null() && answer.get("key_name").is_some() && answer.get("user_data").is_some());
    assert_eq!(answer["OS-DCF:diskConfig"], "AUTO", "{answer}");
    c.wait_status(&token, &id, "ACTIVE").await;
    let events = c.call("GET", &format!("/servers/{id}/os-instance-actions"), &token, None).await;
    let names: Vec<&str> =
        events.body["instanceActions"].as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    for a in ["resize", "confirmResize", "revertResize", "rebuild"] {
        assert!(names.contains(&a), "{a} in {names:?}");
    }

    // A resize the host fails unwinds to the old flavor, quota and claims, with a fault.
    c.set_failure_rate(1.0);
    assert_eq!(act(json!({"resize": {"flavorRef": "m4"}})).await.status, StatusCode::ACCEPTED);
    let failed = || async {
        let events = c.call("GET", &format!("/servers/{id}/os-instance-actions"), &token, None).await.body;
        events["instanceActions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["action"] == "resize" && a["message"].as_str().is_some_and(|m| m.contains("injected")))
            .is_some()
    };
    eventually("the failed resize is recorded with its reason", failed).await;
    let s = c.call("GET", &format!("/servers/{id}"), &token, None).await.body;
    assert_eq!(s["server"]["status"], "ACTIVE", "{s}");
    assert_eq!(s["server"]["flavor"]["id"], "m2");
    assert_eq!((cores().await, c.claimed().await), (2, (2, 1)));
    assert_eq!(shape().await, Some((2, 1024)));
    c.set_failure_rate(0.0);

    // Deleting a server waiting for confirmation releases both claims and its quota.
    assert_eq!(act(json!({"resize": {"flavorRef": "m4"}})).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "VERIFY_RESIZE").await;
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
}

#[tokio::test]
async fn resize_confirm_revert_and_rebuild() {
    each_engine!(resize_and_rebuild);
}

/// The saga of the last change of `kind` on a server, read back.
async fn last_saga(c: &Cloud, server: &str, kind: &str) -> stratus_common::saga::Saga {
    let row = sqlx::query("SELECT id FROM compute_sagas WHERE subject = $1 AND kind = $2 ORDER BY created_at DESC")
        .bind(server)
        .bind(kind)
        .fetch_all(&c.compute.store.db.pool)
        .await
        .unwrap();
    c.compute.sagas.get(&row[0].text("id").into()).await.unwrap().unwrap()
}

async fn host_failed_changes(engine: Engine) {
    use stratus_common::saga::SagaState;
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let admin = c.admin().await;
    let body = json!({"flavor": {"name": "m2", "vcpus": 2, "ram": 1024, "disk": 1, "id": "m2"}});
    assert_eq!(c.call("POST", "/flavors", &admin, Some(body)).await.status, StatusCode::OK);
    let (project, token) = c.member("changer").await;
    let id = create(&c, &token, server_body(&image, &net, "vm")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let path = format!("/servers/{id}/action");
    let act = |body: Value| c.call("POST", &path, &token, Some(body));
    let cores = || async { c.usage(&project).await.get("cores").copied().unwrap_or(0) };

    assert_eq!(act(json!({"resize": {"flavorRef": "m2"}})).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "VERIFY_RESIZE").await;
    assert_eq!(last_saga(&c, &id, "resize").await.state, SagaState::Done);
    assert_eq!((c.claimed().await, cores().await), ((3, 2), 2), "both flavors claimed, the larger one charged");

    // A revert the host fails leaves the server in ERROR with the reason; a resize it
    // fails goes back to the old flavor, its quota and its claim.
    c.set_failure_rate(1.0);
    assert_eq!(act(json!({"revertResize": null})).await.status, StatusCode::ACCEPTED);
    let s = c.wait_status(&token, &id, "ERROR").await;
    assert!(s["fault"]["message"].as_str().unwrap().contains("injected"), "{}", s["fault"]);
    let revert = last_saga(&c, &id, "resize_revert").await;
    assert_eq!(revert.state, SagaState::Failed);
    assert!(c.compute.sagas.unfinished(Some(&id)).await.unwrap().is_empty());
    let r = act(json!({"rebuild": {"imageRef": image}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    c.wait_status(&token, &id, "ERROR").await;
    assert_eq!(last_saga(&c, &id, "rebuild").await.state, SagaState::Failed);
    c.set_failure_rate(0.0);
    // A rebuild mends a server in ERROR.
    assert_eq!(act(json!({"rebuild": {"imageRef": image}})).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "ACTIVE").await;

    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    assert_nothing_left(&c, &project, &id).await;
}

#[tokio::test]
async fn host_failed_changes_end_in_error_or_go_back() {
    each_engine!(host_failed_changes);
}

async fn groups_race(engine: Engine) {
    // Two hosts, six members of one anti-affinity group created at once: exactly two
    // can be placed, on different hosts; the others fail cleanly.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("apart").await;
    let g = c
        .call(
            "POST",
            "/os-server-groups",
            &token,
            Some(json!({"server_group": {"name": "apart", "policies": ["anti-affinity"]}})),
        )
        .await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    let gid = g.body["server_group"]["id"].as_str().unwrap().to_string();
    let in_group = |name: String| {
        let mut body = server_body(&image, &net, &name);
        body["os:scheduler_hints"] = json!({"group": gid});
        body
    };
    let results = futures::future::join_all(
        (0..6).map(|i| c.call("POST", "/servers", &token, Some(in_group(format!("apart-{i}"))))),
    )
    .await;
    let ids: Vec<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            r.body["server"]["id"].as_str().unwrap().to_string()
        })
        .collect();
    let admin = c.admin().await;
    let mut hosts = Vec::new();
    let mut errors = 0;
    for id in &ids {
        for _ in 0..300 {
            let s = c.call("GET", &format!("/servers/{id}"), &admin, None).await.body;
            match s["server"]["status"].as_str() {
                Some("ACTIVE") => {
                    hosts.push(s["server"]["OS-EXT-SRV-ATTR:host"].as_str().unwrap().to_string());
                    break;
                }
                Some("ERROR") => {
                    errors += 1;
                    break;
                }
                _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    assert_eq!((hosts.len(), errors), (2, 4), "two members on two hosts, four without a host");

    // Group members are a quota: the two placed members stay (the failed builds left
    // the group), so with a limit of 3 a request for two more is refused and writes
    // nothing, while one more fits.
    c.set_limit(&project, "server_group_members", 3).await;
    let mut body = in_group("over".into());
    body["server"]["min_count"] = json!(2);
    body["server"]["max_count"] = json!(2);
    let r = c.call("POST", "/servers", &token, Some(body)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.to_string().contains("server_group_members"), "{}", r.body);
    let listed = c.call("GET", "/servers", &token, None).await;
    assert_eq!(listed.body["servers"].as_array().unwrap().len(), 6, "the refused request made no servers");
    let members = c.call("GET", &format!("/os-server-groups/{gid}"), &token, None).await;
    assert_eq!(members.body["server_group"]["members"].as_array().unwrap().len(), 2, "{}", members.body);
    let r = c.call("POST", "/servers", &token, Some(in_group("fits".into()))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[tokio::test]
async fn anti_affinity_holds_under_concurrency_and_members_are_a_quota() {
    each_engine!(groups_race);
}

/// Every image a server boots from is checked as the server's project sees it: its
/// kernel and ramdisk too, which an image may name freely (another project's private
/// ones included). Also: another project's port is not usable for a server even where
/// it is visible, and a port naming a server as its device joins it only if it is of
/// the server's project.
async fn foreign_images_and_ports(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, net, _) = c.basics().await;
    let admin = c.admin().await;
    let (_, a) = c.member("owner-a").await;
    let (bproject, b) = c.member("intruder-b").await;
    let private = |name: &str, fmt: &str| json!({"name": name, "disk_format": fmt, "container_format": fmt});
    let kernel = c.image(&a, private("a-kernel", "aki")).await;
    let ramdisk = c.image(&a, private("a-initrd", "ari")).await;
    assert_eq!(c.http_status(&format!("{}/v2/images/{kernel}", c.image_url), &b).await, 404);
    for props in [json!({"kernel_id": kernel}), json!({"ramdisk_id": ramdisk})] {
        let mut attrs = json!({"name": "b-disk", "disk_format": "raw", "container_format": "bare"});
        attrs.as_object_mut().unwrap().extend(props.as_object().unwrap().clone());
        let image = c.image(&b, attrs).await;
        let r = c.call("POST", "/servers", &b, Some(server_body(&image, &net, "steal"))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{props}: {}", r.body);
        assert!(r.body.to_string().contains("could not be found"), "{}", r.body);
    }
    assert_eq!(c.call("GET", "/servers", &b, None).await.body["servers"], json!([]), "nothing was made");
    // B's own kernel works, is what the agent gets, and admins see it.
    let own_kernel = c.image(&b, private("b-kernel", "aki")).await;
    let mut attrs = json!({"name": "b-boot", "disk_format": "raw", "container_format": "bare"});
    attrs["kernel_id"] = json!(own_kernel);
    let image = c.image(&b, attrs).await;
    let id = create(&c, &b, server_body(&image, &net, "own")).await;
    c.wait_status(&b, &id, "ACTIVE").await;
    let shown = c.call_v("2.3", "GET", &format!("/servers/{id}"), &admin, None).await;
    assert_eq!(shown.body["server"]["OS-EXT-SRV-ATTR:kernel_id"], json!(own_kernel));
    // Rebuilding onto an image naming A's kernel is refused the same way.
    let mut attrs = json!({"name": "b-rebuild", "disk_format": "raw", "container_format": "bare"});
    attrs["kernel_id"] = json!(kernel);
    let image = c.image(&b, attrs).await;
    let r = c.call("POST", &format!("/servers/{id}/action"), &b, Some(json!({"rebuild": {"imageRef": image}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // A port B made on the shared network, naming A's server as its device, is not A's
    // server's: not in its addresses, not removed with it.
    let a_server = create(&c, &a, server_body(&c.basics_image().await, &net, "a-vm")).await;
    c.wait_status(&a, &a_server, "ACTIVE").await;
    let body = json!({"port": {"network_id": net, "device_id": a_server, "device_owner": "compute:nova"}});
    let forged = c.http(reqwest::Method::POST, format!("{}/v2.0/ports", c.network_url), &b, Some(body)).await;
    let forged_id = forged["port"]["id"].as_str().unwrap().to_string();
    let detail = c.call("GET", &format!("/servers/{a_server}/os-interface"), &a, None).await;
    let ids: Vec<&Value> =
        detail.body["interfaceAttachments"].as_array().unwrap().iter().map(|i| &i["port_id"]).collect();
    assert!(!ids.contains(&&json!(forged_id)), "{}", detail.body);
    assert_eq!(ids.len(), 1);
    // And B cannot boot on a port of A's, even one it can see on its own network.
    let (bnet, _) = (net.clone(), ());
    let a_port = c
        .http(
            reqwest::Method::POST,
            format!("{}/v2.0/ports", c.network_url),
            &a,
            Some(json!({"port": {"network_id": bnet}})),
        )
        .await;
    let body = json!({"server": {"name": "x", "imageRef": image, "flavorRef": "m1", "networks": [{"port": a_port["port"]["id"]}]}});
    let r = c.call("POST", "/servers", &b, Some(body)).await;
    assert!(r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND, "{}", r.body);
    let _ = bproject;
    assert_eq!(c.call("DELETE", &format!("/servers/{a_server}"), &a, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&a, &a_server, "GONE").await;
    let still = c.http_status(&format!("{}/v2.0/ports/{forged_id}", c.network_url), &b).await;
    assert_eq!(still, 200, "B's port is B's: A's server delete did not take it");
}

#[tokio::test]
async fn foreign_images_and_ports_are_refused() {
    each_engine!(foreign_images_and_ports);
}

/// Answers shaped per microversion as Tempest's schemas have them: the update answer
/// below 2.75 without extension attributes, quota keys of each version, `adminPass`
/// echoed, access addresses canonical, the version list with v2.0 first.
async fn microversion_shapes(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("p1").await;
    let mut body = server_body(&image, &net, "vm");
    body["server"]["adminPass"] = json!("s3cret-pass");
    body["server"]["accessIPv6"] = json!("0000:0000:0000:0000:0000:babe:220.12.22.2");
    let r = c.call("POST", "/servers", &token, Some(body)).await;
    assert_eq!(r.body["server"]["adminPass"], "s3cret-pass", "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    let s = c.wait_status(&token, &id, "ACTIVE").await;
    assert_eq!(s["accessIPv6"], "::babe:dc0c:1602");
    let bad = server_body(&image, &net, "vm2");
    let mut bad_v6 = bad.clone();
    bad_v6["server"]["accessIPv6"] = json!("not-an-address");
    assert_eq!(c.call("POST", "/servers", &token, Some(bad_v6)).await.status, StatusCode::BAD_REQUEST);

    let renamed = c.call("PUT", &format!("/servers/{id}"), &token, Some(json!({"server": {"name": "vm-b"}}))).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    let shown = renamed.body["server"].clone();
    assert_eq!(shown["name"], "vm-b");
    assert!(shown.get("OS-EXT-STS:vm_state").is_none() && shown.get("progress").is_none(), "{shown}");
    let later =
        c.call_v("2.75", "PUT", &format!("/servers/{id}"), &token, Some(json!({"server": {"name": "vm-c"}}))).await;
    assert!(later.body["server"].get("OS-EXT-STS:vm_state").is_some(), "{}", later.body);

    let admin = c.admin().await;
    let old = c.call_v("2.35", "GET", &format!("/os-quota-sets/{project}"), &admin, None).await;
    assert!(old.body["quota_set"].get("floating_ips").is_some(), "{}", old.body);
    let new = c.call_v("2.57", "GET", &format!("/os-quota-sets/{project}"), &admin, None).await;
    let q = new.body["quota_set"].clone();
    assert!(q.get("floating_ips").is_none() && q.get("injected_files").is_none() && q["metadata_items"] == 128, "{q}");
    let path = format!("/os-quota-sets/{project}");
    let refused = c.call_v("2.57", "PUT", &path, &admin, Some(json!({"quota_set": {"floating_ips": 5}}))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);

    let versions = stratus_test_support::send(&c.router, "GET", "/", Some(&token), None, &[]).await;
    assert_eq!(versions.status, StatusCode::OK);
    assert_eq!(versions.json()["versions"][0]["id"], "v2.0");
    assert!(versions.headers.get("x-compute-request-id").is_some());
}

#[tokio::test]
async fn answers_follow_the_microversion() {
    each_engine!(microversion_shapes);
}

async fn reserved_hosts(engine: Engine) {
    // The reservation service's hand on compute: a held host takes only its
    // reservation's servers, of its project; the other host stays shared.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (p1, alice) = c.member("p1").await;
    let (_, bob) = c.member("p2").await;
    let admin = c.admin().await;
    let hold = json!({"reservation": {"id": "res-1", "project_id": p1}});
    let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &alice, Some(hold.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only an admin (the reservation service) holds hosts");
    let r = c.call("PUT", "/os-hypervisors/nowhere/reservation", &admin, Some(hold.clone())).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(json!({"reservation": {"id": ""}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(hold.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "idempotent: {}", r.body);
    }
    let other = json!({"reservation": {"id": "res-2", "project_id": p1}});
    let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(other)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "one reservation holds a host at a time");
    let with_hint = |name: &str, res: &str| {
        let mut b = server_body(&image, &net, name);
        b["OS-SCH-HNT:scheduler_hints"] = json!({"reservation": res});
        b
    };
    let host_of = |id: String| {
        let c = &c;
        async move { c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap() }
    };
    let mine = create(&c, &alice, with_hint("mine", "res-1")).await;
    c.wait_status(&alice, &mine, "ACTIVE").await;
    assert_eq!(host_of(mine.clone()).await, "host-0");
    for _ in 0..3 {
        let shared = create(&c, &alice, server_body(&image, &net, "shared")).await;
        c.wait_status(&alice, &shared, "ACTIVE").await;
        assert_eq!(host_of(shared).await, "host-1", "the held host left the shared pool");
    }
    // novaclient's spelling of the hints, from another project: no host for it.
    let mut theirs = server_body(&image, &net, "theirs");
    theirs["os:scheduler_hints"] = json!({"reservation": "res-1"});
    let id = create(&c, &bob, theirs).await;
    c.wait_status(&bob, &id, "ERROR").await;
    let unknown = create(&c, &alice, with_hint("unknown", "res-9")).await;
    c.wait_status(&alice, &unknown, "ERROR").await;
    // Given back: the host is shared again (idempotently).
    for _ in 0..2 {
        let r = c.call("DELETE", "/os-hypervisors/host-0/reservation/res-1", &admin, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let row = c.compute.store.host_get("host-0").await.unwrap().unwrap();
    assert_eq!(row.reservation, None);
}

#[tokio::test]
async fn reserved_hosts_take_only_their_reservation() {
    each_engine!(reserved_hosts);
}

async fn host_slices(engine: Engine) {
    // A `flavor:instance` reservation holds a slice of a host: its flavor's servers go
    // into the slice; nobody else's may use the room it holds. Hosts of 4 vCPUs hand
    // out 64 (16 per core), 4096 MB of RAM 5376.
    let mut opts = Options::default();
    opts.fake.capacity.vcpus = 4;
    opts.fake.capacity.ram_mb = 4096;
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let (p1, alice) = c.member("p1").await;
    let (_, bob) = c.member("p2").await;
    let admin = c.admin().await;
    let slice = json!({"reservation": {"id": "fl-1", "project_id": p1, "vcpus": 2, "memory_mb": 5000, "disk_gb": 2}});
    let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &alice, Some(slice.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let bad = json!({"reservation": {"id": "fl-1", "project_id": p1, "vcpus": -1}});
    assert_eq!(
        c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(bad)).await.status,
        StatusCode::BAD_REQUEST
    );
    for _ in 0..2 {
        let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(slice.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "idempotent: {}", r.body);
        assert_eq!(r.body["reservation"]["memory_mb"], 5000);
    }
    let row = c.compute.store.host_get("host-0").await.unwrap().unwrap();
    assert_eq!((row.slice_free_vcpus, row.slice_free_ram, row.slice_free_disk), (2, 5000, 2), "held once");
    let whole = json!({"reservation": {"id": "res-9", "project_id": p1}});
    let r = c.call("PUT", "/os-hypervisors/host-0/reservation", &admin, Some(whole)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a sliced host is not held whole: {}", r.body);
    // The reservation's flavor, as the reservation service makes it.
    let flavor = json!({"flavor": {"name": "reservation:fl-1", "id": "fl-1", "vcpus": 1, "ram": 2500, "disk": 1,
                                   "os-flavor-access:is_public": false}});
    assert_eq!(c.call("POST", "/flavors", &admin, Some(flavor)).await.status, StatusCode::OK);
    let specs = json!({"extra_specs": {"aggregate_instance_extra_specs:reservation": "fl-1"}});
    assert_eq!(c.call("POST", "/flavors/fl-1/os-extra_specs", &admin, Some(specs)).await.status, StatusCode::OK);
    let access = json!({"addTenantAccess": {"tenant": p1}});
    assert_eq!(c.call("POST", "/flavors/fl-1/action", &admin, Some(access)).await.status, StatusCode::OK);
    let host_of = |id: String| {
        let c = &c;
        async move { c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap() }
    };
    // 5376 - 5000 = 376 MB of host-0 are left to others: a 512 MB server goes elsewhere.
    let plain = create(&c, &bob, server_body(&image, &net, "plain")).await;
    c.wait_status(&bob, &plain, "ACTIVE").await;
    assert_eq!(host_of(plain).await, "host-1", "the slice's room is not free to others");
    let in_slice = |name: &str| {
        let mut b = server_body(&image, &net, name);
        b["server"]["flavorRef"] = json!("fl-1");
        b
    };
    let mut mine = Vec::new();
    for name in ["r1", "r2"] {
        let id = create(&c, &alice, in_slice(name)).await;
        c.wait_status(&alice, &id, "ACTIVE").await;
        assert_eq!(host_of(id.clone()).await, "host-0", "the reservation's servers go into its slice");
        mine.push(id);
    }
    let row = c.compute.store.host_get("host-0").await.unwrap().unwrap();
    assert_eq!((row.used_ram, row.slice_free_ram), (5000, 0));
    let third = create(&c, &alice, in_slice("r3")).await;
    c.wait_status(&alice, &third, "ERROR").await;
    let mut hinted = in_slice("elsewhere");
    hinted["OS-SCH-HNT:scheduler_hints"] = json!({"reservation": "res-9"});
    let r = c.call("POST", "/servers", &alice, Some(hinted)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the flavor's reservation, not another: {}", r.body);
    // Listed as the reservation's (how the lease's end finds them).
    let r = c.call("GET", "/servers/detail?all_tenants=1&host=host-0&reservation=fl-1", &admin, None).await;
    assert_eq!(r.body["servers"].as_array().unwrap().len(), 2, "{}", r.body);
    // A server gone gives its room back to the slice; the end gives the slice back.
    c.call("DELETE", &format!("/servers/{}", mine[0]), &alice, None).await;
    c.wait_status(&alice, &mine[0], "GONE").await;
    let freed = || async {
        let row = c.compute.store.host_get("host-0").await.unwrap().unwrap();
        (row.used_ram, row.slice_free_ram)
    };
    eventually("the slice has its room back", || async { freed().await == (2500, 2500) }).await;
    for _ in 0..2 {
        let r = c.call("DELETE", "/os-hypervisors/host-0/reservation/fl-1", &admin, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let row = c.compute.store.host_get("host-0").await.unwrap().unwrap();
    assert_eq!((row.used_ram, row.slice_free_ram, row.slices.len()), (2500, 0, 0), "the server left stays");
    c.call("DELETE", &format!("/servers/{}", mine[1]), &alice, None).await;
    c.wait_status(&alice, &mine[1], "GONE").await;
    eventually("nothing is held after", || async { freed().await == (0, 0) }).await;
}

#[tokio::test]
async fn host_slices_keep_room_for_flavor_reservations() {
    each_engine!(host_slices);
}

async fn migration_ids(engine: Engine) {
    // Resizes recorded at once (their transactions overlapping) get distinct ids.
    let c = Cloud::start(engine).await;
    let store = c.compute.store.clone();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut tx = store.db.pool.begin().await?;
            stratus_compute::store::Store::migration_insert_in(&mut tx, &format!("server-{i}"), "p", "u", "h").await?;
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            tx.commit().await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every resize's record commits");
    }
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM compute_migrations ORDER BY id").fetch_all(&store.db.pool).await.unwrap();
    assert_eq!(ids, (1..=12).collect::<Vec<i64>>());
}

#[tokio::test]
async fn concurrent_resizes_get_distinct_migration_ids() {
    each_engine!(migration_ids);
}

async fn operators_manage_hosts(engine: Engine) {
    // Taking hosts out of scheduling (os-services, and os-hosts before 2.43): servers
    // go to the others; the old host view shows each project's share.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (p1, alice) = c.member("p1").await;
    let admin = c.admin().await;
    let host_of = |id: String| {
        let c = &c;
        async move { c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap() }
    };
    // 2.53: by service id (the host), with a reason.
    let disable = json!({"status": "disabled", "disabled_reason": "disk swap"});
    let r = c.call_v("2.53", "PUT", "/os-services/host-0", &alice, Some(disable.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c.call_v("2.53", "PUT", "/os-services/host-0", &admin, Some(disable)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let svc = &r.body["service"];
    assert_eq!((svc["status"].as_str(), svc["disabled_reason"].as_str()), (Some("disabled"), Some("disk swap")));
    for _ in 0..3 {
        let id = create(&c, &alice, server_body(&image, &net, "elsewhere")).await;
        c.wait_status(&alice, &id, "ACTIVE").await;
        assert_eq!(host_of(id).await, "host-1", "a disabled host takes no new server");
    }
    for bad in
        [json!({"status": "off"}), json!({"status": "enabled", "disabled_reason": "x"}), json!({"forced_down": true})]
    {
        let r = c.call_v("2.53", "PUT", "/os-services/host-0", &admin, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let r = c.call_v("2.53", "PUT", "/os-services/nowhere", &admin, Some(json!({"status": "enabled"}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Before 2.53: actions naming host and binary. Disabling host-1 too leaves none.
    let both = |host: &str| json!({"host": host, "binary": "nova-compute"});
    let r = c.call_v("2.1", "PUT", "/os-services/disable", &admin, Some(both("host-1"))).await;
    assert_eq!((r.status, r.body["service"]["status"].as_str()), (StatusCode::OK, Some("disabled")));
    let id = create(&c, &alice, server_body(&image, &net, "nowhere")).await;
    c.wait_status(&alice, &id, "ERROR").await;
    let r = c.call_v("2.1", "PUT", "/os-services/enable", &admin, Some(both("host-0"))).await;
    assert_eq!((r.status, r.body["service"]["status"].as_str()), (StatusCode::OK, Some("enabled")));
    let mut reason = both("host-1");
    reason["disabled_reason"] = json!("bios");
    let r = c.call_v("2.1", "PUT", "/os-services/disable-log-reason", &admin, Some(reason)).await;
    assert_eq!(r.body["service"]["disabled_reason"], "bios");
    let listed = c.call_v("2.1", "GET", "/os-services?binary=nova-compute", &admin, None).await.body;
    let states: Vec<(&str, &str)> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["host"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("host-0", "enabled"), ("host-1", "disabled")]);
    let wrong = json!({"host": "host-0", "binary": "nova-scheduler"});
    assert_eq!(
        c.call_v("2.1", "PUT", "/os-services/disable", &admin, Some(wrong)).await.status,
        StatusCode::BAD_REQUEST
    );

    // os-hosts (before 2.43): list by zone, a host's use by project, enable/disable.
    let hosts = c.call_v("2.42", "GET", "/os-hosts", &admin, None).await.body;
    assert!(hosts["hosts"].as_array().unwrap().iter().any(|h| h["host_name"] == "host-0" && h["service"] == "compute"));
    let zone = c.call_v("2.42", "GET", "/os-hosts?zone=internal", &admin, None).await.body;
    assert_eq!(zone["hosts"].as_array().unwrap().len(), 1, "the scheduler alone: {zone}");
    let blank = c.call_v("2.42", "GET", "/os-hosts?zone=", &admin, None).await.body;
    assert_eq!(blank["hosts"].as_array().unwrap().len(), 3, "a blank zone is no filter: {blank}");
    let shown = c.call_v("2.42", "GET", "/os-hosts/host-1", &admin, None).await.body;
    let lines = shown["host"].as_array().unwrap();
    assert_eq!(lines[0]["resource"]["project"], "(total)");
    assert!(
        lines.iter().any(|l| l["resource"]["project"] == json!(p1) && l["resource"]["cpu"].as_i64() > Some(0)),
        "{shown}"
    );
    let r = c.call_v("2.42", "PUT", "/os-hosts/host-1", &admin, Some(json!({"status": "enable"}))).await;
    assert_eq!(r.body, json!({"host": "host-1", "status": "enabled"}));
    for (body, want) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"status": "sideways"}), StatusCode::BAD_REQUEST),
        (json!({"maintenance_mode": "on"}), StatusCode::BAD_REQUEST),
        (json!({"maintenance_mode": "enable"}), StatusCode::NOT_IMPLEMENTED),
    ] {
        let r = c.call_v("2.42", "PUT", "/os-hosts/host-1", &admin, Some(body.clone())).await;
        assert_eq!(r.status, want, "{body}: {}", r.body);
    }
    assert_eq!(
        c.call_v("2.42", "GET", "/os-hosts/host-1/reboot", &admin, None).await.status,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(c.call_v("2.42", "GET", "/os-hosts/nowhere/reboot", &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("2.42", "GET", "/os-hosts/host-1/reboot", &alice, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call_v("2.42", "GET", "/os-hosts", &alice, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call_v("2.43", "GET", "/os-hosts", &admin, None).await.status, StatusCode::NOT_FOUND);

    // Hypervisors by a piece of their name, with their servers (before 2.53).
    let found = c.call_v("2.1", "GET", "/os-hypervisors/host-/search", &admin, None).await.body;
    assert_eq!(found["hypervisors"].as_array().unwrap().len(), 2, "{found}");
    let with = c.call_v("2.1", "GET", "/os-hypervisors/host-1/servers", &admin, None).await.body;
    let on_1 = with["hypervisors"][0]["servers"].as_array().unwrap();
    assert_eq!(on_1.len(), 3, "{with}");
    assert!(on_1.iter().all(|s| s["name"] == "elsewhere" && s["uuid"].is_string()));
    assert_eq!(c.call_v("2.1", "GET", "/os-hypervisors/zzz/search", &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("2.1", "GET", "/os-hypervisors/host/search", &alice, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        c.call_v("2.53", "GET", "/os-hypervisors/host/search", &admin, None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn operators_take_hosts_out_of_scheduling() {
    each_engine!(operators_manage_hosts);
}

async fn server_tags(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (_, token) = c.member("tagger").await;
    let (_, stranger) = c.member("not-the-owner").await;
    let mut body = server_body(&image, &net, "tagged");
    body["server"]["tags"] = json!(["web", "web", "prod"]);
    let id = create(&c, &token, body).await;
    let tags = |t: &'static str| format!("/servers/{id}/tags{t}");
    let v = "2.26";
    assert_eq!(c.call_v(v, "GET", &tags(""), &token, None).await.body["tags"], json!(["web", "prod"]));
    // Before 2.26 the sub-resource does not exist; another project's member finds no server.
    assert_eq!(c.call_v("2.25", "GET", &tags(""), &token, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v(v, "GET", &tags(""), &stranger, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v(v, "PUT", &tags("/x"), &stranger, None).await.status, StatusCode::NOT_FOUND);
    // One tag: added (201), again (204), checked, removed, gone (404).
    assert_eq!(c.call_v(v, "PUT", &tags("/db"), &token, None).await.status, StatusCode::CREATED);
    assert_eq!(c.call_v(v, "PUT", &tags("/db"), &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v(v, "GET", &tags("/db"), &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v(v, "DELETE", &tags("/db"), &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v(v, "GET", &tags("/db"), &token, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v(v, "DELETE", &tags("/db"), &token, None).await.status, StatusCode::NOT_FOUND);
    // All at once; bad tags are refused and change nothing; shown on the server.
    let r = c.call_v(v, "PUT", &tags(""), &token, Some(json!({"tags": ["a", "b"]}))).await;
    assert_eq!((r.status, &r.body["tags"]), (StatusCode::OK, &json!(["a", "b"])));
    for bad in [json!({"tags": ["a,b"]}), json!({"tags": ["x".repeat(61)]}), json!({"tags": "a"}), json!({})] {
        assert_eq!(c.call_v(v, "PUT", &tags(""), &token, Some(bad)).await.status, StatusCode::BAD_REQUEST);
    }
    let many: Vec<String> = (0..51).map(|i| format!("t{i}")).collect();
    let r = c.call_v(v, "PUT", &tags(""), &token, Some(json!({ "tags": many }))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let shown = c.call_v(v, "GET", &format!("/servers/{id}"), &token, None).await;
    assert_eq!(shown.body["server"]["tags"], json!(["a", "b"]));
    assert_eq!(c.call_v(v, "DELETE", &tags(""), &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v(v, "GET", &tags(""), &token, None).await.body["tags"], json!([]));
    let mut refused = server_body(&image, &net, "badly-tagged");
    refused["server"]["tags"] = json!(["no/slash"]);
    assert_eq!(c.call("POST", "/servers", &token, Some(refused)).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn server_tags_are_a_sub_resource_from_2_26() {
    each_engine!(server_tags);
}

async fn deleted_server_actions(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (_, token) = c.member("gone").await;
    let (_, stranger) = c.member("gone-stranger").await;
    let id = create(&c, &token, server_body(&image, &net, "short-lived")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    // No soft delete: restore and forceDelete find the server and refuse; an unknown one is 404.
    for action in ["restore", "forceDelete"] {
        let body = Some(json!({ action: null }));
        let r = c.call("POST", &format!("/servers/{id}/action"), &token, body.clone()).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = c.call("POST", "/servers/00000000-0000-0000-0000-000000000000/action", &token, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
    let path = format!("/servers/{id}/os-instance-actions");
    // From 2.21 a deleted server's actions are still listed, to its project only.
    let r = c.call_v("2.21", "GET", &path, &token, None).await;
    let mut actions: Vec<&str> =
        r.body["instanceActions"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    actions.sort();
    assert_eq!(actions, ["create", "delete"], "{}", r.body);
    assert_eq!(c.call_v("2.20", "GET", &path, &token, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("2.21", "GET", &path, &stranger, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deleted_servers_keep_their_actions_and_none_is_soft_deleted() {
    each_engine!(deleted_server_actions);
}

/// Image `id` as the admin sees it; `None` when it does not exist.
async fn image_of(c: &Cloud, id: &str) -> Option<Value> {
    let admin = c.admin().await;
    let url = format!("{}/v2/images/{id}", c.image_url);
    let r = reqwest::Client::new().get(url).header("x-auth-token", &admin).send().await.unwrap();
    if r.status().as_u16() == 404 {
        return None;
    }
    Some(r.json().await.unwrap())
}

async fn task_state_of(c: &Cloud, token: &str, id: &str) -> Value {
    c.call("GET", &format!("/servers/{id}"), token, None).await.body["server"]["OS-EXT-STS:task_state"].clone()
}

async fn snapshots(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (project, token) = c.member("snapper").await;
    let (_, stranger) = c.member("snap-stranger").await;
    let id = create(&c, &token, server_body(&image, &net, "to-snap")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let action = format!("/servers/{id}/action");
    let snap = |name: &str| Some(json!({"createImage": {"name": name, "metadata": {"purpose": "backup"}}}));

    // From 2.45 the answer is the image's id; the image is the caller's, marked a snapshot.
    let r = c.call_v("2.45", "POST", &action, &token, snap("snap-1")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let image_id = r.body["image_id"].as_str().unwrap().to_string();
    eventually("the snapshot is uploaded", || async {
        image_of(&c, &image_id).await.is_some_and(|i| i["status"] == "active")
    })
    .await;
    let img = image_of(&c, &image_id).await.unwrap();
    assert_eq!((img["owner"].as_str(), img["visibility"].as_str()), (Some(project.as_str()), Some("private")));
    assert_eq!((img["image_type"].as_str(), img["instance_uuid"].as_str()), (Some("snapshot"), Some(id.as_str())));
    assert_eq!((img["base_image_ref"].as_str(), img["purpose"].as_str()), (Some(image.as_str()), Some("backup")));
    assert_eq!((img["disk_format"].as_str(), img["size"].as_i64()), (Some("raw"), Some(64 << 10)), "{img}");
    eventually("the snapshot's task and action end", || async {
        let open = sqlx::query("SELECT 1 FROM compute_actions WHERE server_id = $1 AND finish_time IS NULL")
            .bind(&id)
            .fetch_all(&c.compute.store.db.pool)
            .await
            .unwrap();
        task_state_of(&c, &token, &id).await.is_null() && open.is_empty()
    })
    .await;
    let r = c.call_v("2.21", "GET", &format!("/servers/{id}/os-instance-actions"), &token, None).await;
    assert!(r.body["instanceActions"].as_array().unwrap().iter().any(|a| a["action"] == "createImage"), "{}", r.body);
    // Nova's image proxy (before 2.36) shows it, lists it by server and type, and sets,
    // reads and removes its metadata as the caller.
    let shown = c.call("GET", &format!("/images/{image_id}"), &token, None).await;
    let view = &shown.body["image"];
    assert_eq!((view["status"].as_str(), view["progress"].as_i64()), (Some("ACTIVE"), Some(100)), "{}", shown.body);
    assert_eq!(
        (view["server"]["id"].as_str(), view["metadata"]["purpose"].as_str()),
        (Some(id.as_str()), Some("backup"))
    );
    assert_eq!(
        c.call_v("2.36", "GET", &format!("/images/{image_id}"), &token, None).await.status,
        StatusCode::NOT_FOUND
    );
    let listed = c.call("GET", &format!("/images/detail?server={id}&type=snapshot"), &token, None).await;
    let ids: Vec<&str> = listed.body["images"].as_array().unwrap().iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, [image_id.as_str()], "{}", listed.body);
    let meta = format!("/images/{image_id}/metadata");
    let r = c.call("POST", &meta, &token, Some(json!({"metadata": {"tier": "gold"}}))).await;
    assert_eq!((r.status, r.body["metadata"]["tier"].as_str()), (StatusCode::OK, Some("gold")), "{}", r.body);
    assert_eq!(c.call("GET", &format!("{meta}/tier"), &token, None).await.body["meta"]["tier"], "gold");
    assert_eq!(c.call("DELETE", &format!("{meta}/tier"), &token, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("{meta}/tier"), &token, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("/images/{image_id}"), &stranger, None).await.status, StatusCode::NOT_FOUND);
    // A server booted from the snapshot runs.
    let from_snap = create(&c, &token, server_body(&image_id, &net, "from-snap")).await;
    c.wait_status(&token, &from_snap, "ACTIVE").await;

    // Before 2.45 the image's URL is the Location header.
    let reply =
        stratus_test_support::send(&c.router, "POST", &format!("/v2.1{action}"), Some(&token), snap("snap-2"), &[])
            .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.headers["location"].to_str().unwrap().to_string();
    let second = location.rsplit('/').next().unwrap().to_string();
    assert!(location.contains("/v2/images/") && image_of(&c, &second).await.is_some(), "{location}");
    eventually("the second snapshot ends", || async { task_state_of(&c, &token, &id).await.is_null() }).await;
    assert_eq!(c.call("DELETE", &format!("/images/{second}"), &token, None).await.status, StatusCode::NO_CONTENT);
    assert!(image_of(&c, &second).await.is_none(), "deleted through the proxy");
    // A server busy with another task is refused; so are bad requests, and another project's.
    let mut s = c.compute.store.server_get(&id).await.unwrap().unwrap();
    s.task_state = Some(stratus_compute::store::TaskState::Pausing);
    assert!(c.compute.store.server_save(&mut s, None).await.unwrap());
    assert_eq!(c.call("POST", &action, &token, snap("too-soon")).await.status, StatusCode::CONFLICT);
    s.task_state = None;
    assert!(c.compute.store.server_save(&mut s, None).await.unwrap());
    for bad in [
        json!({"createImage": {}}),
        json!({"createImage": {"name": " "}}),
        json!({"createImage": {"name": "x", "metadata": [1]}}),
        json!({"createImage": {"name": "x", "metadata": {"id": "mine"}}}),
    ] {
        assert_eq!(c.call("POST", &action, &token, Some(bad)).await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(c.call("POST", &action, &stranger, snap("x")).await.status, StatusCode::NOT_FOUND);

    // Backups rotate: with rotation 2, the third daily backup takes the first one's place.
    let mut backups = Vec::new();
    for n in 1..=3 {
        let body = json!({"createBackup": {"name": format!("daily-{n}"), "backup_type": "daily", "rotation": 2}});
        let r = c.call_v("2.45", "POST", &action, &token, Some(body)).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        backups.push(r.body["image_id"].as_str().unwrap().to_string());
        eventually("the backup ends", || async { task_state_of(&c, &token, &id).await.is_null() }).await;
    }
    eventually("the oldest backup goes with the rotation", || async { image_of(&c, &backups[0]).await.is_none() })
        .await;
    for b in &backups[1..] {
        let img = image_of(&c, b).await.unwrap();
        assert_eq!((img["image_type"].as_str(), img["backup_type"].as_str()), (Some("backup"), Some("daily")), "{img}");
    }
    let bad_backup = json!({"createBackup": {"name": "x", "backup_type": "daily", "rotation": -1}});
    assert_eq!(c.call("POST", &action, &token, Some(bad_backup)).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        c.call("POST", &action, &token, Some(json!({"createBackup": {"name": "x", "rotation": 1}}))).await.status,
        StatusCode::BAD_REQUEST
    );

    // A snapshot that fails on the host (its guest vanished) ends the task, and its image goes.
    for d in &c.drivers {
        use stratus_compute_agent::driver::HypervisorDriver;
        d.destroy(&id).await.unwrap();
    }
    let r = c.call_v("2.45", "POST", &action, &token, snap("doomed")).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let doomed = r.body["image_id"].as_str().unwrap().to_string();
    eventually("the failed snapshot's image is deleted", || async { image_of(&c, &doomed).await.is_none() }).await;
    eventually("the failed snapshot's task ends", || async { task_state_of(&c, &token, &id).await.is_null() }).await;

    // A crash after the task was recorded and before the image was made: the reconciler
    // sends the command again, the agent finds no image, the task ends.
    let mut s = c.compute.store.server_get(&from_snap).await.unwrap().unwrap();
    s.task_state = Some(stratus_compute::store::TaskState::ImageSnapshot);
    s.control.snapshot_image = Some(uuid::Uuid::new_v4().to_string());
    assert!(c.compute.store.server_save(&mut s, None).await.unwrap());
    c.compute.reconcile().await.unwrap();
    eventually("the interrupted snapshot's task ends", || async {
        let s = c.compute.store.server_get(&from_snap).await.unwrap().unwrap();
        s.task_state.is_none() && s.control.snapshot_image.is_none()
    })
    .await;
    for server in [&id, &from_snap] {
        assert_eq!(c.call("DELETE", &format!("/servers/{server}"), &token, None).await.status, StatusCode::NO_CONTENT);
        c.wait_status(&token, server, "GONE").await;
    }
}

#[tokio::test]
async fn snapshots_upload_the_disk_into_a_new_image_and_failures_leave_none() {
    each_engine!(snapshots);
}

async fn reset_state(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let admin = c.admin().await;
    let (_, token) = c.member("reset").await;
    let id = create(&c, &token, server_body(&image, &net, "to-reset")).await;
    c.wait_status(&token, &id, "ACTIVE").await;
    let action = format!("/servers/{id}/action");
    let reset = |state: &str| Some(json!({"os-resetState": {"state": state}}));
    // The admin's tool: a member is refused, a bad state or an unknown server too.
    assert_eq!(c.call("POST", &action, &token, reset("error")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("POST", &action, &admin, reset("paused")).await.status, StatusCode::BAD_REQUEST);
    let missing = "/servers/00000000-0000-0000-0000-000000000000/action";
    assert_eq!(c.call("POST", missing, &admin, reset("error")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.call("POST", missing, &admin, Some(json!({"migrate": null}))).await.status,
        StatusCode::NOT_FOUND,
        "an action on a server that does not exist is 404 before it is 501"
    );
    assert_eq!(c.call("POST", &action, &admin, reset("error")).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "ERROR").await;
    let listed = c.call("GET", "/servers?status=ERROR", &token, None).await;
    assert_eq!(listed.body["servers"].as_array().unwrap().len(), 1, "{}", listed.body);
    assert_eq!(c.call("POST", &action, &admin, reset("active")).await.status, StatusCode::ACCEPTED);
    c.wait_status(&token, &id, "ACTIVE").await;
    // In ERROR the server can still be deleted, and nothing is left.
    assert_eq!(c.call("POST", &action, &admin, reset("error")).await.status, StatusCode::ACCEPTED);
    assert_eq!(c.call("DELETE", &format!("/servers/{id}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &id, "GONE").await;
}

#[tokio::test]
async fn an_admin_resets_a_servers_state() {
    each_engine!(reset_state);
}

async fn aggregates(engine: Engine) {
    // Host aggregates: the admin's; one with a zone puts its hosts in that zone, for
    // the scheduler and os-availability-zone; a host is in one zone only.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (_, alice) = c.member("p1").await;
    let admin = c.admin().await;
    for (method, path) in [("GET", "/os-aggregates"), ("POST", "/os-aggregates"), ("GET", "/os-aggregates/1")] {
        let r = c.call(method, path, &alice, Some(json!({"aggregate": {"name": "x"}}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    for bad in [json!(""), json!("x".repeat(256)), json!(" padded"), json!(7)] {
        let r = c.call("POST", "/os-aggregates", &admin, Some(json!({"aggregate": {"name": bad}}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let made = c
        .call_v(
            "2.41",
            "POST",
            "/os-aggregates",
            &admin,
            Some(json!({"aggregate": {"name": "fast", "availability_zone": "az-fast"}})),
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let agg = &made.body["aggregate"];
    assert!(agg.get("hosts").is_none() && agg["uuid"].is_string() && agg["availability_zone"] == "az-fast", "{agg}");
    let id = agg["id"].as_i64().unwrap();
    let r = c.call("POST", "/os-aggregates", &admin, Some(json!({"aggregate": {"name": "fast"}}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "names are unique");
    let act = |body: Value| {
        let (c, admin) = (&c, &admin);
        async move { c.call("POST", &format!("/os-aggregates/{id}/action"), admin, Some(body)).await }
    };
    assert_eq!(act(json!({"add_host": {"host": "nowhere"}})).await.status, StatusCode::NOT_FOUND);
    let r = act(json!({"add_host": {"host": "host-0"}})).await;
    assert_eq!((r.status, r.body["aggregate"]["hosts"].clone()), (StatusCode::OK, json!(["host-0"])), "{}", r.body);
    assert_eq!(act(json!({"add_host": {"host": "host-0"}})).await.status, StatusCode::CONFLICT);
    // Another zone for the same host is refused; an aggregate without a zone takes it.
    let slow = c
        .call(
            "POST",
            "/os-aggregates",
            &admin,
            Some(json!({"aggregate": {"name": "slow", "availability_zone": "az-slow"}})),
        )
        .await;
    let slow_id = slow.body["aggregate"]["id"].as_i64().unwrap();
    let r = c
        .call(
            "POST",
            &format!("/os-aggregates/{slow_id}/action"),
            &admin,
            Some(json!({"add_host": {"host": "host-0"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let plain = c.call("POST", "/os-aggregates", &admin, Some(json!({"aggregate": {"name": "gpu"}}))).await;
    let plain_id = plain.body["aggregate"]["id"].as_i64().unwrap();
    let r = c
        .call(
            "POST",
            &format!("/os-aggregates/{plain_id}/action"),
            &admin,
            Some(json!({"add_host": {"host": "host-0"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The zone is the host's: listed, and where servers asking for it land.
    let zones = c.call("GET", "/os-availability-zone", &alice, None).await;
    let names: Vec<&str> =
        zones.body["availabilityZoneInfo"].as_array().unwrap().iter().filter_map(|z| z["zoneName"].as_str()).collect();
    assert!(names.contains(&"az-fast") && names.contains(&"nova"), "{}", zones.body);
    let host_of = |id: String| {
        let c = &c;
        async move { c.compute.store.server_get(&id).await.unwrap().unwrap().host.unwrap() }
    };
    for (zone, host) in [("az-fast", "host-0"), ("nova", "host-1")] {
        let mut b = server_body(&image, &net, zone);
        b["server"]["availability_zone"] = json!(zone);
        let s = create(&c, &alice, b).await;
        let shown = c.wait_status(&alice, &s, "ACTIVE").await;
        assert_eq!(host_of(s.clone()).await, host);
        assert_eq!(shown["OS-EXT-AZ:availability_zone"], zone);
    }
    // Metadata: set and removed; a null zone takes the aggregate (and its host) out of it.
    let r = act(json!({"set_metadata": {"metadata": {"ssd": "true", "availability_zone": null}}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["aggregate"]["metadata"].clone(), r.body["aggregate"]["availability_zone"].clone()),
        (json!({"ssd": "true"}), Value::Null)
    );
    assert_eq!(c.compute.store.host_get("host-0").await.unwrap().unwrap().availability_zone, "nova");
    let r = c
        .call(
            "PUT",
            &format!("/os-aggregates/{id}"),
            &admin,
            Some(json!({"aggregate": {"name": "faster", "availability_zone": "az-2"}})),
        )
        .await;
    assert_eq!((r.status, r.body["aggregate"]["name"].clone()), (StatusCode::OK, json!("faster")), "{}", r.body);
    assert!(r.body["aggregate"]["updated_at"].is_string());
    assert_eq!(c.compute.store.host_get("host-0").await.unwrap().unwrap().availability_zone, "az-2");
    let r = c.call("PUT", &format!("/os-aggregates/{id}"), &admin, Some(json!({"aggregate": {"name": "gpu"}}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Deleted only when empty; a host it does not hold cannot leave it.
    assert_eq!(c.call("DELETE", &format!("/os-aggregates/{id}"), &admin, None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"remove_host": {"host": "host-1"}})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(act(json!({"remove_host": {"host": "host-0"}})).await.status, StatusCode::OK);
    assert_eq!(c.compute.store.host_get("host-0").await.unwrap().unwrap().availability_zone, "nova");
    assert_eq!(c.call("DELETE", &format!("/os-aggregates/{id}"), &admin, None).await.status, StatusCode::OK);
    assert_eq!(c.call("GET", &format!("/os-aggregates/{id}"), &admin, None).await.status, StatusCode::NOT_FOUND);
    let uuid = plain.body["aggregate"]["uuid"].as_str().map(str::to_string);
    let listed = c.call_v("2.41", "GET", "/os-aggregates", &admin, None).await;
    let names: Vec<&str> =
        listed.body["aggregates"].as_array().unwrap().iter().filter_map(|a| a["name"].as_str()).collect();
    assert_eq!(names, ["slow", "gpu"]);
    assert!(uuid.is_none(), "the uuid is shown from 2.41 only");
}

#[tokio::test]
async fn aggregates_group_hosts_and_give_them_zones() {
    each_engine!(aggregates);
}

async fn security_group_proxy(engine: Engine) {
    // Nova's os-security-groups below 2.36: the network service's groups in Nova's
    // shapes, with the caller's own rights.
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let (_, alice) = c.member("p1").await;
    let (_, bob) = c.member("p2").await;
    let r = c
        .call(
            "POST",
            "/os-security-groups",
            &alice,
            Some(json!({"security_group": {"name": "web", "description": "w"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sg = r.body["security_group"].clone();
    let id = sg["id"].as_str().unwrap().to_string();
    assert_eq!(
        (sg["name"].clone(), sg["rules"].clone()),
        (json!("web"), json!([])),
        "egress rules are not shown: {sg}"
    );
    let rule = |body: Value| {
        let (c, alice) = (&c, &alice);
        async move { c.call("POST", "/os-security-group-rules", alice, Some(json!({"security_group_rule": body}))).await }
    };
    let r = rule(
        json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let made = r.body["security_group_rule"].clone();
    assert_eq!(
        (made["from_port"].clone(), made["ip_range"]["cidr"].clone()),
        (json!(22), json!("10.0.0.0/8")),
        "{made}"
    );
    for (bad, why) in [
        (
            json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr": "10.0.0.0/8"}),
            "a duplicate",
        ),
        (
            json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 70000, "to_port": 22}),
            "a port out of range",
        ),
        (json!({"parent_group_id": id, "ip_protocol": "tcp", "from_port": 23, "to_port": 22}), "a range backwards"),
        (json!({"parent_group_id": id, "ip_protocol": "gre2", "from_port": 22, "to_port": 22}), "an unknown protocol"),
        (
            json!({"parent_group_id": "not-a-uuid", "ip_protocol": "tcp", "from_port": 22, "to_port": 22}),
            "a group id not a UUID",
        ),
    ] {
        assert_eq!(rule(bad).await.status, StatusCode::BAD_REQUEST, "{why}");
    }
    let nowhere = "0b8c5a2e-0000-4000-8000-000000000000";
    let r = rule(json!({"parent_group_id": nowhere, "ip_protocol": "tcp", "from_port": 22, "to_port": 22})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A rule from a peer group shows the group by name.
    let r = rule(json!({"parent_group_id": id, "ip_protocol": "udp", "from_port": 53, "to_port": 53, "group_id": id}))
        .await;
    assert_eq!(r.body["security_group_rule"]["group"]["name"], "web", "{}", r.body);
    let shown = c.call("GET", &format!("/os-security-groups/{id}"), &alice, None).await;
    assert_eq!(shown.body["security_group"]["rules"].as_array().unwrap().len(), 2, "{}", shown.body);
    // Another project's member sees none of it; 2.36 has no proxy.
    assert_eq!(c.call("GET", &format!("/os-security-groups/{id}"), &bob, None).await.status, StatusCode::NOT_FOUND);
    let listed = c.call("GET", "/os-security-groups", &bob, None).await;
    assert!(!listed.body.to_string().contains(&id), "{}", listed.body);
    assert_eq!(c.call_v("2.36", "GET", "/os-security-groups", &alice, None).await.status, StatusCode::NOT_FOUND);
    let r = c
        .call(
            "PUT",
            &format!("/os-security-groups/{id}"),
            &alice,
            Some(json!({"security_group": {"name": "web2", "description": "x"}})),
        )
        .await;
    assert_eq!(r.body["security_group"]["name"], "web2", "{}", r.body);
    let rid = made["id"].as_str().unwrap();
    assert_eq!(
        c.call("DELETE", &format!("/os-security-group-rules/{rid}"), &alice, None).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        c.call("DELETE", &format!("/os-security-group-rules/{rid}"), &alice, None).await.status,
        StatusCode::NOT_FOUND
    );
    // The default group stays; a server's groups are its ports'.
    let all = c.call("GET", "/os-security-groups", &alice, None).await;
    let default =
        all.body["security_groups"].as_array().unwrap().iter().find(|g| g["name"] == "default").unwrap()["id"].clone();
    let r = c.call("DELETE", &format!("/os-security-groups/{}", default.as_str().unwrap()), &alice, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let server = create(&c, &alice, server_body(&image, &net, "sg-server")).await;
    c.wait_status(&alice, &server, "ACTIVE").await;
    let of = c.call("GET", &format!("/servers/{server}/os-security-groups"), &alice, None).await;
    assert_eq!(of.body["security_groups"][0]["id"], default, "{}", of.body);
    assert_eq!(c.call("DELETE", &format!("/os-security-groups/{id}"), &alice, None).await.status, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &format!("/os-security-groups/{id}"), &alice, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_security_group_proxy_speaks_novas_shapes_with_the_callers_rights() {
    each_engine!(security_group_proxy);
}

async fn floating_ip_proxy(engine: Engine) {
    // Nova's os-floating-ips and add/removeFloatingIp below 2.36 and 2.44: the network
    // service's addresses, with the caller's own rights.
    let c = Cloud::start(engine).await;
    let (image, _, _) = c.basics().await;
    let admin = c.admin().await;
    let (_, alice) = c.member("p1").await;
    let (_, bob) = c.member("p2").await;
    let net = |token: &str, path: &str, body: Value| {
        let (c, token, path) = (&c, token.to_string(), path.to_string());
        async move { c.http(reqwest::Method::POST, format!("{}/v2.0/{path}", c.network_url), &token, Some(body)).await }
    };
    let public = net(&admin, "networks", json!({"network": {"name": "public", "router:external": true}})).await;
    let pid = public["network"]["id"].as_str().unwrap().to_string();
    net(&admin, "subnets", json!({"subnet": {"network_id": pid, "cidr": "172.30.0.0/24", "ip_version": 4}})).await;
    let own = net(&alice, "networks", json!({"network": {"name": "own"}})).await;
    let own_id = own["network"]["id"].as_str().unwrap().to_string();
    let sub =
        net(&alice, "subnets", json!({"subnet": {"network_id": own_id, "cidr": "10.50.0.0/24", "ip_version": 4}}))
            .await;
    let router =
        net(&alice, "routers", json!({"router": {"name": "r", "external_gateway_info": {"network_id": pid}}})).await;
    let rid = router["router"]["id"].as_str().unwrap();
    c.http(
        reqwest::Method::PUT,
        format!("{}/v2.0/routers/{rid}/add_router_interface", c.network_url),
        &alice,
        Some(json!({"subnet_id": sub["subnet"]["id"]})),
    )
    .await;
    let server = create(&c, &alice, server_body(&image, &own_id, "fip-server")).await;
    c.wait_status(&alice, &server, "ACTIVE").await;
    // The read-only network proxies show the caller's networks by label and CIDR.
    let nets = c.call("GET", "/os-tenant-networks", &alice, None).await;
    let mine = nets.body["networks"].as_array().unwrap().iter().find(|n| n["id"] == json!(own_id)).cloned();
    assert_eq!(mine, Some(json!({"id": own_id, "label": "own", "cidr": "10.50.0.0/24"})), "{}", nets.body);
    assert_eq!(c.call("GET", &format!("/os-networks/{own_id}"), &alice, None).await.body["network"]["label"], "own");
    assert_eq!(c.call("GET", &format!("/os-networks/{own_id}"), &bob, None).await.status, StatusCode::NOT_FOUND);

    assert_eq!(
        c.call("POST", "/os-floating-ips", &alice, Some(json!({"pool": "nowhere"}))).await.status,
        StatusCode::NOT_FOUND
    );
    let made = c.call("POST", "/os-floating-ips", &alice, Some(json!({"pool": "public"}))).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let fip = made.body["floating_ip"].clone();
    assert_eq!((fip["pool"].clone(), fip["instance_id"].clone()), (json!("public"), Value::Null), "{fip}");
    let (id, ip) = (fip["id"].as_str().unwrap().to_string(), fip["ip"].as_str().unwrap().to_string());
    let act = |body: Value| {
        let (c, alice, server) = (&c, &alice, &server);
        async move { c.call("POST", &format!("/servers/{server}/action"), alice, Some(body)).await }
    };
    assert_eq!(act(json!({"addFloatingIp": {"address": "0.0.0.0"}})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(act(json!({"addFloatingIp": {"address": ""}})).await.status, StatusCode::BAD_REQUEST);
    let r = act(json!({"addFloatingIp": {"address": ip}})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let shown = c.call("GET", &format!("/os-floating-ips/{id}"), &alice, None).await;
    assert_eq!(shown.body["floating_ip"]["instance_id"], json!(server), "{}", shown.body);
    assert!(shown.body["floating_ip"]["fixed_ip"].as_str().unwrap().starts_with("10.50.0."), "{}", shown.body);
    // A second address for the same port is refused; another project sees none of it.
    let second = c.call("POST", "/os-floating-ips", &alice, None).await;
    assert_eq!(second.status, StatusCode::OK, "the only pool is the default: {}", second.body);
    let ip2 = second.body["floating_ip"]["ip"].as_str().unwrap().to_string();
    assert_eq!(act(json!({"addFloatingIp": {"address": ip2}})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("GET", &format!("/os-floating-ips/{id}"), &bob, None).await.status, StatusCode::NOT_FOUND);
    let listed = c.call("GET", "/os-floating-ips", &alice, None).await;
    assert_eq!(listed.body["floating_ips"].as_array().unwrap().len(), 2, "{}", listed.body);
    assert_eq!(c.call_v("2.36", "GET", "/os-floating-ips", &alice, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        act(json!({"removeFloatingIp": {"address": ip2}})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not on it"
    );
    assert_eq!(act(json!({"removeFloatingIp": {"address": ip}})).await.status, StatusCode::ACCEPTED);
    let shown = c.call("GET", &format!("/os-floating-ips/{id}"), &alice, None).await;
    assert_eq!(shown.body["floating_ip"]["instance_id"], Value::Null);
    for f in [&id, second.body["floating_ip"]["id"].as_str().unwrap()] {
        assert_eq!(c.call("DELETE", &format!("/os-floating-ips/{f}"), &alice, None).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(c.call("DELETE", &format!("/os-floating-ips/{id}"), &alice, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_floating_ip_proxy_allocates_associates_and_releases() {
    each_engine!(floating_ip_proxy);
}
