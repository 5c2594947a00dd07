//! `stratus-bench --volume [--volume-driver file|fake]`: volume create+delete cycles per
//! second at 1, 8 and 32 concurrent clients (each cycle: `POST /volumes` of 1 GiB, wait
//! until available, `DELETE`, wait until gone), POST→available p50/p99 and the cloud's
//! CPU per cycle. On the file backend, also volumes made from a 1 GiB raw image (POST →
//! available: the first, which downloads the image, and the next, a copy-on-write
//! overlay) against `cp` of the same bytes on the same file system.

use super::{admin_token, pct, proc_stats, Api, Args, Server};
use anyhow::Context;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Api {
    /// Polls with backoff until the volume has `status` (`None`: until it is gone).
    async fn wait(&self, id: &str, status: Option<&str>) -> anyhow::Result<()> {
        let mut pause = Duration::from_millis(2);
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let (code, v) = self.call(reqwest::Method::GET, &format!("/volumes/{id}"), None).await?;
            match status {
                None if code == 404 => return Ok(()),
                Some(s) if v["volume"]["status"] == s => return Ok(()),
                _ => {}
            }
            if v["volume"]["status"].as_str().is_some_and(|s| s.starts_with("error")) {
                anyhow::bail!("volume {id} went to {}", v["volume"]["status"]);
            }
            anyhow::ensure!(Instant::now() < deadline, "volume {id} never {status:?}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

pub async fn bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let token = admin_token(&client, &server.url).await?;
    let pid = server.child.id();
    let projects: Value = client
        .get(format!("{}/v3/auth/projects", server.url))
        .header("x-auth-token", &token)
        .send()
        .await?
        .json()
        .await?;
    let project = projects["projects"][0]["id"].as_str().context("no project")?.to_string();
    let api = Arc::new(Api { client: client.clone(), base: format!("{}/v3/{project}", server.volume_url), token });
    // Room in the admin project's volume quotas.
    let (code, body) = api
        .call(
            reqwest::Method::PUT,
            &format!("/os-quota-sets/{project}"),
            Some(json!({"quota_set": {"volumes": -1, "gigabytes": -1, "snapshots": -1}})),
        )
        .await?;
    anyhow::ensure!(code == 200, "quota update: {code} {body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("volume backend: {}", args.volume_driver);

    if args.volume_driver == "file" {
        from_image(server, &api).await?;
    }

    for clients in [1, 8, 32] {
        let (_, cpu_before) = proc_stats(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (api, stop, errors) = (api.clone(), stop.clone(), errors.clone());
            tasks.push(tokio::spawn(async move {
                let (mut n, mut lat) = (0u64, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let created =
                        api.call(reqwest::Method::POST, "/volumes", Some(json!({"volume": {"size": 1}}))).await;
                    let Ok((202, v)) = created else {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let id = v["volume"]["id"].as_str().unwrap_or_default().to_string();
                    if api.wait(&id, Some("available")).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    lat.push(t.elapsed());
                    let deleted = api.call(reqwest::Method::DELETE, &format!("/volumes/{id}"), None).await;
                    if !matches!(deleted, Ok((202, _))) || api.wait(&id, None).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    n += 1;
                }
                (n, lat)
            }));
        }
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let (mut cycles, mut lat) = (0u64, Vec::new());
        for t in tasks {
            let (n, l) = t.await?;
            cycles += n;
            lat.extend(l);
        }
        lat.sort();
        let elapsed = started.elapsed();
        let (_, cpu_after) = proc_stats(pid);
        println!(
            "volume create+delete {clients:>3} clients  {:>7.1} cycles/s  POST→available p50 {:>7.2} ms  p99 {:>7.2} ms  server cpu {:>5.2} ms/cycle  errors {}",
            cycles as f64 / elapsed.as_secs_f64(),
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            (cpu_after - cpu_before) as f64 * 10.0 / cycles.max(1) as f64,
            errors.load(Ordering::Relaxed)
        );
    }
    Ok(())
}

/// A volume from a 1 GiB raw image of incompressible bytes against `cp` of the same
/// file on the cloud's file system (both with the file in the page cache).
async fn from_image(server: &Server, api: &Api) -> anyhow::Result<()> {
    const GIB: usize = 1 << 30;
    let mut bytes = vec![0u8; GIB];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let src = server.dir.join("bench-image.raw");
    std::fs::write(&src, &bytes)?;
    let images = format!("{}/v2/images", server.image_url);
    let image: Value = api
        .client
        .post(&images)
        .header("x-auth-token", &api.token)
        .json(&json!({"name": "bench-1g", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let image_id = image["id"].as_str().context("no image id")?.to_string();
    let put = api
        .client
        .put(format!("{images}/{image_id}/file"))
        .header("x-auth-token", &api.token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await?;
    anyhow::ensure!(put.status().is_success(), "image upload: {}", put.status());

    let copy = server.dir.join("bench-image.copy");
    let t = Instant::now();
    let status = std::process::Command::new("cp").arg(&src).arg(&copy).status()?;
    anyhow::ensure!(status.success(), "cp failed");
    let cp = t.elapsed();
    let _ = std::fs::remove_file(&copy);

    // The first volume downloads the image and keeps it as a base; the next is a
    // copy-on-write overlay of that base.
    let mut made = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let (code, v) = api
            .call(reqwest::Method::POST, "/volumes", Some(json!({"volume": {"size": 1, "imageRef": image_id}})))
            .await?;
        anyhow::ensure!(code == 202, "volume from image: {code} {v}");
        let id = v["volume"]["id"].as_str().unwrap_or_default().to_string();
        api.wait(&id, Some("available")).await?;
        made.push((id, t.elapsed()));
    }
    println!(
        "volume from a 1 GiB raw image: first {:>6.2} s ({:.0}% of cp's speed), next {:>6.3} s (copy-on-write); cp of the same file {:>5.2} s",
        made[0].1.as_secs_f64(),
        cp.as_secs_f64() / made[0].1.as_secs_f64() * 100.0,
        made[1].1.as_secs_f64(),
        cp.as_secs_f64()
    );
    for (id, _) in &made {
        api.call(reqwest::Method::DELETE, &format!("/volumes/{id}"), None).await?;
        api.wait(id, None).await?;
    }
    let _ = std::fs::remove_file(&src);
    Ok(())
}
