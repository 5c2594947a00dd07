//! The image API in-process against a real database (SQLite, and PostgreSQL when
//! configured): data round trip, format safety, interrupted uploads, quotas under
//! concurrency, visibility and sharing, patching, the import flow and the reconciler.

mod support;

use axum::body::Body;
use axum::http::StatusCode;
use md5::{Digest, Md5};
use serde_json::json;
use std::time::Duration;
use stratus_common::db::Engine;
use support::*;

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

async fn round_trip(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("alice").await;
    let img = c
        .create(&t, json!({"name": "raw1", "disk_format": "raw", "container_format": "bare", "os_distro": "debian"}))
        .await;
    assert_eq!(img["status"], "queued");
    assert_eq!(img["os_distro"], "debian", "extra properties are echoed at the top level");
    let id = img["id"].as_str().unwrap();
    let bytes = data(300_000);
    // Chunked upload: a stream of pieces.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = bytes.chunks(7000).map(|c| Ok(c.to_vec())).collect();
    let body = Body::from_stream(futures::stream::iter(chunks));
    let r = c.call_body("PUT", &format!("/v2/images/{id}/file"), &t, body, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&r.body));
    let shown = c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["size"], 300_000);
    assert_eq!(shown["virtual_size"], 300_000);
    let md5: String = Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(shown["checksum"], md5.as_str());
    assert_eq!(shown["os_hash_algo"], "sha512");
    assert_eq!(shown["os_hash_value"].as_str().unwrap().len(), 128);
    let down = c.call("GET", &format!("/v2/images/{id}/file"), &t, None).await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.body, bytes);
    assert_eq!(down.headers.get("content-md5").unwrap().to_str().unwrap(), md5);
    let part =
        c.call_body("GET", &format!("/v2/images/{id}/file"), &t, Body::empty(), &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, bytes[10..20]);
    assert_eq!(part.headers.get("content-range").unwrap(), "bytes 10-19/300000");
    let bad =
        c.call_body("GET", &format!("/v2/images/{id}/file"), &t, Body::empty(), &[("range", "bytes=400000-")]).await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // A second upload to an active image is refused.
    assert_eq!(c.upload(&t, id, vec![1, 2, 3]).await.status, StatusCode::CONFLICT);
    // qcow2 records its virtual size.
    let q = c.create(&t, json!({"name": "q", "disk_format": "qcow2", "container_format": "bare"})).await;
    let qid = q["id"].as_str().unwrap();
    assert_eq!(c.upload(&t, qid, qcow2(false)).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v2/images/{qid}"), &t, None).await.json()["virtual_size"], 1u64 << 30);
    // No data holds no format: an empty image (a volume-backed server's snapshot) is
    // active whatever it declares.
    let e = c.create(&t, json!({"name": "e", "disk_format": "qcow2", "container_format": "bare"})).await;
    let eid = e["id"].as_str().unwrap();
    assert_eq!(c.upload(&t, eid, Vec::new()).await.status, StatusCode::NO_CONTENT);
    let shown = c.call("GET", &format!("/v2/images/{eid}"), &t, None).await.json();
    assert_eq!((&shown["status"], &shown["size"]), (&json!("active"), &json!(0)), "{shown}");
    // Delete removes the data.
    assert_eq!(c.call("DELETE", &format!("/v2/images/{id}"), &t, None).await.status, StatusCode::NO_CONTENT);
    assert!(!c.stored_files().contains(&format!("images/{id}")));
    assert_eq!(c.call("GET", &format!("/v2/images/{id}"), &t, None).await.status, StatusCode::NOT_FOUND);
}

async fn unsafe_or_mismatched_data_is_refused(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("bob").await;
    let cases = [
        ("qcow2", qcow2(true), "backing file"),
        ("raw", qcow2(false), "does not match"),
        ("qcow2", data(100_000), "does not match"),
        // A VMDK descriptor without its `# Disk DescriptorFile` header, declared raw:
        // QEMU still probes it as VMDK and opens the host file it names.
        (
            "raw",
            b"version=1\nCID=fffffffe\ncreateType=\"monolithicFlat\"\nRW 1 FLAT \"/etc/shadow\" 0\n".to_vec(),
            "VMDK descriptor",
        ),
        ("raw", b"QED\0 and a backing file".to_vec(), "qed format"),
    ];
    for (fmt, bytes, why) in cases {
        let img = c.create(&t, json!({"name": "x", "disk_format": fmt, "container_format": "bare"})).await;
        let id = img["id"].as_str().unwrap();
        let r = c.upload(&t, id, bytes).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&r.body).contains(why), "{}", String::from_utf8_lossy(&r.body));
        let shown = c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json();
        assert_eq!(shown["status"], "queued", "a refused upload can be retried");
        assert!(shown["checksum"].is_null());
    }
    assert!(c.stored_files().is_empty(), "nothing stored: {:?}", c.stored_files());
    // Formats must be set before data.
    let img = c.create(&t, json!({"name": "noformat"})).await;
    assert_eq!(c.upload(&t, img["id"].as_str().unwrap(), vec![0; 10]).await.status, StatusCode::BAD_REQUEST);
    // Bad attributes.
    let r = c.call("POST", "/v2/images", &t, Some(json!({"disk_format": "floppy"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.call("POST", "/v2/images", &t, Some(json!({"status": "active"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn interrupted_upload_is_killed_and_leaves_nothing(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("carol").await;
    let img = c.create(&t, json!({"name": "cut", "disk_format": "raw", "container_format": "bare"})).await;
    let id = img["id"].as_str().unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(data(100_000)),
        Ok(data(100_000)),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away")),
    ];
    let r = c
        .call_body("PUT", &format!("/v2/images/{id}/file"), &t, Body::from_stream(futures::stream::iter(chunks)), &[])
        .await;
    assert!(r.status.is_client_error());
    assert_eq!(c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json()["status"], "killed");
    assert!(c.stored_files().is_empty(), "{:?}", c.stored_files());
}

async fn quotas_hold_under_concurrency(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("dave").await;
    c.set_limit(&pid, "image_count_total", 3).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (router, t) = (c.image_router.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::post("/v2/images")
                .header("x-auth-token", t)
                .header("content-type", "application/json")
                .body(Body::from(json!({"name": format!("i{i}")}).to_string()))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::PAYLOAD_TOO_LARGE => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 3);
    // Deleting one frees a slot.
    let list = c.call("GET", "/v2/images", &t, None).await.json();
    let first = list["images"][0]["id"].as_str().unwrap().to_string();
    c.call("DELETE", &format!("/v2/images/{first}"), &t, None).await;
    assert_eq!(c.call("POST", "/v2/images", &t, Some(json!({"name": "again"}))).await.status, StatusCode::CREATED);

    // Size quota (MiB): a 1 MiB limit takes one 600 KiB image, not two.
    let (pid2, t2) = c.member("erin").await;
    c.set_limit(&pid2, "image_size_total", 1).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let img = c.create(&t2, json!({"disk_format": "raw", "container_format": "bare"})).await;
        ids.push(img["id"].as_str().unwrap().to_string());
    }
    assert_eq!(c.upload(&t2, &ids[0], data(600 * 1024)).await.status, StatusCode::NO_CONTENT);
    let r = c.upload(&t2, &ids[1], data(600 * 1024)).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(c.call("GET", &format!("/v2/images/{}", ids[1]), &t2, None).await.json()["status"], "queued");
    assert_eq!(c.stored_files(), vec![format!("images/{}", ids[0])]);
}

async fn visibility_and_sharing(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, owner) = c.member("owner").await;
    let (other_pid, other) = c.member("other").await;
    let admin = c.admin().await;
    let private = c.create(&owner, json!({"name": "private", "visibility": "private"})).await;
    let pid = private["id"].as_str().unwrap();
    assert_eq!(c.call("GET", &format!("/v2/images/{pid}"), &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", "/v2/images", &other, None).await.json()["images"].as_array().unwrap().len(), 0);
    // Only admins publicize.
    let r = c
        .call(
            "PATCH",
            &format!("/v2/images/{pid}"),
            &owner,
            Some(json!([{"op": "replace", "path": "/visibility", "value": "public"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c
        .call(
            "PATCH",
            &format!("/v2/images/{pid}"),
            &admin,
            Some(json!([{"op": "replace", "path": "/visibility", "value": "public"}])),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(c.call("GET", "/v2/images", &other, None).await.json()["images"].as_array().unwrap().len(), 1);

    // Shared: visible once a member, listed once accepted.
    let shared = c.create(&owner, json!({"name": "shared"})).await;
    let sid = shared["id"].as_str().unwrap();
    assert_eq!(shared["visibility"], "shared");
    let r = c.call("POST", &format!("/v2/images/{pid}/members"), &owner, Some(json!({"member": other_pid}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a public image has no members");
    let r = c.call("POST", &format!("/v2/images/{sid}/members"), &owner, Some(json!({"member": other_pid}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "pending");
    assert_eq!(c.call("GET", &format!("/v2/images/{sid}"), &other, None).await.status, StatusCode::OK);
    let listed = |v: serde_json::Value| v["images"].as_array().unwrap().iter().any(|i| i["id"] == sid);
    assert!(!listed(c.call("GET", "/v2/images", &other, None).await.json()));
    let r = c
        .call("PUT", &format!("/v2/images/{sid}/members/{other_pid}"), &owner, Some(json!({"status": "accepted"})))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only the member accepts");
    let r = c
        .call("PUT", &format!("/v2/images/{sid}/members/{other_pid}"), &other, Some(json!({"status": "accepted"})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(listed(c.call("GET", "/v2/images", &other, None).await.json()));
    assert!(listed(c.call("GET", "/v2/images?visibility=shared", &other, None).await.json()));
    // The member cannot change or delete it.
    assert_eq!(c.call("DELETE", &format!("/v2/images/{sid}"), &other, None).await.status, StatusCode::FORBIDDEN);

    // Community images are listed only when asked for.
    let comm = c.create(&owner, json!({"name": "comm", "visibility": "community"})).await;
    let cid = comm["id"].as_str().unwrap();
    assert!(!c.call("GET", "/v2/images", &other, None).await.json()["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == cid));
    let listed_comm = c.call("GET", "/v2/images?visibility=community", &other, None).await.json();
    assert_eq!(listed_comm["images"].as_array().unwrap().len(), 1);
    assert_eq!(c.call("GET", &format!("/v2/images/{cid}"), &other, None).await.status, StatusCode::OK);
}

async fn patch_tags_filters_paging_protection(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (frank, t) = c.member("frank").await;
    for i in 0..5 {
        c.create(&t, json!({"name": format!("img{i}"), "tags": if i % 2 == 0 { json!(["even"]) } else { json!([]) }, "arch": format!("a{}", i % 2)})).await;
    }
    for q in ["limit=-1", "sort=name:upward", "sort_key=name&sort_dir=sideways", "sort_dir=up"] {
        assert_eq!(c.call("GET", &format!("/v2/images?{q}"), &t, None).await.status, StatusCode::BAD_REQUEST, "{q}");
    }
    let page = c.call("GET", "/v2/images?limit=2&sort=name:asc", &t, None).await.json();
    let names: Vec<&str> = page["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["img0", "img1"]);
    let next = page["next"].as_str().unwrap().to_string();
    let page2 = c.call("GET", &next, &t, None).await.json();
    assert_eq!(page2["images"][0]["name"], "img2");
    assert_eq!(c.call("GET", "/v2/images?tag=even", &t, None).await.json()["images"].as_array().unwrap().len(), 3);
    assert_eq!(c.call("GET", "/v2/images?arch=a1", &t, None).await.json()["images"].as_array().unwrap().len(), 2);
    assert_eq!(c.call("GET", "/v2/images?name=img3", &t, None).await.json()["images"].as_array().unwrap().len(), 1);
    assert_eq!(c.call("GET", "/v2/images?sort=bogus:asc", &t, None).await.status, StatusCode::BAD_REQUEST);
    let id =
        c.call("GET", "/v2/images?name=img3", &t, None).await.json()["images"][0]["id"].as_str().unwrap().to_string();
    let ids = c.call("GET", &format!("/v2/images?id=in:{id},nope"), &t, None).await.json();
    assert_eq!(ids["images"].as_array().unwrap().len(), 1);

    let ops = json!([{"op": "add", "path": "/os_distro", "value": "debian"}, {"op": "replace", "path": "/name", "value": "renamed"},
                     {"op": "replace", "path": "/protected", "value": true}, {"op": "remove", "path": "/arch"}]);
    let r = c.call("PATCH", &format!("/v2/images/{id}"), &t, Some(ops)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        (v["name"].as_str(), v["os_distro"].as_str(), v["protected"].as_bool()),
        (Some("renamed"), Some("debian"), Some(true))
    );
    assert!(v["arch"].is_null());
    let r = c
        .call("PATCH", &format!("/v2/images/{id}"), &t, Some(json!([{"op": "replace", "path": "/size", "value": 1}])))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        c.call("DELETE", &format!("/v2/images/{id}"), &t, None).await.status,
        StatusCode::FORBIDDEN,
        "protected"
    );
    assert_eq!(c.call("PUT", &format!("/v2/images/{id}/tags/blue"), &t, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json()["tags"], json!(["blue"]));

    // Deactivated images cannot be downloaded by their users.
    let img = c.create(&t, json!({"disk_format": "raw", "container_format": "bare"})).await;
    let iid = img["id"].as_str().unwrap();
    c.upload(&t, iid, data(1000)).await;
    assert_eq!(
        c.call("POST", &format!("/v2/images/{iid}/actions/deactivate"), &t, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("/v2/images/{iid}/file"), &t, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        c.call("POST", &format!("/v2/images/{iid}/actions/reactivate"), &t, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("/v2/images/{iid}/file"), &t, None).await.status, StatusCode::OK);

    // A new owner (the admin's change) takes the image's count and bytes with it.
    let (gina, gt) = c.member("gina").await;
    let to_gina = json!([{"op": "replace", "path": "/owner", "value": gina}]);
    assert_eq!(
        c.call("PATCH", &format!("/v2/images/{iid}"), &t, Some(to_gina.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    let (mine, gina_before) =
        (c.images.store.usage_fetch(&frank).await.unwrap(), c.images.store.usage_fetch(&gina).await.unwrap());
    let admin = c.admin().await;
    let r = c.call("PATCH", &format!("/v2/images/{iid}"), &admin, Some(to_gina)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["owner"], json!(gina));
    assert_eq!(c.images.store.usage_fetch(&gina).await.unwrap(), (gina_before.0 + 1, gina_before.1 + 1000));
    assert_eq!(c.images.store.usage_fetch(&frank).await.unwrap(), (mine.0 - 1, mine.1 - 1000));
    assert_eq!(c.call("GET", &format!("/v2/images/{iid}"), &gt, None).await.status, StatusCode::OK, "gina's now");
}

async fn import_flow(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("gina").await;
    let img = c.create(&t, json!({"name": "imp", "disk_format": "raw", "container_format": "bare"})).await;
    let id = img["id"].as_str().unwrap();
    let r = c.call_body("PUT", &format!("/v2/images/{id}/stage"), &t, Body::from(data(5000)), &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json()["status"], "uploading");
    let r = c
        .call("POST", &format!("/v2/images/{id}/import"), &t, Some(json!({"method": {"name": "glance-direct"}})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // The import task removes the staged file just after the image turns active: wait
    // for both, or the check below races with it on a busy machine.
    for _ in 0..250 {
        let active = c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json()["status"] == "active";
        if active && !c.stored_files().iter().any(|f| f.starts_with("import/")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown = c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json();
    assert_eq!(shown["status"], "active");
    assert_eq!(shown["size"], 5000);
    assert!(!c.stored_files().iter().any(|f| f.starts_with("import/")));
    let r =
        c.call("POST", &format!("/v2/images/{id}/import"), &t, Some(json!({"method": {"name": "web-download"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn reconciler_kills_lapsed_uploads_and_removes_orphans(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("hank").await;
    let img = c.create(&t, json!({"disk_format": "raw", "container_format": "bare"})).await;
    let id = img["id"].as_str().unwrap();
    // As if an upload process died mid-stream: saving, lease in the past.
    use stratus_image::store::ImageStatus;
    c.images
        .store
        .image_transition(id, &[ImageStatus::Queued], ImageStatus::Saving, Some("2000-01-01T00:00:00.000000Z"))
        .await
        .unwrap();
    // A live upload elsewhere keeps its image.
    let live = c.create(&t, json!({"disk_format": "raw", "container_format": "bare"})).await;
    let live_id = live["id"].as_str().unwrap();
    c.images
        .store
        .image_transition(live_id, &[ImageStatus::Queued], ImageStatus::Saving, Some("2999-01-01T00:00:00.000000Z"))
        .await
        .unwrap();
    std::fs::write(c.data_dir.join("images").join("orphan-data"), b"x").unwrap();
    let report = c.images.reconcile().await.unwrap();
    assert_eq!(report.killed, 1);
    assert_eq!(report.orphans_removed, 1);
    assert_eq!(c.call("GET", &format!("/v2/images/{id}"), &t, None).await.json()["status"], "killed");
    assert_eq!(c.call("GET", &format!("/v2/images/{live_id}"), &t, None).await.json()["status"], "saving");
    // A second pass has nothing to do.
    assert_eq!(c.images.reconcile().await.unwrap(), Default::default());
}

async fn sql_paging_matches_the_general_path(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("ivy").await;
    let (_, other) = c.member("jack").await;
    let admin = c.admin().await;
    for i in 0..4 {
        c.create(&t, json!({"name": format!("own{i}")})).await;
    }
    c.create(&t, json!({"name": "hidden", "os_hidden": true})).await;
    let p = c.create(&other, json!({"name": "pub"})).await;
    c.call(
        "PATCH",
        &format!("/v2/images/{}", p["id"].as_str().unwrap()),
        &admin,
        Some(json!([{"op": "replace", "path": "/visibility", "value": "public"}])),
    )
    .await;
    c.create(&other, json!({"name": "community", "visibility": "community"})).await;
    c.create(&other, json!({"name": "private", "visibility": "private"})).await;
    for (name, accept) in [("accepted", true), ("pending", false)] {
        let s = c.create(&other, json!({"name": name})).await;
        let sid = s["id"].as_str().unwrap();
        c.call("POST", &format!("/v2/images/{sid}/members"), &other, Some(json!({"member": pid}))).await;
        if accept {
            c.call("PUT", &format!("/v2/images/{sid}/members/{pid}"), &t, Some(json!({"status": "accepted"}))).await;
        }
    }
    for token in [&t, &admin] {
        let walk = |extra: &'static str| {
            let (c, token) = (&c, token.clone());
            async move {
                let mut names = Vec::new();
                let mut url = format!("/v2/images?limit=2{extra}");
                loop {
                    let page = c.call("GET", &url, &token, None).await.json();
                    names.extend(
                        page["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()),
                    );
                    match page["next"].as_str() {
                        Some(n) => url = n.to_string(),
                        None => break,
                    }
                }
                names
            }
        };
        let fast = walk("").await;
        let general = walk("&sort=created_at:desc").await;
        assert_eq!(fast, general);
        assert!(!fast.iter().any(|n| n == "hidden" || n == "community"), "{fast:?}");
        if token == &t {
            assert_eq!(fast.len(), 6, "4 own, public, accepted: {fast:?}");
        } else {
            assert_eq!(fast.len(), 8, "admins see every image but hidden and community ones: {fast:?}");
        }
    }
}

#[tokio::test]
async fn sql_paging() {
    each_engine!(sql_paging_matches_the_general_path);
}

#[tokio::test]
async fn data_round_trip() {
    each_engine!(round_trip);
}
#[tokio::test]
async fn format_safety() {
    each_engine!(unsafe_or_mismatched_data_is_refused);
}
#[tokio::test]
async fn interrupted_upload() {
    each_engine!(interrupted_upload_is_killed_and_leaves_nothing);
}
#[tokio::test]
async fn quotas() {
    each_engine!(quotas_hold_under_concurrency);
}
#[tokio::test]
async fn sharing() {
    each_engine!(visibility_and_sharing);
}
#[tokio::test]
async fn patching_and_listing() {
    each_engine!(patch_tags_filters_paging_protection);
}
#[tokio::test]
async fn import() {
    each_engine!(import_flow);
}
#[tokio::test]
async fn reconciler() {
    each_engine!(reconciler_kills_lapsed_uploads_and_removes_orphans);
}
