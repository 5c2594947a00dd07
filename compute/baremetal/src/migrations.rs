//! The bare-metal service's tables. A node's `conductor` column is Ironic's
//! `reservation`: the conductor working on it holds it, so two never act on one node;
//! `work` is what the conductor owes the node, kept until done so a restart finishes it.

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "baremetal",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE baremetal_nodes (
    id TEXT PRIMARY KEY,
    name TEXT,
    driver TEXT NOT NULL,
    driver_info TEXT NOT NULL DEFAULT '{}',
    properties TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}',
    instance_info TEXT NOT NULL DEFAULT '{}',
    instance_uuid TEXT,
    power_state TEXT,
    target_power_state TEXT,
    provision_state TEXT NOT NULL,
    target_provision_state TEXT,
    provision_updated_at TEXT,
    maintenance BIGINT NOT NULL DEFAULT 0,
    maintenance_reason TEXT,
    last_error TEXT,
    resource_class TEXT,
    deploy_interface TEXT NOT NULL,
    description TEXT,
    owner TEXT,
    lessee TEXT,
    conductor TEXT,
    work TEXT,
    inspection_started_at TEXT,
    inspection_finished_at TEXT,
    revision BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX baremetal_nodes_name ON baremetal_nodes (name);
CREATE UNIQUE INDEX baremetal_nodes_instance ON baremetal_nodes (instance_uuid);
CREATE INDEX baremetal_nodes_work ON baremetal_nodes (work);
CREATE TABLE baremetal_ports (
    id TEXT PRIMARY KEY,
    address TEXT NOT NULL,
    node_id TEXT NOT NULL REFERENCES baremetal_nodes (id),
    extra TEXT NOT NULL DEFAULT '{}',
    pxe_enabled BIGINT NOT NULL DEFAULT 1,
    local_link_connection TEXT NOT NULL DEFAULT '{}',
    physical_network TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
CREATE UNIQUE INDEX baremetal_ports_address ON baremetal_ports (address);
CREATE INDEX baremetal_ports_node ON baremetal_ports (node_id);
"#,
    },
    Migration {
        service: "baremetal",
        version: 2,
        name: "deploy agent",
        // What the conductor keeps about a deploy in progress (Ironic's
        // driver_internal_info): the ramdisk's token, the image it writes, the phase.
        sql: "ALTER TABLE baremetal_nodes ADD COLUMN internal_info TEXT NOT NULL DEFAULT '{}'",
    },
];
