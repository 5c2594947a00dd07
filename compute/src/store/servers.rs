//! Server rows.

use super::{json_map, usage_release, Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};
use stratus_common::ids::ProjectId;
use stratus_compute_protocol::{HostName, PowerState, ServerId};

/// Nova's `vm_state` of a server. Stored as its name; a name the code does not know is
/// an error when the row is read, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    Building,
    Active,
    Stopped,
    Paused,
    Resized,
    Error,
    Deleted,
}

impl VmState {
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Building => "building",
            VmState::Active => "active",
            VmState::Stopped => "stopped",
            VmState::Paused => "paused",
            VmState::Resized => "resized",
            VmState::Error => "error",
            VmState::Deleted => "deleted",
        }
    }
}

/// What a server is doing now, as Nova names it (`OS-EXT-STS:task_state`); `None` when
/// idle. Stored as its name; a name not listed here is an error when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskState {
    #[serde(rename = "scheduling")]
    Scheduling,
    #[serde(rename = "spawning")]
    Spawning,
    #[serde(rename = "deleting")]
    Deleting,
    #[serde(rename = "rebuilding")]
    Rebuilding,
    #[serde(rename = "resize_migrating")]
    ResizeMigrating,
    #[serde(rename = "resize_reverting")]
    ResizeReverting,
    #[serde(rename = "powering-off")]
    PoweringOff,
    #[serde(rename = "powering-on")]
    PoweringOn,
    #[serde(rename = "rebooting")]
    Rebooting,
    #[serde(rename = "rebooting_hard")]
    RebootingHard,
    #[serde(rename = "pausing")]
    Pausing,
    #[serde(rename = "unpausing")]
    Unpausing,
    #[serde(rename = "image_snapshot")]
    ImageSnapshot,
}

impl TaskState {
    pub const ALL: [TaskState; 13] = [
        TaskState::Scheduling,
        TaskState::Spawning,
        TaskState::Deleting,
        TaskState::Rebuilding,
        TaskState::ResizeMigrating,
        TaskState::ResizeReverting,
        TaskState::PoweringOff,
        TaskState::PoweringOn,
        TaskState::Rebooting,
        TaskState::RebootingHard,
        TaskState::Pausing,
        TaskState::Unpausing,
        TaskState::ImageSnapshot,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Scheduling => "scheduling",
            TaskState::Spawning => "spawning",
            TaskState::Deleting => "deleting",
            TaskState::Rebuilding => "rebuilding",
            TaskState::ResizeMigrating => "resize_migrating",
            TaskState::ResizeReverting => "resize_reverting",
            TaskState::PoweringOff => "powering-off",
            TaskState::PoweringOn => "powering-on",
            TaskState::Rebooting => "rebooting",
            TaskState::RebootingHard => "rebooting_hard",
            TaskState::Pausing => "pausing",
            TaskState::Unpausing => "unpausing",
            TaskState::ImageSnapshot => "image_snapshot",
        }
    }

    /// The task state a row holds; anything else is an error, never a guess.
    pub fn parse(s: &str) -> Result<Self, sqlx::Error> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown task_state {s:?}").into()))
    }

    /// As Nova shows an optional task state in messages: its name, or `None`.
    pub fn name(t: Option<TaskState>) -> &'static str {
        t.map_or("None", TaskState::as_str)
    }
}

impl std::str::FromStr for VmState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "building" => VmState::Building,
            "active" => VmState::Active,
            "stopped" => VmState::Stopped,
            "paused" => VmState::Paused,
            "resized" => VmState::Resized,
            "error" => VmState::Error,
            "deleted" => VmState::Deleted,
            other => return Err(format!("unknown vm_state {other:?}")),
        })
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A backup under way: once uploaded, the server's backups of `backup_type` beyond the
/// newest `rotation` are deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backup {
    pub backup_type: String,
    pub rotation: i64,
}

/// What the service tracks about work under way on a server, apart from what the
/// server shows: stored in its own column, never in the document the API renders.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Control {
    /// The saga working on the server (results of its commands poke it).
    pub saga_id: Option<stratus_common::ids::SagaId>,
    /// The command sent to the server's host and not answered yet.
    pub command: Option<PendingCommand>,
    /// The host's answer to the spawn.
    pub spawn: Option<CommandAnswer>,
    /// The host's answer to a rebuild or resize, with the saga that asked.
    pub change: Option<CommandAnswer>,
    /// The image a snapshot under way uploads into (task `image_snapshot`).
    pub snapshot_image: Option<String>,
    /// For a backup (`createBackup`): its type and how many of that type to keep.
    pub backup: Option<Backup>,
    /// A delete asked for while a saga ran: its end starts the delete.
    pub delete_requested: bool,
    /// The host the guest was destroyed on (the delete saga's first step is done).
    pub destroyed_on: Option<String>,
}

/// A volume attached to a server, as the server's document records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttachedVolume {
    pub volume_id: String,
    /// The volume's project (its URL in the volume API).
    pub project_id: ProjectId,
    /// The guest's device (`/dev/vdb`).
    pub device: String,
    /// The volume service's id of the attachment.
    #[serde(default)]
    pub attachment_id: Option<String>,
    /// Deleted with the server (`delete_on_termination`).
    #[serde(default)]
    pub delete_on_termination: bool,
    #[serde(default)]
    pub tag: Option<String>,
    /// How the host reaches it (the volume service's `connection_info`).
    #[serde(default)]
    pub connection: serde_json::Value,
    /// The server's root disk (it boots from this volume).
    #[serde(default)]
    pub boot: bool,
}

/// A command sent to a host, to know when to send it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingCommand {
    pub id: String,
    pub op: stratus_compute_protocol::Op,
    pub sent_at: String,
}

/// A host's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandAnswer {
    pub host: HostName,
    pub error: Option<String>,
    pub power_state: PowerState,
    /// The saga the command was sent for.
    #[serde(default)]
    pub saga: Option<stratus_common::ids::SagaId>,
}

/// Keys a server's document held for [`Control`] before it had its own column.
const LEGACY_CONTROL_KEYS: &[&str] = &["saga_id", "action", "spawn", "change", "delete_requested", "destroyed_on"];

impl Control {
    /// The control column, plus what an older row kept in its document (taken out).
    fn read(text: &str, doc: &mut Map<String, Value>) -> Result<Self, sqlx::Error> {
        let mut c: Control = serde_json::from_str(text)
            .map_err(|e| sqlx::Error::Decode(format!("server control {text:?}: {e}").into()))?;
        if LEGACY_CONTROL_KEYS.iter().any(|k| doc.contains_key(*k)) {
            let mut old = Map::new();
            for k in LEGACY_CONTROL_KEYS {
                if let Some(v) = doc.remove(*k) {
                    old.insert(if *k == "action" { "command".into() } else { k.to_string() }, v);
                }
            }
            if c == Control::default() {
                c = serde_json::from_value(Value::Object(old))
                    .map_err(|e| sqlx::Error::Decode(format!("server control in its document: {e}").into()))?;
            }
        }
        Ok(c)
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub id: ServerId,
    pub project_id: ProjectId,
    pub user_id: String,
    pub name: String,
    pub vm_state: VmState,
    pub task_state: Option<TaskState>,
    pub power_state: PowerState,
    pub host: Option<HostName>,
    pub vcpus: i64,
    pub ram: i64,
    pub disk: i64,
    /// Whether its instances/cores/ram are counted in the project's usage.
    pub charged: bool,
    pub locked: bool,
    pub deleted: bool,
    pub doc: Map<String, Value>,
    /// Work under way (never shown).
    pub control: Control,
    /// Bumped by every save: a save of a stale copy is refused.
    pub rev: i64,
    pub created_at: String,
    pub updated_at: String,
    pub launched_at: Option<String>,
    pub terminated_at: Option<String>,
}

fn control_text(c: &Control) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "{}".into())
}

impl Server {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        let mut doc = json_map(&r.text("doc"));
        let control = Control::read(&r.text("control"), &mut doc)?;
        Ok(Self {
            id: r.text("id").into(),
            project_id: r.text("project_id").into(),
            user_id: r.text("user_id"),
            name: r.text("name"),
            vm_state: r.text("vm_state").parse().map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            task_state: r.opt_text("task_state").map(|t| TaskState::parse(&t)).transpose()?,
            power_state: PowerState::from_code(r.int("power_state"))
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown power_state {}", r.int("power_state")).into()))?,
            host: r.opt_text("host").map(HostName::from),
            vcpus: r.int("vcpus"),
            ram: r.int("ram"),
            disk: r.int("disk"),
            charged: r.int("charged") != 0,
            locked: r.int("locked") != 0,
            deleted: r.int("deleted") != 0,
            doc,
            control,
            rev: r.int("rev"),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
            launched_at: r.opt_text("launched_at"),
            terminated_at: r.opt_text("terminated_at"),
        })
    }

    pub fn str(&self, key: &str) -> &str {
        self.doc.get(key).and_then(Value::as_str).unwrap_or("")
    }

    /// A list of strings in the document (empty when absent).
    pub fn strings(&self, key: &str) -> Vec<String> {
        self.doc.get(key).map(strings).unwrap_or_default()
    }

    /// Records why the server failed, as Nova's `fault` (code 500, now).
    /// Work under way on the server: a task, or a saga (a volume attach or detach sets
    /// no task state, as Nova's do not, but still holds the server).
    pub fn busy(&self) -> bool {
        self.task_state.is_some() || self.control.saga_id.is_some()
    }

    /// The volumes attached to the server (`volumes` in its document).
    pub fn volumes(&self) -> Vec<AttachedVolume> {
        self.doc.get("volumes").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
    }

    pub fn set_volumes(&mut self, volumes: &[AttachedVolume]) {
        self.doc.insert("volumes".into(), serde_json::to_value(volumes).unwrap_or_default());
    }

    pub fn set_fault(&mut self, message: &str) {
        self.doc.insert("fault".into(), serde_json::json!({"code": 500, "message": message, "created": now_text()}));
    }

    /// The quota this server holds while charged.
    pub fn quota(&self) -> [(&'static str, i64); 3] {
        [("instances", 1), ("cores", self.vcpus), ("ram", self.ram)]
    }
}

/// The strings of a JSON array (other values and non-arrays give nothing).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// How a save that moves quota went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    Saved,
    /// The server changed meanwhile (nothing written).
    Changed,
    /// A claim is over its limit (nothing written).
    OverQuota,
}

/// Which servers a listing reads.
#[derive(Debug, Default, Clone)]
pub struct ServerFilter<'a> {
    pub project: Option<&'a str>,
    pub host: Option<&'a str>,
    pub include_deleted: bool,
    /// Only servers changed at or after this time (`changes-since`).
    pub changed_since: Option<&'a str>,
}

impl Store {
    /// Inserts a server (inside the caller's transaction).
    pub async fn server_insert(&self, conn: &mut sqlx::AnyConnection, s: &Server) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO compute_servers (id, project_id, user_id, name, vm_state, task_state, power_state, host, vcpus, ram, disk, charged, locked, deleted, doc, created_at, updated_at, control)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, $14, $15, $15, $16)",
        )
        .bind(s.id.as_str())
        .bind(s.project_id.as_str())
        .bind(&s.user_id)
        .bind(&s.name)
        .bind(s.vm_state.as_str())
        .bind(s.task_state.map(TaskState::as_str))
        .bind(s.power_state.code())
        .bind(s.host.as_deref().map(str::to_string))
        .bind(s.vcpus)
        .bind(s.ram)
        .bind(s.disk)
        .bind(s.charged as i64)
        .bind(s.locked as i64)
        .bind(Value::Object(s.doc.clone()).to_string())
        .bind(&s.created_at)
        .bind(control_text(&s.control))
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn server_get(&self, id: &str) -> StoreResult<Option<Server>> {
        let r =
            sqlx::query("SELECT * FROM compute_servers WHERE id = $1").bind(id).fetch_optional(&self.db.reads).await?;
        r.as_ref().map(Server::from_row).transpose()
    }

    pub async fn server_list(&self, f: &ServerFilter<'_>) -> StoreResult<Vec<Server>> {
        self.server_page(f, None, None).await
    }

    /// Servers newest first (`created_at`, then id, descending), after the server
    /// `after` (its creation time and id) when given, at most `limit`.
    pub async fn server_page(
        &self,
        f: &ServerFilter<'_>,
        after: Option<(&str, &str)>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<Server>> {
        let mut sql = String::from("SELECT * FROM compute_servers WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |sql: &mut String, clause: &str, v: &str| {
            binds.push(v.to_string());
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(p) = f.project {
            bind(&mut sql, " AND project_id = ?", p);
        }
        if let Some(h) = f.host {
            bind(&mut sql, " AND host = ?", h);
        }
        if !f.include_deleted {
            sql.push_str(" AND deleted = 0");
        }
        if let Some(t) = f.changed_since {
            bind(&mut sql, " AND updated_at >= ?", t);
        }
        if let Some((at, id)) = after {
            bind(&mut sql, " AND (created_at < ?", at);
            bind(&mut sql, " OR (created_at = ?", at);
            bind(&mut sql, " AND id < ?))", id);
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {}", n.max(0)));
        }
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b);
        }
        q.fetch_all(&self.db.reads).await?.iter().map(Server::from_row).collect()
    }

    /// Writes the server's mutable columns if nobody saved it since it was read (its
    /// revision), and with `expect_task` only if its task state is still that
    /// (`Some(None)`: no task), so two actions never both start. False otherwise (or
    /// when it was deleted): the caller reads it again.
    pub async fn server_save(&self, s: &mut Server, expect_task: Option<Option<TaskState>>) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::server_save_in(&mut conn, s, expect_task).await?;
        conn.release();
        if saved {
            s.rev += 1;
        }
        Ok(saved)
    }

    /// [`Self::server_save`], and in the same transaction the project's usage moves
    /// by what the server holds: `claims` counted (within their limits) and `releases`
    /// given back, only while the server is charged. False, changing nothing, when the
    /// server changed meanwhile or a claim is over its limit.
    pub async fn server_save_charging(
        &self,
        s: &mut Server,
        expect_task: Option<Option<TaskState>>,
        claims: &[super::Claim<'_>],
        releases: &[(&str, i64)],
    ) -> StoreResult<Charged> {
        let mut tx = self.db.pool.begin().await?;
        let saved = Self::server_save_charging_in(&mut tx, s, expect_task, claims, releases).await?;
        if saved == Charged::Saved {
            tx.commit().await?;
            s.rev += 1;
        }
        Ok(saved)
    }

    /// [`Self::server_save_charging`] in the caller's transaction, which it must drop
    /// unless `Saved` (and bump the server's `rev` after committing).
    pub(crate) async fn server_save_charging_in(
        conn: &mut sqlx::AnyConnection,
        s: &Server,
        expect_task: Option<Option<TaskState>>,
        claims: &[super::Claim<'_>],
        releases: &[(&str, i64)],
    ) -> StoreResult<Charged> {
        if !Self::server_save_in(conn, s, expect_task).await? {
            return Ok(Charged::Changed);
        }
        // What the row held at the revision just checked (see server_save_uncharged_in).
        if s.charged {
            if !super::usage_claim(conn, &s.project_id, claims).await? {
                return Ok(Charged::OverQuota);
            }
            usage_release(conn, &s.project_id, releases).await?;
        }
        Ok(Charged::Saved)
    }

    pub(crate) async fn server_save_in(
        conn: &mut sqlx::AnyConnection,
        s: &Server,
        expect_task: Option<Option<TaskState>>,
    ) -> StoreResult<bool> {
        Self::server_write(conn, s, expect_task, false).await
    }

    /// The revision-checked write of the server's mutable columns; with `uncharge`,
    /// it also stops counting the server's quota (`charged = 0`).
    async fn server_write(
        conn: &mut sqlx::AnyConnection,
        s: &Server,
        expect_task: Option<Option<TaskState>>,
        uncharge: bool,
    ) -> StoreResult<bool> {
        let mut sql = format!(
            "UPDATE compute_servers SET name = $1, vm_state = $2, task_state = $3, power_state = $4, host = $5, vcpus = $6, ram = $7, disk = $8,
             locked = $9, doc = $10, updated_at = $11, launched_at = $12, terminated_at = $13, deleted = $14, control = $17, rev = rev + 1{}
             WHERE id = $15 AND deleted = 0 AND rev = $16",
            if uncharge { ", charged = 0" } else { "" }
        );
        match expect_task {
            Some(Some(_)) => sql.push_str(" AND task_state = $18"),
            Some(None) => sql.push_str(" AND task_state IS NULL"),
            None => {}
        }
        let mut q = sqlx::query(&sql)
            .bind(&s.name)
            .bind(s.vm_state.as_str())
            .bind(s.task_state.map(TaskState::as_str))
            .bind(s.power_state.code())
            .bind(s.host.as_deref().map(str::to_string))
            .bind(s.vcpus)
            .bind(s.ram)
            .bind(s.disk)
            .bind(s.locked as i64)
            .bind(Value::Object(s.doc.clone()).to_string())
            .bind(now_text())
            .bind(s.launched_at.clone())
            .bind(s.terminated_at.clone())
            .bind(s.deleted as i64)
            .bind(s.id.to_string())
            .bind(s.rev)
            .bind(control_text(&s.control));
        if let Some(Some(t)) = expect_task {
            q = q.bind(t.as_str());
        }
        Ok(q.execute(conn).await?.rows_affected() > 0)
    }

    /// [`Self::server_save`] (no task check) that also stops counting the server's
    /// quota if it still counts, in one transaction.
    pub async fn server_save_uncharged(&self, s: &mut Server) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        if !Self::server_save_uncharged_in(&mut tx, s).await? {
            return Ok(false);
        }
        tx.commit().await?;
        s.rev += 1;
        s.charged = false;
        Ok(true)
    }

    /// [`Self::server_save_uncharged`] inside the caller's transaction, which the
    /// caller drops on false; once it commits, the caller adds one to `s.rev` and
    /// clears `s.charged`.
    ///
    /// `s.charged` is what the row held at `s.rev`: `charged` only ever changes in a
    /// write that also moves the revision, so the revision check vouches for it.
    pub(crate) async fn server_save_uncharged_in(conn: &mut sqlx::AnyConnection, s: &Server) -> StoreResult<bool> {
        if !Self::server_write(&mut *conn, s, None, true).await? {
            return Ok(false);
        }
        if s.charged {
            usage_release(&mut *conn, &s.project_id, &s.quota()).await?;
        }
        Ok(true)
    }

    /// Servers placed on each host.
    pub async fn servers_per_host(&self) -> StoreResult<std::collections::HashMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT host, COUNT(*) AS n FROM compute_servers WHERE deleted = 0 AND host IS NOT NULL GROUP BY host",
        )
        .fetch_all(&self.db.reads)
        .await?;
        Ok(rows.iter().map(|r| (r.text("host"), r.int("n"))).collect())
    }
}

#[cfg(test)]
mod task_state_tests {
    use super::TaskState;

    #[test]
    fn task_states_read_back_as_written_and_unknown_ones_are_errors() {
        for t in TaskState::ALL {
            assert_eq!(TaskState::parse(t.as_str()).unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str(), "shown as stored");
        }
        assert!(TaskState::parse("migrating").unwrap_err().to_string().contains("migrating"));
        assert_eq!(TaskState::name(None), "None");
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_fields_leave_an_older_document() {
        let mut doc = serde_json::json!({
            "name_shown": "x", "saga_id": "s1", "delete_requested": true,
            "action": {"id": "a1", "op": "spawn", "sent_at": "2026-01-01T00:00:00Z"},
            "spawn": {"host": "h", "error": null, "power_state": 1},
        })
        .as_object()
        .unwrap()
        .clone();
        let c = Control::read("{}", &mut doc).unwrap();
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["name_shown"], "the document keeps only what is shown");
        assert_eq!(c.saga_id.as_deref(), Some("s1"));
        assert!(c.delete_requested);
        assert_eq!(c.command.unwrap().op, stratus_compute_protocol::Op::Spawn);
        assert_eq!(c.spawn.unwrap().power_state, PowerState::Running);
        // An unreadable control column is an error, not an empty control.
        assert!(Control::read("{\"saga_id\": 5}", &mut Map::new()).is_err());
    }
}
