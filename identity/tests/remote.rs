//! What services in other processes use, against identity on a real socket: the HTTP key
//! source behind their token verifier, revocations over the bus, and the HTTP limits
//! source behind their quota client.

mod support;

use axum::http::StatusCode;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use stratus_common::auth::{HttpKeySource, TokenVerifier, VerifyError};
use stratus_common::bus::{Bus, MemoryBus};
use stratus_common::limits::{HttpLimitsSource, LimitsClient, ServiceCredentials};
use support::*;

async fn serve(c: &TestCloud) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = c.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn remote_verifier_and_limits(engine: stratus_common::db::Engine) {
    let bus = match std::env::var("STRATUS_TEST_NATS") {
        Ok(url) if !url.is_empty() => Bus::connect(&url).await.unwrap(),
        _ => Bus::Memory(MemoryBus::new()),
    };
    let c = TestCloud::start_with(engine, test_config(), bus.clone()).await;
    let url = serve(&c).await;

    // A verifier elsewhere, as another service runs it: keys over HTTP, news over the bus.
    let verifier = TokenVerifier::new(Arc::new(HttpKeySource::new(&url))).await.unwrap();
    verifier.spawn_background(bus.clone(), Duration::from_secs(600));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = c.admin_token().await;
    let other = c.admin_token().await;
    let claims = verifier.verify(&other).await.unwrap();
    assert!(claims.has_role("admin"));
    assert_eq!(verifier.verify("not-a-token").await.unwrap_err(), VerifyError::Malformed);

    let r = c.call_with("DELETE", "/v3/auth/tokens", Some(&admin), None, &[("x-subject-token", &other)]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while verifier.verify(&other).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "revocation not seen within a second");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(verifier.verify(&other).await.unwrap_err(), VerifyError::Revoked);

    // A rotation elsewhere: the remote verifier learns the new key when it first meets it.
    c.identity.keys.rotate().await.unwrap();
    c.identity.keys.rotate().await.unwrap();
    let fresh = c.admin_token().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(verifier.verify(&fresh).await.is_ok());

    // Limits over HTTP with a service user's credentials.
    let (pid, _) = c.project_with_user(&admin, "p", "quota-user", "pw", "member").await;
    let creds = ServiceCredentials {
        username: "admin".into(),
        password: ADMIN_PASSWORD.into(),
        project: "admin".into(),
        domain: "Default".into(),
    };
    let limits = LimitsClient::new(Arc::new(HttpLimitsSource::new(&url, creds)), Duration::from_secs(300));
    limits.spawn_invalidation(bus.clone());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(limits.limit(&pid, "compute", "instances").await.unwrap(), Some(10));
    let compute = c.call("GET", "/v3/services?type=compute", Some(&admin), None).await.json["services"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"limits": [{"project_id": pid, "service_id": compute, "resource_name": "instances", "resource_limit": 2}]});
    assert_eq!(c.call("POST", "/v3/limits", Some(&admin), Some(body)).await.status, StatusCode::CREATED);
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        if limits.limit(&pid, "compute", "instances").await.unwrap() == Some(2) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "limit change not seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn remote_services() {
    each_engine!(remote_verifier_and_limits);
}
