//! DHCP on the provisioning network, for nodes that network-boot: dnsmasq on one
//! interface, kept in the foreground of a supervised task (restarted if it dies).
//! iPXE clients (DHCP option 175; QEMU's NIC firmware is iPXE) are sent straight to the
//! bare-metal API's `boot.ipxe`; plain PXE firmware (most real servers) first gets
//! iPXE itself over TFTP when Debian's `ipxe` package is installed
//! (`/usr/lib/ipxe/undionly.kpxe`, and `ipxe.efi` for UEFI).

use std::path::{Path, PathBuf};
use tokio::process::Command;

#[derive(Debug, Clone)]
pub struct Dhcp {
    /// The interface on the provisioning network (a bridge, or a NIC).
    pub interface: String,
    /// dnsmasq's `--dhcp-range`: `FIRST,LAST[,NETMASK][,LEASE]`.
    pub range: String,
    /// The bare-metal API as the nodes reach it.
    pub agent_url: String,
    /// Where the leases and the pid file go.
    pub state_dir: PathBuf,
}

const IPXE_DIR: &str = "/usr/lib/ipxe";

impl Dhcp {
    fn pid_file(&self) -> PathBuf {
        self.state_dir.join(format!("dnsmasq-{}.pid", self.interface))
    }

    /// dnsmasq's arguments.
    pub fn args(&self) -> Vec<String> {
        let boot = format!("{}/v1/agent/boot.ipxe", self.agent_url.trim_end_matches('/'));
        let mut a = vec![
            "--keep-in-foreground".to_string(),
            "--conf-file=/dev/null".into(),
            "--port=0".into(),
            format!("--interface={}", self.interface),
            "--bind-interfaces".into(),
            "--except-interface=lo".into(),
            format!("--dhcp-range={}", self.range),
            format!("--dhcp-leasefile={}", self.state_dir.join(format!("dnsmasq-{}.leases", self.interface)).display()),
            format!("--pid-file={}", self.pid_file().display()),
            "--dhcp-match=set:ipxe,175".into(),
            format!("--dhcp-boot=tag:ipxe,{boot}"),
        ];
        if Path::new(IPXE_DIR).join("undionly.kpxe").exists() {
            a.extend([
                "--enable-tftp".to_string(),
                format!("--tftp-root={IPXE_DIR}"),
                "--dhcp-match=set:efi64,option:client-arch,7".into(),
                "--dhcp-match=set:efi64,option:client-arch,9".into(),
                "--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi".into(),
                "--dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe".into(),
            ]);
        }
        a
    }

    /// Stops a dnsmasq an earlier run of this service left behind (after a crash), so
    /// the new one can bind.
    async fn stop_leftover(&self) {
        let Ok(pid) = std::fs::read_to_string(self.pid_file()) else { return };
        let pid = pid.trim();
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&self.pid_file().display().to_string()))
            .unwrap_or(false);
        if ours {
            let _ = Command::new("kill").arg(pid).status().await;
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Runs dnsmasq until it exits (an error: the supervisor starts it again).
    pub async fn run(&self) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.state_dir)?;
        self.stop_leftover().await;
        let mut child = Command::new("dnsmasq").args(self.args()).kill_on_drop(true).spawn()?;
        tracing::info!(interface = %self.interface, range = %self.range, "provisioning DHCP running");
        let status = child.wait().await?;
        anyhow::bail!("dnsmasq on {} exited: {status}", self.interface)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipxe_clients_are_sent_to_the_api() {
        let d = Dhcp {
            interface: "prov0".into(),
            range: "10.9.0.100,10.9.0.200".into(),
            agent_url: "http://10.9.0.1:6385/".into(),
            state_dir: "/tmp/x".into(),
        };
        let a = d.args().join(" ");
        assert!(a.contains("--interface=prov0 --bind-interfaces"), "{a}");
        assert!(a.contains("--dhcp-range=10.9.0.100,10.9.0.200"));
        assert!(a.contains("--dhcp-boot=tag:ipxe,http://10.9.0.1:6385/v1/agent/boot.ipxe"));
        assert!(a.contains("--port=0"), "no DNS");
    }
}
