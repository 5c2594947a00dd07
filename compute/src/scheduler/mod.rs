//! The scheduler: picks hosts for a server from an in-memory view of placement's hosts
//! (refreshed from the database), filtering then weighing. The view may be stale; the
//! claim in the database (`Store::claim`) is what guarantees no host is overcommitted,
//! and a refused claim refreshes that host and moves on to the next candidate.

use crate::store::HostRow;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;
use stratus_common::ids::ProjectId;
use stratus_compute_protocol::HostName;

/// How hosts are ordered after filtering (`[compute] weigher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Weigher {
    /// The emptiest host first (Nova's default): spreads load.
    Spread,
    /// The fullest host that fits first: keeps hosts free.
    Pack,
}

stratus_common::from_str_by_serde!(Weigher);

/// What a server needs from a host.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    pub availability_zone: Option<String>,
    /// Host traits the flavor requires (`trait:X=required`) or forbids (`=forbidden`).
    pub required_traits: Vec<String>,
    pub forbidden_traits: Vec<String>,
    /// Hosts this server must not land on (anti-affinity, failed attempts).
    pub avoid_hosts: Vec<HostName>,
    /// When set, only these hosts (affinity with the group's members).
    pub only_hosts: Option<Vec<HostName>>,
    /// A lease's reservation (the `reservation` scheduler hint): only hosts that
    /// reservation holds, and only for its project. Without one, hosts held by any
    /// reservation are out of the shared pool.
    pub reservation: Option<String>,
    /// The project the server belongs to.
    pub project_id: ProjectId,
    /// The custom resource class the flavor asks for (`resources:CUSTOM_BAREMETAL=1`):
    /// only hosts made of it (bare-metal nodes), and only those without it otherwise.
    pub resource_class: Option<String>,
}

pub struct Scheduler {
    hosts: RwLock<HashMap<HostName, HostRow>>,
    weigher: Weigher,
    /// A host not heard from for this long is down and gets nothing.
    pub down_after: Duration,
}

impl Scheduler {
    pub fn new(weigher: Weigher, down_after: Duration) -> Self {
        Self { hosts: RwLock::new(HashMap::new()), weigher, down_after }
    }

    /// Replaces the view with the database's hosts.
    pub fn load(&self, rows: Vec<HostRow>) {
        *self.hosts.write().unwrap() = rows.into_iter().map(|h| (h.host.clone(), h)).collect();
    }

    pub fn update(&self, row: HostRow) {
        self.hosts.write().unwrap().insert(row.host.clone(), row);
    }

    /// The view's row of one host.
    pub fn host(&self, host: &str) -> Option<HostRow> {
        self.hosts.read().unwrap().get(host).cloned()
    }

    pub fn remove(&self, host: &str) {
        self.hosts.write().unwrap().remove(host);
    }

    pub fn len(&self) -> usize {
        self.hosts.read().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_up(&self, h: &HostRow) -> bool {
        is_recent(&h.last_seen, self.down_after)
    }

    /// Candidate hosts for `req`, best first (at most `limit`).
    pub fn select(&self, req: &Request, limit: usize) -> Vec<HostName> {
        let hosts = self.hosts.read().unwrap();
        // Hosts whose last report is older than this are down (times are RFC 3339 in
        // UTC with a fixed layout, so they compare as text; an unreadable one is down).
        let cutoff = stratus_common::db::time_text(
            chrono::Utc::now() - chrono::Duration::from_std(self.down_after).unwrap_or(chrono::Duration::MAX),
        );
        // Hosts of equal weight come in random order, so concurrent requests do not all
        // race for the same host.
        let salt: u64 = rand::random();
        let mut fit: Vec<((std::cmp::Reverse<i64>, u64), &HostRow)> = hosts
            .values()
            .filter(|h| h.enabled && h.last_seen.as_str() >= cutoff.as_str())
            .filter(|h| h.resource_class == req.resource_class)
            .filter(|h| match &req.reservation {
                // A reservation's slice: the database checks the slice's own room.
                Some(r) if h.has_slice(r, req.project_id.as_str()) => h.fits_with(req.vcpus, req.ram, req.disk),
                _ => h.fits(req.vcpus, req.ram, req.disk),
            })
            .filter(|h| req.availability_zone.as_deref().is_none_or(|az| az == h.availability_zone))
            .filter(|h| req.required_traits.iter().all(|t| h.traits.contains(t)))
            .filter(|h| !req.forbidden_traits.iter().any(|t| h.traits.contains(t)))
            .filter(|h| !req.avoid_hosts.contains(&h.host))
            .filter(|h| req.only_hosts.as_ref().is_none_or(|only| only.contains(&h.host)))
            .filter(|h| match (&req.reservation, &h.reservation) {
                (Some(want), Some(held)) => *want == held.id && req.project_id == held.project_id,
                // A host with a slice for the reservation (`flavor:instance`).
                (Some(want), None) => h.has_slice(want, req.project_id.as_str()),
                // Reserved hosts only take servers of their reservation.
                (None, None) => true,
                _ => false,
            })
            .map(|h| {
                // Free share of RAM and vCPUs, in parts per million of the host.
                let free = |cap: i64, used: i64| if cap > 0 { (cap - used) * 1_000_000 / cap } else { 0 };
                let w = free(h.cap_ram, h.used_ram) + free(h.cap_vcpus, h.used_vcpus);
                ((std::cmp::Reverse(if self.weigher == Weigher::Spread { w } else { -w }), hash(&h.host, salt)), h)
            })
            .collect();
        // Only the best `limit` need ordering.
        if fit.len() > limit && limit > 0 {
            fit.select_nth_unstable_by_key(limit - 1, |(k, _)| *k);
            fit.truncate(limit);
        }
        fit.sort_unstable_by_key(|(k, _)| *k);
        fit.into_iter().take(limit).map(|(_, h)| h.host.clone()).collect()
    }
}

fn hash(s: &str, salt: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    salt.hash(&mut h);
    s.hash(&mut h);
    h.finish()
}

/// Whether an RFC 3339 time is within `age` of now.
pub fn is_recent(t: &str, age: Duration) -> bool {
    match stratus_common::db::parse_time(t) {
        Some(at) => (chrono::Utc::now() - at).to_std().map(|d| d <= age).unwrap_or(true),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_common::db::now_text;

    fn host(name: &str, used_ram: i64, traits: &[&str]) -> HostRow {
        HostRow {
            host: name.into(),
            queue: "q".into(),
            availability_zone: "nova".into(),
            hypervisor_type: "fake".into(),
            driver: "fake".into(),
            vcpus: 8,
            ram_mb: 8192,
            disk_gb: 100,
            cap_vcpus: 128,
            cap_ram: 8192,
            cap_disk: 100,
            used_vcpus: 0,
            used_ram,
            used_disk: 0,
            traits: traits.iter().map(|s| s.to_string()).collect(),
            resource_class: None,
            host_ip: None,
            uptime: None,
            reservation: None,
            slices: Vec::new(),
            slice_free_vcpus: 0,
            slice_free_ram: 0,
            slice_free_disk: 0,
            enabled: true,
            disabled_reason: None,
            last_seen: now_text(),
            created_at: now_text(),
        }
    }

    #[test]
    fn filters_and_weighs() {
        let s = Scheduler::new(Weigher::Spread, Duration::from_secs(60));
        let mut down = host("down", 0, &[]);
        down.last_seen = "2000-01-01T00:00:00.000000Z".into();
        let mut off = host("off", 0, &[]);
        off.enabled = false;
        s.load(vec![host("a", 4096, &[]), host("b", 1024, &["CUSTOM_GPU"]), host("full", 8000, &[]), down, off]);
        let req = Request { vcpus: 1, ram: 512, disk: 1, ..Default::default() };
        assert_eq!(
            s.select(&req, 10),
            vec!["b", "a"],
            "spread: emptiest first; full, down and disabled hosts filtered"
        );
        let gpu = Request { required_traits: vec!["CUSTOM_GPU".into()], ..req.clone() };
        assert_eq!(s.select(&gpu, 10), vec!["b"]);
        let no_gpu = Request { forbidden_traits: vec!["CUSTOM_GPU".into()], ..req.clone() };
        assert_eq!(s.select(&no_gpu, 10), vec!["a"]);
        let anti = Request { avoid_hosts: vec!["b".into()], ..req.clone() };
        assert_eq!(s.select(&anti, 10), vec!["a"]);
        let az = Request { availability_zone: Some("other".into()), ..req.clone() };
        assert!(s.select(&az, 10).is_empty());
        let pack = Scheduler::new(Weigher::Pack, Duration::from_secs(60));
        pack.load(vec![host("a", 4096, &[]), host("b", 1024, &[])]);
        assert_eq!(pack.select(&req, 10), vec!["a", "b"]);
    }

    #[test]
    fn reserved_hosts_only_take_their_reservation() {
        let s = Scheduler::new(Weigher::Spread, Duration::from_secs(60));
        let mut leased = host("leased", 0, &[]);
        leased.reservation = Some(crate::store::HostReservation { id: "ab-12".into(), project_id: "p1".into() });
        s.load(vec![host("free", 0, &[]), leased]);
        let req = Request { vcpus: 1, ram: 1, disk: 1, project_id: "p1".into(), ..Default::default() };
        assert_eq!(s.select(&req, 10), vec!["free"], "held hosts leave the shared pool");
        let mine = Request { reservation: Some("ab-12".into()), ..req.clone() };
        assert_eq!(s.select(&mine, 10), vec!["leased"], "a reservation's servers land only on its hosts");
        let other_project = Request { project_id: "p2".into(), ..mine.clone() };
        assert!(s.select(&other_project, 10).is_empty(), "only the lease's project may use its hosts");
        let unknown = Request { reservation: Some("zz".into()), ..req };
        assert!(s.select(&unknown, 10).is_empty());
    }

    #[test]
    fn slices_keep_their_room_for_their_reservation() {
        let s = Scheduler::new(Weigher::Spread, Duration::from_secs(60));
        // 8192 MB to hand out; a slice holds 6144 of them unused.
        let mut sliced = host("sliced", 1024, &[]);
        sliced.slices = vec![crate::store::HostReservation { id: "fl-1".into(), project_id: "p1".into() }];
        sliced.slice_free_ram = 6144;
        s.load(vec![sliced]);
        let req = Request { vcpus: 1, ram: 2048, disk: 1, project_id: "p2".into(), ..Default::default() };
        assert!(s.select(&req, 10).is_empty(), "what a slice holds is not free to others");
        let small = Request { ram: 1024, ..req.clone() };
        assert_eq!(s.select(&small, 10), vec!["sliced"], "the rest of the host stays in the shared pool");
        let mine = Request { reservation: Some("fl-1".into()), project_id: "p1".into(), ..req.clone() };
        assert_eq!(s.select(&mine, 10), vec!["sliced"], "the reservation's servers go into its slice");
        let stranger = Request { project_id: "p2".into(), ..mine };
        assert!(s.select(&stranger, 10).is_empty(), "only the lease's project uses the slice");
    }

    #[test]
    fn nodes_go_whole_to_flavors_of_their_resource_class() {
        let s = Scheduler::new(Weigher::Spread, Duration::from_secs(60));
        let node = |name: &str, used: i64| HostRow {
            resource_class: Some("CUSTOM_BAREMETAL".into()),
            cap_vcpus: 8,
            used_vcpus: used,
            ..host(name, 0, &[])
        };
        s.load(vec![host("vm-host", 0, &[]), node("free-node", 0), node("taken-node", 1)]);
        let vm = Request { vcpus: 1, ram: 512, disk: 1, ..Default::default() };
        assert_eq!(s.select(&vm, 10), vec!["vm-host"], "a flavor without the class never lands on a node");
        let bm = Request { resource_class: Some("CUSTOM_BAREMETAL".into()), ..vm.clone() };
        assert_eq!(s.select(&bm, 10), vec!["free-node"], "one server per node, whatever is left of it");
        let other = Request { resource_class: Some("CUSTOM_GPU".into()), ..vm };
        assert!(s.select(&other, 10).is_empty());
    }
}
