//! Redfish: the DMTF's HTTP + JSON interface to a server's BMC. The node's
//! `driver_info` names the BMC (`redfish_address`, `http(s)://host[:port]`; no scheme
//! means https) and the system on it (`redfish_system_id`, e.g.
//! `/redfish/v1/Systems/1`), with optional basic-auth credentials
//! (`redfish_username`, `redfish_password`) and `redfish_verify_ca` (false accepts a
//! self-signed BMC certificate, as most are).

use super::{info_text, Bmc, Inventory};
use crate::model::{BootDevice, PowerState, PowerTarget};
use anyhow::{anyhow, bail, Context};
use futures::future::BoxFuture;
use serde_json::{json, Map, Value};

pub struct Redfish {
    http: reqwest::Client,
    base: String,
    system: String,
    user: Option<String>,
    password: Option<String>,
}

impl Redfish {
    pub fn new(http: reqwest::Client, info: &Map<String, Value>) -> anyhow::Result<Self> {
        let address = info_text(info, "redfish_address").ok_or_else(|| anyhow!("driver_info needs redfish_address"))?;
        let base = if address.contains("://") { address } else { format!("https://{address}") };
        let system =
            info_text(info, "redfish_system_id").ok_or_else(|| anyhow!("driver_info needs redfish_system_id"))?;
        let verify =
            info_text(info, "redfish_verify_ca").is_none_or(|v| !matches!(v.as_str(), "false" | "False" | "0"));
        let http = if verify {
            http
        } else {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .timeout(std::time::Duration::from_secs(60))
                .build()?
        };
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            system: format!("/{}", system.trim_matches('/')),
            user: info_text(info, "redfish_username"),
            password: info_text(info, "redfish_password"),
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) };
        let r = self.http.request(method, url).header("Accept", "application/json");
        match &self.user {
            Some(u) => r.basic_auth(u, self.password.as_deref()),
            None => r,
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.request(reqwest::Method::GET, path).send().await.with_context(|| self.unreachable())?;
        let status = resp.status();
        if !status.is_success() {
            bail!("the BMC answered {status} to GET {path}");
        }
        resp.json().await.with_context(|| format!("the BMC's answer to GET {path} is not JSON"))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> anyhow::Result<()> {
        let what = format!("{method} {path}");
        let resp = self.request(method, path).json(&body).send().await.with_context(|| self.unreachable())?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            bail!("the BMC answered {status} to {what}: {}", text.chars().take(300).collect::<String>());
        }
        Ok(())
    }

    fn unreachable(&self) -> String {
        format!("cannot reach the Redfish BMC at {}", self.base)
    }

    /// The members of a collection, each fetched.
    async fn members(&self, collection: &str) -> anyhow::Result<Vec<Value>> {
        let c = self.get(collection).await?;
        let mut out = Vec::new();
        for m in c["Members"].as_array().into_iter().flatten() {
            if let Some(id) = m["@odata.id"].as_str() {
                out.push(self.get(id).await?);
            }
        }
        Ok(out)
    }
}

/// The Redfish `ResetType` of a power request.
pub fn reset_type(target: PowerTarget) -> &'static str {
    match target {
        PowerTarget::On => "On",
        PowerTarget::Off => "ForceOff",
        PowerTarget::Reboot => "ForceRestart",
        PowerTarget::SoftOff => "GracefulShutdown",
        PowerTarget::SoftReboot => "GracefulRestart",
    }
}

/// The Redfish `BootSourceOverrideTarget` of a boot device, and back.
pub fn boot_target(device: BootDevice) -> &'static str {
    match device {
        BootDevice::Pxe => "Pxe",
        BootDevice::Disk => "Hdd",
        BootDevice::Cdrom => "Cd",
        BootDevice::Bios => "BiosSetup",
    }
}

fn boot_device_of(target: &str) -> Option<BootDevice> {
    match target {
        "Pxe" => Some(BootDevice::Pxe),
        "Hdd" => Some(BootDevice::Disk),
        "Cd" => Some(BootDevice::Cdrom),
        "BiosSetup" => Some(BootDevice::Bios),
        _ => None,
    }
}

impl Bmc for Redfish {
    fn power_state(&self) -> BoxFuture<'_, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let sys = self.get(&self.system).await?;
            match sys["PowerState"].as_str() {
                Some("On") | Some("PoweringOff") => Ok(PowerState::On),
                Some("Off") | Some("PoweringOn") => Ok(PowerState::Off),
                other => bail!("the BMC reports an unknown power state {other:?}"),
            }
        })
    }

    fn set_power(&self, target: PowerTarget) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            // The action's address is the system's to say; the standard one otherwise.
            let sys = self.get(&self.system).await?;
            let action = sys["Actions"]["#ComputerSystem.Reset"]["target"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", self.system));
            let on = sys["PowerState"].as_str() == Some("On");
            // Powering on a node that is on, or off one that is off, is done already;
            // rebooting one that is off means powering it on.
            let reset = match (target, on) {
                (PowerTarget::On, true) | (PowerTarget::Off | PowerTarget::SoftOff, false) => return Ok(()),
                (PowerTarget::Reboot | PowerTarget::SoftReboot, false) => "On",
                _ => reset_type(target),
            };
            self.send(reqwest::Method::POST, &action, json!({"ResetType": reset})).await
        })
    }

    fn set_boot_device(&self, device: BootDevice, persistent: bool) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let enabled = if persistent { "Continuous" } else { "Once" };
            let body = json!({"Boot": {"BootSourceOverrideTarget": boot_target(device),
                                       "BootSourceOverrideEnabled": enabled}});
            self.send(reqwest::Method::PATCH, &self.system, body).await
        })
    }

    fn boot_device(&self) -> BoxFuture<'_, anyhow::Result<Option<BootDevice>>> {
        Box::pin(async move {
            let sys = self.get(&self.system).await?;
            Ok(sys["Boot"]["BootSourceOverrideTarget"].as_str().and_then(boot_device_of))
        })
    }

    fn inventory(&self) -> BoxFuture<'_, anyhow::Result<Inventory>> {
        Box::pin(async move {
            let sys = self.get(&self.system).await?;
            let mut inv = Inventory {
                cpus: sys["ProcessorSummary"]["Count"].as_i64(),
                memory_mb: sys["MemorySummary"]["TotalSystemMemoryGiB"].as_f64().map(|g| (g * 1024.0).round() as i64),
                ..Default::default()
            };
            if let Some(p) = sys["Processors"]["@odata.id"].as_str() {
                if let Some(first) = self.members(p).await.unwrap_or_default().first() {
                    inv.cpu_arch = first["ProcessorArchitecture"].as_str().map(|a| match a {
                        "x86" => "x86_64".to_string(),
                        other => other.to_lowercase(),
                    });
                }
            }
            if let Some(e) = sys["EthernetInterfaces"]["@odata.id"].as_str() {
                for nic in self.members(e).await? {
                    if let Some(mac) = nic["MACAddress"].as_str().or(nic["PermanentMACAddress"].as_str()) {
                        inv.macs.push(mac.to_ascii_lowercase());
                    }
                }
            }
            // The largest disk, in GiB (as Ironic's local_gb), from SimpleStorage.
            if let Some(s) = sys["SimpleStorage"]["@odata.id"].as_str() {
                let mut largest = 0u64;
                for ctrl in self.members(s).await.unwrap_or_default() {
                    for d in ctrl["Devices"].as_array().into_iter().flatten() {
                        largest = largest.max(d["CapacityBytes"].as_u64().unwrap_or(0));
                    }
                }
                if largest > 0 {
                    inv.local_gb = Some((largest >> 30) as i64);
                }
            }
            Ok(inv)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_redfish() {
        assert_eq!(reset_type(PowerTarget::Off), "ForceOff");
        assert_eq!(reset_type(PowerTarget::SoftReboot), "GracefulRestart");
        for d in BootDevice::ALL {
            assert_eq!(boot_device_of(boot_target(*d)), Some(*d));
        }
    }

    #[test]
    fn an_address_without_scheme_is_https_and_the_system_path_is_normalised() {
        let info = json!({"redfish_address": "10.0.0.5:8000/", "redfish_system_id": "redfish/v1/Systems/1/"});
        let r = Redfish::new(reqwest::Client::new(), info.as_object().unwrap()).unwrap();
        assert_eq!(r.base, "https://10.0.0.5:8000");
        assert_eq!(r.system, "/redfish/v1/Systems/1");
        assert!(Redfish::new(reqwest::Client::new(), &Map::new()).is_err());
    }
}
