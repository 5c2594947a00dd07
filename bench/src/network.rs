//! `stratus-bench --network`: port create rate at 8 and 32 concurrent clients, and
//! `GET /v2.0/ports` latency with 10,000 ports (a page of 100, and unpaged).
//! Targets from the network issue: at least 500 port creates/s, and the unpaged list
//! of 10,000 ports in under a second, on SQLite and on PostgreSQL (`--database-url`).

use super::{admin_token, print, run_with, Args, MakeRequest, Server};
use anyhow::Context;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn get_json(client: &reqwest::Client, url: String, token: &str) -> anyhow::Result<Value> {
    Ok(client.get(url).header("x-auth-token", token).send().await?.error_for_status()?.json().await?)
}

async fn post_json(client: &reqwest::Client, url: String, token: &str, body: Value) -> anyhow::Result<Value> {
    Ok(client.post(url).header("x-auth-token", token).json(&body).send().await?.error_for_status()?.json().await?)
}

pub async fn bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let token = admin_token(&client, &server.url).await?;
    let pid = server.child.id();
    let net = &server.network_url;
    // Room in the admin project's network quotas for everything the benchmark makes.
    let services = get_json(&client, format!("{}/v3/services?type=network", server.url), &token).await?;
    let sid = services["services"][0]["id"].as_str().context("no network service")?.to_string();
    let projects = get_json(&client, format!("{}/v3/auth/projects", server.url), &token).await?;
    let project = projects["projects"][0]["id"].as_str().context("no project")?.to_string();
    let limit = (args.ports as i64) * 4 + 100_000;
    let limits = json!({"limits": [{"project_id": project, "service_id": sid, "resource_name": "port", "resource_limit": limit}]});
    post_json(&client, format!("{}/v3/limits", server.url), &token, limits).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let n = post_json(&client, format!("{net}/v2.0/networks"), &token, json!({"network": {"name": "bench"}})).await?;
    let nid = n["network"]["id"].as_str().context("no network id")?.to_string();
    let subnet = json!({"subnet": {"network_id": nid, "cidr": "10.0.0.0/16", "ip_version": 4}});
    post_json(&client, format!("{net}/v2.0/subnets"), &token, subnet).await?;

    let create: MakeRequest = {
        let (url, token, nid) = (net.clone(), token.clone(), nid.clone());
        Arc::new(move |c: &reqwest::Client| {
            c.post(format!("{url}/v2.0/ports"))
                .header("x-auth-token", &token)
                .json(&json!({"port": {"network_id": nid}}))
        })
    };
    for clients in [8, 32] {
        let f = run_with(pid, create.clone(), clients, args.seconds).await?;
        print("POST /v2.0/ports", clients, &f);
    }

    // Top up to the listing size.
    let have =
        get_json(&client, format!("{net}/v2.0/ports?fields=id"), &token).await?["ports"].as_array().map_or(0, Vec::len);
    let missing = args.ports.saturating_sub(have);
    let t = Instant::now();
    let made = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, make, made) = (client.clone(), create.clone(), made.clone());
        let n = missing / 8 + usize::from(w < missing % 8);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                if make(&client).send().await.is_ok_and(|r| r.status().as_u16() == 201) {
                    made.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let total = have + made.load(Ordering::Relaxed) as usize;
    println!("{total} ports in place ({} created in {:.1} s)", made.load(Ordering::Relaxed), t.elapsed().as_secs_f64());

    for (label, query) in [("GET /v2.0/ports?limit=100", "?limit=100"), ("GET /v2.0/ports (unpaged)", "")] {
        let list: MakeRequest = {
            let (url, token) = (format!("{net}/v2.0/ports{query}"), token.clone());
            Arc::new(move |c: &reqwest::Client| c.get(&url).header("x-auth-token", &token))
        };
        for clients in [1, 8] {
            let f = run_with(pid, list.clone(), clients, args.seconds).await?;
            print(&format!("{label} ({total} ports)"), clients, &f);
        }
    }
    Ok(())
}
