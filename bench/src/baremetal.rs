//! `stratus-bench --baremetal [--fake-hosts N]`: N fake-hardware nodes enrolled (nodes/s),
//! taken to `available` (manage + provide, the conductor's passes), then deploy
//! (fake deploy interface: power off, boot device, power on) → `active` latency p50/p99
//! at 1 and 8 concurrent clients with deploy+undeploy cycles per second: the control
//! plane's share of a deploy. (The node's own share, booting the ramdisk and writing the
//! image, is measured by the end-to-end direct-deploy test and noted in
//! docs/benchmarks.md.) Then servers on nodes, as users ask for them: server create of a
//! flavor of the nodes' resource class → ACTIVE (compute schedules, its ironic driver
//! deploys the node) and delete → gone (undeploy), cycles per second at 1 and 8 clients.

use super::{admin_token, pct, proc_stats, Api, Args, Server};
use anyhow::Context;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Api {
    /// Asks for provisioning `target` and polls until the node rests; its state then.
    async fn provision(&self, node: &str, target: &str) -> anyhow::Result<String> {
        let path = format!("/v1/nodes/{node}/states/provision");
        let (code, v) = self.call(reqwest::Method::PUT, &path, Some(json!({"target": target}))).await?;
        anyhow::ensure!(code == 202, "{target} answered {code}: {v}");
        loop {
            let (_, n) = self.call(reqwest::Method::GET, &format!("/v1/nodes/{node}/states"), None).await?;
            if n["target_provision_state"].is_null() {
                return Ok(n["provision_state"].as_str().unwrap_or("").to_string());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

pub async fn bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let plain = reqwest::Client::new();
    let token = admin_token(&plain, &server.url).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-openstack-ironic-api-version", reqwest::header::HeaderValue::from_static("1.31"));
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).default_headers(headers).build()?;
    let api = Arc::new(Api { client, base: server.baremetal_url.clone(), token: token.clone() });
    let n = args.fake_hosts;

    let t = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"driver": "fake-hardware", "name": format!("bm-{i}"), "resource_class": "baremetal",
                          "properties": {"cpus": 8, "memory_mb": 16384, "local_gb": 100}});
        let (code, v) = api.call(reqwest::Method::POST, "/v1/nodes", Some(body)).await?;
        anyhow::ensure!(code == 201, "node create answered {code}: {v}");
        ids.push(v["uuid"].as_str().context("no uuid")?.to_string());
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{n} nodes enrolled in {secs:.1} s ({:.0} nodes/s)", n as f64 / secs);

    // manage + provide every node, 32 at a time.
    let t = Instant::now();
    let mut pending = ids.clone();
    while !pending.is_empty() {
        let batch: Vec<String> = pending.drain(..pending.len().min(32)).collect();
        let mut tasks = Vec::new();
        for id in batch {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                anyhow::ensure!(api.provision(&id, "manage").await? == "manageable");
                anyhow::ensure!(api.provision(&id, "provide").await? == "available");
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{n} nodes enroll → available (manage, provide) in {secs:.1} s ({:.0} nodes/s)", n as f64 / secs);

    for clients in [1usize, 8] {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Instant::now() + Duration::from_secs(args.seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (api, done) = (api.clone(), done.clone());
            let mine: Vec<String> = ids.iter().skip(c).step_by(clients).cloned().collect();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0usize;
                while Instant::now() < stop {
                    let id = &mine[i % mine.len()];
                    let t = Instant::now();
                    anyhow::ensure!(api.provision(id, "active").await? == "active");
                    lat.push(t.elapsed());
                    anyhow::ensure!(api.provision(id, "deleted").await? == "available");
                    done.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                anyhow::Ok(lat)
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        lat.sort();
        println!(
            "deploy+undeploy, {clients:>2} clients: {:>6.1} cycles/s   deploy request → active p50 {:.1} ms  p99 {:.1} ms",
            done.load(Ordering::Relaxed) as f64 / args.seconds as f64,
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    servers_on_nodes(server, args, &plain, &token, n).await?;

    let t = Instant::now();
    let (code, v) = api.call(reqwest::Method::GET, "/v1/nodes/detail", None).await?;
    anyhow::ensure!(code == 200, "list answered {code}");
    println!(
        "GET /v1/nodes/detail ({} nodes)    {:.1} ms",
        v["nodes"].as_array().map(|a| a.len()).unwrap_or(0),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let (rss, _) = proc_stats(server.child.id());
    println!("resident memory after load         {:.1} MiB", rss as f64 / 1024.0);
    Ok(())
}

/// Server create → ACTIVE → delete → gone on nodes, through compute's ironic driver.
async fn servers_on_nodes(
    server: &Server,
    args: &Args,
    client: &reqwest::Client,
    token: &str,
    nodes: usize,
) -> anyhow::Result<()> {
    let call = |method: reqwest::Method, url: String, body: Option<serde_json::Value>| {
        let (client, token) = (client.clone(), token.to_string());
        async move {
            let mut req = client.request(method, url).header("x-auth-token", token);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await?.error_for_status()?;
            anyhow::Ok(resp.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    // The nodes become compute hosts at the bare-metal agent's next report.
    let t = Instant::now();
    loop {
        let v = call(reqwest::Method::GET, format!("{}/v2.1/os-hypervisors/detail", server.compute_url), None).await?;
        let up = v["hypervisors"]
            .as_array()
            .map(|hs| hs.iter().filter(|h| h["hypervisor_type"] == "ironic" && h["state"] == "up").count())
            .unwrap_or(0);
        if up >= nodes {
            break;
        }
        anyhow::ensure!(t.elapsed() < Duration::from_secs(60), "only {up} of {nodes} nodes became hypervisors");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("{nodes} nodes are compute hosts (waited {:.1} s for a report)", t.elapsed().as_secs_f64());
    let flavor = call(
        reqwest::Method::POST,
        format!("{}/v2.1/flavors", server.compute_url),
        Some(json!({"flavor": {"name": "bench-metal", "vcpus": 1, "ram": 64, "disk": 1}})),
    )
    .await?;
    let flavor = flavor["flavor"]["id"].as_str().context("no flavor")?.to_string();
    call(
        reqwest::Method::POST,
        format!("{}/v2.1/flavors/{flavor}/os-extra_specs", server.compute_url),
        Some(json!({"extra_specs": {"resources:CUSTOM_BAREMETAL": "1"}})),
    )
    .await?;
    let image = call(
        reqwest::Method::POST,
        format!("{}/v2/images", server.image_url),
        Some(json!({"name": "bench-metal", "disk_format": "raw", "container_format": "bare"})),
    )
    .await?;
    let image = image["id"].as_str().context("no image")?.to_string();
    client
        .put(format!("{}/v2/images/{image}/file", server.image_url))
        .header("x-auth-token", token)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 4096])
        .send()
        .await?
        .error_for_status()?;
    let capi = Arc::new(crate::compute::Api {
        client: client.clone(),
        compute: server.compute_url.clone(),
        token: token.to_string(),
    });
    let body = json!({"server": {"name": "metal", "flavorRef": flavor, "imageRef": image, "networks": "none"}});
    for clients in [1usize, 8] {
        let (_, cpu_before) = proc_stats(server.child.id());
        let c = crate::compute::cycles(&capi, &body, clients, args.seconds).await;
        let (_, cpu_after) = proc_stats(server.child.id());
        println!(
            "server on a node, create+delete, {clients:>2} clients: {:>6.1} cycles/s   POST→ACTIVE p50 {:.1} ms  p99 {:.1} ms  server cpu {:.2} ms/cycle  errors {}",
            c.cycles as f64 / c.elapsed.as_secs_f64(),
            pct(&c.to_active, 0.5),
            pct(&c.to_active, 0.99),
            (cpu_after - cpu_before) as f64 * 10.0 / c.cycles.max(1) as f64,
            c.errors
        );
    }
    Ok(())
}
