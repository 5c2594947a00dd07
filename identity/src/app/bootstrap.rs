//! First start: the default domain, the `admin` project and user, the default roles
//! (admin implies member implies reader), the region, the catalog entries of the
//! services this deployment runs, and registered default quotas. Idempotent: running it
//! again changes nothing, except the admin password when one is given explicitly.

use super::domains::DEFAULT_DOMAIN_ID;
use super::Identity;
use crate::store::{
    new_id, Actor, Assignment, Domain, Endpoint, Project, Region, RegisteredLimit, Role, Service, Target, User,
};
use stratus_common::db::now_text;

/// A service to list in the catalog: type, name, public URL.
#[derive(Debug, Clone)]
pub struct CatalogService {
    pub service_type: String,
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    pub admin_password: Option<String>,
    pub region: String,
    pub services: Vec<CatalogService>,
}

#[derive(Debug, Clone)]
pub struct BootstrapReport {
    /// Set when the admin user was created or its password set now.
    pub admin_password: Option<String>,
    pub created_admin: bool,
}

/// Default quotas registered at bootstrap: (service type, resource, limit).
pub const DEFAULT_LIMITS: &[(&str, &str, i64)] = &[
    ("compute", "instances", 10),
    ("compute", "cores", 20),
    ("compute", "ram", 51200),
    ("compute", "key_pairs", 100),
    ("compute", "server_groups", 10),
    ("compute", "server_group_members", 10),
    // Nova's other quota keys, shown and settable through os-quota-sets (compute's
    // `quotas::LEGACY`); 2147483647 is unlimited.
    ("compute", "metadata_items", 128),
    ("compute", "injected_files", 5),
    ("compute", "injected_file_content_bytes", 10240),
    ("compute", "injected_file_path_bytes", 255),
    ("compute", "floating_ips", 10),
    ("compute", "fixed_ips", 2147483647),
    ("compute", "security_groups", 10),
    ("compute", "security_group_rules", 20),
    ("network", "network", 100),
    ("network", "subnet", 100),
    ("network", "port", 500),
    ("network", "router", 10),
    ("network", "floatingip", 50),
    ("network", "security_group", 10),
    ("network", "security_group_rule", 100),
    ("volume", "volumes", 10),
    ("volume", "gigabytes", 1000),
    ("volume", "snapshots", 10),
    ("volume", "backups", 10),
    ("volume", "backup_gigabytes", 1000),
    ("volume", "groups", 10),
    // Cinder's other key: the largest single volume (unlimited).
    ("volume", "per_volume_gigabytes", 2147483647),
    ("image", "image_count_total", 100),
    ("image", "image_size_total", 10240),
];

/// Service types quotas are registered for, with the name they get in the catalog.
const QUOTA_SERVICES: &[(&str, &str)] =
    &[("compute", "nova"), ("network", "neutron"), ("volume", "cinderv3"), ("image", "glance")];

impl Identity {
    pub async fn bootstrap(&self, opts: BootstrapOptions) -> anyhow::Result<BootstrapReport> {
        let s = &self.store;
        if s.domain_fetch(DEFAULT_DOMAIN_ID).await?.is_none() {
            s.domain_create(&Domain {
                id: DEFAULT_DOMAIN_ID.into(),
                name: "Default".into(),
                description: "The default domain".into(),
                enabled: true,
                extra: Default::default(),
            })
            .await?;
        }
        let mut role_ids = Vec::new();
        // Keystone's default roles since 2024.1: admin ⊃ manager ⊃ member ⊃ reader.
        for name in ["admin", "manager", "member", "reader", "service"] {
            let role = match s.role_fetch_global_by_name(name).await? {
                Some(r) => r,
                None => {
                    let r = Role { id: new_id(), name: name.into(), domain_id: None, description: String::new() };
                    s.role_create(&r).await?;
                    r
                }
            };
            role_ids.push(role.id);
        }
        s.implied_role_add(&role_ids[0], &role_ids[1]).await?;
        s.implied_role_add(&role_ids[1], &role_ids[2]).await?;
        s.implied_role_add(&role_ids[2], &role_ids[3]).await?;

        let project = match s.project_fetch_by_name(DEFAULT_DOMAIN_ID, "admin").await? {
            Some(p) => p,
            None => {
                let p = Project {
                    id: new_id(),
                    name: "admin".into(),
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                    parent_id: None,
                    description: "Bootstrap project for initializing the cloud.".into(),
                    enabled: true,
                    tags: vec![],
                    extra: Default::default(),
                    is_domain: false,
                };
                s.project_create(&p).await?;
                p
            }
        };

        let mut report = BootstrapReport { admin_password: None, created_admin: false };
        let admin = match s.user_fetch_by_name(DEFAULT_DOMAIN_ID, "admin").await? {
            Some(mut u) => {
                if let Some(pw) = &opts.admin_password {
                    u.password_hash = Some(self.passwords.hash(pw).await?);
                    u.password_changed_at = Some(now_text());
                    u.enabled = true;
                    s.user_update(&u).await?;
                    report.admin_password = Some(pw.clone());
                }
                u
            }
            None => {
                let pw = opts.admin_password.clone().unwrap_or_else(generate_password);
                let u = User {
                    id: new_id(),
                    name: "admin".into(),
                    domain_id: DEFAULT_DOMAIN_ID.into(),
                    enabled: true,
                    password_hash: Some(self.passwords.hash(&pw).await?),
                    default_project_id: Some(project.id.clone()),
                    description: String::new(),
                    extra: Default::default(),
                    failed_attempts: 0,
                    locked_until: None,
                    password_changed_at: Some(now_text()),
                };
                s.user_create(&u).await?;
                report.admin_password = Some(pw);
                report.created_admin = true;
                u
            }
        };
        for target in [Target::Project(project.id.clone()), Target::System] {
            s.assignment_grant(&Assignment {
                actor: Actor::User(admin.id.clone()),
                target,
                role_id: role_ids[0].clone(),
                inherited: false,
            })
            .await?;
        }

        if s.region_fetch(&opts.region).await?.is_none() {
            s.region_create(&Region { id: opts.region.clone(), description: String::new(), parent_region_id: None })
                .await?;
        }
        let mut services = s.service_list().await?;
        for cs in &opts.services {
            let service = match services.iter().find(|x| x.service_type == cs.service_type) {
                Some(x) => x.clone(),
                None => {
                    let x = Service {
                        id: new_id(),
                        service_type: cs.service_type.clone(),
                        name: cs.name.clone(),
                        description: String::new(),
                        enabled: true,
                    };
                    s.service_create(&x).await?;
                    services.push(x.clone());
                    x
                }
            };
            let endpoints = s.endpoint_list().await?;
            for interface in ["public", "internal", "admin"] {
                let existing = endpoints.iter().find(|e| e.service_id == service.id && e.interface == interface);
                match existing {
                    Some(e) if e.url == cs.url => {}
                    Some(e) => {
                        // The deployment moved: follow its configuration.
                        let mut e = e.clone();
                        e.url = cs.url.clone();
                        s.endpoint_update(&e).await?;
                    }
                    None => {
                        s.endpoint_create(&Endpoint {
                            id: new_id(),
                            service_id: service.id.clone(),
                            interface: interface.into(),
                            url: cs.url.clone(),
                            region_id: Some(opts.region.clone()),
                            enabled: true,
                        })
                        .await?;
                    }
                }
            }
        }
        // Quotas need their services registered, even before those services run.
        for (stype, sname) in QUOTA_SERVICES {
            if !services.iter().any(|x| x.service_type == *stype) {
                let x = Service {
                    id: new_id(),
                    service_type: stype.to_string(),
                    name: sname.to_string(),
                    description: String::new(),
                    enabled: true,
                };
                s.service_create(&x).await?;
                services.push(x);
            }
        }
        let registered = s.registered_limit_list().await?;
        let mut missing = Vec::new();
        for (stype, resource, limit) in DEFAULT_LIMITS {
            let service = services.iter().find(|x| x.service_type == *stype).expect("registered above");
            if !registered.iter().any(|r| r.service_id == service.id && r.resource_name == *resource) {
                missing.push(RegisteredLimit {
                    id: new_id(),
                    service_id: service.id.clone(),
                    region_id: None,
                    resource_name: resource.to_string(),
                    default_limit: *limit,
                    description: String::new(),
                });
            }
        }
        if !missing.is_empty() {
            s.registered_limit_create_all(&missing).await?;
        }
        self.invalidate_catalog();
        Ok(report)
    }
}

/// 24 random characters from an alphabet without look-alikes.
fn generate_password() -> String {
    random_text(24)
}

/// `len` random characters from an alphabet without look-alikes, for secrets a person
/// may have to read or type.
pub(crate) fn random_text(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..len).map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char).collect()
}
