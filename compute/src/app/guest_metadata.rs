//! What the metadata API tells a guest: the server the proxy names (if it is alive and
//! of the named project) and the network service's view of its ports.

use super::AppResult;
use super::ComputeService;
use crate::metadata::content::{Facts, Metadata, PASSWORD_KEY, PASSWORD_MAX};
use crate::store::Server;
use base64::Engine;
use stratus_common::auth::AuthContext;
use stratus_compute_protocol::GuestSpec;

/// What became of a password a guest posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPost {
    Stored,
    /// One is kept already: the owner clears it first.
    AlreadySet,
    /// Longer than [`PASSWORD_MAX`] bytes.
    TooLong,
}

impl ComputeService {
    /// The documents of `instance`, if it is a live server of `project`.
    pub async fn guest_metadata(&self, instance: &str, project: &str) -> anyhow::Result<Option<Metadata>> {
        let server = match self.store.server_get(instance).await? {
            Some(s) if !s.deleted && s.project_id == project => s,
            _ => return Ok(None),
        };
        let facts = self.gather(&server).await?;
        Ok(Some(Metadata::build(&facts)))
    }

    /// A guest posts its password (`POST /openstack/<version>/password`): kept until the
    /// owner clears it (`DELETE /servers/{id}/os-server-password`); a second post is
    /// refused, as Nova's. `None`: not a live server of `project`.
    pub async fn guest_password_post(
        &self,
        instance: &str,
        project: &str,
        password: &str,
    ) -> anyhow::Result<Option<PasswordPost>> {
        if password.len() > PASSWORD_MAX {
            return Ok(Some(PasswordPost::TooLong));
        }
        for _ in 0..10 {
            let mut server = match self.store.server_get(instance).await? {
                Some(s) if !s.deleted && s.project_id == project => s,
                _ => return Ok(None),
            };
            if !server.str(PASSWORD_KEY).is_empty() {
                return Ok(Some(PasswordPost::AlreadySet));
            }
            server.doc.insert(PASSWORD_KEY.into(), password.into());
            if self.store.server_save(&mut server, None).await? {
                return Ok(Some(PasswordPost::Stored));
            }
        }
        anyhow::bail!("server {instance} kept changing")
    }

    /// The password the server's guest posted, `""` if none (the project's, or an
    /// administrator's).
    pub async fn server_password(&self, ctx: &AuthContext, id: &str) -> AppResult<String> {
        Ok(self.server_get(ctx, id).await?.str(PASSWORD_KEY).to_string())
    }

    /// Forgets the password the server's guest posted.
    pub async fn server_password_clear(&self, ctx: &AuthContext, id: &str) -> AppResult<()> {
        self.change_api(ctx, id, |s| {
            s.doc.remove(PASSWORD_KEY);
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Puts the server's metadata on a config drive in `spec`, for hosts whose driver
    /// attaches one (every real hypervisor; not the fake one, whose guests read nothing).
    /// `driver`: that of the server's host.
    pub(crate) async fn add_config_drive(
        &self,
        server: &Server,
        driver: &str,
        spec: &mut GuestSpec,
    ) -> anyhow::Result<()> {
        if driver == "fake" || driver.is_empty() {
            return Ok(());
        }
        let metadata = Metadata::build(&self.gather(server).await?);
        let files = metadata
            .openstack_files()
            .into_iter()
            .filter_map(|name| {
                let (_, body) = metadata.openstack_file(name)?;
                Some((format!("openstack/latest/{name}"), base64::engine::general_purpose::STANDARD.encode(body)))
            })
            .collect();
        spec.config_drive = Some(files);
        Ok(())
    }

    /// The server's ports, their subnets and networks, and floating IPs.
    async fn gather<'a>(&self, server: &'a Server) -> Result<Facts<'a>, crate::clients::CallError> {
        let ports = self.clients.ports_of(&server.id, &server.project_id).await?;
        let mut subnet_ids: Vec<String> = Vec::new();
        let mut network_ids: Vec<String> = Vec::new();
        for p in &ports {
            if let Some(n) = p["network_id"].as_str().filter(|n| !network_ids.iter().any(|x| x == n)) {
                network_ids.push(n.to_string());
            }
            for ip in p["fixed_ips"].as_array().into_iter().flatten() {
                if let Some(s) = ip["subnet_id"].as_str().filter(|s| !subnet_ids.iter().any(|x| x == s)) {
                    subnet_ids.push(s.to_string());
                }
            }
        }
        let (subnets, networks) = self.clients.subnets_and_networks(&subnet_ids, &network_ids).await?;
        let port_ids: Vec<String> = ports.iter().filter_map(|p| p["id"].as_str().map(str::to_string)).collect();
        let floating_ips = self
            .clients
            .floating_ips_of(&port_ids)
            .await?
            .iter()
            .filter_map(|f| f["floating_ip_address"].as_str().map(str::to_string))
            .collect();
        let flavor_name = server.doc.get("flavor").and_then(|f| f["original_name"].as_str()).unwrap_or("").to_string();
        Ok(Facts { server, ports, subnets, networks, floating_ips, flavor_name })
    }
}
