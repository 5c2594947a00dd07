//! A server's libvirt domain, as XML: built from the flavor (vCPUs, RAM), the boot disk
//! (a qcow2 overlay), an optional kernel and initramfs (direct kernel boot), the config
//! drive, one NIC per port and a serial console written to a file.

use crate::protocol::{PortSpec, VolumeSpec};
use std::fmt::Write;
use std::path::PathBuf;

/// Domains we own are named by this prefix and the server id.
pub const PREFIX: &str = "stratus-";

pub fn domain_name(server_id: &str) -> String {
    format!("{PREFIX}{server_id}")
}

/// The server a domain name belongs to, if we own it.
pub fn server_of(name: &str) -> Option<&str> {
    name.strip_prefix(PREFIX).filter(|s| !s.is_empty())
}

/// The tap of a port: the name the network agent looks for (`tap` and the first 11
/// characters of the port id, as Neutron's Linux bridge agent).
pub fn tap_name(port_id: &str) -> String {
    format!("tap{}", &port_id[..port_id.len().min(11)])
}

/// The namespace of our `<metadata>` element, which names the host a domain belongs to
/// (several agents may share one libvirt daemon in tests).
pub const METADATA_NS: &str = "urn:stratus:instance:1";

/// The host a domain's XML names, if it carries our metadata.
pub fn host_of(xml: &str) -> Option<&str> {
    let at = xml.find(METADATA_NS)?;
    let rest = &xml[xml[..at].rfind('<')?..];
    let end = rest.find('>')?;
    let attr = rest[..end].find("host=")? + "host=".len();
    let quote = rest[attr..].chars().next()?;
    let value = &rest[attr + 1..end];
    value.find(quote).map(|i| &value[..i])
}

/// Everything a domain is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainSpec {
    pub server_id: String,
    /// The host (agent) that owns the domain.
    pub host: String,
    /// `kvm` or `qemu` (software emulation).
    pub virt_type: String,
    pub vcpus: i64,
    pub ram_mb: i64,
    /// The root disk: the instance's overlay (qcow2), unless a volume in `volumes` is
    /// marked `boot`.
    pub disk: PathBuf,
    pub disk_format: String,
    /// Direct kernel boot: kernel, initramfs and command line.
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub config_drive: Option<PathBuf>,
    pub ports: Vec<PortSpec>,
    /// Attached volumes (each checked by [`volume_xml`] when it was attached).
    pub volumes: Vec<VolumeSpec>,
    pub console_log: PathBuf,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\'', "&apos;").replace('"', "&quot;")
}

fn path(p: &std::path::Path) -> String {
    esc(&p.display().to_string())
}

/// One NIC: libvirt makes the tap (type `ethernet`), the network agent plugs it into the
/// network's bridge and applies the port's rules.
pub fn interface_xml(port: &PortSpec) -> String {
    format!(
        "<interface type='ethernet'><mac address='{}'/><target dev='{}'/><model type='virtio'/></interface>",
        esc(&port.mac_address.to_lowercase()),
        esc(&tap_name(&port.id))
    )
}

/// A volume's disk on the virtio bus at the device compute chose, with the volume's id
/// as the serial (so the guest finds it under `/dev/disk/by-id/virtio-<id>`, as Nova's
/// guests do): a `file` volume's file in its format, or an `nbd` volume's export on its
/// storage host (QEMU's own NBD client; the bytes are the guest's view, raw). Other
/// kinds cannot be attached to libvirt guests.
pub fn volume_xml(v: &VolumeSpec) -> anyhow::Result<String> {
    let dev = v.device.trim_start_matches("/dev/");
    if !(dev.len() >= 3 && dev.starts_with("vd") && dev[2..].chars().all(|c| c.is_ascii_lowercase())) {
        anyhow::bail!("{} is not a virtio disk name (vdb, vdc, ...)", v.device);
    }
    volume_disk(v, dev)
}

/// What a domain's XML shows of a volume plugged into it, whatever its kind: its
/// serial.
pub fn volume_marker(v: &VolumeSpec) -> String {
    format!("<serial>{}</serial>", esc(&serial(v)))
}

fn serial(v: &VolumeSpec) -> String {
    v.volume_id.chars().take(20).collect()
}

fn volume_disk(v: &VolumeSpec, dev: &str) -> anyhow::Result<String> {
    let (kind, source) = match v.driver_volume_type.as_str() {
        "file" => {
            let file = v.data["device_path"].as_str().filter(|p| p.starts_with('/')).ok_or_else(|| {
                anyhow::anyhow!("the connection info of volume {} names no absolute device_path", v.volume_id)
            })?;
            ("file", format!("<source file='{}'/>", esc(file)))
        }
        "nbd" => {
            let host = v.data["host"].as_str().filter(|h| !h.is_empty());
            let port = v.data["port"].as_u64().filter(|p| (1..=65535).contains(p));
            let name = v.data["name"].as_str().filter(|n| !n.is_empty());
            let (Some(host), Some(port), Some(name)) = (host, port, name) else {
                anyhow::bail!("the connection info of NBD volume {} needs host, port and name", v.volume_id);
            };
            (
                "network",
                format!(
                    "<source protocol='nbd' name='{}'><host name='{}' port='{port}'/></source>",
                    esc(name),
                    esc(host)
                ),
            )
        }
        "rbd" => ("network", rbd_source(v)?),
        other => anyhow::bail!("volumes of type {other} cannot be attached to libvirt guests"),
    };
    let format = v.data["format"].as_str().unwrap_or("raw");
    if !matches!(format, "raw" | "qcow2") {
        anyhow::bail!("volume {} is in format {format}, not raw or qcow2", v.volume_id);
    }
    let readonly = if v.data["access_mode"].as_str() == Some("ro") { "<readonly/>" } else { "" };
    // A multiattach volume: other guests write it too.
    let shareable = if v.data["multiattach"] == true { "<shareable/>" } else { "" };
    Ok(format!(
        "<disk type='{kind}' device='disk'><driver name='qemu' type='{format}' cache='none'/>{source}<target dev='{}' bus='virtio'/>{}<serial>{}</serial>{readonly}{shareable}</disk>",
        esc(dev),
        iotune(&v.data["qos_specs"]),
        esc(&serial(v))
    ))
}

/// A Ceph RBD image as QEMU reaches it (Cinder's `rbd` connection info, as Nova's
/// libvirt driver reads it): the image `pool/name`, the monitors, and the user with
/// the libvirt secret holding its key (defined on this host by the operator).
fn rbd_source(v: &VolumeSpec) -> anyhow::Result<String> {
    let name = v.data["name"].as_str().filter(|n| n.contains('/') && !n.starts_with('/'));
    let Some(name) = name else {
        anyhow::bail!("the connection info of RBD volume {} names no pool/image", v.volume_id);
    };
    let list = |key: &str| -> Vec<String> {
        v.data[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| h.as_str().map(str::to_string).or_else(|| h.as_u64().map(|p| p.to_string())))
            .collect()
    };
    let (hosts, ports) = (list("hosts"), list("ports"));
    if hosts.is_empty() || hosts.len() != ports.len() || ports.iter().any(|p| p.parse::<u16>().is_err()) {
        anyhow::bail!("the connection info of RBD volume {} needs as many monitor ports as hosts", v.volume_id);
    }
    let hosts: String =
        hosts.iter().zip(&ports).map(|(h, p)| format!("<host name='{}' port='{}'/>", esc(h), esc(p))).collect();
    let auth = if v.data["auth_enabled"] == true {
        let (Some(user), Some(secret)) = (v.data["auth_username"].as_str(), v.data["secret_uuid"].as_str()) else {
            anyhow::bail!("the connection info of RBD volume {} needs auth_username and secret_uuid", v.volume_id);
        };
        format!("<auth username='{}'><secret type='ceph' uuid='{}'/></auth>", esc(user), esc(secret))
    } else {
        String::new()
    };
    Ok(format!("<source protocol='rbd' name='{}'>{hosts}</source>{auth}", esc(name)))
}

/// The volume type's front-end QoS specs that libvirt applies to the disk (Nova's
/// keys); others, and values that are no whole number, are left out. A total limit
/// wins over read/write ones of the same kind (libvirt takes one or the other).
fn iotune(specs: &serde_json::Value) -> String {
    const KEYS: &[&str] = &[
        "total_bytes_sec",
        "read_bytes_sec",
        "write_bytes_sec",
        "total_iops_sec",
        "read_iops_sec",
        "write_iops_sec",
        "total_bytes_sec_max",
        "read_bytes_sec_max",
        "write_bytes_sec_max",
        "total_iops_sec_max",
        "read_iops_sec_max",
        "write_iops_sec_max",
        "size_iops_sec",
    ];
    let value = |k: &str| -> Option<u64> {
        match &specs[k] {
            serde_json::Value::String(s) => s.trim().parse().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
    };
    let mut out = String::new();
    for k in KEYS {
        let Some(n) = value(k) else { continue };
        let total = k.replacen("read_", "total_", 1).replacen("write_", "total_", 1);
        if total != *k && value(&total).is_some() {
            continue;
        }
        let _ = write!(out, "<{k}>{n}</{k}>");
    }
    if out.is_empty() {
        out
    } else {
        format!("<iotune>{out}</iotune>")
    }
}

impl DomainSpec {
    pub fn xml(&self) -> String {
        let mut x = String::new();
        let _ = write!(
            x,
            "<domain type='{}'>\n  <name>{}</name>\n  <uuid>{}</uuid>\n  <memory unit='MiB'>{}</memory>\n  <vcpu>{}</vcpu>\n",
            esc(&self.virt_type),
            esc(&domain_name(&self.server_id)),
            esc(&self.server_id),
            self.ram_mb.max(1),
            self.vcpus.max(1)
        );
        let _ = writeln!(
            x,
            "  <metadata><stratus:instance xmlns:stratus='{METADATA_NS}' host='{}'/></metadata>",
            esc(&self.host)
        );
        x.push_str("  <os>\n    <type arch='x86_64' machine='pc'>hvm</type>\n");
        if let Some(k) = &self.kernel {
            let _ = writeln!(x, "    <kernel>{}</kernel>", path(k));
            if let Some(i) = &self.initrd {
                let _ = writeln!(x, "    <initrd>{}</initrd>", path(i));
            }
            let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&self.cmdline));
        } else {
            x.push_str("    <boot dev='hd'/>\n");
        }
        x.push_str("  </os>\n  <features><acpi/><apic/></features>\n");
        if self.virt_type == "kvm" {
            x.push_str("  <cpu mode='host-passthrough'/>\n");
        }
        x.push_str("  <clock offset='utc'/>\n");
        x.push_str(
            "  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>restart</on_reboot>\n  <on_crash>destroy</on_crash>\n",
        );
        x.push_str("  <devices>\n");
        // The root disk: the boot volume (as any volume, at vda), else the image overlay.
        match self.volumes.iter().find(|v| v.boot).map(|v| volume_disk(v, "vda")) {
            Some(Ok(disk)) => {
                let _ = writeln!(x, "    {disk}");
            }
            _ => {
                let _ = writeln!(
                    x,
                    "    <disk type='file' device='disk'><driver name='qemu' type='{}' cache='none'/><source file='{}'/><target dev='vda' bus='virtio'/></disk>",
                    esc(&self.disk_format),
                    path(&self.disk)
                );
            }
        }
        if let Some(d) = &self.config_drive {
            let _ = writeln!(
                x,
                "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='{}'/><target dev='hdd' bus='ide'/><readonly/></disk>",
                path(d)
            );
        }
        for v in self.volumes.iter().filter(|v| !v.boot) {
            if let Ok(disk) = volume_xml(v) {
                let _ = writeln!(x, "    {disk}");
            }
        }
        for p in &self.ports {
            let _ = writeln!(x, "    {}", interface_xml(p));
        }
        let _ = writeln!(
            x,
            "    <serial type='file'><source path='{}' append='on'/><target port='0'/></serial>",
            path(&self.console_log)
        );
        x.push_str("    <memballoon model='none'/>\n  </devices>\n</domain>\n");
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            server_id: "0b9a6c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b".into(),
            host: "h1".into(),
            virt_type: "qemu".into(),
            vcpus: 2,
            ram_mb: 256,
            disk: "/var/lib/s/instances/x/disk".into(),
            disk_format: "qcow2".into(),
            kernel: Some("/var/lib/s/images/k".into()),
            initrd: Some("/var/lib/s/images/r".into()),
            cmdline: "console=ttyS0 quiet".into(),
            config_drive: Some("/var/lib/s/instances/x/disk.config".into()),
            ports: vec![PortSpec {
                id: "5e6f7a8b-9c0d-1e2f-3a4b-5c6d7e8f9a0b".into(),
                mac_address: "FA:16:3E:00:00:01".into(),
                network_id: "n".into(),
            }],
            volumes: vec![volume("/var/lib/s/volumes/v.qcow2", "vdc")],
            console_log: "/var/lib/s/instances/x/console.log".into(),
        }
    }

    fn volume(path: &str, device: &str) -> VolumeSpec {
        VolumeSpec {
            volume_id: "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0".into(),
            device: device.into(),
            driver_volume_type: "file".into(),
            data: serde_json::json!({"device_path": path, "format": "qcow2"}),
            boot: false,
            size_gb: None,
        }
    }

    #[test]
    fn volumes_are_virtio_disks_with_their_id_as_serial() {
        let x = volume_xml(&volume("/v/a.qcow2", "/dev/vdc")).unwrap();
        assert_eq!(
            x,
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2' cache='none'/><source file='/v/a.qcow2'/><target dev='vdc' bus='virtio'/><serial>9f8e7d6c-5b4a-3928-1</serial></disk>"
        );
        assert!(spec().xml().contains("<source file='/var/lib/s/volumes/v.qcow2'/><target dev='vdc' bus='virtio'/>"));
        // Only what a libvirt guest can open, at a virtio disk name.
        assert!(volume_xml(&volume("relative.qcow2", "vdc")).is_err());
        assert!(volume_xml(&volume("/v/a", "sda")).is_err());
        assert!(volume_xml(&volume("/v/a", "vd")).is_err());
        let mut fake = volume("/v/a", "vdc");
        fake.driver_volume_type = "fake".into();
        assert!(volume_xml(&fake).is_err());
        let mut odd = volume("/v/a", "vdc");
        odd.data["format"] = "vmdk".into();
        assert!(volume_xml(&odd).is_err());
    }

    #[test]
    fn front_end_qos_specs_become_iotune() {
        let mut v = volume("/v/a.qcow2", "vdb");
        v.data["qos_specs"] = serde_json::json!({"read_iops_sec": "2000", "total_bytes_sec": "1048576",
            "read_bytes_sec": "5", "consumer_note": "x", "write_iops_sec": "lots"});
        let x = volume_xml(&v).unwrap();
        assert!(
            x.contains("<target dev='vdb' bus='virtio'/><iotune><total_bytes_sec>1048576</total_bytes_sec><read_iops_sec>2000</read_iops_sec></iotune><serial>"),
            "{x}"
        );
        v.data["qos_specs"] = serde_json::json!({"other": "1"});
        assert!(!volume_xml(&v).unwrap().contains("iotune"));
    }

    #[test]
    fn rbd_volumes_are_network_disks_with_their_monitors_and_secret() {
        let mut v = volume("/unused", "vdb");
        v.driver_volume_type = "rbd".into();
        v.data = serde_json::json!({"name": "volumes/volume-1", "hosts": ["192.0.2.1", "192.0.2.2"],
                                    "ports": ["6789", "6789"], "auth_enabled": true, "auth_username": "cinder",
                                    "secret_uuid": "5b6c0e7e-1111-4a4a-8b8b-0123456789ab", "format": "raw"});
        let xml = volume_disk(&v, "vdb").unwrap();
        assert!(xml.starts_with("<disk type='network' device='disk'><driver name='qemu' type='raw' cache='none'/><source protocol='rbd' name='volumes/volume-1'><host name='192.0.2.1' port='6789'/><host name='192.0.2.2' port='6789'/></source><auth username='cinder'><secret type='ceph' uuid='5b6c0e7e-1111-4a4a-8b8b-0123456789ab'/></auth><target dev='vdb'"), "{xml}");
        v.data["auth_enabled"] = serde_json::json!(false);
        assert!(!volume_disk(&v, "vdb").unwrap().contains("<auth"));
        v.data["ports"] = serde_json::json!(["6789"]);
        assert!(volume_disk(&v, "vdb").is_err(), "a port per monitor");
        v.data["name"] = serde_json::json!("no-pool");
        assert!(volume_disk(&v, "vdb").is_err());
    }

    #[test]
    fn nbd_volumes_are_network_disks_even_as_the_root_disk() {
        let mut v = volume("", "vdb");
        v.driver_volume_type = "nbd".into();
        v.data = serde_json::json!({"host": "192.0.2.7", "port": 10809, "name": "e1", "format": "raw"});
        assert_eq!(
            volume_xml(&v).unwrap(),
            "<disk type='network' device='disk'><driver name='qemu' type='raw' cache='none'/><source protocol='nbd' name='e1'><host name='192.0.2.7' port='10809'/></source><target dev='vdb' bus='virtio'/><serial>9f8e7d6c-5b4a-3928-1</serial></disk>"
        );
        assert!(volume_xml(&v).unwrap().contains(&volume_marker(&v)));
        let mut shared = v.clone();
        shared.data["multiattach"] = serde_json::json!(true);
        assert!(volume_xml(&shared).unwrap().ends_with("</serial><shareable/></disk>"), "other guests write it too");
        let mut s = spec();
        v.boot = true;
        s.volumes = vec![v.clone()];
        let x = s.xml();
        assert!(
            x.contains(
                "<source protocol='nbd' name='e1'><host name='192.0.2.7' port='10809'/></source><target dev='vda'"
            ),
            "{x}"
        );
        assert!(!x.contains("instances/x/disk'"), "no image disk beside a boot volume");
        for missing in ["host", "port", "name"] {
            let mut bad = v.clone();
            bad.data.as_object_mut().unwrap().remove(missing);
            assert!(volume_xml(&bad).is_err(), "{missing}");
        }
    }

    #[test]
    fn a_domain_from_flavor_disks_nics_and_console() {
        let x = spec().xml();
        assert!(x.starts_with("<domain type='qemu'>"), "{x}");
        assert!(x.contains("<name>stratus-0b9a6c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b</name>"));
        assert!(x.contains("<uuid>0b9a6c1e-2f3d-4e5f-8a9b-0c1d2e3f4a5b</uuid>"));
        assert!(x.contains("<memory unit='MiB'>256</memory>") && x.contains("<vcpu>2</vcpu>"));
        assert!(
            x.contains("<kernel>/var/lib/s/images/k</kernel>") && x.contains("<cmdline>console=ttyS0 quiet</cmdline>")
        );
        assert!(!x.contains("<boot dev='hd'/>"), "direct kernel boot has no boot device");
        assert!(
            x.contains("<source file='/var/lib/s/instances/x/disk.config'/><target dev='hdd' bus='ide'/><readonly/>")
        );
        assert!(x.contains("<mac address='fa:16:3e:00:00:01'/><target dev='tap5e6f7a8b-9c'/>"));
        assert!(x.contains("<serial type='file'><source path='/var/lib/s/instances/x/console.log' append='on'/>"));
        assert!(!x.contains("host-passthrough"));
        assert_eq!(host_of(&x), Some("h1"));
    }

    #[test]
    fn disk_boot_kvm_and_escaping() {
        let mut s = spec();
        s.kernel = None;
        s.virt_type = "kvm".into();
        s.config_drive = None;
        s.disk = "/tmp/a'b&c".into();
        let x = s.xml();
        assert!(x.contains("<boot dev='hd'/>") && x.contains("host-passthrough"));
        assert!(x.contains("/tmp/a&apos;b&amp;c") && !x.contains("hdd"), "no config drive");
    }

    #[test]
    fn the_owning_host_is_read_back_as_libvirt_writes_it() {
        let dumped = "<domain type='qemu' id='3'>\n  <name>stratus-x</name>\n  <metadata>\n    \
                      <stratus:instance xmlns:stratus=\"urn:stratus:instance:1\" host=\"node-7\"/>\n  </metadata>";
        assert_eq!(host_of(dumped), Some("node-7"));
        assert_eq!(host_of("<domain><name>stratus-y</name></domain>"), None);
    }

    #[test]
    fn names() {
        assert_eq!(server_of(&domain_name("abc")), Some("abc"));
        assert_eq!(server_of("other-vm"), None);
        assert_eq!(server_of("stratus-"), None);
        assert_eq!(tap_name("1234567890abcdef"), "tap1234567890a");
    }
}
