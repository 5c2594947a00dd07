//! Volumes on servers (`os-volume_attachments`), against the volume service on its
//! fake backend: attach and detach end to end, bad input, isolation, the delete of a
//! server letting go of (or deleting) its volumes, and the generic saga tests for the
//! attach and detach sagas.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use stratus_common::db::{Engine, RowExt};
use stratus_test_support::each_engine;
use support::{Cloud, Options};

/// A project and a token scoped to it.
type User = (String, String);

async fn volume_call(c: &Cloud, method: reqwest::Method, path: &str, user: &User, body: Option<Value>) -> (u16, Value) {
    let (project, token) = user;
    let mut req = reqwest::Client::new()
        .request(method, format!("{}/v3/{project}{path}", c.volume_url))
        .header("x-auth-token", token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An available 1 GiB volume of the token's project.
async fn new_volume(c: &Cloud, token: &User, name: &str) -> String {
    let (st, v) =
        volume_call(c, reqwest::Method::POST, "/volumes", token, Some(json!({"volume": {"size": 1, "name": name}})))
            .await;
    assert_eq!(st, 202, "{v}");
    let id = v["volume"]["id"].as_str().unwrap().to_string();
    wait_volume(c, token, &id, "available").await;
    id
}

async fn wait_volume(c: &Cloud, token: &User, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (st, v) = volume_call(c, reqwest::Method::GET, &format!("/volumes/{id}"), token, None).await;
        if status == "GONE" && st == 404 {
            return Value::Null;
        }
        if v["volume"]["status"] == status {
            return v["volume"].clone();
        }
        last = v;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("volume {id} never became {status}: {last}");
}

/// An image as `token` sees it (`null` when it cannot).
async fn image_of(c: &Cloud, token: &str, id: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(format!("{}/v2/images/{id}", c.image_url))
        .header("x-auth-token", token)
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

async fn server(c: &Cloud, token: &str, image: &str, net: &str, name: &str) -> String {
    let body = json!({"server": {"name": name, "imageRef": image, "flavorRef": "m1", "networks": [{"uuid": net}]}});
    let r = c.call("POST", "/servers", token, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["server"]["id"].as_str().unwrap().to_string();
    c.wait_status(token, &id, "ACTIVE").await;
    id
}

/// What `read` answers once two reads 60 ms apart agree (the server's sagas have ended).
async fn settled<F, Fut>(id: &str, read: F) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
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

fn attach_body(volume: &str) -> Value {
    json!({"volumeAttachment": {"volumeId": volume}})
}

/// The guest's volumes on whichever fake host runs it.
fn guest_volumes(c: &Cloud, server: &str) -> Vec<(String, String)> {
    c.drivers.iter().find_map(|d| d.volumes_of(server)).unwrap_or_default()
}

async fn attach_and_detach(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let user = c.member("vol-user").await;
    let token = user.1.clone();
    let s = server(&c, &token, &image, &net, "vm").await;
    let vol = new_volume(&c, &user, "data").await;

    // Attach: the answer names the device; the volume ends in-use, attached to the
    // server, and the guest has the disk.
    let path = format!("/servers/{s}/os-volume_attachments");
    let r = c.call("POST", &path, &token, Some(attach_body(&vol))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["volumeAttachment"],
        json!({"id": vol, "serverId": s, "volumeId": vol, "device": "/dev/vdb"}),
        "exactly Nova's 2.1 keys"
    );
    let v = wait_volume(&c, &user, &vol, "in-use").await;
    assert_eq!(v["attachments"][0]["server_id"], json!(s), "{v}");
    assert_eq!(v["attachments"][0]["device"], json!("/dev/vdb"), "{v}");
    assert_eq!(guest_volumes(&c, &s), vec![(vol.clone(), "/dev/vdb".to_string())]);
    support::eventually("the attachment listed", || async {
        let r = c.call("GET", &path, &token, None).await;
        r.body["volumeAttachments"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    let shown = c.call("GET", &format!("/servers/{s}"), &token, None).await;
    assert_eq!(shown.body["server"]["os-extended-volumes:volumes_attached"], json!([{"id": vol}]));
    let r = c.call_v("2.89", "GET", &format!("{path}/{vol}"), &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["volumeAttachment"]["attachment_id"], v["attachments"][0]["attachment_id"]);
    assert_eq!(r.body["volumeAttachment"]["delete_on_termination"], json!(false));

    // Refusals change nothing: attached already, not found, not available, bad
    // input, a volume that is in use cannot be deleted.
    let r = c.call("POST", &path, &token, Some(attach_body(&vol))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = c.call("POST", &path, &token, Some(attach_body("no-such-volume"))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    for bad in [
        json!({"volumeAttachment": {}}),
        json!({"volumeAttachment": {"volumeId": vol, "device": "sdb"}}),
        json!({"volumeAttachment": {"volumeId": vol, "bogus": 1}}),
        json!({"volumeAttachment": {"volumeId": vol, "tag": "t"}}),
        json!({"volumeAttachment": "x"}),
    ] {
        let r = c.call("POST", &path, &token, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
    let (st, _) = volume_call(&c, reqwest::Method::DELETE, &format!("/volumes/{vol}"), &user, None).await;
    assert_eq!(st, 400, "an attached volume cannot be deleted");
    let r = c.call("PUT", &format!("{path}/{vol}"), &token, Some(attach_body(&vol))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Another project sees neither the server's attachments nor the volume, and
    // cannot attach the volume to its own server.
    let (_, other) = c.member("vol-other").await;
    let (st, _) =
        volume_call(&c, reqwest::Method::GET, &format!("/volumes/{vol}"), &(user.0.clone(), other.clone()), None).await;
    assert_eq!(st, 403, "another project's token cannot use this project's URL");
    assert_eq!(c.call("GET", &path, &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &format!("{path}/{vol}"), &other, None).await.status, StatusCode::NOT_FOUND);
    let theirs = server(&c, &other, &image, &net, "theirs").await;
    let spare = new_volume(&c, &user, "spare").await;
    let r =
        c.call("POST", &format!("/servers/{theirs}/os-volume_attachments"), &other, Some(attach_body(&spare))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(wait_volume(&c, &user, &spare, "available").await["attachments"], json!([]));

    // A second volume gets the next device.
    let r = c.call("POST", &path, &token, Some(attach_body(&spare))).await;
    assert_eq!(r.body["volumeAttachment"]["device"], json!("/dev/vdc"), "{}", r.body);
    wait_volume(&c, &user, &spare, "in-use").await;

    // Detach: the volume is available again, the guest has no disk.
    let r = c.call("DELETE", &format!("{path}/{vol}"), &token, None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let v = wait_volume(&c, &user, &vol, "available").await;
    assert_eq!(v["attachments"], json!([]));
    support::eventually("the disk unplugged", || async { guest_volumes(&c, &s).len() == 1 }).await;
    assert_eq!(c.call("DELETE", &format!("{path}/{vol}"), &token, None).await.status, StatusCode::NOT_FOUND);

    // Deleting the server lets go of its volume; one marked delete_on_termination
    // (2.79) goes with it.
    let r = c
        .call_v(
            "2.79",
            "POST",
            &path,
            &token,
            Some(json!({"volumeAttachment":
        {"volumeId": vol, "delete_on_termination": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["volumeAttachment"]["delete_on_termination"], json!(true));
    wait_volume(&c, &user, &vol, "in-use").await;
    // (A delete before the attach's saga ends cancels the attach: wait for its end.)
    support::eventually("the attach saga ended", || async {
        !c.compute.store.server_get(&s).await.unwrap().unwrap().busy()
    })
    .await;
    assert_eq!(c.call("DELETE", &format!("/servers/{s}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &s, "GONE").await;
    wait_volume(&c, &user, &spare, "available").await;
    wait_volume(&c, &user, &vol, "GONE").await;
}

#[tokio::test]
async fn volumes_attach_detach_and_go_with_their_server() {
    each_engine!(attach_and_detach);
}

async fn generic_volume_sagas(engine: Engine) {
    use stratus_test_support::saga::check_saga;
    let mut opts = Options::default();
    opts.fake.capacity.vcpus = 256;
    opts.fake.capacity.ram_mb = 256 * 1024;
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let runner = &c.compute.sagas;
    // Scenario server → (its volume, the token).
    let volumes: Mutex<HashMap<String, (String, User)>> = Mutex::new(HashMap::new());
    let observe = |id: String| {
        let (c, volumes) = (&c, &volumes);
        async move {
            let (vol, user) = volumes.lock().unwrap().get(&id).cloned().unwrap();
            let read = || async {
                let s = c.compute.store.server_get(&id).await.unwrap().unwrap();
                let (_, v) = volume_call(c, reqwest::Method::GET, &format!("/volumes/{vol}"), &user, None).await;
                let open =
                    sqlx::query("SELECT action FROM compute_actions WHERE server_id = $1 AND finish_time IS NULL")
                        .bind(&id)
                        .fetch_all(&c.compute.store.db.pool)
                        .await
                        .unwrap();
                json!({"vm_state": s.vm_state, "busy": s.busy(), "fault": s.doc.get("fault").is_some(),
                       "server_volumes": s.volumes().len(), "guest_volumes": guest_volumes(c, &id).len(),
                       "status": v["volume"]["status"], "attachments": v["volume"]["attachments"].as_array().map(Vec::len),
                       "open_actions": open.iter().map(|r| r.text("action")).collect::<Vec<_>>()})
            };
            settled(&id, read).await
        }
    };
    let (image, net) = (&image, &net);
    let prepared = |label: String, attached: bool| {
        let (c, volumes) = (&c, &volumes);
        async move {
            let user = c.member(&label).await;
            let token = user.1.clone();
            let id = server(c, &token, image, net, &label).await;
            let vol = new_volume(c, &user, &label).await;
            volumes.lock().unwrap().insert(id.clone(), (vol.clone(), user.clone()));
            if attached {
                let path = format!("/servers/{id}/os-volume_attachments");
                assert_eq!(c.call("POST", &path, &token, Some(attach_body(&vol))).await.status, StatusCode::OK);
                wait_volume(c, &user, &vol, "in-use").await;
                support::eventually("the attach saga ended", || async {
                    !c.compute.store.server_get(&id).await.unwrap().unwrap().busy()
                })
                .await;
            }
            (id, vol, token)
        }
    };

    let start_attach = |l: String| async {
        let (id, vol, token) = prepared(l, false).await;
        let r = c.call("POST", &format!("/servers/{id}/os-volume_attachments"), &token, Some(attach_body(&vol))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        id
    };
    let r = check_saga(runner, "volume_attach", start_attach, observe).await;
    assert_eq!(
        r.ok,
        json!({"vm_state": "active", "busy": false, "fault": false, "server_volumes": 1, "guest_volumes": 1,
               "status": "in-use", "attachments": 1, "open_actions": []})
    );
    assert_eq!(
        r.failures_alike(),
        &json!({"vm_state": "active", "busy": false, "fault": false, "server_volumes": 0, "guest_volumes": 0,
                "status": "available", "attachments": 0, "open_actions": []})
    );
    let (_, stuck) = &r.stuck;
    assert_eq!((&stuck["vm_state"], &stuck["fault"]), (&json!("error"), &json!(true)), "{stuck}");
    eprintln!("volume_attach: {} scenarios", r.scenarios);

    let start_detach = |l: String| async {
        let (id, vol, token) = prepared(l, true).await;
        let r = c.call("DELETE", &format!("/servers/{id}/os-volume_attachments/{vol}"), &token, None).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        id
    };
    let r = check_saga(runner, "volume_detach", start_detach, observe).await;
    assert_eq!(
        r.ok,
        json!({"vm_state": "active", "busy": false, "fault": false, "server_volumes": 0, "guest_volumes": 0,
               "status": "available", "attachments": 0, "open_actions": []})
    );
    assert_eq!(
        r.failures_alike(),
        &json!({"vm_state": "active", "busy": false, "fault": false, "server_volumes": 1, "guest_volumes": 1,
                "status": "in-use", "attachments": 1, "open_actions": []})
    );
    eprintln!("volume_detach: {} scenarios", r.scenarios);
}

#[tokio::test]
async fn volume_sagas_pass_the_generic_saga_tests() {
    each_engine!(generic_volume_sagas);
}

/// A create request booting from a block device mapping.
fn boot_body(net: &str, name: &str, bdm: Value) -> Value {
    json!({"server": {"name": name, "imageRef": "", "flavorRef": "m1", "networks": [{"uuid": net}],
                      "block_device_mapping_v2": [bdm]}})
}

async fn boot_from_volume(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let user = c.member("bfv-user").await;
    let token = user.1.clone();
    let (st, v) = volume_call(
        &c,
        reqwest::Method::POST,
        "/volumes",
        &user,
        Some(json!({"volume": {"size": 1, "imageRef": image, "name": "root"}})),
    )
    .await;
    assert_eq!(st, 202, "{v}");
    let root = v["volume"]["id"].as_str().unwrap().to_string();
    assert_eq!(wait_volume(&c, &user, &root, "available").await["bootable"], json!("true"));
    let plain = new_volume(&c, &user, "plain").await;

    // Refused at once, making nothing: a volume that is not bootable, one the caller
    // cannot see, other mappings than the boot one.
    let from =
        |uuid: &str| json!({"boot_index": 0, "uuid": uuid, "source_type": "volume", "destination_type": "volume"});
    for (bdm, what) in [
        (from(&plain), "not bootable"),
        (from("no-such-volume"), "failed to get"),
        (
            json!({"boot_index": 0, "source_type": "blank", "destination_type": "volume", "volume_size": 1}),
            "not supported",
        ),
        (
            json!({"boot_index": 0, "uuid": image, "source_type": "image", "destination_type": "volume", "volume_size": 0}),
            "volume_size",
        ),
    ] {
        let r = c.call("POST", "/servers", &token, Some(boot_body(&net, "x", bdm))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert!(r.body.to_string().contains(what), "{what}: {}", r.body);
    }
    let (_, other) = c.member("bfv-other").await;
    let r = c.call("POST", "/servers", &other, Some(boot_body(&net, "x", from(&root)))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "another project's volume: {}", r.body);

    // From the user's volume: ACTIVE with the volume as its root disk, no image, no
    // disk claimed on the host.
    let r = c.call("POST", "/servers", &token, Some(boot_body(&net, "bfv", from(&root)))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let s = r.body["server"]["id"].as_str().unwrap().to_string();
    let shown = c.wait_status(&token, &s, "ACTIVE").await;
    assert_eq!(shown["image"], json!(""), "{shown}");
    assert_eq!(shown["os-extended-volumes:volumes_attached"], json!([{"id": root}]));
    let v = wait_volume(&c, &user, &root, "in-use").await;
    assert_eq!((&v["attachments"][0]["server_id"], &v["attachments"][0]["device"]), (&json!(s), &json!("/dev/vda")));
    assert_eq!(guest_volumes(&c, &s), vec![(root.clone(), "/dev/vda".to_string())]);
    assert_eq!(c.compute.store.server_get(&s).await.unwrap().unwrap().disk, 0, "no root disk on the host");
    // Its root volume stays: no detach, no rebuild; another volume attaches after it.
    let path = format!("/servers/{s}/os-volume_attachments");
    let r = c.call("DELETE", &format!("{path}/{root}"), &token, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r =
        c.call("POST", &format!("/servers/{s}/action"), &token, Some(json!({"rebuild": {"imageRef": image}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = c.call("POST", &path, &token, Some(attach_body(&plain))).await;
    assert_eq!(r.body["volumeAttachment"]["device"], json!("/dev/vdb"), "{}", r.body);
    wait_volume(&c, &user, &plain, "in-use").await;
    // A snapshot of it (createImage), as Nova's: each volume snapshotted, an image
    // with no data naming the snapshots; a server booted from that image boots from a
    // new volume made from the root's snapshot. Backups of it are refused.
    let action = format!("/servers/{s}/action");
    let backup = json!({"createBackup": {"name": "b", "backup_type": "daily", "rotation": 1}});
    let r = c.call("POST", &action, &token, Some(backup)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // A property value longer than 255 characters is refused, as Nova's schema does;
    // an image beyond the project's image quota too, whole: the server is free at
    // once, and no snapshot was made.
    let long = json!({"createImage": {"name": "snap", "metadata": {"note": "x".repeat(256)}}});
    let r = c.call_v("2.45", "POST", &action, &token, Some(long)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    c.id.set_limit("image", &user.0, "image_count_total", 0).await;
    let r = c.call_v("2.45", "POST", &action, &token, Some(json!({"createImage": {"name": "snap"}}))).await;
    assert!(matches!(r.status.as_u16(), 403 | 413), "{}: {}", r.status, r.body);
    assert!(!c.compute.store.server_get(&s).await.unwrap().unwrap().busy());
    let (_, snaps) = volume_call(&c, reqwest::Method::GET, &format!("/snapshots?volume_id={root}"), &user, None).await;
    assert_eq!(snaps["snapshots"], json!([]), "{snaps}");
    c.id.set_limit("image", &user.0, "image_count_total", 100).await;
    c.image.limits.invalidate();
    let r = c
        .call_v("2.45", "POST", &format!("/servers/{s}/action"), &token, Some(json!({"createImage": {"name": "snap"}})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let snap_image = r.body["image_id"].as_str().unwrap().to_string();
    // The image exists when the answer comes (queued), and is active once the
    // snapshots are made.
    assert!(image_of(&c, &token, &snap_image).await["status"].is_string());
    support::eventually("the snapshot image is active", || async {
        image_of(&c, &token, &snap_image).await["status"] == "active"
    })
    .await;
    let img = image_of(&c, &token, &snap_image).await;
    assert_eq!((&img["size"], &img["bdm_v2"]), (&json!(0), &json!("True")), "{img}");
    let mappings: Value = serde_json::from_str(img["block_device_mapping"].as_str().unwrap()).unwrap();
    assert_eq!(mappings.as_array().unwrap().len(), 2, "both volumes: {mappings}");
    assert_eq!((&mappings[0]["boot_index"], &mappings[0]["source_type"]), (&json!(0), &json!("snapshot")));
    let snapshot = mappings[0]["snapshot_id"].as_str().unwrap().to_string();
    let (_, shown) = volume_call(&c, reqwest::Method::GET, &format!("/snapshots/{snapshot}"), &user, None).await;
    assert_eq!(shown["snapshot"]["volume_id"], json!(root), "{shown}");
    let body =
        json!({"server": {"name": "again", "imageRef": snap_image, "flavorRef": "m1", "networks": [{"uuid": net}]}});
    let r = c.call("POST", "/servers", &token, Some(body)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let again = r.body["server"]["id"].as_str().unwrap().to_string();
    let shown = c.wait_status(&token, &again, "ACTIVE").await;
    let made = shown["os-extended-volumes:volumes_attached"][0]["id"].as_str().unwrap().to_string();
    let v = wait_volume(&c, &user, &made, "in-use").await;
    assert_eq!((&v["snapshot_id"], &v["bootable"]), (&json!(snapshot), &json!("true")), "{v}");
    assert_eq!(c.call("DELETE", &format!("/servers/{again}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &again, "GONE").await;
    wait_volume(&c, &user, &made, "available").await;
    for (path, id) in [
        ("/volumes", &made),
        ("/snapshots", &snapshot),
        ("/snapshots", &mappings[1]["snapshot_id"].as_str().unwrap().to_string()),
    ] {
        let (st, _) = volume_call(&c, reqwest::Method::DELETE, &format!("{path}/{id}"), &user, None).await;
        assert_eq!(st, 202, "{path}/{id}");
    }
    // Deleted: both volumes stay, available.
    assert_eq!(c.call("DELETE", &format!("/servers/{s}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &s, "GONE").await;
    assert_eq!(wait_volume(&c, &user, &root, "available").await["attachments"], json!([]));
    wait_volume(&c, &user, &plain, "available").await;

    // From an image onto a new volume that goes with the server.
    let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image", "destination_type": "volume",
                     "volume_size": 2, "delete_on_termination": true});
    let r = c.call("POST", "/servers", &token, Some(boot_body(&net, "bfi", bdm))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let s = r.body["server"]["id"].as_str().unwrap().to_string();
    let shown = c.wait_status(&token, &s, "ACTIVE").await;
    let made = shown["os-extended-volumes:volumes_attached"][0]["id"].as_str().unwrap().to_string();
    let v = wait_volume(&c, &user, &made, "in-use").await;
    assert_eq!(
        (&v["size"], &v["name"], &v["bootable"]),
        (&json!(2), &json!(format!("boot-{s}")), &json!("true")),
        "{v}"
    );
    assert_eq!(v["os-vol-tenant-attr:tenant_id"], json!(user.0), "made in the server's project");
    assert_eq!(c.call("DELETE", &format!("/servers/{s}"), &token, None).await.status, StatusCode::NO_CONTENT);
    c.wait_status(&token, &s, "GONE").await;
    wait_volume(&c, &user, &made, "GONE").await;
}

#[tokio::test]
async fn servers_boot_from_volumes() {
    each_engine!(boot_from_volume);
}

async fn generic_boot_from_volume(engine: Engine) {
    use stratus_test_support::saga::check_saga;
    let mut opts = Options::default();
    opts.fake.capacity.vcpus = 256;
    opts.fake.capacity.ram_mb = 256 * 1024;
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    let volumes: Mutex<HashMap<String, (String, User)>> = Mutex::new(HashMap::new());
    let (image, net) = (&image, &net);
    let start = |label: String| {
        let (c, volumes) = (&c, &volumes);
        async move {
            let user = c.member(&label).await;
            let (_, v) = volume_call(
                c,
                reqwest::Method::POST,
                "/volumes",
                &user,
                Some(json!({"volume": {"size": 1, "imageRef": image}})),
            )
            .await;
            let vol = v["volume"]["id"].as_str().unwrap().to_string();
            wait_volume(c, &user, &vol, "available").await;
            let bdm = json!({"boot_index": 0, "uuid": vol, "source_type": "volume", "destination_type": "volume"});
            let r = c.call("POST", "/servers", &user.1, Some(boot_body(net, &label, bdm))).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            let id = r.body["server"]["id"].as_str().unwrap().to_string();
            volumes.lock().unwrap().insert(id.clone(), (vol, user));
            id
        }
    };
    let observe = |id: String| {
        let (c, volumes) = (&c, &volumes);
        async move {
            let (vol, user) = volumes.lock().unwrap().get(&id).cloned().unwrap();
            let read = || async {
                let s = c.compute.store.server_get(&id).await.unwrap().unwrap();
                let (_, v) = volume_call(c, reqwest::Method::GET, &format!("/volumes/{vol}"), &user, None).await;
                json!({"vm_state": s.vm_state, "server_volumes": s.volumes().len(), "guest": guest_volumes(c, &id).len(),
                       "status": v["volume"]["status"], "attachments": v["volume"]["attachments"].as_array().map(Vec::len)})
            };
            settled(&id, read).await
        }
    };
    let r = check_saga(&c.compute.sagas, "create", start, observe).await;
    assert_eq!(
        r.ok,
        json!({"vm_state": "active", "server_volumes": 1, "guest": 1, "status": "in-use", "attachments": 1})
    );
    // A build that fails at any step gives the volume back, available.
    assert_eq!(
        r.failures_alike(),
        &json!({"vm_state": "error", "server_volumes": 0, "guest": 0, "status": "available", "attachments": 0})
    );
    eprintln!("create from a volume: {} scenarios", r.scenarios);
}

#[tokio::test]
async fn boot_from_volume_passes_the_generic_saga_tests() {
    each_engine!(generic_boot_from_volume);
}

/// `createImage` of a server booted from a volume: a clean run leaves an active image
/// naming one snapshot per volume; a failure anywhere leaves neither image nor
/// snapshots, and the server free.
async fn generic_volume_backed_snapshot(engine: Engine) {
    use stratus_test_support::saga::check_saga;
    let mut opts = Options::default();
    opts.fake.capacity.vcpus = 256;
    opts.fake.capacity.ram_mb = 256 * 1024;
    let c = Cloud::start_with(engine, opts).await;
    let (image, net, _) = c.basics().await;
    // By server: its root volume, the image its snapshot made, and the user.
    let made: Mutex<HashMap<String, (String, String, User)>> = Mutex::new(HashMap::new());
    let (image, net) = (&image, &net);
    let start = |label: String| {
        let (c, made) = (&c, &made);
        async move {
            let user = c.member(&label).await;
            let bdm = json!({"boot_index": 0, "uuid": image, "source_type": "image", "destination_type": "volume",
                             "volume_size": 1, "delete_on_termination": true});
            let r = c.call("POST", "/servers", &user.1, Some(boot_body(net, &label, bdm))).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            let id = r.body["server"]["id"].as_str().unwrap().to_string();
            let shown = c.wait_status(&user.1, &id, "ACTIVE").await;
            let root = shown["os-extended-volumes:volumes_attached"][0]["id"].as_str().unwrap().to_string();
            support::eventually("the create saga ended", || async {
                !c.compute.store.server_get(&id).await.unwrap().unwrap().busy()
            })
            .await;
            let body = json!({"createImage": {"name": format!("snap-{label}")}});
            let r = c.call_v("2.45", "POST", &format!("/servers/{id}/action"), &user.1, Some(body)).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            let snap = r.body["image_id"].as_str().unwrap().to_string();
            made.lock().unwrap().insert(id.clone(), (root, snap, user));
            id
        }
    };
    let observe = |id: String| {
        let (c, made) = (&c, &made);
        async move {
            let (root, snap, user) = made.lock().unwrap().get(&id).cloned().unwrap();
            let read = || async {
                let s = c.compute.store.server_get(&id).await.unwrap().unwrap();
                let (_, snaps) =
                    volume_call(c, reqwest::Method::GET, &format!("/snapshots?volume_id={root}"), &user, None).await;
                let img = image_of(c, &user.1, &snap).await;
                let mappings = img["block_device_mapping"]
                    .as_str()
                    .and_then(|m| serde_json::from_str::<Value>(m).ok())
                    .and_then(|m| m.as_array().map(Vec::len));
                json!({"vm_state": s.vm_state, "busy": s.busy(), "snapshots": snaps["snapshots"].as_array().map(Vec::len),
                       "image": img["status"], "mappings": mappings})
            };
            settled(&id, read).await
        }
    };
    let r = check_saga(&c.compute.sagas, "volume_backed_snapshot", start, observe).await;
    assert_eq!(r.ok, json!({"vm_state": "active", "busy": false, "snapshots": 1, "image": "active", "mappings": 1}));
    assert_eq!(
        r.failures_alike(),
        &json!({"vm_state": "active", "busy": false, "snapshots": 0, "image": null, "mappings": null})
    );
    eprintln!("createImage of a volume-backed server: {} scenarios", r.scenarios);
}

#[tokio::test]
async fn volume_backed_snapshot_passes_the_generic_saga_tests() {
    each_engine!(generic_volume_backed_snapshot);
}

async fn online_extend(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (image, net, _) = c.basics().await;
    let user = c.member("grow-user").await;
    let token = user.1.clone();
    let admin = c.admin().await;
    let s = server(&c, &token, &image, &net, "vm").await;
    let vol = new_volume(&c, &user, "data").await;
    let r = c.call("POST", &format!("/servers/{s}/os-volume_attachments"), &token, Some(attach_body(&vol))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    wait_volume(&c, &user, &vol, "in-use").await;
    support::eventually("the attach saga ended", || async {
        !c.compute.store.server_get(&s).await.unwrap().unwrap().busy()
    })
    .await;

    // Extended in use (3.42): the volume service tells compute, whose host grows the
    // guest's disk; the volume is in use again at its new size.
    let (project, _) = &user;
    let resp = reqwest::Client::new()
        .post(format!("{}/v3/{project}/volumes/{vol}/action", c.volume_url))
        .header("x-auth-token", &token)
        .header("openstack-api-version", "volume 3.42")
        .json(&json!({"os-extend": {"new_size": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    support::eventually("grown", || async {
        let (_, v) = volume_call(&c, reqwest::Method::GET, &format!("/volumes/{vol}"), &user, None).await;
        v["volume"]["status"] == "in-use" && v["volume"]["size"] == 2
    })
    .await;
    let r = c.call("POST", &format!("/servers/{s}/action"), &token, Some(json!({"os-getConsoleOutput": {}}))).await;
    assert!(r.body["output"].as_str().unwrap().contains("/dev/vdb capacity change to 2 GiB"), "{}", r.body);
    // The server's actions show it, with Nova's event name.
    let r = c.call("GET", &format!("/servers/{s}/os-instance-actions"), &token, None).await;
    let action = r.body["instanceActions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "extend_volume")
        .cloned()
        .unwrap_or_else(|| panic!("no extend_volume action: {}", r.body));
    let req = action["request_id"].as_str().unwrap();
    let r = c.call("GET", &format!("/servers/{s}/os-instance-actions/{req}"), &admin, None).await;
    let event = &r.body["instanceAction"]["events"][0];
    assert_eq!((&event["event"], &event["result"]), (&json!("compute_extend_volume"), &json!("Success")), "{}", r.body);
    assert!(event["finish_time"].is_string(), "{}", r.body);

    // The events API: admins and services only, Nova's event names only; a volume the
    // server does not have, or a server that does not exist, is that event's failure.
    let events = |body: Value| async { c.call("POST", "/os-server-external-events", &admin, Some(body)).await };
    let one =
        |name: &str, server: &str, tag: &str| json!({"events": [{"name": name, "server_uuid": server, "tag": tag}]});
    assert_eq!(
        c.call("POST", "/os-server-external-events", &token, Some(one("volume-extended", &s, &vol))).await.status,
        StatusCode::FORBIDDEN
    );
    for bad in [json!({"events": []}), one("volume-shrunk", &s, &vol), json!({"events": [{"name": "volume-extended"}]})]
    {
        assert_eq!(events(bad.clone()).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = events(one("volume-extended", &s, "no-such-volume")).await;
    assert_eq!((r.status, &r.body["events"][0]["code"]), (StatusCode::MULTI_STATUS, &json!(422)), "{}", r.body);
    let r = events(one("volume-extended", "00000000-0000-4000-8000-000000000000", &vol)).await;
    assert_eq!((r.status, &r.body["events"][0]["code"]), (StatusCode::NOT_FOUND, &json!(404)), "{}", r.body);
    assert_eq!(r.body["events"][0]["status"], "failed");
    // Neutron's network-changed reads the server's ports again; the events Nova only
    // waits for are not taken here.
    let r = events(json!({"events": [{"name": "network-changed", "server_uuid": s},
                                     {"name": "network-vif-plugged", "server_uuid": s, "tag": "p"}]}))
    .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert_eq!((&r.body["events"][0]["code"], &r.body["events"][0]["status"]), (&json!(200), &json!("completed")));
    assert_eq!(r.body["events"][1]["code"], 422);
    let shown = c.call("GET", &format!("/servers/{s}"), &token, None).await;
    assert!(shown.body["server"]["addresses"].as_object().is_some_and(|a| !a.is_empty()), "{}", shown.body);
}

#[tokio::test]
async fn attached_volumes_grow_with_their_guest_disk() {
    each_engine!(online_extend);
}

async fn volume_proxy(engine: Engine) {
    // Nova's os-volumes and os-snapshots below 2.36: the volume service's, in Nova's
    // shapes, with the caller's own rights.
    let c = Cloud::start(engine).await;
    let user = c.member("proxy-user").await;
    let other = c.member("proxy-other").await;
    let token = user.1.clone();
    for bad in [json!({"volume": {}}), json!({"volume": {"size": 0}}), json!({"volume": {"size": "#$%"}})] {
        assert_eq!(c.call("POST", "/os-volumes", &token, Some(bad)).await.status, StatusCode::BAD_REQUEST);
    }
    let mut ids = Vec::new();
    for n in ["pv-1", "pv-2"] {
        let r = c
            .call(
                "POST",
                "/os-volumes",
                &token,
                Some(json!({"volume": {"size": 1, "display_name": n, "metadata": {"k": "v"}}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = &r.body["volume"];
        assert_eq!(
            (v["displayName"].clone(), v["attachments"].clone(), v["metadata"].clone()),
            (json!(n), json!([{}]), json!({"k": "v"})),
            "{v}"
        );
        ids.push(v["id"].as_str().unwrap().to_string());
        wait_volume(&c, &user, ids.last().unwrap(), "available").await;
    }
    let all = c.call("GET", "/os-volumes/detail", &token, None).await;
    let names: Vec<&str> =
        all.body["volumes"].as_array().unwrap().iter().filter_map(|v| v["displayName"].as_str()).collect();
    assert_eq!(names.len(), 2, "{}", all.body);
    let page = c.call("GET", "/os-volumes?offset=1&limit=1", &token, None).await;
    assert_eq!(page.body["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["volumes"][0]["id"], all.body["volumes"][1]["id"]);
    let shown = c.call("GET", &format!("/os-volumes/{}", ids[0]), &token, None).await;
    assert_eq!(
        (shown.body["volume"]["status"].clone(), shown.body["volume"]["size"].clone()),
        (json!("available"), json!(1))
    );
    assert_eq!(c.call("GET", &format!("/os-volumes/{}", ids[0]), &other.1, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call_v("2.36", "GET", "/os-volumes", &token, None).await.status, StatusCode::NOT_FOUND);
    // Snapshots.
    let r = c
        .call(
            "POST",
            "/os-snapshots",
            &token,
            Some(json!({"snapshot": {"volume_id": ids[0], "display_name": "ps", "force": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sid = r.body["snapshot"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        (r.body["snapshot"]["volumeId"].clone(), r.body["snapshot"]["displayName"].clone()),
        (json!(ids[0]), json!("ps"))
    );
    let listed = c.call("GET", "/os-snapshots/detail", &token, None).await;
    assert_eq!(listed.body["snapshots"][0]["id"], json!(sid), "{}", listed.body);
    for _ in 0..300 {
        if c.call("GET", &format!("/os-snapshots/{sid}"), &token, None).await.body["snapshot"]["status"] == "available"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(c.call("DELETE", &format!("/os-snapshots/{sid}"), &token, None).await.status, StatusCode::ACCEPTED);
    for _ in 0..300 {
        if c.call("GET", &format!("/os-snapshots/{sid}"), &token, None).await.status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for id in &ids {
        assert_eq!(c.call("DELETE", &format!("/os-volumes/{id}"), &token, None).await.status, StatusCode::ACCEPTED);
        wait_volume(&c, &user, id, "GONE").await;
    }
    assert_eq!(c.call("DELETE", &format!("/os-volumes/{}", ids[0]), &token, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_volume_proxy_speaks_novas_shapes() {
    each_engine!(volume_proxy);
}
