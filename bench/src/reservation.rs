//! `stratus-bench --reservation [--fake-hosts N]`: with N fake compute hosts made
//! reservable, lease create+delete cycles per second at 1 and 8 concurrent clients
//! (each cycle: `POST /leases` for one host in a future window, `DELETE`), create p50/p99,
//! and the time from a lease starting ("now") to its hosts being held for it in
//! compute (POST → ACTIVE, the control plane's whole share), p50/p99; the same two
//! figures for `flavor:instance` leases (four instances of a small flavor, held as
//! slices of hosts; their start also makes the reservation's flavor).

use super::{admin_token, pct, proc_stats, Api, Args, Server};
use anyhow::Context;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a benchmark lease reserves.
#[derive(Clone, Copy)]
enum Kind {
    /// One host, whole.
    Host,
    /// Four instances of the benchmark's flavor.
    Instances,
}

const FLAVOR: &str = "bench-slice";

impl Api {
    async fn lease(&self, kind: Kind, name: &str, start: &str, end: &str) -> anyhow::Result<String> {
        let reservation = match kind {
            Kind::Host => json!({"resource_type": "physical:host", "min": 1, "max": 1}),
            Kind::Instances => json!({"resource_type": "flavor:instance", "flavor_id": FLAVOR, "amount": 4}),
        };
        let body = json!({"name": name, "start_date": start, "end_date": end, "events": [],
            "reservations": [reservation]});
        let (code, v) = self.call(reqwest::Method::POST, "/v1/leases", Some(body)).await?;
        anyhow::ensure!(code == 201, "lease create answered {code}: {v}");
        Ok(v["lease"]["id"].as_str().context("no lease id")?.to_string())
    }
}

fn date(offset: chrono::Duration) -> String {
    (chrono::Utc::now() + offset).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub async fn bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let token = admin_token(&client, &server.url).await?;
    super::wait_fake_hosts(&client, server, &token, args.fake_hosts).await?;
    let hv: Value = client
        .get(format!("{}/v2.1/os-hypervisors", server.compute_url))
        .header("x-auth-token", &token)
        .send()
        .await?
        .json()
        .await?;
    let names: Vec<String> = hv["hypervisors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["hypervisor_hostname"].as_str().map(str::to_string))
        .collect();
    let api = Arc::new(Api { client, base: server.reservation_url.clone(), token });
    let t = Instant::now();
    for (i, n) in names.iter().enumerate() {
        let body = json!({"name": n, "node_type": if i % 2 == 0 { "a" } else { "b" }});
        let (code, v) = api.call(reqwest::Method::POST, "/v1/os-hosts", Some(body)).await?;
        anyhow::ensure!(code == 201, "host create answered {code}: {v}");
    }
    let secs = t.elapsed().as_secs_f64();
    println!("{} hosts made reservable in {secs:.1} s ({:.0} hosts/s)", names.len(), names.len() as f64 / secs);

    // The flavor `flavor:instance` leases reserve.
    let flavor = json!({"flavor": {"name": FLAVOR, "id": FLAVOR, "vcpus": 1, "ram": 512, "disk": 1}});
    let made = api
        .client
        .post(format!("{}/v2.1/flavors", server.compute_url))
        .header("x-auth-token", &api.token)
        .json(&flavor)
        .send()
        .await?;
    anyhow::ensure!(made.status().is_success() || made.status() == 409, "flavor create answered {}", made.status());
    for kind in [Kind::Host, Kind::Instances] {
        cycles(&api, kind, args).await?;
        start_to_active(&api, kind).await?;
    }
    let (rss, _) = proc_stats(server.child.id());
    println!("resident memory after load         {:.1} MiB", rss as f64 / 1024.0);
    Ok(())
}

fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Host => "lease (1 host)",
        Kind::Instances => "lease (4 instances)",
    }
}

/// Lease create+delete cycles at 1 and 8 clients.
async fn cycles(api: &Arc<Api>, kind: Kind, args: &Args) -> anyhow::Result<()> {
    for clients in [1usize, 8] {
        let done = Arc::new(AtomicU64::new(0));
        let stop = Instant::now() + Duration::from_secs(args.seconds);
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (api, done) = (api.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < stop {
                    // Windows a day apart per client and cycle: each lease takes one host.
                    let from = chrono::Duration::hours(1 + (c as i64) * 1000 + (i as i64 % 500));
                    let t = Instant::now();
                    let (name, end) = (format!("b{c}-{i}"), date(from + chrono::Duration::hours(1)));
                    let id = api.lease(kind, &name, &date(from), &end).await?;
                    lat.push(t.elapsed());
                    let (code, _) = api.call(reqwest::Method::DELETE, &format!("/v1/leases/{id}"), None).await?;
                    anyhow::ensure!(code == 204, "lease delete answered {code}");
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
        let n = done.load(Ordering::Relaxed);
        println!(
            "{} create+delete, {clients:>2} clients: {:>7.1} cycles/s   create p50 {:.1} ms  p99 {:.1} ms",
            label(kind),
            n as f64 / args.seconds as f64,
            pct(&lat, 0.5),
            pct(&lat, 0.99)
        );
    }
    Ok(())
}

/// Lease start to hosts usable: POST with start "now", poll until ACTIVE.
async fn start_to_active(api: &Arc<Api>, kind: Kind) -> anyhow::Result<()> {
    let mut lat = Vec::new();
    for i in 0..50 {
        let t = Instant::now();
        let id = api.lease(kind, &format!("now-{i}"), "now", &date(chrono::Duration::hours(1))).await?;
        loop {
            let (_, v) = api.call(reqwest::Method::GET, &format!("/v1/leases/{id}"), None).await?;
            match v["lease"]["status"].as_str() {
                Some("ACTIVE") => break,
                Some("ERROR") => anyhow::bail!("lease {id} went to ERROR"),
                _ => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
        lat.push(t.elapsed());
        api.call(reqwest::Method::DELETE, &format!("/v1/leases/{id}"), None).await?;
    }
    lat.sort();
    println!(
        "{} POST (start now) → ACTIVE, held in compute: p50 {:.1} ms  p99 {:.1} ms",
        label(kind),
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    Ok(())
}
