//! The network service's tables. Each resource is a row with the columns that queries
//! and constraints need (owner, uniqueness, parent) and a JSON document with the rest of
//! its attributes, rendered as Neutron shows them.

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "network",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE network_networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_type TEXT NOT NULL,
    segmentation_id BIGINT,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (network_type, segmentation_id)
);
CREATE TABLE network_subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES network_networks (id),
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX network_subnets_network ON network_subnets (network_id);
CREATE TABLE network_ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES network_networks (id),
    mac_address TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL DEFAULT '',
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX network_ports_network ON network_ports (network_id);
CREATE INDEX network_ports_device ON network_ports (device_id);
CREATE TABLE network_ip_allocations (
    subnet_id TEXT NOT NULL REFERENCES network_subnets (id),
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL REFERENCES network_ports (id) ON DELETE CASCADE,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX network_ip_allocations_port ON network_ip_allocations (port_id);
CREATE TABLE network_security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    is_default BIGINT NOT NULL DEFAULT 0,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX network_security_groups_default ON network_security_groups (project_id) WHERE is_default = 1;
CREATE TABLE network_security_group_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES network_security_groups (id) ON DELETE CASCADE,
    signature TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX network_sg_rules_group ON network_security_group_rules (security_group_id);
CREATE TABLE network_usage (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
);
"#,
    },
    Migration {
        service: "network",
        version: 2,
        name: "routers and floating IPs",
        sql: r#"
CREATE TABLE network_routers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE network_floatingips (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    floating_network_id TEXT NOT NULL REFERENCES network_networks (id),
    port_id TEXT,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX network_floatingips_port ON network_floatingips (port_id);
"#,
    },
    Migration {
        service: "network",
        version: 3,
        name: "network agents",
        sql: r#"
CREATE TABLE network_agents (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    host TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    },
    Migration {
        service: "network",
        version: 4,
        name: "router ports",
        // Which ports a router attached itself (interfaces and its gateway): a port's
        // device_owner and device_id are attributes any port owner may write, so they
        // never decide what a router is connected to. Existing interfaces move over when
        // they belong to their router's project (the only ones the API ever made).
        sql: r#"
CREATE TABLE network_router_ports (
    port_id TEXT PRIMARY KEY REFERENCES network_ports (id) ON DELETE CASCADE,
    router_id TEXT NOT NULL REFERENCES network_routers (id) ON DELETE CASCADE,
    port_type TEXT NOT NULL
);
CREATE INDEX network_router_ports_router ON network_router_ports (router_id);
INSERT INTO network_router_ports (port_id, router_id, port_type)
SELECT p.id, r.id, 'network:router_interface' FROM network_ports p JOIN network_routers r ON r.id = p.device_id
WHERE p.project_id = r.project_id AND p.doc LIKE '%"device_owner":"network:router_interface"%';
INSERT INTO network_router_ports (port_id, router_id, port_type)
SELECT p.id, r.id, 'network:router_gateway' FROM network_ports p JOIN network_routers r ON r.id = p.device_id
WHERE p.project_id = '' AND p.doc LIKE '%"device_owner":"network:router_gateway"%';
"#,
    },
    Migration {
        service: "network",
        version: 5,
        name: "control columns",
        // What the service keeps about a resource and never shows (quota counting, the
        // default group, a router's gateway port, a floating IP's port) leaves the
        // document for a typed column; a row that still has `{}` there is read the
        // old way, from its document's `_`-prefixed keys.
        sql: r#"
ALTER TABLE network_networks ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_subnets ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_ports ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_security_groups ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_security_group_rules ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_routers ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_floatingips ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
ALTER TABLE network_agents ADD COLUMN control TEXT NOT NULL DEFAULT '{}';
"#,
    },
    Migration {
        service: "network",
        version: 6,
        name: "subnet pools",
        sql: r#"
CREATE TABLE network_subnetpools (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    revision_number BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    control TEXT NOT NULL DEFAULT '{}'
);
"#,
    },
];
