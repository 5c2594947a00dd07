//! `stratusd`: one binary, many roles. `stratusd <service>` runs one service;
//! `stratusd all-in-one` runs every service in one process with embedded defaults
//! (SQLite in the data directory, the in-process bus).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use stratusd::config::Config;
use stratusd::runtime::{self, serve_all, write_client_files, Runtime};

#[derive(Parser)]
#[command(name = "stratusd", version, about = "The Stratus cloud daemon")]
struct Cli {
    /// TOML configuration file; every key can also be set as STRATUS_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "STRATUS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every service in one process (bootstraps on first start).
    AllInOne {
        /// Password of the bootstrapped admin user (else STRATUS_IDENTITY__BOOTSTRAP_PASSWORD,
        /// else generated and printed once).
        #[arg(long)]
        admin_password: Option<String>,
    },
    /// Run the identity service, or manage it.
    Identity {
        #[command(subcommand)]
        action: Option<IdentityAction>,
    },
    /// Run the image service (Glance v2 API) alone, using identity over HTTP.
    Image,
    /// Run the network service (Neutron v2.0 API) alone, using identity over HTTP.
    Network,
    /// Run the network agent of this host (bridges, DHCP, security groups), using the
    /// network API with the service user's credentials.
    NetworkAgent {
        /// Remove every bridge, namespace, DHCP server and nftables table the agent owns, then exit.
        #[arg(long)]
        cleanup: bool,
    },
    /// Run the compute service (Nova v2.1 API) alone, using identity over HTTP.
    Compute,
    /// Run the volume service (Cinder v3 API) alone, using identity over HTTP.
    Volume,
    /// Run the reservation service (Blazar v1 API) alone, using identity and compute over HTTP.
    Reservation,
    /// Run the bare-metal service (Ironic v1 API) and its conductor alone, using identity over HTTP.
    Baremetal,
    /// Run the compute agent of this host (guests through a hypervisor driver).
    ComputeAgent {
        /// Hypervisor driver: `fake` (guests in memory; tests and benchmarks).
        #[arg(long)]
        driver: Option<String>,
        /// With the fake driver, how many hosts to emulate in this process.
        #[arg(long)]
        fake_hosts: Option<usize>,
    },
    /// Create the default domain, admin project and user, roles, catalog and quotas.
    Bootstrap {
        #[arg(long)]
        admin_password: Option<String>,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
}

#[derive(Subcommand)]
enum IdentityAction {
    /// Rotate the token signing keys (no valid token is lost).
    RotateKeys,
}

#[derive(Subcommand)]
enum DbAction {
    /// Apply every pending migration.
    Migrate,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    stratus_common::telemetry::init(&config.log.level);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli.command, config))
}

fn admin_password(flag: Option<String>, config: &Config) -> Option<String> {
    flag.or_else(|| Some(config.identity.bootstrap_password.clone()).filter(|p| !p.is_empty()))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::AllInOne { admin_password: flag } => {
            let started = std::time::Instant::now();
            let password = admin_password(flag, &config);
            let cloud = stratusd::all_in_one(config, password).await?;
            announce(&cloud.rt, &cloud.report)?;
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "all-in-one ready");
            serve_all(cloud.services).await
        }
        Command::Identity { action: None } => {
            let rt = Runtime::open(config).await?;
            let identity = rt.identity().await?;
            serve_all(vec![rt.identity_served(identity)?]).await
        }
        Command::Image => {
            let rt = Runtime::open(config).await?;
            let (verifier, limits) = rt.remote_identity().await?;
            serve_all(vec![rt.image_served(verifier, limits).await?]).await
        }
        Command::Network => {
            let rt = Runtime::open(config).await?;
            let (verifier, limits) = rt.remote_identity().await?;
            serve_all(vec![rt.network_served(verifier, limits).await?]).await
        }
        Command::NetworkAgent { cleanup } => {
            let bus = stratus_common::bus::Bus::connect(&config.bus.url).await?;
            let agent = runtime::network_agent(&config, runtime::service_tokens(&config))?;
            if cleanup {
                agent.teardown().await?;
                println!("Removed the network agent's bridges, namespaces, DHCP servers and nftables tables.");
                return Ok(());
            }
            anyhow::ensure!(
                stratus_network_agent::kernel::available(),
                "the network agent needs root, iproute2 and nftables"
            );
            tracing::info!(host = agent.host(), "network agent running");
            tokio::select! {
                _ = agent.run(Some(bus)) => Ok(()),
                _ = stratus_common::http::shutdown_signal() => Ok(()),
            }
        }
        Command::Volume => {
            let rt = Runtime::open(config).await?;
            let (verifier, limits) = rt.remote_identity().await?;
            let tokens = runtime::service_tokens(&rt.config);
            serve_all(vec![rt.volume_served(verifier, limits, tokens).await?]).await
        }
        Command::Reservation => {
            let rt = Runtime::open(config).await?;
            let (verifier, _) = rt.remote_identity().await?;
            let tokens = runtime::service_tokens(&rt.config);
            serve_all(vec![rt.reservation_served(verifier, tokens)?]).await
        }
        Command::Baremetal => {
            let rt = Runtime::open(config).await?;
            let (verifier, _) = rt.remote_identity().await?;
            let tokens = runtime::service_tokens(&rt.config);
            serve_all(vec![rt.baremetal_served(verifier, tokens)?]).await
        }
        Command::Compute => {
            let rt = Runtime::open(config).await?;
            let (verifier, limits) = rt.remote_identity().await?;
            let tokens = runtime::service_tokens(&rt.config);
            serve_all(rt.compute_served(verifier, limits, tokens).await?).await
        }
        Command::ComputeAgent { driver, fake_hosts } => {
            let mut config = config;
            if let Some(d) = driver {
                config.compute_agent.driver = d.parse().map_err(|e| anyhow::anyhow!("--driver {d}: {e}"))?;
            }
            if let Some(n) = fake_hosts {
                config.compute_agent.fake_hosts = n;
            }
            let bus = stratus_common::bus::Bus::connect(&config.bus.url).await?;
            let agent = runtime::compute_agent(&config, bus, runtime::service_tokens(&config))?;
            tracing::info!(driver = agent.driver_name(), hosts = agent.host_count(), "compute agent running");
            agent.report_all().await;
            tokio::select! {
                r = agent.run() => r,
                _ = stratus_common::http::shutdown_signal() => Ok(()),
            }
        }
        Command::Identity { action: Some(IdentityAction::RotateKeys) } => {
            let rt = Runtime::open(config).await?;
            let keyring = stratus_identity::app::KeyRing::new(stratus_identity::store::Store::new(rt.db.clone()));
            let kid = keyring.rotate().await?;
            rt.bus.emit(stratus_common::auth::token::KEYS_ROTATED_SUBJECT, &serde_json::json!({"primary": kid})).await;
            println!("Signing keys rotated; new primary key {kid}.");
            Ok(())
        }
        Command::Bootstrap { admin_password: flag } => {
            let password = admin_password(flag, &config);
            let rt = Runtime::open(config).await?;
            let identity = rt.identity().await?;
            let report = rt.bootstrap(&identity, password).await?;
            announce(&rt, &report)
        }
        Command::Db { action: DbAction::Migrate } => {
            let rt = Runtime::open(config).await?;
            println!("Database at {} is up to date.", redact(&rt.config.database_url()));
            Ok(())
        }
    }
}

/// Writes the client files when the admin password is known now, and says how to use them.
fn announce(rt: &Runtime, report: &stratus_identity::app::BootstrapReport) -> anyhow::Result<()> {
    let dir = &rt.config.server.data_dir;
    let auth_url = format!("{}/v3", rt.identity_public_url());
    if let Some(pw) = &report.admin_password {
        write_client_files(dir, &auth_url, &rt.config.identity.region, pw)?;
        if report.created_admin {
            println!("Created the admin user. Its password, shown only this once: {pw}");
        }
    }
    println!(
        "Identity API at {auth_url}, image API at {}, network API at {}, volume API at {}, reservation API at {}/v1, \
         bare-metal API at {}",
        rt.image_public_url(),
        rt.network_public_url(),
        rt.volume_public_url(),
        rt.reservation_public_url(),
        rt.baremetal_public_url()
    );
    println!("Use the cloud with:  export OS_CLIENT_CONFIG_FILE={}/clouds.yaml OS_CLOUD=stratus", dir.display());
    println!("                or:  source {}/openrc", dir.display());
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
