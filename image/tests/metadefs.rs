//! The metadata definitions catalog in-process against a real database: namespaces
//! with their objects, properties, tags and resource type associations; who reads and
//! who changes them; protection; paging; bad input changing nothing.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use stratus_common::db::Engine;
use support::*;

const NS: &str = "/v2/metadefs/namespaces";

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect()
}

async fn catalog_round_trip(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let types = c.call("GET", "/v2/metadefs/resource_types", &admin, None).await.json();
    assert!(names(&types, "resource_types").contains(&"OS::Glance::Image".to_string()), "{types}");

    // A namespace born with everything in it.
    let r = c
        .call(
            "POST",
            NS,
            &admin,
            Some(json!({
                "namespace": "OS::Compute::Test", "display_name": "Test", "description": "d",
                "visibility": "public", "protected": true,
                "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}, {"name": "OS::Custom::Thing"}],
                "properties": {"cpu_policy": {"title": "CPU policy", "type": "string", "enum": ["shared", "dedicated"]}},
                "objects": [{"name": "Topology", "required": ["sockets"], "properties": {"sockets": {"title": "Sockets", "type": "integer", "minimum": 1}}}],
                "tags": [{"name": "fast"}, {"name": "small"}],
            })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ns = r.json();
    assert_eq!(ns["self"], "/v2/metadefs/namespaces/OS%3A%3ACompute%3A%3ATest");
    assert_eq!(ns["schema"], "/v2/schemas/metadefs/namespace");
    assert_eq!(ns["properties"]["cpu_policy"]["enum"], json!(["shared", "dedicated"]));
    assert_eq!(ns["objects"][0]["properties"]["sockets"]["minimum"], 1);
    assert_eq!(ns["tags"], json!([{"name": "fast"}, {"name": "small"}]));
    assert_eq!(ns["resource_type_associations"][0]["prefix"], "hw_");
    let types = c.call("GET", "/v2/metadefs/resource_types", &admin, None).await.json();
    assert!(names(&types, "resource_types").contains(&"OS::Custom::Thing".to_string()), "a new type is registered");

    // Shown for a resource type, property names carry its prefix.
    let path = format!("{NS}/OS::Compute::Test");
    let shown = c.call("GET", &format!("{path}?resource_type=OS::Glance::Image"), &admin, None).await.json();
    assert!(shown["properties"].get("hw_cpu_policy").is_some(), "{shown}");
    assert!(shown["objects"][0]["properties"].get("hw_sockets").is_some(), "{shown}");

    // Protected: neither it nor anything in it can be deleted.
    assert_eq!(c.call("DELETE", &path, &admin, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("DELETE", &format!("{path}/tags/fast"), &admin, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("DELETE", &format!("{path}/objects"), &admin, None).await.status, StatusCode::FORBIDDEN);
    // PUT replaces: unprotected, private, renamed.
    let r = c.call("PUT", &path, &admin, Some(json!({"namespace": "OS::Compute::Renamed", "description": "e"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let up = r.json();
    assert_eq!((up["visibility"].as_str(), up["protected"].as_bool()), (Some("private"), Some(false)));
    assert_eq!(c.call("GET", &path, &admin, None).await.status, StatusCode::NOT_FOUND);
    let path = format!("{NS}/OS::Compute::Renamed");
    let shown = c.call("GET", &path, &admin, None).await.json();
    assert_eq!(shown["tags"].as_array().unwrap().len(), 2, "the contents follow the rename: {shown}");

    // Objects: create, rename, duplicate, delete.
    let objs = format!("{path}/objects");
    let r = c.call("POST", &objs, &admin, Some(json!({"name": "Second", "description": "x"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["self"], "/v2/metadefs/namespaces/OS%3A%3ACompute%3A%3ARenamed/objects/Second");
    assert_eq!(c.call("POST", &objs, &admin, Some(json!({"name": "Second"}))).await.status, StatusCode::CONFLICT);
    let r = c.call("PUT", &format!("{objs}/Second"), &admin, Some(json!({"name": "Third"}))).await;
    assert_eq!(r.json()["name"], "Third");
    let r = c.call("PUT", &format!("{objs}/Third"), &admin, Some(json!({"name": "Topology"}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "renaming onto another object");
    let list = c.call("GET", &objs, &admin, None).await.json();
    assert_eq!(names(&list, "objects"), ["Topology", "Third"]);
    assert_eq!(c.call("DELETE", &format!("{objs}/Third"), &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("{objs}/Third"), &admin, None).await.status, StatusCode::NOT_FOUND);

    // Properties: a map by name; create, show, rename, delete.
    let props = format!("{path}/properties");
    let r = c
        .call(
            "POST",
            &props,
            &admin,
            Some(json!({"name": "hv", "title": "Hypervisor", "type": "string", "enum": ["qemu", "kvm"]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["title"], "Hypervisor");
    let list = c.call("GET", &props, &admin, None).await.json();
    assert_eq!(list["properties"]["hv"]["enum"], json!(["qemu", "kvm"]));
    assert!(list["properties"].get("cpu_policy").is_some());
    let r = c
        .call(
            "PUT",
            &format!("{props}/hv"),
            &admin,
            Some(json!({"name": "hv2", "title": "Hypervisor type", "type": "string"})),
        )
        .await;
    assert_eq!(r.json()["name"], "hv2");
    assert_eq!(c.call("GET", &format!("{props}/hv2"), &admin, None).await.json()["title"], "Hypervisor type");
    assert_eq!(c.call("DELETE", &format!("{props}/hv2"), &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("DELETE", &format!("{props}/hv2"), &admin, None).await.status, StatusCode::NOT_FOUND);

    // Tags: several at once replace, append adds; one by path; rename; delete all.
    let tags = format!("{path}/tags");
    let r = c.call("POST", &tags, &admin, Some(json!({"tags": [{"name": "a"}, {"name": "b"}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(names(&c.call("GET", &tags, &admin, None).await.json(), "tags"), ["a", "b"]);
    let dup = c.call("POST", &tags, &admin, Some(json!({"tags": [{"name": "c"}, {"name": "c"}]}))).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(
        names(&c.call("GET", &tags, &admin, None).await.json(), "tags"),
        ["a", "b"],
        "a refused bulk changes nothing"
    );
    let r = c
        .call_body(
            "POST",
            &tags,
            &admin,
            axum::body::Body::from(json!({"tags": [{"name": "c"}]}).to_string()),
            &[("content-type", "application/json"), ("x-openstack-append", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let again = c
        .call_body(
            "POST",
            &tags,
            &admin,
            axum::body::Body::from(json!({"tags": [{"name": "a"}]}).to_string()),
            &[("content-type", "application/json"), ("x-openstack-append", "true")],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.text().contains("'a'"), "the refusal names the tag: {}", again.text());
    assert_eq!(c.call("POST", &format!("{tags}/d"), &admin, None).await.status, StatusCode::CREATED);
    assert_eq!(c.call("POST", &format!("{tags}/d"), &admin, None).await.status, StatusCode::CONFLICT);
    let r = c.call("PUT", &format!("{tags}/d"), &admin, Some(json!({"name": "e"}))).await;
    assert_eq!(r.json()["name"], "e");
    assert_eq!(names(&c.call("GET", &tags, &admin, None).await.json(), "tags"), ["a", "b", "c", "e"]);
    assert_eq!(c.call("DELETE", &tags, &admin, None).await.status, StatusCode::NO_CONTENT);
    assert!(names(&c.call("GET", &tags, &admin, None).await.json(), "tags").is_empty());

    // Resource type associations.
    let rts = format!("{path}/resource_types");
    let r = c.call("POST", &rts, &admin, Some(json!({"name": "OS::Cinder::Volume", "prefix": "v_"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["prefix"], "v_");
    assert_eq!(
        c.call("POST", &rts, &admin, Some(json!({"name": "OS::Cinder::Volume"}))).await.status,
        StatusCode::CONFLICT
    );
    let list = c.call("GET", &rts, &admin, None).await.json();
    assert_eq!(names(&list, "resource_type_associations").len(), 3);
    assert_eq!(
        c.call("DELETE", &format!("{rts}/OS::Cinder::Volume"), &admin, None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.call("DELETE", &format!("{rts}/OS::Cinder::Volume"), &admin, None).await.status,
        StatusCode::NOT_FOUND
    );

    // Deleting the namespace takes its contents.
    assert_eq!(c.call("DELETE", &path, &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &objs, &admin, None).await.status, StatusCode::NOT_FOUND);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM image_metadef_items").fetch_one(&c.id.db.pool).await.unwrap();
    assert_eq!(n, 0, "nothing is left behind");
}

async fn readers_and_bad_input(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (alice_project, alice) = c.member("alice").await;
    let (_, bob) = c.member("bob").await;
    // Members read but never write.
    let r = c.call("POST", NS, &alice, Some(json!({"namespace": "mine"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (name, vis, owner) in
        [("pub", "public", None), ("priv-admin", "private", None), ("priv-alice", "private", Some(&alice_project))]
    {
        let mut body = json!({"namespace": name, "visibility": vis});
        if let Some(o) = owner {
            body["owner"] = json!(o);
        }
        assert_eq!(c.call("POST", NS, &admin, Some(body)).await.status, StatusCode::CREATED);
    }
    let seen = |list: Value| -> Vec<String> {
        let mut v: Vec<String> = list["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["namespace"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(seen(c.call("GET", NS, &alice, None).await.json()), ["priv-alice", "pub"]);
    assert_eq!(seen(c.call("GET", NS, &bob, None).await.json()), ["pub"]);
    assert_eq!(seen(c.call("GET", NS, &admin, None).await.json()), ["priv-admin", "priv-alice", "pub"]);
    assert_eq!(seen(c.call("GET", &format!("{NS}?visibility=private"), &alice, None).await.json()), ["priv-alice"]);
    // Another project's private namespace is not there, whatever the path.
    for path in ["", "/objects", "/properties", "/tags", "/resource_types"] {
        let r = c.call("GET", &format!("{NS}/priv-alice{path}"), &bob, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(c.call("GET", &format!("{NS}/priv-alice/tags"), &alice, None).await.status, StatusCode::OK);
    assert_eq!(c.call("DELETE", &format!("{NS}/priv-alice"), &bob, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &format!("{NS}/pub"), &bob, None).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("POST", &format!("{NS}/pub/tags/x"), &alice, None).await.status, StatusCode::FORBIDDEN);
    let r =
        c.call("PUT", &format!("{NS}/pub"), &alice, Some(json!({"namespace": "pub", "visibility": "public"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Bad input is a 400 and leaves nothing.
    for body in [
        json!({"namespace": ""}),
        json!({"namespace": "x".repeat(81)}),
        json!({"namespace": "v", "visibility": "shared"}),
        json!({"namespace": "v", "colour": "red"}),
        json!({"namespace": "v", "properties": {"p": {"title": "P", "type": "text"}}}),
        json!({"namespace": "v", "objects": [{"name": "o", "properties": {"p": {"type": "string"}}}]}),
        json!({"namespace": "v", "protected": "yes"}),
    ] {
        let r = c.call("POST", NS, &admin, Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
    }
    let r = c.call("POST", NS, &admin, Some(json!({"namespace": "v", "tags": [{"name": "t"}, {"name": "t"}]}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(c.call("GET", &format!("{NS}/v"), &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("POST", NS, &admin, Some(json!({"namespace": "pub"}))).await.status, StatusCode::CONFLICT);
    let r = c.call("POST", &format!("{NS}/pub/properties"), &admin, Some(json!({"name": "p", "type": "string"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a property needs a title");
    assert_eq!(c.call("GET", &format!("{NS}/pub/widgets"), &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("{NS}?sort_dir=up"), &admin, None).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("GET", &format!("{NS}?limit=0"), &admin, None).await.status, StatusCode::BAD_REQUEST);

    // Paging: `next` carries the marker.
    let page = c.call("GET", &format!("{NS}?limit=2&sort_key=namespace&sort_dir=asc"), &admin, None).await.json();
    assert_eq!(seen(page.clone()), ["priv-admin", "priv-alice"]);
    let next = page["next"].as_str().unwrap().to_string();
    assert!(next.contains("marker=priv-alice"), "{next}");
    let rest = c.call("GET", &next, &admin, None).await.json();
    assert_eq!(seen(rest.clone()), ["pub"]);
    assert!(rest.get("next").is_none());
    c.call("POST", &format!("{NS}/pub/resource_types"), &admin, Some(json!({"name": "OS::Nova::Flavor"}))).await;
    let by_type =
        c.call("GET", &format!("{NS}?resource_types=OS::Nova::Flavor,OS::Nova::Server"), &bob, None).await.json();
    assert_eq!(seen(by_type.clone()), ["pub"]);
    assert_eq!(by_type["namespaces"][0]["resource_type_associations"][0]["name"], "OS::Nova::Flavor");

    // Every schema the clients ask for.
    for (path, name) in [
        ("namespace", "namespace"),
        ("namespaces", "namespaces"),
        ("object", "object"),
        ("objects", "objects"),
        ("property", "property"),
        ("properties", "properties"),
        ("resource_type", "resource_type_association"),
        ("resource_types", "resource_type_associations"),
        ("tag", "tag"),
        ("tags", "tags"),
    ] {
        let s = c.call("GET", &format!("/v2/schemas/metadefs/{path}"), &bob, None).await.json();
        assert_eq!(s["name"], name);
    }
    assert_eq!(c.call("GET", "/v2/schemas/metadefs/widget", &bob, None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metadefs_round_trip() {
    each_engine!(catalog_round_trip);
}

#[tokio::test]
async fn metadefs_readers_and_bad_input() {
    each_engine!(readers_and_bad_input);
}
