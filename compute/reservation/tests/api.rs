//! Reservation API tests: in-process against a real database (SQLite, and PostgreSQL
//! when STRATUS_TEST_POSTGRES is set), with identity in-process and compute's hosts in
//! memory (the end-to-end tests lease real compute hosts).

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::db::Engine;
use stratus_reservation::app::Settings;
use stratus_reservation::compute::{Compute, FakeCompute};
use stratus_reservation::network::{FakeNetwork, Network};
use stratus_reservation::ReservationService;
use stratus_test_support::{each_engine, eventually, send, Identity};

struct Cloud {
    id: Identity,
    svc: Arc<ReservationService>,
    compute: Arc<FakeCompute>,
    network: Arc<FakeNetwork>,
    router: axum::Router,
    admin: String,
}

impl Cloud {
    /// A service over `hosts` fake hosts; its schedule runs unless `schedule` is false
    /// (then tests fire due events themselves).
    async fn start(engine: Engine, hosts: usize, schedule: bool, attempts: i64) -> Self {
        let settings = Settings { event_attempts: attempts, ..Self::settings() };
        Self::start_with(engine, hosts, schedule, settings).await
    }

    fn settings() -> Settings {
        Settings { public_url: "http://reservation".into(), ..Default::default() }
    }

    async fn start_with(engine: Engine, hosts: usize, schedule: bool, settings: Settings) -> Self {
        let id = Identity::start(engine, &[stratus_reservation::migrations::MIGRATIONS]).await;
        let compute = FakeCompute::with_hosts((1..=hosts).map(|i| format!("h{i}")));
        let network = Arc::new(FakeNetwork::default());
        network.networks.lock().unwrap().insert("public".into(), "203.0.113.0/24".into());
        let svc = Self::service(&id, compute.clone(), network.clone(), settings);
        if schedule {
            svc.start();
        }
        let router = stratus_reservation::api::router(svc.clone(), id.identity.verifier.clone(), 1 << 20);
        let admin = id.admin().await;
        Self { id, svc, compute, network, router, admin }
    }

    fn service(
        id: &Identity,
        compute: Arc<FakeCompute>,
        network: Arc<FakeNetwork>,
        settings: Settings,
    ) -> Arc<ReservationService> {
        ReservationService::new(
            stratus_reservation::store::Store::new(id.db.clone()),
            id.bus.clone(),
            compute as Arc<dyn Compute>,
            network as Arc<dyn Network>,
            settings,
        )
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = send(&self.router, method, path, Some(token), body, &[]).await;
        (r.status, r.json())
    }

    /// Makes hosts h1..=hN reservable, with `node_type` a for odd and b for even ones.
    async fn hosts(&self, n: usize) {
        for i in 1..=n {
            let t = if i % 2 == 1 { "a" } else { "b" };
            let (code, h) = self
                .call("POST", "/v1/os-hosts", &self.admin, Some(json!({"name": format!("h{i}"), "node_type": t})))
                .await;
            assert_eq!(code, StatusCode::CREATED, "{h}");
        }
    }

    async fn lease(&self, token: &str, name: &str, min: i64, max: i64, start: &str, end: &str) -> (StatusCode, Value) {
        let body = json!({"name": name, "start_date": start, "end_date": end, "events": [], "before_end_date": null,
            "reservations": [{"resource_type": "physical:host", "min": min, "max": max, "hypervisor_properties": "",
                              "resource_properties": ""}]});
        self.call("POST", "/v1/leases", token, Some(body)).await
    }

    async fn status(&self, token: &str, id: &str) -> String {
        let (_, l) = self.call("GET", &format!("/v1/leases/{id}"), token, None).await;
        l["lease"]["status"].as_str().unwrap_or("GONE").to_string()
    }
}

/// A date `secs` from now, with seconds and their fractions (the API takes both).
fn at(secs: i64) -> String {
    (Utc::now() + chrono::Duration::seconds(secs)).format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

fn later(minutes: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes)).format("%Y-%m-%d %H:%M").to_string()
}

async fn chameleon_style(engine: Engine) {
    // Off (Blazar's default): no catalog, hosts the admin's.
    let c = Cloud::start(engine, 2, false, 8).await;
    let (_, alice) = c.id.member("p1").await;
    c.hosts(2).await;
    let r = send(&c.router, "GET", "/reference/sites.json", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", "/v1/os-hosts/allocations", &alice, None).await.0, StatusCode::FORBIDDEN);
    // On, as Chameleon runs it: users read hosts and allocations, the hardware is public.
    let settings = Settings {
        hosts_visible_to_projects: true,
        hardware_catalog: true,
        region: "CHI@UC".into(),
        ..Cloud::settings()
    };
    let c = Cloud::start_with(engine, 2, false, settings).await;
    let (_, alice) = c.id.member("p1").await;
    c.hosts(2).await;
    let (code, list) = c.call("GET", "/v1/os-hosts", &alice, None).await;
    assert_eq!((code, list["hosts"].as_array().map(Vec::len)), (StatusCode::OK, Some(2)));
    assert_eq!(c.call("GET", "/v1/os-hosts/allocations", &alice, None).await.0, StatusCode::OK);
    assert_eq!(c.call("GET", "/v1/os-hosts/properties", &alice, None).await.0, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/v1/os-hosts", Some(json!({"name": "h1"}))),
        ("PUT", "/v1/os-hosts/1", Some(json!({"values": {"gpu": "yes"}}))),
        ("DELETE", "/v1/os-hosts/1", None),
        ("GET", "/v1/floatingips", None),
    ] {
        assert_eq!(c.call(method, path, &alice, body).await.0, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let sites = send(&c.router, "GET", "/reference/sites.json", None, None, &[]).await;
    assert_eq!(sites.status, StatusCode::OK);
    assert_eq!((&sites.json()["items"][0]["uid"], &sites.json()["items"][0]["name"]), (&json!("uc"), &json!("CHI@UC")));
    let nodes = send(&c.router, "GET", "/reference/sites/uc/clusters/chameleon/nodes.json", None, None, &[]).await;
    let items = nodes.json()["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        items.iter().map(|n| (n["uid"].clone(), n["node_type"].clone())).collect::<Vec<_>>(),
        vec![(json!("h1"), json!("a")), (json!("h2"), json!("b"))]
    );
    let one = send(&c.router, "GET", "/reference/sites/uc/clusters/chameleon/nodes/h2.json", None, None, &[]).await;
    assert_eq!(one.json()["uid"], "h2");
    let other = send(&c.router, "GET", "/reference/sites/tacc/clusters/chameleon/nodes.json", None, None, &[]).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "one site: the region's");
}

#[tokio::test]
async fn hosts_read_by_users_and_the_hardware_catalog_when_asked() {
    each_engine!(chameleon_style);
}

async fn hosts_and_leases(engine: Engine) {
    let c = Cloud::start(engine, 4, true, 8).await;
    let (p1, alice) = c.id.member("p1").await;
    // Hosts are the admin's: a member may neither add nor list them.
    let (code, _) = c.call("POST", "/v1/os-hosts", &alice, Some(json!({"name": "h1"}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = c.call("GET", "/v1/os-hosts", &alice, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, e) = c.call("POST", "/v1/os-hosts", &c.admin, Some(json!({"name": "nowhere"}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a host compute lacks: {e}");
    assert!(e["error_message"].as_str().unwrap().contains("nowhere"), "Blazar's error body: {e}");
    c.hosts(4).await;
    let (code, _) = c.call("POST", "/v1/os-hosts", &c.admin, Some(json!({"name": "h1"}))).await;
    assert_eq!(code, StatusCode::CONFLICT, "a host is made reservable once");
    let (_, list) = c.call("GET", "/v1/os-hosts", &c.admin, None).await;
    assert_eq!(list["hosts"].as_array().unwrap().len(), 4);
    let h1 = &list["hosts"][0];
    assert_eq!(h1["id"], "1", "integer ids, as Blazar's clients expect");
    assert_eq!(h1["hypervisor_hostname"], "h1");
    assert_eq!(h1["node_type"], "a", "extra capabilities flattened into the host");
    // Capabilities change as blazarclient sends them; null removes one.
    let (code, h) = c.call("PUT", "/v1/os-hosts/2", &c.admin, Some(json!({"values": {"gpu": "yes"}}))).await;
    assert_eq!((code, &h["host"]["gpu"]), (StatusCode::OK, &json!("yes")));
    let (_, h) = c.call("PUT", "/v1/os-hosts/h2", &c.admin, Some(json!({"values": {"gpu": null}}))).await;
    assert!(h["host"].get("gpu").is_none(), "by name too, and null unsets: {h}");
    let (code, _) = c.call("PUT", "/v1/os-hosts/2", &c.admin, Some(json!({"values": {"vcpus": 3}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "host fields are not capabilities");
    let (_, props) = c.call("GET", "/v1/os-hosts/properties?detail=True", &c.admin, None).await;
    assert_eq!(
        props["resource_properties"],
        json!([{"property": "node_type", "private": false, "values": ["a", "b"]}])
    );

    // A lease for now on hosts of type b: both b hosts, held at once.
    let body = json!({"name": "L1", "start_date": "now", "end_date": later(60), "events": [], "before_end_date": null,
        "reservations": [{"resource_type": "physical:host", "min": "1", "max": "2", "hypervisor_properties": "",
                          "resource_properties": "[\"==\", \"$node_type\", \"b\"]"}]});
    let (code, l) = c.call("POST", "/v1/leases", &alice, Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    let lease = &l["lease"];
    for key in [
        "id",
        "name",
        "start_date",
        "end_date",
        "status",
        "degraded",
        "user_id",
        "project_id",
        "trust_id",
        "created_at",
        "updated_at",
        "reservations",
        "events",
    ] {
        assert!(lease.get(key).is_some(), "lease lacks {key}: {lease}");
    }
    assert_eq!(lease["project_id"], json!(p1));
    // python-chi parses these exact formats.
    let start = lease["start_date"].as_str().unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%dT%H:%M:%S%.6f").is_ok(), "{start}");
    let created = lease["created_at"].as_str().unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(), "{created}");
    assert_eq!(lease["events"].as_array().unwrap().len(), 3);
    let lid = lease["id"].as_str().unwrap().to_string();
    let rid = lease["reservations"][0]["id"].as_str().unwrap().to_string();
    eventually("the lease to start", || async { c.status(&alice, &lid).await == "ACTIVE" }).await;
    assert_eq!(c.compute.holder("h2"), Some((rid.clone(), p1.clone())));
    assert_eq!(c.compute.holder("h4"), Some((rid.clone(), p1.clone())));
    assert_eq!(c.compute.holder("h1"), None);
    let (_, shown) = c.call("GET", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(shown["lease"]["reservations"][0]["status"], "active");
    assert!(shown["lease"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "start_lease" && e["status"] == "DONE"));
    let (_, allocs) = c.call("GET", "/v1/os-hosts/allocations", &c.admin, None).await;
    let held: Vec<&Value> = allocs["allocations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| !a["reservations"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0]["reservations"][0]["lease_id"], json!(lid));
    let (_, one) = c.call("GET", "/v1/os-hosts/2/allocation", &c.admin, None).await;
    assert_eq!(one["allocation"]["reservations"][0]["id"], json!(rid));
    // A held host cannot stop being reservable.
    let (code, _) = c.call("DELETE", "/v1/os-hosts/2", &c.admin, None).await;
    assert_eq!(code, StatusCode::CONFLICT);

    // Prolong; shrink to one host (the other goes back at once); then grow again.
    let (code, u) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"end_date": later(120)}))).await;
    assert_eq!(code, StatusCode::OK, "{u}");
    // Shifts as Blazar takes them: by a number and a unit; one change of a date at a time.
    let end_of = |u: &Value| stratus_common::db::parse_time(&format!("{}Z", u["lease"]["end_date"].as_str().unwrap()));
    let before = end_of(&u).unwrap();
    let (code, u) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"prolong_for": "1h"}))).await;
    assert_eq!(code, StatusCode::OK, "{u}");
    assert_eq!(end_of(&u).unwrap() - before, chrono::Duration::hours(1));
    let (code, u) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"reduce_by": "30m"}))).await;
    assert_eq!((code, end_of(&u).unwrap() - before), (StatusCode::OK, chrono::Duration::minutes(30)), "{u}");
    for bad in [
        json!({"prolong_for": "1 hour"}),
        json!({"prolong_for": "0h"}),
        json!({"prolong_for": "1h", "reduce_by": "1m"}),
        json!({"prolong_for": "1h", "end_date": later(300)}),
        json!({"reduce_by": "1w"}),
    ] {
        let (code, body) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(bad.clone())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (code, u) = c
        .call(
            "PUT",
            &format!("/v1/leases/{lid}"),
            &alice,
            Some(json!({"reservations": [{"id": rid, "min": 1, "max": 1}]})),
        )
        .await;
    assert_eq!((code, &u["lease"]["reservations"][0]["max"]), (StatusCode::OK, &json!(1)), "{u}");
    assert_eq!(c.compute.holder("h4"), None, "the dropped host is given back");
    let (code, _) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"start_date": later(5)}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a started lease keeps its start");

    // A lease's end gives its hosts back.
    let (code, l2) = c.lease(&alice, "short", 1, 1, "now", &at(2)).await;
    assert_eq!(code, StatusCode::CREATED, "{l2}");
    let short = l2["lease"]["id"].as_str().unwrap().to_string();
    eventually("the short lease to end", || async { c.status(&alice, &short).await == "TERMINATED" }).await;
    let (_, shown) = c.call("GET", &format!("/v1/leases/{short}"), &alice, None).await;
    assert_eq!(shown["lease"]["reservations"][0]["status"], "deleted");
    assert!(c.compute.calls.lock().unwrap().iter().any(|call| call.starts_with("release h1")));
    assert_eq!(c.compute.holder("h1"), None);
    assert!(!c.compute.calls.lock().unwrap().iter().any(|call| call.starts_with("snapshot")), "default: none");

    // `before_end: snapshot`: the servers are snapshotted before the end gives the host back.
    let body = json!({"name": "keep", "start_date": "now", "end_date": at(3), "before_end_date": at(1),
        "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1, "hypervisor_properties": "",
                          "resource_properties": "", "before_end": "snapshot"}]});
    let (code, kept) = c.call("POST", "/v1/leases", &alice, Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{kept}");
    assert_eq!(kept["lease"]["reservations"][0]["before_end"], "snapshot");
    let (keep, rid) = (
        kept["lease"]["id"].as_str().unwrap().to_string(),
        kept["lease"]["reservations"][0]["id"].as_str().unwrap().to_string(),
    );
    eventually("the kept lease to end", || async { c.status(&alice, &keep).await == "TERMINATED" }).await;
    let calls = c.compute.calls.lock().unwrap().clone();
    let snap = calls.iter().position(|call| call.starts_with("snapshot") && call.ends_with(&rid)).expect("a snapshot");
    let release = calls.iter().position(|call| call.starts_with("release") && call.ends_with(&rid)).expect("a release");
    assert!(snap < release, "{calls:?}");

    // Deleting a started lease gives its hosts back first.
    let (code, _) = c.call("DELETE", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(c.compute.holder("h2"), None);
    assert_eq!(c.status(&alice, &lid).await, "GONE");
    let (code, _) = c.call("DELETE", "/v1/os-hosts/2", &c.admin, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "a host no lease holds can go");
}

#[tokio::test]
async fn hosts_leases_events_and_updates() {
    each_engine!(hosts_and_leases);
}

async fn bad_input(engine: Engine) {
    let c = Cloud::start(engine, 2, false, 8).await;
    c.hosts(2).await;
    let (_, alice) = c.id.member("p1").await;
    let ok = |r: Value| json!({"name": "x", "start_date": "now", "end_date": later(60), "reservations": [r]});
    let host = json!({"resource_type": "physical:host", "min": 1, "max": 1});
    let cases = [
        json!({"start_date": "now", "end_date": later(60), "reservations": [host.clone()]}),
        json!({"name": "x", "start_date": "yesterday", "end_date": later(60), "reservations": [host.clone()]}),
        json!({"name": "x", "start_date": "2001-01-01 10:00", "end_date": later(60), "reservations": [host.clone()]}),
        json!({"name": "x", "start_date": later(60), "end_date": later(30), "reservations": [host.clone()]}),
        json!({"name": "x", "start_date": "now", "end_date": later(60), "reservations": []}),
        json!({"name": "x", "start_date": "now", "end_date": later(60), "before_end_date": later(90), "reservations": [host.clone()]}),
        ok(json!({"resource_type": "physical:host", "min": 2, "max": 1})),
        ok(json!({"resource_type": "physical:host", "min": 0, "max": 1})),
        ok(json!({"resource_type": "physical:host", "min": "one", "max": 1})),
        ok(json!({"resource_type": "physical:host", "min": 1, "max": 1, "resource_properties": "[\"~\", \"$a\", 1]"})),
        ok(json!({"resource_type": "physical:host", "min": 1, "max": 1, "resource_properties": "not json"})),
        ok(json!({"resource_type": "physical:host", "min": 1, "max": 1, "before_end": "explode"})),
        ok(json!({"resource_type": "virtual:teleporter", "amount": 1})),
        ok(json!({"resource_type": "virtual:floatingip", "amount": 1})),
        ok(json!({"resource_type": "virtual:floatingip", "network_id": "public", "amount": 0})),
        ok(json!({"resource_type": "virtual:floatingip", "network_id": "public", "amount": 1,
                  "required_floatingips": ["203.0.113.5", "203.0.113.6"]})),
        json!({"name": "x".repeat(81), "start_date": "now", "end_date": later(60), "reservations": [host.clone()]}),
    ];
    for body in cases {
        let (code, e) = c.call("POST", "/v1/leases", &alice, Some(body.clone())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body} → {e}");
        assert_eq!(e["error_code"], 400, "Blazar's error body: {e}");
        assert!(!e["error_message"].as_str().unwrap().is_empty());
    }
    // More hosts than there are: 409 with Blazar's error name, nothing written.
    let (code, e) = c.lease(&alice, "big", 3, 3, "now", &later(60)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(e["error_name"], "NotEnoughHostsAvailable");
    let (_, list) = c.call("GET", "/v1/leases", &alice, None).await;
    assert_eq!(list["leases"], json!([]), "refused leases leave nothing behind");
    // Names are unique within a project.
    let (code, _) = c.lease(&alice, "dup", 1, 1, &later(10), &later(20)).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _) = c.lease(&alice, "dup", 1, 1, &later(30), &later(40)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = c.call("POST", "/v1/leases", &alice, Some(json!([1, 2]))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = c.call("GET", "/v1/leases/nope", &alice, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    each_engine!(bad_input);
}

async fn no_double_booking(engine: Engine) {
    let c = Arc::new(Cloud::start(engine, 5, false, 8).await);
    c.hosts(5).await;
    let (_, alice) = c.id.member("p1").await;
    let (_, bob) = c.id.member("p2").await;
    // 20 leases at once over overlapping windows, from two projects, on 5 hosts.
    let tries = (0..20).map(|i| {
        let c = c.clone();
        let token = if i % 2 == 0 { alice.clone() } else { bob.clone() };
        async move {
            let (start, end) = (later(10 + (i % 3)), later(70 + (i % 4)));
            c.lease(&token, &format!("l{i}"), 1, 1, &start, &end).await.0
        }
    });
    let codes = futures::future::join_all(tries).await;
    let made = codes.iter().filter(|c| **c == StatusCode::CREATED).count();
    assert_eq!(made, 5, "{codes:?}");
    assert!(codes.iter().all(|c| *c == StatusCode::CREATED || *c == StatusCode::CONFLICT), "{codes:?}");
    let (_, allocs) = c.call("GET", "/v1/os-hosts/allocations", &c.admin, None).await;
    for a in allocs["allocations"].as_array().unwrap() {
        assert_eq!(a["reservations"].as_array().unwrap().len(), 1, "one lease per host: {a}");
    }
    // Another project's overlapping lease is refused; one after the window fits.
    let (code, _) = c.lease(&bob, "overlap", 1, 1, &later(30), &later(40)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = c.lease(&bob, "after", 5, 5, &later(100), &later(110)).await;
    assert_eq!(code, StatusCode::CREATED, "every host is free after the window");
    // Prolonging into another lease's window is refused and changes nothing. (Which
    // project won the five hosts is up to the race: take a winner of either.)
    let mut winner = None;
    for token in [&alice, &bob] {
        let (_, list) = c.call("GET", "/v1/leases", token, None).await;
        if let Some(l) = list["leases"].as_array().unwrap().iter().find(|l| l["name"] != "after") {
            winner = Some((token.clone(), l.clone()));
            break;
        }
    }
    let (owner, l) = winner.expect("five leases were made");
    let url = format!("/v1/leases/{}", l["id"].as_str().unwrap());
    let (code, _) = c.call("PUT", &url, &owner, Some(json!({"end_date": later(105)}))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, again) = c.call("GET", &url, &owner, None).await;
    assert_eq!(again["lease"]["end_date"], l["end_date"]);
}

#[tokio::test]
async fn concurrent_leases_never_double_book() {
    each_engine!(no_double_booking);
}

async fn schedule_survives_restarts_and_failures(engine: Engine) {
    // No schedule running: the test is the clock's hand.
    let c = Cloud::start(engine, 2, false, 2).await;
    c.hosts(2).await;
    let (_, alice) = c.id.member("p1").await;
    let (_, l) = c.lease(&alice, "soon", 1, 1, &at(2), &later(60)).await;
    let lid = l["lease"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.svc.fire_due().await.unwrap(), 0, "nothing is due yet");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    // A new process over the same database catches up on what came due meanwhile.
    let after_restart = Cloud::service(
        &c.id,
        c.compute.clone(),
        c.network.clone(),
        Settings { event_attempts: 2, ..Cloud::settings() },
    );
    assert_eq!(after_restart.fire_due().await.unwrap(), 2, "start and before-end (a short lease's is at its start)");
    assert_eq!(c.status(&alice, &lid).await, "ACTIVE");
    assert_eq!(after_restart.fire_due().await.unwrap(), 0, "no event fires twice");
    let reserves = c.compute.calls.lock().unwrap().iter().filter(|c| c.starts_with("reserve")).count();
    assert_eq!(reserves, 1);

    // A failing compute: retried, then the lease goes to ERROR with the reason kept.
    let (_, l) = c.lease(&alice, "doomed", 1, 1, "now", &later(60)).await;
    let doomed = l["lease"]["id"].as_str().unwrap().to_string();
    *c.compute.fail.lock().unwrap() = Some("compute is down".into());
    c.svc.fire_due().await.unwrap();
    assert_eq!(c.status(&alice, &doomed).await, "STARTING", "the first failure is retried");
    sqlx::query("UPDATE reservation_events SET next_try = '2000-01-01T00:00:00.000000Z' WHERE status = 'IN_PROGRESS'")
        .execute(&c.id.db.pool)
        .await
        .unwrap();
    c.svc.fire_due().await.unwrap();
    assert_eq!(c.status(&alice, &doomed).await, "ERROR", "attempts exhausted");
    let last: String =
        sqlx::query_scalar("SELECT last_error FROM reservation_events WHERE lease_id = $1 AND status = 'ERROR'")
            .bind(&doomed)
            .fetch_one(&c.id.db.pool)
            .await
            .unwrap();
    assert!(last.contains("compute is down"), "{last}");
    // Deleting needs compute back; then it gives the hosts back and the lease goes.
    let (code, _) = c.call("DELETE", &format!("/v1/leases/{doomed}"), &alice, None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    *c.compute.fail.lock().unwrap() = None;
    let (code, _) = c.call("DELETE", &format!("/v1/leases/{doomed}"), &alice, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn lease_events_catch_up_after_restart_fire_once_and_fail_visibly() {
    each_engine!(schedule_survives_restarts_and_failures);
}

async fn isolation(engine: Engine) {
    let c = Cloud::start(engine, 2, false, 8).await;
    c.hosts(2).await;
    let (_, alice) = c.id.member("p1").await;
    let (_, mallory) = c.id.member("p2").await;
    let (_, reader) = c.id.user_with("p1reader", "reader").await;
    let (_, l) = c.lease(&alice, "mine", 1, 1, &later(10), &later(20)).await;
    let lid = l["lease"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/leases/{lid}");
    for (method, body) in [("GET", None), ("PUT", Some(json!({"name": "stolen"}))), ("DELETE", None)] {
        let (code, _) = c.call(method, &path, &mallory, body).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{method} of another project's lease");
    }
    let (_, list) = c.call("GET", "/v1/leases", &mallory, None).await;
    assert_eq!(list["leases"], json!([]));
    let (_, list) = c
        .call("GET", &format!("/v1/leases?project_id={}", l["lease"]["project_id"].as_str().unwrap()), &mallory, None)
        .await;
    assert_eq!(list["leases"], json!([]), "a list filter naming another project shows nothing");
    let (code, _) = c.call("GET", "/v1/os-hosts/allocations", &mallory, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // A reader of another project sees nothing either; an admin sees everything.
    let (code, _) = c.call("GET", &path, &reader, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "p1reader's project is its own, not p1");
    let (_, all) = c.call("GET", "/v1/leases", &c.admin, None).await;
    assert_eq!(all["leases"].as_array().unwrap().len(), 1);
    let (_, shown) = c.call("GET", &path, &alice, None).await;
    assert_eq!(shown["lease"]["name"], "mine");
}

#[tokio::test]
async fn leases_are_isolated_between_projects() {
    each_engine!(isolation);
}

async fn readers_read_only(engine: Engine) {
    let c = Cloud::start(engine, 1, false, 8).await;
    c.hosts(1).await;
    let (pid, reader) = c.id.user_with("ro", "reader").await;
    let (code, _) = c.lease(&reader, "x", 1, 1, &later(10), &later(20)).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, list) = c.call("GET", "/v1/leases", &reader, None).await;
    assert_eq!((code, list["leases"].clone()), (StatusCode::OK, json!([])), "{pid}");
}

#[tokio::test]
async fn readers_cannot_lease() {
    each_engine!(readers_read_only);
}

async fn floating_ips(engine: Engine) {
    let c = Cloud::start(engine, 1, true, 8).await;
    let (p1, alice) = c.id.member("p1").await;
    let (_, bob) = c.id.member("p2").await;
    // Reservable addresses are the admin's, and must be of an external network's subnet.
    let fip = |a: &str| json!({"floating_network_id": "public", "floating_ip_address": a});
    let (code, _) = c.call("POST", "/v1/floatingips", &alice, Some(fip("203.0.113.10"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    for bad in [
        fip("198.51.100.1"),
        fip("not-an-ip"),
        json!({"floating_network_id": "nowhere", "floating_ip_address": "203.0.113.1"}),
    ] {
        let (code, e) = c.call("POST", "/v1/floatingips", &c.admin, Some(bad.clone())).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad} → {e}");
    }
    for a in ["203.0.113.10", "203.0.113.11"] {
        let (code, f) = c.call("POST", "/v1/floatingips", &c.admin, Some(fip(a))).await;
        assert_eq!(code, StatusCode::CREATED, "{f}");
    }
    let (code, _) = c.call("POST", "/v1/floatingips", &c.admin, Some(fip("203.0.113.10"))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, list) = c.call("GET", "/v1/floatingips", &c.admin, None).await;
    assert_eq!(list["floatingips"].as_array().unwrap().len(), 2);

    // A lease of one address, named; then another project takes the other; a third finds none.
    let lease = |name: &str, amount: i64, required: Value| {
        json!({"name": name, "start_date": "now", "end_date": later(60), "events": [],
               "reservations": [{"resource_type": "virtual:floatingip", "network_id": "public", "amount": amount,
                                 "required_floatingips": required}]})
    };
    let (code, l) = c.call("POST", "/v1/leases", &alice, Some(lease("fip", 1, json!(["203.0.113.11"])))).await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    let r = &l["lease"]["reservations"][0];
    assert_eq!(
        (&r["resource_type"], &r["amount"], &r["network_id"]),
        (&json!("virtual:floatingip"), &json!(1), &json!("public"))
    );
    let lid = l["lease"]["id"].as_str().unwrap().to_string();
    let rid = r["id"].as_str().unwrap().to_string();
    eventually("the lease to start", || async { c.status(&alice, &lid).await == "ACTIVE" }).await;
    assert_eq!(c.network.handed.lock().unwrap().get("203.0.113.11"), Some(&(p1.clone(), rid.clone())));
    let (code, _) = c.call("POST", "/v1/leases", &bob, Some(lease("taken", 1, json!(["203.0.113.11"])))).await;
    assert_eq!(code, StatusCode::CONFLICT, "a named address already reserved");
    let (code, _) = c.call("POST", "/v1/leases", &bob, Some(lease("other", 1, Value::Null))).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, e) = c.call("POST", "/v1/leases", &bob, Some(lease("none", 1, Value::Null))).await;
    assert_eq!(code, StatusCode::CONFLICT, "{e}");
    let (code, _) = c.call("DELETE", "/v1/floatingips/x", &c.admin, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let held =
        list["floatingips"].as_array().unwrap().iter().find(|f| f["floating_ip_address"] == "203.0.113.11").unwrap();
    let (code, _) =
        c.call("DELETE", &format!("/v1/floatingips/{}", held["id"].as_str().unwrap()), &c.admin, None).await;
    assert_eq!(code, StatusCode::CONFLICT, "a reserved address stays reservable");
    // The end of the lease takes the address back.
    let (code, _) = c.call("DELETE", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(c.network.handed.lock().unwrap().get("203.0.113.11"), None);
}

#[tokio::test]
async fn floating_ip_reservations() {
    each_engine!(floating_ips);
}

async fn failed_hosts(engine: Engine) {
    let c = Cloud::start(engine, 4, true, 8).await;
    c.hosts(4).await;
    let (p1, alice) = c.id.member("p1").await;
    // Two hosts of type a (h1, h3) exist; the lease takes one of them.
    let body = json!({"name": "a-host", "start_date": "now", "end_date": later(60), "events": [],
        "reservations": [{"resource_type": "physical:host", "min": 1, "max": 1,
                          "resource_properties": "[\"==\", \"$node_type\", \"a\"]"}]});
    let (_, l) = c.call("POST", "/v1/leases", &alice, Some(body)).await;
    let lid = l["lease"]["id"].as_str().unwrap().to_string();
    let rid = l["lease"]["reservations"][0]["id"].as_str().unwrap().to_string();
    eventually("the lease to start", || async { c.status(&alice, &lid).await == "ACTIVE" }).await;
    assert_eq!(c.svc.check_hosts().await.unwrap(), 0, "all hosts healthy");
    c.compute.down.lock().unwrap().insert("h1".into());
    assert_eq!(c.svc.check_hosts().await.unwrap(), 1, "h1 replaced");
    assert_eq!(c.compute.holder("h3"), Some((rid.clone(), p1.clone())), "by the other host of type a");
    let (_, shown) = c.call("GET", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(shown["lease"]["degraded"], false);
    assert_eq!(shown["lease"]["reservations"][0]["resources_changed"], true);
    // Now h3 fails too and no host of type a is left: degraded, resources missing.
    c.compute.down.lock().unwrap().insert("h3".into());
    assert_eq!(c.svc.check_hosts().await.unwrap(), 0);
    let (_, shown) = c.call("GET", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(shown["lease"]["degraded"], true);
    assert_eq!(shown["lease"]["reservations"][0]["missing_resources"], true);
}

#[tokio::test]
async fn failed_hosts_are_replaced_or_the_lease_is_degraded() {
    each_engine!(failed_hosts);
}

async fn flavor_instances(engine: Engine) {
    // Three fake hosts of 8 vCPUs, 16384 MB and 100 GB: four m1.small (2, 4096, 20) each.
    let c = Cloud::start(engine, 3, true, 8).await;
    c.hosts(3).await;
    let (p1, alice) = c.id.member("p1").await;
    let (_, bob) = c.id.member("p2").await;
    c.compute.flavors.lock().unwrap().insert(
        "secret".into(),
        json!({"id": "secret", "name": "secret", "vcpus": 1, "ram": 512, "disk": 1, "OS-FLV-EXT-DATA:ephemeral": 0,
               "swap": "", "os-flavor-access:is_public": false, "projects": [p1.clone()], "extra_specs": {}}),
    );
    let lease = |name: &str, reservation: Value| json!({"name": name, "start_date": "now", "end_date": later(60), "events": [], "reservations": [reservation]});
    let flavor = |amount: Value, affinity: Value| json!({"resource_type": "flavor:instance", "flavor_id": "m1.small", "amount": amount, "affinity": affinity});
    // Bad input changes nothing.
    for bad in [
        json!({"resource_type": "flavor:instance", "amount": 1}),
        json!({"resource_type": "flavor:instance", "flavor_id": "nope", "amount": 1}),
        json!({"resource_type": "flavor:instance", "flavor_id": "m1.small"}),
        flavor(json!(0), Value::Null),
        flavor(json!(1), json!("sometimes")),
    ] {
        let (code, e) = c.call("POST", "/v1/leases", &alice, Some(lease("bad", bad.clone()))).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad} → {e}");
    }
    let secret = json!({"resource_type": "flavor:instance", "flavor_id": "secret", "amount": 1});
    let (code, _) = c.call("POST", "/v1/leases", &bob, Some(lease("theirs", secret.clone()))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "another project's private flavor is not there");
    let (_, list) = c.call("GET", "/v1/leases", &c.admin, None).await;
    assert_eq!(list["leases"].as_array().unwrap().len(), 0);

    // Six instances fill h1 and half of h2 (blazarclient sends the amount as text).
    let (code, l) = c.call("POST", "/v1/leases", &alice, Some(lease("six", flavor(json!("6"), Value::Null)))).await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    let r = &l["lease"]["reservations"][0];
    let rid = r["id"].as_str().unwrap().to_string();
    assert_eq!(
        (&r["amount"], &r["vcpus"], &r["memory_mb"], &r["disk_gb"], &r["affinity"], &r["flavor_id"]),
        (&json!(6), &json!(2), &json!(4096), &json!(20), &Value::Null, &json!(rid))
    );
    let source: Value = serde_json::from_str(r["resource_properties"].as_str().unwrap()).unwrap();
    assert_eq!(source["name"], "m1.small", "the flavor reserved, as Blazar shows it");
    let lid = l["lease"]["id"].as_str().unwrap().to_string();
    eventually("the lease to start", || async { c.status(&alice, &lid).await == "ACTIVE" }).await;
    // At the start: the reservation's flavor, then its slices.
    let made = c.compute.flavors.lock().unwrap().get(&rid).cloned().expect("the reservation's flavor");
    assert_eq!(made["name"], format!("reservation:{rid}"));
    assert_eq!(made["projects"], json!([p1]));
    assert_eq!(made["extra_specs"]["aggregate_instance_extra_specs:reservation"], json!(rid));
    assert_eq!(c.compute.slices("h1").get(&rid), Some(&(p1.clone(), (8, 16384, 80))));
    assert_eq!(c.compute.slices("h2").get(&rid), Some(&(p1.clone(), (4, 8192, 40))));
    assert!(c.compute.slices("h3").is_empty());

    // Four on one host: only h3 has room for them together.
    let (code, l) = c.call("POST", "/v1/leases", &bob, Some(lease("together", flavor(json!(4), json!("true"))))).await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    let (_, allocs) = c.call("GET", "/v1/os-hosts/allocations", &c.admin, None).await;
    let hosts_of = |lease: &Value| -> Vec<String> {
        let id = lease["lease"]["id"].as_str().unwrap();
        allocs["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["reservations"].as_array().unwrap().iter().any(|r| r["lease_id"] == id))
            .map(|a| a["resource_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(hosts_of(&l), vec!["3"]);
    // No host is free to take whole, nor are two hosts with room for one each.
    let (code, e) = c.lease(&bob, "whole", 1, 1, "now", &later(60)).await;
    assert_eq!(code, StatusCode::CONFLICT, "sliced hosts are not free whole: {e}");
    let (code, e) = c.call("POST", "/v1/leases", &bob, Some(lease("apart", flavor(json!(2), json!(false))))).await;
    assert_eq!(code, StatusCode::CONFLICT, "{e}");
    // Two more fit on h2, beside the first lease's slice; then nothing does.
    let (code, l) = c.call("POST", "/v1/leases", &bob, Some(lease("two", flavor(json!(2), Value::Null)))).await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    assert_eq!(hosts_of(&l), Vec::<String>::new(), "read before it was made");
    let (code, _) = c.call("POST", "/v1/leases", &bob, Some(lease("more", flavor(json!(1), Value::Null)))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    // A later window is free again, and a lease after this one can take a host whole.
    let after = json!({"name": "after", "start_date": later(70), "end_date": later(130), "events": [],
                       "reservations": [flavor(json!(12), json!(null))]});
    assert_eq!(c.call("POST", "/v1/leases", &bob, Some(after)).await.0, StatusCode::CREATED);
    // The amount changes, nothing else of it; with no room for more, nothing changes.
    let body = json!({"reservations": [{"id": rid, "min": 7, "max": 7}]});
    assert_eq!(c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(body)).await.0, StatusCode::BAD_REQUEST);
    for (amount, code) in [(json!(7), StatusCode::CONFLICT), (json!(0), StatusCode::BAD_REQUEST)] {
        let body = json!({"reservations": [{"id": rid, "amount": amount}]});
        let (got, e) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(body)).await;
        assert_eq!(got, code, "{amount}: {e}");
    }
    // Moving the window re-checks the slices.
    let (code, e) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"prolong_for": "30m"}))).await;
    assert_eq!(code, StatusCode::CONFLICT, "the later lease fills every host then: {e}");
    let (code, e) = c.call("PUT", &format!("/v1/leases/{lid}"), &alice, Some(json!({"reduce_by": "10m"}))).await;
    assert_eq!(code, StatusCode::OK, "{e}");

    // The end gives the slices back and deletes the flavor.
    let (code, _) = c.call("DELETE", &format!("/v1/leases/{lid}"), &alice, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert!(!c.compute.slices("h1").contains_key(&rid) && !c.compute.slices("h2").contains_key(&rid));
    assert!(!c.compute.flavors.lock().unwrap().contains_key(&rid));
    // Its room is free: six fit again.
    let (code, _) = c.call("POST", "/v1/leases", &alice, Some(lease("again", flavor(json!(6), Value::Null)))).await;
    assert_eq!(code, StatusCode::CREATED);
    // The private flavor its project may use.
    let (code, e) = c.call("POST", "/v1/leases", &alice, Some(lease("mine", secret))).await;
    assert_eq!(code, StatusCode::CONFLICT, "found, but no room left now: {e}");

    // A lease under way grows where there is room (its slice on h2 grows in place),
    // and may not shrink.
    let (_, list) = c.call("GET", "/v1/leases", &bob, None).await;
    let two = list["leases"].as_array().unwrap().iter().find(|l| l["name"] == "two").unwrap()["id"].clone();
    assert_eq!(
        c.call("DELETE", &format!("/v1/leases/{}", two.as_str().unwrap()), &bob, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, list) = c.call("GET", "/v1/leases", &alice, None).await;
    let again = list["leases"].as_array().unwrap().iter().find(|l| l["name"] == "again").unwrap().clone();
    let (aid, arid) =
        (again["id"].as_str().unwrap().to_string(), again["reservations"][0]["id"].as_str().unwrap().to_string());
    eventually("the lease to start", || async { c.status(&alice, &aid).await == "ACTIVE" }).await;
    let body = json!({"reservations": [{"id": arid, "amount": "8"}]});
    let (code, e) = c.call("PUT", &format!("/v1/leases/{aid}"), &alice, Some(body)).await;
    assert_eq!(code, StatusCode::OK, "{e}");
    assert_eq!(e["lease"]["reservations"][0]["amount"], json!(8), "{e}");
    assert_eq!(c.compute.slices("h2").get(&arid), Some(&(p1.clone(), (8, 16384, 80))));
    let body = json!({"reservations": [{"id": arid, "amount": 5}]});
    assert_eq!(c.call("PUT", &format!("/v1/leases/{aid}"), &alice, Some(body)).await.0, StatusCode::BAD_REQUEST);
    // A lease not started picks its slices again, larger or smaller.
    let (code, l) = c
        .call(
            "POST",
            "/v1/leases",
            &alice,
            Some(json!({"name": "later", "start_date": later(200), "end_date": later(260),
              "events": [], "reservations": [flavor(json!(2), json!(true))]})),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{l}");
    let (llid, lrid) = (
        l["lease"]["id"].as_str().unwrap().to_string(),
        l["lease"]["reservations"][0]["id"].as_str().unwrap().to_string(),
    );
    for (amount, hosts) in [(4, 1), (1, 1)] {
        let body = json!({"reservations": [{"id": lrid, "amount": amount}]});
        let (code, e) = c.call("PUT", &format!("/v1/leases/{llid}"), &alice, Some(body)).await;
        assert_eq!(code, StatusCode::OK, "{e}");
        let (_, allocs) = c.call("GET", "/v1/os-hosts/allocations", &c.admin, None).await;
        let mine = allocs["allocations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["reservations"].as_array().unwrap().iter().any(|r| r["lease_id"] == llid))
            .count();
        assert_eq!(mine, hosts, "{amount} instance(s) with affinity: one host");
    }
    let body = json!({"reservations": [{"id": lrid, "amount": 5}]});
    assert_eq!(
        c.call("PUT", &format!("/v1/leases/{llid}"), &alice, Some(body)).await.0,
        StatusCode::CONFLICT,
        "no host takes five together"
    );
}

#[tokio::test]
async fn flavor_instance_reservations_slice_hosts() {
    each_engine!(flavor_instances);
}
