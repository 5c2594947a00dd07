//! `stratus-bench --compute`: the compute control plane with the fake hypervisor (zero
//! boot delay) on `--fake-hosts` hosts (1,000 by default). Prints scheduler decisions
//! per second over those hosts, POST-to-ACTIVE latency, the sustained boot-and-delete
//! cycle rate at 1, 8 and 32 concurrent clients (with a port from the network service
//! and without a network), and `GET /servers/detail` latency with `--servers` servers.
//! Targets from the compute issue: ≥ 200 cycles/s with zero failures, p99
//! POST-to-ACTIVE < 100 ms, ≥ 5,000 scheduling decisions/s over 1,000 hosts.

use super::{admin_token, pct, print, proc_stats, run_with, Args, MakeRequest, Server};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_compute::scheduler::{Request, Scheduler, Weigher};
use stratus_compute::store::HostRow;

/// How a client polls a server it waits for: first after `POLL_FIRST`, then each wait
/// half as long again, up to `POLL_MAX`. Polling every few milliseconds from 32 clients
/// would be more load than the boots it measures (Rally polls once a second); the
/// POST-to-ACTIVE latency does not depend on the interval, since it is taken from the
/// server's `launched_at` (see [`Api::wait_active`]).
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_MAX: Duration = Duration::from_millis(50);

/// The next wait after `d`.
fn backoff(d: Duration) -> Duration {
    (d * 3 / 2).min(POLL_MAX)
}

/// Now, in microseconds since the epoch.
fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// A time as the API shows it (`2026-01-01T00:00:00.123456`, UTC, as
/// `OS-SRV-USG:launched_at`), in microseconds since the epoch.
fn api_time_micros(t: &str) -> Option<i64> {
    stratus_common::db::parse_time(&format!("{t}Z")).map(|t| t.timestamp_micros())
}

pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) compute: String,
    pub(crate) token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut req =
            self.client.request(method, format!("{}/v2.1{path}", self.compute)).header("x-auth-token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Waits until the server is ACTIVE (Ok(Some(when it became ACTIVE, in microseconds
    /// since the epoch, by the server's `launched_at`: the server and this benchmark share
    /// the machine's clock))), ERROR (Ok(None)) or the timeout.
    async fn wait_active(&self, id: &str) -> anyhow::Result<Option<i64>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut wait = POLL_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            wait = backoff(wait);
            let (status, body) = self.call(reqwest::Method::GET, &format!("/servers/{id}"), None).await?;
            match (status, body["server"]["status"].as_str()) {
                (200, Some("ACTIVE")) => {
                    let launched = body["server"]["OS-SRV-USG:launched_at"].as_str().and_then(api_time_micros);
                    return launched.map(Some).context("ACTIVE server without launched_at");
                }
                (200, Some("ERROR")) => return Ok(None),
                _ if Instant::now() > deadline => bail!("server {id} not ACTIVE after 60 s"),
                _ => {}
            }
        }
    }

    async fn wait_gone(&self, id: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut wait = POLL_FIRST;
        loop {
            tokio::time::sleep(wait).await;
            wait = backoff(wait);
            if self.call(reqwest::Method::GET, &format!("/servers/{id}"), None).await?.0 == 404 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("server {id} not gone after 60 s");
            }
        }
    }
}

/// Scheduling decisions per second over `hosts` in-memory hosts, on `threads` threads.
fn scheduler_rate(hosts: usize, threads: usize, secs: u64) -> f64 {
    let s = Arc::new(Scheduler::new(Weigher::Spread, Duration::from_secs(3600)));
    let now = stratus_common::db::now_text();
    s.load(
        (0..hosts)
            .map(|i| HostRow {
                host: format!("bench-{i:05}").into(),
                queue: format!("compute.agent.bench-{i:05}"),
                availability_zone: "nova".into(),
                hypervisor_type: "fake".into(),
                driver: "fake".into(),
                vcpus: 64,
                ram_mb: 262_144,
                disk_gb: 2_000,
                cap_vcpus: 1024,
                cap_ram: 393_216,
                cap_disk: 2_000,
                used_vcpus: (i % 97) as i64,
                used_ram: (i % 89) as i64 * 512,
                used_disk: (i % 13) as i64,
                traits: vec!["COMPUTE_STATUS_ENABLED".into()],
                resource_class: None,
                host_ip: None,
                uptime: None,
                reservation: None,
                slices: Vec::new(),
                slice_free_vcpus: 0,
                slice_free_ram: 0,
                slice_free_disk: 0,
                enabled: true,
                disabled_reason: None,
                last_seen: now.clone(),
                created_at: now.clone(),
            })
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (s, stop, done) = (s.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let req = Request { vcpus: 1, ram: 512, disk: 1, ..Default::default() };
                while !stop.load(Ordering::Relaxed) {
                    let picked = s.select(&req, 4);
                    assert!(!picked.is_empty());
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

pub(crate) struct Cycles {
    pub(crate) cycles: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) to_active: Vec<Duration>,
}

/// `clients` loops of create → ACTIVE → delete → gone, for `secs` seconds.
pub(crate) async fn cycles(api: &Arc<Api>, server_body: &Value, clients: usize, secs: u64) -> Cycles {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (api, stop, errors, body) = (api.clone(), stop.clone(), errors.clone(), server_body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let posted = now_micros();
                let created = api.call(reqwest::Method::POST, "/servers", Some(body.clone())).await;
                let id = match created {
                    Ok((202, v)) => v["server"]["id"].as_str().unwrap_or_default().to_string(),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                match api.wait_active(&id).await {
                    Ok(Some(active)) => lat.push(Duration::from_micros((active - posted).max(0) as u64)),
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let deleted = api.call(reqwest::Method::DELETE, &format!("/servers/{id}"), None).await;
                if !matches!(deleted, Ok((204, _))) || api.wait_gone(&id).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                n += 1;
            }
            (n, lat)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut out = Cycles { cycles: 0, errors: 0, elapsed: Duration::ZERO, to_active: Vec::new() };
    for t in tasks {
        if let Ok((n, lat)) = t.await {
            out.cycles += n;
            out.to_active.extend(lat);
        }
    }
    out.elapsed = started.elapsed();
    out.errors = errors.load(Ordering::Relaxed);
    out.to_active.sort();
    out
}

pub async fn bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let token = admin_token(&client, &server.url).await?;
    let pid = server.child.id();
    let api = Arc::new(Api { client: client.clone(), compute: server.compute_url.clone(), token: token.clone() });
    let get = |url: String| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            anyhow::Ok(
                client
                    .get(url)
                    .header("x-auth-token", &token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Value>()
                    .await?,
            )
        }
    };
    let post = |url: String, body: Value| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            anyhow::Ok(
                client
                    .post(url)
                    .header("x-auth-token", &token)
                    .json(&body)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Value>()
                    .await
                    .unwrap_or(Value::Null),
            )
        }
    };

    println!(
        "scheduler, {} hosts, 1 thread        {:>9.0} decisions/s",
        args.fake_hosts,
        scheduler_rate(args.fake_hosts, 1, 3)
    );
    println!(
        "scheduler, {} hosts, 2 threads       {:>9.0} decisions/s",
        args.fake_hosts,
        scheduler_rate(args.fake_hosts, 2, 3)
    );

    // Room in the admin project's quotas for everything the benchmark makes.
    let projects = get(format!("{}/v3/auth/projects", server.url)).await?;
    let project = projects["projects"][0]["id"].as_str().context("no project")?.to_string();
    let mut limits = Vec::new();
    for (service, resources) in [("compute", vec!["instances", "cores", "ram"]), ("network", vec!["port"])] {
        let services = get(format!("{}/v3/services?type={service}", server.url)).await?;
        let sid = services["services"][0]["id"].as_str().context("no service")?.to_string();
        for r in resources {
            limits.push(
                json!({"project_id": project, "service_id": sid, "resource_name": r, "resource_limit": 100_000_000}),
            );
        }
    }
    post(format!("{}/v3/limits", server.url), json!({ "limits": limits })).await?;

    super::wait_fake_hosts(&client, server, &token, args.fake_hosts).await?;
    let flavor = post(
        format!("{}/v2.1/flavors", server.compute_url),
        json!({"flavor": {"name": "bench", "vcpus": 1, "ram": 64, "disk": 1}}),
    )
    .await?;
    let flavor = flavor["flavor"]["id"].as_str().context("no flavor")?.to_string();
    let image = post(
        format!("{}/v2/images", server.image_url),
        json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}),
    )
    .await?;
    let image = image["id"].as_str().context("no image")?.to_string();
    client
        .put(format!("{}/v2/images/{image}/file", server.image_url))
        .header("x-auth-token", &token)
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 4096])
        .send()
        .await?
        .error_for_status()?;
    let net = post(format!("{}/v2.0/networks", server.network_url), json!({"network": {"name": "bench"}})).await?;
    let net = net["network"]["id"].as_str().context("no network")?.to_string();
    post(
        format!("{}/v2.0/subnets", server.network_url),
        json!({"subnet": {"network_id": net, "cidr": "10.0.0.0/16", "ip_version": 4}}),
    )
    .await?;

    for (label, networks) in [("no network", json!("none")), ("one port", json!([{"uuid": net}]))] {
        let wanted = match args.boot_networks.as_str() {
            "none" => label == "no network",
            "port" => label == "one port",
            _ => true,
        };
        if !wanted {
            continue;
        }
        let body = json!({"server": {"name": "bench", "flavorRef": flavor, "imageRef": image, "networks": networks}});
        for clients in [1, 8, 32] {
            let (_, cpu_before) = proc_stats(pid);
            let c = cycles(&api, &body, clients, args.seconds).await;
            let (_, cpu_after) = proc_stats(pid);
            println!(
                "boot+delete ({label:<10}) {clients:>3} clients  {:>7.1} cycles/s  POST→ACTIVE p50 {:>7.2} ms  p99 {:>7.2} ms  server cpu {:>5.2} ms/cycle  errors {}",
                c.cycles as f64 / c.elapsed.as_secs_f64(),
                pct(&c.to_active, 0.50),
                pct(&c.to_active, 0.99),
                (cpu_after - cpu_before) as f64 * 10.0 / c.cycles.max(1) as f64,
                c.errors
            );
        }
    }

    // The listing: servers built in batches of 100 (min_count = max_count).
    let t = Instant::now();
    let batches = args.servers.div_ceil(100);
    let made = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (api, made, flavor, image) = (api.clone(), made.clone(), flavor.clone(), image.clone());
        let n = batches / 4 + usize::from(w < batches % 4);
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                let body = json!({"server": {"name": "listed", "flavorRef": flavor, "imageRef": image,
                                             "networks": "none", "min_count": 100, "max_count": 100}});
                if let Ok((202, _)) = api.call(reqwest::Method::POST, "/servers", Some(body)).await {
                    made.fetch_add(100, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, v) = api.call(reqwest::Method::GET, "/servers/detail?status=BUILD&limit=1", None).await?;
        if v["servers"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        if Instant::now() > deadline {
            bail!("servers still building after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, v) = api.call(reqwest::Method::GET, "/limits", None).await?;
    let active = v["limits"]["absolute"]["totalInstancesUsed"].as_i64().unwrap_or(0);
    println!(
        "{} servers requested, {active} ACTIVE, in {:.1} s",
        made.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64()
    );
    for (label, query) in [("GET /servers/detail?limit=100", "?limit=100"), ("GET /servers/detail", "")] {
        let list: MakeRequest = {
            let (url, token) = (format!("{}/v2.1/servers/detail{query}", server.compute_url), token.clone());
            Arc::new(move |c: &reqwest::Client| c.get(&url).header("x-auth-token", &token))
        };
        for clients in [1, 8] {
            let f = run_with(pid, list.clone(), clients, args.seconds).await?;
            print(&format!("{label} ({active} servers)"), clients, &f);
        }
    }
    let (rss, _) = proc_stats(pid);
    println!("resident memory with {active} servers   {:.1} MiB", rss as f64 / 1024.0);
    Ok(())
}
