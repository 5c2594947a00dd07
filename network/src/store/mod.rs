//! The network datastore. Every resource table has the same shape (see migrations), so
//! one set of document functions serves them all; resource-specific columns are passed
//! where a constraint or a query needs them. Plus IP allocations and quota usage.

use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::HashMap;
use stratus_common::db::{now_text, placeholders, Db, RowExt};
use stratus_common::ids::ProjectId;

pub type StoreResult<T> = Result<T, sqlx::Error>;

/// The resource tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Networks,
    Subnets,
    Ports,
    SecurityGroups,
    SecurityGroupRules,
    Routers,
    FloatingIps,
    Agents,
    SubnetPools,
}

impl Table {
    /// The resource's name in events (`network.port.update.end`).
    pub fn resource(self) -> &'static str {
        match self {
            Table::Networks => "network",
            Table::Subnets => "subnet",
            Table::Ports => "port",
            Table::SecurityGroups => "security_group",
            Table::SecurityGroupRules => "security_group_rule",
            Table::Routers => "router",
            Table::FloatingIps => "floatingip",
            Table::Agents => "agent",
            Table::SubnetPools => "subnetpool",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Table::Networks => "network_networks",
            Table::Subnets => "network_subnets",
            Table::Ports => "network_ports",
            Table::SecurityGroups => "network_security_groups",
            Table::SecurityGroupRules => "network_security_group_rules",
            Table::Routers => "network_routers",
            Table::FloatingIps => "network_floatingips",
            Table::Agents => "network_agents",
            Table::SubnetPools => "network_subnetpools",
        }
    }
}

/// One stored resource.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub project_id: ProjectId,
    /// The attributes the API shows.
    pub doc: Map<String, Value>,
    /// What the service keeps about it and never shows.
    pub control: Control,
    pub revision_number: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// What the service keeps about a resource that the API never shows, in a column of
/// its own. (Rows written before that column kept these in the document under
/// `_`-prefixed keys; reading such a row moves them here.)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Control {
    /// A port or security-group rule counted in its project's quota. A port the service
    /// made for itself (a router's gateway, a floating IP's address) is not, nor is a
    /// rule of a project's default group.
    pub counted: bool,
    /// The project's `default` security group.
    pub default_group: bool,
    /// A router's gateway port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_port: Option<String>,
    /// A floating IP's own port on its external network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
}

impl Control {
    /// A port or rule counted in its project's quota.
    pub fn counted() -> Self {
        Self { counted: true, ..Self::default() }
    }

    fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// The control column, or for a row written before it (`{}`) what its document
    /// kept under `_`-prefixed keys, taken out of the document either way.
    fn read(table: Table, text: &str, doc: &mut Map<String, Value>) -> Result<Self, sqlx::Error> {
        let legacy: Vec<(String, Value)> = {
            let keys: Vec<String> = doc.keys().filter(|k| k.starts_with('_')).cloned().collect();
            keys.into_iter().filter_map(|k| doc.remove(&k).map(|v| (k, v))).collect()
        };
        if text.trim() != "{}" {
            return serde_json::from_str(text)
                .map_err(|e| sqlx::Error::Decode(format!("{} control {text:?}: {e}", table.resource()).into()));
        }
        let old = |key: &str| legacy.iter().find(|(k, _)| k == key).map(|(_, v)| v);
        Ok(Self {
            // A port was counted unless marked otherwise; a rule only when marked.
            counted: match table {
                Table::Ports => old("_counted") != Some(&Value::Bool(false)),
                _ => old("_counted") == Some(&Value::Bool(true)),
            },
            default_group: old("_default") == Some(&Value::Bool(true)),
            gateway_port: old("_gw_port").and_then(Value::as_str).map(str::to_string),
            port: old("_port").and_then(Value::as_str).map(str::to_string),
        })
    }
}

impl Record {
    fn from_row(table: Table, r: &AnyRow) -> StoreResult<Self> {
        let text = r.text("doc");
        let mut doc = match serde_json::from_str(&text) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(sqlx::Error::Decode(
                    format!("{} {}: its document is not a JSON object", table.resource(), r.text("id")).into(),
                ))
            }
        };
        let control = Control::read(table, &r.text("control"), &mut doc)?;
        Ok(Self {
            id: r.text("id"),
            project_id: r.text("project_id").into(),
            doc,
            control,
            revision_number: r.int("revision_number"),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        })
    }

    fn from_rows(table: Table, rows: &[AnyRow]) -> StoreResult<Vec<Self>> {
        rows.iter().map(|r| Self::from_row(table, r)).collect()
    }

    pub fn str(&self, key: &str) -> &str {
        self.doc.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn flag(&self, key: &str) -> bool {
        self.doc.get(key).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// A port a router attached: one of its interfaces, or its gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPort {
    pub port_id: String,
    pub router_id: String,
    /// `network:router_interface` or `network:router_gateway`.
    pub port_type: String,
}

/// A row to insert.
pub struct NewRow<'a> {
    pub table: Table,
    pub id: &'a str,
    pub project_id: &'a str,
    pub cols: &'a [(&'a str, Col)],
    pub doc: &'a Map<String, Value>,
    pub control: &'a Control,
}

/// A value for a resource-specific column.
#[derive(Debug, Clone)]
pub enum Col {
    Text(String),
    Int(Option<i64>),
}

#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    pub async fn insert(
        &self,
        table: Table,
        id: &str,
        project_id: &str,
        cols: &[(&str, Col)],
        doc: &Map<String, Value>,
        control: &Control,
    ) -> StoreResult<()> {
        self.insert_all(&[NewRow { table, id, project_id, cols, doc, control }]).await
    }

    /// Inserts rows in one transaction: all or none (a group with its rules).
    pub async fn insert_all(&self, rows: &[NewRow<'_>]) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        let now = now_text();
        for row in rows {
            Self::insert_in(&mut tx, row, &now, false).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts a row inside the caller's transaction, made and updated at `now`. With
    /// `skip_taken`, a row whose key or unique column is taken is skipped (false) rather
    /// than an error, so the transaction stays usable (PostgreSQL aborts one on an error).
    pub async fn insert_in(
        conn: &mut AnyConnection,
        row: &NewRow<'_>,
        now: &str,
        skip_taken: bool,
    ) -> StoreResult<bool> {
        let mut names = vec!["id", "project_id", "doc", "created_at", "updated_at", "control"];
        names.extend(row.cols.iter().map(|(n, _)| *n));
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}){}",
            row.table.name(),
            names.join(", "),
            placeholders(names.len(), 1, 1),
            if skip_taken { " ON CONFLICT DO NOTHING" } else { "" }
        );
        let mut q = sqlx::query(&sql)
            .bind(row.id)
            .bind(row.project_id)
            .bind(Value::Object(row.doc.clone()).to_string())
            .bind(now.to_string())
            .bind(now.to_string())
            .bind(row.control.text());
        for (_, c) in row.cols {
            q = match c {
                Col::Text(s) => q.bind(s.clone()),
                Col::Int(i) => q.bind(*i),
            };
        }
        Ok(q.execute(conn).await?.rows_affected() > 0)
    }

    pub async fn fetch(&self, table: Table, id: &str) -> StoreResult<Option<Record>> {
        let sql = format!("SELECT * FROM {} WHERE id = $1", table.name());
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?
            .map(|r| Record::from_row(table, &r))
            .transpose()
    }

    /// Every record, or those whose `column` equals `value`.
    pub async fn list(&self, table: Table, filter: Option<(&str, &str)>) -> StoreResult<Vec<Record>> {
        let rows = match filter {
            Some((col, val)) => {
                let sql = format!("SELECT * FROM {} WHERE {col} = $1 ORDER BY created_at, id", table.name());
                sqlx::query(&sql).bind(val).fetch_all(&self.db.reads).await?
            }
            None => {
                let sql = format!("SELECT * FROM {} ORDER BY created_at, id", table.name());
                sqlx::query(&sql).fetch_all(&self.db.reads).await?
            }
        };
        Record::from_rows(table, &rows)
    }

    /// Up to `n` records in creation order, after the given (created_at, id).
    pub async fn list_after(&self, table: Table, after: Option<(&str, &str)>, n: i64) -> StoreResult<Vec<Record>> {
        let (c, i) = after.unwrap_or(("", ""));
        let sql = format!(
            "SELECT * FROM {} WHERE created_at > $1 OR (created_at = $1 AND id > $2) ORDER BY created_at, id LIMIT $3",
            table.name()
        );
        let rows = sqlx::query(&sql).bind(c).bind(i).bind(n).fetch_all(&self.db.reads).await?;
        Record::from_rows(table, &rows)
    }

    /// Saves a new document (and resource columns); with `if_revision`, only if the
    /// stored revision is that one (Neutron's `If-Match: revision_number=N`). Returns
    /// false when nothing matched.
    pub async fn update(
        &self,
        table: Table,
        id: &str,
        cols: &[(&str, Col)],
        doc: &Map<String, Value>,
        control: &Control,
        if_revision: Option<i64>,
    ) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::update_in(&mut conn, table, id, cols, doc, control, if_revision).await?;
        conn.release();
        Ok(saved)
    }

    /// [`Self::update`] inside the caller's transaction.
    pub async fn update_in(
        conn: &mut AnyConnection,
        table: Table,
        id: &str,
        cols: &[(&str, Col)],
        doc: &Map<String, Value>,
        control: &Control,
        if_revision: Option<i64>,
    ) -> StoreResult<bool> {
        let mut sets = String::new();
        for (i, (name, _)) in cols.iter().enumerate() {
            sets.push_str(&format!(", {name} = ${}", i + 6));
        }
        let sql = format!(
            "UPDATE {} SET doc = $2, control = $5, revision_number = revision_number + 1, updated_at = $3{sets} WHERE id = $1 AND ($4 < 0 OR revision_number = $4)",
            table.name()
        );
        let mut q = sqlx::query(&sql)
            .bind(id)
            .bind(Value::Object(doc.clone()).to_string())
            .bind(now_text())
            .bind(if_revision.unwrap_or(-1))
            .bind(control.text());
        for (_, c) in cols {
            q = match c {
                Col::Text(s) => q.bind(s.clone()),
                Col::Int(i) => q.bind(*i),
            };
        }
        Ok(q.execute(conn).await?.rows_affected() > 0)
    }

    /// Records that `router_id` attached `port_id` (as `port_type`: an interface or its
    /// gateway), inside the caller's transaction. False when the port is attached already.
    pub async fn router_port_add_in(
        conn: &mut AnyConnection,
        router_id: &str,
        port_id: &str,
        port_type: &str,
    ) -> StoreResult<bool> {
        let sql = "INSERT INTO network_router_ports (port_id, router_id, port_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        Ok(sqlx::query(sql).bind(port_id).bind(router_id).bind(port_type).execute(conn).await?.rows_affected() > 0)
    }

    /// The ports routers attached, with their router and type: of one router, or all.
    pub async fn router_ports(&self, router_id: Option<&str>) -> StoreResult<Vec<RouterPort>> {
        let rows = match router_id {
            Some(r) => {
                sqlx::query("SELECT * FROM network_router_ports WHERE router_id = $1 ORDER BY port_id")
                    .bind(r)
                    .fetch_all(&self.db.reads)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM network_router_ports ORDER BY port_id").fetch_all(&self.db.reads).await?
            }
        };
        Ok(rows
            .iter()
            .map(|r| RouterPort {
                port_id: r.text("port_id"),
                router_id: r.text("router_id"),
                port_type: r.text("port_type"),
            })
            .collect())
    }

    /// The router that attached a port, if one did.
    pub async fn router_of_port(&self, port_id: &str) -> StoreResult<Option<RouterPort>> {
        let row = sqlx::query("SELECT * FROM network_router_ports WHERE port_id = $1")
            .bind(port_id)
            .fetch_optional(&self.db.reads)
            .await?;
        Ok(row.map(|r| RouterPort {
            port_id: r.text("port_id"),
            router_id: r.text("router_id"),
            port_type: r.text("port_type"),
        }))
    }

    /// A router's ports of one type (its interfaces, or its gateway), in creation order.
    pub async fn router_ports_of_type(&self, router_id: &str, port_type: &str) -> StoreResult<Vec<Record>> {
        let rows = sqlx::query(
            "SELECT p.* FROM network_ports p JOIN network_router_ports rp ON rp.port_id = p.id \
             WHERE rp.router_id = $1 AND rp.port_type = $2 ORDER BY p.created_at, p.id",
        )
        .bind(router_id)
        .bind(port_type)
        .fetch_all(&self.db.reads)
        .await?;
        Record::from_rows(Table::Ports, &rows)
    }

    /// Completes a document written in steps (a port and its addresses) without counting
    /// a revision.
    pub async fn set_doc(
        &self,
        table: Table,
        id: &str,
        doc: &Map<String, Value>,
        control: &Control,
    ) -> StoreResult<()> {
        let mut conn = self.db.pool.acquire().await?;
        Self::set_doc_in(&mut conn, table, id, doc, control).await?;
        conn.release();
        Ok(())
    }

    /// [`Self::set_doc`] inside the caller's transaction.
    pub async fn set_doc_in(
        conn: &mut AnyConnection,
        table: Table,
        id: &str,
        doc: &Map<String, Value>,
        control: &Control,
    ) -> StoreResult<()> {
        let sql = format!("UPDATE {} SET doc = $2, control = $3 WHERE id = $1", table.name());
        sqlx::query(&sql)
            .bind(id)
            .bind(Value::Object(doc.clone()).to_string())
            .bind(control.text())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Records whose document mentions `needle` (an id):
    /// used to find what refers to a resource.
    pub async fn referring(&self, table: Table, needle: &str) -> StoreResult<Vec<Record>> {
        let sql = format!("SELECT * FROM {} WHERE doc LIKE $1", table.name());
        let rows = sqlx::query(&sql).bind(format!("%\"{needle}\"%")).fetch_all(&self.db.reads).await?;
        Record::from_rows(table, &rows)
    }

    /// Releases one address of a port.
    pub async fn ip_release(&self, subnet_id: &str, ip: &str) -> StoreResult<()> {
        let mut conn = self.db.pool.acquire().await?;
        Self::ip_release_in(&mut conn, subnet_id, ip).await?;
        conn.release();
        Ok(())
    }

    /// [`Self::ip_release`] inside the caller's transaction.
    pub async fn ip_release_in(conn: &mut AnyConnection, subnet_id: &str, ip: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM network_ip_allocations WHERE subnet_id = $1 AND ip_address = $2")
            .bind(subnet_id)
            .bind(ip)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn delete(&self, table: Table, id: &str) -> StoreResult<bool> {
        let sql = format!("DELETE FROM {} WHERE id = $1", table.name());
        Ok(sqlx::query(&sql).bind(id).execute(&self.db.pool).await?.rows_affected() > 0)
    }

    pub async fn count(&self, table: Table, column: &str, value: &str) -> StoreResult<i64> {
        let sql = format!("SELECT COUNT(*) AS n FROM {} WHERE {column} = $1", table.name());
        Ok(sqlx::query(&sql).bind(value).fetch_one(&self.db.reads).await?.int("n"))
    }

    /// Addresses in use on a subnet.
    pub async fn ip_allocated(
        conn: &mut AnyConnection,
        subnet_id: &str,
    ) -> StoreResult<std::collections::HashSet<String>> {
        let rows = sqlx::query("SELECT ip_address FROM network_ip_allocations WHERE subnet_id = $1")
            .bind(subnet_id)
            .fetch_all(conn)
            .await?;
        Ok(rows.iter().map(|r| r.text("ip_address")).collect())
    }

    /// Takes an address for a port; false when someone holds it already. The primary key
    /// makes two ports getting one address impossible, however many race.
    pub async fn ip_allocate(conn: &mut AnyConnection, subnet_id: &str, ip: &str, port_id: &str) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO network_ip_allocations (subnet_id, ip_address, port_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(subnet_id)
        .bind(ip)
        .bind(port_id)
        .execute(conn)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// port id → [(subnet id, address)], for all ports or one.
    pub async fn ip_by_port(&self, port_id: Option<&str>) -> StoreResult<HashMap<String, Vec<(String, String)>>> {
        let rows =
            sqlx::query("SELECT * FROM network_ip_allocations WHERE ($1 IS NULL OR port_id = $1) ORDER BY subnet_id")
                .bind(port_id)
                .fetch_all(&self.db.reads)
                .await?;
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for r in rows {
            out.entry(r.text("port_id")).or_default().push((r.text("subnet_id"), r.text("ip_address")));
        }
        Ok(out)
    }

    /// How many addresses of a subnet are taken (on the read pool: never call it while
    /// holding a transaction, which on PostgreSQL shares that pool).
    pub async fn ip_count_subnet(&self, subnet_id: &str) -> StoreResult<i64> {
        let mut conn = self.db.reads.acquire().await?;
        let n = Self::ip_count_subnet_in(&mut conn, subnet_id).await?;
        conn.release();
        Ok(n)
    }

    /// [`Self::ip_count_subnet`] inside the caller's transaction.
    pub async fn ip_count_subnet_in(conn: &mut AnyConnection, subnet_id: &str) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM network_ip_allocations WHERE subnet_id = $1")
            .bind(subnet_id)
            .fetch_one(conn)
            .await?;
        Ok(row.int("n"))
    }

    /// Counts one more of a resource against a project's limit, atomically; false when
    /// the limit is reached.
    pub async fn usage_claim(&self, project_id: &str, resource: &str, limit: Option<i64>) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let claimed = Self::usage_claim_in(&mut conn, project_id, resource, limit).await?;
        conn.release();
        Ok(claimed)
    }

    /// [`Self::usage_claim`] inside the caller's transaction.
    pub async fn usage_claim_in(
        conn: &mut AnyConnection,
        project_id: &str,
        resource: &str,
        limit: Option<i64>,
    ) -> StoreResult<bool> {
        let claim = [(resource, 1, limit.unwrap_or(-1))];
        stratus_common::db::usage::claim(conn, "network_usage", project_id, &claim).await
    }

    /// Deletes a port, its addresses (by the foreign key's cascade) and, when it was
    /// `counted`, its place in the project's usage, in one transaction. False when it
    /// was gone already.
    pub async fn port_delete(&self, id: &str, project_id: &str, counted: bool) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM network_ports WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if gone.rows_affected() == 0 {
            return Ok(false);
        }
        if counted {
            Self::usage_release_in(&mut tx, project_id, "port").await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn usage_release(&self, project_id: &str, resource: &str) -> StoreResult<()> {
        let mut conn = self.db.pool.acquire().await?;
        Self::usage_release_in(&mut conn, project_id, resource).await
    }

    async fn usage_release_in(conn: &mut AnyConnection, project_id: &str, resource: &str) -> StoreResult<()> {
        sqlx::query("UPDATE network_usage SET used = used - 1 WHERE project_id = $1 AND resource = $2 AND used > 0")
            .bind(project_id)
            .bind(resource)
            .execute(conn)
            .await?;
        Ok(())
    }

    pub async fn usage(&self, project_id: &str) -> StoreResult<HashMap<String, i64>> {
        let rows = sqlx::query("SELECT resource, used FROM network_usage WHERE project_id = $1")
            .bind(project_id)
            .fetch_all(&self.db.reads)
            .await?;
        Ok(rows.iter().map(|r| (r.text("resource"), r.int("used"))).collect())
    }

    /// Projects with usage rows.
    pub async fn usage_projects(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT project_id FROM network_usage").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(|r| r.text("project_id")).collect())
    }

    /// Sets a usage counter outright (the reconciler's recount).
    pub async fn usage_set(&self, project_id: &str, resource: &str, used: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO network_usage (project_id, resource) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(project_id)
            .bind(resource)
            .execute(&self.db.pool)
            .await?;
        sqlx::query("UPDATE network_usage SET used = $3 WHERE project_id = $1 AND resource = $2")
            .bind(project_id)
            .bind(resource)
            .bind(used)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_common::db::testing::fresh;
    use stratus_common::db::Engine;

    async fn store() -> Store {
        let db = fresh(Engine::Sqlite).await;
        db.migrate(crate::migrations::MIGRATIONS).await.unwrap();
        Store::new(db)
    }

    async fn insert_raw(s: &Store, sql: &str) {
        sqlx::query(sql).execute(&s.db.pool).await.unwrap();
    }

    #[tokio::test]
    async fn control_is_its_own_column_and_older_rows_give_theirs_up_from_the_document() {
        let s = store().await;
        let t = "'2026-01-01T00:00:00.000000Z'";
        insert_raw(&s, &format!("INSERT INTO network_networks (id, project_id, network_type, doc, created_at, updated_at) VALUES ('n', 'p', 'vxlan', '{{}}', {t}, {t})")).await;
        // Rows written before the control column: their internal keys in the document.
        insert_raw(&s, &format!("INSERT INTO network_ports (id, project_id, network_id, mac_address, doc, created_at, updated_at) VALUES ('p1', 'p', 'n', 'm1', '{{\"name\": \"a\"}}', {t}, {t}), ('p2', '', 'n', 'm2', '{{\"_counted\": false, \"name\": \"b\"}}', {t}, {t})")).await;
        insert_raw(&s, &format!("INSERT INTO network_routers (id, project_id, doc, created_at, updated_at) VALUES ('r', 'p', '{{\"_gw_port\": \"p2\", \"name\": \"r\"}}', {t}, {t})")).await;
        insert_raw(&s, &format!("INSERT INTO network_security_groups (id, project_id, is_default, doc, created_at, updated_at) VALUES ('g', 'p', 1, '{{\"_default\": true}}', {t}, {t})")).await;
        insert_raw(&s, &format!("INSERT INTO network_security_group_rules (id, project_id, security_group_id, signature, doc, created_at, updated_at) VALUES ('r1', 'p', 'g', 's1', '{{}}', {t}, {t}), ('r2', 'p', 'g', 's2', '{{\"_counted\": true}}', {t}, {t})")).await;
        let p1 = s.fetch(Table::Ports, "p1").await.unwrap().unwrap();
        let p2 = s.fetch(Table::Ports, "p2").await.unwrap().unwrap();
        assert!(p1.control.counted, "a port was counted unless marked otherwise");
        assert!(!p2.control.counted);
        assert_eq!(p2.doc.keys().collect::<Vec<_>>(), ["name"], "the document keeps only what is shown");
        let r = s.fetch(Table::Routers, "r").await.unwrap().unwrap();
        assert_eq!(r.control.gateway_port.as_deref(), Some("p2"));
        assert!(s.fetch(Table::SecurityGroups, "g").await.unwrap().unwrap().control.default_group);
        let rules = s.list(Table::SecurityGroupRules, None).await.unwrap();
        assert_eq!(rules.iter().map(|r| r.control.counted).collect::<Vec<_>>(), [false, true]);
        // A save writes the column; the document stays clean.
        assert!(s.update(Table::Routers, "r", &[], &r.doc, &r.control, None).await.unwrap());
        let (doc, control): (String, String) =
            sqlx::query_as("SELECT doc, control FROM network_routers WHERE id = 'r'")
                .fetch_one(&s.db.pool)
                .await
                .unwrap();
        assert!(!doc.contains("_gw_port"), "{doc}");
        assert_eq!(serde_json::from_str::<Control>(&control).unwrap(), r.control);
        assert_eq!(s.fetch(Table::Routers, "r").await.unwrap().unwrap().control, r.control);
        // An unreadable control column or document is an error, never an empty default.
        insert_raw(&s, "UPDATE network_ports SET control = '{\"counted\": 1}' WHERE id = 'p1'").await;
        assert!(s.fetch(Table::Ports, "p1").await.is_err());
        insert_raw(&s, "UPDATE network_ports SET doc = 'not json' WHERE id = 'p2'").await;
        assert!(s.list(Table::Ports, None).await.is_err());
    }
}
