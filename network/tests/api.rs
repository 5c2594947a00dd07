//! The network API in-process, on SQLite and (when configured) PostgreSQL.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::collections::HashSet;
use stratus_common::db::Engine;
use stratus_test_support::each_engine;
use support::Cloud;

async fn networks_subnets_ports(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("alice").await;
    let mut events = c.bus.subscribe("network.port.create.end").await.unwrap();

    let n = c.create(&t, "networks", "network", json!({"name": "net1", "admin_state_up": true})).await;
    let nid = n["id"].as_str().unwrap().to_string();
    assert_eq!(n["mtu"], 1450);
    assert_eq!(n["provider:network_type"], "vxlan");
    assert!(n["provider:segmentation_id"].as_i64().unwrap() > 0);
    assert_eq!(n["revision_number"], 1);
    assert_eq!(n["tenant_id"], n["project_id"]);
    assert!(n["created_at"].as_str().unwrap().ends_with('Z'));

    let s = c
        .create(
            &t,
            "subnets",
            "subnet",
            json!({"network_id": nid, "ip_version": 4, "cidr": "192.168.1.0/24", "name": "sub1"}),
        )
        .await;
    assert_eq!(s["gateway_ip"], "192.168.1.1");
    assert_eq!(s["allocation_pools"], json!([{"start": "192.168.1.2", "end": "192.168.1.254"}]));
    assert_eq!(s["dns_nameservers"], json!([]));
    assert_eq!(s["host_routes"], json!([]));
    assert_eq!(s["enable_dhcp"], true);
    let sid = s["id"].as_str().unwrap().to_string();
    let shown = c.call("GET", &format!("/v2.0/networks/{nid}"), &t, None).await;
    assert_eq!(shown.body["network"]["subnets"], json!([sid]));

    let v6 = c
        .create(&t, "subnets", "subnet", json!({"network_id": nid, "ip_version": 6, "cidr": "fd00:1::/64", "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}))
        .await;
    assert_eq!(v6["gateway_ip"], "fd00:1::1");

    let p = c.create(&t, "ports", "port", json!({"network_id": nid, "name": "p1", "device_id": "vm-1"})).await;
    assert_eq!(p["status"], "DOWN");
    assert_eq!(p["binding:vif_type"], "unbound");
    assert!(p["mac_address"].as_str().unwrap().starts_with("fa:16:3e:"));
    let fixed = p["fixed_ips"].as_array().unwrap();
    assert_eq!(fixed.len(), 2, "one IPv4 and one IPv6 address: {p}");
    assert_eq!(p["security_groups"].as_array().unwrap().len(), 1, "the default group");
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), events.next()).await.unwrap().unwrap();
    let ev: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(ev["id"], p["id"]);

    // A chosen address; the same address again is a conflict.
    let fixed_ip = json!([{"subnet_id": sid, "ip_address": "192.168.1.50"}]);
    let p2 = c.create(&t, "ports", "port", json!({"network_id": nid, "fixed_ips": fixed_ip})).await;
    assert_eq!(p2["fixed_ips"][0]["ip_address"], "192.168.1.50");
    let dup =
        c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": nid, "fixed_ips": fixed_ip}}))).await;
    assert_eq!((dup.status, dup.kind()), (StatusCode::CONFLICT, "IpAddressAlreadyAllocated"));
    let gw = c
        .call(
            "POST",
            "/v2.0/ports",
            &t,
            Some(json!({"port": {"network_id": nid, "fixed_ips": [{"ip_address": "192.168.1.1"}]}})),
        )
        .await;
    assert_eq!(gw.status, StatusCode::CONFLICT, "the gateway is not for guests");

    // Filters, fields, sorting and pages.
    let r = c.call("GET", "/v2.0/ports?device_id=vm-1&fields=id&fields=name", &t, None).await;
    assert_eq!(r.body["ports"], json!([{"id": p["id"], "name": "p1"}]));
    let r = c.call("GET", "/v2.0/ports?fixed_ips=ip_address%3D192.168.1.50", &t, None).await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
    let r = c.call("GET", "/v2.0/ports?limit=1&sort_key=name&sort_dir=asc", &t, None).await;
    assert_eq!(r.body["ports"].as_array().unwrap().len(), 1);
    let next = r.body["ports_links"][0]["href"].as_str().unwrap().trim_start_matches("http://network").to_string();
    let r2 = c.call("GET", &next, &t, None).await;
    assert_eq!(r2.body["ports"].as_array().unwrap().len(), 1);
    assert_ne!(r2.body["ports"][0]["id"], r.body["ports"][0]["id"]);
    assert!(r2.body.get("ports_links").is_none());

    // Updates: If-Match on the revision, binding, status by admin.
    let url = format!("/v2.0/ports/{}", p["id"].as_str().unwrap());
    let stale =
        c.call_with("PUT", &url, &t, Some(json!({"port": {"name": "x"}})), &[("if-match", "revision_number=7")]).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let ok = c
        .call_with("PUT", &url, &t, Some(json!({"port": {"name": "renamed"}})), &[("if-match", "revision_number=1")])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["port"]["revision_number"], 2);
    let denied = c.call("PUT", &url, &t, Some(json!({"port": {"binding:host_id": "host-1"}}))).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let admin = c.admin().await;
    let bound =
        c.call("PUT", &url, &admin, Some(json!({"port": {"binding:host_id": "host-1", "status": "ACTIVE"}}))).await;
    assert_eq!(bound.body["port"]["binding:vif_type"], "bridge");
    assert_eq!(bound.body["port"]["status"], "ACTIVE");
    // Only Neutron's statuses, on update and on create alike.
    let odd = c.call("PUT", &url, &admin, Some(json!({"port": {"status": "BANANA"}}))).await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    let net_id = bound.body["port"]["network_id"].as_str().unwrap().to_string();
    let odd =
        c.call("POST", "/v2.0/ports", &admin, Some(json!({"port": {"network_id": net_id, "status": "active"}}))).await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.body);
    assert_eq!(c.call("GET", &url, &admin, None).await.body["port"]["status"], "ACTIVE", "unchanged");

    // Changing the fixed IPs moves the allocation.
    let url2 = format!("/v2.0/ports/{}", p2["id"].as_str().unwrap());
    let moved = c
        .call(
            "PUT",
            &url2,
            &t,
            Some(json!({"port": {"fixed_ips": [{"subnet_id": sid, "ip_address": "192.168.1.60"}]}})),
        )
        .await;
    assert_eq!(moved.body["port"]["fixed_ips"][0]["ip_address"], "192.168.1.60", "{}", moved.body);
    let reuse = c
        .create(
            &t,
            "ports",
            "port",
            json!({"network_id": nid, "fixed_ips": [{"subnet_id": sid, "ip_address": "192.168.1.50"}]}),
        )
        .await;
    assert_eq!(reuse["fixed_ips"][0]["ip_address"], "192.168.1.50", "the released address is free again");

    // Tags.
    let tag = c.call("PUT", &format!("/v2.0/networks/{nid}/tags"), &t, Some(json!({"tags": ["blue", "green"]}))).await;
    assert_eq!(tag.status, StatusCode::OK);
    assert_eq!(c.call("PUT", &format!("/v2.0/networks/{nid}/tags/red"), &t, None).await.status, StatusCode::CREATED);
    let tagged = c.call("GET", "/v2.0/networks?tags=blue,red", &t, None).await;
    assert_eq!(tagged.body["networks"].as_array().unwrap().len(), 1);
    let none = c.call("GET", "/v2.0/networks?not-tags-any=green", &t, None).await;
    assert_eq!(none.body["networks"].as_array().unwrap().len(), 0);

    // Deleting: ports first, then the network (which takes its subnets).
    let busy = c.call("DELETE", &format!("/v2.0/networks/{nid}"), &t, None).await;
    assert_eq!((busy.status, busy.kind()), (StatusCode::CONFLICT, "NetworkInUse"));
    let sub_busy = c.call("DELETE", &format!("/v2.0/subnets/{sid}"), &t, None).await;
    assert_eq!((sub_busy.status, sub_busy.kind()), (StatusCode::CONFLICT, "SubnetInUse"));
    let ports = c.call("GET", "/v2.0/ports", &t, None).await;
    for p in ports.body["ports"].as_array().unwrap() {
        let r = c.call("DELETE", &format!("/v2.0/ports/{}", p["id"].as_str().unwrap()), &t, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(c.call("DELETE", &format!("/v2.0/networks/{nid}"), &t, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v2.0/subnets/{sid}"), &t, None).await.status, StatusCode::NOT_FOUND);
    let usage = c.network.store.usage(ev["project_id"].as_str().unwrap()).await.unwrap();
    assert_eq!((usage["network"], usage["subnet"], usage["port"]), (0, 0, 0), "{usage:?}");
}

async fn bad_input_changes_nothing(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("bob").await;
    let admin = c.admin().await;
    let (nid, sid) = c.net_with_subnet(&t, "n", "10.0.0.0/24").await;
    let cases = [
        ("subnets", json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/33", "ip_version": 4}}), "InvalidInput"),
        ("subnets", json!({"subnet": {"network_id": nid, "cidr": "10.1.0.5/24", "ip_version": 4}}), "InvalidInput"),
        ("subnets", json!({"subnet": {"network_id": nid, "cidr": "banana", "ip_version": 4}}), "InvalidInput"),
        (
            "subnets",
            json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/24", "gateway_ip": "10.2.0.1"}}),
            "InvalidInput",
        ),
        ("subnets", json!({"subnet": {"network_id": nid, "cidr": "10.0.0.128/25"}}), "InvalidInput"),
        (
            "subnets",
            json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/24", "allocation_pools": [{"start": "10.1.0.10", "end": "10.9.0.1"}]}}),
            "InvalidAllocationPool",
        ),
        (
            "subnets",
            json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/24", "allocation_pools": [{"start": "10.1.0.1", "end": "10.1.0.9"}]}}),
            "GatewayConflictWithAllocationPools",
        ),
        ("subnets", json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/24", "ip_version": 6}}), "BadRequest"),
        (
            "subnets",
            json!({"subnet": {"network_id": nid, "cidr": "10.1.0.0/24", "dns_nameservers": ["nope"]}}),
            "BadRequest",
        ),
        ("networks", json!({"network": {"name": "x", "colour": "red"}}), "BadRequest"),
        ("networks", json!({"network": {"name": "x", "mtu": 9000}}), "BadRequest"),
        ("networks", json!({"net": {}}), "BadRequest"),
        ("ports", json!({"port": {"network_id": nid, "mac_address": "01:00:5e:00:00:01"}}), "BadRequest"),
        (
            "ports",
            json!({"port": {"network_id": nid, "fixed_ips": [{"subnet_id": sid, "ip_address": "10.9.9.9"}]}}),
            "InvalidIpForSubnet",
        ),
        ("ports", json!({"port": {"network_id": nid, "port_security_enabled": false, "security_groups": []}}), ""),
    ];
    for (coll, body, kind) in cases {
        let before = c.call("GET", &format!("/v2.0/{coll}"), &t, None).await.body;
        let r = c.call("POST", &format!("/v2.0/{coll}"), &t, Some(body.clone())).await;
        if kind.is_empty() {
            assert_eq!(r.status, StatusCode::CREATED, "{body} → {}", r.body);
            continue;
        }
        assert!(r.status.is_client_error(), "{body} → {} {}", r.status, r.body);
        assert_eq!(r.kind(), kind, "{body} → {}", r.body);
        assert!(!r.body["NeutronError"]["message"].as_str().unwrap().is_empty());
        let after = c.call("GET", &format!("/v2.0/{coll}"), &t, None).await.body;
        assert_eq!(before, after, "{body} changed something");
    }
    let malformed = c.call("POST", "/v2.0/networks", &t, None).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.body["NeutronError"].is_object());
    // Only admins make provider, shared or external networks.
    let r = c.call("POST", "/v2.0/networks", &t, Some(json!({"network": {"router:external": true}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A member can't put a port on an external network it does not own.
    let ext = c
        .create(
            &admin,
            "networks",
            "network",
            json!({"name": "public", "router:external": true, "provider:network_type": "flat"}),
        )
        .await;
    assert_eq!(ext["mtu"], 1500);
    assert_eq!(ext["provider:physical_network"], "external");
    let r = c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": ext["id"]}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Readers read, never write.
    let (_, reader) = c.user_with("rita", "reader").await;
    let r = c.call("POST", "/v2.0/networks", &reader, Some(json!({"network": {"name": "r"}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", "/v2.0/networks", &reader, None).await.status, StatusCode::OK);
    // No token, no answer.
    let r = c.call("GET", "/v2.0/networks", "not-a-token", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn ipam_under_concurrency(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("carol").await;
    let (nid, _) = c.net_with_subnet(&t, "big", "10.10.0.0/24").await;
    let futures: Vec<_> =
        (0..100).map(|_| c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": nid}})))).collect();
    let results = futures::future::join_all(futures).await;
    let mut ips = HashSet::new();
    let mut macs = HashSet::new();
    for r in &results {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ips.insert(r.body["port"]["fixed_ips"][0]["ip_address"].as_str().unwrap().to_string());
        macs.insert(r.body["port"]["mac_address"].as_str().unwrap().to_string());
    }
    assert_eq!((ips.len(), macs.len()), (100, 100), "every port has its own address and MAC");

    // A /29 has 5 addresses for ports: the sixth and later get 409 and leave no port.
    let (small, _) = c.net_with_subnet(&t, "small", "10.20.0.0/29").await;
    let futures: Vec<_> =
        (0..8).map(|_| c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": small}})))).collect();
    let results = futures::future::join_all(futures).await;
    let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let exhausted =
        results.iter().filter(|r| r.status == StatusCode::CONFLICT && r.kind() == "IpAddressGenerationFailure").count();
    assert_eq!((created, exhausted), (5, 3), "{:?}", results.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
    let listed = c.call("GET", &format!("/v2.0/ports?network_id={small}"), &t, None).await;
    assert_eq!(listed.body["ports"].as_array().unwrap().len(), 5);
    assert_eq!(ports_used(&c, &pid, &t).await, 105, "failed creates count nothing");

    // Over the port quota: 2 of 5 fit; the others leave no port, no address, no count,
    // so once the limit is raised the subnet's last 3 addresses are there to take.
    c.set_limit(&pid, "port", 107).await;
    let (last, _) = c.net_with_subnet(&t, "last", "10.30.0.0/29").await;
    let make = || c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": last}})));
    let results = futures::future::join_all((0..5).map(|_| make())).await;
    let created = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let over = results.iter().filter(|r| r.status == StatusCode::CONFLICT && r.kind() == "OverQuota").count();
    assert_eq!((created, over), (2, 3), "{:?}", results.iter().map(|r| r.body.to_string()).collect::<Vec<_>>());
    assert_eq!(ports_used(&c, &pid, &t).await, 107);
    c.set_limit(&pid, "port", 1000).await;
    for _ in 0..3 {
        let r = make().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    assert_eq!(make().await.kind(), "IpAddressGenerationFailure");
    assert_eq!(ports_used(&c, &pid, &t).await, 110);
}

/// The project's count of ports against its quota.
async fn ports_used(c: &Cloud, project: &str, token: &str) -> Value {
    c.call("GET", &format!("/v2.0/quotas/{project}/details"), token, None).await.body["quota"]["port"]["used"].clone()
}

async fn quotas_hold_under_concurrency(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("dave").await;
    c.set_limit(&pid, "network", 3).await;
    let futures: Vec<_> = (0..10)
        .map(|i| c.call("POST", "/v2.0/networks", &t, Some(json!({"network": {"name": format!("n{i}")}}))))
        .collect();
    let results = futures::future::join_all(futures).await;
    let ok = results.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let over = results.iter().filter(|r| r.status == StatusCode::CONFLICT && r.kind() == "OverQuota").count();
    assert_eq!((ok, over), (3, 7));
    let q = c.call("GET", &format!("/v2.0/quotas/{pid}"), &t, None).await;
    assert_eq!(q.body["quota"]["network"], 3);
    assert_eq!(q.body["quota"]["port"], 500);
    let d = c.call("GET", &format!("/v2.0/quotas/{pid}/details"), &t, None).await;
    assert_eq!(d.body["quota"]["network"], json!({"limit": 3, "used": 3, "reserved": 0}));
    // Deleting frees quota.
    let list = c.call("GET", "/v2.0/networks", &t, None).await;
    let first = list.body["networks"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(c.call("DELETE", &format!("/v2.0/networks/{first}"), &t, None).await.status, StatusCode::NO_CONTENT);
    c.create(&t, "networks", "network", json!({"name": "again"})).await;
    // Someone else's quota is not yours to read; quota writes are for admins.
    let (other, _) = c.member("erin").await;
    assert_eq!(c.call("GET", &format!("/v2.0/quotas/{other}"), &t, None).await.status, StatusCode::FORBIDDEN);
    let r = c.call("PUT", &format!("/v2.0/quotas/{pid}"), &t, Some(json!({"quota": {"network": 50}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

async fn projects_are_isolated(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, a) = c.member("proj-a").await;
    let (_, b) = c.member("proj-b").await;
    let admin = c.admin().await;
    let (nid, _) = c.net_with_subnet(&a, "private", "10.0.0.0/24").await;
    let port = c.create(&a, "ports", "port", json!({"network_id": nid})).await;
    let sg = c.create(&a, "security-groups", "security_group", json!({"name": "web"})).await;
    let sgid = sg["id"].as_str().unwrap();

    assert_eq!(c.call("GET", &format!("/v2.0/networks/{nid}"), &b, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", "/v2.0/networks", &b, None).await.body["networks"], json!([]));
    assert_eq!(c.call("GET", "/v2.0/subnets", &b, None).await.body["subnets"], json!([]));
    assert_eq!(c.call("GET", "/v2.0/ports", &b, None).await.body["ports"], json!([]));
    assert_eq!(
        c.call("GET", &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()), &b, None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = c.call("POST", "/v2.0/ports", &b, Some(json!({"port": {"network_id": nid}}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "can't attach to another project's network");
    let r = c.call("DELETE", &format!("/v2.0/networks/{nid}"), &b, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("/v2.0/security-groups/{sgid}"), &b, None).await.status, StatusCode::NOT_FOUND);
    let r = c
        .call(
            "POST",
            "/v2.0/security-group-rules",
            &b,
            Some(json!({"security_group_rule": {"security_group_id": sgid, "direction": "ingress"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let (bnet, _) = c.net_with_subnet(&b, "bnet", "10.0.0.0/24").await;
    let r =
        c.call("POST", "/v2.0/ports", &b, Some(json!({"port": {"network_id": bnet, "security_groups": [sgid]}}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "can't use another project's security group");
    // A shared network is visible and usable by everyone.
    let shared = c.create(&admin, "networks", "network", json!({"name": "sharednet1", "shared": true})).await;
    c.create(&admin, "subnets", "subnet", json!({"network_id": shared["id"], "cidr": "172.16.0.0/24"})).await;
    let seen = c.call("GET", "/v2.0/networks?name=sharednet1", &b, None).await;
    assert_eq!(seen.body["networks"].as_array().unwrap().len(), 1);
    let p = c.create(&b, "ports", "port", json!({"network_id": shared["id"]})).await;
    assert_eq!(p["fixed_ips"].as_array().unwrap().len(), 1);
    // The admin sees everything by id.
    assert_eq!(c.call("GET", &format!("/v2.0/networks/{nid}"), &admin, None).await.status, StatusCode::OK);
}

/// What a hostile member of project B tried against project A's router, and more: a
/// port naming A's router as its device never joins it (Neutron keeps router interfaces
/// apart from the ports' writable attributes), and members cannot bind ports or write
/// address pairs that the host firewall would choke on.
async fn hostile_tenant(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (_, a) = c.member("victim").await;
    let (bproject, b) = c.member("mallory").await;
    let public = c.public_network(&admin).await;
    let pubid = public["id"].as_str().unwrap().to_string();
    let (_, asub) = c.net_with_subnet(&a, "a-net", "10.1.0.0/24").await;
    let body = json!({"name": "a-router", "external_gateway_info": {"network_id": pubid}});
    let router = c.create(&a, "routers", "router", body).await;
    let rid = router["id"].as_str().unwrap().to_string();
    let add = format!("/v2.0/routers/{rid}/add_router_interface");
    assert_eq!(c.call("PUT", &add, &a, Some(json!({"subnet_id": asub}))).await.status, StatusCode::OK);
    let (bnet, bsub) = c.net_with_subnet(&b, "b-net", "10.2.0.0/24").await;

    // Plugging B's network into A's router through a port's device: refused.
    for (owner, kind) in
        [("network:router_interface", "PolicyNotAuthorized"), ("compute:nova", "DeviceIDNotOwnedByTenant")]
    {
        let body = json!({"port": {"network_id": bnet, "device_owner": owner, "device_id": rid}});
        let r = c.call("POST", "/v2.0/ports", &b, Some(body)).await;
        assert_eq!((r.status, r.kind()), (StatusCode::FORBIDDEN, kind), "{owner}: {}", r.body);
    }
    for dhcp in ["network:dhcp", "network:floatingip", "network:router_gateway"] {
        let r =
            c.call("POST", "/v2.0/ports", &b, Some(json!({"port": {"network_id": bnet, "device_owner": dhcp}}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{dhcp} is the service's: {}", r.body);
    }
    let bport = c.create(&b, "ports", "port", json!({"network_id": bnet})).await;
    let burl = format!("/v2.0/ports/{}", bport["id"].as_str().unwrap());
    for change in [json!({"device_owner": "network:router_interface", "device_id": rid}), json!({"device_id": rid})] {
        let r = c.call("PUT", &burl, &b, Some(json!({"port": change}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{change}: {}", r.body);
    }
    // Nor through the router API: A's router is not B's to see.
    let r = c.call("PUT", &add, &b, Some(json!({"subnet_id": bsub}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.call("PUT", &add, &b, Some(json!({"port_id": bport["id"]}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A port written that way anyway (by an admin, or stored before this check) is
    // still not the router's: not in the agents' picture, no floating IP through it,
    // and it does not keep A from deleting its router.
    let body = json!({"port": {"network_id": bnet, "project_id": bproject, "device_owner": "network:router_interface", "device_id": rid}});
    let forged = c.call("POST", "/v2.0/ports", &admin, Some(body)).await;
    assert_eq!(forged.status, StatusCode::CREATED, "{}", forged.body);
    let agent = c.admin().await;
    let desired = c.call("GET", "/v2.0/os-stratus/hosts/any-host/desired-state?routers=true", &agent, None).await;
    let routers = desired.body["routers"].as_array().cloned().unwrap_or_default();
    let mine = routers.iter().find(|r| r["id"] == json!(rid)).expect("A's router in the desired state");
    let subnets: Vec<&Value> = mine["interfaces"].as_array().unwrap().iter().map(|i| &i["subnet_id"]).collect();
    assert_eq!(subnets, vec![&json!(asub)], "only A's own interface: {mine}");
    let fip = c.create(&b, "floatingips", "floatingip", json!({"floating_network_id": pubid})).await;
    let furl = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap());
    let r = c.call("PUT", &furl, &b, Some(json!({"floatingip": {"port_id": bport["id"]}}))).await;
    assert_eq!((r.status, r.kind()), (StatusCode::NOT_FOUND, "ExternalGatewayForFloatingIPNotFound"), "{}", r.body);
    let r = c.call("DELETE", &format!("/v2.0/ports/{}", forged.body["port"]["id"].as_str().unwrap()), &b, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "B's own port stays B's to delete: {}", r.body);
    let remove = format!("/v2.0/routers/{rid}/remove_router_interface");
    assert_eq!(c.call("PUT", &remove, &a, Some(json!({"subnet_id": asub}))).await.status, StatusCode::OK);
    let r = c.call("DELETE", &format!("/v2.0/routers/{rid}"), &a, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Binding is for admins and the service, on create as on update.
    for attr in
        [json!({"binding:host_id": "host-1"}), json!({"binding:profile": {"a": 1}}), json!({"status": "ACTIVE"})]
    {
        let mut port = attr.clone();
        port["network_id"] = json!(bnet);
        let r = c.call("POST", "/v2.0/ports", &b, Some(json!({"port": port}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{attr}: {}", r.body);
        let r = c.call("PUT", &burl, &b, Some(json!({"port": attr}))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{attr}: {}", r.body);
    }

    // Allowed address pairs: prefix lengths that fit the family, nothing else.
    for bad in ["10.2.0.50/33", "::1/255", "10.2.0.5/+8", "10.2.0.0/"] {
        let body = json!({"port": {"allowed_address_pairs": [{"ip_address": bad}]}});
        let r = c.call("PUT", &burl, &b, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        let body = json!({"port": {"network_id": bnet, "allowed_address_pairs": [{"ip_address": bad}]}});
        assert_eq!(c.call("POST", "/v2.0/ports", &b, Some(body)).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let ok = json!({"port": {"allowed_address_pairs": [{"ip_address": "10.2.0.0/24"}, {"ip_address": "fd00::/64"}]}});
    assert_eq!(c.call("PUT", &burl, &b, Some(ok)).await.status, StatusCode::OK);
    let shown = c.call("GET", &burl, &b, None).await;
    assert_eq!(shown.body["port"]["allowed_address_pairs"].as_array().unwrap().len(), 2);

    // Per-port DHCP options are refused, not dropped; names are Neutron's length, no NUL.
    let body = json!({"port": {"extra_dhcp_opts": [{"opt_name": "mtu", "opt_value": "9000"}]}});
    assert_eq!(c.call("PUT", &burl, &b, Some(body)).await.status, StatusCode::BAD_REQUEST);
    for name in ["x".repeat(256), "nul\u{0}byte".to_string()] {
        let r = c.call("POST", "/v2.0/networks", &b, Some(json!({"network": {"name": name}}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = c.call("POST", "/v2.0/networks", &b, Some(json!({"network": {"name": "y".repeat(255)}}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Loopback, multicast and everything are no tenant's subnet.
    for cidr in ["127.0.0.0/24", "224.0.0.0/24", "0.0.0.0/0", "::/0", "ff02::/64", "::1/128"] {
        let body = json!({"subnet": {"network_id": bnet, "cidr": cidr}});
        let r = c.call("POST", "/v2.0/subnets", &b, Some(body)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{cidr}: {}", r.body);
    }
    // Lists: a marker of nothing and a sort key that is no attribute are errors.
    for q in ["marker=00000000-0000-4000-8000-000000000000", "sort_key=nonsense&sort_dir=asc"] {
        let r = c.call("GET", &format!("/v2.0/ports?{q}"), &b, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
    }
    let r = c.call("GET", "/v2.0/ports?limit=1&marker=00000000-0000-4000-8000-000000000000", &b, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "the paged path too");
    // A token scoped to no project sees none of the service's own ports.
    let unscoped = c
        .identity_call(
            "POST",
            "/v3/auth/tokens",
            None,
            Some(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "mallory", "domain": {"id": "default"}, "password": "pw"}}}}})),
        )
        .await;
    let token = unscoped.headers["x-subject-token"].to_str().unwrap().to_string();
    let r = c.call("GET", "/v2.0/ports", &token, None).await;
    assert_eq!(r.body["ports"], json!([]), "{}", r.body);
}

async fn security_groups(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("frank").await;
    let admin = c.admin().await;
    // The default group appears on first use, once, with Neutron's four rules.
    let (l1, l2) = tokio::join!(
        c.call("GET", "/v2.0/security-groups", &t, None),
        c.call("GET", "/v2.0/security-groups", &t, None)
    );
    assert_eq!(l1.body["security_groups"].as_array().unwrap().len(), 1);
    assert_eq!(l1.body["security_groups"][0]["id"], l2.body["security_groups"][0]["id"]);
    let default = l1.body["security_groups"][0].clone();
    assert_eq!(default["name"], "default");
    let rules = default["security_group_rules"].as_array().unwrap();
    assert_eq!(rules.len(), 4);
    assert_eq!(rules.iter().filter(|r| r["direction"] == "egress").count(), 2);
    assert!(rules.iter().filter(|r| r["direction"] == "ingress").all(|r| r["remote_group_id"] == default["id"]));
    // The admin's list is its own project's: a lookup of `default` finds one group.
    c.call("GET", "/v2.0/security-groups", &admin, None).await;
    let by_name = c.call("GET", "/v2.0/security-groups?name=default", &admin, None).await;
    assert_eq!(by_name.body["security_groups"].as_array().unwrap().len(), 1);
    let theirs = c.call("GET", &format!("/v2.0/security-groups?project_id={pid}"), &admin, None).await;
    assert_eq!(theirs.body["security_groups"][0]["id"], default["id"]);
    // Asked for every project's (`all_tenants`, as Nova's proxy asks): all of them; a
    // member asking so gets their own.
    let every = c.call("GET", "/v2.0/security-groups?name=default&all_tenants=1", &admin, None).await;
    assert!(every.body["security_groups"].as_array().unwrap().len() >= 2, "{}", every.body);
    let own = c.call("GET", "/v2.0/security-groups?all_tenants=1", &t, None).await;
    assert!(
        own.body["security_groups"].as_array().unwrap().iter().all(|g| g["project_id"] == json!(pid)),
        "{}",
        own.body
    );

    // A second group named `default`, by create or by rename, is refused.
    let web = c.call("POST", "/v2.0/security-groups", &t, Some(json!({"security_group": {"name": "web"}}))).await;
    let wid = web.body["security_group"]["id"].as_str().unwrap().to_string();
    let renamed = c
        .call("PUT", &format!("/v2.0/security-groups/{wid}"), &t, Some(json!({"security_group": {"name": "default"}})))
        .await;
    assert_eq!((renamed.status, renamed.kind()), (StatusCode::CONFLICT, "SecurityGroupDefaultAlreadyExists"));
    c.call("DELETE", &format!("/v2.0/security-groups/{wid}"), &t, None).await;

    let did = default["id"].as_str().unwrap();
    let rule = json!({"security_group_rule": {"security_group_id": did, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}});
    let r = c.call("POST", "/v2.0/security-group-rules", &t, Some(rule.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let dup = c.call("POST", "/v2.0/security-group-rules", &t, Some(rule)).await;
    assert_eq!((dup.status, dup.kind()), (StatusCode::CONFLICT, "SecurityGroupRuleExists"));
    let bad = [
        json!({"security_group_id": did, "direction": "sideways"}),
        json!({"security_group_id": did, "direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 22}),
        json!({"security_group_id": did, "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 22}),
        json!({"security_group_id": did, "direction": "ingress", "protocol": "warp"}),
        json!({"security_group_id": did, "direction": "ingress", "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
        json!({"security_group_id": did, "direction": "ingress", "protocol": "icmp", "port_range_min": 300}),
        json!({"security_group_id": did, "direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": did}),
    ];
    for b in bad {
        let r = c.call("POST", "/v2.0/security-group-rules", &t, Some(json!({"security_group_rule": b}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{b} → {}", r.body);
    }
    let icmp = c.create(&t, "security-group-rules", "security_group_rule", json!({"security_group_id": did, "direction": "ingress", "protocol": "icmp", "remote_ip_prefix": "10.1.2.3/8"})).await;
    assert_eq!(icmp["remote_ip_prefix"], "10.0.0.0/8", "host bits are cleared");

    let web = c.create(&t, "security-groups", "security_group", json!({"name": "web"})).await;
    assert_eq!(web["security_group_rules"].as_array().unwrap().len(), 2, "egress for both families");
    let (nid, _) = c.net_with_subnet(&t, "n", "10.0.0.0/24").await;
    let port = c.create(&t, "ports", "port", json!({"network_id": nid, "security_groups": [web["id"]]})).await;
    let wurl = format!("/v2.0/security-groups/{}", web["id"].as_str().unwrap());
    let busy = c.call("DELETE", &wurl, &t, None).await;
    assert_eq!((busy.status, busy.kind()), (StatusCode::CONFLICT, "SecurityGroupInUse"));
    // A group another group's rule names as its remote group goes, and that rule with it.
    let peer = c.create(&t, "security-groups", "security_group", json!({"name": "peer"})).await;
    let pr = c
        .create(
            &t,
            "security-group-rules",
            "security_group_rule",
            json!({"security_group_id": web["id"], "direction": "ingress", "remote_group_id": peer["id"]}),
        )
        .await;
    let purl_sg = format!("/v2.0/security-groups/{}", peer["id"].as_str().unwrap());
    assert_eq!(c.call("DELETE", &purl_sg, &t, None).await.status, StatusCode::NO_CONTENT);
    let gone = c.call("GET", &format!("/v2.0/security-group-rules/{}", pr["id"].as_str().unwrap()), &t, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "the referring rule went with the peer group");
    let nodefault = c.call("DELETE", &format!("/v2.0/security-groups/{did}"), &t, None).await;
    assert_eq!(nodefault.status, StatusCode::CONFLICT);
    let purl = format!("/v2.0/ports/{}", port["id"].as_str().unwrap());
    let r = c.call("PUT", &purl, &t, Some(json!({"port": {"security_groups": []}}))).await;
    assert_eq!(r.body["port"]["security_groups"], json!([]));
    assert_eq!(c.call("DELETE", &wurl, &t, None).await.status, StatusCode::NO_CONTENT);
    let rules = c
        .call("GET", &format!("/v2.0/security-group-rules?security_group_id={}", web["id"].as_str().unwrap()), &t, None)
        .await;
    assert_eq!(rules.body["security_group_rules"], json!([]));
    let usage = c.network.store.usage(&pid).await.unwrap();
    assert_eq!((usage["security_group"], usage["security_group_rule"]), (0, 2), "{usage:?}");
}

async fn discovery(engine: Engine) {
    let c = Cloud::start(engine).await;
    let t = c.admin().await;
    let ext = c.call("GET", "/v2.0/extensions", &t, None).await;
    let aliases: Vec<&str> =
        ext.body["extensions"].as_array().unwrap().iter().map(|e| e["alias"].as_str().unwrap()).collect();
    assert!(aliases.contains(&"security-group") && aliases.contains(&"binding"));
    let multi = c.call("GET", "/v2.0/extensions/external-gateway-multihoming", &t, None).await;
    assert_eq!(multi.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", "/v2.0/extensions/quotas", &t, None).await.status, StatusCode::OK);
    let v = c.call("GET", "/", &t, None).await;
    assert_eq!(v.body["versions"][0]["id"], "v2.0");
    assert_eq!(c.call("GET", "/v2.0/widgets", &t, None).await.status, StatusCode::NOT_FOUND);
}

async fn routers_and_floating_ips(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (pid, t) = c.member("gina").await;
    let (_, other) = c.member("hank").await;
    let public = c.public_network(&admin).await;
    let pubid = public["id"].as_str().unwrap().to_string();
    let (nid, sid) = c.net_with_subnet(&t, "app", "10.1.0.0/24").await;
    let (_, sid2) = c.net_with_subnet(&t, "db", "10.2.0.0/24").await;

    let r = c
        .call(
            "POST",
            "/v2.0/routers",
            &t,
            Some(json!({"router": {"name": "r", "external_gateway_info": {"network_id": nid}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a gateway needs an external network: {}", r.body);
    let none = c.create(&t, "routers", "router", json!({"name": "r0", "external_gateway_info": {}})).await;
    assert_eq!(none["external_gateway_info"], Value::Null, "{{}} means no gateway");
    let r0 = format!("/v2.0/routers/{}", none["id"].as_str().unwrap());
    assert_eq!(c.call("DELETE", &r0, &t, None).await.status, StatusCode::NO_CONTENT);
    let router = c.create(&t, "routers", "router", json!({"name": "r1"})).await;
    let rid = router["id"].as_str().unwrap().to_string();
    // Tags on routers take the generic tag routes, not the router actions.
    let tagged = c.call("PUT", &format!("/v2.0/routers/{rid}/tags"), &t, Some(json!({"tags": ["edge"]}))).await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    assert_eq!(c.call("GET", &format!("/v2.0/routers/{rid}/tags"), &t, None).await.body["tags"], json!(["edge"]));
    assert_eq!(
        c.call("PUT", &format!("/v2.0/routers/{rid}/nonsense"), &t, Some(json!({}))).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(router["external_gateway_info"], Value::Null);
    let url = format!("/v2.0/routers/{rid}");
    let gw = c.call("PUT", &url, &t, Some(json!({"router": {"external_gateway_info": {"network_id": pubid}}}))).await;
    assert_eq!(gw.status, StatusCode::OK, "{}", gw.body);
    let info = &gw.body["router"]["external_gateway_info"];
    assert_eq!((info["network_id"].as_str(), info["enable_snat"].as_bool()), (Some(pubid.as_str()), Some(true)));
    assert!(info["external_fixed_ips"][0]["ip_address"].as_str().unwrap().starts_with("203.0.113."));
    let nosnat = c
        .call(
            "PUT",
            &url,
            &t,
            Some(json!({"router": {"external_gateway_info": {"network_id": pubid, "enable_snat": false}}})),
        )
        .await;
    assert_eq!(nosnat.status, StatusCode::FORBIDDEN);

    let add = format!("{url}/add_router_interface");
    let i = c.call("PUT", &add, &t, Some(json!({"subnet_id": sid}))).await;
    assert_eq!(i.status, StatusCode::OK, "{}", i.body);
    assert_eq!(i.body["subnet_ids"], json!([sid]));
    let iport = c.call("GET", &format!("/v2.0/ports/{}", i.body["port_id"].as_str().unwrap()), &t, None).await;
    assert_eq!(iport.body["port"]["fixed_ips"][0]["ip_address"], "10.1.0.1", "the router takes the gateway address");
    assert_eq!(iport.body["port"]["device_owner"], "network:router_interface");
    assert_eq!(c.call("PUT", &add, &t, Some(json!({"subnet_id": sid}))).await.status, StatusCode::BAD_REQUEST);
    let direct = c.call("DELETE", &format!("/v2.0/ports/{}", i.body["port_id"].as_str().unwrap()), &t, None).await;
    assert_eq!(direct.status, StatusCode::CONFLICT, "interface ports go through the router");

    // Static routes: next hops on an interface's or the gateway's subnet, nowhere else.
    for (hop, ok) in [("10.1.0.9", true), ("203.0.113.250", true), ("192.0.2.1", false)] {
        let body = json!({"router": {"routes": [{"destination": "198.51.100.0/24", "nexthop": hop}]}});
        let r = c.call("PUT", &url, &t, Some(body)).await;
        assert_eq!(r.status == StatusCode::OK, ok, "{hop}: {}", r.body);
    }
    c.call("PUT", &url, &t, Some(json!({"router": {"routes": []}}))).await;

    // Floating IPs.
    let bad = c.call("POST", "/v2.0/floatingips", &t, Some(json!({"floatingip": {"floating_network_id": nid}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let fip = c.create(&t, "floatingips", "floatingip", json!({"floating_network_id": pubid})).await;
    assert!(fip["floating_ip_address"].as_str().unwrap().starts_with("203.0.113."));
    assert_eq!((fip["status"].as_str(), &fip["port_id"]), (Some("DOWN"), &Value::Null));
    let furl = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap());
    let vm = c.create(&t, "ports", "port", json!({"network_id": nid, "device_id": "vm"})).await;
    let dbport = c.create(&t, "ports", "port", json!({"network_id": c.call("GET", &format!("/v2.0/subnets/{sid2}"), &t, None).await.body["subnet"]["network_id"]})).await;
    let unreachable = c.call("PUT", &furl, &t, Some(json!({"floatingip": {"port_id": dbport["id"]}}))).await;
    assert_eq!(
        (unreachable.status, unreachable.kind()),
        (StatusCode::NOT_FOUND, "ExternalGatewayForFloatingIPNotFound")
    );
    let assoc = c.call("PUT", &furl, &t, Some(json!({"floatingip": {"port_id": vm["id"]}}))).await;
    assert_eq!(assoc.status, StatusCode::OK, "{}", assoc.body);
    assert_eq!(assoc.body["floatingip"]["router_id"], json!(rid));
    assert_eq!(assoc.body["floatingip"]["fixed_ip_address"], vm["fixed_ips"][0]["ip_address"]);
    let fip2 = c.create(&t, "floatingips", "floatingip", json!({"floating_network_id": pubid})).await;
    let again = c
        .call(
            "PUT",
            &format!("/v2.0/floatingips/{}", fip2["id"].as_str().unwrap()),
            &t,
            Some(json!({"floatingip": {"port_id": vm["id"]}})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "one floating IP per fixed address");
    // A port with two IPv4 addresses needs a choice.
    let two = c
        .create(&t, "ports", "port", json!({"network_id": nid, "fixed_ips": [{"subnet_id": sid}, {"subnet_id": sid}]}))
        .await;
    let f2url = format!("/v2.0/floatingips/{}", fip2["id"].as_str().unwrap());
    let ambiguous = c.call("PUT", &f2url, &t, Some(json!({"floatingip": {"port_id": two["id"]}}))).await;
    assert_eq!(ambiguous.status, StatusCode::BAD_REQUEST);
    let chosen = two["fixed_ips"][1]["ip_address"].clone();
    let ok = c
        .call("PUT", &f2url, &t, Some(json!({"floatingip": {"port_id": two["id"], "fixed_ip_address": chosen}})))
        .await;
    assert_eq!(ok.body["floatingip"]["fixed_ip_address"], chosen);
    // The interface and the gateway are needed while floating IPs use them.
    let remove = format!("{url}/remove_router_interface");
    let busy = c.call("PUT", &remove, &t, Some(json!({"subnet_id": sid}))).await;
    assert_eq!((busy.status, busy.kind()), (StatusCode::CONFLICT, "RouterInterfaceInUseByFloatingIP"));
    let busy = c.call("PUT", &url, &t, Some(json!({"router": {"external_gateway_info": {}}}))).await;
    assert_eq!(busy.status, StatusCode::CONFLICT);
    assert_eq!(c.call("DELETE", &url, &t, None).await.status, StatusCode::CONFLICT, "a router with interfaces stays");
    // Other projects can neither see nor use these.
    assert_eq!(c.call("GET", &furl, &other, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", "/v2.0/floatingips", &other, None).await.body["floatingips"], json!([]));
    let theirs = c.create(&other, "floatingips", "floatingip", json!({"floating_network_id": pubid})).await;
    let steal = c
        .call(
            "PUT",
            &format!("/v2.0/floatingips/{}", theirs["id"].as_str().unwrap()),
            &other,
            Some(json!({"floatingip": {"port_id": vm["id"]}})),
        )
        .await;
    assert_eq!(steal.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("PUT", &add, &other, Some(json!({"subnet_id": sid2}))).await.status, StatusCode::NOT_FOUND);
    // A port's deletion lets its floating IP go; then the interface can be removed.
    assert_eq!(
        c.call("DELETE", &format!("/v2.0/ports/{}", vm["id"].as_str().unwrap()), &t, None).await.status,
        StatusCode::NO_CONTENT
    );
    let freed = c.call("GET", &furl, &t, None).await;
    assert_eq!(
        (freed.body["floatingip"]["port_id"].clone(), freed.body["floatingip"]["status"].clone()),
        (Value::Null, json!("DOWN"))
    );
    let un = c.call("PUT", &f2url, &t, Some(json!({"floatingip": {"port_id": null}}))).await;
    assert_eq!(un.body["floatingip"]["router_id"], Value::Null);
    let removed = c.call("PUT", &remove, &t, Some(json!({"subnet_id": sid}))).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    for f in [&furl, &f2url] {
        assert_eq!(c.call("DELETE", f, &t, None).await.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(c.call("DELETE", &url, &t, None).await.status, StatusCode::NO_CONTENT);
    // Nothing left on the external network but the other project's floating IP.
    let ports = c.call("GET", &format!("/v2.0/ports?network_id={pubid}"), &admin, None).await;
    assert_eq!(ports.body["ports"].as_array().unwrap().len(), 1, "{}", ports.body);
    let usage = c.network.store.usage(&pid).await.unwrap();
    assert_eq!((usage["router"], usage["floatingip"]), (0, 0));
}

async fn desired_state_per_host(engine: Engine) {
    let c = Cloud::start_with(engine, stratus_network::driver::Driver::Fake).await;
    let admin = c.admin().await;
    let (_, t) = c.member("ivy").await;
    let public = c.public_network(&admin).await;
    let (nid, sid) = c.net_with_subnet(&t, "app", "10.1.0.0/24").await;
    let web = c.create(&t, "security-groups", "security_group", json!({"name": "web"})).await;
    let rule = json!({"security_group_id": web["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 80, "remote_group_id": web["id"]});
    c.create(&t, "security-group-rules", "security_group_rule", rule).await;
    let p1 = c.create(&t, "ports", "port", json!({"network_id": nid, "security_groups": [web["id"]]})).await;
    let p2 = c.create(&t, "ports", "port", json!({"network_id": nid, "security_groups": [web["id"]]})).await;
    let bind = |p: &Value, host: &str| {
        let url = format!("/v2.0/ports/{}", p["id"].as_str().unwrap());
        let body = json!({"port": {"binding:host_id": host}});
        let admin = admin.clone();
        let c = &c;
        async move { c.call("PUT", &url, &admin, Some(body)).await }
    };
    let b1 = bind(&p1, "host-1").await;
    assert_eq!(b1.body["port"]["status"], "ACTIVE", "the fake driver activates bound ports");
    bind(&p2, "host-2").await;
    let router = c
        .create(&t, "routers", "router", json!({"name": "r", "external_gateway_info": {"network_id": public["id"]}}))
        .await;
    let rid = router["id"].as_str().unwrap();
    c.call("PUT", &format!("/v2.0/routers/{rid}/add_router_interface"), &t, Some(json!({"subnet_id": sid}))).await;
    let fip = c
        .create(&t, "floatingips", "floatingip", json!({"floating_network_id": public["id"], "port_id": p1["id"]}))
        .await;

    let denied = c.call("GET", "/v2.0/os-stratus/hosts/host-1/desired-state", &t, None).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let d = c.call("GET", "/v2.0/os-stratus/hosts/host-1/desired-state", &admin, None).await.body;
    assert_eq!(d["ports"].as_array().unwrap().len(), 1);
    assert_eq!(d["ports"][0]["id"], p1["id"]);
    assert_eq!(d["networks"][0]["id"], json!(nid));
    assert_eq!(d["networks"][0]["provider:network_type"], "vxlan");
    assert_eq!(d["networks"][0]["subnets"][0]["cidr"], "10.1.0.0/24");
    assert_eq!(d["security_groups"][0]["id"], web["id"]);
    let members = d["security_group_members"][web["id"].as_str().unwrap()].as_array().unwrap();
    assert_eq!(members.len(), 2, "both ports' addresses, wherever they run: {d}");
    assert_eq!(d["routers"], json!([]));
    let d = c.call("GET", "/v2.0/os-stratus/hosts/net-1/desired-state?routers=true", &admin, None).await.body;
    assert_eq!(d["ports"], json!([]));
    let r = &d["routers"][0];
    assert_eq!(r["id"], json!(rid));
    assert_eq!(r["interfaces"][0]["ip_address"], "10.1.0.1");
    assert_eq!(r["gateway"]["enable_snat"], true);
    assert_eq!(r["floating_ips"][0]["floating_ip_address"], fip["floating_ip_address"]);
    assert_eq!(r["floating_ips"][0]["fixed_ip_address"], p1["fixed_ips"][0]["ip_address"]);
    assert_eq!(d["networks"].as_array().unwrap().len(), 2, "the interface's and the gateway's networks");
}

async fn agents_report_and_dhcp_ports(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (_, t) = c.member("dora").await;
    let (nid, sid) = c.net_with_subnet(&t, "lan", "10.7.0.0/24").await;
    let port = c.create(&t, "ports", "port", json!({"network_id": nid})).await;
    let pid = port["id"].as_str().unwrap();
    let bound =
        c.call("PUT", &format!("/v2.0/ports/{pid}"), &admin, Some(json!({"port": {"binding:host_id": "h1"}}))).await;
    assert_eq!(bound.body["port"]["status"], "DOWN", "the agent driver waits for the agent");

    // Only admins and agents report, ensure DHCP ports or list agents.
    let report = json!({"ports": {pid: "ACTIVE"}, "configurations": {"devices": 1}});
    assert_eq!(
        c.call("PUT", "/v2.0/os-stratus/hosts/h1/report", &t, Some(report.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    let listed = c.call("GET", "/v2.0/agents", &t, None).await;
    assert_eq!((listed.status, &listed.body["agents"]), (StatusCode::OK, &json!([])), "Neutron filters them out");
    let dhcp_url = format!("/v2.0/os-stratus/hosts/h1/dhcp-ports/{nid}");
    assert_eq!(c.call("PUT", &dhcp_url, &t, None).await.status, StatusCode::FORBIDDEN);

    // Bad reports change nothing.
    let bad = json!({"ports": {pid: "GREEN"}});
    let r = c.call("PUT", "/v2.0/os-stratus/hosts/h1/report", &admin, Some(bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(c.call("GET", "/v2.0/agents", &admin, None).await.body["agents"], json!([]));

    // A report from another host leaves the port alone; its own host's sets it.
    let r = c.call("PUT", "/v2.0/os-stratus/hosts/h2/report", &admin, Some(report.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["ports_changed"], 0);
    let r = c.call("PUT", "/v2.0/os-stratus/hosts/h1/report", &admin, Some(report.clone())).await;
    assert_eq!(r.body["ports_changed"], 1);
    let shown = c.call("GET", &format!("/v2.0/ports/{pid}"), &t, None).await;
    assert_eq!(shown.body["port"]["status"], "ACTIVE");
    let r = c.call("PUT", "/v2.0/os-stratus/hosts/h1/report", &admin, Some(report)).await;
    assert_eq!(r.body["ports_changed"], 0, "a repeated report changes nothing");

    let agents = c.call("GET", "/v2.0/agents", &admin, None).await.body["agents"].clone();
    assert_eq!(agents.as_array().unwrap().len(), 2, "{agents}");
    let h1 = agents.as_array().unwrap().iter().find(|a| a["host"] == "h1").unwrap().clone();
    assert_eq!(h1["alive"], true);
    assert_eq!(h1["agent_type"], "Linux bridge agent");
    assert_eq!(h1["configurations"]["devices"], 1);
    let aid = h1["id"].as_str().unwrap();
    let filtered = c.call("GET", "/v2.0/agents?host=h2", &admin, None).await.body;
    assert_eq!(filtered["agents"].as_array().unwrap().len(), 1);
    let upd =
        c.call("PUT", &format!("/v2.0/agents/{aid}"), &admin, Some(json!({"agent": {"description": "rack 4"}}))).await;
    assert_eq!(upd.body["agent"]["description"], "rack 4");

    // DHCP port: made once, on the DHCP subnet, not counted, shown in the desired state.
    let first = c.call("PUT", &dhcp_url, &admin, Some(json!({}))).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let again = c.call("PUT", &dhcp_url, &admin, None).await;
    assert_eq!(first.body["port"]["id"], again.body["port"]["id"], "ensuring twice makes one port");
    assert_eq!(first.body["port"]["device_owner"], "network:dhcp");
    assert_eq!(first.body["port"]["fixed_ips"][0]["subnet_id"], json!(sid));
    let d = c.call("GET", "/v2.0/os-stratus/hosts/h1/desired-state", &admin, None).await.body;
    assert_eq!(d["ports"].as_array().unwrap().len(), 1, "DHCP ports are not guest ports: {d}");
    assert_eq!(d["networks"][0]["dhcp_port"]["id"], first.body["port"]["id"]);
    let hosts = d["networks"][0]["dhcp_hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["id"], json!(pid));
    assert_eq!(d["stale_dhcp_networks"], json!([]));

    // The guest port leaves the host: the network is stale for DHCP there.
    c.call("PUT", &format!("/v2.0/ports/{pid}"), &admin, Some(json!({"port": {"binding:host_id": ""}}))).await;
    let d = c.call("GET", "/v2.0/os-stratus/hosts/h1/desired-state", &admin, None).await.body;
    assert_eq!(d["stale_dhcp_networks"], json!([nid]));
    assert_eq!(c.call("DELETE", &dhcp_url, &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.call("DELETE", &dhcp_url, &admin, None).await.status,
        StatusCode::NO_CONTENT,
        "releasing twice is fine"
    );
    let d = c.call("GET", "/v2.0/os-stratus/hosts/h1/desired-state", &admin, None).await.body;
    assert_eq!(d["stale_dhcp_networks"], json!([]));

    // DHCP ports do not keep subnets or networks alive.
    c.call("PUT", &dhcp_url, &admin, None).await;
    c.call("DELETE", &format!("/v2.0/ports/{pid}"), &t, None).await;
    let del = c.call("DELETE", &format!("/v2.0/subnets/{sid}"), &t, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{:?}", del.body);
    let ports = c.call("GET", &format!("/v2.0/ports?network_id={nid}"), &admin, None).await.body;
    assert_eq!(ports["ports"], json!([]), "the DHCP port went with its subnet");
    c.call(
        "POST",
        "/v2.0/subnets",
        &t,
        Some(json!({"subnet": {"network_id": nid, "cidr": "10.8.0.0/24", "ip_version": 4}})),
    )
    .await;
    let made = c.call("PUT", &dhcp_url, &admin, None).await;
    assert!(made.body["port"]["id"].is_string());
    let del = c.call("DELETE", &format!("/v2.0/networks/{nid}"), &t, None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT, "{:?}", del.body);
    assert_eq!(c.call("PUT", &dhcp_url, &admin, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &format!("/v2.0/agents/{aid}"), &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v2.0/agents/{aid}"), &admin, None).await.status, StatusCode::NOT_FOUND);
}

async fn paging_walks_every_port_once(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (pid, t) = c.member("pager").await;
    let (_, other) = c.member("other-pager").await;
    c.set_limit(&pid, "port", 1000).await;
    let (nid, _) = c.net_with_subnet(&t, "wide", "10.64.0.0/16").await;
    let (onid, _) = c.net_with_subnet(&other, "theirs", "10.65.0.0/24").await;
    for _ in 0..3 {
        c.create(&other, "ports", "port", json!({"network_id": onid})).await;
    }
    for batch in 0..11 {
        let futures: Vec<_> =
            (0..50).map(|_| c.call("POST", "/v2.0/ports", &t, Some(json!({"port": {"network_id": nid}})))).collect();
        for r in futures::future::join_all(futures).await {
            assert_eq!(r.status, StatusCode::CREATED, "batch {batch}: {}", r.body);
        }
    }
    let all = c.call("GET", "/v2.0/ports?fields=id", &t, None).await.body["ports"].as_array().unwrap().clone();
    assert_eq!(all.len(), 550, "only the caller's ports");
    let mut walked = Vec::new();
    let mut url = "/v2.0/ports?limit=100&fields=id".to_string();
    loop {
        let r = c.call("GET", &url, &t, None).await;
        walked.extend(r.body["ports"].as_array().unwrap().iter().cloned());
        match r.body["ports_links"][0]["href"].as_str() {
            Some(next) => url = next.trim_start_matches("http://network").to_string(),
            None => break,
        }
    }
    assert_eq!(walked, all, "pages in the same order as the whole list, each port once");
    let filtered = c.call("GET", &format!("/v2.0/ports?limit=5&network_id={onid}"), &t, None).await;
    assert_eq!(filtered.body["ports"], json!([]));
}

async fn reconciler_repairs_crash_leftovers(engine: Engine) {
    use stratus_network::store::Table;
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (pid, t) = c.member("crashy").await;
    let public = c.public_network(&admin).await;
    let (nid, sid) = c.net_with_subnet(&t, "n", "10.1.0.0/24").await;
    let router =
        c.create(&t, "routers", "router", json!({"external_gateway_info": {"network_id": public["id"]}})).await;
    c.call(
        "PUT",
        &format!("/v2.0/routers/{}/add_router_interface", router["id"].as_str().unwrap()),
        &t,
        Some(json!({"subnet_id": sid})),
    )
    .await;
    let p1 = c.create(&t, "ports", "port", json!({"network_id": nid})).await;
    let p2 = c.create(&t, "ports", "port", json!({"network_id": nid})).await;
    let fip = c
        .create(&t, "floatingips", "floatingip", json!({"floating_network_id": public["id"], "port_id": p2["id"]}))
        .await;
    let store = &c.network.store;
    assert_eq!(c.network.reconcile().await.unwrap(), Default::default(), "a consistent state needs nothing");

    // A crash between a port's row and its finished document.
    let mut rec = store.fetch(Table::Ports, p1["id"].as_str().unwrap()).await.unwrap().unwrap();
    rec.doc.insert("fixed_ips".into(), json!([]));
    store.set_doc(Table::Ports, &rec.id, &rec.doc, &rec.control).await.unwrap();
    // A floating IP's port whose floating IP row was never written, from long ago.
    let orphan = c
        .create(
            &admin,
            "ports",
            "port",
            json!({"network_id": public["id"], "device_owner": "network:floatingip", "device_id": "gone"}),
        )
        .await;
    // (made by the service for itself: a port a user made is the user's, whatever it names)
    sqlx::query("UPDATE network_ports SET created_at = '2000-01-01T00:00:00.000000Z', control = REPLACE(control, '\"counted\":true', '\"counted\":false') WHERE id = $1")
        .bind(orphan["id"].as_str().unwrap())
        .execute(&store.db.pool)
        .await
        .unwrap();
    // A port removed without letting go of its floating IP, and a leaked quota claim.
    // (its addresses go with it, by the foreign key's cascade)
    store.delete(Table::Ports, p2["id"].as_str().unwrap()).await.unwrap();
    assert!(store.usage_claim(&pid, "network", None).await.unwrap());

    let report = c.network.reconcile().await.unwrap();
    assert_eq!((report.ports_fixed, report.orphans_removed, report.floating_ips_released), (1, 1, 1), "{report:?}");
    assert!(report.usage_corrected >= 2, "{report:?}");
    let shown = c.call("GET", &format!("/v2.0/ports/{}", p1["id"].as_str().unwrap()), &t, None).await;
    assert_eq!(shown.body["port"]["fixed_ips"], p1["fixed_ips"]);
    assert_eq!(
        c.call("GET", &format!("/v2.0/ports/{}", orphan["id"].as_str().unwrap()), &admin, None).await.status,
        StatusCode::NOT_FOUND
    );
    let f = c.call("GET", &format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap()), &t, None).await;
    assert_eq!(
        (f.body["floatingip"]["port_id"].clone(), f.body["floatingip"]["status"].clone()),
        (Value::Null, json!("DOWN"))
    );
    let usage = store.usage(&pid).await.unwrap();
    assert_eq!((usage["network"], usage["port"], usage["floatingip"], usage["router"]), (1, 1, 1, 1), "{usage:?}");
    assert_eq!(c.network.reconcile().await.unwrap(), Default::default(), "a second pass has nothing to do");
}

async fn subnet_pools(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("pooler").await;
    let (_, other) = c.member("outsider").await;
    let admin = c.admin().await;
    let pool = c
        .create(
            &t,
            "subnetpools",
            "subnetpool",
            json!({"name": "p", "prefixes": ["10.80.0.1/16"], "default_prefixlen": 24, "max_prefixlen": 28}),
        )
        .await;
    assert_eq!(pool["prefixes"], json!(["10.80.0.0/16"]), "host bits cleared: {pool}");
    assert_eq!((pool["ip_version"].as_i64(), pool["min_prefixlen"].as_i64()), (Some(4), Some(8)));
    let pid = pool["id"].as_str().unwrap().to_string();
    let net = c.create(&t, "networks", "network", json!({"name": "n"})).await;
    let nid = net["id"].as_str().unwrap().to_string();
    let subnet = |extra: Value| {
        let mut b = json!({"network_id": nid, "subnetpool_id": pid, "ip_version": 4});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "subnet": b })
    };
    // The lowest free block of the default size, then of a given size, then a CIDR asked for.
    let r = c.call("POST", "/v2.0/subnets", &t, Some(subnet(json!({})))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.body["subnet"]["cidr"].as_str(), r.body["subnet"]["subnetpool_id"].as_str()),
        (Some("10.80.0.0/24"), Some(pid.as_str()))
    );
    let net2 = c.create(&t, "networks", "network", json!({"name": "n2"})).await;
    let mut b = subnet(json!({"prefixlen": 26}));
    b["subnet"]["network_id"] = net2["id"].clone();
    let r = c.call("POST", "/v2.0/subnets", &t, Some(b)).await;
    assert_eq!(r.body["subnet"]["cidr"], "10.80.1.0/26", "{}", r.body);
    let mut b = subnet(json!({"cidr": "10.80.0.128/25"}));
    b["subnet"]["network_id"] = net2["id"].clone();
    let r = c.call("POST", "/v2.0/subnets", &t, Some(b)).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "taken from the pool already: {}", r.body);
    for (extra, want) in [
        (json!({"prefixlen": 30}), StatusCode::BAD_REQUEST),
        (json!({"cidr": "10.99.0.0/24"}), StatusCode::BAD_REQUEST),
        (json!({"ip_version": 6}), StatusCode::BAD_REQUEST),
    ] {
        let r = c.call("POST", "/v2.0/subnets", &t, Some(subnet(extra.clone()))).await;
        assert_eq!(r.status, want, "{extra}: {}", r.body);
    }
    // Address space is only added.
    let path = format!("/v2.0/subnetpools/{pid}");
    let r = c.call("PUT", &path, &t, Some(json!({"subnetpool": {"prefixes": ["10.81.0.0/16"]}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = c
        .call(
            "PUT",
            &path,
            &t,
            Some(json!({"subnetpool": {"prefixes": ["10.80.0.0/16", "10.81.0.0/16"], "name": "q"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["subnetpool"]["prefixes"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2)),
        "{}",
        r.body
    );
    // Another project sees nothing of a private pool and cannot take from it.
    assert_eq!(c.call("GET", &path, &other, None).await.status, StatusCode::NOT_FOUND);
    let theirs = c.create(&other, "networks", "network", json!({"name": "x"})).await;
    let mut b = subnet(json!({}));
    b["subnet"]["network_id"] = theirs["id"].clone();
    assert_eq!(c.call("POST", "/v2.0/subnets", &other, Some(b)).await.status, StatusCode::NOT_FOUND);
    // Only admins share pools or set defaults; a shared default pool serves everyone.
    let shared = json!({"subnetpool": {"name": "s", "prefixes": ["10.90.0.0/16"], "shared": true, "is_default": true}});
    assert_eq!(c.call("POST", "/v2.0/subnetpools", &t, Some(shared.clone())).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("POST", "/v2.0/subnetpools", &admin, Some(shared)).await.status, StatusCode::CREATED);
    let b = json!({"subnet": {"network_id": theirs["id"], "use_default_subnetpool": true, "ip_version": 4, "prefixlen": 24}});
    let r = c.call("POST", "/v2.0/subnets", &other, Some(b)).await;
    assert_eq!(r.body["subnet"]["cidr"], "10.90.0.0/24", "{}", r.body);
    // A pool with subnets stays; without, it goes.
    assert_eq!(c.call("DELETE", &path, &t, None).await.status, StatusCode::CONFLICT);
    let subnets = c.call("GET", &format!("/v2.0/subnets?subnetpool_id={pid}"), &t, None).await.body;
    for s in subnets["subnets"].as_array().unwrap() {
        let r = c.call("DELETE", &format!("/v2.0/subnets/{}", s["id"].as_str().unwrap()), &t, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(c.call("DELETE", &path, &t, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &path, &t, None).await.status, StatusCode::NOT_FOUND);
}

async fn slaac(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("v6").await;
    let net = c.create(&t, "networks", "network", json!({"name": "v6"})).await;
    let nid = net["id"].as_str().unwrap().to_string();
    let auto = c
        .create(
            &t,
            "subnets",
            "subnet",
            json!({"network_id": nid, "cidr": "2001:db8:7::/64", "ip_version": 6,
            "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}),
        )
        .await;
    let port = c.create(&t, "ports", "port", json!({"network_id": nid, "mac_address": "fa:16:3e:12:34:56"})).await;
    assert_eq!(port["fixed_ips"][0]["ip_address"], "2001:db8:7:0:f816:3eff:fe12:3456", "{port}");
    // An address on an automatic subnet is not the caller's to choose.
    let body =
        json!({"port": {"network_id": nid, "fixed_ips": [{"subnet_id": auto["id"], "ip_address": "2001:db8:7::99"}]}});
    assert_eq!(c.call("POST", "/v2.0/ports", &t, Some(body)).await.status, StatusCode::BAD_REQUEST);
    // A stateful DHCPv6 subnet still hands out addresses from its pool.
    let net2 = c.create(&t, "networks", "network", json!({"name": "v6b"})).await;
    c.create(
        &t,
        "subnets",
        "subnet",
        json!({"network_id": net2["id"], "cidr": "2001:db8:8::/64", "ip_version": 6,
        "ipv6_address_mode": "dhcpv6-stateful"}),
    )
    .await;
    let p2 = c.create(&t, "ports", "port", json!({"network_id": net2["id"], "mac_address": "fa:16:3e:12:34:57"})).await;
    assert_ne!(p2["fixed_ips"][0]["ip_address"], "2001:db8:8:0:f816:3eff:fe12:3457");
    // Deleting an automatic subnet takes its addresses from the ports, as Neutron does.
    let sid = auto["id"].as_str().unwrap();
    assert_eq!(c.call("DELETE", &format!("/v2.0/subnets/{sid}"), &t, None).await.status, StatusCode::NO_CONTENT);
    let shown = c.call("GET", &format!("/v2.0/ports/{}", port["id"].as_str().unwrap()), &t, None).await.body;
    assert_eq!(shown["port"]["fixed_ips"], json!([]), "{shown}");
    // A stateful one is still held by its ports.
    let p2_subnet = p2["fixed_ips"][0]["subnet_id"].as_str().unwrap();
    assert_eq!(c.call("DELETE", &format!("/v2.0/subnets/{p2_subnet}"), &t, None).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn slaac_ports_take_their_eui64_address() {
    each_engine!(slaac);
}

#[tokio::test]
async fn subnet_pools_hand_out_subnets() {
    each_engine!(subnet_pools);
}

#[tokio::test]
async fn crud_and_ipam() {
    each_engine!(networks_subnets_ports);
}
#[tokio::test]
async fn bad_input() {
    each_engine!(bad_input_changes_nothing);
}
#[tokio::test]
async fn concurrent_ipam() {
    each_engine!(ipam_under_concurrency);
}
#[tokio::test]
async fn concurrent_quotas() {
    each_engine!(quotas_hold_under_concurrency);
}
#[tokio::test]
async fn isolation() {
    each_engine!(projects_are_isolated);
}
#[tokio::test]
async fn hostile_tenants_are_contained() {
    each_engine!(hostile_tenant);
}
#[tokio::test]
async fn security_group_rules() {
    each_engine!(security_groups);
}
#[tokio::test]
async fn extensions_and_versions() {
    each_engine!(discovery);
}
#[tokio::test]
async fn routers_and_fips() {
    each_engine!(routers_and_floating_ips);
}
#[tokio::test]
async fn desired_state() {
    each_engine!(desired_state_per_host);
}
#[tokio::test]
async fn agents() {
    each_engine!(agents_report_and_dhcp_ports);
}
#[tokio::test]
async fn paging() {
    each_engine!(paging_walks_every_port_once);
}
#[tokio::test]
async fn reconciler() {
    each_engine!(reconciler_repairs_crash_leftovers);
}

/// Bulk create (`{"ports": [...]}`) makes all or nothing.
async fn bulk_create_all_or_nothing(engine: Engine) {
    let c = Cloud::start(engine).await;
    let (_, t) = c.member("alice").await;
    let n = c.create(&t, "networks", "network", json!({"name": "net1"})).await;
    let nid = n["id"].as_str().unwrap().to_string();
    c.create(&t, "subnets", "subnet", json!({"network_id": nid, "ip_version": 4, "cidr": "10.9.0.0/24"})).await;
    let r = c
        .call(
            "POST",
            "/v2.0/ports",
            &t,
            Some(json!({"ports": [{"network_id": nid, "name": "a"}, {"network_id": nid, "name": "b"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let names: Vec<&str> = r.body["ports"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    // The second is refused (a fixed IP outside the subnet): the first is undone.
    let bad = json!({"ports": [{"network_id": nid, "name": "c"},
                               {"network_id": nid, "name": "d", "fixed_ips": [{"ip_address": "172.16.0.5"}]}]});
    let r = c.call("POST", "/v2.0/ports", &t, Some(bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let listed = c.call("GET", &format!("/v2.0/ports?network_id={nid}"), &t, None).await;
    let names: HashSet<&str> =
        listed.body["ports"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(!names.contains("c") && names.contains("a"), "{}", listed.body);
    let r = c.call("POST", "/v2.0/networks", &t, Some(json!({"networks": []}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bulk_create() {
    each_engine!(bulk_create_all_or_nothing);
}

/// Deleting an external network takes its floating IPs (and their quota) with it, as
/// Neutron does; a router's gateway on it still keeps it in use.
async fn external_network_delete_takes_floating_ips(engine: Engine) {
    let c = Cloud::start(engine).await;
    let admin = c.admin().await;
    let (pid, t) = c.member("ivy").await;
    let public = c.public_network(&admin).await;
    let pubid = public["id"].as_str().unwrap().to_string();
    let fip = c.create(&t, "floatingips", "floatingip", json!({"floating_network_id": pubid})).await;
    let router =
        c.create(&t, "routers", "router", json!({"name": "r", "external_gateway_info": {"network_id": pubid}})).await;
    let url = format!("/v2.0/networks/{pubid}");
    assert_eq!(c.call("DELETE", &url, &admin, None).await.status, StatusCode::CONFLICT, "the gateway uses it");
    let f = format!("/v2.0/floatingips/{}", fip["id"].as_str().unwrap());
    assert_eq!(c.call("GET", &f, &t, None).await.status, StatusCode::OK, "a refused delete removes nothing");
    let r = format!("/v2.0/routers/{}", router["id"].as_str().unwrap());
    assert_eq!(c.call("DELETE", &r, &t, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("DELETE", &url, &admin, None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &f, &t, None).await.status, StatusCode::NOT_FOUND);
    let usage = c.network.store.usage(&pid).await.unwrap();
    assert_eq!(usage.get("floatingip").copied().unwrap_or(0), 0, "{usage:?}");
}

#[tokio::test]
async fn external_network_delete() {
    each_engine!(external_network_delete_takes_floating_ips);
}
