//! What the metadata API tells a guest: the server the proxy names (if it is alive and
//! of the named project) and the network service's view of its ports.

use super::ComputeService;
use crate::metadata::content::{Facts, Metadata};
use crate::store::Server;
use base64::Engine;
use stratus_compute_protocol::GuestSpec;

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
