//! Volume API tests: in-process against a real database (SQLite, and PostgreSQL when
//! STRATUS_TEST_POSTGRES is set), with identity in-process, on the fake backend (the
//! file backend's own tests make real qcow2 files).

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use stratus_common::db::Engine;
use stratus_test_support::{each_engine, eventually, send, Identity};
use stratus_volume::driver::backups::BackupRepository;
use stratus_volume::driver::{FakeDriver, VolumeDriver};
use stratus_volume::VolumeService;

struct Cloud {
    id: Identity,
    volume: Arc<VolumeService>,
    driver: Arc<FakeDriver>,
    router: axum::Router,
    image_url: String,
    admin: String,
}

/// The service's own token: the admin's, fixed for the test.
struct FixedToken(String);

impl stratus_common::auth::service_token::TokenSource for FixedToken {
    fn token(&self) -> futures::future::BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

impl Cloud {
    async fn start(engine: Engine) -> Self {
        let id =
            Identity::start(engine, &[stratus_image::migrations::MIGRATIONS, stratus_volume::migrations::MIGRATIONS])
                .await;
        let dir = std::env::temp_dir().join(format!("stratus-volume-test-{}", uuid::Uuid::new_v4()));
        let image = Arc::new(stratus_image::ImageService {
            store: stratus_image::store::Store::new(id.db.clone()),
            bus: id.bus.clone(),
            backend: Arc::new(stratus_image::backend::FilesystemBackend::new(dir.join("images")).unwrap()),
            limits: id.limits(),
            public_url: "http://image".into(),
            max_image_bytes: 1 << 20,
        });
        let image_url = serve(stratus_image::api::router(image, id.identity.verifier.clone(), 1 << 20)).await;
        let admin = id.admin().await;
        let images = stratus_volume::app::ImageLink {
            http: reqwest::Client::new(),
            url: image_url.clone(),
            tokens: Some(Arc::new(FixedToken(admin.clone()))),
            staging: dir.join("staging"),
        };
        let driver = Arc::new(FakeDriver::new());
        let volume = VolumeService::new(
            stratus_volume::store::Store::new(id.db.clone()),
            id.bus.clone(),
            id.limits(),
            vec![driver.clone() as Arc<dyn VolumeDriver>],
            "http://volume".into(),
            Default::default(),
            images,
        );
        volume.set_backup_repository(BackupRepository::new(dir.join("backups")).unwrap());
        volume.start(std::time::Duration::from_secs(3600)).await.unwrap();
        let router = stratus_volume::api::router(volume.clone(), id.identity.verifier.clone(), 1 << 20);
        Self { id, volume, driver, router, image_url, admin }
    }

    async fn call(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = send(&self.router, method, path, Some(token), body, &[]).await;
        (r.status, r.json())
    }

    /// Waits until a volume (or, with `snapshots`, a snapshot) has `status` ("GONE": 404).
    async fn wait(&self, token: &str, path: &str, key: &str, status: &str) -> Value {
        for _ in 0..500 {
            let (code, body) = self.call("GET", path, token, None).await;
            if status == "GONE" && code == StatusCode::NOT_FOUND {
                return Value::Null;
            }
            if body[key]["status"] == json!(status) {
                return body[key].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{path} never reached {status}");
    }

    async fn usage(&self, project: &str) -> (i64, i64, i64) {
        let u = self.volume.store.usage(project).await.unwrap();
        let g = |k: &str| u.get(k).copied().unwrap_or(0);
        (g("volumes"), g("gigabytes"), g("snapshots"))
    }
}

async fn lifecycle(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("p1").await;
    let base = format!("/v3/{p}");
    // Clients send many keys as null: all accepted.
    let body = json!({"volume": {"size": 1, "name": "v1", "description": null, "availability_zone": null, "imageRef": null,
        "snapshot_id": null, "source_volid": null, "volume_type": null, "metadata": null, "backup_id": null, "consistencygroup_id": null}});
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(body)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["volume"]["status"], "creating");
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{id}");
    let shown = c.wait(&token, &vpath, "volume", "available").await;
    for key in [
        "id",
        "name",
        "status",
        "size",
        "attachments",
        "links",
        "encrypted",
        "updated_at",
        "user_id",
        "availability_zone",
        "metadata",
        "description",
        "multiattach",
        "bootable",
        "created_at",
        "volume_type",
        "snapshot_id",
        "source_volid",
        "os-vol-tenant-attr:tenant_id",
    ] {
        assert!(shown.get(key).is_some(), "a volume shows {key}: {shown}");
    }
    assert_eq!((shown["volume_type"].as_str(), shown["bootable"].as_str()), (Some("__DEFAULT__"), Some("false")));
    assert!(shown.get("os-vol-host-attr:host").is_none(), "only admins see the host");
    assert_eq!(c.usage(&p).await, (1, 1, 0));
    // Lists: brief and detail, filtered by name.
    let (_, l) = c.call("GET", &format!("{base}/volumes"), &token, None).await;
    assert_eq!(l["volumes"][0].as_object().unwrap().len(), 3, "id, name, links: {l}");
    let (_, l) = c.call("GET", &format!("{base}/volumes/detail?name=v1"), &token, None).await;
    assert_eq!(l["volumes"].as_array().unwrap().len(), 1);
    let (_, l) = c.call("GET", &format!("{base}/volumes/detail?name=other"), &token, None).await;
    assert!(l["volumes"].as_array().unwrap().is_empty());
    // Update, metadata, bootable.
    let (code, u) =
        c.call("PUT", &vpath, &token, Some(json!({"volume": {"name": "v1b", "metadata": {"a": "1"}}}))).await;
    assert_eq!((code, &u["volume"]["name"]), (StatusCode::OK, &json!("v1b")));
    let (code, m) = c.call("POST", &format!("{vpath}/metadata"), &token, Some(json!({"metadata": {"b": "2"}}))).await;
    assert_eq!((code, m["metadata"].as_object().unwrap().len()), (StatusCode::OK, 2));
    let (code, _) =
        c.call("POST", &format!("{vpath}/action"), &token, Some(json!({"os-set_bootable": {"bootable": true}}))).await;
    assert_eq!(code, StatusCode::OK);
    // Extend: quota for the growth, the backend grows it.
    let (code, e) =
        c.call("POST", &format!("{vpath}/action"), &token, Some(json!({"os-extend": {"new_size": 3}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{e}");
    let shown = c.wait(&token, &vpath, "volume", "available").await;
    assert_eq!((shown["size"].as_i64(), shown["bootable"].as_str()), (Some(3), Some("true")));
    assert_eq!(c.driver.size_of(&id).await.unwrap(), Some(3));
    assert_eq!(c.usage(&p).await, (1, 3, 0));
    // A snapshot, then a volume from it and a clone of the first.
    let (code, s) = c
        .call(
            "POST",
            &format!("{base}/snapshots"),
            &token,
            Some(json!({"snapshot": {"volume_id": id, "name": "s1", "force": false}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{s}");
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    let spath = format!("{base}/snapshots/{sid}");
    c.wait(&token, &spath, "snapshot", "available").await;
    assert_eq!(c.usage(&p).await, (1, 6, 1), "a snapshot counts its gigabytes");
    let (code, body) = c
        .call(
            "POST",
            &format!("{base}/volumes"),
            &token,
            Some(json!({"volume": {"snapshot_id": sid, "name": "fromsnap"}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let from_snap = body["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["volume"]["size"], 3, "the snapshot's size when none is asked");
    let (code, body) = c
        .call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"source_volid": id, "size": 4}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let clone = body["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&token, &format!("{base}/volumes/{from_snap}"), "volume", "available").await;
    c.wait(&token, &format!("{base}/volumes/{clone}"), "volume", "available").await;
    assert_eq!(c.driver.size_of(&clone).await.unwrap(), Some(4));
    for copy in [&from_snap, &clone] {
        let shown = c.call("GET", &format!("{base}/volumes/{copy}"), &token, None).await.1;
        assert_eq!(shown["volume"]["bootable"], "true", "a copy of a bootable volume boots");
    }
    // A volume with snapshots cannot go; its snapshot first.
    let (code, err) = c.call("DELETE", &vpath, &token, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["badRequest"]["message"].as_str().unwrap().contains("dependent snapshots"), "{err}");
    assert_eq!(c.call("DELETE", &spath, &token, None).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &spath, "snapshot", "GONE").await;
    for v in [&id, &from_snap, &clone] {
        assert_eq!(c.call("DELETE", &format!("{base}/volumes/{v}"), &token, None).await.0, StatusCode::ACCEPTED);
    }
    for v in [&id, &from_snap, &clone] {
        c.wait(&token, &format!("{base}/volumes/{v}"), "volume", "GONE").await;
    }
    assert_eq!(c.usage(&p).await, (0, 0, 0), "everything given back");
    assert_eq!(c.driver.counts(), (0, 0), "nothing left on the backend");
    assert!(c.volume.sagas.unfinished(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn volumes_snapshots_clones_and_extends() {
    each_engine!(lifecycle);
}

async fn bad_input(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("p1").await;
    let base = format!("/v3/{p}");
    for body in [
        json!({"volume": {"size": 0}}),
        json!({"volume": {"size": "lots"}}),
        json!({"volume": {"name": "no size"}}),
        json!({"volume": {"size": 1, "volume_type": "nope"}}),
        json!({"volume": {"size": 1, "availability_zone": "elsewhere"}}),
        json!({"volume": {"size": 1, "imageRef": "abc"}}),
        json!({"volume": {"size": 1, "snapshot_id": "nope"}}),
        json!({"volume": {"size": 1, "metadata": {"k": 5}}}),
        json!({"volume": {"size": 1, "name": "x".repeat(256)}}),
        json!({"volume": "flat"}),
        json!({"nothing": {}}),
    ] {
        let (code, r) = c.call("POST", &format!("{base}/volumes"), &token, Some(body.clone())).await;
        assert!(code == StatusCode::BAD_REQUEST || code == StatusCode::NOT_FOUND, "{body} → {code} {r}");
    }
    let (_, l) = c.call("GET", &format!("{base}/volumes"), &token, None).await;
    assert!(l["volumes"].as_array().unwrap().is_empty(), "bad requests change nothing");
    assert_eq!(c.usage(&p).await, (0, 0, 0));
    // Quota: over it is 413 and changes nothing; exactly the limit fits under concurrency.
    c.id.set_limit("volume", &p, "volumes", 3).await;
    c.volume.limits.invalidate();
    let (code, r) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 2000}}))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(r["overLimit"]["message"].as_str().unwrap().contains("gigabytes"), "{r}");
    let tries = (0..8).map(|i| {
        let (c, base, token) = (&c, &base, &token);
        async move {
            c.call(
                "POST",
                &format!("{base}/volumes"),
                token,
                Some(json!({"volume": {"size": 1, "name": format!("q{i}")}})),
            )
            .await
            .0
        }
    });
    let codes = futures::future::join_all(tries).await;
    assert_eq!(codes.iter().filter(|c| **c == StatusCode::ACCEPTED).count(), 3, "{codes:?}");
    assert_eq!(c.usage(&p).await.0, 3);
    // Extending to less, or a volume that is not available, is refused.
    let (_, l) = c.call("GET", &format!("{base}/volumes"), &token, None).await;
    let id = l["volumes"][0]["id"].as_str().unwrap().to_string();
    c.wait(&token, &format!("{base}/volumes/{id}"), "volume", "available").await;
    let (code, _) = c
        .call("POST", &format!("{base}/volumes/{id}/action"), &token, Some(json!({"os-extend": {"new_size": 1}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) =
        c.call("POST", &format!("{base}/volumes/{id}/action"), &token, Some(json!({"os-migrate_volume": {}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // Resetting a status is the admin's: members are refused, unknown statuses too (any
    // of Cinder's is taken, as Cinder does).
    let reset = |status: &str| json!({"os-reset_status": {"status": status}});
    let action = format!("{base}/volumes/{id}/action");
    assert_eq!(c.call("POST", &action, &token, Some(reset("error"))).await.0, StatusCode::FORBIDDEN);
    let admin = c.id.admin().await;
    assert_eq!(c.call("POST", &action, &admin, Some(reset("bogus"))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("POST", &action, &admin, Some(reset("error"))).await.0, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &format!("{base}/volumes/{id}"), &token, None).await.1["volume"]["status"], "error");
}

#[tokio::test]
async fn bad_input_and_quota_change_nothing() {
    each_engine!(bad_input);
}

async fn isolation(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pa, a) = c.id.member("alice").await;
    let (pb, b) = c.id.member("bob").await;
    let admin = c.id.admin().await;
    // Bob's reader on his own project.
    let (_, reader) = {
        let admin_t = admin.clone();
        let _ = admin_t;
        c.id.user_with("bob-reader-project", "reader").await
    };
    let (code, v) =
        c.call("POST", &format!("/v3/{pa}/volumes"), &a, Some(json!({"volume": {"size": 1, "name": "secret"}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/volumes/{vid}"), "volume", "available").await;
    let (_, s) =
        c.call("POST", &format!("/v3/{pa}/snapshots"), &a, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/snapshots/{sid}"), "snapshot", "available").await;
    // Bob, in his own project's URLs: Alice's volume and snapshot do not exist.
    for path in [format!("/v3/{pb}/volumes/{vid}"), format!("/v3/{pb}/snapshots/{sid}")] {
        assert_eq!(c.call("GET", &path, &b, None).await.0, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(c.call("DELETE", &path, &b, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (code, _) =
        c.call("PUT", &format!("/v3/{pb}/volumes/{vid}"), &b, Some(json!({"volume": {"name": "mine"}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = c
        .call("POST", &format!("/v3/{pb}/volumes/{vid}/action"), &b, Some(json!({"os-extend": {"new_size": 2}})))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    for (what, path) in [("volumes", "volumes/detail"), ("snapshots", "snapshots/detail")] {
        let (_, l) = c.call("GET", &format!("/v3/{pb}/{path}?all_tenants=1"), &b, None).await;
        assert!(l[what].as_array().unwrap().is_empty(), "{what}: {l}");
        let (_, l) = c.call("GET", &format!("/v3/{pb}/{path}?name=secret"), &b, None).await;
        assert!(l[what].as_array().unwrap().is_empty(), "{what} by filter: {l}");
    }
    // Cross references: copies and snapshots of what he cannot see are refused.
    for body in [json!({"volume": {"snapshot_id": sid}}), json!({"volume": {"source_volid": vid, "size": 1}})] {
        let (code, r) = c.call("POST", &format!("/v3/{pb}/volumes"), &b, Some(body)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{r}");
    }
    let (code, _) =
        c.call("POST", &format!("/v3/{pb}/snapshots"), &b, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Alice's project in the URL with Bob's token: refused.
    assert_eq!(c.call("GET", &format!("/v3/{pa}/volumes/{vid}"), &b, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", &format!("/v3/{pa}/volumes"), &b, None).await.0, StatusCode::FORBIDDEN);
    // A reader reads and cannot write.
    let reader_project = {
        let (_, r) = c.call("GET", "/v3/x/volumes", &reader, None).await;
        let _ = r;
        c.id.identity.store.project_list(Some("bob-reader-project"), None).await.unwrap()[0].id.clone()
    };
    assert_eq!(c.call("GET", &format!("/v3/{reader_project}/volumes"), &reader, None).await.0, StatusCode::OK);
    let (code, _) =
        c.call("POST", &format!("/v3/{reader_project}/volumes"), &reader, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // Types: only admins manage them.
    let (code, _) = c.call("POST", &format!("/v3/{pb}/types"), &b, Some(json!({"volume_type": {"name": "t"}}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // The admin sees all with all_tenants, and the host.
    let (_, l) = c.call("GET", &format!("/v3/{pb}/volumes/detail?all_tenants=1"), &admin, None).await;
    assert_eq!(l["volumes"].as_array().unwrap().len(), 1);
    assert!(l["volumes"][0]["os-vol-host-attr:host"].is_string());
    // Quotas: Bob sees only his own.
    let (code, _) = c.call("GET", &format!("/v3/{pb}/os-quota-sets/{pa}"), &b, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, q) = c.call("GET", &format!("/v3/{pb}/os-quota-sets/{pb}?usage=True"), &b, None).await;
    assert_eq!((code, &q["quota_set"]["volumes"]["limit"]), (StatusCode::OK, &json!(10)));
}

/// Per-type quotas (`volumes_<type>`, `gigabytes_<type>`, `snapshots_<type>`): shown for
/// every type, claimed with the project-wide ones, given back by deletes, moved by a
/// retype.
async fn per_type(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, t) = c.id.member("typed").await;
    let admin = c.admin.clone();
    let base = format!("/v3/{p}");
    let (code, gold) =
        c.call("POST", &format!("{base}/types"), &admin, Some(json!({"volume_type": {"name": "gold"}}))).await;
    assert_eq!(code, StatusCode::OK, "{gold}");
    let gold_id = gold["volume_type"]["id"].as_str().unwrap().to_string();
    // Unlimited until set; every type's three quotas are shown.
    let (_, q) = c.call("GET", &format!("{base}/os-quota-sets/{p}?usage=True"), &t, None).await;
    assert_eq!(q["quota_set"]["volumes_gold"], json!({"limit": -1, "in_use": 0, "reserved": 0, "allocated": 0}));
    assert_eq!(q["quota_set"]["gigabytes___DEFAULT__"]["limit"], -1, "{q}");
    // A registered default, then the project's limits: one gold volume, 3 gold GB.
    let services = c.id.call("GET", "/v3/services?type=volume", Some(&admin), None).await.json();
    let sid = services["services"][0]["id"].as_str().unwrap().to_string();
    let regs: Vec<Value> = ["volumes_gold", "gigabytes_gold", "snapshots_gold"]
        .iter()
        .map(|r| json!({"service_id": sid, "resource_name": r, "default_limit": -1}))
        .collect();
    let r = c.id.call("POST", "/v3/registered_limits", Some(&admin), Some(json!({"registered_limits": regs}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    c.id.set_limit("volume", &p, "volumes_gold", 1).await;
    c.id.set_limit("volume", &p, "gigabytes_gold", 3).await;
    c.volume.limits.invalidate();
    let gold_vol = |size: i64| json!({"volume": {"size": size, "volume_type": "gold"}});
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &t, Some(gold_vol(2))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/volumes/{vid}"), "volume", "available").await;
    let (code, r) = c.call("POST", &format!("{base}/volumes"), &t, Some(gold_vol(1))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert!(r.to_string().contains("volumes_gold"), "the refusal names the type's quota: {r}");
    // Another type is not held back by gold's quota.
    let (code, plain) = c.call("POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{plain}");
    let plain_id = plain["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/volumes/{plain_id}"), "volume", "available").await;
    // Extending past gigabytes_gold is refused; a snapshot counts in gold too.
    let act = format!("{base}/volumes/{vid}/action");
    let (code, _) = c.call("POST", &act, &t, Some(json!({"os-extend": {"new_size": 4}}))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, s) =
        c.call("POST", &format!("{base}/snapshots"), &t, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "2 GB of snapshot over the 1 left: {s}");
    c.id.set_limit("volume", &p, "gigabytes_gold", 10).await;
    c.volume.limits.invalidate();
    let (code, s) =
        c.call("POST", &format!("{base}/snapshots"), &t, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{s}");
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/snapshots/{sid}"), "snapshot", "available").await;
    let (_, q) = c.call("GET", &format!("{base}/os-quota-sets/{p}?usage=True"), &t, None).await;
    let q = &q["quota_set"];
    assert_eq!((&q["volumes_gold"]["in_use"], &q["gigabytes_gold"]["in_use"]), (&json!(1), &json!(4)), "{q}");
    assert_eq!((&q["snapshots_gold"]["in_use"], &q["volumes"]["in_use"]), (&json!(1), &json!(2)));
    // A volume with snapshots keeps its type.
    let retype = json!({"os-retype": {"new_type": "__DEFAULT__", "migration_policy": "never"}});
    assert_eq!(c.call("POST", &act, &t, Some(retype.clone())).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("DELETE", &format!("{base}/snapshots/{sid}"), &t, None).await.0, StatusCode::ACCEPTED);
    c.wait(&t, &format!("{base}/snapshots/{sid}"), "snapshot", "GONE").await;
    // Retyping the plain volume into gold: gold's one volume is taken.
    let pact = format!("{base}/volumes/{plain_id}/action");
    let to_gold = json!({"os-retype": {"new_type": "gold", "migration_policy": "never"}});
    assert_eq!(c.call("POST", &pact, &t, Some(to_gold.clone())).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    // Out of gold: its use moves to the default type.
    assert_eq!(c.call("POST", &act, &t, Some(retype)).await.0, StatusCode::ACCEPTED);
    let u = c.volume.store.usage(&p).await.unwrap();
    assert_eq!(u.get(&format!("volumes@{gold_id}")).copied().unwrap_or(0), 0, "{u:?}");
    assert_eq!(u.get(&format!("gigabytes@{gold_id}")).copied().unwrap_or(0), 0, "{u:?}");
    assert_eq!(c.call("POST", &pact, &t, Some(to_gold)).await.0, StatusCode::ACCEPTED, "gold has room now");
    // Deletes give everything back.
    for id in [&vid, &plain_id] {
        assert_eq!(c.call("DELETE", &format!("{base}/volumes/{id}"), &t, None).await.0, StatusCode::ACCEPTED);
        c.wait(&t, &format!("{base}/volumes/{id}"), "volume", "GONE").await;
    }
    let u = c.volume.store.usage(&p).await.unwrap();
    assert!(u.values().all(|n| *n == 0), "{u:?}");
    // Another project's private type is not named in a member's quotas.
    let private = json!({"volume_type": {"name": "hidden", "os-volume-type-access:is_public": false}});
    assert_eq!(c.call("POST", &format!("{base}/types"), &admin, Some(private)).await.0, StatusCode::OK);
    let (_, mine) = c.call("GET", &format!("{base}/os-quota-sets/{p}"), &t, None).await;
    assert!(
        mine["quota_set"].get("volumes_hidden").is_none() && mine["quota_set"].get("volumes_gold").is_some(),
        "{mine}"
    );
    let (_, defaults) = c.call("GET", &format!("{base}/os-quota-sets/{p}/defaults"), &t, None).await;
    assert!(defaults["quota_set"].get("volumes_hidden").is_none(), "{defaults}");
    let (_, theirs) = c.call("GET", &format!("{base}/os-quota-sets/{p}"), &admin, None).await;
    assert!(theirs["quota_set"].get("volumes_hidden").is_some(), "an admin sees every type's: {theirs}");
    // A quota set names existing types only.
    let bad = json!({"quota_set": {"volumes_tin": 3}});
    assert_eq!(c.call("PUT", &format!("{base}/os-quota-sets/{p}"), &admin, Some(bad)).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn per_type_quotas() {
    each_engine!(per_type);
}

#[tokio::test]
async fn another_projects_volumes_are_invisible() {
    each_engine!(isolation);
}

/// What a volume saga's end must not depend on: the subject's state, its project's
/// usage, what the backend holds.
async fn end_of(c: &Cloud, id: &str) -> Value {
    let s = &c.volume.store;
    if let Some(b) = s.backup_get(id).await.unwrap() {
        let u = s.usage(&b.project_id).await.unwrap();
        let held = c.volume.backups.get().unwrap().manifest(&b.data_id).await.unwrap().is_some();
        let volume = s.volume_get(&b.volume_id).await.unwrap().unwrap();
        return json!({"status": b.status.as_str(), "deleted": b.deleted, "held": held,
                      "failed": b.fail_reason.is_some(), "volume": volume.status.as_str(),
                      "backups": u.get("backups").copied().unwrap_or(0),
                      "backup_gigabytes": u.get("backup_gigabytes").copied().unwrap_or(0)});
    }
    let (status, size, deleted, project, backend_size) = match s.volume_get(id).await.unwrap() {
        Some(v) => {
            (v.status.as_str().to_string(), v.size, v.deleted, v.project_id, c.driver.size_of(id).await.unwrap())
        }
        None => {
            let snap = s.snapshot_get(id).await.unwrap().unwrap();
            let has = c.driver.has_snapshot(&snap.volume_id, id).await.unwrap().then_some(snap.size);
            (snap.status.as_str().to_string(), snap.size, snap.deleted, snap.project_id, has)
        }
    };
    let (volumes, gigabytes, snapshots) = c.usage(&project).await;
    let images: Value = reqwest::Client::new()
        .get(format!("{}/v2/images?owner={project}&visibility=all", c.image_url))
        .header("x-auth-token", &c.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let images: Vec<Value> = images["images"].as_array().unwrap().iter().map(|i| i["status"].clone()).collect();
    json!({"status": status, "size": size, "deleted": deleted, "on_backend": backend_size,
           "volumes": volumes, "gigabytes": gigabytes, "snapshots": snapshots, "images": images})
}

async fn generic_sagas(engine: Engine) {
    use stratus_test_support::saga::check_saga;
    let c = Cloud::start(engine).await;
    let runner = &c.volume.sagas;
    let observe = |id: String| {
        let c = &c;
        async move { end_of(c, &id).await }
    };
    // A volume of its own project for each scenario (usage is compared per project).
    let volume = |label: String, ready: bool| {
        let c = &c;
        async move {
            let (p, token) = c.id.member(&label).await;
            let (code, v) =
                c.call("POST", &format!("/v3/{p}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
            assert_eq!(code, StatusCode::ACCEPTED, "{v}");
            let id = v["volume"]["id"].as_str().unwrap().to_string();
            if ready {
                c.wait(&token, &format!("/v3/{p}/volumes/{id}"), "volume", "available").await;
            }
            (p, token, id)
        }
    };
    let r = check_saga(runner, "volume_create", |l| async { volume(l, false).await.2 }, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "available", "size": 1, "deleted": false, "on_backend": 1, "volumes": 1, "gigabytes": 1, "snapshots": 0, "images": []})
    );
    let failed = r.failures_alike();
    assert_eq!(
        (&failed["status"], &failed["on_backend"], &failed["volumes"]),
        (&json!("error"), &Value::Null, &json!(1)),
        "{failed}"
    );
    assert_eq!(r.stuck.1["status"], "error");

    let start_delete = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        assert_eq!(c.call("DELETE", &format!("/v3/{p}/volumes/{id}"), &token, None).await.0, StatusCode::ACCEPTED);
        id
    };
    let r = check_saga(runner, "volume_delete", start_delete, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "deleting", "size": 1, "deleted": true, "on_backend": null, "volumes": 0, "gigabytes": 0, "snapshots": 0, "images": []})
    );
    for (_, _, end) in &r.failed {
        assert_eq!((&end["status"], &end["deleted"]), (&json!("error_deleting"), &json!(false)), "{end}");
    }

    let start_extend = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        let (code, _) = c
            .call("POST", &format!("/v3/{p}/volumes/{id}/action"), &token, Some(json!({"os-extend": {"new_size": 2}})))
            .await;
        assert_eq!(code, StatusCode::ACCEPTED);
        id
    };
    let r = check_saga(runner, "volume_extend", start_extend, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "available", "size": 2, "deleted": false, "on_backend": 2, "volumes": 1, "gigabytes": 2, "snapshots": 0, "images": []})
    );
    for (_, _, end) in &r.failed {
        assert_eq!(
            (&end["status"], &end["size"], &end["gigabytes"]),
            (&json!("error_extending"), &json!(1), &json!(1)),
            "{end}"
        );
    }

    let start_snapshot = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        let (code, s) =
            c.call("POST", &format!("/v3/{p}/snapshots"), &token, Some(json!({"snapshot": {"volume_id": id}}))).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        s["snapshot"]["id"].as_str().unwrap().to_string()
    };
    let r = check_saga(runner, "snapshot_create", start_snapshot, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "available", "size": 1, "deleted": false, "on_backend": 1, "volumes": 1, "gigabytes": 2, "snapshots": 1, "images": []})
    );
    let failed = r.failures_alike();
    assert_eq!((&failed["status"], &failed["on_backend"]), (&json!("error"), &Value::Null), "{failed}");

    let start_snapshot_delete = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        let (_, s) =
            c.call("POST", &format!("/v3/{p}/snapshots"), &token, Some(json!({"snapshot": {"volume_id": id}}))).await;
        let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
        c.wait(&token, &format!("/v3/{p}/snapshots/{sid}"), "snapshot", "available").await;
        assert_eq!(c.call("DELETE", &format!("/v3/{p}/snapshots/{sid}"), &token, None).await.0, StatusCode::ACCEPTED);
        sid
    };
    let r = check_saga(runner, "snapshot_delete", start_snapshot_delete, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "deleting", "size": 1, "deleted": true, "on_backend": null, "volumes": 1, "gigabytes": 1, "snapshots": 0, "images": []})
    );
    for (_, _, end) in &r.failed {
        assert_eq!(&end["status"], &json!("error_deleting"), "{end}");
    }
    let start_upload = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        let (code, r) = c
            .call(
                "POST",
                &format!("/v3/{p}/volumes/{id}/action"),
                &token,
                Some(json!({"os-volume_upload_image": {"image_name": "up", "disk_format": "raw", "container_format": "bare"}})),
            )
            .await;
        assert_eq!(code, StatusCode::ACCEPTED, "{r}");
        assert!(r["os-volume_upload_image"]["image_id"].is_string(), "{r}");
        id
    };
    let r = check_saga(runner, "volume_upload", start_upload, observe).await;
    assert_eq!(r.ok["images"], json!(["active"]), "{}", r.ok);
    assert_eq!(r.ok["status"], "available");
    let failed = r.failures_alike();
    assert_eq!((&failed["status"], &failed["images"]), (&json!("available"), &json!([])), "no image left: {failed}");

    let start_revert = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        let (_, s) =
            c.call("POST", &format!("/v3/{p}/snapshots"), &token, Some(json!({"snapshot": {"volume_id": id}}))).await;
        let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
        c.wait(&token, &format!("/v3/{p}/snapshots/{sid}"), "snapshot", "available").await;
        let body = json!({"revert": {"snapshot_id": sid}});
        let (code, r) = c.call_v("3.40", "POST", &format!("/v3/{p}/volumes/{id}/action"), &token, Some(body)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{r}");
        id
    };
    let r = check_saga(runner, "volume_revert", start_revert, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "available", "size": 1, "deleted": false, "on_backend": 1, "volumes": 1, "gigabytes": 2, "snapshots": 1, "images": []})
    );
    let failed = r.failures_alike();
    assert_eq!(failed["status"], "error", "as Cinder: the volume may be half written: {failed}");

    // Backups: made, deleted, restored into the volume they came from.
    let backup_of = |id: String, p: String, token: String| {
        let c = &c;
        async move {
            let (code, b) =
                c.call("POST", &format!("/v3/{p}/backups"), &token, Some(json!({"backup": {"volume_id": id}}))).await;
            assert_eq!(code, StatusCode::ACCEPTED, "{b}");
            b["backup"]["id"].as_str().unwrap().to_string()
        }
    };
    let (backup_of, volume) = (&backup_of, &volume);
    let start_backup = |l: String| async {
        let (p, token, id) = volume(l, true).await;
        backup_of(id, p, token).await
    };
    let r = check_saga(runner, "backup_create", start_backup, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "available", "deleted": false, "held": true, "failed": false, "volume": "available",
               "backups": 1, "backup_gigabytes": 1})
    );
    let failed = r.failures_alike();
    assert_eq!(
        *failed,
        json!({"status": "error", "deleted": false, "held": false, "failed": true, "volume": "available",
               "backups": 1, "backup_gigabytes": 1}),
        "the quota stays until the backup in error is deleted, as Cinder"
    );
    let ready_backup = |l: String| {
        let c = &c;
        async move {
            let (p, token, id) = volume(l, true).await;
            let bid = backup_of(id, p.clone(), token.clone()).await;
            c.wait(&token, &format!("/v3/{p}/backups/{bid}"), "backup", "available").await;
            (p, token, bid)
        }
    };
    let ready_backup = &ready_backup;
    let start_backup_delete = |l: String| async {
        let (p, token, bid) = ready_backup(l).await;
        assert_eq!(c.call("DELETE", &format!("/v3/{p}/backups/{bid}"), &token, None).await.0, StatusCode::ACCEPTED);
        bid
    };
    let r = check_saga(runner, "backup_delete", start_backup_delete, observe).await;
    assert_eq!(
        r.ok,
        json!({"status": "deleting", "deleted": true, "held": false, "failed": false, "volume": "available",
               "backups": 0, "backup_gigabytes": 0})
    );
    for (_, _, end) in &r.failed {
        assert_eq!((&end["status"], &end["backups"]), (&json!("error_deleting"), &json!(1)), "{end}");
    }
    let start_restore = |l: String| async {
        let (p, token, bid) = ready_backup(l).await;
        let vid = c.volume.store.backup_get(&bid).await.unwrap().unwrap().volume_id;
        let body = json!({"restore": {"volume_id": vid}});
        let (code, r) = c.call("POST", &format!("/v3/{p}/backups/{bid}/restore"), &token, Some(body)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{r}");
        vid
    };
    let r = check_saga(runner, "backup_restore", start_restore, observe).await;
    assert_eq!(r.ok["status"], "available", "{}", r.ok);
    let failed = r.failures_alike();
    assert_eq!(failed["status"], "error_restoring", "{failed}");

    // Only the stuck sagas (one per kind) are left unfinished.
    eventually("every saga ended or stuck", || async {
        c.volume.sagas.unfinished(None).await.unwrap() == c.volume.sagas.stuck().await.unwrap()
    })
    .await;
    assert_eq!(c.volume.sagas.stuck().await.unwrap().len(), 10);
}

#[tokio::test]
async fn volume_sagas_pass_the_generic_saga_tests() {
    each_engine!(generic_sagas);
}

async fn transfers(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pa, a) = c.id.member("giver").await;
    let (pb, b) = c.id.member("taker").await;
    let (pc, other) = c.id.member("bystander").await;
    let (_, v) =
        c.call("POST", &format!("/v3/{pa}/volumes"), &a, Some(json!({"volume": {"size": 2, "name": "gift"}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/volumes/{vid}"), "volume", "available").await;
    // Only the owner offers it.
    let offer = json!({"transfer": {"volume_id": vid, "name": "t"}});
    assert_eq!(
        c.call("POST", &format!("/v3/{pb}/os-volume-transfer"), &b, Some(offer.clone())).await.0,
        StatusCode::NOT_FOUND
    );
    let (code, t) = c.call("POST", &format!("/v3/{pa}/os-volume-transfer"), &a, Some(offer.clone())).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{t}");
    let (tid, key) =
        (t["transfer"]["id"].as_str().unwrap().to_string(), t["transfer"]["auth_key"].as_str().unwrap().to_string());
    let (_, shown) = c.call("GET", &format!("/v3/{pa}/volumes/{vid}"), &a, None).await;
    assert_eq!(shown["volume"]["status"], "awaiting-transfer");
    // A second offer, a delete or an extend of a volume on offer is refused.
    assert_eq!(
        c.call("POST", &format!("/v3/{pa}/os-volume-transfer"), &a, Some(offer)).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(c.call("DELETE", &format!("/v3/{pa}/volumes/{vid}"), &a, None).await.0, StatusCode::BAD_REQUEST);
    // The transfer is the giver's to see; the key is never shown again.
    let (_, l) = c.call("GET", &format!("/v3/{pa}/os-volume-transfer/detail"), &a, None).await;
    assert_eq!(l["transfers"].as_array().unwrap().len(), 1);
    assert!(l["transfers"][0].get("auth_key").is_none());
    assert_eq!(c.call("GET", &format!("/v3/{pb}/os-volume-transfer/{tid}"), &b, None).await.0, StatusCode::NOT_FOUND);
    let (_, l) = c.call("GET", &format!("/v3/{pc}/os-volume-transfer?all_tenants=1"), &other, None).await;
    assert!(l["transfers"].as_array().unwrap().is_empty());
    // A wrong key changes nothing; over quota changes nothing.
    let accept = |key: &str| json!({"accept": {"auth_key": key}});
    let (code, _) =
        c.call("POST", &format!("/v3/{pb}/os-volume-transfer/{tid}/accept"), &b, Some(accept("wrong"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    c.id.set_limit("volume", &pb, "gigabytes", 1).await;
    c.volume.limits.invalidate();
    let (code, r) = c.call("POST", &format!("/v3/{pb}/os-volume-transfer/{tid}/accept"), &b, Some(accept(&key))).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{r}");
    assert_eq!(c.usage(&pa).await, (1, 2, 0));
    c.id.set_limit("volume", &pb, "gigabytes", 10).await;
    c.volume.limits.invalidate();
    // The right key moves the volume and its quota.
    let (code, r) = c.call("POST", &format!("/v3/{pb}/os-volume-transfer/{tid}/accept"), &b, Some(accept(&key))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    assert_eq!(c.call("GET", &format!("/v3/{pa}/volumes/{vid}"), &a, None).await.0, StatusCode::NOT_FOUND);
    let (_, shown) = c.call("GET", &format!("/v3/{pb}/volumes/{vid}"), &b, None).await;
    assert_eq!(shown["volume"]["status"], "available");
    assert_eq!((c.usage(&pa).await, c.usage(&pb).await), ((0, 0, 0), (1, 2, 0)));
    // Accepted once: the transfer is gone.
    let (code, _) = c.call("POST", &format!("/v3/{pb}/os-volume-transfer/{tid}/accept"), &b, Some(accept(&key))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // Offered and withdrawn: available again to its owner.
    let (_, t) = c
        .call("POST", &format!("/v3/{pb}/os-volume-transfer"), &b, Some(json!({"transfer": {"volume_id": vid}})))
        .await;
    let tid = t["transfer"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.call("DELETE", &format!("/v3/{pa}/os-volume-transfer/{tid}"), &a, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.call("DELETE", &format!("/v3/{pb}/os-volume-transfer/{tid}"), &b, None).await.0, StatusCode::ACCEPTED);
    let (_, shown) = c.call("GET", &format!("/v3/{pb}/volumes/{vid}"), &b, None).await;
    assert_eq!(shown["volume"]["status"], "available");
}

#[tokio::test]
async fn transfers_move_a_volume_and_its_quota() {
    each_engine!(transfers);
}

async fn transfers_with_snapshots(engine: Engine) {
    // 3.55: a volume goes with its snapshots (unless `no_snapshots`), their quota too.
    let c = Cloud::start(engine).await;
    let (pa, a) = c.id.member("snap-giver").await;
    let (pb, b) = c.id.member("snap-taker").await;
    let (_, v) = c.call("POST", &format!("/v3/{pa}/volumes"), &a, Some(json!({"volume": {"size": 2}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/volumes/{vid}"), "volume", "available").await;
    let (_, s) =
        c.call("POST", &format!("/v3/{pa}/snapshots"), &a, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/snapshots/{sid}"), "snapshot", "available").await;
    let new = format!("/v3/{pa}/volume-transfers");
    // The new path needs 3.55; `no_snapshots` is refused for a volume that has some.
    let offer = |no: bool| json!({"transfer": {"volume_id": vid, "name": "t", "no_snapshots": no}});
    assert_eq!(c.call_v("3.54", "POST", &new, &a, Some(offer(false))).await.0, StatusCode::NOT_FOUND);
    let (code, e) = c.call_v("3.55", "POST", &new, &a, Some(offer(true))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{e}");
    let (code, e) = c.call("POST", &format!("/v3/{pa}/os-volume-transfer"), &a, Some(offer(true))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "no_snapshots belongs to the new path: {e}");
    let (code, t) = c.call_v("3.57", "POST", &new, &a, Some(offer(false))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{t}");
    let t = &t["transfer"];
    assert_eq!(
        (&t["no_snapshots"], &t["source_project_id"], &t["accepted"]),
        (&json!(false), &json!(pa), &json!(false))
    );
    assert_eq!(t["destination_project_id"], Value::Null);
    let (tid, key) = (t["id"].as_str().unwrap().to_string(), t["auth_key"].as_str().unwrap().to_string());
    // Listed with paging (3.59), shown without the 3.57 fields at 3.55.
    let (_, l) = c.call_v("3.59", "GET", &format!("{new}/detail?limit=1"), &a, None).await;
    assert_eq!(l["transfers"].as_array().unwrap().len(), 1);
    let (_, one) = c.call_v("3.55", "GET", &format!("{new}/{tid}"), &a, None).await;
    assert!(one["transfer"].get("accepted").is_none() && one["transfer"]["no_snapshots"] == false, "{one}");
    // Accepting takes quota for both: 2 GB of volume and 2 of snapshot.
    c.id.set_limit("volume", &pb, "gigabytes", 3).await;
    c.volume.limits.invalidate();
    let accept = json!({"accept": {"auth_key": key}});
    let path = format!("/v3/{pb}/volume-transfers/{tid}/accept");
    let (code, e) = c.call_v("3.55", "POST", &path, &b, Some(accept.clone())).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    c.id.set_limit("volume", &pb, "gigabytes", 10).await;
    c.volume.limits.invalidate();
    let (code, e) = c.call_v("3.55", "POST", &path, &b, Some(accept)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{e}");
    let (code, snap) = c.call("GET", &format!("/v3/{pb}/snapshots/{sid}"), &b, None).await;
    assert_eq!(code, StatusCode::OK, "the snapshot went with its volume: {snap}");
    assert_eq!(c.call("GET", &format!("/v3/{pa}/snapshots/{sid}"), &a, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!((c.usage(&pa).await, c.usage(&pb).await), ((0, 0, 0), (1, 4, 1)));
}

#[tokio::test]
async fn transfers_take_snapshots_along_from_3_55() {
    each_engine!(transfers_with_snapshots);
}

async fn microversions_48_to_53(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, t) = c.id.member("mv-user").await;
    let base = format!("/v3/{p}");
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"size": 1}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/volumes/{vid}"), "volume", "available").await;
    // 3.48: where a volume is served, and that its target is its own.
    let (_, old) = c.call_v("3.47", "GET", &format!("{base}/volumes/{vid}"), &t, None).await;
    assert!(old["volume"].get("service_uuid").is_none());
    let (_, new) = c.call_v("3.48", "GET", &format!("{base}/volumes/{vid}"), &t, None).await;
    assert_eq!(new["volume"]["shared_targets"], false);
    let id = new["volume"]["service_uuid"].as_str().unwrap_or_default().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{new}");
    let (_, again) = c.call_v("3.59", "GET", &format!("{base}/volumes/{vid}"), &t, None).await;
    assert_eq!(again["volume"]["service_uuid"], json!(id), "stable");
    // 3.49: whether each volume service's storage answers.
    let admin_project = c.id.identity.store.project_list(Some("admin"), None).await.unwrap()[0].id.clone();
    let (_, svcs) = c.call_v("3.49", "GET", &format!("/v3/{admin_project}/os-services"), &c.admin, None).await;
    let volume_svcs: Vec<&Value> =
        svcs["services"].as_array().unwrap().iter().filter(|s| s["binary"] == "cinder-volume").collect();
    assert!(!volume_svcs.is_empty() && volume_svcs.iter().all(|s| s["backend_state"] == "up"), "{svcs}");
    // 3.52: types filtered by extra specs; a type's zones bound where its volumes go.
    let admin_base = format!("/v3/{admin_project}");
    for (name, specs) in [("gold", json!({"tier": "gold"})), ("far", json!({"RESKEY:availability_zones": "az9"}))] {
        let (code, made) = c
            .call(
                "POST",
                &format!("{admin_base}/types"),
                &c.admin,
                Some(json!({"volume_type": {"name": name, "extra_specs": specs}})),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{made}");
    }
    let filter = "%7B%22tier%22%3A%20%22gold%22%7D";
    let (_, l) = c.call_v("3.52", "GET", &format!("{base}/types?extra_specs={filter}"), &t, None).await;
    let names: Vec<&str> = l["volume_types"].as_array().unwrap().iter().map(|x| x["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["gold"]);
    let (code, e) = c
        .call("POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"size": 1, "volume_type": "far"}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{e}");
    // 3.53: unknown keys in a create, and an update that changes nothing, are refused.
    let odd = json!({"volume": {"size": 1, "status": "available"}});
    assert_eq!(
        c.call_v("3.53", "POST", &format!("{base}/volumes"), &t, Some(odd.clone())).await.0,
        StatusCode::BAD_REQUEST
    );
    let (code, made) = c.call_v("3.52", "POST", &format!("{base}/volumes"), &t, Some(odd)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "ignored before 3.53: {made}");
    let path = format!("{base}/volumes/{vid}");
    assert_eq!(c.call_v("3.53", "PUT", &path, &t, Some(json!({"volume": {}}))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.call_v("3.53", "PUT", &path, &t, Some(json!({"volume": {"name": "n"}}))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn microversions_up_to_3_53_change_what_they_say() {
    each_engine!(microversions_48_to_53);
}

async fn attach_steps(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("attach").await;
    let base = format!("/v3/{p}");
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{id}");
    c.wait(&token, &vpath, "volume", "available").await;
    let act = |body: Value| {
        let (c, token, path) = (&c, &token, format!("{vpath}/action"));
        async move { c.call("POST", &path, token, Some(body)).await }
    };
    let status = || async { c.call("GET", &vpath, &token, None).await.1["volume"].clone() };

    // Reserve (again for the same server: still granted; for another: refused),
    // connect, attach (again: nothing changes).
    let server = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    assert_eq!(act(json!({"os-reserve": {"instance_uuid": server}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"os-reserve": {"instance_uuid": server}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"os-reserve": {"instance_uuid": "other"}})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"os-reserve": null})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(status().await["status"], "attaching");
    assert_eq!(act(json!({"os-initialize_connection": {}})).await.0, StatusCode::BAD_REQUEST, "a connector is needed");
    let nameless = json!({"os-initialize_connection": {"connector": {"ip": "192.0.2.1"}}});
    assert_eq!(act(nameless).await.0, StatusCode::BAD_REQUEST, "a connector names its host");
    let (code, info) = act(json!({"os-initialize_connection": {"connector": {"host": "h1"}}})).await;
    assert_eq!(code, StatusCode::OK, "{info}");
    assert_eq!(info["connection_info"]["driver_volume_type"], "fake");
    assert_eq!(act(json!({"os-attach": {"mountpoint": "/dev/vdb"}})).await.0, StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        let (code, body) =
            act(json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb", "host_name": "h1"}})).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    }
    let v = status().await;
    assert_eq!(v["status"], "in-use");
    let a = v["attachments"].as_array().unwrap();
    assert_eq!(a.len(), 1, "{v}");
    assert_eq!(
        (&a[0]["server_id"], &a[0]["device"], &a[0]["host_name"], &a[0]["id"]),
        (&json!(server), &json!("/dev/vdb"), &json!("h1"), &json!(id))
    );
    let attachment = a[0]["attachment_id"].as_str().unwrap().to_string();

    // In use: no delete, no extend, no transfer; a snapshot only with force.
    assert_eq!(c.call("DELETE", &vpath, &token, None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"os-extend": {"new_size": 2}})).await.0, StatusCode::BAD_REQUEST);
    let snap = |force: bool| json!({"snapshot": {"volume_id": id, "force": force}});
    assert_eq!(
        c.call("POST", &format!("{base}/snapshots"), &token, Some(snap(false))).await.0,
        StatusCode::BAD_REQUEST
    );
    let (code, s) = c.call("POST", &format!("{base}/snapshots"), &token, Some(snap(true))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{s}");
    let spath = format!("{base}/snapshots/{}", s["snapshot"]["id"].as_str().unwrap());
    c.wait(&token, &spath, "snapshot", "available").await;
    assert_eq!(c.call("DELETE", &spath, &token, None).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &spath, "snapshot", "GONE").await;

    // Detaching, rolled back, then for real (twice: the second finds nothing to do).
    assert_eq!(act(json!({"os-begin_detaching": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "detaching");
    assert_eq!(act(json!({"os-roll_detaching": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "in-use");
    assert_eq!(act(json!({"os-begin_detaching": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"os-terminate_connection": {"connector": {"host": "h1"}}})).await.0, StatusCode::ACCEPTED);
    let hostless = json!({"os-terminate_connection": {"connector": {"host": ""}}});
    assert_eq!(act(hostless).await.0, StatusCode::ACCEPTED, "nothing was exported to no host");
    for _ in 0..2 {
        assert_eq!(act(json!({"os-detach": {"attachment_id": attachment}})).await.0, StatusCode::ACCEPTED);
    }
    let v = status().await;
    assert_eq!((&v["status"], &v["attachments"]), (&json!("available"), &json!([])));
    // Detaching what is not attached is refused; unreserving what is not reserved is not.
    assert_eq!(act(json!({"os-begin_detaching": {}})).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(act(json!({"os-unreserve": {}})).await.0, StatusCode::ACCEPTED);

    // A reservation given up; a stuck attachment forced off by an admin only.
    assert_eq!(act(json!({"os-reserve": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"os-unreserve": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "available");
    assert_eq!(act(json!({"os-reserve": {}})).await.0, StatusCode::ACCEPTED);
    act(json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}})).await;
    assert_eq!(act(json!({"os-force_detach": {}})).await.0, StatusCode::FORBIDDEN);
    let admin = c.admin.clone();
    let (code, _) = c.call("POST", &format!("{vpath}/action"), &admin, Some(json!({"os-force_detach": {}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "available");
    // Or by resetting its attach status (`openstack volume set --detached`).
    assert_eq!(act(json!({"os-reserve": {}})).await.0, StatusCode::ACCEPTED);
    act(json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}})).await;
    let reset = |body: Value| {
        let (c, admin, path) = (&c, &admin, format!("{vpath}/action"));
        async move { c.call("POST", &path, admin, Some(json!({"os-reset_status": body}))).await.0 }
    };
    assert_eq!(reset(json!({"status": "available"})).await, StatusCode::BAD_REQUEST, "still attached");
    assert_eq!(reset(json!({"attach_status": "attached"})).await, StatusCode::BAD_REQUEST);
    assert_eq!(status().await["status"], "in-use");
    assert_eq!(reset(json!({"attach_status": "detached"})).await, StatusCode::ACCEPTED);
    let v = status().await;
    assert_eq!((&v["status"], &v["attachments"]), (&json!("available"), &json!([])));

    // Straight from available, without a reservation, as Cinder takes it.
    let direct = json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdc"}});
    assert_eq!(act(direct).await.0, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "in-use");
    assert_eq!(act(json!({"os-detach": {}})).await.0, StatusCode::ACCEPTED);
    assert_eq!(status().await["status"], "available");

    // Another project can take none of these steps.
    let (_, other) = c.id.member("attach-other").await;
    let (code, _) = c
        .call("POST", &format!("{vpath}/action"), &other, Some(json!({"os-reserve": {"instance_uuid": server}})))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "the URL names another project");
    assert_eq!(status().await["status"], "available");
}

#[tokio::test]
async fn attach_steps_move_a_volume_through_its_states() {
    each_engine!(attach_steps);
}

/// Cinder's answer shapes (Tempest checks them with strict schemas) and the metadata,
/// extra-spec and read-only calls.
async fn shapes_and_metadata(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("p1").await;
    let base = format!("/v3/{p}");
    let body = json!({"volume": {"size": 1, "name": "v1", "metadata": {"a": "1"}}});
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(body)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    // The create answer has no extension attributes; show has them.
    assert!(v["volume"].get("os-vol-tenant-attr:tenant_id").is_none(), "{v}");
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{id}");
    let shown = c.wait(&token, &vpath, "volume", "available").await;
    assert_eq!(shown["os-vol-tenant-attr:tenant_id"], json!(p));

    // Metadata items: show, put (the key of the URL only), delete.
    let (code, m) = c.call("GET", &format!("{vpath}/metadata/a"), &token, None).await;
    assert_eq!((code, m), (StatusCode::OK, json!({"meta": {"a": "1"}})));
    let (code, _) = c.call("PUT", &format!("{vpath}/metadata/a"), &token, Some(json!({"meta": {"b": "2"}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, m) = c.call("PUT", &format!("{vpath}/metadata/a"), &token, Some(json!({"meta": {"a": "9"}}))).await;
    assert_eq!((code, m), (StatusCode::OK, json!({"meta": {"a": "9"}})));
    let (code, _) = c.call("GET", &format!("{vpath}/metadata/nope"), &token, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Read-only flag, as Cinder records it.
    let (code, _) = c
        .call("POST", &format!("{vpath}/action"), &token, Some(json!({"os-update_readonly_flag": {"readonly": true}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, v) = c.call("GET", &vpath, &token, None).await;
    assert_eq!(v["volume"]["metadata"]["readonly"], "True");

    // Snapshots: summary on create, extended attributes on show, metadata like volumes'.
    let (code, s) = c
        .call(
            "POST",
            &format!("{base}/snapshots"),
            &token,
            Some(json!({"snapshot": {"volume_id": id, "metadata": {"k": "v"}}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{s}");
    assert!(s["snapshot"].get("os-extended-snapshot-attributes:project_id").is_none(), "{s}");
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    let spath = format!("{base}/snapshots/{sid}");
    let shown = c.wait(&token, &spath, "snapshot", "available").await;
    assert_eq!(shown["os-extended-snapshot-attributes:project_id"], json!(p));
    let (code, m) = c.call("POST", &format!("{spath}/metadata"), &token, Some(json!({"metadata": {"x": "y"}}))).await;
    assert_eq!((code, m), (StatusCode::OK, json!({"metadata": {"k": "v", "x": "y"}})));
    let (code, _) = c.call("DELETE", &format!("{spath}/metadata/k"), &token, None).await;
    assert_eq!(code, StatusCode::OK);
    let (_, m) = c.call("GET", &format!("{spath}/metadata"), &token, None).await;
    assert_eq!(m, json!({"metadata": {"x": "y"}}));
    // No volume named: the volume is not found, as Cinder answers.
    let (code, _) =
        c.call("POST", &format!("{base}/snapshots"), &token, Some(json!({"snapshot": {"name": "s"}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // A full page links to the next, on the path that was asked.
    let (_, page) = c.call("GET", &format!("{base}/volumes/detail?limit=1"), &token, None).await;
    let next = page["volumes_links"][0]["href"].as_str().unwrap_or_default().to_string();
    assert!(next.contains("/volumes/detail?"), "{page}");
    // Cinder's list parameters: offset, an unknown sort key (400), an unknown marker (404).
    let (code, _) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, all) = c.call("GET", &format!("{base}/volumes?sort=created_at:asc"), &token, None).await;
    let (_, skipped) = c.call("GET", &format!("{base}/volumes?sort=created_at:asc&offset=1"), &token, None).await;
    assert_eq!(skipped["volumes"].as_array().unwrap()[..], all["volumes"].as_array().unwrap()[1..]);
    let (code, _) = c.call("GET", &format!("{base}/snapshots?sort_key=nonsense"), &token, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) =
        c.call("GET", &format!("{base}/snapshots?marker=7e5c9c36-4a3c-4a05-b8a1-4cd5b0a1a1a1"), &token, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // What the volume shows of its image: set, shown, one key removed.
    let act = |who: String, body: Value| {
        let (c, path) = (&c, format!("{vpath}/action"));
        async move { c.call("POST", &path, &who, Some(body)).await }
    };
    let meta = json!({"os-set_image_metadata": {"metadata": {"image_name": "x", "ramdisk_id": "r"}}});
    let (code, m) = act(token.clone(), meta).await;
    assert_eq!((code, &m["metadata"]["image_name"]), (StatusCode::OK, &json!("x")), "{m}");
    let (code, e) = act(token.clone(), json!({"os-unset_image_metadata": {"key": "ramdisk_id"}})).await;
    assert_eq!(code, StatusCode::OK, "{e} {m}");
    let (_, v) = c.call("GET", &vpath, &token, None).await;
    assert_eq!(v["volume"]["volume_image_metadata"], json!({"image_name": "x"}));
    let (code, _) = act(token.clone(), json!({"os-unset_image_metadata": {"key": "ramdisk_id"}})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Admins set any of Cinder's statuses by hand, and force a volume away whatever its
    // status; members may do neither.
    let admin = c.admin.clone();
    assert_eq!(act(token.clone(), json!({"os-force_delete": {}})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(act(admin.clone(), json!({"os-reset_status": {"status": "bogus"}})).await.0, StatusCode::BAD_REQUEST);
    for status in ["maintenance", "attaching", "creating"] {
        assert_eq!(act(admin.clone(), json!({"os-reset_status": {"status": status}})).await.0, StatusCode::ACCEPTED);
        assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["status"], status);
    }
    assert_eq!(c.call("DELETE", &vpath, &token, None).await.0, StatusCode::BAD_REQUEST, "creating: not deletable");
    // Snapshots likewise; and their project reports on one being made, as a backend.
    let sact = |who: String, body: Value| {
        let (c, path) = (&c, format!("{spath}/action"));
        async move { c.call("POST", &path, &who, Some(body)).await.0 }
    };
    let report = json!({"os-update_snapshot_status": {"status": "error", "progress": "80%"}});
    assert_eq!(sact(token.clone(), report.clone()).await, StatusCode::BAD_REQUEST, "available: nothing to report");
    assert_eq!(sact(token.clone(), json!({"os-reset_status": {"status": "creating"}})).await, StatusCode::FORBIDDEN);
    assert_eq!(sact(admin.clone(), json!({"os-reset_status": {"status": "creating"}})).await, StatusCode::ACCEPTED);
    assert_eq!(sact(token.clone(), report).await, StatusCode::ACCEPTED);
    let shown = c.call("GET", &spath, &token, None).await.1["snapshot"].clone();
    assert_eq!(
        (&shown["status"], &shown["os-extended-snapshot-attributes:progress"]),
        (&json!("error"), &json!("80%"))
    );
    assert_eq!(sact(admin.clone(), json!({"os-reset_status": {"status": "deleting"}})).await, StatusCode::ACCEPTED);
    assert_eq!(sact(token.clone(), json!({"os-force_delete": {}})).await, StatusCode::FORBIDDEN);
    assert_eq!(sact(admin.clone(), json!({"os-force_delete": {}})).await, StatusCode::ACCEPTED);
    c.wait(&token, &spath, "snapshot", "GONE").await;
    assert_eq!(act(admin.clone(), json!({"os-force_delete": {}})).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &vpath, "volume", "GONE").await;
    assert_eq!(c.driver.size_of(&id).await.unwrap(), None, "its bytes are gone");
}

#[tokio::test]
async fn answers_have_cinders_shapes_and_metadata_calls_work() {
    each_engine!(shapes_and_metadata);
}

async fn types_and_qos(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p1, t1) = c.id.member("types-1").await;
    let (p2, t2) = c.id.member("types-2").await;
    let admin = c.admin.clone();
    let (code, ty) = c
        .call(
            "POST",
            &format!("/v3/{p1}/types"),
            &admin,
            Some(json!({"volume_type": {"name": "gold", "os-volume-type-access:is_public": false}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{ty}");
    let tid = ty["volume_type"]["id"].as_str().unwrap().to_string();
    let names = |body: &Value| -> Vec<String> {
        body["volume_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    let create = |p: String, t: String| {
        let c = &c;
        async move {
            c.call("POST", &format!("/v3/{p}/volumes"), &t, Some(json!({"volume": {"size": 1, "volume_type": "gold"}})))
                .await
                .0
        }
    };

    // Private: unseen and unusable until given; then only the project given sees it.
    assert!(!names(&c.call("GET", &format!("/v3/{p1}/types"), &t1, None).await.1).contains(&"gold".to_string()));
    assert_eq!(create(p1.clone(), t1.clone()).await, StatusCode::NOT_FOUND);
    let act = |body: Value, who: String| {
        let (c, path) = (&c, format!("/v3/{p1}/types/{tid}/action"));
        async move { c.call("POST", &path, &who, Some(body)).await.0 }
    };
    assert_eq!(act(json!({"addProjectAccess": {"project": p1}}), t1.clone()).await, StatusCode::FORBIDDEN);
    assert_eq!(act(json!({"addProjectAccess": {"project": p1}}), admin.clone()).await, StatusCode::ACCEPTED);
    assert_eq!(act(json!({"addProjectAccess": {"project": p1}}), admin.clone()).await, StatusCode::CONFLICT);
    assert!(names(&c.call("GET", &format!("/v3/{p1}/types"), &t1, None).await.1).contains(&"gold".to_string()));
    assert_eq!(create(p1.clone(), t1.clone()).await, StatusCode::ACCEPTED);
    assert_eq!(create(p2.clone(), t2.clone()).await, StatusCode::NOT_FOUND, "another project was not given it");
    assert_eq!(c.call("GET", &format!("/v3/{p2}/types/{tid}"), &t2, None).await.0, StatusCode::NOT_FOUND);
    let (code, access) = c.call("GET", &format!("/v3/{p1}/types/{tid}/os-volume-type-access"), &admin, None).await;
    assert_eq!(
        (code, access),
        (StatusCode::OK, json!({"volume_type_access": [{"volume_type_id": tid, "project_id": p1}]}))
    );
    let public =
        c.call("GET", &format!("/v3/{p1}/types/__DEFAULT__"), &admin, None).await.1["volume_type"]["id"].clone();
    let public_action = format!("/v3/{p1}/types/{}/action", public.as_str().unwrap());
    let (code, _) = c.call("POST", &public_action, &admin, Some(json!({"addProjectAccess": {"project": p2}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "public types have no access list");
    assert_eq!(act(json!({"removeProjectAccess": {"project": p2}}), admin.clone()).await, StatusCode::NOT_FOUND);

    // QoS specs: admins only; keys set and unset; associated with the type, whose
    // volumes' connections then carry the front-end specs.
    let qos_body = json!({"qos_specs": {"name": "fast", "consumer": "front-end", "read_iops_sec": "2000"}});
    assert_eq!(
        c.call("POST", &format!("/v3/{p1}/qos-specs"), &t1, Some(qos_body.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    let (code, q) = c.call("POST", &format!("/v3/{p1}/qos-specs"), &admin, Some(qos_body.clone())).await;
    assert_eq!(code, StatusCode::OK, "{q}");
    assert_eq!(q["qos_specs"]["specs"], json!({"read_iops_sec": "2000"}));
    assert_eq!(c.call("POST", &format!("/v3/{p1}/qos-specs"), &admin, Some(qos_body)).await.0, StatusCode::CONFLICT);
    let bad = json!({"qos_specs": {"name": "x", "consumer": "sideways"}});
    assert_eq!(c.call("POST", &format!("/v3/{p1}/qos-specs"), &admin, Some(bad)).await.0, StatusCode::BAD_REQUEST);
    let qid = q["qos_specs"]["id"].as_str().unwrap().to_string();
    let qpath = format!("/v3/{p1}/qos-specs/{qid}");
    let (code, set) = c.call("PUT", &qpath, &admin, Some(json!({"qos_specs": {"total_bytes_sec": "1048576"}}))).await;
    assert_eq!((code, set), (StatusCode::OK, json!({"qos_specs": {"total_bytes_sec": "1048576"}})));
    let (code, _) =
        c.call("PUT", &format!("{qpath}/delete_keys"), &admin, Some(json!({"keys": ["total_bytes_sec"]}))).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &qpath, &admin, None).await.1["qos_specs"]["specs"], json!({"read_iops_sec": "2000"}));
    let (code, _) = c.call("GET", &format!("{qpath}/associate?vol_type_id={tid}"), &admin, None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, assoc) = c.call("GET", &format!("{qpath}/associations"), &admin, None).await;
    assert_eq!(assoc, json!({"qos_associations": [{"association_type": "volume_type", "id": tid, "name": "gold"}]}));
    assert_eq!(
        c.call("GET", &format!("/v3/{p1}/types/{tid}"), &admin, None).await.1["volume_type"]["qos_specs_id"],
        json!(qid)
    );
    let (_, vols) = c.call("GET", &format!("/v3/{p1}/volumes/detail"), &t1, None).await;
    let vid = vols["volumes"][0]["id"].as_str().unwrap().to_string();
    c.wait(&t1, &format!("/v3/{p1}/volumes/{vid}"), "volume", "available").await;
    let vact = format!("/v3/{p1}/volumes/{vid}/action");
    assert_eq!(c.call("POST", &vact, &t1, Some(json!({"os-reserve": {}}))).await.0, StatusCode::ACCEPTED);
    let (_, info) =
        c.call("POST", &vact, &t1, Some(json!({"os-initialize_connection": {"connector": {"host": "h"}}}))).await;
    assert_eq!(info["connection_info"]["data"]["qos_specs"], json!({"read_iops_sec": "2000"}), "{info}");
    assert_eq!(c.call("DELETE", &qpath, &admin, None).await.0, StatusCode::BAD_REQUEST, "still associated");
    let (code, _) = c.call("GET", &format!("{qpath}/disassociate?vol_type_id={tid}"), &admin, None).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &format!("{qpath}/associations"), &admin, None).await.1, json!({"qos_associations": []}));
    assert_eq!(c.call("DELETE", &qpath, &admin, None).await.0, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &qpath, &admin, None).await.0, StatusCode::NOT_FOUND);

    // Retype, without migration: to a type on the volume's backend, by one who may use
    // both; refused while the volume is busy, to the same type, to another backend.
    let retype = |to: &str, policy: &str| json!({"os-retype": {"new_type": to, "migration_policy": policy}});
    assert_eq!(c.call("POST", &vact, &t1, Some(retype("__DEFAULT__", "never"))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("POST", &vact, &t1, Some(json!({"os-unreserve": {}}))).await.0, StatusCode::ACCEPTED);
    let elsewhere = json!({"volume_type": {"name": "elsewhere", "extra_specs": {"volume_backend_name": "nowhere"}}});
    assert_eq!(c.call("POST", &format!("/v3/{p1}/types"), &admin, Some(elsewhere)).await.0, StatusCode::OK);
    for (to, policy) in [("elsewhere", "on-demand"), ("gold", "never"), ("__DEFAULT__", "sometimes")] {
        let (code, body) = c.call("POST", &vact, &t1, Some(retype(to, policy))).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{to} {policy}: {body}");
    }
    assert_eq!(c.call("POST", &vact, &t1, Some(retype("nope", "never"))).await.0, StatusCode::NOT_FOUND);
    let other_path = format!("/v3/{p2}/volumes/{vid}/action");
    assert_eq!(c.call("POST", &other_path, &t2, Some(retype("__DEFAULT__", "never"))).await.0, StatusCode::NOT_FOUND);
    let shown = c.call("GET", &format!("/v3/{p1}/volumes/{vid}"), &t1, None).await.1;
    assert_eq!(shown["volume"]["volume_type"], json!("gold"), "nothing changed");
    assert_eq!(c.call("POST", &vact, &t1, Some(retype("__DEFAULT__", "never"))).await.0, StatusCode::ACCEPTED);
    let shown = c.call("GET", &format!("/v3/{p1}/volumes/{vid}"), &t1, None).await.1;
    assert_eq!(
        (shown["volume"]["volume_type"].clone(), shown["volume"]["status"].clone()),
        (json!("__DEFAULT__"), json!("available"))
    );
    // An administrator sees that it did not migrate (Cinder's migration status).
    let shown = c.call("GET", &format!("/v3/{p1}/volumes/{vid}"), &admin, None).await.1;
    assert!(shown["volume"].get("migration_status").is_some_and(Value::is_null), "{shown}");
}

#[tokio::test]
async fn private_types_and_qos_specs() {
    each_engine!(types_and_qos);
}

async fn cascade(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("cascade").await;
    let base = format!("/v3/{p}");
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{id}");
    c.wait(&token, &vpath, "volume", "available").await;
    let mut snaps = Vec::new();
    for _ in 0..2 {
        let (code, s) =
            c.call("POST", &format!("{base}/snapshots"), &token, Some(json!({"snapshot": {"volume_id": id}}))).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{s}");
        let spath = format!("{base}/snapshots/{}", s["snapshot"]["id"].as_str().unwrap());
        c.wait(&token, &spath, "snapshot", "available").await;
        snaps.push(spath);
    }
    assert_eq!(c.usage(&p).await, (1, 3, 2));
    assert_eq!(c.call("DELETE", &vpath, &token, None).await.0, StatusCode::BAD_REQUEST, "snapshots first");
    assert_eq!(c.call("DELETE", &format!("{vpath}?cascade=true"), &token, None).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &vpath, "volume", "GONE").await;
    for spath in &snaps {
        c.wait(&token, spath, "snapshot", "GONE").await;
    }
    assert_eq!(c.usage(&p).await, (0, 0, 0), "the quota of all three is given back");
    assert_eq!(c.driver.size_of(&id).await.unwrap(), None);
}

#[tokio::test]
async fn a_cascading_delete_takes_the_snapshots_with_the_volume() {
    each_engine!(cascade);
}

async fn backends(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, t) = c.id.member("pools").await;
    let admin = c.admin.clone();
    assert_eq!(c.call("GET", &format!("/v3/{p}/scheduler-stats/get_pools"), &t, None).await.0, StatusCode::FORBIDDEN);
    let (code, body) = c.call("GET", &format!("/v3/{p}/scheduler-stats/get_pools"), &admin, None).await;
    assert_eq!((code, body.clone()), (StatusCode::OK, json!({"pools": [{"name": "stratus@fake#fake"}]})));
    // With detail: the store's room, and what volumes were given.
    let (code, v) = c.call("POST", &format!("/v3/{p}/volumes"), &t, Some(json!({"volume": {"size": 3}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    c.wait(&t, &format!("/v3/{p}/volumes/{}", v["volume"]["id"].as_str().unwrap()), "volume", "available").await;
    let (_, body) = c.call("GET", &format!("/v3/{p}/scheduler-stats/get_pools?detail=True"), &admin, None).await;
    let caps = &body["pools"][0]["capabilities"];
    assert_eq!((caps["volume_backend_name"].clone(), caps["allocated_capacity_gb"].clone()), (json!("fake"), json!(3)));
    assert_eq!((caps["total_capacity_gb"].as_f64(), caps["free_capacity_gb"].as_f64()), (Some(1000.0), Some(997.0)));
    // A backend's capabilities, by its host with or without the pool.
    for host in ["stratus@fake", "stratus@fake#fake"] {
        let (code, cap) = c.call("GET", &format!("/v3/{p}/capabilities/{host}"), &admin, None).await;
        assert_eq!(code, StatusCode::OK, "{cap}");
        assert_eq!(
            (cap["volume_backend_name"].clone(), cap["vendor_name"].clone()),
            (json!("fake"), caps["vendor_name"].clone())
        );
    }
    assert_eq!(
        c.call("GET", &format!("/v3/{p}/capabilities/elsewhere@fake"), &admin, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(c.call("GET", &format!("/v3/{p}/capabilities/stratus@fake"), &t, None).await.0, StatusCode::FORBIDDEN);
    // Cinder's host listing: every service's host; a backend's usage in all and per
    // project (as text, as Cinder answers).
    let (_, hosts) = c.call("GET", &format!("/v3/{p}/os-hosts"), &admin, None).await;
    let listed: Vec<(&str, &str)> = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["service"].as_str().unwrap(), h["host_name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("cinder-scheduler", "stratus"), ("cinder-volume", "stratus@fake"), ("cinder-backup", "stratus")],
        "{hosts}"
    );
    let (code, shown) = c.call("GET", &format!("/v3/{p}/os-hosts/stratus@fake"), &admin, None).await;
    assert_eq!(code, StatusCode::OK, "{shown}");
    let rows: Vec<(&str, &str, &str)> = shown["host"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = &r["resource"];
            (
                r["project"].as_str().unwrap(),
                r["volume_count"].as_str().unwrap(),
                r["total_volume_gb"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(rows, [("(total)", "1", "3"), (p.as_str(), "1", "3")]);
    for (who, host, want) in [(&admin, "stratus", StatusCode::NOT_FOUND), (&t, "stratus@fake", StatusCode::FORBIDDEN)] {
        assert_eq!(c.call("GET", &format!("/v3/{p}/os-hosts/{host}"), who, None).await.0, want, "{host}");
    }
    assert_eq!(c.call("GET", &format!("/v3/{p}/os-hosts"), &t, None).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn backends_report_their_pools_and_capabilities() {
    each_engine!(backends);
}

impl Cloud {
    /// A call at volume microversion `version`.
    async fn call_v(
        &self,
        version: &str,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let asked = format!("volume {version}");
        let r = send(&self.router, method, path, Some(token), body, &[("OpenStack-API-Version", &asked)]).await;
        (r.status, r.json())
    }
}

async fn attachments_api(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("attrec").await;
    let (other_p, other) = c.id.member("attrec-other").await;
    let (reader_p, reader) = c.id.user_with("attrec-reader", "reader").await;
    let base = format!("/v3/{p}");

    // Negotiation: the newest served is 3.59; beyond it is 406; none means 3.0.
    let r = send(&c.router, "GET", "/", None, None, &[]).await;
    assert_eq!(r.json()["versions"][0]["version"], "3.59", "{}", r.json());
    let r = send(
        &c.router,
        "GET",
        &format!("{base}/volumes"),
        Some(&token),
        None,
        &[("OpenStack-API-Version", "volume latest")],
    )
    .await;
    assert_eq!(r.headers["openstack-api-version"], "volume 3.59");
    assert_eq!(c.call_v("3.60", "GET", &format!("{base}/volumes"), &token, None).await.0, StatusCode::NOT_ACCEPTABLE);
    assert_eq!(c.call_v("3.x", "GET", &format!("{base}/volumes"), &token, None).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("GET", &format!("{base}/attachments"), &token, None).await.0, StatusCode::NOT_FOUND, "3.27+");

    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{vid}");
    c.wait(&token, &vpath, "volume", "available").await;
    let server = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    let at = |version: &'static str, method: &'static str, path: String, token: String, body: Option<Value>| {
        let c = &c;
        async move { c.call_v(version, method, &path, &token, body).await }
    };
    let apath = format!("{base}/attachments");

    // Bad input changes nothing; readers make none.
    for body in [
        json!({"attachment": {"instance_uuid": server}}),
        json!({"attachment": {"volume_uuid": vid}}),
        json!({"attachment": {"volume_uuid": vid, "instance_uuid": server, "connector": {"ip": "192.0.2.1"}}}),
        json!({"attachment": {"volume_uuid": vid, "instance_uuid": server, "mode": "rw"}}),
    ] {
        let (code, b) = at("3.44", "POST", apath.clone(), token.clone(), Some(body)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{b}");
    }
    let body = json!({"attachment": {"volume_uuid": vid, "instance_uuid": server}});
    let readers = format!("/v3/{reader_p}/attachments");
    assert_eq!(at("3.44", "POST", readers.clone(), reader.clone(), Some(body.clone())).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["status"], "available");

    // Reserve (no connector), then a second is refused; connect; complete (3.44).
    let (code, a) = at("3.27", "POST", apath.clone(), token.clone(), Some(body.clone())).await;
    assert_eq!(code, StatusCode::OK, "{a}");
    assert_eq!((&a["attachment"]["status"], &a["attachment"]["instance"]), (&json!("reserved"), &json!(server)));
    let aid = a["attachment"]["id"].as_str().unwrap().to_string();
    let one = format!("{apath}/{aid}");
    let v = c.call("GET", &vpath, &token, None).await.1;
    assert_eq!((&v["volume"]["status"], &v["volume"]["attachments"]), (&json!("reserved"), &json!([])));
    assert_eq!(at("3.27", "POST", apath.clone(), token.clone(), Some(body.clone())).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        at("3.27", "PUT", one.clone(), token.clone(), Some(json!({"attachment": {"connector": {}}}))).await.0,
        StatusCode::BAD_REQUEST
    );
    let complete = json!({"os-complete": aid});
    let (code, b) = at("3.44", "POST", format!("{one}/action"), token.clone(), Some(complete.clone())).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "no connector yet: {b}");
    let connector = json!({"attachment": {"connector": {"host": "h1", "ip": "192.0.2.1", "mountpoint": "/dev/vdb"}}});
    let (code, a) = at("3.27", "PUT", one.clone(), token.clone(), Some(connector)).await;
    assert_eq!(code, StatusCode::OK, "{a}");
    assert_eq!(a["attachment"]["status"], "attaching");
    assert_eq!(a["attachment"]["connection_info"]["driver_volume_type"], "fake", "{a}");
    assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["status"], "attaching");
    assert_eq!(
        at("3.43", "POST", format!("{one}/action"), token.clone(), Some(complete.clone())).await.0,
        StatusCode::NOT_FOUND,
        "os-complete is 3.44"
    );
    for _ in 0..2 {
        assert_eq!(
            at("3.44", "POST", format!("{one}/action"), token.clone(), Some(complete.clone())).await.0,
            StatusCode::NO_CONTENT
        );
    }
    let (_, a) = at("3.27", "GET", one.clone(), token.clone(), None).await;
    assert_eq!((&a["attachment"]["status"], &a["attachment"]["attach_mode"]), (&json!("attached"), &json!("rw")));
    assert!(a["attachment"]["attached_at"].is_string(), "{a}");
    let v = c.call("GET", &vpath, &token, None).await.1;
    assert_eq!(v["volume"]["status"], "in-use");
    assert_eq!(v["volume"]["attachments"][0]["attachment_id"], json!(aid));
    assert_eq!(v["volume"]["attachments"][0]["device"], "/dev/vdb");

    // Attached: extending needs a compute service to grow the guest's disk, and this
    // cloud has none.
    let (code, b) =
        at("3.42", "POST", format!("{vpath}/action"), token.clone(), Some(json!({"os-extend": {"new_size": 2}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(b.to_string().contains("knows no compute service"), "{b}");

    // Lists and filters; another project sees nothing of it.
    let (_, l) = at("3.27", "GET", format!("{apath}?volume_id={vid}"), token.clone(), None).await;
    assert_eq!(l["attachments"], json!([{"id": aid, "status": "attached", "instance": server, "volume_id": vid}]));
    let (_, l) = at("3.27", "GET", format!("{apath}/detail?instance_id={server}"), token.clone(), None).await;
    assert_eq!(l["attachments"][0]["attach_mode"], "rw");
    let (_, l) = at("3.27", "GET", format!("{apath}?instance_id=nope"), token.clone(), None).await;
    assert_eq!(l["attachments"], json!([]));
    let (_, l) = at("3.27", "GET", format!("{apath}?status=reserved"), token.clone(), None).await;
    assert_eq!(l["attachments"], json!([]));
    let theirs = format!("/v3/{other_p}/attachments");
    assert_eq!(at("3.27", "GET", format!("{theirs}/{aid}"), other.clone(), None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(at("3.27", "GET", theirs.clone(), other.clone(), None).await.1["attachments"], json!([]));
    assert_eq!(at("3.27", "DELETE", format!("{theirs}/{aid}"), other.clone(), None).await.0, StatusCode::NOT_FOUND);
    let (code, _) = at(
        "3.27",
        "PUT",
        format!("{theirs}/{aid}"),
        other.clone(),
        Some(json!({"attachment": {"connector": {"host": "x"}}})),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let steal = json!({"attachment": {"volume_uuid": vid, "instance_uuid": server}});
    assert_eq!(at("3.27", "POST", theirs.clone(), other.clone(), Some(steal)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(at("3.27", "GET", format!("{readers}/{aid}"), reader.clone(), None).await.0, StatusCode::NOT_FOUND);
    let admin = c.admin.clone();
    let (_, l) = at("3.27", "GET", format!("{apath}?all_tenants=1"), admin.clone(), None).await;
    assert!(l["attachments"].as_array().unwrap().iter().any(|a| a["id"] == json!(aid)), "{l}");

    // Deleted: the volume is available again.
    let (code, d) = at("3.27", "DELETE", one.clone(), token.clone(), None).await;
    assert_eq!((code, &d), (StatusCode::OK, &json!({"attachments": []})));
    assert_eq!(at("3.27", "GET", one.clone(), token.clone(), None).await.0, StatusCode::NOT_FOUND);
    let v = c.call("GET", &vpath, &token, None).await.1;
    assert_eq!((&v["volume"]["status"], &v["volume"]["attachments"]), (&json!("available"), &json!([])));

    // With a connector at once: attaching, with its connection; read-only volumes
    // attach read-only.
    let ro = json!({"os-update_readonly_flag": {"readonly": true}});
    assert_eq!(c.call("POST", &format!("{vpath}/action"), &token, Some(ro)).await.0, StatusCode::ACCEPTED);
    let body = json!({"attachment": {"volume_uuid": vid, "instance_uuid": server, "connector": {"host": "h2"}}});
    let (code, a) = at("3.44", "POST", apath.clone(), token.clone(), Some(body)).await;
    assert_eq!(code, StatusCode::OK, "{a}");
    assert_eq!((&a["attachment"]["status"], &a["attachment"]["attach_mode"]), (&json!("attaching"), &json!("ro")));
    assert_eq!(a["attachment"]["connection_info"]["data"]["access_mode"], "ro", "{a}");
    let aid = a["attachment"]["id"].as_str().unwrap();
    assert_eq!(at("3.44", "DELETE", format!("{apath}/{aid}"), token.clone(), None).await.0, StatusCode::OK);
    assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["status"], "available");

    // The summary (3.12; metadata 3.36) and the fields later versions add.
    let meta = json!({"metadata": {"tier": "gold"}});
    c.call("POST", &format!("{vpath}/metadata"), &token, Some(meta)).await;
    assert_eq!(c.call("GET", &format!("{base}/volumes/summary"), &token, None).await.0, StatusCode::NOT_FOUND);
    let (_, s) = at("3.12", "GET", format!("{base}/volumes/summary"), token.clone(), None).await;
    assert_eq!(s, json!({"volume-summary": {"total_count": 1, "total_size": 1}}));
    let (_, s) = at("3.36", "GET", format!("{base}/volumes/summary"), token.clone(), None).await;
    assert_eq!(s["volume-summary"]["metadata"], json!({"readonly": ["True"], "tier": ["gold"]}));
    assert!(c.call("GET", &vpath, &token, None).await.1["volume"].get("group_id").is_none());
    assert!(at("3.13", "GET", vpath.clone(), token.clone(), None).await.1["volume"]["group_id"].is_null());
    assert!(at("3.44", "GET", vpath.clone(), token.clone(), None).await.1["volume"].get("provider_id").is_none());
    assert!(at("3.44", "GET", format!("/v3/{p}/volumes/{vid}"), admin, None).await.1["volume"]
        .as_object()
        .unwrap()
        .contains_key("provider_id"));
}

#[tokio::test]
async fn the_attachments_api_reserves_connects_completes_and_deletes() {
    each_engine!(attachments_api);
}

async fn scheduling_and_messages(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("sched").await;
    let (other_p, other) = c.id.member("sched-other").await;
    let base = format!("/v3/{p}");
    let admin = c.admin.clone();
    // A type no backend suits: the volume is made, in error, with a message saying why.
    let t = json!({"volume_type": {"name": "iscsi-only", "extra_specs": {"storage_protocol": "iSCSI"}}});
    let (code, body) = c.call("POST", &format!("{base}/types"), &admin, Some(t)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let before = c.usage(&p).await;
    let r = send(
        &c.router,
        "POST",
        &format!("{base}/volumes"),
        Some(&token),
        Some(json!({"volume": {"size": 1, "volume_type": "iscsi-only"}})),
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    let request_id = r.headers["x-openstack-request-id"].to_str().unwrap().to_string();
    let vid = r.json()["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{vid}");
    let v = c.wait(&token, &vpath, "volume", "error").await;
    assert_eq!(v["volume_type"], "iscsi-only");
    assert_eq!(c.usage(&p).await.0, before.0 + 1, "an error volume counts, as Cinder's");
    let (_, shown) = c.call("GET", &vpath, &admin, None).await;
    assert!(shown["volume"]["os-vol-host-attr:host"].is_null(), "{shown}");

    let mpath = format!("{base}/messages");
    assert_eq!(c.call("GET", &mpath, &token, None).await.0, StatusCode::NOT_FOUND, "3.3+");
    let (code, l) = c.call_v("3.3", "GET", &mpath, &token, None).await;
    assert_eq!(code, StatusCode::OK, "{l}");
    let m = l["messages"].as_array().unwrap();
    assert_eq!(m.len(), 1, "{l}");
    assert_eq!(
        (
            &m[0]["resource_uuid"],
            &m[0]["resource_type"],
            &m[0]["event_id"],
            &m[0]["message_level"],
            &m[0]["request_id"]
        ),
        (&json!(vid), &json!("VOLUME"), &json!("VOLUME_VOLUME_001_003"), &json!("ERROR"), &json!(request_id))
    );
    let text = m[0]["user_message"].as_str().unwrap();
    assert!(text.starts_with("schedule allocate volume: Could not find any available weighted backend"), "{text}");
    assert!(text.contains("storage_protocol is file, the volume type asks for iSCSI"), "{text}");
    assert!(m[0]["guaranteed_until"].as_str().unwrap() > m[0]["created_at"].as_str().unwrap());
    let mid = m[0]["id"].as_str().unwrap().to_string();
    let (code, one) = c.call_v("3.3", "GET", &format!("{mpath}/{mid}"), &token, None).await;
    assert_eq!((code, &one["message"]["id"]), (StatusCode::OK, &json!(mid)));
    let (_, filtered) = c.call_v("3.3", "GET", &format!("{mpath}?resource_uuid={vid}"), &token, None).await;
    assert_eq!(filtered["messages"].as_array().unwrap().len(), 1);
    // Another project neither sees nor deletes it.
    let theirs = format!("/v3/{other_p}/messages");
    assert_eq!(c.call_v("3.3", "GET", &theirs, &other, None).await.1["messages"], json!([]));
    assert_eq!(c.call_v("3.3", "GET", &format!("{theirs}/{mid}"), &other, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("3.3", "DELETE", &format!("{theirs}/{mid}"), &other, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("3.3", "DELETE", &format!("{mpath}/{mid}"), &token, None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(c.call_v("3.3", "GET", &format!("{mpath}/{mid}"), &token, None).await.0, StatusCode::NOT_FOUND);

    // The error volume deletes, giving its quota back.
    assert_eq!(c.call("DELETE", &vpath, &token, None).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &vpath, "volume", "GONE").await;
    assert_eq!(c.usage(&p).await, before);

    // A type the backend suits (by name and by capability) is scheduled to it; a
    // retype to a type it does not suit is refused, changing nothing.
    let t = json!({"volume_type": {"name": "thin", "extra_specs": {"thin_provisioning_support": "<is> True",
                                                                   "capabilities:vendor_name": "Stratus"}}});
    assert_eq!(c.call("POST", &format!("{base}/types"), &admin, Some(t)).await.0, StatusCode::OK);
    let (_, v) = c
        .call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1, "volume_type": "thin"}})))
        .await;
    let vpath = format!("{base}/volumes/{}", v["volume"]["id"].as_str().unwrap());
    c.wait(&token, &vpath, "volume", "available").await;
    let (code, b) = c
        .call("POST", &format!("{vpath}/action"), &token, Some(json!({"os-retype": {"new_type": "iscsi-only"}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(b.to_string().contains("storage_protocol"), "{b}");
    assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["volume_type"], "thin");

    // A backend whose storage does not answer takes no volume (made in error, with a
    // message, not a 500); its pool shows its room as unknown; then it takes them again.
    c.driver.set_down(true);
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let down = format!("{base}/volumes/{}", v["volume"]["id"].as_str().unwrap());
    c.wait(&token, &down, "volume", "error").await;
    let (_, l) = c
        .call_v("3.3", "GET", &format!("{mpath}?resource_uuid={}", v["volume"]["id"].as_str().unwrap()), &token, None)
        .await;
    assert!(l["messages"][0]["user_message"].as_str().unwrap().contains("its storage does not answer"), "{l}");
    let (code, pools) = c.call("GET", &format!("{base}/scheduler-stats/get_pools?detail=True"), &admin, None).await;
    assert_eq!(code, StatusCode::OK, "{pools}");
    assert_eq!(pools["pools"][0]["capabilities"]["free_capacity_gb"], "unknown", "{pools}");
    c.driver.set_down(false);
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    c.wait(&token, &format!("{base}/volumes/{}", v["volume"]["id"].as_str().unwrap()), "volume", "available").await;
}

#[tokio::test]
async fn volumes_go_where_their_type_fits_and_those_that_fit_nowhere_leave_a_message() {
    each_engine!(scheduling_and_messages);
}

/// A compute API that records the external events it is sent and answers each with
/// the code the test sets.
#[derive(Clone, Default)]
struct FakeCompute {
    events: Arc<std::sync::Mutex<Vec<Value>>>,
    code: Arc<std::sync::atomic::AtomicU64>,
}

impl FakeCompute {
    async fn serve(&self) -> String {
        let me = self.clone();
        let router = axum::Router::new().route(
            "/v2.1/os-server-external-events",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let me = me.clone();
                async move {
                    let code = me.code.load(std::sync::atomic::Ordering::SeqCst);
                    let mut events = body["events"].as_array().cloned().unwrap_or_default();
                    me.events.lock().unwrap().extend(events.clone());
                    for e in &mut events {
                        e["code"] = json!(code);
                    }
                    axum::Json(json!({ "events": events }))
                }
            }),
        );
        format!("{}/v2.1", serve(router).await)
    }
}

async fn online_extend(engine: Engine) {
    let c = Cloud::start(engine).await;
    let compute = FakeCompute::default();
    compute.code.store(200, std::sync::atomic::Ordering::SeqCst);
    c.volume.set_compute_url(&compute.serve().await);
    let (p, token) = c.id.member("grow").await;
    let admin = c.admin.clone();
    let base = format!("/v3/{p}");
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{vid}");
    let apath = format!("{vpath}/action");
    c.wait(&token, &vpath, "volume", "available").await;
    let server = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
    c.call("POST", &apath, &token, Some(json!({"os-reserve": {"instance_uuid": server}}))).await;
    let attach = json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb", "host_name": "h1"}});
    c.call("POST", &apath, &token, Some(attach)).await;
    c.wait(&token, &vpath, "volume", "in-use").await;
    assert_eq!(c.usage(&p).await.1, 1);

    // Below 3.42 an attached volume does not grow; at 3.42 compute is told, and the
    // volume shows its new size while it waits for compute's answer.
    let extend = |size: i64| Some(json!({"os-extend": {"new_size": size}}));
    assert_eq!(c.call_v("3.41", "POST", &apath, &token, extend(2)).await.0, StatusCode::BAD_REQUEST);
    let (code, b) = c.call_v("3.42", "POST", &apath, &token, extend(2)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{b}");
    eventually("compute told", || async { !compute.events.lock().unwrap().is_empty() }).await;
    let told = compute.events.lock().unwrap()[0].clone();
    assert_eq!(told, json!({"name": "volume-extended", "server_uuid": server, "tag": vid}));
    let shown = c.call("GET", &vpath, &token, None).await.1;
    assert_eq!((&shown["volume"]["status"], &shown["volume"]["size"]), (&json!("extending"), &json!(2)));
    assert_eq!(c.usage(&p).await.1, 2, "the growth is claimed with the request");
    // Compute's answer: only a service (admin) gives it.
    let done = |error: bool| Some(json!({"os-extend_volume_completion": {"error": error}}));
    assert_eq!(c.call("POST", &apath, &token, done(false)).await.0, StatusCode::FORBIDDEN);
    let asked = || async { c.volume.store.volume_get(&vid).await.unwrap().unwrap().control.extend_asked_at.is_some() };
    eventually("asked", asked).await;
    let (code, b) = c.call("POST", &apath, &admin, done(false)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{b}");
    let v = c.wait(&token, &vpath, "volume", "in-use").await;
    assert_eq!((v["size"].clone(), v["attachments"].as_array().unwrap().len()), (json!(2), 1));
    assert_eq!(c.usage(&p).await.1, 2);
    // Told again after the end: nothing changes.
    assert_eq!(c.call("POST", &apath, &admin, done(true)).await.0, StatusCode::ACCEPTED);
    assert_eq!(c.call("GET", &vpath, &token, None).await.1["volume"]["size"], 2);

    // Compute could not grow the guest's disk: the volume keeps its size, in use, the
    // growth's quota goes back, and the project is told.
    assert_eq!(c.call_v("3.42", "POST", &apath, &token, extend(3)).await.0, StatusCode::ACCEPTED);
    eventually("asked again", asked).await;
    c.call("POST", &apath, &admin, done(true)).await;
    eventually("rolled back", || async {
        let v = c.call("GET", &vpath, &token, None).await.1;
        v["volume"]["status"] == "in-use" && v["volume"]["size"] == 2
    })
    .await;
    assert_eq!(c.usage(&p).await.1, 2);
    let (_, m) = c.call_v("3.3", "GET", &format!("{base}/messages?resource_uuid={vid}"), &token, None).await;
    assert_eq!(m["messages"][0]["event_id"], "VOLUME_VOLUME_007_011", "{m}");

    // Compute refuses the event: the same end.
    compute.code.store(422, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(c.call_v("3.42", "POST", &apath, &token, extend(3)).await.0, StatusCode::ACCEPTED);
    eventually("refused and rolled back", || async {
        let v = c.call("GET", &vpath, &token, None).await.1;
        v["volume"]["status"] == "in-use" && v["volume"]["size"] == 2
    })
    .await;
    assert_eq!(c.usage(&p).await.1, 2);
    assert_eq!(compute.events.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn attached_volumes_grow_through_compute_or_keep_their_size() {
    each_engine!(online_extend);
}

async fn disabled_backends(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("svc").await;
    let admin = c.admin.clone();
    let base = format!("/v3/{p}");
    let (_, l) = c.call("GET", &format!("{base}/os-services?binary=cinder-volume"), &admin, None).await;
    let host = l["services"][0]["host"].as_str().unwrap().to_string();
    let (_, l) = c.call("GET", &format!("{base}/os-services?binary=cinder-scheduler"), &admin, None).await;
    let scheduler = l["services"][0]["host"].as_str().unwrap().to_string();
    let put = |action: &str, body: Value, who: &str| {
        let (c, path, who) = (&c, format!("{base}/os-services/{action}"), who.to_string());
        async move { c.call("PUT", &path, &who, Some(body)).await }
    };
    // Refusals change nothing.
    for (action, body, want) in [
        ("disable-log-reason", json!({"host": host, "binary": "cinder-volume", "disabled_reason": null}), 400),
        ("disable-log-reason", json!({"host": scheduler, "binary": "cinder-scheduler"}), 400),
        ("disable", json!({"host": scheduler, "binary": "cinder-scheduler"}), 400),
        ("enable", json!({"host": "invalid_host", "binary": "cinder-scheduler"}), 404),
        ("disable", json!({"host": host, "binary": "invalid_binary"}), 404),
        ("disable", json!({"host": "nowhere@file", "binary": "cinder-volume"}), 404),
        ("freeze", json!({"host": "invalid_host"}), 400),
        ("thaw", json!({"host": host}), 400),
    ] {
        let (code, b) = put(action, body.clone(), &admin).await;
        assert_eq!(code.as_u16(), want, "{action} {body}: {b}");
    }
    let body = json!({"host": host, "binary": "cinder-volume", "disabled_reason": "disk swap"});
    assert_eq!(put("disable-log-reason", body.clone(), &token).await.0, StatusCode::FORBIDDEN);
    let (_, l) = c.call("GET", &format!("{base}/os-services?binary=cinder-volume"), &admin, None).await;
    assert_eq!(l["services"][0]["status"], "enabled");

    // Disabled: new volumes go nowhere (error, with a message saying why).
    let (code, b) = put("disable-log-reason", body, &admin).await;
    assert_eq!(code, StatusCode::OK, "{b}");
    assert_eq!((&b["status"], &b["disabled_reason"]), (&json!("disabled"), &json!("disk swap")));
    let (_, l) = c.call("GET", &format!("{base}/os-services?binary=cinder-volume"), &admin, None).await;
    assert_eq!(
        (&l["services"][0]["status"], &l["services"][0]["disabled_reason"]),
        (&json!("disabled"), &json!("disk swap"))
    );
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let vpath = format!("{base}/volumes/{}", v["volume"]["id"].as_str().unwrap());
    c.wait(&token, &vpath, "volume", "error").await;
    let (_, m) = c.call_v("3.3", "GET", &format!("{base}/messages"), &token, None).await;
    assert!(m["messages"][0]["user_message"].as_str().unwrap().contains("disabled by an operator: disk swap"), "{m}");

    // Enabled again: they are made.
    let (code, b) = put("enable", json!({"host": host, "binary": "cinder-volume"}), &admin).await;
    assert_eq!((code, &b["status"]), (StatusCode::OK, &json!("enabled")));
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let vpath = format!("{base}/volumes/{}", v["volume"]["id"].as_str().unwrap());
    c.wait(&token, &vpath, "volume", "available").await;
}

#[tokio::test]
async fn operators_disable_and_enable_backends() {
    each_engine!(disabled_backends);
}

/// Each project's GB-hours: exact over a window from periods written by hand, and
/// recorded by the real changes (create, snapshot, extend, transfer, delete).
async fn metering(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pa, a) = c.id.member("metered").await;
    let (pb, b) = c.id.member("receiver").await;
    // Exact figures: 2 GiB for two hours, then 3 GiB still held; the window takes the
    // second hour of the first period and the first hour of the second.
    let now = chrono::Utc::now().timestamp();
    let t0 = chrono::DateTime::from_timestamp(now - 10 * 3600, 0).unwrap();
    let at = |h: i64| stratus_common::db::time_text(t0 + chrono::Duration::hours(h));
    for (id, size, from, to) in [("m1", 2, at(0), Some(at(2))), ("m2", 3, at(2), None)] {
        sqlx::query(
            "INSERT INTO volume_metering (id, resource_id, kind, project_id, size, started_at, ended_at)
             VALUES ($1, 'old-volume', 'volume', $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(&pa)
        .bind(size as i64)
        .bind(from)
        .bind(to)
        .execute(&c.id.db.pool)
        .await
        .unwrap();
    }
    let window = format!("start={}&end={}", &at(1)[..19], &at(3)[..19]);
    let (code, u) = c.call("GET", &format!("/v3/{pa}/usage?{window}"), &a, None).await;
    assert_eq!(code, StatusCode::OK, "{u}");
    let u = &u["usage"];
    assert!((u["total_volume_gb_hours"].as_f64().unwrap() - 5.0).abs() < 1e-6, "{u}");
    assert_eq!(u["volumes"][0]["size"], 3);
    assert!((u["volumes"][0]["hours"].as_f64().unwrap() - 2.0).abs() < 1e-6, "{u}");
    assert_eq!(u["volumes"][0]["state"], "held");
    // A window before anything existed is empty; a bad one is refused.
    let (_, u) = c.call("GET", &format!("/v3/{pa}/usage?end={}", &at(-1)[..19]), &a, None).await;
    assert_eq!(u["usage"]["volumes"], json!([]));
    assert_eq!(c.call("GET", &format!("/v3/{pa}/usage?start=soon"), &a, None).await.0, StatusCode::BAD_REQUEST);
    // Another project's member sees none of it; an admin sees any project, or all.
    assert_eq!(c.call("GET", &format!("/v3/{pa}/usage"), &b, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", &format!("/v3/{pb}/usage?project_id={pa}"), &b, None).await.0, StatusCode::FORBIDDEN);
    let (_, u) = c.call("GET", &format!("/v3/{pa}/usage?project_id={pa}"), &c.admin, None).await;
    assert_eq!(u["usage"]["volumes"][0]["id"], "old-volume");

    // The real changes: a 1 GiB volume, its snapshot, an extend to 2, a transfer.
    let (_, v) =
        c.call("POST", &format!("/v3/{pa}/volumes"), &a, Some(json!({"volume": {"size": 1, "name": "metered"}}))).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/volumes/{vid}"), "volume", "available").await;
    let (_, s) = c
        .call("POST", &format!("/v3/{pa}/snapshots"), &a, Some(json!({"snapshot": {"volume_id": vid, "name": "snap"}})))
        .await;
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait(&a, &format!("/v3/{pa}/snapshots/{sid}"), "snapshot", "available").await;
    c.call("POST", &format!("/v3/{pa}/volumes/{vid}/action"), &a, Some(json!({"os-extend": {"new_size": 2}}))).await;
    c.wait(&a, &format!("/v3/{pa}/volumes/{vid}"), "volume", "available").await;
    c.call("DELETE", &format!("/v3/{pa}/snapshots/{sid}"), &a, None).await;
    c.wait(&a, &format!("/v3/{pa}/snapshots/{sid}"), "snapshot", "GONE").await;
    let periods = |id: String| {
        let db = c.id.db.clone();
        async move {
            sqlx::query("SELECT size FROM volume_metering WHERE resource_id = $1 ORDER BY started_at")
                .bind(id)
                .fetch_all(&db.pool)
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(periods(vid.clone()).await, 2, "created at 1 GiB, extended to 2");
    let (_, t) = c
        .call("POST", &format!("/v3/{pa}/os-volume-transfer"), &a, Some(json!({"transfer": {"volume_id": vid}})))
        .await;
    let (tid, key) = (t["transfer"]["id"].as_str().unwrap(), t["transfer"]["auth_key"].as_str().unwrap());
    let (code, _) = c
        .call(
            "POST",
            &format!("/v3/{pb}/os-volume-transfer/{tid}/accept"),
            &b,
            Some(json!({"accept": {"auth_key": key}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(periods(vid.clone()).await, 3, "one more for the new project");
    let (_, u) = c.call("GET", &format!("/v3/{pa}/usage"), &a, None).await;
    let u = &u["usage"];
    let line = u["volumes"].as_array().unwrap().iter().find(|l| l["id"] == json!(vid)).unwrap().clone();
    assert_eq!(
        (line["name"].clone(), line["size"].clone(), line["state"].clone()),
        (json!("metered"), json!(2), json!("gone"))
    );
    assert_eq!(u["snapshots"][0]["state"], "gone");
    assert!(u["total_snapshot_gb_hours"].as_f64().unwrap() > 0.0);
    let (_, u) = c.call("GET", &format!("/v3/{pb}/usage"), &b, None).await;
    assert_eq!(u["usage"]["volumes"][0]["state"], "held");
    // Deleted: its period ends, and its GB-hours stop growing.
    c.call("DELETE", &format!("/v3/{pb}/volumes/{vid}"), &b, None).await;
    c.wait(&b, &format!("/v3/{pb}/volumes/{vid}"), "volume", "GONE").await;
    let (_, u1) = c.call("GET", &format!("/v3/{pb}/usage"), &b, None).await;
    assert_eq!(u1["usage"]["volumes"][0]["state"], "gone");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, u2) = c.call("GET", &format!("/v3/{pb}/usage"), &b, None).await;
    assert_eq!(u1["usage"]["total_volume_gb_hours"], u2["usage"]["total_volume_gb_hours"]);
    let (_, all) = c.call("GET", &format!("/v3/{pa}/usage?all_tenants=1"), &c.admin, None).await;
    let projects: Vec<&str> =
        all["usages"].as_array().unwrap().iter().filter_map(|u| u["project_id"].as_str()).collect();
    assert!(projects.contains(&pa.as_str()) && projects.contains(&pb.as_str()), "{all}");
}

#[tokio::test]
async fn usage_counts_the_gb_hours_of_volumes_and_snapshots() {
    each_engine!(metering);
}

async fn revert(engine: Engine) {
    // 3.40: a volume back to its latest snapshot, on Cinder's conditions.
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("reverter").await;
    let (other_p, other) = c.id.member("revert-bystander").await;
    let base = format!("/v3/{p}");
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    let vpath = format!("{base}/volumes/{id}");
    c.wait(&token, &vpath, "volume", "available").await;
    let snap = |name: &'static str| {
        let (c, token, base, id) = (&c, &token, &base, &id);
        async move {
            let body = json!({"snapshot": {"volume_id": id, "name": name}});
            let (_, s) = c.call("POST", &format!("{base}/snapshots"), token, Some(body)).await;
            let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
            c.wait(token, &format!("{base}/snapshots/{sid}"), "snapshot", "available").await;
            sid
        }
    };
    let (first, latest) = (snap("first").await, snap("latest").await);
    let revert = |sid: &str, version: &str, token: &str| {
        let (c, vpath) = (&c, &vpath);
        let (sid, version, token) = (sid.to_string(), version.to_string(), token.to_string());
        async move {
            c.call_v(
                &version,
                "POST",
                &format!("{vpath}/action"),
                &token,
                Some(json!({"revert": {"snapshot_id": sid}})),
            )
            .await
        }
    };
    assert_eq!(revert(&latest, "3.39", &token).await.0, StatusCode::NOT_FOUND, "from 3.40 only");
    let (code, r) = revert(&first, "3.40", &token).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "only the latest: {r}");
    assert!(r.to_string().contains("latest"), "{r}");
    let theirs = c
        .call_v(
            "3.40",
            "POST",
            &format!("/v3/{other_p}/volumes/{id}/action"),
            &other,
            Some(json!({"revert": {"snapshot_id": latest}})),
        )
        .await;
    assert_eq!(theirs.0, StatusCode::NOT_FOUND, "another project's volume");
    assert_eq!(revert("no-such-snapshot", "3.40", &token).await.0, StatusCode::NOT_FOUND);
    let (code, r) = revert(&latest, "3.40", &token).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    c.wait(&token, &vpath, "volume", "available").await;
    let (_, s) = c.call("GET", &format!("{base}/snapshots/{latest}"), &token, None).await;
    assert_eq!(s["snapshot"]["status"], "available");
    // Extended since the snapshot: refused, and nothing changes.
    c.call("POST", &format!("{vpath}/action"), &token, Some(json!({"os-extend": {"new_size": 2}}))).await;
    c.wait(&token, &vpath, "volume", "available").await;
    let (code, r) = revert(&latest, "3.40", &token).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let (_, shown) = c.call("GET", &vpath, &token, None).await;
    assert_eq!((shown["volume"]["status"].clone(), shown["volume"]["size"].clone()), (json!("available"), json!(2)));
    assert_eq!(c.driver.size_of(&id).await.unwrap(), Some(2));
}

#[tokio::test]
async fn volumes_revert_to_their_latest_snapshot() {
    each_engine!(revert);
}

async fn backups(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("backer").await;
    let (q, other) = c.id.member("stranger").await;
    let (rp, reader) = c.id.user_with("backer-readers", "reader").await;
    let _ = rp;
    let admin = c.id.admin().await;
    let base = format!("/v3/{p}");
    let body = json!({"volume": {"size": 1, "name": "src", "metadata": {"tier": "gold"}}});
    let (_, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(body)).await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&token, &format!("{base}/volumes/{vid}"), "volume", "available").await;
    let (code, _) = c
        .call(
            "POST",
            &format!("{base}/volumes/{vid}/action"),
            &token,
            Some(json!({"os-set_bootable": {"bootable": true}})),
        )
        .await;
    assert_eq!(code, StatusCode::OK);

    // Bad input changes nothing: no volume, an incremental with nothing to follow, a
    // zone that is not, another project's volume, a reader.
    let bad = [
        (json!({"backup": {"name": "x"}}), StatusCode::BAD_REQUEST),
        (json!({"backup": {"volume_id": vid, "incremental": true}}), StatusCode::BAD_REQUEST),
        (json!({"backup": {"volume_id": vid, "availability_zone": "mars"}}), StatusCode::BAD_REQUEST),
        (json!({"backup": {"volume_id": vid, "force": "perhaps"}}), StatusCode::BAD_REQUEST),
        (json!({"backup": {"volume_id": vid, "name": "n".repeat(256)}}), StatusCode::BAD_REQUEST),
    ];
    for (body, want) in bad {
        let (code, r) = c.call("POST", &format!("{base}/backups"), &token, Some(body.clone())).await;
        assert_eq!(code, want, "{body}: {r}");
    }
    let (code, _) =
        c.call("POST", &format!("/v3/{q}/backups"), &other, Some(json!({"backup": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "another project's volume does not exist");
    let (code, l) = c.call("GET", &format!("{base}/backups"), &token, None).await;
    assert_eq!((code, l["backups"].as_array().unwrap().len()), (StatusCode::OK, 0));
    assert_eq!(c.usage(&p).await, (1, 1, 0));

    // A full backup, then an incremental one that follows it.
    let (code, b1) = c
        .call(
            "POST",
            &format!("{base}/backups"),
            &token,
            Some(json!({"backup": {"volume_id": vid, "name": "b1", "description": "first"}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{b1}");
    assert_eq!(b1["backup"].as_object().unwrap().keys().collect::<Vec<_>>(), ["id", "links", "name"], "{b1}");
    let b1 = b1["backup"]["id"].as_str().unwrap().to_string();
    let shown = c.wait(&token, &format!("{base}/backups/{b1}"), "backup", "available").await;
    assert_eq!(
        (
            &shown["volume_id"],
            &shown["size"],
            &shown["is_incremental"],
            &shown["has_dependent_backups"],
            &shown["description"]
        ),
        (&json!(vid), &json!(1), &json!(false), &json!(false), &json!("first")),
        "{shown}"
    );
    assert!(shown["fail_reason"].is_null() && shown["data_timestamp"].is_string(), "{shown}");
    c.wait(&token, &format!("{base}/volumes/{vid}"), "volume", "available").await;
    let body = json!({"backup": {"volume_id": vid, "incremental": true, "name": "b2"}});
    let (code, b2) = c.call("POST", &format!("{base}/backups"), &token, Some(body)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{b2}");
    let b2 = b2["backup"]["id"].as_str().unwrap().to_string();
    let shown = c.wait(&token, &format!("{base}/backups/{b2}"), "backup", "available").await;
    assert_eq!(shown["is_incremental"], true);
    let (_, first) = c.call("GET", &format!("{base}/backups/{b1}"), &token, None).await;
    assert_eq!(first["backup"]["has_dependent_backups"], true);
    let u = c.volume.store.usage(&p).await.unwrap();
    assert_eq!((u["backups"], u["backup_gigabytes"]), (2, 2));
    let (_, limits) = c.call("GET", &format!("{base}/limits"), &token, None).await;
    assert_eq!(limits["limits"]["absolute"]["totalBackupsUsed"], 2, "{limits}");

    // Lists, filters, a reader and another project.
    let (_, l) = c.call("GET", &format!("{base}/backups/detail?name=b2"), &token, None).await;
    assert_eq!(l["backups"].as_array().unwrap().iter().map(|b| &b["id"]).collect::<Vec<_>>(), [&json!(b2)]);
    let (_, l) = c.call("GET", &format!("{base}/backups?limit=1"), &token, None).await;
    assert_eq!(l["backups"].as_array().unwrap().len(), 1);
    assert!(l["backups_links"][0]["href"].as_str().unwrap().contains("marker="), "{l}");
    let (_, l) = c.call("GET", &format!("/v3/{q}/backups/detail?all_tenants=1"), &other, None).await;
    assert!(l["backups"].as_array().unwrap().is_empty(), "{l}");
    for (method, path) in [("GET", format!("/v3/{q}/backups/{b1}")), ("DELETE", format!("/v3/{q}/backups/{b1}"))] {
        assert_eq!(c.call(method, &path, &other, None).await.0, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (code, _) =
        c.call("POST", &format!("/v3/{q}/backups/{b1}/restore"), &other, Some(json!({"restore": {}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("{base}/backups/{b1}"), &other, None).await.0, StatusCode::FORBIDDEN);
    let (code, _) =
        c.call("POST", &format!("/v3/{rp}/backups"), &reader, Some(json!({"backup": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (_, admin_view) = c.call_v("3.18", "GET", &format!("{base}/backups/{b1}"), &admin, None).await;
    assert_eq!(admin_view["backup"]["os-backup-project-attr:project_id"], json!(p));

    // 3.9 renames; 3.43 gives metadata.
    let (code, _) =
        c.call("PUT", &format!("{base}/backups/{b1}"), &token, Some(json!({"backup": {"name": "renamed"}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "before 3.9 there is no update");
    let body = json!({"backup": {"name": "renamed", "metadata": {"k": "v"}}});
    let (code, r) = c.call_v("3.43", "PUT", &format!("{base}/backups/{b1}"), &token, Some(body)).await;
    assert_eq!(
        (code, &r["backup"]["name"], &r["backup"]["metadata"]),
        (StatusCode::OK, &json!("renamed"), &json!({"k": "v"}))
    );

    // The first cannot go while the incremental one follows it.
    let (code, r) = c.call("DELETE", &format!("{base}/backups/{b1}"), &token, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    assert!(r.to_string().contains("Incremental backups exist"), "{r}");

    // Restore into a new volume: the backed-up volume's metadata and bootable flag.
    let (code, r) = c.call("POST", &format!("{base}/backups/{b2}/restore"), &token, Some(json!({"restore": {}}))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["restore"]["backup_id"], json!(b2));
    let restored = r["restore"]["volume_id"].as_str().unwrap().to_string();
    assert_eq!(r["restore"]["volume_name"], json!(format!("restore_backup_{b2}")));
    let v2 = c.wait(&token, &format!("{base}/volumes/{restored}"), "volume", "available").await;
    assert_eq!((&v2["metadata"]["tier"], &v2["bootable"]), (&json!("gold"), &json!("true")), "{v2}");
    c.wait(&token, &format!("{base}/backups/{b2}"), "backup", "available").await;
    assert_eq!(c.usage(&p).await, (2, 2, 0));
    // Into an existing volume: it must be available and large enough.
    let (_, small) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let small = small["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&token, &format!("{base}/volumes/{small}"), "volume", "available").await;
    let (code, r) = c
        .call("POST", &format!("{base}/backups/{b1}/restore"), &token, Some(json!({"restore": {"volume_id": small}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["restore"]["volume_id"], json!(small));
    c.wait(&token, &format!("{base}/volumes/{small}"), "volume", "available").await;
    c.wait(&token, &format!("{base}/backups/{b1}"), "backup", "available").await;
    let (code, _) = c
        .call("POST", &format!("{base}/volumes/{small}/action"), &token, Some(json!({"os-extend": {"new_size": 2}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    c.wait(&token, &format!("{base}/volumes/{small}"), "volume", "available").await;

    // Admins: reset a status, export a record and import it under another id (the
    // data is shared; it goes with the last record naming it).
    let (code, _) = c
        .call(
            "POST",
            &format!("{base}/backups/{b2}/action"),
            &token,
            Some(json!({"os-reset_status": {"status": "error"}})),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = c
        .call(
            "POST",
            &format!("{base}/backups/{b2}/action"),
            &admin,
            Some(json!({"os-reset_status": {"status": "creating"}})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, rec) = c.call("GET", &format!("{base}/backups/{b2}/export_record"), &admin, None).await;
    assert_eq!(code, StatusCode::OK, "{rec}");
    assert_eq!(
        c.call("GET", &format!("{base}/backups/{b2}/export_record"), &token, None).await.0,
        StatusCode::FORBIDDEN
    );
    let url = rec["backup-record"]["backup_url"].as_str().unwrap();
    let mut record: Value =
        serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::STANDARD, url).unwrap())
            .unwrap();
    let (code, r) = c
        .call(
            "POST",
            &format!("{base}/backups/import_record"),
            &admin,
            Some(json!({"backup-record": rec["backup-record"]})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the same id exists: {r}");
    let copy = uuid::Uuid::new_v4().to_string();
    record["id"] = json!(copy);
    let new_url = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, record.to_string());
    let admin_project = c.id.identity.store.project_list(Some("admin"), None).await.unwrap()[0].id.clone();
    let body =
        json!({"backup-record": {"backup_service": rec["backup-record"]["backup_service"], "backup_url": new_url}});
    let (code, r) = c.call("POST", &format!("/v3/{admin_project}/backups/import_record"), &admin, Some(body)).await;
    assert_eq!((code, &r["backup"]["id"]), (StatusCode::CREATED, &json!(copy)), "{r}");
    let (code, _) = c
        .call(
            "POST",
            &format!("{base}/backups/import_record"),
            &admin,
            Some(json!({"backup-record": {"backup_service": "x", "backup_url": "!!"}})),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Deleting: the incremental, then the first; the imported copy keeps the data.
    let repo = c.volume.backups.get().unwrap();
    let (code, r) = c.call("DELETE", &format!("{base}/backups/{b2}"), &token, None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    c.wait(&token, &format!("{base}/backups/{b2}"), "backup", "GONE").await;
    assert!(repo.manifest(&b2).await.unwrap().is_some(), "the imported record still names it");
    // The copy follows b1 too (it names the same parent).
    assert_eq!(c.call("DELETE", &format!("{base}/backups/{b1}"), &token, None).await.0, StatusCode::BAD_REQUEST);
    let (code, _) = c
        .call(
            "POST",
            &format!("/v3/{admin_project}/backups/{copy}/action"),
            &admin,
            Some(json!({"os-force_delete": {}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    c.wait(&admin, &format!("/v3/{admin_project}/backups/{copy}"), "backup", "GONE").await;
    assert!(repo.manifest(&b2).await.unwrap().is_none());
    assert_eq!(c.call("DELETE", &format!("{base}/backups/{b1}"), &token, None).await.0, StatusCode::ACCEPTED);
    c.wait(&token, &format!("{base}/backups/{b1}"), "backup", "GONE").await;
    let u = c.volume.store.usage(&p).await.unwrap();
    assert_eq!((u["backups"], u["backup_gigabytes"]), (0, 0));

    // An in-use volume needs force.
    let (_, att) =
        c.call("POST", &format!("{base}/volumes/{vid}/action"), &token, Some(json!({"os-reserve": {}}))).await;
    let _ = att;
    let (code, _) = c
        .call(
            "POST",
            &format!("{base}/volumes/{vid}/action"),
            &token,
            Some(json!({"os-attach": {"instance_uuid": uuid::Uuid::new_v4().to_string(), "mountpoint": "/dev/vdb"}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    c.wait(&token, &format!("{base}/volumes/{vid}"), "volume", "in-use").await;
    let (code, r) =
        c.call("POST", &format!("{base}/backups"), &token, Some(json!({"backup": {"volume_id": vid}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let (code, r) = c
        .call("POST", &format!("{base}/backups"), &token, Some(json!({"backup": {"volume_id": vid, "force": true}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    let b3 = r["backup"]["id"].as_str().unwrap().to_string();
    c.wait(&token, &format!("{base}/backups/{b3}"), "backup", "available").await;
    let (_, shown) = c.call("GET", &format!("{base}/volumes/{vid}"), &token, None).await;
    assert_eq!(shown["volume"]["status"], "in-use", "an in-use volume stays in use");
    let (code, r) = c
        .call("POST", &format!("{base}/backups/{b3}/restore"), &token, Some(json!({"restore": {"volume_id": vid}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "not into an attached volume: {r}");
}

#[tokio::test]
async fn backups_copy_volumes_incrementally_and_restore_them() {
    each_engine!(backups);
}

async fn multiattach(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, token) = c.id.member("sharer").await;
    let admin = c.id.admin().await;
    let base = format!("/v3/{p}");
    let body = json!({"volume_type": {"name": "shared", "extra_specs": {"multiattach": "<is> True"}}});
    let (code, t) = c.call("POST", &format!("{base}/types"), &admin, Some(body)).await;
    assert_eq!(code, StatusCode::OK, "{t}");
    // Cinder's old request flag alone makes nothing.
    let (code, r) = c
        .call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1, "multiattach": true}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let (_, plain) = c.call("POST", &format!("{base}/volumes"), &token, Some(json!({"volume": {"size": 1}}))).await;
    let plain = plain["volume"]["id"].as_str().unwrap().to_string();
    let body = json!({"volume": {"size": 1, "volume_type": "shared", "multiattach": true}});
    let (code, v) = c.call("POST", &format!("{base}/volumes"), &token, Some(body)).await;
    assert_eq!((code, &v["volume"]["multiattach"]), (StatusCode::ACCEPTED, &json!(true)), "{v}");
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    for id in [&vid, &plain] {
        c.wait(&token, &format!("{base}/volumes/{id}"), "volume", "available").await;
    }
    let act = |id: String, body: Value| {
        let (c, token, base) = (&c, token.clone(), base.clone());
        async move { c.call("POST", &format!("{base}/volumes/{id}/action"), &token, Some(body)).await }
    };
    let attach = |id: String, server: &'static str| {
        let act = &act;
        async move {
            let (code, r) = act(id.clone(), json!({"os-reserve": {"instance_uuid": server}})).await;
            if code != StatusCode::ACCEPTED {
                return (code, r);
            }
            let connector = json!({"host": format!("host-{server}"), "instance": server});
            let (code, info) = act(id.clone(), json!({"os-initialize_connection": {"connector": connector}})).await;
            assert_eq!(code, StatusCode::OK, "{info}");
            let body = json!({"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb", "host_name": format!("host-{server}")}});
            (act(id, body).await.0, info)
        }
    };
    // The connection says the guest's disk is shareable.
    let (code, info) = attach(vid.clone(), "s1").await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(info["connection_info"]["data"]["multiattach"], true, "{info}");
    assert_eq!(attach(vid.clone(), "s2").await.0, StatusCode::ACCEPTED);
    let shown = c.wait(&token, &format!("{base}/volumes/{vid}"), "volume", "in-use").await;
    assert_eq!(shown["attachments"].as_array().unwrap().len(), 2, "{shown}");
    // A volume that is not multiattach takes one server.
    assert_eq!(attach(plain.clone(), "s1").await.0, StatusCode::ACCEPTED);
    assert_eq!(attach(plain.clone(), "s2").await.0, StatusCode::BAD_REQUEST);
    // The attachments API too.
    let new = |server: &str, volume: &str| json!({"attachment": {"volume_uuid": volume, "instance_uuid": server}});
    let (code, a3) = c.call_v("3.27", "POST", &format!("{base}/attachments"), &token, Some(new("s3", &vid))).await;
    assert_eq!(code, StatusCode::OK, "{a3}");
    let (code, _) = c.call_v("3.27", "POST", &format!("{base}/attachments"), &token, Some(new("s3", &vid))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "one server, one attachment");
    let (code, _) = c.call_v("3.27", "POST", &format!("{base}/attachments"), &token, Some(new("s4", &plain))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let a3 = a3["attachment"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.call_v("3.27", "DELETE", &format!("{base}/attachments/{a3}"), &token, None).await.0, StatusCode::OK);
    let (_, shown) = c.call("GET", &format!("{base}/volumes/{vid}"), &token, None).await;
    assert_eq!(shown["volume"]["status"], "in-use", "{shown}");
    // An in-use multiattach volume keeps its kind.
    let (code, r) = act(vid.clone(), json!({"os-retype": {"new_type": "__DEFAULT__"}})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    // Detached one server at a time: in use until the last goes.
    let ids: Vec<(String, String)> = shown["volume"]["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attachment_id"].as_str().unwrap().to_string(), a["server_id"].as_str().unwrap().to_string()))
        .collect();
    for (i, (attachment, server)) in ids.iter().enumerate() {
        assert_eq!(act(vid.clone(), json!({"os-begin_detaching": {}})).await.0, StatusCode::ACCEPTED);
        let connector = json!({"host": format!("host-{server}"), "instance": server});
        assert_eq!(
            act(vid.clone(), json!({"os-terminate_connection": {"connector": connector}})).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(act(vid.clone(), json!({"os-detach": {"attachment_id": attachment}})).await.0, StatusCode::ACCEPTED);
        let (_, shown) = c.call("GET", &format!("{base}/volumes/{vid}"), &token, None).await;
        let want = if i + 1 < ids.len() { "in-use" } else { "available" };
        assert_eq!(shown["volume"]["status"], want, "{shown}");
    }
}

#[tokio::test]
async fn multiattach_volumes_are_attached_to_several_servers() {
    each_engine!(multiattach);
}

async fn group_types(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, member) = c.id.member("grouper").await;
    let admin = c.admin.clone();
    let base = format!("/v3/{p}/group_types");
    let v = "3.11";
    assert_eq!(c.call("GET", &base, &admin, None).await.0, StatusCode::NOT_FOUND, "before 3.11 there are none");
    let body = json!({"group_type": {"name": "gold", "description": "d", "group_specs": {"consistent_group_snapshot_enabled": "<is> False"}}});
    assert_eq!(c.call_v(v, "POST", &base, &member, Some(body.clone())).await.0, StatusCode::FORBIDDEN);
    let (code, t) = c.call_v(v, "POST", &base, &admin, Some(body.clone())).await;
    assert_eq!((code, &t["group_type"]["is_public"]), (StatusCode::ACCEPTED, &json!(true)), "{t}");
    let id = t["group_type"]["id"].as_str().unwrap().to_string();
    assert_eq!(c.call_v(v, "POST", &base, &admin, Some(body)).await.0, StatusCode::CONFLICT, "names are unique");
    let hidden = json!({"group_type": {"name": "private", "is_public": false}});
    let (_, h) = c.call_v(v, "POST", &base, &admin, Some(hidden)).await;
    let hidden = h["group_type"]["id"].as_str().unwrap().to_string();
    let names = |l: &Value| {
        l["group_types"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&c.call_v(v, "GET", &base, &member, None).await.1), ["gold"], "members see the public ones");
    assert_eq!(
        names(&c.call_v(v, "GET", &format!("{base}?is_public=None&sort=name:desc"), &admin, None).await.1),
        ["private", "gold"]
    );
    assert_eq!(names(&c.call_v(v, "GET", &format!("{base}?is_public=false"), &admin, None).await.1), ["private"]);
    assert_eq!(c.call_v(v, "GET", &format!("{base}/{hidden}"), &member, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v(v, "GET", &format!("{base}/default"), &member, None).await.0, StatusCode::NOT_FOUND);
    // Updated, and its specs set, shown, changed and removed.
    let (code, t) = c
        .call_v(
            v,
            "PUT",
            &format!("{base}/{id}"),
            &admin,
            Some(json!({"group_type": {"name": "gold2", "description": "e"}})),
        )
        .await;
    assert_eq!(
        (code, &t["group_type"]["name"], &t["group_type"]["description"]),
        (StatusCode::OK, &json!("gold2"), &json!("e"))
    );
    let specs = format!("{base}/{id}/group_specs");
    let (code, r) = c.call_v(v, "POST", &specs, &admin, Some(json!({"group_specs": {"k1": "v1", "k2": "v2"}}))).await;
    assert_eq!((code, &r["group_specs"]), (StatusCode::ACCEPTED, &json!({"k1": "v1", "k2": "v2"})));
    let (code, r) = c.call_v(v, "PUT", &format!("{specs}/k2"), &admin, Some(json!({"k2": "v2b"}))).await;
    assert_eq!((code, r), (StatusCode::OK, json!({"k2": "v2b"})));
    let (_, r) = c.call_v(v, "GET", &format!("{specs}/k2"), &member, None).await;
    assert_eq!(r, json!({"k2": "v2b"}));
    let (code, _) = c.call_v(v, "PUT", &format!("{specs}/k2"), &admin, Some(json!({"k3": "x"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the body names the key in the URL");
    assert_eq!(c.call_v(v, "DELETE", &format!("{specs}/k1"), &member, None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(c.call_v(v, "DELETE", &format!("{specs}/k1"), &admin, None).await.0, StatusCode::ACCEPTED);
    assert_eq!(c.call_v(v, "GET", &format!("{specs}/k1"), &admin, None).await.0, StatusCode::NOT_FOUND);
    let (_, r) = c.call_v(v, "GET", &specs, &admin, None).await;
    assert_eq!(r["group_specs"], json!({"consistent_group_snapshot_enabled": "<is> False", "k2": "v2b"}));
    for t in [&id, &hidden] {
        assert_eq!(c.call_v(v, "DELETE", &format!("{base}/{t}"), &admin, None).await.0, StatusCode::ACCEPTED);
    }
    assert!(names(&c.call_v(v, "GET", &base, &admin, None).await.1).is_empty());
}

#[tokio::test]
async fn group_types_are_made_by_admins_with_their_specs() {
    each_engine!(group_types);
}

async fn groups(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, t) = c.id.member("grouped").await;
    let (_, other) = c.id.member("outsider").await;
    let admin = c.admin.clone();
    let base = format!("/v3/{p}");
    let v = "3.25";
    let (_, gt) =
        c.call_v(v, "POST", &format!("{base}/group_types"), &admin, Some(json!({"group_type": {"name": "gt"}}))).await;
    let gt = gt["group_type"]["id"].as_str().unwrap().to_string();
    let (_, vt) = c.call("POST", &format!("{base}/types"), &admin, Some(json!({"volume_type": {"name": "vt"}}))).await;
    let vt = vt["volume_type"]["id"].as_str().unwrap().to_string();
    // Bad input makes nothing.
    for body in [
        json!({"group": {"group_type": gt}}),
        json!({"group": {"volume_types": [vt]}}),
        json!({"group": {"group_type": gt, "volume_types": ["nope"]}}),
    ] {
        let (code, r) = c.call_v(v, "POST", &format!("{base}/groups"), &t, Some(body.clone())).await;
        assert!(code == StatusCode::BAD_REQUEST || code == StatusCode::NOT_FOUND, "{body}: {code} {r}");
    }
    let (code, g) = c
        .call_v(
            v,
            "POST",
            &format!("{base}/groups"),
            &t,
            Some(json!({"group": {"name": "g1", "group_type": gt, "volume_types": [vt]}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{g}");
    let g1 = g["group"]["id"].as_str().unwrap().to_string();
    let wait_group = |path: String, key: &'static str, status: &'static str| {
        let (c, t) = (&c, t.clone());
        async move {
            for _ in 0..500 {
                let (code, body) = c.call_v("3.25", "GET", &path, &t, None).await;
                if (status == "GONE" && code == StatusCode::NOT_FOUND) || body[key]["status"] == json!(status) {
                    return body[key].clone();
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("{path} never {status}");
        }
    };
    wait_group(format!("{base}/groups/{g1}"), "group", "available").await;
    assert_eq!(c.call_v(v, "GET", &format!("/v3/{p}/groups/{g1}"), &other, None).await.0, StatusCode::FORBIDDEN);
    // Volumes made in it: of its types only.
    let mut vols = Vec::new();
    for _ in 0..2 {
        let body = json!({"volume": {"size": 1, "volume_type": "vt", "group_id": g1}});
        let (code, vol) = c.call_v(v, "POST", &format!("{base}/volumes"), &t, Some(body)).await;
        assert_eq!((code, &vol["volume"]["group_id"]), (StatusCode::ACCEPTED, &json!(g1)), "{vol}");
        let id = vol["volume"]["id"].as_str().unwrap().to_string();
        c.wait(&t, &format!("{base}/volumes/{id}"), "volume", "available").await;
        vols.push(id);
    }
    let (code, _) =
        c.call_v(v, "POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"size": 1, "group_id": g1}}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "the default type is not the group's");
    // A grouped volume stays in its project and of the group's types.
    let (code, r) = c
        .call("POST", &format!("{base}/os-volume-transfer"), &t, Some(json!({"transfer": {"volume_id": vols[0]}})))
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let retype = json!({"os-retype": {"new_type": "__DEFAULT__"}});
    let (code, r) = c.call("POST", &format!("{base}/volumes/{}/action", vols[0]), &t, Some(retype)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    let (_, shown) = c.call_v(v, "GET", &format!("{base}/groups/{g1}?list_volume=True"), &t, None).await;
    assert_eq!(shown["group"]["volumes"].as_array().unwrap().len(), 2, "{shown}");
    // Removed and added again.
    let group_path = format!("{base}/groups/{g1}");
    let upd = |body: Value| c.call_v(v, "PUT", &group_path, &t, Some(json!({"group": body})));
    assert_eq!(upd(json!({"remove_volumes": vols[1], "name": "g1b"})).await.0, StatusCode::ACCEPTED);
    let (_, l) = c.call_v(v, "GET", &format!("{base}/volumes/detail?group_id={g1}"), &t, None).await;
    assert_eq!(l["volumes"].as_array().unwrap().len(), 1, "{l}");
    assert_eq!(upd(json!({"remove_volumes": vols[1]})).await.0, StatusCode::BAD_REQUEST, "not in the group");
    assert_eq!(upd(json!({"add_volumes": vols[1]})).await.0, StatusCode::ACCEPTED);

    // A group snapshot: one snapshot per volume, available when they are; its
    // snapshots go only with it.
    let (code, gs) = c
        .call_v(
            v,
            "POST",
            &format!("{base}/group_snapshots"),
            &t,
            Some(json!({"group_snapshot": {"group_id": g1, "name": "gs1"}})),
        )
        .await;
    assert_eq!((code, &gs["group_snapshot"]["group_type_id"]), (StatusCode::ACCEPTED, &json!(gt)), "{gs}");
    let gs1 = gs["group_snapshot"]["id"].as_str().unwrap().to_string();
    wait_group(format!("{base}/group_snapshots/{gs1}"), "group_snapshot", "available").await;
    let (_, snaps) = c.call("GET", &format!("{base}/snapshots/detail"), &t, None).await;
    let snaps: Vec<String> =
        snaps["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(snaps.len(), 2);
    let (code, r) = c.call("DELETE", &format!("{base}/snapshots/{}", snaps[0]), &t, None).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{r}");
    // A new group from the group snapshot, and one from the group.
    let (code, g2) = c
        .call_v(
            v,
            "POST",
            &format!("{base}/groups/action"),
            &t,
            Some(json!({"create-from-src": {"group_snapshot_id": gs1, "name": "g2"}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{g2}");
    let g2 = g2["group"]["id"].as_str().unwrap().to_string();
    let shown = wait_group(format!("{base}/groups/{g2}?list_volume=True"), "group", "available").await;
    assert_eq!((shown["volumes"].as_array().unwrap().len(), &shown["group_snapshot_id"]), (2, &json!(gs1)), "{shown}");
    let (code, g3) = c
        .call_v(
            v,
            "POST",
            &format!("{base}/groups/action"),
            &t,
            Some(json!({"create-from-src": {"source_group_id": g1}})),
        )
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{g3}");
    let g3 = g3["group"]["id"].as_str().unwrap().to_string();
    wait_group(format!("{base}/groups/{g3}"), "group", "available").await;
    assert_eq!(c.usage(&p).await.0, 6, "two volumes, and two copies twice");
    let u = c.volume.store.usage(&p).await.unwrap();
    assert_eq!(u["groups"], 3);

    // Deleting: a group with volumes needs delete-volumes; one with group snapshots stays.
    let del = |id: String, volumes: bool| {
        let (c, t, base) = (&c, t.clone(), base.clone());
        async move {
            c.call_v(
                "3.25",
                "POST",
                &format!("{base}/groups/{id}/action"),
                &t,
                Some(json!({"delete": {"delete-volumes": volumes}})),
            )
            .await
        }
    };
    assert_eq!(del(g2.clone(), false).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(del(g1.clone(), true).await.0, StatusCode::BAD_REQUEST, "it has a group snapshot");
    for g in [&g2, &g3] {
        assert_eq!(del(g.clone(), true).await.0, StatusCode::ACCEPTED);
        wait_group(format!("{base}/groups/{g}"), "group", "GONE").await;
    }
    assert_eq!(c.call_v(v, "DELETE", &format!("{base}/group_snapshots/{gs1}"), &t, None).await.0, StatusCode::ACCEPTED);
    wait_group(format!("{base}/group_snapshots/{gs1}"), "group_snapshot", "GONE").await;
    let (_, snaps) = c.call("GET", &format!("{base}/snapshots"), &t, None).await;
    assert!(snaps["snapshots"].as_array().unwrap().is_empty(), "{snaps}");
    // Admins reset statuses (3.20).
    let reset = json!({"reset_status": {"status": "error"}});
    assert_eq!(
        c.call_v(v, "POST", &format!("{base}/groups/{g1}/action"), &t, Some(reset.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        c.call_v(v, "POST", &format!("{base}/groups/{g1}/action"), &admin, Some(reset)).await.0,
        StatusCode::ACCEPTED
    );
    wait_group(format!("{base}/groups/{g1}"), "group", "error").await;
    assert_eq!(del(g1.clone(), true).await.0, StatusCode::ACCEPTED);
    wait_group(format!("{base}/groups/{g1}"), "group", "GONE").await;
    assert_eq!(c.usage(&p).await.0, 0, "every volume went with its group");
    assert_eq!(c.volume.store.usage(&p).await.unwrap()["groups"], 0);

    // A crash between a group's delete being recorded and its members' deletes being
    // started: the next settling pass (a reconciler's) starts them and ends the group.
    let (_, g) = c
        .call_v(
            v,
            "POST",
            &format!("{base}/groups"),
            &t,
            Some(json!({"group": {"group_type": gt, "volume_types": [vt]}})),
        )
        .await;
    let g4 = g["group"]["id"].as_str().unwrap().to_string();
    wait_group(format!("{base}/groups/{g4}"), "group", "available").await;
    let body = json!({"volume": {"size": 1, "volume_type": "vt", "group_id": g4}});
    let (_, vol) = c.call_v(v, "POST", &format!("{base}/volumes"), &t, Some(body)).await;
    let member = vol["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/volumes/{member}"), "volume", "available").await;
    let mut cut = c.volume.store.group_get(&g4).await.unwrap().unwrap();
    cut.status = stratus_volume::store::GroupStatus::Deleting;
    cut.pending = "deletion".into();
    assert!(c.volume.store.group_save(&mut cut).await.unwrap());
    c.volume.settle_groups().await.unwrap();
    c.wait(&t, &format!("{base}/volumes/{member}"), "volume", "GONE").await;
    c.volume.settle_groups().await.unwrap();
    wait_group(format!("{base}/groups/{g4}"), "group", "GONE").await;
    assert_eq!(c.volume.store.usage(&p).await.unwrap()["groups"], 0);
}

#[tokio::test]
async fn groups_snapshot_copy_and_delete_their_volumes_together() {
    each_engine!(groups);
}

/// 3.45's counts, 3.46's volumes from a volume-backed server's snapshot image, 3.47's
/// volumes from backups.
async fn newer_sources(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (p, t) = c.id.member("sourcer").await;
    let base = format!("/v3/{p}");
    let (_, v) = c
        .call("POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"size": 1, "metadata": {"k": "v"}}})))
        .await;
    let vid = v["volume"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/volumes/{vid}"), "volume", "available").await;
    let (_, l) = c.call_v("3.45", "GET", &format!("{base}/volumes?limit=0&with_count=true"), &t, None).await;
    assert_eq!(l["count"], 1, "{l}");

    // From a backup: the backup's bytes and metadata, the size asked (at least the backup's).
    let (_, b) = c.call("POST", &format!("{base}/backups"), &t, Some(json!({"backup": {"volume_id": vid}}))).await;
    let bid = b["backup"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/backups/{bid}"), "backup", "available").await;
    let body = json!({"volume": {"backup_id": bid, "size": 2, "name": "from-backup"}});
    let (code, made) = c.call_v("3.47", "POST", &format!("{base}/volumes"), &t, Some(body)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{made}");
    let made = made["volume"]["id"].as_str().unwrap().to_string();
    let shown = c.wait(&t, &format!("{base}/volumes/{made}"), "volume", "available").await;
    assert_eq!((&shown["size"], &shown["metadata"]["k"]), (&json!(2), &json!("v")), "{shown}");
    c.wait(&t, &format!("{base}/backups/{bid}"), "backup", "available").await;
    let (code, _) =
        c.call_v("3.47", "POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"backup_id": "nope"}}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let body = json!({"volume": {"backup_id": bid, "snapshot_id": "x"}});
    assert_eq!(c.call_v("3.47", "POST", &format!("{base}/volumes"), &t, Some(body)).await.0, StatusCode::BAD_REQUEST);

    // From an image with no data that names a snapshot (a volume-backed server's).
    let (_, s) = c.call("POST", &format!("{base}/snapshots"), &t, Some(json!({"snapshot": {"volume_id": vid}}))).await;
    let sid = s["snapshot"]["id"].as_str().unwrap().to_string();
    c.wait(&t, &format!("{base}/snapshots/{sid}"), "snapshot", "available").await;
    let http = reqwest::Client::new();
    let mapping = json!([{"source_type": "snapshot", "destination_type": "volume", "snapshot_id": sid, "boot_index": 0, "volume_size": 1}]);
    let img: Value = http
        .post(format!("{}/v2/images", c.image_url))
        .header("x-auth-token", &t)
        .json(&json!({"name": "bfv-snap", "disk_format": "qcow2", "container_format": "bare",
                      "block_device_mapping": mapping.to_string(), "bdm_v2": "True"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let iid = img["id"].as_str().unwrap().to_string();
    let r = http
        .put(format!("{}/v2/images/{iid}/file", c.image_url))
        .header("x-auth-token", &t)
        .header("content-type", "application/octet-stream")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (code, fromimg) = c
        .call_v("3.46", "POST", &format!("{base}/volumes"), &t, Some(json!({"volume": {"imageRef": iid, "size": 1}})))
        .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{fromimg}");
    let fid = fromimg["volume"]["id"].as_str().unwrap().to_string();
    let shown = c.wait(&t, &format!("{base}/volumes/{fid}"), "volume", "available").await;
    assert_eq!(shown["snapshot_id"], json!(sid), "{shown}");
}

#[tokio::test]
async fn volumes_come_from_backups_and_snapshot_images() {
    each_engine!(newer_sources);
}
