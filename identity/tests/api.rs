//! Identity's API in-process against a real database (SQLite, and PostgreSQL when
//! configured): tokens, RBAC, revocation, rotation, application credentials, limits and
//! input validation.

mod support;

use axum::http::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::db::Engine;
use support::*;

async fn tokens_issue_validate_and_revoke(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let r = c.login("admin", ADMIN_PASSWORD, Some("admin")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.request_id.as_deref().unwrap().starts_with("req-"));
    let t = &r.json["token"];
    for field in ["expires_at", "issued_at", "audit_ids", "methods", "user", "project", "roles", "catalog"] {
        assert!(!t[field].is_null(), "token lacks {field}: {t}");
    }
    assert!(t["expires_at"].as_str().unwrap().ends_with('Z'));
    let roles: Vec<&str> = t["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for r in ["admin", "member", "reader"] {
        assert!(roles.contains(&r), "implied roles are expanded: {roles:?}");
    }
    let ep = &t["catalog"][0]["endpoints"][0];
    assert!(ep["interface"].is_string() && ep["url"].is_string() && ep["region_id"] == "RegionOne");
    let token = r.subject.unwrap();

    // nocatalog, validate, check.
    let r = c.login("admin", ADMIN_PASSWORD, Some("admin")).await;
    let other = r.subject.unwrap();
    let v = c.call_with("GET", "/v3/auth/tokens?nocatalog", Some(&token), None, &[("x-subject-token", &other)]).await;
    assert_eq!(v.status, StatusCode::OK);
    assert!(v.json["token"]["catalog"].is_null());
    assert_eq!(v.subject.as_deref(), Some(other.as_str()));
    let h = c.call_with("HEAD", "/v3/auth/tokens", Some(&token), None, &[("x-subject-token", &other)]).await;
    assert_eq!(h.status, StatusCode::OK);

    // Revoke the other token: it stops working at once; ours still works.
    let d = c.call_with("DELETE", "/v3/auth/tokens", Some(&token), None, &[("x-subject-token", &other)]).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    let v = c.call_with("GET", "/v3/auth/tokens", Some(&token), None, &[("x-subject-token", &other)]).await;
    assert_eq!(v.status, StatusCode::NOT_FOUND);
    let u = c.call("GET", "/v3/projects", Some(&other), None).await;
    assert_eq!(u.status, StatusCode::UNAUTHORIZED);
    assert_eq!(u.json["error"]["code"], 401);
    assert!(u.json["error"]["message"].as_str().unwrap().contains("revoked"));
    assert_eq!(c.call("GET", "/v3/projects", Some(&token), None).await.status, StatusCode::OK);

    // Re-scoping with a token keeps the audit chain: revoking the original revokes both.
    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}},
                               "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
    let rescoped = c.call("POST", "/v3/auth/tokens", None, Some(body)).await;
    assert_eq!(rescoped.status, StatusCode::CREATED, "{:?}", rescoped.json);
    assert_eq!(rescoped.json["token"]["audit_ids"].as_array().unwrap().len(), 2);
    assert_eq!(rescoped.json["token"]["methods"], json!(["password", "token"]));
}

async fn wrong_password_and_unknown_user_look_the_same(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let a = c.login("admin", "wrong", Some("admin")).await;
    let b = c.login("nobody", "wrong", Some("admin")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.status, b.status);
    assert_eq!(a.json, b.json);
    assert_eq!(a.json["error"]["title"], "Unauthorized");
    // A scope the user has no role on is refused.
    let t = c.admin_token().await;
    c.project_with_user(&t, "p1", "alice", "pw-alice", "member").await;
    let r = c.login("alice", "pw-alice", Some("admin")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Unscoped: no roles, no catalog.
    let r = c.login("alice", "pw-alice", None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.json["token"]["catalog"].is_null() && r.json["token"]["project"].is_null());
}

async fn members_manage_nothing_and_see_only_their_own(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pa, ua) = c.project_with_user(&admin, "proj-a", "alice", "pw-a", "member").await;
    let (pb, ub) = c.project_with_user(&admin, "proj-b", "bob", "pw-b", "reader").await;
    let alice = c.login("alice", "pw-a", Some("proj-a")).await.subject.unwrap();

    let r = c.call("POST", "/v3/projects", Some(&alice), Some(json!({"project": {"name": "x"}}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("identity:create_project"));
    // Keystone's name limits: 64 for projects and domains; no control characters.
    for (path, key, name) in [
        ("/v3/projects", "project", "p".repeat(65)),
        ("/v3/domains", "domain", "d".repeat(65)),
        ("/v3/projects", "project", "nul\u{0}".to_string()),
    ] {
        let r = c.call("POST", path, Some(&admin), Some(json!({ key: {"name": name} }))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{key} {name:?}: {}", r.json);
    }
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": "p".repeat(64)}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(
        c.call("POST", "/v3/users", Some(&alice), Some(json!({"user": {"name": "x"}}))).await.status,
        StatusCode::FORBIDDEN
    );
    let listed = c.call("GET", "/v3/projects", Some(&alice), None).await;
    assert_eq!(listed.json["projects"].as_array().unwrap().len(), 1, "only their own: {:?}", listed.json);
    let search = c.call("GET", "/v3/projects?name=proj-b", Some(&alice), None).await;
    assert_eq!(search.json["projects"].as_array().unwrap().len(), 0);
    // Own project and user are visible; the other project and user answer 404.
    assert_eq!(c.call("GET", &format!("/v3/projects/{pa}"), Some(&alice), None).await.status, StatusCode::OK);
    assert_eq!(c.call("GET", &format!("/v3/projects/{pb}"), Some(&alice), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("/v3/users/{ua}"), Some(&alice), None).await.status, StatusCode::OK);
    assert_eq!(c.call("GET", &format!("/v3/users/{ub}"), Some(&alice), None).await.status, StatusCode::NOT_FOUND);
    let mine = c.call("GET", &format!("/v3/users/{ua}/projects"), Some(&alice), None).await;
    assert_eq!(mine.json["projects"].as_array().unwrap().len(), 1);
    let auth_projects = c.call("GET", "/v3/auth/projects", Some(&alice), None).await;
    assert_eq!(auth_projects.json["projects"][0]["id"], pa.as_str());
    // Own role assignments only.
    let ra = c.call("GET", &format!("/v3/role_assignments?user.id={ua}&effective"), Some(&alice), None).await;
    assert_eq!(ra.status, StatusCode::OK);
    let names: Vec<String> = ra.json["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 2, "member and the reader it implies: {:?}", ra.json);
    assert_eq!(
        c.call("GET", &format!("/v3/role_assignments?user.id={ub}"), Some(&alice), None).await.status,
        StatusCode::FORBIDDEN
    );
}

async fn revocations_follow_identity_changes(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, uid) = c.project_with_user(&admin, "p", "carol", "pw-1", "member").await;
    let ok = |s: StatusCode| s == StatusCode::OK;

    // Password change by the user: old tokens die, the new password works.
    let t1 = c.login("carol", "pw-1", Some("p")).await.subject.unwrap();
    assert!(ok(c.call("GET", &format!("/v3/users/{uid}"), Some(&t1), None).await.status));
    let bad = c
        .call(
            "POST",
            &format!("/v3/users/{uid}/password"),
            Some(&t1),
            Some(json!({"user": {"password": "pw-2", "original_password": "nope"}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let r = c
        .call(
            "POST",
            &format!("/v3/users/{uid}/password"),
            Some(&t1),
            Some(json!({"user": {"password": "pw-2", "original_password": "pw-1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.json);
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&t1), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.login("carol", "pw-1", Some("p")).await.status, StatusCode::UNAUTHORIZED);

    // As in Keystone the proof is the original password, not the caller: an administrator
    // who knows it may change it; without it, nobody can.
    let change = |original: &str| json!({"user": {"password": "pw-3", "original_password": original}});
    let path = format!("/v3/users/{uid}/password");
    assert_eq!(c.call("POST", &path, Some(&admin), Some(change("pw-1"))).await.status, StatusCode::UNAUTHORIZED);
    let missing = c.call("POST", "/v3/users/nobody/password", Some(&admin), Some(change("pw-2"))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("POST", &path, Some(&admin), Some(change("pw-2"))).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.login("carol", "pw-2", Some("p")).await.status, StatusCode::UNAUTHORIZED);

    // Role removed: tokens on that project die.
    let t2 = c.login("carol", "pw-3", Some("p")).await.subject.unwrap();
    let rid = c.role_id(&admin, "member").await;
    assert_eq!(
        c.call("DELETE", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&t2), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.login("carol", "pw-3", Some("p")).await.status, StatusCode::UNAUTHORIZED);

    // Disabled user: tokens die and login fails; project disabled likewise.
    c.call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{rid}"), Some(&admin), None).await;
    let t3 = c.login("carol", "pw-3", Some("p")).await.subject.unwrap();
    let r = c
        .call("PATCH", &format!("/v3/projects/{pid}"), Some(&admin), Some(json!({"project": {"enabled": false}})))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&t3), None).await.status, StatusCode::UNAUTHORIZED);
    c.call("PATCH", &format!("/v3/projects/{pid}"), Some(&admin), Some(json!({"project": {"enabled": true}}))).await;
    let t4 = c.login("carol", "pw-3", Some("p")).await.subject.unwrap();
    c.call("PATCH", &format!("/v3/users/{uid}"), Some(&admin), Some(json!({"user": {"enabled": false}}))).await;
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&t4), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.login("carol", "pw-3", Some("p")).await.status, StatusCode::UNAUTHORIZED);

    // The revocation list is visible to admins.
    let ev = c.call("GET", "/v3/OS-REVOKE/events", Some(&admin), None).await;
    assert!(ev.json["events"].as_array().unwrap().len() >= 4);
}

async fn rotation_keeps_valid_tokens(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let before = c.admin_token().await;
    c.identity.keys.rotate().await.unwrap();
    let middle = c.admin_token().await;
    c.identity.keys.rotate().await.unwrap();
    c.identity.verifier.refresh().await.unwrap();
    // A token survives two rotations.
    assert_eq!(c.call("GET", "/v3/domains", Some(&before), None).await.status, StatusCode::OK);
    assert_eq!(c.call("GET", "/v3/domains", Some(&middle), None).await.status, StatusCode::OK);
    let keys = c.call("GET", "/v3/OS-STRATUS/verification", None, None).await;
    assert_eq!(keys.json["keys"].as_array().unwrap().len(), 4, "staged, primary and two secondaries");
    // The third rotation retires the key the first token was signed with.
    c.identity.keys.rotate().await.unwrap();
    c.identity.verifier.refresh().await.unwrap();
    assert_eq!(c.call("GET", "/v3/domains", Some(&before), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.call("GET", "/v3/domains", Some(&middle), None).await.status, StatusCode::OK);
}

async fn expired_tokens_are_refused(engine: Engine) {
    let config = stratus_identity::config::IdentityConfig { token_ttl_secs: 1, ..test_config() };
    let c = TestCloud::start_with(engine, config, Bus::Memory(MemoryBus::new())).await;
    let t = c.admin_token().await;
    assert_eq!(c.call("GET", "/v3/domains", Some(&t), None).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = c.call("GET", "/v3/domains", Some(&t), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("expired"));
}

async fn application_credentials(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, uid) = c.project_with_user(&admin, "p", "dave", "pw", "member").await;
    let t = c.login("dave", "pw", Some("p")).await.subject.unwrap();
    let path = format!("/v3/users/{uid}/application_credentials");
    let r = c
        .call(
            "POST",
            &path,
            Some(&t),
            Some(json!({"application_credential": {"name": "ci", "roles": [{"name": "reader"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let cred = &r.json["application_credential"];
    let (cid, secret) = (cred["id"].as_str().unwrap().to_string(), cred["secret"].as_str().unwrap().to_string());
    // Roles beyond the token's cannot be delegated.
    let r = c
        .call(
            "POST",
            &path,
            Some(&t),
            Some(json!({"application_credential": {"name": "x", "roles": [{"name": "admin"}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A role granted after the token was issued is the user's to delegate.
    let auditor = c.call("POST", "/v3/roles", Some(&admin), Some(json!({"role": {"name": "auditor"}}))).await;
    let auditor = auditor.json["role"]["id"].as_str().unwrap().to_string();
    let g = c.call("PUT", &format!("/v3/projects/{pid}/users/{uid}/roles/{auditor}"), Some(&admin), None).await;
    assert_eq!(g.status, StatusCode::NO_CONTENT);
    let r = c
        .call(
            "POST",
            &path,
            Some(&t),
            Some(json!({"application_credential": {"name": "audit", "roles": [{"id": auditor}]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    // Secret never shown again.
    let shown = c.call("GET", &format!("{path}/{cid}"), Some(&t), None).await;
    assert!(shown.json["application_credential"]["secret"].is_null());
    // Login with it: scoped to the project, only the delegated role.
    let body = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": cid, "secret": secret}}}});
    let login = c.call("POST", "/v3/auth/tokens", None, Some(body.clone())).await;
    assert_eq!(login.status, StatusCode::CREATED, "{:?}", login.json);
    let roles: Vec<&str> =
        login.json["token"]["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(roles, vec!["reader"]);
    assert_eq!(login.json["token"]["application_credential"]["id"], cid.as_str());
    let act = login.subject.unwrap();
    // By name with the user.
    let by_name = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"name": "ci", "secret": secret, "user": {"name": "dave", "domain": {"name": "Default"}}}}}});
    assert_eq!(c.call("POST", "/v3/auth/tokens", None, Some(by_name)).await.status, StatusCode::CREATED);
    // Wrong secret.
    let bad = json!({"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": cid, "secret": "nope"}}}});
    assert_eq!(c.call("POST", "/v3/auth/tokens", None, Some(bad)).await.status, StatusCode::UNAUTHORIZED);
    // Another user cannot see it.
    c.project_with_user(&admin, "q", "erin", "pw", "member").await;
    let erin = c.login("erin", "pw", Some("q")).await.subject.unwrap();
    assert_eq!(c.call("GET", &format!("{path}/{cid}"), Some(&erin), None).await.status, StatusCode::NOT_FOUND);
    // Deleting it revokes its tokens and its login.
    assert_eq!(c.call("DELETE", &format!("{path}/{cid}"), Some(&t), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&act), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.call("POST", "/v3/auth/tokens", None, Some(body)).await.status, StatusCode::UNAUTHORIZED);
}

async fn credentials_and_ec2_credentials(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, uid) = c.project_with_user(&admin, "cp", "fay", "pw", "member").await;
    let (qid, gid) = c.project_with_user(&admin, "cq", "gus", "pw", "member").await;
    let fay = c.login("fay", "pw", Some("cp")).await.subject.unwrap();
    let gus = c.login("gus", "pw", Some("cq")).await.subject.unwrap();

    // A user keeps their own credentials; the blob is kept as given.
    let blob = r#"{"access": "AK1", "secret": "SK1"}"#;
    let body = json!({"credential": {"type": "ec2", "user_id": uid, "project_id": pid, "blob": blob}});
    let r = c.call("POST", "/v3/credentials", Some(&fay), Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let cred = r.json["credential"].clone();
    let cid = cred["id"].as_str().unwrap().to_string();
    assert_eq!(cid.len(), 64, "an ec2 credential's id is its access key's SHA-256");
    assert_eq!((cred["blob"].as_str(), cred["type"].as_str()), (Some(blob), Some("ec2")));
    assert_eq!(c.call("POST", "/v3/credentials", Some(&fay), Some(body)).await.status, StatusCode::CONFLICT);
    let totp = json!({"credential": {"type": "totp", "user_id": uid, "blob": "JBSWY3DPEHPK3PXP"}});
    let r = c.call("POST", "/v3/credentials", Some(&fay), Some(totp)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    // Only the blob changes.
    let path = format!("/v3/credentials/{cid}");
    let new_blob = r#"{"access": "AK2", "secret": "SK2"}"#;
    let r = c.call("PATCH", &path, Some(&fay), Some(json!({"credential": {"blob": new_blob}}))).await;
    assert_eq!((r.status, r.json["credential"]["blob"].as_str()), (StatusCode::OK, Some(new_blob)));
    assert_eq!(r.json["credential"]["id"], cid.as_str());
    for change in [json!({"project_id": qid}), json!({"user_id": gid}), json!({"type": "cert"}), json!({"blob": "x"})] {
        let r = c.call("PATCH", &path, Some(&fay), Some(json!({"credential": change}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{change}: {:?}", r.json);
    }
    // Another user sees none of it, and cannot make credentials in someone's name; an
    // ec2 credential needs a project its user works in.
    assert_eq!(c.call("GET", &path, Some(&gus), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &path, Some(&gus), None).await.status, StatusCode::NOT_FOUND);
    let r = c.call("GET", &format!("/v3/credentials?user_id={uid}"), Some(&gus), None).await;
    assert_eq!(r.json["credentials"], json!([]));
    let theirs = json!({"credential": {"type": "cert", "user_id": uid, "blob": "x"}});
    assert_eq!(c.call("POST", "/v3/credentials", Some(&gus), Some(theirs)).await.status, StatusCode::FORBIDDEN);
    let elsewhere =
        json!({"credential": {"type": "ec2", "user_id": gid, "project_id": pid, "blob": r#"{"access": "A"}"#}});
    assert_eq!(c.call("POST", "/v3/credentials", Some(&gus), Some(elsewhere)).await.status, StatusCode::FORBIDDEN);
    for bad in [
        json!({"credential": {"type": "ec2", "user_id": gid, "blob": r#"{"access": "A"}"#}}),
        json!({"credential": {"type": "ec2", "user_id": gid, "project_id": qid, "blob": "not json"}}),
        json!({"credential": {"type": "", "user_id": gid, "blob": "x"}}),
        json!({"credential": {"type": "cert", "user_id": gid, "blob": "x", "colour": 1}}),
    ] {
        let r = c.call("POST", "/v3/credentials", Some(&gus), Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.json);
    }
    // Lists: a user's own; an admin's, everyone's, filtered.
    let mine = c.call("GET", "/v3/credentials", Some(&fay), None).await;
    assert_eq!(mine.json["credentials"].as_array().unwrap().len(), 2);
    let ec2 = c.call("GET", &format!("/v3/credentials?type=ec2&user_id={uid}"), Some(&admin), None).await;
    assert_eq!(ec2.json["credentials"].as_array().unwrap().len(), 1);
    assert_eq!(c.call("DELETE", &path, Some(&fay), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &path, Some(&fay), None).await.status, StatusCode::NOT_FOUND);

    // EC2 credentials: an access/secret pair for a project the user works in.
    let ec2_path = format!("/v3/users/{uid}/credentials/OS-EC2");
    let r = c.call("POST", &ec2_path, Some(&fay), Some(json!({"tenant_id": pid}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let e = r.json["credential"].clone();
    let access = e["access"].as_str().unwrap().to_string();
    assert!(!e["secret"].as_str().unwrap().is_empty());
    assert_eq!((e["user_id"].as_str(), e["tenant_id"].as_str()), (Some(uid.as_str()), Some(pid.as_str())));
    let shown = c.call("GET", &format!("{ec2_path}/{access}"), Some(&fay), None).await;
    assert_eq!(shown.json["credential"]["secret"], e["secret"]);
    let listed = c.call("GET", &ec2_path, Some(&fay), None).await;
    assert_eq!(listed.json["credentials"][0]["access"], access.as_str());
    // It is a credential too.
    let general = c.call("GET", "/v3/credentials?type=ec2", Some(&fay), None).await;
    assert_eq!(general.json["credentials"].as_array().unwrap().len(), 1);
    let admins_view = c.call("GET", &format!("/v3/credentials?type=ec2&user_id={uid}"), Some(&admin), None).await;
    assert_eq!(admins_view.json["credentials"].as_array().unwrap().len(), 1);
    let r = c.call("POST", &ec2_path, Some(&fay), Some(json!({"tenant_id": qid}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "not fay's project");
    let r = c.call("POST", &ec2_path, Some(&admin), Some(json!({"tenant_id": qid}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "an admin binds any project: {:?}", r.json);
    assert_eq!(c.call("GET", &ec2_path, Some(&gus), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("GET", &format!("{ec2_path}/{access}"), Some(&gus), None).await.status, StatusCode::NOT_FOUND);
    let r = c.call("POST", &ec2_path, Some(&gus), Some(json!({"tenant_id": qid}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        c.call("DELETE", &format!("{ec2_path}/{access}"), Some(&fay), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("{ec2_path}/{access}"), Some(&fay), None).await.status, StatusCode::NOT_FOUND);

    // A user's credentials go with the user.
    c.call("POST", &ec2_path, Some(&fay), Some(json!({"tenant_id": pid}))).await;
    assert_eq!(c.call("DELETE", &format!("/v3/users/{uid}"), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    let left = c.call("GET", &format!("/v3/credentials?user_id={uid}"), Some(&admin), None).await;
    assert_eq!(left.json["credentials"], json!([]));
}

async fn inherited_role_assignments(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let mk = |name: &str, parent: Option<&str>| {
        let mut p = json!({"project": {"name": name}});
        if let Some(parent) = parent {
            p["project"]["parent_id"] = json!(parent);
        }
        p
    };
    let top = c.call("POST", "/v3/projects", Some(&admin), Some(mk("top", None))).await.json["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let leaf = c.call("POST", "/v3/projects", Some(&admin), Some(mk("leaf", Some(&top)))).await.json["project"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = c.call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": "ivy", "password": "pw"}}))).await;
    let uid = u.json["user"]["id"].as_str().unwrap().to_string();
    let member = c.role_id(&admin, "member").await;
    let login = |project: &'static str| c.login("ivy", "pw", Some(project));
    assert_eq!(login("leaf").await.status, StatusCode::UNAUTHORIZED, "no role yet");

    // On the domain: every project in it inherits the role, the domain itself does not.
    let grant = format!("/v3/OS-INHERIT/domains/default/users/{uid}/roles/{member}/inherited_to_projects");
    assert_eq!(c.call("PUT", &grant, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("HEAD", &grant, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    let listed = c
        .call(
            "GET",
            &format!("/v3/OS-INHERIT/domains/default/users/{uid}/roles/inherited_to_projects"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(listed.json["roles"][0]["id"], member.as_str());
    let direct = c.call("GET", &format!("/v3/domains/default/users/{uid}/roles"), Some(&admin), None).await;
    assert_eq!(direct.json["roles"], json!([]), "an inherited role is not held on the domain");
    let t = login("leaf").await;
    assert_eq!(t.status, StatusCode::CREATED, "{:?}", t.json);
    let t = t.subject.unwrap();
    assert_eq!(login("top").await.status, StatusCode::CREATED);
    let r = c.call("GET", &format!("/v3/role_assignments?user.id={uid}"), Some(&admin), None).await;
    let lines = r.json["role_assignments"].as_array().unwrap().clone();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["scope"], json!({"domain": {"id": "default"}, "OS-INHERIT:inherited_to": "projects"}));
    let inherited_only =
        c.call("GET", "/v3/role_assignments?scope.OS-INHERIT:inherited_to=projects", Some(&admin), None).await;
    assert_eq!(inherited_only.json["role_assignments"].as_array().unwrap().len(), 1);
    let eff = c
        .call(
            "GET",
            &format!("/v3/role_assignments?effective&user.id={uid}&scope.project.id={leaf}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(eff.json["role_assignments"][0]["scope"], json!({"project": {"id": leaf}}), "{:?}", eff.json);
    let projects = c.call("GET", &format!("/v3/users/{uid}/projects"), Some(&t), None).await;
    assert!(projects.json["projects"].as_array().unwrap().len() >= 2, "{:?}", projects.json);
    // Revoking takes the role away everywhere, and the tokens it gave.
    assert_eq!(c.call("DELETE", &grant, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("HEAD", &grant, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    let validate = c.call_with("GET", "/v3/auth/tokens", Some(&admin), None, &[("x-subject-token", &t)]).await;
    assert_eq!(validate.status, StatusCode::NOT_FOUND, "the token the inherited role gave is revoked");
    assert_eq!(login("leaf").await.status, StatusCode::UNAUTHORIZED);
    let eff = c
        .call(
            "GET",
            &format!("/v3/role_assignments?effective&user.id={uid}&scope.project.id={leaf}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(eff.json["role_assignments"], json!([]));

    // On a project: its subtree inherits, the project itself does not; through a group.
    let g = c.call("POST", "/v3/groups", Some(&admin), Some(json!({"group": {"name": "heirs"}}))).await;
    let gid = g.json["group"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.call("PUT", &format!("/v3/groups/{gid}/users/{uid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    let grant = format!("/v3/OS-INHERIT/projects/{top}/groups/{gid}/roles/{member}/inherited_to_projects");
    assert_eq!(c.call("PUT", &grant, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(login("leaf").await.status, StatusCode::CREATED);
    assert_eq!(login("top").await.status, StatusCode::UNAUTHORIZED);
    let eff = c.call("GET", &format!("/v3/role_assignments?effective&user.id={uid}"), Some(&admin), None).await;
    let scopes: Vec<&Value> = eff.json["role_assignments"].as_array().unwrap().iter().map(|l| &l["scope"]).collect();
    assert!(!scopes.is_empty() && scopes.iter().all(|s| **s == json!({"project": {"id": leaf}})), "{scopes:?}");
    // Unknown parts are 404; members may not grant.
    let ghost = format!("/v3/OS-INHERIT/projects/{top}/groups/{gid}/roles/nope/inherited_to_projects");
    assert_eq!(c.call("PUT", &ghost, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    let t = login("leaf").await.subject.unwrap();
    assert_eq!(c.call("PUT", &grant, Some(&t), None).await.status, StatusCode::FORBIDDEN);

    // A domain-specific role reaches no token and no effective assignment by itself.
    let r = c
        .call("POST", "/v3/roles", Some(&admin), Some(json!({"role": {"name": "local", "domain_id": "default"}})))
        .await;
    let local = r.json["role"]["id"].as_str().unwrap().to_string();
    let g = c.call("PUT", &format!("/v3/projects/{top}/users/{uid}/roles/{local}"), Some(&admin), None).await;
    assert_eq!(g.status, StatusCode::NO_CONTENT);
    assert_eq!(login("top").await.status, StatusCode::UNAUTHORIZED);
    let eff = c
        .call(
            "GET",
            &format!("/v3/role_assignments?effective&user.id={uid}&scope.project.id={top}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(eff.json["role_assignments"], json!([]));
}

async fn limits_and_the_limits_client(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, _) = c.project_with_user(&admin, "p", "frank", "pw", "member").await;
    let compute = c.call("GET", "/v3/services?type=compute", Some(&admin), None).await.json["services"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reg = c
        .call("GET", &format!("/v3/registered_limits?service_id={compute}&resource_name=instances"), Some(&admin), None)
        .await;
    assert_eq!(reg.json["registered_limits"][0]["default_limit"], 10);

    let source = std::sync::Arc::new(stratus_identity::app::InProcessLimitsSource::new(c.identity.store.clone()));
    let client = stratus_common::limits::LimitsClient::new(source, Duration::from_secs(300));
    client.spawn_invalidation(c.bus.clone());
    assert_eq!(client.limit(&pid, "compute", "instances").await.unwrap(), Some(10));

    let r = c.call("POST", "/v3/limits", Some(&admin), Some(json!({"limits": [{"project_id": pid, "service_id": compute, "resource_name": "instances", "resource_limit": 3}]}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let lid = r.json["limits"][0]["id"].as_str().unwrap().to_string();
    // The change event drops the cache (on NATS under load it may take a while).
    stratus_test_support::eventually("the cached limit to become 3", || async {
        client.limit(&pid, "compute", "instances").await.unwrap() == Some(3)
    })
    .await;
    // Duplicate and unregistered resources are refused, and nothing is written.
    let dup = c.call("POST", "/v3/limits", Some(&admin), Some(json!({"limits": [{"project_id": pid, "service_id": compute, "resource_name": "instances", "resource_limit": 4}]}))).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let unknown = c.call("POST", "/v3/limits", Some(&admin), Some(json!({"limits": [{"project_id": pid, "service_id": compute, "resource_name": "gpus", "resource_limit": 4}]}))).await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    let neg = c
        .call(
            "POST",
            "/v3/registered_limits",
            Some(&admin),
            Some(json!({"registered_limits": [{"service_id": compute, "resource_name": "x", "default_limit": -5}]})),
        )
        .await;
    assert_eq!(neg.status, StatusCode::BAD_REQUEST);
    // The member sees its project's limit, not to change it.
    let m = c.login("frank", "pw", Some("p")).await.subject.unwrap();
    let mine = c.call("GET", "/v3/limits", Some(&m), None).await;
    assert_eq!(mine.json["limits"].as_array().unwrap().len(), 1);
    assert_eq!(
        c.call("PATCH", &format!("/v3/limits/{lid}"), Some(&m), Some(json!({"limit": {"resource_limit": 100}})))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let up = c
        .call("PATCH", &format!("/v3/limits/{lid}"), Some(&admin), Some(json!({"limit": {"resource_limit": 7}})))
        .await;
    assert_eq!(up.json["limit"]["resource_limit"], 7);
    stratus_test_support::eventually("the cached limit to become 7", || async {
        client.limit(&pid, "compute", "instances").await.unwrap() == Some(7)
    })
    .await;
    assert_eq!(c.call("GET", "/v3/limits/model", Some(&m), None).await.json["model"]["name"], "flat");
}

async fn bad_input_gets_a_clear_400_and_changes_nothing(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let before = c.call("GET", "/v3/projects", Some(&admin), None).await.json["projects"].as_array().unwrap().len();
    let r =
        c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": "x", "enabled": "yes"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("project.enabled"), "{:?}", r.json);
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"description": "no name"}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": "x", "domain_id": "nope"}})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": ""}}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = c
        .call(
            "POST",
            "/v3/endpoints",
            Some(&admin),
            Some(json!({"endpoint": {"service_id": "x", "interface": "sideways", "url": "http://x"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json["error"]["message"].as_str().unwrap().contains("interface"));
    let after = c.call("GET", "/v3/projects", Some(&admin), None).await.json["projects"].as_array().unwrap().len();
    assert_eq!(before, after);
    // Duplicates are 409; unknown routes 404 and wrong methods 405, in Keystone's shape.
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": "admin"}}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = c.call("GET", "/v3/nothing-here", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"]["code"], 404);
    let r = c.call("PUT", "/v3/projects", Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.json["error"]["code"], 405);
    // A body over the limit is refused.
    let big = "x".repeat(2 * 1024 * 1024);
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": big}}))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Missing token.
    assert_eq!(c.call("GET", "/v3/projects", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.call("GET", "/v3/projects", Some("garbage"), None).await.status, StatusCode::UNAUTHORIZED);
}

async fn crud_lists_filters_and_pages(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    for i in 0..5 {
        let r = c
            .call(
                "POST",
                "/v3/projects",
                Some(&admin),
                Some(json!({"project": {"name": format!("pp{i}"), "tags": ["t"], "email": "x@y"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.json["project"]["email"], "x@y", "extra attributes are echoed");
    }
    let page = c.call("GET", "/v3/projects?limit=2&sort_key=name", Some(&admin), None).await;
    assert_eq!(page.json["projects"].as_array().unwrap().len(), 2);
    let next = page.json["links"]["next"].as_str().unwrap();
    let path = next.strip_prefix(BASE).unwrap();
    let page2 = c.call("GET", path, Some(&admin), None).await;
    assert_eq!(page2.json["projects"].as_array().unwrap().len(), 2);
    assert_ne!(page.json["projects"][0]["id"], page2.json["projects"][0]["id"]);
    let by_name = c.call("GET", "/v3/projects?name=pp3", Some(&admin), None).await;
    assert_eq!(by_name.json["projects"].as_array().unwrap().len(), 1);
    let pid = by_name.json["projects"][0]["id"].as_str().unwrap().to_string();

    // The tags sub-resource: list, add one, check one, replace all, remove one, clear.
    let tags = format!("/v3/projects/{pid}/tags");
    assert_eq!(c.call("GET", &tags, Some(&admin), None).await.json["tags"], json!(["t"]));
    assert_eq!(c.call("PUT", &format!("{tags}/blue"), Some(&admin), None).await.status, StatusCode::CREATED);
    assert_eq!(c.call("GET", &format!("{tags}/blue"), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("{tags}/red"), Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    let all = c.call("PUT", &tags, Some(&admin), Some(json!({"tags": ["a", "b", "c"]}))).await;
    assert_eq!((all.status, all.json["tags"].clone()), (StatusCode::OK, json!(["a", "b", "c"])));
    let bad = c.call("PUT", &tags, Some(&admin), Some(json!({"tags": ["a/b"]}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "a tag with '/' is refused and nothing changes");
    assert_eq!(c.call("DELETE", &format!("{tags}/b"), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("DELETE", &format!("{tags}/b"), Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    let shown = c.call("GET", &format!("/v3/projects/{pid}"), Some(&admin), None).await;
    assert_eq!(shown.json["project"]["tags"], json!(["a", "c"]));
    assert_eq!(c.call("DELETE", &tags, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &tags, Some(&admin), None).await.json["tags"], json!([]));

    // Domains must be disabled before deletion, and take their contents with them.
    let d = c.call("POST", "/v3/domains", Some(&admin), Some(json!({"domain": {"name": "d1"}}))).await;
    let did = d.json["domain"]["id"].as_str().unwrap().to_string();
    c.call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": "u", "domain_id": did}}))).await;
    assert_eq!(c.call("DELETE", &format!("/v3/domains/{did}"), Some(&admin), None).await.status, StatusCode::FORBIDDEN);
    c.call("PATCH", &format!("/v3/domains/{did}"), Some(&admin), Some(json!({"domain": {"enabled": false}}))).await;
    assert_eq!(
        c.call("DELETE", &format!("/v3/domains/{did}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.call("GET", &format!("/v3/users?domain_id={did}"), Some(&admin), None).await.json["users"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Groups give roles to their members.
    let g = c.call("POST", "/v3/groups", Some(&admin), Some(json!({"group": {"name": "devs"}}))).await;
    let gid = g.json["group"]["id"].as_str().unwrap().to_string();
    let u = c.call("POST", "/v3/users", Some(&admin), Some(json!({"user": {"name": "gina", "password": "pw"}}))).await;
    let uid = u.json["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        c.call("PUT", &format!("/v3/groups/{gid}/users/{uid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.call("HEAD", &format!("/v3/groups/{gid}/users/{uid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    let rid = c.role_id(&admin, "member").await;
    assert_eq!(
        c.call("PUT", &format!("/v3/projects/{pid}/groups/{gid}/roles/{rid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.login("gina", "pw", Some("pp3")).await.status, StatusCode::CREATED);
    let ra =
        c.call("GET", &format!("/v3/role_assignments?effective&include_names&user.id={uid}"), Some(&admin), None).await;
    let first = &ra.json["role_assignments"][0];
    assert_eq!(first["user"]["name"], "gina");
    assert_eq!(first["scope"]["project"]["name"], "pp3");
    assert!(first["links"]["membership"].is_string());
    let t = c.login("gina", "pw", Some("pp3")).await.subject.unwrap();
    assert_eq!(
        c.call("DELETE", &format!("/v3/groups/{gid}/users/{uid}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("/v3/users/{uid}"), Some(&t), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(c.login("gina", "pw", Some("pp3")).await.status, StatusCode::UNAUTHORIZED);

    // Implied roles.
    let r1 = c.call("POST", "/v3/roles", Some(&admin), Some(json!({"role": {"name": "ops"}}))).await.json["role"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reader = c.role_id(&admin, "reader").await;
    assert_eq!(
        c.call("PUT", &format!("/v3/roles/{r1}/implies/{reader}"), Some(&admin), None).await.status,
        StatusCode::CREATED
    );
    let loop_ = c.call("PUT", &format!("/v3/roles/{reader}/implies/{r1}"), Some(&admin), None).await;
    assert_eq!(loop_.status, StatusCode::FORBIDDEN);
    let inf = c.call("GET", "/v3/role_inferences", Some(&admin), None).await;
    assert!(inf.json["role_inferences"].as_array().unwrap().len() >= 3);
}

async fn lockout_after_failures(engine: Engine) {
    let config = stratus_identity::config::IdentityConfig {
        lockout_failure_attempts: 3,
        lockout_duration_secs: 60,
        ..test_config()
    };
    let c = TestCloud::start_with(engine, config, Bus::Memory(MemoryBus::new())).await;
    for _ in 0..3 {
        assert_eq!(c.login("admin", "bad", Some("admin")).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(c.login("admin", ADMIN_PASSWORD, Some("admin")).await.status, StatusCode::UNAUTHORIZED, "locked");
    // A service user marked as Keystone's ignore_lockout_failure_attempts cannot be
    // locked out by someone guessing its password.
    let admin = c.identity.internal_token("admin", "admin").await.unwrap().token;
    let body = json!({"user": {"name": "svc", "password": "svc-secret-1", "options": {"ignore_lockout_failure_attempts": true}}});
    let r = c.call("POST", "/v3/users", Some(&admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.json["user"]["options"]["ignore_lockout_failure_attempts"], true);
    for _ in 0..5 {
        assert_eq!(c.login("svc", "guess", None).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(c.login("svc", "svc-secret-1", None).await.status, StatusCode::CREATED, "not locked");
    let bad = json!({"user": {"name": "svc2", "options": {"ignore_lockout_failure_attempts": "yes"}}});
    assert_eq!(c.call("POST", "/v3/users", Some(&admin), Some(bad)).await.status, StatusCode::BAD_REQUEST);
    // Lockout is on by default, as the example configuration says.
    assert_eq!(stratus_identity::config::IdentityConfig::default().lockout_failure_attempts, 5);
}

async fn manager_role_sits_between_admin_and_member(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    c.project_with_user(&admin, "proj-m", "mia", "pw-m", "manager").await;
    let t = c.login("mia", "pw-m", Some("proj-m")).await;
    let mut roles: Vec<String> =
        t.json["token"]["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
    roles.sort();
    assert_eq!(roles, ["manager", "member", "reader"], "Keystone 2024.1's defaults");
    let a = c.login("admin", ADMIN_PASSWORD, Some("admin")).await;
    let names: Vec<&str> =
        a.json["token"]["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"manager"), "{names:?}");
}

/// Signs a request as an OAuth1 consumer does (HMAC-SHA1, RFC 5849): returns the
/// `Authorization` header. The module's signing is checked against oauthlib's in its
/// unit tests; the end-to-end test drives the real clients.
fn oauth_header(path: &str, consumer: (&str, &str), token: Option<(&str, &str)>, extra: &[(&str, &str)]) -> String {
    use stratus_identity::app::oauth1::{base_string, hmac_sha1_signature, percent_encode};
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut params: Vec<(String, String)> = vec![
        ("oauth_consumer_key".into(), consumer.0.into()),
        ("oauth_nonce".into(), nonce),
        ("oauth_signature_method".into(), "HMAC-SHA1".into()),
        ("oauth_timestamp".into(), chrono::Utc::now().timestamp().to_string()),
        ("oauth_version".into(), "1.0".into()),
    ];
    if let Some((key, _)) = token {
        params.push(("oauth_token".into(), key.into()));
    }
    params.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let base = base_string("POST", &format!("{BASE}{path}"), &params);
    let sig = hmac_sha1_signature(&base, consumer.1, token.map(|t| t.1).unwrap_or(""));
    params.push(("oauth_signature".into(), sig));
    let fields: Vec<String> = params.iter().map(|(k, v)| format!("{k}=\"{}\"", percent_encode(v))).collect();
    format!("OAuth {}", fields.join(", "))
}

fn form(text: &Value) -> std::collections::HashMap<String, String> {
    text.as_str()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3A", ":")))
        .collect()
}

async fn oauth1_delegation(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, uid) = c.project_with_user(&admin, "p", "dave", "pw", "member").await;
    let dave = c.login("dave", "pw", Some("p")).await.subject.unwrap();
    // Consumers are an admin's to manage; the secret is shown once.
    let body = json!({"consumer": {"description": "ci robot"}});
    assert_eq!(
        c.call("POST", "/v3/OS-OAUTH1/consumers", Some(&dave), Some(body.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    let r = c.call("POST", "/v3/OS-OAUTH1/consumers", Some(&admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let (ckey, csecret) = (
        r.json["consumer"]["id"].as_str().unwrap().to_string(),
        r.json["consumer"]["secret"].as_str().unwrap().to_string(),
    );
    let shown = c.call("GET", &format!("/v3/OS-OAUTH1/consumers/{ckey}"), Some(&admin), None).await;
    assert_eq!(shown.json["consumer"]["description"], "ci robot");
    assert!(shown.json["consumer"]["secret"].is_null());
    let bad = c
        .call(
            "PATCH",
            &format!("/v3/OS-OAUTH1/consumers/{ckey}"),
            Some(&admin),
            Some(json!({"consumer": {"secret": "x"}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // 1. A request token for the project, signed with the consumer's secret.
    let path = "/v3/OS-OAUTH1/request_token";
    let h = oauth_header(path, (&ckey, &csecret), None, &[("oauth_callback", "oob")]);
    let r = c.call_with("POST", path, None, None, &[("authorization", &h), ("requested-project-id", &pid)]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let rt = form(&r.json);
    let (rkey, rsecret) = (rt["oauth_token"].clone(), rt["oauth_token_secret"].clone());
    assert!(rt.contains_key("oauth_expires_at"));
    // A wrong secret is refused.
    let h = oauth_header(path, (&ckey, "not-it"), None, &[]);
    let r = c.call_with("POST", path, None, None, &[("authorization", &h), ("requested-project-id", &pid)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // 2. Dave delegates a role he holds (not one he does not) and gets the verifier.
    let auth_path = format!("/v3/OS-OAUTH1/authorize/{rkey}");
    let r = c.call("PUT", &auth_path, Some(&dave), Some(json!({"roles": [{"name": "admin"}]}))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json);
    let r = c.call("PUT", &auth_path, Some(&dave), Some(json!({"roles": [{"name": "reader"}]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json);
    let verifier = r.json["token"]["oauth_verifier"].as_str().unwrap().to_string();
    assert_eq!(
        c.call("PUT", &auth_path, Some(&dave), Some(json!({"roles": [{"name": "reader"}]}))).await.status,
        StatusCode::UNAUTHORIZED
    );

    // 3. The consumer exchanges it, once, for an access token.
    let path = "/v3/OS-OAUTH1/access_token";
    let h = oauth_header(path, (&ckey, &csecret), Some((&rkey, &rsecret)), &[("oauth_verifier", "wrong")]);
    assert_eq!(c.call_with("POST", path, None, None, &[("authorization", &h)]).await.status, StatusCode::UNAUTHORIZED);
    let h = oauth_header(path, (&ckey, &csecret), Some((&rkey, &rsecret)), &[("oauth_verifier", &verifier)]);
    let r = c.call_with("POST", path, None, None, &[("authorization", &h)]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let at = form(&r.json);
    let (akey, asecret) = (at["oauth_token"].clone(), at["oauth_token_secret"].clone());
    let h = oauth_header(path, (&ckey, &csecret), Some((&rkey, &rsecret)), &[("oauth_verifier", &verifier)]);
    assert_eq!(c.call_with("POST", path, None, None, &[("authorization", &h)]).await.status, StatusCode::UNAUTHORIZED);

    // 4. Tokens on Dave's behalf: the project, only the delegated role.
    let tokens = "/v3/auth/tokens";
    let body = json!({"auth": {"identity": {"methods": ["oauth1"], "oauth1": {}}}});
    let h = oauth_header(tokens, (&ckey, &csecret), Some((&akey, &asecret)), &[]);
    let r = c.call_with("POST", tokens, None, Some(body.clone()), &[("authorization", &h)]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let t = &r.json["token"];
    assert_eq!(t["project"]["id"], pid.as_str());
    assert_eq!(t["user"]["id"], uid.as_str());
    assert_eq!(t["methods"], json!(["oauth1"]));
    assert_eq!(
        t["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect::<Vec<_>>(),
        vec!["reader"]
    );
    assert_eq!(t["OS-OAUTH1"], json!({"access_token_id": akey, "consumer_id": ckey}));
    let derived = r.subject.unwrap();
    assert_eq!(c.call("GET", &format!("/v3/projects/{pid}"), Some(&derived), None).await.status, StatusCode::OK);
    // The same signed request again is a replay.
    assert_eq!(
        c.call_with("POST", tokens, None, Some(body.clone()), &[("authorization", &h)]).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A derived token gets no new tokens and delegates nothing further.
    let rescope = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": derived}}}});
    assert_eq!(c.call("POST", tokens, None, Some(rescope)).await.status, StatusCode::FORBIDDEN);
    let ac = json!({"application_credential": {"name": "x"}});
    assert_eq!(
        c.call("POST", &format!("/v3/users/{uid}/application_credentials"), Some(&derived), Some(ac)).await.status,
        StatusCode::FORBIDDEN
    );

    // Dave sees his access tokens and what they delegate; another user does not.
    let list = c.call("GET", &format!("/v3/users/{uid}/OS-OAUTH1/access_tokens"), Some(&dave), None).await;
    assert_eq!(list.json["access_tokens"][0]["id"], akey.as_str());
    assert_eq!(list.json["access_tokens"][0]["project_id"], pid.as_str());
    let roles =
        c.call("GET", &format!("/v3/users/{uid}/OS-OAUTH1/access_tokens/{akey}/roles"), Some(&dave), None).await;
    assert_eq!(roles.json["roles"][0]["name"], "reader");
    c.project_with_user(&admin, "q", "erin", "pw", "member").await;
    let erin = c.login("erin", "pw", Some("q")).await.subject.unwrap();
    let r = c.call("GET", &format!("/v3/users/{uid}/OS-OAUTH1/access_tokens/{akey}"), Some(&erin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.call("DELETE", &format!("/v3/users/{uid}/OS-OAUTH1/access_tokens/{akey}"), Some(&erin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Withdrawing the access token revokes what it bought and stops the consumer.
    let r = c.call("DELETE", &format!("/v3/users/{uid}/OS-OAUTH1/access_tokens/{akey}"), Some(&dave), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        c.call("GET", &format!("/v3/projects/{pid}"), Some(&derived), None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let h = oauth_header(tokens, (&ckey, &csecret), Some((&akey, &asecret)), &[]);
    assert_eq!(
        c.call_with("POST", tokens, None, Some(body), &[("authorization", &h)]).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Deleting a user takes the access tokens they authorised with them.
    let r = c
        .call(
            "PUT",
            &format!("/v3/OS-OAUTH1/authorize/{rkey}"),
            Some(&dave),
            Some(json!({"roles": [{"name": "reader"}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a request token buys one access token: {:?}", r.json);
    let path = "/v3/OS-OAUTH1/request_token";
    let h = oauth_header(path, (&ckey, &csecret), None, &[("oauth_callback", "oob")]);
    let rt = form(
        &c.call_with("POST", path, None, None, &[("authorization", &h), ("requested-project-id", &pid)]).await.json,
    );
    let r = c
        .call(
            "PUT",
            &format!("/v3/OS-OAUTH1/authorize/{}", rt["oauth_token"]),
            Some(&dave),
            Some(json!({"roles": [{"name": "reader"}]})),
        )
        .await;
    let verifier = r.json["token"]["oauth_verifier"].as_str().unwrap().to_string();
    let path = "/v3/OS-OAUTH1/access_token";
    let h = oauth_header(
        path,
        (&ckey, &csecret),
        Some((&rt["oauth_token"], &rt["oauth_token_secret"])),
        &[("oauth_verifier", &verifier)],
    );
    let at2 = form(&c.call_with("POST", path, None, None, &[("authorization", &h)]).await.json);
    assert_eq!(c.call("DELETE", &format!("/v3/users/{uid}"), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    let h = oauth_header(tokens, (&ckey, &csecret), Some((&at2["oauth_token"], &at2["oauth_token_secret"])), &[]);
    let body = json!({"auth": {"identity": {"methods": ["oauth1"], "oauth1": {}}}});
    assert_eq!(
        c.call_with("POST", tokens, None, Some(body), &[("authorization", &h)]).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(c.identity.store.access_token_list(&uid).await.unwrap().len(), 0);
    // Nonces live in the database (every identity process sees them), each accepted
    // once within the window and forgotten after it.
    let store = &c.identity.store;
    assert!(store.oauth_nonce_fresh("c1", "n1", 1000, 400).await.unwrap());
    assert!(!store.oauth_nonce_fresh("c1", "n1", 1001, 401).await.unwrap(), "a replay");
    assert!(store.oauth_nonce_fresh("c2", "n1", 1001, 401).await.unwrap(), "another consumer's");
    assert!(store.oauth_nonce_fresh("c1", "n1", 2000, 1400).await.unwrap(), "after the window");

    // Deleting the consumer takes its tokens with it.
    assert_eq!(
        c.call("DELETE", &format!("/v3/OS-OAUTH1/consumers/{ckey}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        c.call("GET", &format!("/v3/OS-OAUTH1/consumers/{ckey}"), Some(&admin), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn oauth1() {
    each_engine!(oauth1_delegation);
}

async fn projects_acting_as_domains(engine: Engine) {
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let body = json!({"project": {"name": "acme", "is_domain": true, "description": "a tenant company"}});
    let r = c.call("POST", "/v3/projects", Some(&admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let p = &r.json["project"];
    assert_eq!(
        (p["is_domain"].clone(), p["domain_id"].clone(), p["parent_id"].clone()),
        (json!(true), json!(null), json!(null))
    );
    let id = p["id"].as_str().unwrap().to_string();
    // It is a domain, and a project when asked for as one.
    assert_eq!(c.call("GET", &format!("/v3/domains/{id}"), Some(&admin), None).await.json["domain"]["name"], "acme");
    let shown = c.call("GET", &format!("/v3/projects/{id}"), Some(&admin), None).await;
    assert_eq!(shown.json["project"]["is_domain"], true);
    let ids = |r: &support::Resp| {
        r.json["projects"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let listed = c.call("GET", "/v3/projects?is_domain=true", Some(&admin), None).await;
    assert!(listed.json["projects"].is_array(), "{:?}", listed);
    assert!(ids(&listed).contains(&id));
    assert!(!ids(&c.call("GET", "/v3/projects", Some(&admin), None).await).contains(&id));
    // Projects go inside it as in any domain.
    let inner =
        c.call("POST", "/v3/projects", Some(&admin), Some(json!({"project": {"name": "web", "domain_id": id}}))).await;
    assert_eq!(inner.status, StatusCode::CREATED, "{:?}", inner.json);
    // Refusals change nothing: a parent, a member.
    let bad = json!({"project": {"name": "x", "is_domain": true, "parent_id": id}});
    assert_eq!(c.call("POST", "/v3/projects", Some(&admin), Some(bad)).await.status, StatusCode::BAD_REQUEST);
    c.project_with_user(&admin, "p", "dave", "pw", "member").await;
    let dave = c.login("dave", "pw", Some("p")).await.subject.unwrap();
    let body = json!({"project": {"name": "mine", "is_domain": true}});
    assert_eq!(c.call("POST", "/v3/projects", Some(&dave), Some(body)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", &format!("/v3/projects/{id}"), Some(&dave), None).await.status, StatusCode::NOT_FOUND);
    assert!(ids(&c.call("GET", "/v3/projects?is_domain=true", Some(&dave), None).await).is_empty());
    // Disabled and deleted through the projects API, as its domain.
    let off = c
        .call("PATCH", &format!("/v3/projects/{id}"), Some(&admin), Some(json!({"project": {"enabled": false}})))
        .await;
    assert_eq!(off.json["project"]["enabled"], false, "{:?}", off.json);
    assert_eq!(c.call("GET", &format!("/v3/domains/{id}"), Some(&admin), None).await.json["domain"]["enabled"], false);
    assert_eq!(
        c.call("DELETE", &format!("/v3/projects/{id}"), Some(&admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(c.call("GET", &format!("/v3/domains/{id}"), Some(&admin), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn is_domain_projects() {
    each_engine!(projects_acting_as_domains);
}

#[tokio::test]
async fn manager_role() {
    each_engine!(manager_role_sits_between_admin_and_member);
}

#[tokio::test]
async fn tokens() {
    each_engine!(tokens_issue_validate_and_revoke);
}
#[tokio::test]
async fn authentication_failures() {
    each_engine!(wrong_password_and_unknown_user_look_the_same);
}
#[tokio::test]
async fn rbac() {
    each_engine!(members_manage_nothing_and_see_only_their_own);
}
#[tokio::test]
async fn revocation() {
    each_engine!(revocations_follow_identity_changes);
}
#[tokio::test]
async fn rotation() {
    each_engine!(rotation_keeps_valid_tokens);
}
#[tokio::test]
async fn expiry() {
    each_engine!(expired_tokens_are_refused);
}
#[tokio::test]
async fn app_creds() {
    each_engine!(application_credentials);
}
#[tokio::test]
async fn credentials() {
    each_engine!(credentials_and_ec2_credentials);
}
#[tokio::test]
async fn inherited_roles() {
    each_engine!(inherited_role_assignments);
}
#[tokio::test]
async fn limits() {
    each_engine!(limits_and_the_limits_client);
}
#[tokio::test]
async fn validation() {
    each_engine!(bad_input_gets_a_clear_400_and_changes_nothing);
}
#[tokio::test]
async fn crud() {
    each_engine!(crud_lists_filters_and_pages);
}
#[tokio::test]
async fn lockout() {
    each_engine!(lockout_after_failures);
}

async fn policy_documents(engine: Engine) {
    // The deprecated policies API: an admin's store of documents, nothing more.
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    c.project_with_user(&admin, "pp", "hal", "pw", "member").await;
    let hal = c.login("hal", "pw", Some("pp")).await.subject.unwrap();
    let body = json!({"policy": {"type": "application/json", "blob": "{\"default\": \"\"}"}});
    assert_eq!(c.call("POST", "/v3/policies", Some(&hal), Some(body.clone())).await.status, StatusCode::FORBIDDEN);
    assert_eq!(c.call("GET", "/v3/policies", Some(&hal), None).await.status, StatusCode::FORBIDDEN);
    let bad = json!({"policy": {"type": "", "blob": "x"}});
    assert_eq!(c.call("POST", "/v3/policies", Some(&admin), Some(bad)).await.status, StatusCode::BAD_REQUEST);
    let r = c.call("POST", "/v3/policies", Some(&admin), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let id = r.json["policy"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.json["policy"]["blob"], "{\"default\": \"\"}");
    let path = format!("/v3/policies/{id}");
    let r = c.call("PATCH", &path, Some(&admin), Some(json!({"policy": {"type": "text/plain"}}))).await;
    assert_eq!((r.status, r.json["policy"]["type"].as_str()), (StatusCode::OK, Some("text/plain")));
    assert_eq!(r.json["policy"]["blob"], "{\"default\": \"\"}", "the blob stays");
    let listed = c.call("GET", "/v3/policies?type=text/plain", Some(&admin), None).await;
    assert_eq!(listed.json["policies"].as_array().unwrap().len(), 1, "{:?}", listed.json);
    let none = c.call("GET", "/v3/policies?type=application/json", Some(&admin), None).await;
    assert_eq!(none.json["policies"], json!([]));
    assert_eq!(c.call("DELETE", &path, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &path, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &path, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn policies_are_documents_an_admin_keeps() {
    each_engine!(policy_documents);
}

async fn endpoint_filters(engine: Engine) {
    // OS-EP-FILTER: an admin limits a project's catalog to endpoints named one by one
    // or by endpoint groups.
    let c = TestCloud::start(engine).await;
    let admin = c.admin_token().await;
    let (pid, _) = c.project_with_user(&admin, "ep", "eve", "pw", "member").await;
    let mut made = Vec::new();
    for (name, kind) in [("alpha", "alpha-type"), ("beta", "beta-type")] {
        let s =
            c.call("POST", "/v3/services", Some(&admin), Some(json!({"service": {"name": name, "type": kind}}))).await;
        let sid = s.json["service"]["id"].as_str().unwrap().to_string();
        let mut eps = Vec::new();
        for interface in ["public", "internal"] {
            let body = json!({"endpoint": {"service_id": sid, "interface": interface, "url": format!("http://{name}/{interface}")}});
            let e = c.call("POST", "/v3/endpoints", Some(&admin), Some(body)).await;
            assert_eq!(e.status, StatusCode::CREATED, "{:?}", e.json);
            eps.push(e.json["endpoint"]["id"].as_str().unwrap().to_string());
        }
        made.push((sid, eps));
    }
    let catalog = |token: String| {
        let c = &c;
        async move {
            let r = c.call("GET", "/v3/auth/catalog", Some(&token), None).await;
            let mut urls: Vec<String> = r.json["catalog"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["endpoints"].as_array().unwrap().iter().map(|e| e["url"].as_str().unwrap().to_string()))
                .filter(|u| u.starts_with("http://alpha") || u.starts_with("http://beta"))
                .collect();
            urls.sort();
            urls
        }
    };
    let eve = || async { c.login("eve", "pw", Some("ep")).await.subject.unwrap() };
    assert_eq!(catalog(eve().await).await.len(), 4, "no link: the whole catalog");

    // Only admins; bad filters are refused.
    let group = json!({"endpoint_group": {"name": "alpha-public", "filters": {"service_id": made[0].0, "interface": "public"}}});
    let eve_token = eve().await;
    assert_eq!(
        c.call("POST", "/v3/OS-EP-FILTER/endpoint_groups", Some(&eve_token), Some(group.clone())).await.status,
        StatusCode::FORBIDDEN
    );
    for filters in [json!({}), json!({"colour": "red"}), json!({"interface": "sideways"})] {
        let bad = json!({"endpoint_group": {"name": "x", "filters": filters}});
        let r = c.call("POST", "/v3/OS-EP-FILTER/endpoint_groups", Some(&admin), Some(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{filters}");
    }
    let r = c.call("POST", "/v3/OS-EP-FILTER/endpoint_groups", Some(&admin), Some(group)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
    let gid = r.json["endpoint_group"]["id"].as_str().unwrap().to_string();
    let g = format!("/v3/OS-EP-FILTER/endpoint_groups/{gid}");
    let r = c.call("GET", &format!("{g}/endpoints"), Some(&admin), None).await;
    assert_eq!(r.json["endpoints"].as_array().unwrap().len(), 1, "{:?}", r.json);

    // Linked to the group: the project sees only the group's endpoints; a direct link
    // adds one more.
    assert_eq!(c.call("PUT", &format!("{g}/projects/{pid}"), Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &format!("{g}/projects/{pid}"), Some(&admin), None).await.status, StatusCode::OK);
    assert_eq!(catalog(eve().await).await, ["http://alpha/public"]);
    let direct = format!("/v3/OS-EP-FILTER/projects/{pid}/endpoints/{}", made[1].1[1]);
    assert_eq!(c.call("PUT", &direct, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("GET", &direct, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(catalog(eve().await).await, ["http://alpha/public", "http://beta/internal"]);
    let r = c.call("GET", &format!("/v3/OS-EP-FILTER/projects/{pid}/endpoints"), Some(&admin), None).await;
    assert_eq!(r.json["endpoints"].as_array().unwrap().len(), 2, "{:?}", r.json);
    let r = c.call("GET", &format!("/v3/OS-EP-FILTER/projects/{pid}/endpoint_groups"), Some(&admin), None).await;
    assert_eq!(r.json["endpoint_groups"][0]["id"], json!(gid));
    let r = c.call("GET", &format!("/v3/OS-EP-FILTER/endpoints/{}/projects", made[1].1[1]), Some(&admin), None).await;
    assert_eq!(r.json["projects"][0]["id"], json!(pid));
    // The group's filters changed: what the project sees follows.
    let patch = json!({"endpoint_group": {"filters": {"service_id": made[0].0}}});
    assert_eq!(c.call("PATCH", &g, Some(&admin), Some(patch)).await.status, StatusCode::OK);
    assert_eq!(catalog(eve().await).await, ["http://alpha/internal", "http://alpha/public", "http://beta/internal"]);
    // Links go: the whole catalog again.
    assert_eq!(c.call("DELETE", &direct, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(c.call("DELETE", &direct, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(c.call("DELETE", &g, Some(&admin), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(catalog(eve().await).await.len(), 4);
    assert_eq!(c.call("GET", &g, Some(&admin), None).await.status, StatusCode::NOT_FOUND);
    let r = c.call("PUT", &format!("/v3/OS-EP-FILTER/projects/{pid}/endpoints/nowhere"), Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn endpoint_filters_limit_a_projects_catalog() {
    each_engine!(endpoint_filters);
}
