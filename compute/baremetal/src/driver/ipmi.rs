//! IPMI over LAN, through `ipmitool` (`-I lanplus`), as Ironic's `ipmi` hardware type
//! does it. `driver_info`: `ipmi_address`, `ipmi_port` (623), `ipmi_username`,
//! `ipmi_password` (handed to ipmitool in its environment, never on its command line),
//! `ipmi_priv_level` (ADMINISTRATOR). IPMI cannot tell what hardware a node has:
//! inspection needs Redfish.

use super::{info_text, Bmc, Inventory};
use crate::model::{BootDevice, PowerState, PowerTarget};
use anyhow::{anyhow, bail, Context};
use futures::future::BoxFuture;
use serde_json::{Map, Value};
use std::time::Duration;

pub struct Ipmi {
    tool: String,
    address: String,
    port: String,
    user: Option<String>,
    password: Option<String>,
    priv_level: String,
}

impl Ipmi {
    pub fn new(tool: String, info: &Map<String, Value>) -> anyhow::Result<Self> {
        let address = info_text(info, "ipmi_address").ok_or_else(|| anyhow!("driver_info needs ipmi_address"))?;
        let port = info_text(info, "ipmi_port").unwrap_or_else(|| "623".into());
        anyhow::ensure!(port.parse::<u16>().is_ok(), "ipmi_port must be a port number, not {port:?}");
        Ok(Self {
            tool,
            address,
            port,
            user: info_text(info, "ipmi_username"),
            password: info_text(info, "ipmi_password"),
            priv_level: info_text(info, "ipmi_priv_level").unwrap_or_else(|| "ADMINISTRATOR".into()),
        })
    }

    /// The arguments that reach the BMC, before the command's own.
    fn base_args(&self) -> Vec<String> {
        let mut a = vec!["-I", "lanplus", "-H", &self.address, "-p", &self.port, "-L", &self.priv_level]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>();
        if let Some(u) = &self.user {
            a.extend(["-U".to_string(), u.clone()]);
        }
        // `-E`: the password comes from IPMI_PASSWORD, so `ps` never shows it.
        a.push("-E".into());
        // Retries and timeouts of ipmitool itself, so a dead BMC fails in seconds.
        a.extend(["-R", "2", "-N", "3"].map(String::from));
        a
    }

    async fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = tokio::process::Command::new(&self.tool);
        cmd.args(self.base_args()).args(args).env("IPMI_PASSWORD", self.password.as_deref().unwrap_or(""));
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .map_err(|_| anyhow!("ipmitool {} timed out against {}:{}", args.join(" "), self.address, self.port))?
            .with_context(|| format!("cannot run {}", self.tool))?;
        if !out.status.success() {
            bail!(
                "ipmitool {} failed against {}:{}: {}",
                args.join(" "),
                self.address,
                self.port,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The power state in `ipmitool power status`'s answer ("Chassis Power is on").
pub fn parse_power(out: &str) -> Option<PowerState> {
    let out = out.to_ascii_lowercase();
    if out.contains("power is on") {
        Some(PowerState::On)
    } else if out.contains("power is off") {
        Some(PowerState::Off)
    } else {
        None
    }
}

/// `ipmitool chassis bootdev`'s name of a boot device.
pub fn bootdev(device: BootDevice) -> &'static str {
    match device {
        BootDevice::Pxe => "pxe",
        BootDevice::Disk => "disk",
        BootDevice::Cdrom => "cdrom",
        BootDevice::Bios => "bios",
    }
}

/// The boot device in `ipmitool chassis bootparam get 5`'s answer.
pub fn parse_bootparam(out: &str) -> Option<BootDevice> {
    let line = out.lines().find(|l| l.contains("Boot Device Selector"))?;
    let line = line.to_ascii_lowercase();
    if line.contains("pxe") {
        Some(BootDevice::Pxe)
    } else if line.contains("hard-drive") {
        Some(BootDevice::Disk)
    } else if line.contains("cd/dvd") {
        Some(BootDevice::Cdrom)
    } else if line.contains("bios") {
        Some(BootDevice::Bios)
    } else {
        None
    }
}

impl Bmc for Ipmi {
    fn power_state(&self) -> BoxFuture<'_, anyhow::Result<PowerState>> {
        Box::pin(async move {
            let out = self.run(&["power", "status"]).await?;
            parse_power(&out).ok_or_else(|| anyhow!("ipmitool power status said {:?}", out.trim()))
        })
    }

    fn set_power(&self, target: PowerTarget) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let on = self.power_state().await? == PowerState::On;
            let verb = match (target, on) {
                (PowerTarget::On, true) | (PowerTarget::Off | PowerTarget::SoftOff, false) => return Ok(()),
                (PowerTarget::On, false) | (PowerTarget::Reboot | PowerTarget::SoftReboot, false) => "on",
                (PowerTarget::Off, true) => "off",
                (PowerTarget::SoftOff, true) => "soft",
                (PowerTarget::Reboot, true) => "reset",
                (PowerTarget::SoftReboot, true) => "cycle",
            };
            self.run(&["power", verb]).await.map(|_| ())
        })
    }

    fn set_boot_device(&self, device: BootDevice, persistent: bool) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let mut args = vec!["chassis", "bootdev", bootdev(device)];
            if persistent {
                args.push("options=persistent");
            }
            self.run(&args).await.map(|_| ())
        })
    }

    fn boot_device(&self) -> BoxFuture<'_, anyhow::Result<Option<BootDevice>>> {
        Box::pin(async move { Ok(parse_bootparam(&self.run(&["chassis", "bootparam", "get", "5"]).await?)) })
    }

    fn inventory(&self) -> BoxFuture<'_, anyhow::Result<Inventory>> {
        Box::pin(async move { bail!("IPMI cannot tell what hardware a node has; inspect it over Redfish") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipmitool_answers() {
        assert_eq!(parse_power("Chassis Power is on\n"), Some(PowerState::On));
        assert_eq!(parse_power("Chassis Power is off"), Some(PowerState::Off));
        assert_eq!(parse_power("Error"), None);
        let out = "Boot parameter version: 1\n Boot Device Selector : Force PXE\n";
        assert_eq!(parse_bootparam(out), Some(BootDevice::Pxe));
        assert_eq!(
            parse_bootparam(" Boot Device Selector : Force Boot from default Hard-Drive"),
            Some(BootDevice::Disk)
        );
    }

    #[test]
    fn the_password_never_reaches_the_command_line() {
        let info = serde_json::json!({"ipmi_address": "127.0.0.1", "ipmi_port": 6230, "ipmi_username": "admin",
                                      "ipmi_password": "s3cret"});
        let i = Ipmi::new("ipmitool".into(), info.as_object().unwrap()).unwrap();
        let args = i.base_args().join(" ");
        assert!(args.contains("-p 6230") && args.contains("-U admin") && args.contains("-E"));
        assert!(!args.contains("s3cret"));
        let bad = serde_json::json!({"ipmi_address": "h", "ipmi_port": "x"});
        assert!(Ipmi::new("ipmitool".into(), bad.as_object().unwrap()).is_err());
    }
}
