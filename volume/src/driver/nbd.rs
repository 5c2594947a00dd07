//! Volume files served over the network to compute hosts that do not see the storage
//! host's directory: one `qemu-storage-daemon` per exported volume, speaking NBD over
//! TCP (QEMU's userspace block layer on both ends, no kernel module anywhere).
//!
//! - The daemon opens the volume's qcow2 file (and its backing image) and exports the
//!   guest-visible bytes, writable, under a random export name, on a port of its own
//!   from `[volume] nbd_first_port` on; the compute host's QEMU reads them as a raw
//!   network disk (`<source protocol='nbd'>`).
//! - **Only the hosts that connected may reach it**: an nftables table of this storage
//!   directory (`inet stratus_nbd_<tag>`) accepts each export's port from the addresses
//!   of the hosts that asked for it (their connector's `ip`) and drops it from anyone
//!   else. The table is written before a daemon starts, in one `nft -f` transaction.
//! - What is exported is recorded under `exports/<volume id>.json` (port, name, the hosts
//!   and their addresses) beside the daemon's pid file. Daemons run detached (their own
//!   session), so a restart of the volume service leaves guests' disks alone; the
//!   service's reconciler calls [`NbdExports::keep`] with the volumes that are attached,
//!   which restarts a daemon that died and stops the exports of volumes no longer
//!   attached. Every call is idempotent.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// How long an export's record is left alone by [`NbdExports::keep`] after it changed.
const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Where and how exports are served.
#[derive(Debug, Clone)]
pub struct NbdOptions {
    /// The address the daemons listen on, and that compute hosts connect to.
    pub address: String,
    pub first_port: u16,
    pub ports: u16,
}

/// One exported volume.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Record {
    volume_id: String,
    file: PathBuf,
    port: u16,
    name: String,
    /// Host name → the address it connects from.
    hosts: BTreeMap<String, String>,
}

pub struct NbdExports {
    dir: PathBuf,
    opts: NbdOptions,
    table: String,
    /// One change at a time: ports are chosen and the firewall written from all records.
    lock: tokio::sync::Mutex<()>,
}

impl NbdExports {
    /// Exports kept under `dir` (made if missing).
    pub fn new(dir: impl Into<PathBuf>, opts: NbdOptions) -> anyhow::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let table = format!("stratus_nbd_{:08x}", fnv1a(dir.display().to_string().as_bytes()));
        Ok(Self { dir, opts, table, lock: tokio::sync::Mutex::new(()) })
    }

    /// The address the exports are served at.
    pub fn address(&self) -> &str {
        &self.opts.address
    }

    /// Exports volume `id` (the qcow2 `file`) to `host`, reached from `ip`; what the
    /// host needs to connect (the `data` of an `nbd` connection).
    pub async fn open(&self, id: &str, file: &Path, host: &str, ip: &str) -> anyhow::Result<serde_json::Value> {
        let ip: IpAddr = ip.parse().map_err(|_| {
            anyhow::anyhow!(
                "host {host} names {ip:?} as its address, not an IP address: set [compute_agent] my_ip there"
            )
        })?;
        let _guard = self.lock.lock().await;
        let mut records = self.records().await?;
        let mut rec = match records.iter().find(|r| r.volume_id == id) {
            Some(r) => r.clone(),
            None => Record {
                volume_id: id.to_string(),
                file: file.to_path_buf(),
                port: 0,
                name: uuid::Uuid::new_v4().simple().to_string(),
                hosts: BTreeMap::new(),
            },
        };
        rec.hosts.insert(host.to_string(), ip.to_string());
        let mut tried = HashSet::new();
        loop {
            if rec.port == 0 {
                let used: HashSet<u16> =
                    records.iter().filter(|r| r.volume_id != id).map(|r| r.port).chain(tried.iter().copied()).collect();
                rec.port = (0..self.opts.ports)
                    .map(|i| self.opts.first_port + i)
                    .find(|p| !used.contains(p))
                    .ok_or_else(|| anyhow::anyhow!("every NBD export port of this storage host is taken"))?;
            }
            self.save(&rec).await?;
            records.retain(|r| r.volume_id != id);
            records.push(rec.clone());
            self.firewall(&records).await?;
            match self.ensure_running(&rec).await {
                Ok(()) => break,
                Err(Start::PortTaken) => {
                    tried.insert(rec.port);
                    rec.port = 0;
                }
                Err(Start::Failed(e)) => return Err(e),
            }
        }
        Ok(serde_json::json!({"host": self.opts.address, "port": rec.port, "name": rec.name, "format": "raw",
                              "volume_id": id}))
    }

    /// `host` let go of volume `id`; the export ends with its last host.
    pub async fn close(&self, id: &str, host: &str) -> anyhow::Result<()> {
        let _guard = self.lock.lock().await;
        let mut records = self.records().await?;
        let Some(rec) = records.iter_mut().find(|r| r.volume_id == id) else { return Ok(()) };
        rec.hosts.remove(host);
        if rec.hosts.is_empty() {
            let rec = rec.clone();
            self.stop(&rec).await?;
            records.retain(|r| r.volume_id != id);
            self.firewall(&records).await?;
            remove(&self.record_path(id)).await?;
        } else {
            let rec = rec.clone();
            self.save(&rec).await?;
            self.firewall(&records).await?;
        }
        Ok(())
    }

    /// Keeps the exports of the `attached` volumes running (a daemon that died is
    /// started again) and ends every other one that has not changed for [`GRACE`]: the
    /// caller read `attached` before this call, and a volume attached meanwhile is not
    /// in it.
    pub async fn keep(&self, attached: &HashSet<String>) -> anyhow::Result<()> {
        let _guard = self.lock.lock().await;
        let mut records = self.records().await?;
        let mut fresh = HashSet::new();
        for r in &records {
            let changed = tokio::fs::metadata(self.record_path(&r.volume_id)).await.and_then(|m| m.modified());
            if changed.is_ok_and(|t| t.elapsed().unwrap_or_default() < GRACE) {
                fresh.insert(r.volume_id.clone());
            }
        }
        let (keep, end): (Vec<_>, Vec<_>) =
            records.drain(..).partition(|r| attached.contains(&r.volume_id) || fresh.contains(&r.volume_id));
        for rec in &end {
            tracing::info!(volume = %rec.volume_id, port = rec.port, "ending the NBD export of a volume no longer attached");
            self.stop(rec).await?;
            remove(&self.record_path(&rec.volume_id)).await?;
        }
        self.firewall(&keep).await?;
        for rec in &keep {
            if !self.running(rec).await {
                tracing::warn!(volume = %rec.volume_id, port = rec.port, "restarting the NBD export of an attached volume");
                match self.ensure_running(rec).await {
                    Ok(()) => {}
                    Err(Start::PortTaken) => {
                        tracing::error!(volume = %rec.volume_id, port = rec.port, "the export's port is taken by another process")
                    }
                    Err(Start::Failed(e)) => {
                        tracing::error!(volume = %rec.volume_id, error = %format!("{e:#}"), "cannot restart the export")
                    }
                }
            }
        }
        Ok(())
    }

    /// The nftables table limiting this directory's exports.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The port volume `id` is exported on, if it is (for tests and operators).
    pub async fn port_of(&self, id: &str) -> anyhow::Result<Option<u16>> {
        Ok(self.records().await?.into_iter().find(|r| r.volume_id == id).map(|r| r.port))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn pid_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.pid"))
    }

    async fn records(&self) -> anyhow::Result<Vec<Record>> {
        let mut out = Vec::new();
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(e) = dir.next_entry().await? {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            let text = tokio::fs::read_to_string(&path).await?;
            match serde_json::from_str(&text) {
                Ok(r) => out.push(r),
                Err(err) => tracing::error!(file = %path.display(), error = %err, "unreadable NBD export record"),
            }
        }
        out.sort_by(|a: &Record, b| a.volume_id.cmp(&b.volume_id));
        Ok(out)
    }

    async fn save(&self, rec: &Record) -> anyhow::Result<()> {
        let path = self.record_path(&rec.volume_id);
        let part = path.with_extension("json.part");
        tokio::fs::write(&part, serde_json::to_vec_pretty(rec)?).await?;
        tokio::fs::rename(&part, &path).await?;
        Ok(())
    }

    /// The daemon's pid, when the process with the pid file's number is this export's.
    async fn pid(&self, rec: &Record) -> Option<u32> {
        let pid: u32 = tokio::fs::read_to_string(self.pid_path(&rec.volume_id)).await.ok()?.trim().parse().ok()?;
        let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
        let needle = format!("name={}", rec.name);
        String::from_utf8_lossy(&cmdline).contains(&needle).then_some(pid)
    }

    async fn running(&self, rec: &Record) -> bool {
        self.pid(rec).await.is_some()
    }

    async fn ensure_running(&self, rec: &Record) -> Result<(), Start> {
        if self.running(rec).await {
            return Ok(());
        }
        let log = self.dir.join(format!("{}.log", rec.volume_id));
        let stderr = std::fs::File::create(&log).map_err(|e| Start::Failed(e.into()))?;
        let status = tokio::process::Command::new("qemu-storage-daemon")
            .args(daemon_args(rec, &self.opts.address, &self.pid_path(&rec.volume_id)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .status()
            .await
            .context("cannot run qemu-storage-daemon (is qemu-system-common installed?)")
            .map_err(Start::Failed)?;
        if status.success() {
            return Ok(());
        }
        let why = std::fs::read_to_string(&log).unwrap_or_default();
        if why.contains("in use") {
            return Err(Start::PortTaken);
        }
        Err(Start::Failed(anyhow::anyhow!(
            "qemu-storage-daemon could not export volume {}: {}",
            rec.volume_id,
            why.trim()
        )))
    }

    async fn stop(&self, rec: &Record) -> anyhow::Result<()> {
        if let Some(pid) = self.pid(rec).await {
            let _ = tokio::process::Command::new("kill").arg(pid.to_string()).status().await;
            for i in 0..100 {
                if tokio::fs::metadata(format!("/proc/{pid}")).await.is_err() {
                    break;
                }
                if i == 50 {
                    let _ = tokio::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        remove(&self.pid_path(&rec.volume_id)).await?;
        remove(&self.dir.join(format!("{}.log", rec.volume_id))).await
    }

    /// Writes this directory's table: each export's port open to its hosts only (no
    /// table when nothing is exported).
    async fn firewall(&self, records: &[Record]) -> anyhow::Result<()> {
        let script = ruleset(&self.table, records);
        let mut child = tokio::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot run nft (NBD exports are limited to their hosts with nftables)")?;
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(script.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            anyhow::bail!("nft refused the NBD export rules: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }
}

enum Start {
    PortTaken,
    Failed(anyhow::Error),
}

/// QEMU's option syntax doubles a comma inside a value.
fn opt(v: &str) -> String {
    v.replace(',', ",,")
}

fn daemon_args(rec: &Record, address: &str, pid: &Path) -> Vec<String> {
    vec![
        "--blockdev".into(),
        format!("driver=file,node-name=file,filename={}", opt(&rec.file.display().to_string())),
        "--blockdev".into(),
        "driver=qcow2,node-name=disk,file=file".into(),
        "--nbd-server".into(),
        format!("addr.type=inet,addr.host={},addr.port={}", opt(address), rec.port),
        "--export".into(),
        format!("type=nbd,id=export,node-name=disk,name={},writable=on", rec.name),
        "--pidfile".into(),
        pid.display().to_string(),
        "--daemonize".into(),
    ]
}

/// The nftables script that replaces `table` with one accepting each export's port
/// from its hosts' addresses and dropping it from everyone else.
fn ruleset(table: &str, records: &[Record]) -> String {
    let mut s = format!("table inet {table} {{}}\ndelete table inet {table}\n");
    if records.is_empty() {
        return s;
    }
    s += &format!(
        "table inet {table} {{\n  chain input {{\n    type filter hook input priority filter - 10; policy accept;\n"
    );
    for r in records {
        for ip in r.hosts.values() {
            let family = if ip.contains(':') { "ip6" } else { "ip" };
            s += &format!("    tcp dport {} {family} saddr {ip} accept\n", r.port);
        }
        s += &format!("    tcp dport {} drop\n", r.port);
    }
    s += "  }\n}\n";
    s
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

async fn remove(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(port: u16, hosts: &[(&str, &str)]) -> Record {
        Record {
            volume_id: format!("v{port}"),
            file: "/srv/volumes/v,1.qcow2".into(),
            port,
            name: "n1".into(),
            hosts: hosts.iter().map(|(h, ip)| (h.to_string(), ip.to_string())).collect(),
        }
    }

    #[test]
    fn each_port_is_open_to_its_hosts_only() {
        let rules =
            ruleset("t", &[record(10809, &[("a", "10.0.0.5"), ("b", "fd00::7")]), record(10810, &[("c", "10.0.0.6")])]);
        assert_eq!(
            rules,
            "table inet t {}\ndelete table inet t\ntable inet t {\n  chain input {\n    \
             type filter hook input priority filter - 10; policy accept;\n    \
             tcp dport 10809 ip saddr 10.0.0.5 accept\n    tcp dport 10809 ip6 saddr fd00::7 accept\n    \
             tcp dport 10809 drop\n    tcp dport 10810 ip saddr 10.0.0.6 accept\n    tcp dport 10810 drop\n  }\n}\n"
        );
        assert_eq!(ruleset("t", &[]), "table inet t {}\ndelete table inet t\n", "nothing exported: no table");
    }

    #[test]
    fn the_daemon_exports_the_guest_view_of_the_file() {
        let args = daemon_args(&record(10811, &[]), "192.0.2.1", Path::new("/run/x.pid")).join(" ");
        assert!(args.contains("filename=/srv/volumes/v,,1.qcow2"), "commas are doubled: {args}");
        assert!(args.contains("driver=qcow2,node-name=disk,file=file"));
        assert!(args.contains("addr.host=192.0.2.1,addr.port=10811"));
        assert!(args.contains("name=n1,writable=on"));
        assert!(args.ends_with("--daemonize"));
    }

    #[tokio::test]
    async fn a_host_without_an_ip_address_gets_no_export() {
        let dir = std::env::temp_dir().join(format!("stratus-nbd-{}", uuid::Uuid::new_v4()));
        let e = NbdExports::new(&dir, NbdOptions { address: "127.0.0.1".into(), first_port: 10809, ports: 2 }).unwrap();
        let err = e.open("v", Path::new("/nonexistent"), "h", "compute-7.example").await.unwrap_err();
        assert!(err.to_string().contains("set [compute_agent] my_ip"), "{err}");
        assert!(e.records().await.unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
