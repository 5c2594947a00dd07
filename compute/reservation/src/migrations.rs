//! The reservation service's tables. Times are stored as RFC 3339 text in UTC with a
//! fixed layout, so they compare as text. `reservation_locks` holds the row every
//! allocation locks first, which serialises allocations on both engines.

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "reservation",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE reservation_hosts (
    id BIGINT PRIMARY KEY,
    hypervisor_hostname TEXT NOT NULL,
    hypervisor_type TEXT NOT NULL DEFAULT '',
    hypervisor_version BIGINT NOT NULL DEFAULT 0,
    vcpus BIGINT NOT NULL DEFAULT 0,
    memory_mb BIGINT NOT NULL DEFAULT 0,
    local_gb BIGINT NOT NULL DEFAULT 0,
    cpu_info TEXT NOT NULL DEFAULT '',
    service_name TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    reservable BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX reservation_hosts_name ON reservation_hosts (hypervisor_hostname);
CREATE TABLE reservation_leases (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    before_end_date TEXT,
    status TEXT NOT NULL,
    degraded BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX reservation_leases_name ON reservation_leases (project_id, name);
CREATE TABLE reservation_reservations (
    id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    status TEXT NOT NULL,
    min_count BIGINT NOT NULL,
    max_count BIGINT NOT NULL,
    hypervisor_properties TEXT NOT NULL DEFAULT '',
    resource_properties TEXT NOT NULL DEFAULT '',
    before_end TEXT NOT NULL DEFAULT 'default',
    on_start TEXT NOT NULL DEFAULT 'default',
    missing_resources BIGINT NOT NULL DEFAULT 0,
    resources_changed BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX reservation_reservations_lease ON reservation_reservations (lease_id);
CREATE TABLE reservation_allocations (
    id TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    host_id BIGINT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX reservation_allocations_host ON reservation_allocations (host_id, start_date, end_date);
CREATE INDEX reservation_allocations_lease ON reservation_allocations (lease_id);
CREATE TABLE reservation_events (
    id TEXT PRIMARY KEY,
    lease_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    time TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX reservation_events_due ON reservation_events (status, next_try);
CREATE INDEX reservation_events_lease ON reservation_events (lease_id);
CREATE TABLE reservation_locks (
    name TEXT PRIMARY KEY,
    n BIGINT NOT NULL DEFAULT 0
);
INSERT INTO reservation_locks (name, n) VALUES ('allocation', 0)
"#,
    },
    Migration {
        service: "reservation",
        version: 2,
        name: "reservable floating IPs",
        sql: r#"
CREATE TABLE reservation_floatingips (
    id TEXT PRIMARY KEY,
    floating_network_id TEXT NOT NULL,
    floating_ip_address TEXT NOT NULL,
    subnet_id TEXT NOT NULL DEFAULT '',
    reservable BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX reservation_floatingips_address ON reservation_floatingips (floating_network_id, floating_ip_address);
ALTER TABLE reservation_allocations ADD COLUMN floatingip_id TEXT NOT NULL DEFAULT '';
ALTER TABLE reservation_reservations ADD COLUMN network_id TEXT NOT NULL DEFAULT '';
ALTER TABLE reservation_reservations ADD COLUMN required_floatingips TEXT NOT NULL DEFAULT '[]'
"#,
    },
    Migration {
        service: "reservation",
        version: 3,
        name: "flavor:instance reservations: instances of a flavor, as slices of hosts",
        sql: r#"
ALTER TABLE reservation_reservations ADD COLUMN vcpus BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservation_reservations ADD COLUMN memory_mb BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservation_reservations ADD COLUMN disk_gb BIGINT NOT NULL DEFAULT 0;
ALTER TABLE reservation_reservations ADD COLUMN affinity TEXT NOT NULL DEFAULT '';
ALTER TABLE reservation_allocations ADD COLUMN slots BIGINT NOT NULL DEFAULT 0
"#,
    },
];
