//! Composition: opens the shared database and bus, builds the services, and serves
//! them. Each service crate exposes its router and background work; this file only
//! wires them together.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use stratus_common::bus::Bus;
use stratus_common::config::Config;
use stratus_common::db::{Db, Migration};
use stratus_identity::app::{BootstrapOptions, BootstrapReport, CatalogService};
use stratus_identity::Identity;

/// The database and bus every service of this process shares.
pub struct Runtime {
    pub config: Config,
    pub db: Db,
    pub bus: Bus,
}

/// Every service's migrations, in the order they apply.
pub fn all_migrations() -> Vec<Migration> {
    stratus_identity::migrations::MIGRATIONS.to_vec()
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

    /// The services this deployment lists in its catalog.
    pub fn catalog_services(&self) -> Vec<CatalogService> {
        vec![CatalogService {
            service_type: "identity".into(),
            name: "keystone".into(),
            url: format!("{}/v3", self.identity_public_url()),
        }]
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

    /// Serves identity until SIGTERM or Ctrl-C.
    pub async fn serve_identity(&self, identity: Arc<Identity>) -> anyhow::Result<()> {
        let addr: SocketAddr = format!("{}:{}", self.config.server.bind_host, self.config.identity.port).parse()?;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(%addr, "identity listening");
        let router = stratus_identity::api::router(identity, self.config.server.max_body_bytes);
        stratus_common::http::serve(listener, router, stratus_common::http::shutdown_signal()).await?;
        Ok(())
    }
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
