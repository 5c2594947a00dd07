//! The volume service's tables. Volumes and snapshots keep typed columns (their states
//! are enums read strictly); what a saga tracks lives in `control`, apart from what
//! the API shows. Usage counts quota per project (`volumes`, `gigabytes`, `snapshots`).

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "volume",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE volume_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    is_public BIGINT NOT NULL DEFAULT 1,
    extra_specs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE volume_volumes (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    type_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    bootable BIGINT NOT NULL DEFAULT 0,
    source_volid TEXT,
    snapshot_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    control TEXT NOT NULL DEFAULT '{}',
    deleted BIGINT NOT NULL DEFAULT 0,
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX volume_volumes_listing ON volume_volumes (project_id, deleted, created_at, id);
CREATE TABLE volume_snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    size BIGINT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    deleted BIGINT NOT NULL DEFAULT 0,
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX volume_snapshots_listing ON volume_snapshots (project_id, deleted, created_at, id);
CREATE INDEX volume_snapshots_volume ON volume_snapshots (volume_id, deleted);
CREATE TABLE volume_usage (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
);
CREATE TABLE volume_sagas (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    step BIGINT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    rev BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    entered TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    stuck_at TEXT
);
CREATE INDEX volume_sagas_state ON volume_sagas (state);
CREATE INDEX volume_sagas_subject ON volume_sagas (subject)
"#,
    },
    Migration {
        service: "volume",
        version: 2,
        name: "volumes from images",
        sql: r#"
ALTER TABLE volume_volumes ADD COLUMN image_id TEXT;
ALTER TABLE volume_volumes ADD COLUMN image_meta TEXT NOT NULL DEFAULT '{}'
"#,
    },
    Migration {
        service: "volume",
        version: 3,
        name: "transfers",
        sql: r#"
CREATE TABLE volume_transfers (
    id TEXT PRIMARY KEY,
    volume_id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    salt TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX volume_transfers_project ON volume_transfers (project_id)
"#,
    },
    Migration {
        service: "volume",
        version: 4,
        name: "attachments",
        sql: r#"
ALTER TABLE volume_volumes ADD COLUMN attachments TEXT NOT NULL DEFAULT '[]'
"#,
    },
    Migration {
        service: "volume",
        version: 5,
        name: "private volume types, QoS specs, snapshot progress",
        sql: r#"
CREATE TABLE volume_type_access (
    type_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (type_id, project_id)
);
CREATE TABLE volume_qos_specs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    consumer TEXT NOT NULL,
    specs TEXT NOT NULL,
    created_at TEXT NOT NULL
);
ALTER TABLE volume_types ADD COLUMN qos_specs_id TEXT NOT NULL DEFAULT '';
ALTER TABLE volume_snapshots ADD COLUMN progress TEXT NOT NULL DEFAULT ''
"#,
    },
    Migration {
        service: "volume",
        version: 6,
        name: "per-type quota usage",
        // What volumes and snapshots made before per-type quotas use of their type
        // (`<resource>@<type id>`), so that deleting them gives back what they hold.
        sql: r#"
INSERT INTO volume_usage (project_id, resource, used)
    SELECT project_id, 'volumes@' || type_id, COUNT(*) FROM volume_volumes
    WHERE deleted = 0 AND type_id <> '' GROUP BY project_id, type_id;
INSERT INTO volume_usage (project_id, resource, used)
    SELECT s.project_id, 'snapshots@' || v.type_id, COUNT(*) FROM volume_snapshots s
    JOIN volume_volumes v ON v.id = s.volume_id
    WHERE s.deleted = 0 AND v.type_id <> '' GROUP BY s.project_id, v.type_id;
INSERT INTO volume_usage (project_id, resource, used)
    SELECT project_id, 'gigabytes@' || type_id, SUM(size) FROM (
        SELECT project_id, type_id, size FROM volume_volumes WHERE deleted = 0
        UNION ALL
        SELECT s.project_id, v.type_id, s.size FROM volume_snapshots s JOIN volume_volumes v ON v.id = s.volume_id
        WHERE s.deleted = 0
    ) AS held WHERE type_id <> '' GROUP BY project_id, type_id
"#,
    },
    Migration {
        service: "volume",
        version: 7,
        name: "user messages",
        sql: r#"
CREATE TABLE volume_messages (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_uuid TEXT NOT NULL,
    event_id TEXT NOT NULL,
    message_level TEXT NOT NULL,
    user_message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX volume_messages_project ON volume_messages (project_id)
"#,
    },
    Migration {
        service: "volume",
        version: 8,
        name: "backends disabled by operators",
        sql: r#"
CREATE TABLE volume_backend_states (
    backend TEXT PRIMARY KEY,
    disabled_reason TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"#,
    },
    Migration {
        service: "volume",
        version: 9,
        name: "metering periods (GB-hours)",
        sql: r#"
CREATE TABLE volume_metering (
    id TEXT PRIMARY KEY,
    resource_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    project_id TEXT NOT NULL,
    size BIGINT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX volume_metering_open ON volume_metering (resource_id, ended_at);
CREATE INDEX volume_metering_window ON volume_metering (project_id, started_at);
INSERT INTO volume_metering (id, resource_id, kind, project_id, size, started_at)
    SELECT 'm-' || id, id, 'volume', project_id, size, created_at FROM volume_volumes WHERE deleted = 0;
INSERT INTO volume_metering (id, resource_id, kind, project_id, size, started_at)
    SELECT 'm-' || id, id, 'snapshot', project_id, size, created_at FROM volume_snapshots WHERE deleted = 0
"#,
    },
    Migration {
        service: "volume",
        version: 10,
        name: "backups",
        sql: r#"
CREATE TABLE volume_backups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    volume_id TEXT NOT NULL,
    snapshot_id TEXT,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    container TEXT,
    status TEXT NOT NULL,
    fail_reason TEXT,
    size BIGINT NOT NULL,
    object_count BIGINT NOT NULL,
    is_incremental BIGINT NOT NULL,
    parent_id TEXT,
    data_timestamp TEXT NOT NULL,
    metadata TEXT NOT NULL,
    data_id TEXT NOT NULL,
    volume_meta TEXT NOT NULL,
    deleted BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX volume_backups_project ON volume_backups (project_id, deleted);
CREATE INDEX volume_backups_volume ON volume_backups (volume_id)
"#,
    },
    Migration {
        service: "volume",
        version: 11,
        name: "multiattach volumes",
        sql: r#"
ALTER TABLE volume_volumes ADD COLUMN multiattach BIGINT NOT NULL DEFAULT 0
"#,
    },
    Migration {
        service: "volume",
        version: 12,
        name: "group types",
        sql: r#"
CREATE TABLE volume_group_types (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    is_public BIGINT NOT NULL,
    group_specs TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"#,
    },
    Migration {
        service: "volume",
        version: 13,
        name: "groups and group snapshots",
        sql: r#"
CREATE TABLE volume_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    group_type_id TEXT NOT NULL,
    volume_type_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    group_snapshot_id TEXT,
    source_group_id TEXT,
    pending TEXT NOT NULL,
    deleted BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX volume_groups_project ON volume_groups (project_id, deleted);
CREATE TABLE volume_group_snapshots (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    group_type_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    pending TEXT NOT NULL,
    deleted BIGINT NOT NULL,
    rev BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
ALTER TABLE volume_volumes ADD COLUMN group_id TEXT;
ALTER TABLE volume_snapshots ADD COLUMN group_snapshot_id TEXT
"#,
    },
    Migration {
        service: "volume",
        version: 14,
        name: "transfers that take the volume's snapshots along (3.55)",
        sql: "ALTER TABLE volume_transfers ADD COLUMN no_snapshots BIGINT NOT NULL DEFAULT 0",
    },
];

#[cfg(test)]
mod tests {
    #[test]
    fn shared_tables_have_the_shared_shapes() {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let ours = norm(super::MIGRATIONS[0].sql);
        assert!(ours.contains(&norm(&stratus_common::saga::saga_table_sql("volume_sagas"))));
        assert!(ours.contains(&norm(&stratus_common::db::usage::usage_table_sql("volume_usage"))));
    }
}
