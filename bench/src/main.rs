//! `stratus-bench`: starts `stratusd all-in-one` in a scratch data directory and prints
//! throughput, latency and memory figures. Run on demand (never as a timed test):
//!
//! ```text
//! cargo build --release && ./target/release/stratus-bench
//! ```
//!
//! Figures: start-to-first-200; resident memory idle and the peak under load; for
//! password token issue, token validation and `GET /v3/projects` with 1,000 projects,
//! req/s, p50 and p99 at 8 and 32 concurrent clients; CPU per request for password and
//! token-method issue (the latter has no password hash, so it is the cost beyond it).

mod baremetal;
mod compute;
mod network;
mod reservation;
mod volume;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmarks a local Stratus all-in-one")]
struct Args {
    /// The stratusd binary (default: next to this one).
    #[arg(long)]
    stratusd: Option<PathBuf>,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Projects created for the listing benchmark.
    #[arg(long, default_value_t = 1000)]
    projects: usize,
    /// Benchmark the image service instead of identity.
    #[arg(long)]
    image: bool,
    /// Size of the image uploaded and downloaded, in MiB (with --image).
    #[arg(long, default_value_t = 1024)]
    image_mib: usize,
    /// Images created for the listing benchmark (with --image).
    #[arg(long, default_value_t = 10000)]
    images: usize,
    /// Benchmark the network service (port creates, port listing).
    #[arg(long)]
    network: bool,
    /// Ports in place for the listing benchmark (with --network).
    #[arg(long, default_value_t = 10000)]
    ports: usize,
    /// Benchmark the compute service (fake hypervisor): scheduling, boot-and-delete
    /// cycles, POST-to-ACTIVE latency, server listing.
    #[arg(long)]
    compute: bool,
    /// Fake hypervisor hosts (with --compute).
    #[arg(long, default_value_t = 1000)]
    fake_hosts: usize,
    /// Servers in place for the listing benchmark (with --compute).
    #[arg(long, default_value_t = 10000)]
    servers: usize,
    /// Which boot-and-delete cycles to measure (with --compute): `none` (no network),
    /// `port` (one port), or both.
    #[arg(long, default_value = "both", value_parser = ["none", "port", "both"])]
    boot_networks: String,
    /// Where the cloud under test writes its log (default: discarded); its level is
    /// RUST_LOG's (e.g. `warn,sqlx::query=debug` to see every statement).
    #[arg(long)]
    server_log: Option<PathBuf>,
    /// Benchmark the volume service: create+delete cycles.
    #[arg(long)]
    volume: bool,
    /// Benchmark the reservation service over --fake-hosts reservable hosts: lease
    /// create+delete rate, lease start to hosts usable.
    #[arg(long)]
    reservation: bool,
    /// Benchmark the bare-metal service over --fake-hosts fake-hardware nodes: enrolment,
    /// enroll → available, deploy → active latency and deploy+undeploy rate.
    #[arg(long)]
    baremetal: bool,
    /// The volume backend of the cloud under test (with --volume): file or fake.
    #[arg(long, default_value = "file")]
    volume_driver: String,
    /// Database URL for the cloud under test (default: SQLite in its data directory),
    /// e.g. a PostgreSQL URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Bus URL for the cloud under test (default: in-process), e.g. nats://127.0.0.1:4222.
    #[arg(long)]
    bus_url: Option<String>,
}

const PASSWORD: &str = "bench-admin-password";

struct Server {
    child: Child,
    url: String,
    image_url: String,
    network_url: String,
    compute_url: String,
    volume_url: String,
    reservation_url: String,
    baremetal_url: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Resident memory (KiB) and CPU time (clock ticks) of a process.
fn proc_stats(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

fn ticks_per_sec() -> f64 {
    100.0
}

async fn start(binary: &PathBuf, args: &Args) -> anyhow::Result<(Server, Duration)> {
    let dir = std::env::temp_dir().join(format!("stratus-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port();
    let image_port = free_port();
    let network_port = free_port();
    let compute_port = free_port();
    let volume_port = free_port();
    let reservation_port = free_port();
    let baremetal_port = free_port();
    let mut env: Vec<(&str, String)> = vec![
        ("STRATUS_SERVER__DATA_DIR", dir.display().to_string()),
        ("STRATUS_IDENTITY__PORT", port.to_string()),
        ("STRATUS_IMAGE__PORT", image_port.to_string()),
        ("STRATUS_NETWORK__PORT", network_port.to_string()),
        ("STRATUS_COMPUTE__PORT", compute_port.to_string()),
        ("STRATUS_COMPUTE__METADATA_PORT", free_port().to_string()),
        ("STRATUS_VOLUME__PORT", volume_port.to_string()),
        ("STRATUS_RESERVATION__PORT", reservation_port.to_string()),
        ("STRATUS_BAREMETAL__PORT", baremetal_port.to_string()),
        ("STRATUS_VOLUME__DRIVER", args.volume_driver.clone()),
        // The benchmark measures the control plane; it never touches the host's network.
        ("STRATUS_NETWORK_AGENT__ENABLED", "false".into()),
        ("STRATUS_COMPUTE_AGENT__DRIVER", "fake".into()),
        ("STRATUS_COMPUTE_AGENT__FAKE_HOSTS", args.fake_hosts.to_string()),
        ("STRATUS_COMPUTE_AGENT__FAKE_BOOT_DELAY_MS", "0".into()),
        ("STRATUS_COMPUTE_AGENT__HOST", "bench".into()),
    ];
    if let Some(u) = &args.database_url {
        env.push(("STRATUS_DATABASE__URL", u.clone()));
    }
    if let Some(u) = &args.bus_url {
        env.push(("STRATUS_BUS__URL", u.clone()));
    }
    // Bootstrap first, so the measured start is a normal restart (no first-time hashing).
    let status = Command::new(binary)
        .args(["bootstrap", "--admin-password", PASSWORD])
        .envs(env.clone())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("bootstrap failed");
    }
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let log = match &args.server_log {
        Some(path) => Stdio::from(std::fs::File::create(path)?),
        None => Stdio::null(),
    };
    let child =
        Command::new(binary).arg("all-in-one").envs(env).env("STRATUS_LOG__LEVEL", "warn").stdout(log).spawn()?;
    let server = Server {
        child,
        url: url.clone(),
        image_url: format!("http://127.0.0.1:{image_port}"),
        network_url: format!("http://127.0.0.1:{network_port}"),
        compute_url: format!("http://127.0.0.1:{compute_port}"),
        volume_url: format!("http://127.0.0.1:{volume_port}"),
        reservation_url: format!("http://127.0.0.1:{reservation_port}"),
        baremetal_url: format!("http://127.0.0.1:{baremetal_port}"),
        dir,
    };
    loop {
        if let Ok(r) = client.get(format!("{url}/v3")).send().await {
            if r.status().as_u16() == 200 {
                break;
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("stratusd did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((server, started.elapsed()))
}

/// One service's API with the admin's token.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let mut req = self.client.request(method, format!("{}{path}", self.base)).header("x-auth-token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
    }
}

/// The `p` quantile of sorted latencies, in milliseconds.
fn pct(v: &[Duration], p: f64) -> f64 {
    v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or_default().as_secs_f64()
        * 1000.0
}

/// Waits until compute lists `want` fake hosts (their agents report at start).
async fn wait_fake_hosts(client: &reqwest::Client, server: &Server, token: &str, want: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let hv: Value = client
            .get(format!("{}/v2.1/os-hypervisors", server.compute_url))
            .header("x-auth-token", token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let n = hv["hypervisors"].as_array().map_or(0, Vec::len);
        if n >= want {
            println!("{n} fake hosts registered");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {n} of {want} fake hosts registered");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn password_body() -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
                    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
}

async fn admin_token(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let r = client.post(format!("{url}/v3/auth/tokens?nocatalog")).json(&password_body()).send().await?;
    if r.status().as_u16() != 201 {
        bail!("login failed: {}", r.status());
    }
    Ok(r.headers().get("x-subject-token").context("no token")?.to_str()?.to_string())
}

#[derive(Clone, Copy)]
enum Workload {
    PasswordIssue,
    TokenIssue,
    Validate,
    ListProjects,
    ListImages,
}

struct Figures {
    rps: f64,
    p50: Duration,
    p99: Duration,
    cpu_ms_per_req: f64,
    peak_rss_kib: u64,
    errors: u64,
}

/// Builds one request of a workload; called for every request a client sends.
type MakeRequest = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

fn request_for(workload: Workload, url: &str, token: &str) -> MakeRequest {
    let (url, token) = (url.to_string(), token.to_string());
    Arc::new(move |client: &reqwest::Client| match workload {
        Workload::PasswordIssue => client.post(format!("{url}/v3/auth/tokens?nocatalog")).json(&password_body()),
        Workload::TokenIssue => client
            .post(format!("{url}/v3/auth/tokens?nocatalog"))
            .json(&json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}})),
        Workload::Validate => client
            .get(format!("{url}/v3/auth/tokens?nocatalog"))
            .header("x-auth-token", &token)
            .header("x-subject-token", &token),
        Workload::ListProjects => client.get(format!("{url}/v3/projects")).header("x-auth-token", &token),
        Workload::ListImages => client.get(format!("{url}/v2/images?limit=25")).header("x-auth-token", &token),
    })
}

async fn run(server: &Server, token: &str, workload: Workload, clients: usize, secs: u64) -> anyhow::Result<Figures> {
    run_with(server.child.id(), request_for(workload, &server.url, token), clients, secs).await
}

/// Runs `clients` concurrent loops of `make` for `secs` seconds against process `pid`.
async fn run_with(pid: u32, make: MakeRequest, clients: usize, secs: u64) -> anyhow::Result<Figures> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let (_, cpu_before) = proc_stats(pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, stop, errors, make) = (client.clone(), stop.clone(), errors.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let req = make(&client);
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(proc_stats(pid).0);
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = started.elapsed();
    let (_, cpu_after) = proc_stats(pid);
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or_default()
    };
    let n = all.len() as f64;
    Ok(Figures {
        rps: n / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        cpu_ms_per_req: if n > 0.0 { (cpu_after - cpu_before) as f64 / ticks_per_sec() * 1000.0 / n } else { 0.0 },
        peak_rss_kib: peak,
        errors: errors.load(Ordering::Relaxed),
    })
}

fn print(name: &str, clients: usize, f: &Figures) {
    println!(
        "{name:<34} {clients:>3} clients  {:>9.1} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  cpu {:>6.3} ms/req  peak rss {:>6.1} MiB  errors {}",
        f.rps,
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0,
        f.cpu_ms_per_req,
        f.peak_rss_kib as f64 / 1024.0,
        f.errors
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let binary = match args.stratusd.clone() {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("stratusd"),
    };
    let (server, start) = start(&binary, &args).await?;
    // Stopped by a signal, the benchmark still stops the cloud it started (a stratusd
    // left running would load the machine under the next measurement).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let outcome = tokio::select! {
        r = bench(&server, &args, &binary, start) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        _ = term.recv() => Err(anyhow::anyhow!("terminated")),
    };
    drop(server);
    outcome
}

async fn bench(server: &Server, args: &Args, binary: &std::path::Path, start: Duration) -> anyhow::Result<()> {
    if args.image {
        return image_bench(server, args).await;
    }
    if args.network {
        return network::bench(server, args).await;
    }
    if args.compute {
        return compute::bench(server, args).await;
    }
    if args.volume {
        return volume::bench(server, args).await;
    }
    if args.reservation {
        return reservation::bench(server, args).await;
    }
    if args.baremetal {
        return baremetal::bench(server, args).await;
    }
    println!("stratusd: {}", binary.display());
    println!("start to first 200                 {:.1} ms", start.as_secs_f64() * 1000.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle, _) = proc_stats(server.child.id());
    println!("resident memory idle               {:.1} MiB", idle as f64 / 1024.0);

    let client = reqwest::Client::new();
    let token = admin_token(&client, &server.url).await?;
    for (name, w) in [
        ("token validation (GET auth/tokens)", Workload::Validate),
        ("password token issue", Workload::PasswordIssue),
        ("token-method issue (no hash)", Workload::TokenIssue),
    ] {
        for clients in [8, 32] {
            let f = run(server, &token, w, clients, args.seconds).await?;
            print(name, clients, &f);
        }
    }

    let created = Instant::now();
    for i in 0..args.projects {
        let r = client
            .post(format!("{}/v3/projects", server.url))
            .header("x-auth-token", &token)
            .json(&json!({"project": {"name": format!("bench-{i:05}")}}))
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("project create failed: {}", r.status());
        }
    }
    println!("created {} projects in {:.1} s", args.projects, created.elapsed().as_secs_f64());
    for clients in [8, 32] {
        let f = run(server, &token, Workload::ListProjects, clients, args.seconds).await?;
        print(&format!("GET /v3/projects ({} projects)", args.projects + 1), clients, &f);
    }
    let (after, _) = proc_stats(server.child.id());
    println!("resident memory after load         {:.1} MiB", after as f64 / 1024.0);
    Ok(())
}

/// Seconds `dd` takes to write (with fsync) and read `mib` MiB in the data directory.
fn dd_baseline(dir: &std::path::Path, mib: usize) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("dd-test");
    let t = Instant::now();
    let ok = Command::new("dd")
        .args([
            format!("of={}", path.display()),
            "if=/dev/zero".into(),
            "bs=1M".into(),
            format!("count={mib}"),
            "conv=fsync".into(),
        ])
        .stderr(Stdio::null())
        .status()?
        .success();
    let write = t.elapsed().as_secs_f64();
    let t = Instant::now();
    Command::new("dd")
        .args([format!("if={}", path.display()), "of=/dev/null".into(), "bs=1M".into()])
        .stderr(Stdio::null())
        .status()?;
    let read = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if !ok {
        bail!("dd failed");
    }
    Ok((write, read))
}

async fn image_bench(server: &Server, args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let token = admin_token(&client, &server.url).await?;
    let pid = server.child.id();
    // Room for the benchmark in the admin project's image quotas.
    let services: Value = client
        .get(format!("{}/v3/services?type=image", server.url))
        .header("x-auth-token", &token)
        .send()
        .await?
        .json()
        .await?;
    let sid = services["services"][0]["id"].as_str().context("no image service")?.to_string();
    let projects: Value = client
        .get(format!("{}/v3/auth/projects", server.url))
        .header("x-auth-token", &token)
        .send()
        .await?
        .json()
        .await?;
    let project = projects["projects"][0]["id"].as_str().context("no project")?.to_string();
    let limits = json!({"limits": [
        {"project_id": project, "service_id": sid, "resource_name": "image_count_total", "resource_limit": args.images as i64 + 100},
        {"project_id": project, "service_id": sid, "resource_name": "image_size_total", "resource_limit": (args.image_mib as i64) * 4 + 1024}]});
    client
        .post(format!("{}/v3/limits", server.url))
        .header("x-auth-token", &token)
        .json(&limits)
        .send()
        .await?
        .error_for_status()?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mib = args.image_mib;
    let (dd_write, dd_read) = dd_baseline(&server.dir, mib)?;
    println!("dd write {mib} MiB (fsync)            {:>8.1} MiB/s", mib as f64 / dd_write);
    println!("dd read  {mib} MiB                    {:>8.1} MiB/s", mib as f64 / dd_read);

    let data: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let img: Value = client
        .post(format!("{}/v2/images", server.image_url))
        .header("x-auth-token", &token)
        .json(&json!({"name": "bench", "disk_format": "raw", "container_format": "bare"}))
        .send()
        .await?
        .json()
        .await?;
    let id = img["id"].as_str().context("no image id")?.to_string();
    let (rss_before, _) = proc_stats(pid);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(proc_stats(pid).0, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let t = Instant::now();
    client
        .put(format!("{}/v2/images/{id}/file", server.image_url))
        .header("x-auth-token", &token)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await?
        .error_for_status()?;
    let upload = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut resp = client
        .get(format!("{}/v2/images/{id}/file", server.image_url))
        .header("x-auth-token", &token)
        .send()
        .await?
        .error_for_status()?;
    let mut got = 0usize;
    while let Some(chunk) = resp.chunk().await? {
        got += chunk.len();
    }
    let download = t.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    if got != mib * 1024 * 1024 {
        bail!("downloaded {got} bytes");
    }
    println!(
        "upload   {mib} MiB (md5+sha512+inspect) {:>8.1} MiB/s  ({:.0}% of dd write)",
        mib as f64 / upload,
        dd_write / upload * 100.0
    );
    println!(
        "download {mib} MiB                    {:>8.1} MiB/s  ({:.0}% of dd read)",
        mib as f64 / download,
        dd_read / download * 100.0
    );
    println!(
        "image server rss before / peak during transfer  {:.1} / {:.1} MiB",
        rss_before as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );

    let t = Instant::now();
    let created = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (client, token, url, created) = (client.clone(), token.clone(), server.image_url.clone(), created.clone());
        let n = args.images / 8 + usize::from(w < args.images % 8);
        tasks.push(tokio::spawn(async move {
            for i in 0..n {
                let r = client
                    .post(format!("{url}/v2/images"))
                    .header("x-auth-token", &token)
                    .json(&json!({"name": format!("bench-{w}-{i}"), "disk_format": "raw", "container_format": "bare"}))
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().as_u16() == 201) {
                    created.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    println!("created {} images in {:.1} s", created.load(Ordering::Relaxed), t.elapsed().as_secs_f64());
    for clients in [8, 32] {
        let f =
            run_with(pid, request_for(Workload::ListImages, &server.image_url, &token), clients, args.seconds).await?;
        print(&format!("GET /v2/images?limit=25 ({} images)", args.images + 1), clients, &f);
    }
    Ok(())
}
