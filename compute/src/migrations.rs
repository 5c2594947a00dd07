//! The compute service's tables.
//!
//! Servers keep the columns that queries, state and claims need; everything else a
//! server shows lives in its JSON document. Hosts are placement's resource providers:
//! capacity after allocation ratios and reserved amounts (`cap_*`) and what is claimed
//! (`used_*`), so a claim is one conditional UPDATE. Usage counts quota per project.

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "compute",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE compute_flavors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    vcpus BIGINT NOT NULL,
    ram BIGINT NOT NULL,
    disk BIGINT NOT NULL,
    ephemeral BIGINT NOT NULL DEFAULT 0,
    swap BIGINT NOT NULL DEFAULT 0,
    is_public BIGINT NOT NULL DEFAULT 1,
    disabled BIGINT NOT NULL DEFAULT 0,
    description TEXT,
    extra_specs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE compute_flavor_access (
    flavor_id TEXT NOT NULL REFERENCES compute_flavors (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);
CREATE TABLE compute_keypairs (
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE TABLE compute_servers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    vm_state TEXT NOT NULL,
    task_state TEXT,
    power_state BIGINT NOT NULL DEFAULT 0,
    host TEXT,
    vcpus BIGINT NOT NULL,
    ram BIGINT NOT NULL,
    disk BIGINT NOT NULL,
    charged BIGINT NOT NULL DEFAULT 0,
    locked BIGINT NOT NULL DEFAULT 0,
    deleted BIGINT NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    launched_at TEXT,
    terminated_at TEXT
);
CREATE INDEX compute_servers_project ON compute_servers (project_id, deleted);
CREATE INDEX compute_servers_host ON compute_servers (host);
CREATE TABLE compute_hosts (
    host TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    hypervisor_type TEXT NOT NULL,
    driver TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    ram_mb BIGINT NOT NULL,
    disk_gb BIGINT NOT NULL,
    cap_vcpus BIGINT NOT NULL,
    cap_ram BIGINT NOT NULL,
    cap_disk BIGINT NOT NULL,
    used_vcpus BIGINT NOT NULL DEFAULT 0,
    used_ram BIGINT NOT NULL DEFAULT 0,
    used_disk BIGINT NOT NULL DEFAULT 0,
    traits TEXT NOT NULL DEFAULT '[]',
    enabled BIGINT NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    last_seen TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE compute_allocations (
    consumer_id TEXT NOT NULL,
    host TEXT NOT NULL REFERENCES compute_hosts (host),
    vcpus BIGINT NOT NULL,
    ram BIGINT NOT NULL,
    disk BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (consumer_id, host)
);
CREATE INDEX compute_allocations_host ON compute_allocations (host);
CREATE TABLE compute_usage (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
);
CREATE TABLE compute_actions (
    id TEXT PRIMARY KEY,
    server_id TEXT NOT NULL,
    action TEXT NOT NULL,
    request_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    start_time TEXT NOT NULL,
    finish_time TEXT,
    result TEXT,
    message TEXT
);
CREATE INDEX compute_actions_server ON compute_actions (server_id);
CREATE TABLE compute_server_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    members TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL
);
CREATE TABLE compute_sagas (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    step BIGINT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX compute_sagas_state ON compute_sagas (state);
CREATE INDEX compute_sagas_subject ON compute_sagas (subject)
"#,
    },
    Migration {
        service: "compute",
        version: 2,
        name: "server listing order",
        sql: r#"
CREATE INDEX compute_servers_listing ON compute_servers (project_id, deleted, created_at, id);
CREATE INDEX compute_servers_order ON compute_servers (created_at, id)
"#,
    },
    Migration {
        service: "compute",
        version: 3,
        name: "sagas as step tables",
        sql: r#"
ALTER TABLE compute_sagas ADD COLUMN entered TEXT;
ALTER TABLE compute_sagas ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE compute_sagas ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE compute_sagas ADD COLUMN stuck_at TEXT
"#,
    },
    Migration {
        service: "compute",
        version: 4,
        name: "server control apart from the document",
        sql: r#"
ALTER TABLE compute_servers ADD COLUMN control TEXT NOT NULL DEFAULT '{}'
"#,
    },
    Migration {
        service: "compute",
        version: 5,
        name: "hosts held by a lease's reservation",
        sql: r#"
ALTER TABLE compute_hosts ADD COLUMN reservation TEXT NOT NULL DEFAULT '';
ALTER TABLE compute_hosts ADD COLUMN reservation_project TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "compute",
        version: 6,
        name: "hosts a server takes whole (bare-metal nodes)",
        sql: r#"
ALTER TABLE compute_hosts ADD COLUMN resource_class TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "compute",
        version: 7,
        name: "the address a host is reached at (volume exports are limited to it)",
        sql: r#"
ALTER TABLE compute_hosts ADD COLUMN host_ip TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "compute",
        version: 8,
        name: "host aggregates, whose availability zone their hosts take",
        sql: r#"
CREATE TABLE compute_aggregates (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    availability_zone TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE TABLE compute_aggregate_hosts (
    aggregate_id BIGINT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, host)
);
ALTER TABLE compute_hosts ADD COLUMN aggregate_zone TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "compute",
        version: 9,
        name: "migration records (os-migrations): every resize, with its status",
        sql: r#"
CREATE TABLE compute_migrations (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    instance_uuid TEXT NOT NULL,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    source_compute TEXT NOT NULL,
    dest_compute TEXT NOT NULL,
    status TEXT NOT NULL,
    migration_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE INDEX compute_migrations_instance ON compute_migrations (instance_uuid)
"#,
    },
    Migration {
        service: "compute",
        version: 10,
        name: "the uptime and load a host's agent reports",
        sql: "ALTER TABLE compute_hosts ADD COLUMN uptime TEXT NOT NULL DEFAULT ''",
    },
    Migration {
        service: "compute",
        version: 11,
        name: "slices of a host's capacity held for a lease's flavor:instance reservation",
        sql: r#"
CREATE TABLE compute_host_slices (
    host TEXT NOT NULL,
    reservation TEXT NOT NULL,
    project TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    ram BIGINT NOT NULL,
    disk BIGINT NOT NULL,
    used_vcpus BIGINT NOT NULL DEFAULT 0,
    used_ram BIGINT NOT NULL DEFAULT 0,
    used_disk BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (host, reservation)
);
ALTER TABLE compute_hosts ADD COLUMN slice_free_vcpus BIGINT NOT NULL DEFAULT 0;
ALTER TABLE compute_hosts ADD COLUMN slice_free_ram BIGINT NOT NULL DEFAULT 0;
ALTER TABLE compute_hosts ADD COLUMN slice_free_disk BIGINT NOT NULL DEFAULT 0;
ALTER TABLE compute_hosts ADD COLUMN slices TEXT NOT NULL DEFAULT '[]';
ALTER TABLE compute_allocations ADD COLUMN slice TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "compute",
        version: 12,
        name: "a counter for migration record ids, so that concurrent resizes never pick the same one",
        sql: r#"
CREATE TABLE compute_counters (
    name TEXT PRIMARY KEY,
    n BIGINT NOT NULL
);
INSERT INTO compute_counters (name, n) SELECT 'migrations', COALESCE(MAX(id), 0) FROM compute_migrations
"#,
    },
];

#[cfg(test)]
mod tests {
    #[test]
    fn saga_table_matches_the_shared_shape() {
        // Made as the shared shape was first, then upgraded as the shared upgrade says.
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let first = stratus_common::saga::saga_table_sql("compute_sagas");
        let first = first.replace(
            ",\n    entered TEXT,\n    attempts BIGINT NOT NULL DEFAULT 0,\n    last_error TEXT NOT NULL DEFAULT '',\n    stuck_at TEXT",
            "",
        );
        assert!(
            norm(super::MIGRATIONS[0].sql).contains(&norm(&first)),
            "compute_sagas must be created as saga_table_sql made it"
        );
        let upgrade = stratus_common::saga::saga_table_upgrade_sql("compute_sagas");
        assert_eq!(
            norm(super::MIGRATIONS[2].sql),
            norm(&upgrade),
            "compute_sagas must be upgraded as saga_table_upgrade_sql says"
        );
    }
}
