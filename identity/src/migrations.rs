//! Identity's tables. Portable SQL (see `stratus_common::db`): TEXT ids and times,
//! BIGINT integers and flags, JSON as TEXT. Global roles use `domain_id = ''` so that
//! uniqueness works the same on both engines.

use stratus_common::db::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        service: "identity",
        version: 1,
        name: "initial",
        sql: r#"
CREATE TABLE identity_domains (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE TABLE identity_projects (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL REFERENCES identity_domains (id),
    parent_id TEXT,
    description TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1,
    tags TEXT NOT NULL DEFAULT '[]',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE identity_users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL REFERENCES identity_domains (id),
    enabled BIGINT NOT NULL DEFAULT 1,
    password_hash TEXT,
    default_project_id TEXT,
    description TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}',
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until TEXT,
    password_changed_at TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE identity_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL REFERENCES identity_domains (id),
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE identity_group_members (
    group_id TEXT NOT NULL REFERENCES identity_groups (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES identity_users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX identity_group_members_user ON identity_group_members (user_id);
CREATE TABLE identity_roles (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    domain_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE identity_implied_roles (
    prior_role_id TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    implied_role_id TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (prior_role_id, implied_role_id)
);
CREATE TABLE identity_assignments (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    role_id TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    PRIMARY KEY (actor_type, actor_id, target_type, target_id, role_id)
);
CREATE INDEX identity_assignments_target ON identity_assignments (target_type, target_id);
CREATE TABLE identity_app_creds (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES identity_users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    expires_at TEXT,
    unrestricted BIGINT NOT NULL DEFAULT 0,
    roles TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE identity_regions (
    id TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    parent_region_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_services (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_endpoints (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL REFERENCES identity_services (id) ON DELETE CASCADE,
    interface TEXT NOT NULL,
    url TEXT NOT NULL,
    region_id TEXT,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_registered_limits (
    id TEXT PRIMARY KEY,
    service_id TEXT NOT NULL REFERENCES identity_services (id) ON DELETE CASCADE,
    region_id TEXT NOT NULL DEFAULT '',
    resource_name TEXT NOT NULL,
    default_limit BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (service_id, region_id, resource_name)
);
CREATE TABLE identity_limits (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES identity_projects (id) ON DELETE CASCADE,
    service_id TEXT NOT NULL REFERENCES identity_services (id) ON DELETE CASCADE,
    region_id TEXT NOT NULL DEFAULT '',
    resource_name TEXT NOT NULL,
    resource_limit BIGINT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    UNIQUE (project_id, service_id, region_id, resource_name)
);
CREATE TABLE identity_signing_keys (
    kid TEXT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_revocations (
    id TEXT PRIMARY KEY,
    audit_id TEXT,
    user_id TEXT,
    project_id TEXT,
    domain_id TEXT,
    app_cred_id TEXT,
    role_id TEXT,
    issued_before TEXT NOT NULL,
    revoked_at TEXT NOT NULL
);
CREATE INDEX identity_revocations_revoked_at ON identity_revocations (revoked_at);
"#,
    },
    Migration {
        service: "identity",
        version: 2,
        name: "credentials",
        sql: r#"
CREATE TABLE identity_credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES identity_users (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES identity_projects (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    blob TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX identity_credentials_user ON identity_credentials (user_id);
"#,
    },
    Migration {
        service: "identity",
        version: 3,
        name: "inherited assignments",
        // OS-INHERIT: an assignment may be inherited by the projects under its target
        // instead of applying to the target itself; the flag joins the key.
        sql: r#"
CREATE TABLE identity_assignments_next (
    actor_type TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT NOT NULL,
    role_id TEXT NOT NULL REFERENCES identity_roles (id) ON DELETE CASCADE,
    inherited BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (actor_type, actor_id, target_type, target_id, role_id, inherited)
);
INSERT INTO identity_assignments_next (actor_type, actor_id, target_type, target_id, role_id, inherited)
    SELECT actor_type, actor_id, target_type, target_id, role_id, 0 FROM identity_assignments;
DROP TABLE identity_assignments;
ALTER TABLE identity_assignments_next RENAME TO identity_assignments;
CREATE INDEX identity_assignments_target ON identity_assignments (target_type, target_id);
"#,
    },
    Migration {
        service: "identity",
        version: 4,
        name: "policy documents (the deprecated policies API)",
        sql: r#"
CREATE TABLE identity_policies (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    blob TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"#,
    },
    Migration {
        service: "identity",
        version: 5,
        name: "endpoint filters (OS-EP-FILTER)",
        sql: r#"
CREATE TABLE identity_endpoint_groups (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    filters TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_project_endpoints (
    project_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    PRIMARY KEY (project_id, endpoint_id)
);
CREATE TABLE identity_project_endpoint_groups (
    project_id TEXT NOT NULL,
    endpoint_group_id TEXT NOT NULL,
    PRIMARY KEY (project_id, endpoint_group_id)
)
"#,
    },
    Migration {
        service: "identity",
        version: 6,
        name: "OS-OAUTH1 consumers, request and access tokens",
        sql: r#"
CREATE TABLE identity_oauth_consumers (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    description TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_oauth_request_tokens (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    expires_at TEXT,
    authorizing_user_id TEXT,
    roles TEXT NOT NULL,
    verifier TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE identity_oauth_access_tokens (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    authorizing_user_id TEXT NOT NULL,
    roles TEXT NOT NULL,
    expires_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX identity_oauth_access_tokens_user ON identity_oauth_access_tokens (authorizing_user_id);
ALTER TABLE identity_revocations ADD COLUMN consumer_id TEXT;
ALTER TABLE identity_revocations ADD COLUMN access_token_id TEXT
"#,
    },
    Migration {
        service: "identity",
        version: 7,
        name: "OAuth nonces in the database, so that every identity process refuses a replay",
        sql: r#"
CREATE TABLE identity_oauth_nonces (
    consumer_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, nonce)
);
CREATE INDEX identity_oauth_nonces_seen ON identity_oauth_nonces (seen_at)
"#,
    },
];
