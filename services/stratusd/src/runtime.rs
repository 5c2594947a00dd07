//! Composition: opens the shared database and bus, builds the services, and serves
//! them. Each service crate exposes its router and background work; this file only
//! wires them together.

use crate::config::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use stratus_common::auth::service_token::{PasswordTokens, TokenSource};
use stratus_common::auth::{HttpKeySource, TokenVerifier};
use stratus_common::bus::Bus;
use stratus_common::db::{Db, Migration};
use stratus_common::limits::{HttpLimitsSource, LimitsClient, LimitsSource, ServiceCredentials};
use stratus_identity::app::{BootstrapOptions, BootstrapReport, CatalogService};
use stratus_identity::Identity;
use stratus_image::ImageService;
use stratus_network_agent::{Agent, AgentConfig};

/// The database and bus every service of this process shares.
pub struct Runtime {
    pub config: Config,
    pub db: Db,
    pub bus: Bus,
}

/// Every service's migrations, in the order they apply.
pub fn all_migrations() -> Vec<Migration> {
    let mut m = stratus_identity::migrations::MIGRATIONS.to_vec();
    m.extend_from_slice(stratus_image::migrations::MIGRATIONS);
    m.extend_from_slice(stratus_network::migrations::MIGRATIONS);
    m.extend_from_slice(stratus_compute::migrations::MIGRATIONS);
    m.extend_from_slice(stratus_volume::migrations::MIGRATIONS);
    m.extend_from_slice(stratus_reservation::migrations::MIGRATIONS);
    m.extend_from_slice(stratus_baremetal::migrations::MIGRATIONS);
    m
}

/// A service ready to serve: its name, where it listens, and its router.
pub struct Served {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub router: axum::Router,
}

impl Runtime {
    pub async fn open(config: Config) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.server.data_dir)?;
        let db = Db::connect(&config.database_url(), config.database.max_connections).await?;
        db.migrate(&all_migrations()).await?;
        let bus = Bus::connect(&config.bus.url).await?;
        Ok(Self { config, db, bus })
    }

    pub fn identity_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.identity.port)
    }

    pub async fn identity(&self) -> anyhow::Result<Arc<Identity>> {
        Identity::new(
            stratus_identity::store::Store::new(self.db.clone()),
            self.bus.clone(),
            self.config.identity.clone(),
            self.identity_public_url(),
        )
        .await
    }

    pub fn image_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.image.port)
    }

    /// The services this deployment lists in its catalog.
    pub fn catalog_services(&self) -> Vec<CatalogService> {
        vec![
            CatalogService {
                service_type: "identity".into(),
                name: "keystone".into(),
                url: format!("{}/v3", self.identity_public_url()),
            },
            CatalogService { service_type: "image".into(), name: "glance".into(), url: self.image_public_url() },
            CatalogService { service_type: "network".into(), name: "neutron".into(), url: self.network_public_url() },
            CatalogService {
                service_type: "compute".into(),
                name: "nova".into(),
                url: format!("{}/v2.1", self.compute_public_url()),
            },
            CatalogService {
                service_type: "block-storage".into(),
                name: "cinder".into(),
                url: format!("{}/v3/$(project_id)s", self.volume_public_url()),
            },
            CatalogService {
                service_type: "volumev3".into(),
                name: "cinderv3".into(),
                url: format!("{}/v3/$(project_id)s", self.volume_public_url()),
            },
            CatalogService {
                service_type: "reservation".into(),
                name: "blazar".into(),
                url: format!("{}/v1", self.reservation_public_url()),
            },
            CatalogService {
                service_type: "baremetal".into(),
                name: "ironic".into(),
                url: self.baremetal_public_url(),
            },
        ]
    }

    pub fn baremetal_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.baremetal.port)
    }

    /// The bare-metal service and its conductor (and DHCP on the provisioning network
    /// when one is configured); images come from the image service with `tokens`.
    pub fn baremetal_served(
        &self,
        verifier: Arc<TokenVerifier>,
        tokens: Arc<dyn TokenSource>,
    ) -> anyhow::Result<Served> {
        let c = &self.config.baremetal;
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
        let mut drivers = stratus_baremetal::driver::Drivers::new(http);
        drivers.ipmitool = c.ipmitool.clone();
        let public_url = self.baremetal_public_url();
        let agent_url =
            if c.agent_url.is_empty() { public_url.clone() } else { c.agent_url.trim_end_matches('/').into() };
        let work_dir = self.config.server.data_dir.join("baremetal");
        let image_url = if c.image_url.is_empty() { self.image_public_url() } else { c.image_url.clone() };
        let images = stratus_baremetal::app::deploy::image_cache(work_dir.join("images"), &image_url, tokens)?;
        let path = |p: &str| (!p.is_empty()).then(|| std::path::PathBuf::from(p));
        let service = stratus_baremetal::BaremetalService::new(
            stratus_baremetal::store::Store::new(self.db.clone()),
            self.bus.clone(),
            drivers,
            stratus_baremetal::app::Settings {
                public_url,
                conductor: self.config.server.public_host.clone(),
                tick: std::time::Duration::from_secs(1),
                power_sync_every: std::time::Duration::from_secs(c.power_sync_secs.max(1)),
                power_sync_failures: c.power_sync_failures.max(1),
                power_timeout: std::time::Duration::from_secs(c.power_timeout_secs.max(1)),
                deploy: stratus_baremetal::app::deploy::DeploySettings {
                    agent_url: agent_url.clone(),
                    kernel: path(&c.deploy_kernel),
                    ramdisk: path(&c.deploy_ramdisk),
                    kernel_args: c.deploy_kernel_args.clone(),
                    callback_timeout: std::time::Duration::from_secs(c.callback_timeout_secs.max(1)),
                    work_dir: work_dir.clone(),
                },
            },
            Some(images),
        );
        service.start();
        if !c.provisioning_interface.is_empty() {
            let dhcp = stratus_baremetal::dhcp::Dhcp {
                interface: c.provisioning_interface.clone(),
                range: c.dhcp_range.clone(),
                agent_url,
                state_dir: work_dir,
            };
            stratus_common::supervisor::SUPERVISOR.spawn("baremetal.dhcp", move |_task| {
                let dhcp = dhcp.clone();
                async move { dhcp.run().await }
            });
        }
        Ok(Served {
            name: "baremetal",
            addr: self.addr(c.port)?,
            router: stratus_baremetal::api::router(service, verifier, self.config.server.max_body_bytes),
        })
    }

    pub fn reservation_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.reservation.port)
    }

    /// The reservation service, leasing the hosts of the configured compute API (this
    /// deployment's own by default), which it calls with `tokens`.
    pub fn reservation_served(
        &self,
        verifier: Arc<TokenVerifier>,
        tokens: Arc<dyn TokenSource>,
    ) -> anyhow::Result<Served> {
        let c = &self.config.reservation;
        let compute_url = if c.compute_url.is_empty() {
            format!("{}/v2.1", self.compute_public_url())
        } else {
            c.compute_url.trim_end_matches('/').to_string()
        };
        let image_url = if c.image_url.is_empty() {
            self.image_public_url()
        } else {
            c.image_url.trim_end_matches('/').to_string()
        };
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        let compute = Arc::new(stratus_reservation::compute::HttpCompute::new(
            http.clone(),
            compute_url,
            image_url,
            tokens.clone(),
        ));
        let network_url = if c.network_url.is_empty() {
            self.network_public_url()
        } else {
            c.network_url.trim_end_matches('/').to_string()
        };
        let network = Arc::new(stratus_reservation::network::HttpNetwork::new(http, network_url, tokens));
        let service = stratus_reservation::ReservationService::new(
            stratus_reservation::store::Store::new(self.db.clone()),
            self.bus.clone(),
            compute,
            network,
            stratus_reservation::app::Settings {
                public_url: self.reservation_public_url(),
                before_end_minutes: c.before_end_minutes.max(0),
                event_attempts: c.event_attempts.max(1),
                tick: std::time::Duration::from_secs(1),
                health_every: std::time::Duration::from_secs(c.health_secs.max(1)),
                hosts_visible_to_projects: c.hosts_visible_to_projects,
                hardware_catalog: c.hardware_catalog,
                region: self.config.identity.region.clone(),
            },
        );
        service.start();
        Ok(Served {
            name: "reservation",
            addr: self.addr(c.port)?,
            router: stratus_reservation::api::router(service, verifier, self.config.server.max_body_bytes),
        })
    }

    pub fn volume_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.volume.port)
    }

    /// The volume service on the configured backend, with the verifier and quota source
    /// it should use.
    pub async fn volume_served(
        &self,
        verifier: Arc<TokenVerifier>,
        limits_source: Arc<dyn LimitsSource>,
        tokens: Arc<dyn TokenSource>,
    ) -> anyhow::Result<Served> {
        let c = &self.config.volume;
        let limits = LimitsClient::new(limits_source, std::time::Duration::from_secs(30));
        limits.spawn_invalidation(self.bus.clone());
        let host = if c.host.is_empty() { compute_agent_name(&self.config) } else { c.host.clone() };
        let driver: Arc<dyn stratus_volume::driver::VolumeDriver> = match c.driver {
            stratus_volume::config::VolumeDriverKind::File => {
                let address = if c.nbd_address.is_empty() {
                    self.config.server.public_host.clone()
                } else {
                    c.nbd_address.clone()
                };
                let exports = stratus_volume::driver::nbd::NbdOptions {
                    address,
                    first_port: c.nbd_first_port,
                    ports: c.nbd_ports,
                };
                Arc::new(
                    stratus_volume::driver::FileDriver::new(self.config.server.data_dir.join("volumes"))?
                        .with_exports(&host, exports)?,
                )
            }
            stratus_volume::config::VolumeDriverKind::Fake => Arc::new(stratus_volume::driver::FakeDriver::new()),
        };
        let mut drivers = vec![driver];
        if !c.rbd_pool.is_empty() {
            use stratus_volume::driver::rbd::{RbdDriver, RbdOptions};
            drivers.push(Arc::new(RbdDriver::new(RbdOptions {
                pool: c.rbd_pool.clone(),
                conf: c.rbd_conf.clone(),
                user: c.rbd_user.clone(),
                secret_uuid: c.rbd_secret_uuid.clone(),
                host: host.clone(),
            })?));
        }
        let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        let image_url = if c.image_url.is_empty() { self.image_public_url() } else { c.image_url.clone() };
        let images = stratus_volume::app::ImageLink {
            // Downloads may take long: only connecting is bounded.
            http: reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10)).build()?,
            url: image_url.trim_end_matches('/').to_string(),
            tokens: Some(tokens),
            staging: self.config.server.data_dir.join("volumes").join("staging"),
        };
        let service = stratus_volume::VolumeService::new(
            stratus_volume::store::Store::new(self.db.clone()),
            self.bus.clone(),
            limits,
            drivers,
            self.volume_public_url(),
            stratus_volume::app::IdentityLink { http, url: self.config.identity_url() },
            images,
        );
        let compute_url = if c.compute_url.is_empty() {
            format!("{}/v2.1", self.compute_public_url())
        } else {
            c.compute_url.clone()
        };
        service.set_compute_url(&compute_url);
        let backup_dir = match c.backup_dir.as_str() {
            "" => self.config.server.data_dir.join("backups"),
            dir => std::path::PathBuf::from(dir),
        };
        service.set_backup_repository(stratus_volume::driver::backups::BackupRepository::new(backup_dir)?);
        service.start(std::time::Duration::from_secs(c.reconcile_secs.max(1))).await?;
        Ok(Served {
            name: "volume",
            addr: self.addr(c.port)?,
            router: stratus_volume::api::router(service, verifier, self.config.server.max_body_bytes),
        })
    }

    fn addr(&self, port: u16) -> anyhow::Result<SocketAddr> {
        Ok(format!("{}:{}", self.config.server.bind_host, port).parse()?)
    }

    pub fn identity_served(&self, identity: Arc<Identity>) -> anyhow::Result<Served> {
        Ok(Served {
            name: "identity",
            addr: self.addr(self.config.identity.port)?,
            router: stratus_identity::api::router(identity, self.config.server.max_body_bytes),
        })
    }

    /// The image service, with the verifier and quota source it should use: identity's
    /// own in all-in-one, identity's HTTP API when it runs alone.
    pub async fn image_served(
        &self,
        verifier: Arc<TokenVerifier>,
        limits_source: Arc<dyn LimitsSource>,
    ) -> anyhow::Result<Served> {
        let limits = LimitsClient::new(limits_source, std::time::Duration::from_secs(30));
        limits.spawn_invalidation(self.bus.clone());
        let backend = stratus_image::backend::FilesystemBackend::new(self.config.server.data_dir.join("images"))?;
        let cleared = backend.clear_staging().await?;
        if cleared > 0 {
            tracing::info!(cleared, "removed staging files left by an earlier run");
        }
        let service = Arc::new(ImageService {
            store: stratus_image::store::Store::new(self.db.clone()),
            bus: self.bus.clone(),
            backend: Arc::new(backend),
            limits,
            public_url: self.image_public_url(),
            max_image_bytes: self.config.image.max_image_bytes,
        });
        service.spawn_reconciler(std::time::Duration::from_secs(self.config.image.reconcile_secs.max(1)));
        Ok(Served {
            name: "image",
            addr: self.addr(self.config.image.port)?,
            router: stratus_image::api::router(service, verifier, self.config.server.max_body_bytes),
        })
    }

    pub fn network_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.network.port)
    }

    /// The network service, with the verifier and quota source it should use.
    pub async fn network_served(
        &self,
        verifier: Arc<TokenVerifier>,
        limits_source: Arc<dyn LimitsSource>,
    ) -> anyhow::Result<Served> {
        let limits = LimitsClient::new(limits_source, std::time::Duration::from_secs(30));
        limits.spawn_invalidation(self.bus.clone());
        let service = Arc::new(stratus_network::NetworkService {
            store: stratus_network::store::Store::new(self.db.clone()),
            bus: self.bus.clone(),
            limits,
            public_url: self.network_public_url(),
            identity_url: self.config.identity_url(),
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?,
            driver: self.config.network.driver,
        });
        match service.reconcile().await {
            Ok(report) if report != Default::default() => tracing::info!(?report, "network state repaired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e.message, "network reconciliation failed; serving anyway"),
        }
        Ok(Served {
            name: "network",
            addr: self.addr(self.config.network.port)?,
            router: stratus_network::api::router(service, verifier, self.config.server.max_body_bytes),
        })
    }

    pub fn compute_public_url(&self) -> String {
        format!("http://{}:{}", self.config.server.public_host, self.config.compute.port)
    }

    /// The compute service and its metadata API, calling the network and image APIs
    /// with `tokens`.
    pub async fn compute_served(
        &self,
        verifier: Arc<TokenVerifier>,
        limits_source: Arc<dyn LimitsSource>,
        tokens: Arc<dyn TokenSource>,
    ) -> anyhow::Result<Vec<Served>> {
        let c = &self.config.compute;
        let limits = LimitsClient::new(limits_source, std::time::Duration::from_secs(30));
        limits.spawn_invalidation(self.bus.clone());
        let or =
            |url: &str, default: String| if url.is_empty() { default } else { url.trim_end_matches('/').to_string() };
        let clients = stratus_compute::clients::Clients {
            http: reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?,
            network_url: or(&c.network_url, self.network_public_url()),
            image_url: or(&c.image_url, self.image_public_url()),
            volume_url: or(&c.volume_url, self.volume_public_url()),
            identity_url: self.config.identity_url(),
            tokens,
            network_names: Default::default(),
        };
        let secs = |n: u64| std::time::Duration::from_secs(n.max(1));
        let settings = stratus_compute::app::Settings {
            public_url: self.compute_public_url(),
            ratios: stratus_compute::store::Ratios {
                cpu: c.cpu_allocation_ratio,
                ram: c.ram_allocation_ratio,
                disk: c.disk_allocation_ratio,
                reserved_ram_mb: c.reserved_host_memory_mb,
                reserved_disk_gb: c.reserved_host_disk_gb,
                reserved_vcpus: 0,
            },
            host_down_after: secs(c.host_down_secs),
            reconcile_every: secs(c.reconcile_secs),
            command_timeout: secs(c.command_timeout_secs),
            build_retries: c.build_retries.max(0),
            orphan_grace: secs(c.host_down_secs),
        };
        let scheduler = stratus_compute::scheduler::Scheduler::new(c.weigher, settings.host_down_after);
        let service = stratus_compute::ComputeService::new(
            stratus_compute::store::Store::new(self.db.clone()),
            self.bus.clone(),
            limits,
            clients,
            scheduler,
            settings,
        );
        service.start().await?;
        let secret = self.config.metadata_secret()?;
        Ok(vec![
            Served {
                name: "compute-metadata",
                addr: self.addr(c.metadata_port)?,
                router: stratus_compute::metadata::router(service.clone(), &secret),
            },
            Served {
                name: "compute",
                addr: self.addr(c.port)?,
                router: stratus_compute::api::router(service, verifier, self.config.server.max_body_bytes),
            },
        ])
    }

    /// Verification and quotas from identity's HTTP API, for a service running alone.
    pub async fn remote_identity(&self) -> anyhow::Result<(Arc<TokenVerifier>, Arc<dyn LimitsSource>)> {
        let url = self.config.identity_url();
        let verifier = TokenVerifier::new(Arc::new(HttpKeySource::new(&url))).await?;
        verifier.spawn_background(
            self.bus.clone(),
            std::time::Duration::from_secs(self.config.identity.refresh_secs.max(1)),
        );
        let a = &self.config.service_auth;
        let creds = ServiceCredentials {
            username: a.username.clone(),
            password: a.password.clone(),
            project: a.project.clone(),
            domain: a.domain.clone(),
        };
        Ok((verifier, Arc::new(HttpLimitsSource::new(&url, creds))))
    }

    pub async fn bootstrap(
        &self,
        identity: &Identity,
        admin_password: Option<String>,
    ) -> anyhow::Result<BootstrapReport> {
        identity
            .bootstrap(BootstrapOptions {
                admin_password,
                region: self.config.identity.region.clone(),
                services: self.catalog_services(),
            })
            .await
    }
}

/// The network agent of this host, calling the network API with `tokens`.
pub fn network_agent(config: &Config, tokens: Arc<dyn TokenSource>) -> anyhow::Result<Arc<Agent>> {
    let c = &config.network_agent;
    let host = if c.host.is_empty() { stratus_network_agent::default_host() } else { c.host.clone() };
    anyhow::ensure!(!host.is_empty(), "the network agent needs a host name: set [network_agent] host");
    // Runtime state (DHCP files, pid files) regenerated from the desired state: under
    // /run, readable by dnsmasq after it drops its privileges.
    let state_dir = if c.state_dir.is_empty() {
        std::path::PathBuf::from("/run/stratus/network-agent").join(&host)
    } else {
        c.state_dir.clone().into()
    };
    let url = if c.network_url.is_empty() {
        format!("http://{}:{}", config.server.public_host, config.network.port)
    } else {
        c.network_url.clone()
    };
    let cfg = AgentConfig {
        host: host.clone(),
        state_dir,
        bridge_mappings: stratus_network_agent::parse_mappings(&c.bridge_mappings)?,
        interface_mappings: stratus_network_agent::parse_mappings(&c.interface_mappings)?,
        resync: std::time::Duration::from_secs(c.resync_secs.max(1)),
        report: std::time::Duration::from_secs(c.report_secs.max(1)),
        routers: c.routers,
        tunnel_ip: c.tunnel_ip.clone(),
        metadata_url: if c.metadata_url.is_empty() {
            format!("http://{}:8775", config.server.public_host)
        } else {
            c.metadata_url.clone()
        },
        metadata_secret: config.metadata_secret()?,
    };
    Ok(Arc::new(Agent::new(cfg, stratus_network_agent::client::Client::new(&url, &host, tokens))))
}

/// The compute agent's name (`[compute_agent] host`, else the machine's).
pub fn compute_agent_name(config: &Config) -> String {
    let c = &config.compute_agent;
    if c.host.is_empty() {
        stratus_network_agent::default_host()
    } else {
        c.host.clone()
    }
}

/// The address other hosts reach this compute host at: `[compute_agent] my_ip`, else
/// this deployment's public host.
pub fn compute_agent_ip(config: &Config) -> String {
    let c = &config.compute_agent;
    if c.my_ip.is_empty() {
        config.server.public_host.clone()
    } else {
        c.my_ip.clone()
    }
}

/// The driver `[compute_agent] driver` asks for (`auto`: libvirt when it answers).
pub fn compute_driver(config: &Config) -> &'static str {
    use stratus_compute_agent::config::ComputeDriver;
    let c = &config.compute_agent;
    match c.driver {
        ComputeDriver::Auto if stratus_compute_agent::driver::libvirt::reachable(&c.libvirt_uri) => "libvirt",
        ComputeDriver::Auto | ComputeDriver::Fake => "fake",
        ComputeDriver::Libvirt => "libvirt",
        ComputeDriver::Ironic => "ironic",
    }
}

/// The compute agent of this host (or of many fake hosts); `tokens` let the libvirt
/// driver download images.
pub fn compute_agent(
    config: &Config,
    bus: Bus,
    tokens: Arc<dyn TokenSource>,
) -> anyhow::Result<Arc<stratus_compute_agent::Agent>> {
    use stratus_compute_agent::driver::fake::{FakeDriver, FakeOptions};
    use stratus_compute_agent::driver::libvirt::{detect_virt_type, LibvirtDriver, LibvirtOptions};
    use stratus_compute_agent::driver::{Capacity, HypervisorDriver};
    let c = &config.compute_agent;
    let base = compute_agent_name(config);
    anyhow::ensure!(!base.is_empty(), "the compute agent needs a host name: set [compute_agent] host");
    let report = std::time::Duration::from_secs(c.report_secs.max(1));
    let secs = std::time::Duration::from_secs;
    let host = |name: String, ip: Option<String>, driver: Arc<dyn HypervisorDriver>| stratus_compute_agent::Host {
        name,
        availability_zone: c.availability_zone.clone(),
        traits: Vec::new(),
        resource_class: None,
        ip,
        driver,
    };
    let state_dir: std::path::PathBuf =
        if c.state_dir.is_empty() { config.server.data_dir.join("compute-agent") } else { c.state_dir.clone().into() };
    let image_url = if c.image_url.is_empty() {
        format!("http://{}:{}", config.server.public_host, config.image.port)
    } else {
        c.image_url.clone()
    };
    match compute_driver(config) {
        "ironic" => Ok(baremetal_compute_agent(config, &base, bus, tokens)?),
        "libvirt" => {
            let virt_type = match c.virt_type {
                stratus_compute_agent::config::VirtType::Auto => detect_virt_type().to_string(),
                stratus_compute_agent::config::VirtType::Kvm => "kvm".to_string(),
                stratus_compute_agent::config::VirtType::Qemu => "qemu".to_string(),
            };
            let images =
                Arc::new(stratus_compute_agent::images::ImageCache::new(state_dir.join("images"), &image_url, tokens)?);
            let cache = images.clone();
            let driver = LibvirtDriver::new(
                LibvirtOptions {
                    host: base.clone(),
                    uri: c.libvirt_uri.clone(),
                    virt_type,
                    state_dir,
                    image_cache_grace: secs(c.image_cache_grace_secs),
                    shutdown_timeout: secs(c.shutdown_timeout_secs),
                    vif_plug_timeout: secs(c.vif_plug_timeout_secs.max(1)),
                },
                images,
            )?;
            let agent = stratus_compute_agent::Agent::new(
                &base,
                vec![host(base.clone(), Some(compute_agent_ip(config)), Arc::new(driver))],
                bus,
                report,
            );
            agent.set_image_service(cache);
            Ok(agent)
        }
        "fake" => {
            let n = c.fake_hosts.max(1);
            let hosts = (0..n)
                .map(|i| {
                    let driver = Arc::new(FakeDriver::new(FakeOptions {
                        capacity: Capacity {
                            vcpus: c.fake_vcpus,
                            ram_mb: c.fake_ram_mb,
                            disk_gb: c.fake_disk_gb,
                            hypervisor_type: "fake".into(),
                        },
                        boot_delay: std::time::Duration::from_millis(c.fake_boot_delay_ms),
                        failure_rate: c.fake_failure_rate,
                    }));
                    host(if n == 1 { base.clone() } else { format!("{base}-fake-{i:04}") }, None, driver)
                })
                .collect();
            let agent = stratus_compute_agent::Agent::new(&base, hosts, bus, report);
            // Fake guests have snapshots too, uploaded as the real ones are.
            let images = stratus_compute_agent::images::ImageCache::new(state_dir.join("images"), &image_url, tokens)?;
            agent.set_image_service(Arc::new(images));
            Ok(agent)
        }
        other => anyhow::bail!("compute driver {other:?} does not exist: use libvirt, fake, ironic or auto"),
    }
}

/// A compute agent named `name` whose hosts are the bare-metal service's nodes (those
/// with a resource class), calling that service with `tokens`.
pub fn baremetal_compute_agent(
    config: &Config,
    name: &str,
    bus: Bus,
    tokens: Arc<dyn TokenSource>,
) -> anyhow::Result<Arc<stratus_compute_agent::Agent>> {
    use stratus_compute_agent::driver::ironic::{BaremetalClient, IronicNodes, IronicOptions};
    let c = &config.compute_agent;
    let url = if c.baremetal_url.is_empty() {
        format!("http://{}:{}", config.server.public_host, config.baremetal.port)
    } else {
        c.baremetal_url.clone()
    };
    let opts = IronicOptions {
        deploy_timeout: std::time::Duration::from_secs(c.baremetal_deploy_timeout_secs.max(1)),
        ..Default::default()
    };
    let nodes = IronicNodes::new(BaremetalClient::new(&url, tokens)?, opts, &c.availability_zone);
    let report = std::time::Duration::from_secs(c.report_secs.max(1));
    Ok(stratus_compute_agent::Agent::with_source(name, nodes, bus, report))
}

/// The service user's password tokens, for processes without identity inside.
pub fn service_tokens(config: &Config) -> Arc<dyn TokenSource> {
    let a = &config.service_auth;
    Arc::new(PasswordTokens::new(
        &config.identity_url(),
        ServiceCredentials {
            username: a.username.clone(),
            password: a.password.clone(),
            project: a.project.clone(),
            domain: a.domain.clone(),
        },
    ))
}

/// Binds every service, then serves them all until SIGTERM or Ctrl-C.
pub async fn serve_all(services: Vec<Served>) -> anyhow::Result<()> {
    let serving = bind_all(services).await?;
    stratus_common::http::shutdown_signal().await;
    serving.stop().await
}

/// Services listening and being served in the background, until [`Serving::stop`].
pub struct Serving {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Serving {
    /// Stops accepting, lets the requests under way finish, and waits for them.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await??;
        }
        Ok(())
    }
}

/// Binds every service (all or none: the first address that cannot be had is the
/// error) and serves them in the background.
pub async fn bind_all(services: Vec<Served>) -> anyhow::Result<Serving> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut listeners = Vec::new();
    for s in services {
        let listener = tokio::net::TcpListener::bind(s.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {} for {}: {e}", s.addr, s.name))?;
        tracing::info!(service = s.name, addr = %s.addr, "listening");
        listeners.push((listener, s));
    }
    let mut tasks = Vec::new();
    for (listener, s) in listeners {
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.wait_for(|v| *v).await;
            };
            stratus_common::http::serve(listener, s.router, stop).await
        }));
    }
    Ok(Serving { stop: stop_tx, tasks })
}

/// Writes `clouds.yaml` and `openrc` for the admin user, readable by the owner only.
pub fn write_client_files(dir: &Path, auth_url: &str, region: &str, password: &str) -> anyhow::Result<()> {
    let yaml_pw = password.replace('\'', "''");
    let clouds = format!(
        "clouds:\n  stratus:\n    auth:\n      auth_url: {auth_url}\n      username: admin\n      password: '{yaml_pw}'\n      project_name: admin\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: {region}\n    interface: public\n    identity_api_version: 3\n"
    );
    let sh_pw = password.replace('\'', "'\\''");
    let openrc = format!(
        "export OS_AUTH_URL={auth_url}\nexport OS_USERNAME=admin\nexport OS_PASSWORD='{sh_pw}'\nexport OS_PROJECT_NAME=admin\nexport OS_USER_DOMAIN_NAME=Default\nexport OS_PROJECT_DOMAIN_NAME=Default\nexport OS_REGION_NAME={region}\nexport OS_IDENTITY_API_VERSION=3\nexport OS_INTERFACE=public\n"
    );
    for (name, text) in [("clouds.yaml", clouds), ("openrc", openrc)] {
        let path = dir.join(name);
        write_private(&path, &text)?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Tokens identity mints in-process for the agents of an all-in-one process (the
/// bootstrapped admin user on the admin project), renewed before they expire.
pub struct InternalTokens {
    identity: Arc<Identity>,
    cache: stratus_common::auth::service_token::TokenCache,
}

impl InternalTokens {
    pub fn new(identity: Arc<Identity>) -> Arc<Self> {
        Arc::new(Self { identity, cache: Default::default() })
    }
}

impl TokenSource for InternalTokens {
    fn token(&self) -> futures::future::BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(self.cache.get(|| async {
            let issued =
                self.identity.internal_token("admin", "admin").await.map_err(|e| anyhow::anyhow!(e.message))?;
            let lifetime = stratus_common::auth::service_token::lifetime_until(&issued.claims.expires_at);
            Ok((issued.token, lifetime))
        }))
    }

    fn refused(&self, token: &str) {
        self.cache.forget(token);
    }
}
