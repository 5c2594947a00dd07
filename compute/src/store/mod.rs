//! The compute datastore: flavors, keypairs, servers, hosts and their allocations,
//! quota usage, instance actions and server groups. SQL is portable between SQLite and
//! PostgreSQL (see `stratus_common::db`).

mod aggregates;
mod hosts;
mod migrations;
mod servers;

pub use aggregates::{Aggregate, AggregateChange};
pub use hosts::{Allocation, HostClaim, HostReservation, HostRow, Ratios};
pub use migrations::{MigrationRecord, OPEN as OPEN_MIGRATIONS};
pub use servers::{
    strings, AttachedVolume, Backup, Charged, CommandAnswer, Control, PendingCommand, Server, ServerFilter, TaskState,
    VmState,
};

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, Db, RowExt};

pub type StoreResult<T> = Result<T, sqlx::Error>;

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

#[derive(Debug, Clone)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    pub ephemeral: i64,
    pub swap: i64,
    pub is_public: bool,
    pub disabled: bool,
    pub description: Option<String>,
    pub extra_specs: Map<String, Value>,
}

impl Flavor {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            vcpus: r.int("vcpus"),
            ram: r.int("ram"),
            disk: r.int("disk"),
            ephemeral: r.int("ephemeral"),
            swap: r.int("swap"),
            is_public: r.int("is_public") != 0,
            disabled: r.int("disabled") != 0,
            description: r.opt_text("description"),
            extra_specs: json_map(&r.text("extra_specs")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Keypair {
    pub user_id: String,
    pub name: String,
    pub kind: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: String,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub id: String,
    pub server_id: String,
    pub action: String,
    pub request_id: String,
    pub project_id: String,
    pub user_id: String,
    pub start_time: String,
    pub finish_time: Option<String>,
    pub result: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ServerGroup {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub policy: String,
    pub members: Vec<String>,
    pub created_at: String,
}

impl ServerGroup {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            project_id: r.text("project_id"),
            user_id: r.text("user_id"),
            name: r.text("name"),
            policy: r.text("policy"),
            members: serde_json::from_str(&r.text("members")).unwrap_or_default(),
            created_at: r.text("created_at"),
        }
    }
}

pub(crate) fn json_map(s: &str) -> Map<String, Value> {
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// One resource of a quota claim: (resource, amount, limit or -1).
pub use stratus_common::db::usage::Claim;

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    // ---- flavors ----

    pub async fn flavor_insert(&self, f: &Flavor) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO compute_flavors (id, name, vcpus, ram, disk, ephemeral, swap, is_public, disabled, description, extra_specs, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&f.id)
        .bind(&f.name)
        .bind(f.vcpus)
        .bind(f.ram)
        .bind(f.disk)
        .bind(f.ephemeral)
        .bind(f.swap)
        .bind(f.is_public as i64)
        .bind(f.disabled as i64)
        .bind(f.description.clone())
        .bind(Value::Object(f.extra_specs.clone()).to_string())
        .bind(now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn flavor_get(&self, id: &str) -> StoreResult<Option<Flavor>> {
        let r =
            sqlx::query("SELECT * FROM compute_flavors WHERE id = $1").bind(id).fetch_optional(&self.db.reads).await?;
        Ok(r.as_ref().map(Flavor::from_row))
    }

    pub async fn flavor_list(&self) -> StoreResult<Vec<Flavor>> {
        let rows = sqlx::query("SELECT * FROM compute_flavors").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(Flavor::from_row).collect())
    }

    pub async fn flavor_update(&self, f: &Flavor) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE compute_flavors SET description = $1, extra_specs = $2 WHERE id = $3")
            .bind(f.description.clone())
            .bind(Value::Object(f.extra_specs.clone()).to_string())
            .bind(&f.id)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn flavor_delete(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM compute_flavors WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn flavor_access(&self, id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT project_id FROM compute_flavor_access WHERE flavor_id = $1 ORDER BY project_id")
            .bind(id)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| r.text("project_id")).collect())
    }

    /// Private flavors a project was given.
    pub async fn flavors_shared_with(&self, project: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT flavor_id FROM compute_flavor_access WHERE project_id = $1")
            .bind(project)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| r.text("flavor_id")).collect())
    }

    /// Adds (true) or removes access; false when it was already so.
    pub async fn flavor_access_set(&self, id: &str, project: &str, grant: bool) -> StoreResult<bool> {
        let q = if grant {
            "INSERT INTO compute_flavor_access (flavor_id, project_id) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM compute_flavor_access WHERE flavor_id = $1 AND project_id = $2"
        };
        let r = sqlx::query(q).bind(id).bind(project).execute(&self.db.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- keypairs ----

    /// Inserts a keypair and counts it against the user's `key_pairs` quota in one
    /// transaction; `Ok(false)` when over quota.
    pub async fn keypair_insert(&self, k: &Keypair, limit: i64) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        if !usage_claim(&mut tx, &k.user_id, &[("key_pairs", 1, limit)]).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO compute_keypairs (user_id, name, type, public_key, fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&k.user_id)
        .bind(&k.name)
        .bind(&k.kind)
        .bind(&k.public_key)
        .bind(&k.fingerprint)
        .bind(&k.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    fn keypair_row(r: &AnyRow) -> Keypair {
        Keypair {
            user_id: r.text("user_id"),
            name: r.text("name"),
            kind: r.text("type"),
            public_key: r.text("public_key"),
            fingerprint: r.text("fingerprint"),
            created_at: r.text("created_at"),
        }
    }

    pub async fn keypair_get(&self, user: &str, name: &str) -> StoreResult<Option<Keypair>> {
        let r = sqlx::query("SELECT * FROM compute_keypairs WHERE user_id = $1 AND name = $2")
            .bind(user)
            .bind(name)
            .fetch_optional(&self.db.reads)
            .await?;
        Ok(r.as_ref().map(Self::keypair_row))
    }

    pub async fn keypair_list(&self, user: &str) -> StoreResult<Vec<Keypair>> {
        let rows = sqlx::query("SELECT * FROM compute_keypairs WHERE user_id = $1 ORDER BY name")
            .bind(user)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(Self::keypair_row).collect())
    }

    pub async fn keypair_delete(&self, user: &str, name: &str) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let r = sqlx::query("DELETE FROM compute_keypairs WHERE user_id = $1 AND name = $2")
            .bind(user)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        usage_release(&mut tx, user, &[("key_pairs", 1)]).await?;
        tx.commit().await?;
        Ok(true)
    }

    // ---- usage ----

    pub async fn usage(&self, project: &str) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT resource, used FROM compute_usage WHERE project_id = $1")
            .bind(project)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| (r.text("resource"), r.int("used"))).collect())
    }

    // ---- instance actions ----

    pub async fn action_start(&self, a: &Action) -> StoreResult<()> {
        let mut conn = self.db.pool.acquire().await?;
        Self::action_start_in(&mut conn, a).await?;
        conn.release();
        Ok(())
    }

    /// [`Self::action_start`] inside the caller's transaction.
    pub async fn action_start_in(conn: &mut sqlx::AnyConnection, a: &Action) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO compute_actions (id, server_id, action, request_id, project_id, user_id, start_time) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.server_id)
        .bind(&a.action)
        .bind(&a.request_id)
        .bind(&a.project_id)
        .bind(&a.user_id)
        .bind(&a.start_time)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Marks the server's latest unfinished `action` finished (one statement).
    pub async fn action_finish(
        &self,
        server_id: &str,
        action: &str,
        result: &str,
        message: Option<&str>,
    ) -> StoreResult<()> {
        let mut conn = self.db.pool.acquire().await?;
        Self::action_finish_in(&mut conn, server_id, action, result, message).await?;
        conn.release();
        Ok(())
    }

    /// [`Self::action_finish`] inside the caller's transaction.
    pub(crate) async fn action_finish_in(
        conn: &mut sqlx::AnyConnection,
        server_id: &str,
        action: &str,
        result: &str,
        message: Option<&str>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE compute_actions SET finish_time = $1, result = $2, message = $3 WHERE id =
             (SELECT id FROM compute_actions WHERE server_id = $4 AND action = $5 AND finish_time IS NULL ORDER BY start_time DESC LIMIT 1)",
        )
        .bind(now_text())
        .bind(result)
        .bind(message)
        .bind(server_id)
        .bind(action)
        .execute(conn)
        .await?;
        Ok(())
    }

    fn action_row(r: &AnyRow) -> Action {
        Action {
            id: r.text("id"),
            server_id: r.text("server_id"),
            action: r.text("action"),
            request_id: r.text("request_id"),
            project_id: r.text("project_id"),
            user_id: r.text("user_id"),
            start_time: r.text("start_time"),
            finish_time: r.opt_text("finish_time"),
            result: r.opt_text("result"),
            message: r.opt_text("message"),
        }
    }

    pub async fn actions(&self, server_id: &str) -> StoreResult<Vec<Action>> {
        let rows = sqlx::query("SELECT * FROM compute_actions WHERE server_id = $1 ORDER BY start_time DESC")
            .bind(server_id)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(Self::action_row).collect())
    }

    // ---- server groups ----

    /// Inserts a group counted against `server_groups` in one transaction.
    pub async fn group_insert(&self, g: &ServerGroup, limit: i64) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        if !usage_claim(&mut tx, &g.project_id, &[("server_groups", 1, limit)]).await? {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO compute_server_groups (id, project_id, user_id, name, policy, members, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&g.id)
        .bind(&g.project_id)
        .bind(&g.user_id)
        .bind(&g.name)
        .bind(&g.policy)
        .bind(serde_json::to_string(&g.members).unwrap_or_default())
        .bind(&g.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn group_get(&self, id: &str) -> StoreResult<Option<ServerGroup>> {
        let r = sqlx::query("SELECT * FROM compute_server_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?;
        Ok(r.as_ref().map(ServerGroup::from_row))
    }

    pub async fn group_list(&self) -> StoreResult<Vec<ServerGroup>> {
        let rows =
            sqlx::query("SELECT * FROM compute_server_groups ORDER BY created_at").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(ServerGroup::from_row).collect())
    }

    pub async fn group_delete(&self, g: &ServerGroup) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let r = sqlx::query("DELETE FROM compute_server_groups WHERE id = $1").bind(&g.id).execute(&mut *tx).await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        usage_release(&mut tx, &g.project_id, &[("server_groups", 1)]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds or removes a member (in one statement per change, retried on a race).
    /// Adds servers to a group inside the caller's transaction if the group then has at
    /// most `limit` members (-1: unlimited); false (nothing written) otherwise.
    pub async fn group_join_in(
        conn: &mut sqlx::AnyConnection,
        id: &str,
        servers: &[String],
        limit: i64,
    ) -> StoreResult<bool> {
        // A write first, so concurrent joins of one group queue up on its row.
        sqlx::query("UPDATE compute_server_groups SET members = members WHERE id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let Some(row) = sqlx::query("SELECT members FROM compute_server_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(true);
        };
        let mut members: Vec<String> = serde_json::from_str(&row.text("members")).unwrap_or_default();
        members.extend(servers.iter().filter(|s| !members.contains(s)).cloned().collect::<Vec<_>>());
        if limit >= 0 && members.len() as i64 > limit {
            return Ok(false);
        }
        sqlx::query("UPDATE compute_server_groups SET members = $1 WHERE id = $2")
            .bind(serde_json::to_string(&members).unwrap_or_default())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(true)
    }

    pub async fn group_member(&self, id: &str, server: &str, add: bool) -> StoreResult<()> {
        for _ in 0..10 {
            let Some(g) = self.group_get(id).await? else { return Ok(()) };
            let mut members = g.members.clone();
            members.retain(|m| m != server);
            if add {
                members.push(server.to_string());
            }
            if members == g.members {
                return Ok(());
            }
            let r = sqlx::query("UPDATE compute_server_groups SET members = $1 WHERE id = $2 AND members = $3")
                .bind(serde_json::to_string(&members).unwrap_or_default())
                .bind(id)
                .bind(serde_json::to_string(&g.members).unwrap_or_default())
                .execute(&self.db.pool)
                .await?;
            if r.rows_affected() > 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// [`stratus_common::db::usage::claim`] on compute's usage table.
pub async fn usage_claim(conn: &mut sqlx::AnyConnection, owner: &str, claims: &[Claim<'_>]) -> StoreResult<bool> {
    stratus_common::db::usage::claim(conn, "compute_usage", owner, claims).await
}

/// [`stratus_common::db::usage::release`] on compute's usage table.
pub async fn usage_release(conn: &mut sqlx::AnyConnection, owner: &str, amounts: &[(&str, i64)]) -> StoreResult<()> {
    stratus_common::db::usage::release(conn, "compute_usage", owner, amounts).await
}
