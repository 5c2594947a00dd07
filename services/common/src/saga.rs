//! Sagas: multi-step operations that survive crashes.
//!
//! A saga is a table of [`Step`]s, each a `{name, run, undo}` written side by side,
//! with typed data the steps share ([`SagaDef::Data`]). It is stored as a row in a
//! service's saga table (`<service>_sagas`, see [`saga_table_sql`]): its kind, the
//! resource it acts on, the step it is at, whether it goes forward or unwinds, the
//! steps it entered, its data as JSON, and its transient failures. [`SagaRunner::drive`]
//! runs a saga from wherever its row says it is: after a crash the service calls
//! [`SagaRunner::resume_all`] and every unfinished saga goes on (or goes on unwinding).
//!
//! ```text
//!             step answers Next            last step done
//!   running ──────────────────▶ running ─────────────────▶ done
//!      │  ▲ transient error: retried with backoff + jitter
//!      │  └─────────┘   … past the bound: stuck (the resource goes to ERROR, an event)
//!      │ permanent error, or cancel
//!      ▼
//!   unwinding ── undo each entered step, newest first ──▶ failed
//! ```
//!
//! Rules for steps, checked for every saga by the generic tests
//! (`stratus_test_support::saga::check_saga`, driven through [`Fault`]s):
//! - a step may run more than once (a crash after it acted but before its progress was
//!   written), so it must be idempotent;
//! - an undo may also run more than once, and for a step that only half ran (the step
//!   that failed is undone too), so it must tolerate absent things;
//! - a step that waits for something outside (an agent) answers [`Outcome::Pending`]:
//!   the saga stops until someone pokes it again (a result arriving, or the sweeper);
//! - a step's error says what the runner does with it ([`StepError`]): permanent
//!   unwinds at once, transient retries, a bounded number of times.
//!
//! Each write of progress checks the row's revision, so two runners (two processes
//! after a failover, or a poke racing the sweeper) never both move one saga on.

use crate::db::{now_text, Db, RowExt};
use crate::ids::SagaId;
use futures::future::BoxFuture;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The columns every saga table has; a service's migration creates it with this SQL.
pub fn saga_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (
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
CREATE INDEX {table}_state ON {table} (state);
CREATE INDEX {table}_subject ON {table} (subject)"
    )
}

/// What a saga table made before the step tables needs to become [`saga_table_sql`]'s
/// shape (a service's migration runs it once). Rows of sagas under way keep working:
/// one with no record of the steps it entered unwinds every step up to where it is.
pub fn saga_table_upgrade_sql(table: &str) -> String {
    format!(
        "ALTER TABLE {table} ADD COLUMN entered TEXT;
ALTER TABLE {table} ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE {table} ADD COLUMN last_error TEXT NOT NULL DEFAULT '';
ALTER TABLE {table} ADD COLUMN stuck_at TEXT"
    )
}

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaState {
    Running,
    Unwinding,
    Done,
    Failed,
}

impl SagaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Running => "running",
            SagaState::Unwinding => "unwinding",
            SagaState::Done => "done",
            SagaState::Failed => "failed",
        }
    }

    /// The state a row holds; anything else is an error, never a guess.
    pub fn parse(s: &str) -> Result<Self, sqlx::Error> {
        match s {
            "running" => Ok(SagaState::Running),
            "unwinding" => Ok(SagaState::Unwinding),
            "done" => Ok(SagaState::Done),
            "failed" => Ok(SagaState::Failed),
            other => Err(sqlx::Error::Decode(format!("unknown saga state {other:?}").into())),
        }
    }

    pub fn finished(self) -> bool {
        matches!(self, SagaState::Done | SagaState::Failed)
    }
}

/// Why a step did not go on, and so what the runner does.
#[derive(Debug)]
pub enum StepError {
    /// It cannot succeed however often it is tried (a refusal, a resource gone): the
    /// saga unwinds now, and the message becomes the saga's error (a server's fault).
    Permanent(String),
    /// It may succeed later (a busy database, a service restarting, a concurrent
    /// change): retried with backoff and jitter, a bounded number of times in all,
    /// after which the saga is stuck.
    Transient(anyhow::Error),
}

impl StepError {
    pub fn permanent(message: impl Into<String>) -> Self {
        StepError::Permanent(message.into())
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Permanent(m) => f.write_str(m),
            StepError::Transient(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Transient(e)
    }
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Transient(e.into())
    }
}

impl From<serde_json::Error> for StepError {
    fn from(e: serde_json::Error) -> Self {
        StepError::Transient(e.into())
    }
}

pub type StepResult<T> = Result<T, StepError>;
pub type StepFuture<'a, T> = BoxFuture<'a, StepResult<T>>;

/// What a step answers when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; go to the next step.
    Next,
    /// Go to the step of that name (a retry from an earlier step, such as rescheduling).
    Goto(&'static str),
    /// Waiting for something outside; stop until poked.
    Pending,
    /// The last step is done and recorded the saga's end itself, in the transaction
    /// of its own writes ([`SagaRunner::finish_in`]): one commit less. It takes the
    /// place of [`SagaDef::finished`], which the runner then does not call.
    Finished,
}

/// One step of a saga: what it does and how to undo it, side by side.
pub struct Step<D: SagaDef> {
    pub name: &'static str,
    pub run: for<'a> fn(&'a D, &'a mut Saga, &'a mut D::Data) -> StepFuture<'a, Outcome>,
    pub undo: for<'a> fn(&'a D, &'a mut Saga, &'a mut D::Data) -> StepFuture<'a, ()>,
}

/// The undo of a step that leaves nothing to take back.
pub fn nothing_to_undo<'a, D: SagaDef>(_: &'a D, _: &'a mut Saga, _: &'a mut D::Data) -> StepFuture<'a, ()> {
    Box::pin(async { Ok(()) })
}

/// Data for a saga whose steps share none.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoData {}

/// What a kind of saga does.
pub trait SagaDef: Send + Sync + Sized + 'static {
    /// What the steps share across drives (inputs, what a step made so that its undo
    /// can remove it), stored as JSON in the saga's row.
    type Data: Serialize + DeserializeOwned + Default + Send + Sync;
    fn kind(&self) -> &'static str;
    fn steps(&self) -> &'static [Step<Self>];
    /// Called when the saga is done or fully unwound, before that is recorded: it may
    /// run again after a crash, so it must be idempotent.
    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        let _ = saga;
        Box::pin(async { Ok(()) })
    }
    /// Called once transient errors passed the bound and the saga stops being retried:
    /// shows it on the resource (ERROR with a fault an operator can read) and announces
    /// it. Idempotent: it runs again until it succeeds.
    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()>;
}

/// One saga as stored, plus what one drive's steps hand on to each other.
pub struct Saga {
    pub id: SagaId,
    pub kind: String,
    /// The resource the saga acts on (a server id).
    pub subject: String,
    /// The step to run next (forward) or to undo next (unwinding).
    pub step: i64,
    pub state: SagaState,
    /// The steps' shared data ([`SagaDef::Data`] as JSON).
    pub data: Value,
    /// Why the saga unwinds.
    pub error: String,
    /// The steps entered so far, oldest first (a step entered again moves to the end):
    /// what an unwind undoes, newest first. `None` for a row written before this was
    /// recorded: every step up to `step` is undone.
    pub entered: Option<Vec<String>>,
    /// Transient failures since the saga last moved on, and the last one's message.
    pub attempts: i64,
    pub last_error: String,
    /// When the saga stopped being retried (transient failures past the bound).
    pub stuck_at: Option<String>,
    rev: i64,
    pub updated_at: String,
    /// What a step hands on to the next step of the same drive (never stored): the
    /// resource it read and saved, so the next step need not read it again. A step
    /// only leaves something here that matches the database; only the first step of
    /// a [`SagaRunner::drive_with`] may find unsaved changes here, which it saves.
    pub scratch: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// No step of this saga ran before: the drive began from the saga its creator just
    /// inserted, and no step ran yet (so a step need not look for what it made before).
    pub fresh: bool,
    /// Every step so far ran in this one drive, which began from the saga its creator
    /// just inserted: nothing an earlier attempt of a step made can exist, so a step
    /// need not look for it. False for a saga read back from the database (a later
    /// drive, a retry after a failure, a resumption after a crash).
    pub unbroken: bool,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("step", &self.step)
            .field("state", &self.state)
            .field("entered", &self.entered)
            .field("error", &self.error)
            .field("attempts", &self.attempts)
            .field("stuck_at", &self.stuck_at)
            .finish_non_exhaustive()
    }
}

impl Saga {
    /// A new saga at its first step, to [`SagaRunner::insert_saga`] and then
    /// [`SagaRunner::spawn_saga`] without reading it back.
    pub fn fresh<T: Serialize>(id: SagaId, kind: &str, subject: &str, data: &T) -> Self {
        let now = now_text();
        Self {
            id,
            kind: kind.to_string(),
            subject: subject.to_string(),
            step: 0,
            state: SagaState::Running,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
            error: String::new(),
            entered: Some(Vec::new()),
            attempts: 0,
            last_error: String::new(),
            stuck_at: None,
            rev: 0,
            updated_at: now,
            scratch: None,
            fresh: true,
            unbroken: true,
        }
    }

    /// A new saga id.
    pub fn new_id() -> SagaId {
        SagaId(uuid::Uuid::new_v4().to_string())
    }

    /// Takes what the previous step left, if it is a `T` (for `subject`, checked by
    /// the caller).
    pub fn take_scratch<T: 'static>(&mut self) -> Option<T> {
        self.scratch.take().and_then(|b| b.downcast::<T>().ok()).map(|b| *b)
    }

    /// The saga's data as its definition's type.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// Marks a step entered. The runner does it as a step starts; a caller that does a
    /// fresh saga's first step's work in the transaction that writes the saga marks it
    /// too, so the saga is written as having entered it.
    pub fn enter(&mut self, name: &str) {
        let entered = self.entered.get_or_insert_with(Vec::new);
        if entered.last().map(String::as_str) != Some(name) {
            entered.retain(|n| n != name);
            entered.push(name.to_string());
        }
    }
}

/// A fault the generic saga tests inject into a runner ([`SagaRunner::inject`]). Each
/// names a kind of saga and a step; it fires once, at the next saga of that kind to
/// reach the step, except [`Fault::UndoTwice`] and [`Fault::Transient`], which stay
/// until [`SagaRunner::clear_faults`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The step fails for good as it starts (its undo still runs: it was entered).
    FailAt { kind: String, step: String },
    /// The step runs twice in a row; the second answer counts.
    RunTwice { kind: String, step: String },
    /// The process dies right after the step ran: the drive stops and the progress it
    /// had not written is lost (until someone drives the saga again).
    CrashAfter { kind: String, step: String },
    /// The step fails with a transient error every time it starts.
    Transient { kind: String, step: String },
    /// Every undo of the kind runs twice.
    UndoTwice { kind: String },
}

impl Fault {
    fn matches(&self, kind: &str, step: Option<&str>) -> bool {
        match self {
            Fault::FailAt { kind: k, step: s }
            | Fault::RunTwice { kind: k, step: s }
            | Fault::CrashAfter { kind: k, step: s }
            | Fault::Transient { kind: k, step: s } => k == kind && Some(s.as_str()) == step,
            Fault::UndoTwice { kind: k } => k == kind && step.is_none(),
        }
    }
}

#[derive(Default)]
struct Faults {
    armed: AtomicBool,
    list: Mutex<Vec<Fault>>,
}

impl Faults {
    /// Whether a fault like `want` (same variant) applies to this kind and step; a
    /// one-shot fault is used up.
    fn take(&self, want: fn(&Fault) -> bool, kind: &str, step: Option<&str>) -> bool {
        if !self.armed.load(Ordering::Relaxed) {
            return false;
        }
        let mut list = self.list.lock().unwrap();
        let Some(i) = list.iter().position(|f| want(f) && f.matches(kind, step)) else { return false };
        if !matches!(list[i], Fault::UndoTwice { .. } | Fault::Transient { .. }) {
            list.remove(i);
        }
        true
    }
}

/// The runner's view of a [`SagaDef`], whatever its data type.
trait Driver: Send + Sync {
    fn kind(&self) -> &'static str;
    fn names(&self) -> Vec<&'static str>;
    fn run<'a>(&'a self, step: usize, saga: &'a mut Saga) -> StepFuture<'a, Outcome>;
    fn undo<'a>(&'a self, step: usize, saga: &'a mut Saga) -> StepFuture<'a, ()>;
    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()>;
    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()>;
}

/// Reads a saga's data as `D::Data`: data that does not parse is an error, never a
/// silent default.
fn typed<D: SagaDef>(saga: &Saga) -> StepResult<D::Data> {
    if saga.data.is_null() {
        return Ok(D::Data::default());
    }
    saga.data_as::<D::Data>().map_err(|e| {
        StepError::Permanent(format!("The {} saga's data cannot be read ({e}); it cannot go on.", saga.kind))
    })
}

impl<D: SagaDef> Driver for D {
    fn kind(&self) -> &'static str {
        SagaDef::kind(self)
    }

    fn names(&self) -> Vec<&'static str> {
        self.steps().iter().map(|s| s.name).collect()
    }

    fn run<'a>(&'a self, step: usize, saga: &'a mut Saga) -> StepFuture<'a, Outcome> {
        Box::pin(async move {
            let mut data = typed::<D>(saga)?;
            let out = (self.steps()[step].run)(self, saga, &mut data).await;
            saga.data = serde_json::to_value(&data)?;
            out
        })
    }

    fn undo<'a>(&'a self, step: usize, saga: &'a mut Saga) -> StepFuture<'a, ()> {
        Box::pin(async move {
            // Undo what can be undone even when the data is unreadable.
            let mut data = typed::<D>(saga).unwrap_or_default();
            let out = (self.steps()[step].undo)(self, saga, &mut data).await;
            saga.data = serde_json::to_value(&data)?;
            out
        })
    }

    fn finished<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        SagaDef::finished(self, saga)
    }

    fn stuck<'a>(&'a self, saga: &'a Saga) -> StepFuture<'a, ()> {
        SagaDef::stuck(self, saga)
    }
}

/// How a drive round ended badly.
enum Stop {
    /// A transient error: retried.
    Failed(anyhow::Error),
    /// An injected crash: the drive ends as if the process died.
    Crashed,
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Failed(e)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<serde_json::Error> for Stop {
    fn from(e: serde_json::Error) -> Self {
        Stop::Failed(e.into())
    }
}

/// Transient failures a saga may have, in all, before it is stuck (a drive retries a
/// few times at once with backoff, then the sweeper drives it again).
pub const DEFAULT_MAX_ATTEMPTS: i64 = 30;

/// Stores sagas in one table and drives them.
#[derive(Clone)]
pub struct SagaRunner {
    db: Db,
    table: &'static str,
    defs: Arc<HashMap<&'static str, Arc<dyn Driver>>>,
    /// Sagas being driven by this process, and whether they were poked meanwhile.
    active: Arc<Mutex<HashMap<SagaId, bool>>>,
    faults: Arc<Faults>,
    max_attempts: Arc<AtomicI64>,
}

/// A definition as the runner holds it (any [`SagaDef`]).
pub struct Registered(Arc<dyn Driver>);

impl<D: SagaDef> From<Arc<D>> for Registered {
    fn from(d: Arc<D>) -> Self {
        Registered(d)
    }
}

impl<D: SagaDef> From<D> for Registered {
    fn from(d: D) -> Self {
        Registered(Arc::new(d))
    }
}

impl SagaRunner {
    pub fn new(db: Db, table: &'static str, defs: Vec<Registered>) -> Self {
        let defs = defs.into_iter().map(|Registered(d)| (d.kind(), d)).collect();
        Self {
            db,
            table,
            defs: Arc::new(defs),
            active: Arc::new(Mutex::new(HashMap::new())),
            faults: Arc::new(Faults::default()),
            max_attempts: Arc::new(AtomicI64::new(DEFAULT_MAX_ATTEMPTS)),
        }
    }

    /// The step names of a kind of saga, in order.
    pub fn steps_of(&self, kind: &str) -> Vec<&'static str> {
        self.defs.get(kind).map(|d| d.names()).unwrap_or_default()
    }

    /// Sets how many transient failures a saga may have before it is stuck.
    pub fn set_max_attempts(&self, n: i64) {
        self.max_attempts.store(n.max(1), Ordering::Relaxed);
    }

    /// Adds a fault for the generic saga tests.
    pub fn inject(&self, fault: Fault) {
        self.faults.list.lock().unwrap().push(fault);
        self.faults.armed.store(true, Ordering::Relaxed);
    }

    /// Faults injected and not fired yet (and the lasting ones).
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.list.lock().unwrap().clone()
    }

    pub fn clear_faults(&self) {
        self.faults.list.lock().unwrap().clear();
        self.faults.armed.store(false, Ordering::Relaxed);
    }

    /// Writes a [`Saga::fresh`] (inside the transaction that makes its subject, so a
    /// request and its saga exist together or not at all).
    pub async fn insert_saga(&self, conn: &mut sqlx::AnyConnection, s: &Saga) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, kind, subject, step, state, data, created_at, updated_at, entered) VALUES ($1, $2, $3, 0, 'running', $4, $5, $5, $6)",
            self.table
        ))
        .bind(s.id.as_str())
        .bind(&s.kind)
        .bind(&s.subject)
        .bind(s.data.to_string())
        .bind(&s.updated_at)
        .bind(serde_json::to_string(s.entered.as_deref().unwrap_or_default()).unwrap_or_else(|_| "[]".into()))
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &SagaId) -> Result<Option<Saga>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1", self.table))
            .bind(id.as_str())
            .fetch_optional(&self.db.reads)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let decode = |what: &str, e: serde_json::Error| sqlx::Error::Decode(format!("saga {id} {what}: {e}").into());
        let entered = match r.opt_text("entered") {
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| decode("entered", e))?),
            None => None,
        };
        Ok(Some(Saga {
            id: SagaId(r.text("id")),
            kind: r.text("kind"),
            subject: r.text("subject"),
            step: r.int("step"),
            state: SagaState::parse(&r.text("state"))?,
            data: serde_json::from_str(&r.text("data")).map_err(|e| decode("data", e))?,
            error: r.text("error"),
            entered,
            attempts: r.int("attempts"),
            last_error: r.text("last_error"),
            stuck_at: r.opt_text("stuck_at"),
            rev: r.int("rev"),
            updated_at: r.text("updated_at"),
            scratch: None,
            fresh: false,
            unbroken: false,
        }))
    }

    /// Unfinished sagas (ids), stuck ones included, optionally only those of one subject.
    pub async fn unfinished(&self, subject: Option<&str>) -> Result<Vec<SagaId>, sqlx::Error> {
        self.ids_where(subject, "").await
    }

    /// Stuck sagas (ids): unfinished, no longer retried.
    pub async fn stuck(&self) -> Result<Vec<SagaId>, sqlx::Error> {
        self.ids_where(None, " AND stuck_at IS NOT NULL").await
    }

    async fn ids_where(&self, subject: Option<&str>, more: &str) -> Result<Vec<SagaId>, sqlx::Error> {
        let sql = format!(
            "SELECT id FROM {} WHERE state IN ('running', 'unwinding'){more}{} ORDER BY created_at",
            self.table,
            if subject.is_some() { " AND subject = $1" } else { "" }
        );
        let mut q = sqlx::query(&sql);
        if let Some(s) = subject {
            q = q.bind(s);
        }
        Ok(q.fetch_all(&self.db.reads).await?.iter().map(|r| SagaId(r.text("id"))).collect())
    }

    /// Removes finished sagas last changed before `before` (RFC 3339 text).
    pub async fn purge_finished(&self, before: &str) -> Result<u64, sqlx::Error> {
        let r =
            sqlx::query(&format!("DELETE FROM {} WHERE state IN ('done', 'failed') AND updated_at < $1", self.table))
                .bind(before)
                .execute(&self.db.pool)
                .await?;
        Ok(r.rows_affected())
    }

    /// Saves progress; false when someone else moved the saga on meanwhile.
    async fn save(&self, s: &mut Saga) -> Result<bool, sqlx::Error> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = self.write(&mut conn, s).await?;
        conn.release();
        if saved {
            s.rev += 1;
        }
        Ok(saved)
    }

    /// Records, on `conn` (the last step's transaction), that saga `s` is done; false
    /// when someone else moved the saga on meanwhile (a cancel), and the caller must
    /// then drop its transaction. Once the transaction commits, the step answers
    /// [`Outcome::Finished`]; if it fails instead, the step's error makes the runner
    /// read the saga afresh, so the copy changed here is never used. The saga's data is
    /// written as it was when the step began.
    pub async fn finish_in(&self, conn: &mut sqlx::AnyConnection, s: &mut Saga) -> Result<bool, sqlx::Error> {
        s.state = SagaState::Done;
        s.step += 1;
        self.record_in(conn, s).await
    }

    /// Records saga `s` as it stands (at the step now running, with its data as the
    /// step began) on `conn`, the step's own transaction, so that the drive stopping at
    /// [`Outcome::Pending`] costs no write of its own; the step must not change the
    /// saga's data after it. False when someone else moved the saga on meanwhile, and
    /// the caller must then drop its transaction (its error makes the runner read the
    /// saga afresh).
    pub async fn record_in(&self, conn: &mut sqlx::AnyConnection, s: &mut Saga) -> Result<bool, sqlx::Error> {
        let written = self.write(conn, s).await?;
        if written {
            s.rev += 1;
        }
        Ok(written)
    }

    /// Writes progress; progress clears the count of transient failures.
    async fn write(&self, conn: &mut sqlx::AnyConnection, s: &Saga) -> Result<bool, sqlx::Error> {
        let entered = s.entered.as_ref().map(|e| serde_json::to_string(e).unwrap_or_else(|_| "[]".into()));
        let r = sqlx::query(&format!(
            "UPDATE {} SET step = $1, state = $2, data = $3, error = $4, entered = $5, attempts = 0, stuck_at = NULL, rev = rev + 1, updated_at = $6 WHERE id = $7 AND rev = $8",
            self.table
        ))
        .bind(s.step)
        .bind(s.state.as_str())
        .bind(s.data.to_string())
        .bind(s.error.clone())
        .bind(entered)
        .bind(now_text())
        .bind(s.id.as_str())
        .bind(s.rev)
        .execute(conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Asks a running saga (stuck or not) to unwind (a delete arriving during a
    /// create). The next drive undoes what was done. False when the saga is not
    /// running forward.
    pub async fn cancel(&self, id: &SagaId, why: &str) -> Result<bool, sqlx::Error> {
        for _ in 0..5 {
            let Some(mut s) = self.get(id).await? else { return Ok(false) };
            if s.state != SagaState::Running {
                return Ok(false);
            }
            s.state = SagaState::Unwinding;
            s.error = why.to_string();
            if self.save(&mut s).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Makes a stuck saga be retried again (an operator fixed the cause). False when
    /// it is not stuck.
    pub async fn retry(&self, id: &SagaId) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(&format!(
            "UPDATE {} SET stuck_at = NULL, attempts = 0, rev = rev + 1 WHERE id = $1 AND stuck_at IS NOT NULL",
            self.table
        ))
        .bind(id.as_str())
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Drives every unfinished saga that is not stuck (after a restart, and from the
    /// sweeper).
    pub async fn resume_all(&self) -> Result<usize, sqlx::Error> {
        let ids = self.ids_where(None, " AND stuck_at IS NULL").await?;
        for id in &ids {
            self.drive(id).await;
        }
        Ok(ids.len())
    }

    /// Runs a saga in the background.
    pub fn spawn(&self, id: &SagaId) {
        let me = self.clone();
        let id = id.clone();
        tokio::spawn(async move { me.drive(&id).await });
    }

    /// Runs a saga just inserted (a [`Saga::fresh`], with whatever its first step may
    /// use in `scratch`) in the background, without reading it back.
    pub fn spawn_saga(&self, saga: Saga) {
        let me = self.clone();
        tokio::spawn(async move {
            let id = saga.id.clone();
            me.drive_from(&id, Some(saga)).await
        });
    }

    /// Runs a saga as far as it goes now (to its end, or until a step is pending or
    /// fails transiently past the retries of one drive). A drive of a saga this
    /// process is already driving only makes that drive look again once it stops.
    pub async fn drive(&self, id: &SagaId) {
        self.drive_from(id, None).await
    }

    /// [`Self::drive`], handing `scratch` to the first step: what the caller just read
    /// of the saga's subject and changed, saved or not. True when a drive started here
    /// and its first round went without error, so the step has seen `scratch` and kept
    /// what it needed of it. False, having done nothing, when this process is driving
    /// the saga already; false too when that first round failed. Then the caller must
    /// save what it holds itself and [`Self::drive`] again.
    pub async fn drive_with(&self, id: &SagaId, scratch: Box<dyn std::any::Any + Send + Sync>) -> bool {
        if !self.claim_drive(id, false) {
            return false;
        }
        let first = match self.get(id).await {
            Ok(Some(mut s)) => {
                s.scratch = Some(scratch);
                self.drive_once(id, Some(s)).await
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.into()),
        };
        let ok = first.is_ok();
        self.drive_claimed(id, first.err()).await;
        ok
    }

    /// Marks saga `id` as driven by the caller: true unless a drive runs already, in
    /// which case that drive is asked to look again when it stops (when `poke`).
    fn claim_drive(&self, id: &SagaId, poke: bool) -> bool {
        let mut active = self.active.lock().unwrap();
        if let Some(poked) = active.get_mut(id) {
            *poked |= poke;
            return false;
        }
        active.insert(id.clone(), false);
        true
    }

    async fn drive_from(&self, id: &SagaId, mut start: Option<Saga>) {
        if !self.claim_drive(id, true) {
            return;
        }
        let first = self.drive_once(id, start.take()).await;
        self.drive_claimed(id, first.err()).await
    }

    /// Goes on with a drive claimed by [`Self::claim_drive`] whose first round ended
    /// with `failed`, until the saga stops with nobody having poked it meanwhile.
    async fn drive_claimed(&self, id: &SagaId, mut failed: Option<Stop>) {
        let mut failures = 0u32;
        loop {
            match failed.take() {
                Some(Stop::Crashed) => {
                    self.active.lock().unwrap().remove(id);
                    return;
                }
                Some(Stop::Failed(e)) => {
                    failures += 1;
                    let stuck = match self.note_failure(id, &e).await {
                        Ok(stuck) => stuck,
                        Err(db) => {
                            tracing::warn!(saga = %id, error = %db, "cannot record a saga's failure");
                            false
                        }
                    };
                    // Transient trouble (a busy database, a service restarting): retry
                    // soon a few times, then leave it to the next sweep.
                    if !stuck && failures <= 6 {
                        tokio::time::sleep(backoff(failures)).await;
                        failed = self.drive_once(id, None).await.err();
                        continue;
                    }
                }
                None => {}
            }
            {
                let mut active = self.active.lock().unwrap();
                if !active.get(id).copied().unwrap_or(false) {
                    active.remove(id);
                    return;
                }
                active.insert(id.clone(), false);
            }
            failed = self.drive_once(id, None).await.err();
        }
    }

    /// Counts a transient failure; past the bound, the saga is stuck: its definition
    /// shows that on the resource, then the row says so. True when it is stuck.
    async fn note_failure(&self, id: &SagaId, e: &anyhow::Error) -> anyhow::Result<bool> {
        let message = format!("{e:#}");
        sqlx::query(&format!(
            "UPDATE {} SET attempts = attempts + 1, last_error = $1 WHERE id = $2 AND state IN ('running', 'unwinding')",
            self.table
        ))
        .bind(&message)
        .bind(id.as_str())
        .execute(&self.db.pool)
        .await?;
        let Some(s) = self.get(id).await? else { return Ok(true) };
        if s.state.finished() || s.stuck_at.is_some() {
            return Ok(true);
        }
        let max = self.max_attempts.load(Ordering::Relaxed);
        if s.attempts < max {
            tracing::warn!(saga = %id, kind = %s.kind, error = %message, attempts = s.attempts, "saga step failed; it will be retried");
            return Ok(false);
        }
        let def = self.defs.get(s.kind.as_str()).cloned().ok_or_else(|| anyhow::anyhow!("no saga kind {}", s.kind))?;
        if let Err(e) = def.stuck(&s).await {
            anyhow::bail!("cannot mark saga {id} stuck: {e}");
        }
        sqlx::query(&format!("UPDATE {} SET stuck_at = $1 WHERE id = $2 AND stuck_at IS NULL", self.table))
            .bind(now_text())
            .bind(id.as_str())
            .execute(&self.db.pool)
            .await?;
        tracing::error!(saga = %id, kind = %s.kind, subject = %s.subject, error = %message, attempts = s.attempts,
            "saga stuck: no more retries until an operator retries it or the resource is deleted");
        Ok(true)
    }

    async fn drive_once(&self, id: &SagaId, start: Option<Saga>) -> Result<(), Stop> {
        let mut s = match start {
            Some(s) => s,
            None => match self.get(id).await? {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        if s.stuck_at.is_some() {
            return Ok(());
        }
        let Some(def) = self.defs.get(s.kind.as_str()).cloned() else {
            return Err(Stop::Failed(anyhow::anyhow!("no definition for saga kind {}", s.kind)));
        };
        let names = def.names();
        let n = names.len() as i64;
        let faults = &self.faults;
        // Progress through steps that complete at once is saved when the drive stops (a
        // pending step, the end, a failure): steps are idempotent, so a crash in between
        // only repeats them, and each step costs no write of its own.
        let mut unsaved = false;
        loop {
            match s.state {
                SagaState::Done | SagaState::Failed => return Ok(()),
                SagaState::Running if s.step >= n => {
                    // `finished` first (it must be idempotent): if it fails, the saga
                    // is still unfinished and the next drive calls it again.
                    s.state = SagaState::Done;
                    def.finished(&s).await.map_err(step_stop)?;
                    self.save(&mut s).await?;
                    return Ok(());
                }
                SagaState::Running => {
                    let step = s.step.max(0) as usize;
                    let name = names[step];
                    s.enter(name);
                    let (before, rev_before) = (s.data.clone(), s.rev);
                    let result = if faults.take(|f| matches!(f, Fault::FailAt { .. }), &s.kind, Some(name)) {
                        Err(StepError::permanent(format!("injected failure at step {name}")))
                    } else if faults.take(|f| matches!(f, Fault::Transient { .. }), &s.kind, Some(name)) {
                        Err(StepError::Transient(anyhow::anyhow!("injected transient failure at step {name}")))
                    } else {
                        let mut r = def.run(step, &mut s).await;
                        // A step ran: whatever runs next may find what it did.
                        s.fresh = false;
                        // A step that recorded the saga's end cannot run again.
                        if r.is_ok()
                            && faults.take(|f| matches!(f, Fault::RunTwice { .. }), &s.kind, Some(name))
                            && r.as_ref().ok() != Some(&Outcome::Finished)
                        {
                            r = def.run(step, &mut s).await;
                        }
                        r
                    };
                    tracing::debug!(saga = %id, kind = %s.kind, step = name, ?result, "saga step");
                    let outcome = match result {
                        Ok(o) => o,
                        Err(StepError::Transient(e)) => return Err(Stop::Failed(e)),
                        Err(StepError::Permanent(why)) => {
                            // Undos read what they need afresh.
                            s.scratch = None;
                            s.state = SagaState::Unwinding;
                            s.error = why;
                            if !self.save(&mut s).await? {
                                return Ok(());
                            }
                            continue;
                        }
                    };
                    // A crash after a step that recorded the saga's end loses nothing.
                    if faults.take(|f| matches!(f, Fault::CrashAfter { .. }), &s.kind, Some(name))
                        && outcome != Outcome::Finished
                    {
                        return Err(Stop::Crashed);
                    }
                    match outcome {
                        Outcome::Next => {
                            s.step += 1;
                            unsaved = true;
                            continue;
                        }
                        Outcome::Goto(to) => {
                            let Some(k) = names.iter().position(|n| *n == to) else {
                                return Err(Stop::Failed(anyhow::anyhow!("step {name} went to unknown step {to}")));
                            };
                            s.step = k as i64;
                        }
                        Outcome::Finished => {
                            if s.state != SagaState::Done {
                                return Err(Stop::Failed(anyhow::anyhow!(
                                    "step {name} answered Finished without recording the end"
                                )));
                            }
                            return Ok(());
                        }
                        Outcome::Pending => {
                            // Unless the step recorded the saga itself (`record_in`).
                            if s.rev == rev_before && (unsaved || s.data != before) {
                                self.save(&mut s).await?;
                            }
                            return Ok(());
                        }
                    }
                    unsaved = false;
                    if !self.save(&mut s).await? {
                        return Ok(());
                    }
                }
                SagaState::Unwinding => {
                    // The newest entered step first; a row from before entered steps
                    // were recorded undoes every step up to where it was.
                    let top = match &s.entered {
                        Some(e) => e.last().and_then(|name| names.iter().position(|n| n == name)),
                        None => (s.step >= 0).then(|| s.step.min(n - 1) as usize),
                    };
                    let Some(step) = top else {
                        if s.entered.as_ref().is_some_and(|e| !e.is_empty()) {
                            // A step no longer defined: nothing to undo it with.
                            s.entered.as_mut().map(Vec::pop);
                            continue;
                        }
                        s.state = SagaState::Failed;
                        def.finished(&s).await.map_err(step_stop)?;
                        self.save(&mut s).await?;
                        return Ok(());
                    };
                    s.step = step as i64;
                    def.undo(step, &mut s).await.map_err(step_stop)?;
                    if faults.take(|f| matches!(f, Fault::UndoTwice { .. }), &s.kind, None) {
                        def.undo(step, &mut s).await.map_err(step_stop)?;
                    }
                    match &mut s.entered {
                        Some(e) => {
                            e.pop();
                        }
                        None => s.step = step as i64 - 1,
                    }
                    if !self.save(&mut s).await? {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// An undo or an end that fails is retried, whatever its kind: there is nothing left
/// to unwind to.
fn step_stop(e: StepError) -> Stop {
    match e {
        StepError::Transient(e) => Stop::Failed(e),
        StepError::Permanent(m) => Stop::Failed(anyhow::anyhow!(m)),
    }
}

/// The wait before retry `n` (from 1): 50 ms doubling, capped at 5 s, ±50 % jitter so
/// that sagas failing together do not retry together.
fn backoff(n: u32) -> Duration {
    let base = (50u64 << n.min(7)).min(5_000);
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u64;
    Duration::from_millis(base / 2 + base * jitter / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    /// One step that goes on when handed the word "go", fails on "fail" and waits
    /// otherwise; `hold` keeps a drive inside the step. Then two steps that count.
    #[derive(Default)]
    struct Waiter {
        hold: tokio::sync::Mutex<()>,
        seen: Mutex<Vec<String>>,
        undone: Mutex<Vec<&'static str>>,
        stuck: Mutex<u32>,
    }

    #[derive(Default, Serialize, Deserialize)]
    struct Count {
        runs: u32,
    }

    fn wait<'a>(w: &'a Waiter, saga: &'a mut Saga, _: &'a mut Count) -> StepFuture<'a, Outcome> {
        Box::pin(async move {
            let word = saga.take_scratch::<String>().unwrap_or_default();
            w.seen.lock().unwrap().push(word.clone());
            let _held = w.hold.lock().await;
            match word.as_str() {
                "go" => Ok(Outcome::Next),
                "fail" => Err(StepError::Transient(anyhow::anyhow!("the step failed"))),
                "refuse" => Err(StepError::permanent("refused")),
                _ => Ok(Outcome::Pending),
            }
        })
    }

    const STEPS: &[Step<Waiter>] = &[
        Step {
            name: "wait",
            run: wait,
            undo: |w, _, _| {
                Box::pin(async move {
                    w.undone.lock().unwrap().push("wait");
                    Ok(())
                })
            },
        },
        Step {
            name: "count",
            run: |_, _, data| {
                Box::pin(async move {
                    data.runs += 1;
                    Ok(Outcome::Next)
                })
            },
            undo: |w, _, _| {
                Box::pin(async move {
                    w.undone.lock().unwrap().push("count");
                    Ok(())
                })
            },
        },
        Step { name: "last", run: |_, _, _| Box::pin(async { Ok(Outcome::Next) }), undo: nothing_to_undo },
    ];

    impl SagaDef for Waiter {
        type Data = Count;

        fn kind(&self) -> &'static str {
            "wait"
        }

        fn steps(&self) -> &'static [Step<Self>] {
            STEPS
        }

        fn stuck<'a>(&'a self, _saga: &'a Saga) -> StepFuture<'a, ()> {
            Box::pin(async move {
                *self.stuck.lock().unwrap() += 1;
                Ok(())
            })
        }
    }

    async fn runner(engine: crate::db::Engine) -> (SagaRunner, Arc<Waiter>, SagaId) {
        let db = testing::fresh(engine).await;
        for sql in saga_table_sql("test_sagas").split(';') {
            sqlx::query(sql).execute(&db.pool).await.unwrap();
        }
        let waiter = Arc::new(Waiter::default());
        let runner = SagaRunner::new(db.clone(), "test_sagas", vec![waiter.clone().into()]);
        let id = new_saga(&runner).await;
        (runner, waiter, id)
    }

    async fn new_saga(runner: &SagaRunner) -> SagaId {
        let saga = Saga::fresh(Saga::new_id(), "wait", "subject", &Count::default());
        let mut tx = runner.db.pool.begin().await.unwrap();
        runner.insert_saga(&mut tx, &saga).await.unwrap();
        tx.commit().await.unwrap();
        saga.id
    }

    fn seen(w: &Waiter) -> Vec<String> {
        w.seen.lock().unwrap().clone()
    }

    async fn state(runner: &SagaRunner, id: &SagaId) -> SagaState {
        runner.get(id).await.unwrap().unwrap().state
    }

    #[tokio::test]
    async fn a_row_in_an_unknown_state_is_an_error_not_a_guess() {
        let (runner, _, id) = runner(crate::db::Engine::Sqlite).await;
        sqlx::query("UPDATE test_sagas SET state = 'halfway' WHERE id = $1")
            .bind(id.as_str())
            .execute(&runner.db.pool)
            .await
            .unwrap();
        let err = runner.get(&id).await.unwrap_err().to_string();
        assert!(err.contains("halfway"), "{err}");
        assert_eq!(SagaState::parse("failed").unwrap(), SagaState::Failed);
    }

    #[tokio::test]
    async fn drive_with_hands_the_scratch_to_the_step() {
        for engine in testing::engines() {
            let (runner, waiter, id) = runner(engine).await;
            runner.drive(&id).await;
            assert_eq!(state(&runner, &id).await, SagaState::Running);
            assert!(runner.drive_with(&id, Box::new("go".to_string())).await);
            assert_eq!(seen(&waiter), ["", "go"]);
            let s = runner.get(&id).await.unwrap().unwrap();
            assert_eq!(s.state, SagaState::Done);
            assert_eq!(s.data_as::<Count>().unwrap().runs, 1, "typed data written back");
            assert_eq!(s.entered.unwrap(), ["wait", "count", "last"]);
        }
    }

    #[tokio::test]
    async fn drive_with_gives_up_while_the_saga_is_being_driven() {
        for engine in testing::engines() {
            let (runner, waiter, id) = runner(engine).await;
            let held = waiter.hold.lock().await;
            let busy = tokio::spawn({
                let (runner, id) = (runner.clone(), id.clone());
                async move { runner.drive(&id).await }
            });
            while seen(&waiter).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            // The step never sees the word: the caller must keep it another way.
            assert!(!runner.drive_with(&id, Box::new("go".to_string())).await);
            drop(held);
            busy.await.unwrap();
            assert_eq!(seen(&waiter), [""]);
            assert_eq!(state(&runner, &id).await, SagaState::Running);
            assert!(runner.drive_with(&id, Box::new("go".to_string())).await);
            assert_eq!(state(&runner, &id).await, SagaState::Done);
        }
    }

    #[tokio::test]
    async fn drive_with_reports_a_failed_first_round() {
        for engine in testing::engines() {
            let (runner, waiter, id) = runner(engine).await;
            assert!(!runner.drive_with(&id, Box::new("fail".to_string())).await);
            // The drive retried without the word, and the saga waits.
            assert_eq!(seen(&waiter), ["fail", ""]);
            let s = runner.get(&id).await.unwrap().unwrap();
            assert_eq!(s.state, SagaState::Running);
            assert_eq!((s.attempts, s.last_error.as_str()), (1, "the step failed"), "counted, with its reason");
        }
    }

    #[tokio::test]
    async fn a_permanent_error_unwinds_only_the_entered_steps_newest_first() {
        let (runner, waiter, id) = runner(crate::db::Engine::Sqlite).await;
        // Goes through "wait" and "count", then fails for good at "last".
        runner.inject(Fault::FailAt { kind: "wait".into(), step: "last".into() });
        assert!(runner.drive_with(&id, Box::new("go".to_string())).await);
        let s = runner.get(&id).await.unwrap().unwrap();
        assert_eq!(s.state, SagaState::Failed);
        assert!(s.error.contains("injected failure at step last"), "{}", s.error);
        assert_eq!(*waiter.undone.lock().unwrap(), ["count", "wait"]);
        // A saga refused at its first step undoes only that step.
        waiter.undone.lock().unwrap().clear();
        let other = new_saga(&runner).await;
        assert!(runner.drive_with(&other, Box::new("refuse".to_string())).await);
        assert_eq!(state(&runner, &other).await, SagaState::Failed);
        assert_eq!(*waiter.undone.lock().unwrap(), ["wait"]);
    }

    #[tokio::test]
    async fn transient_errors_are_bounded_then_the_saga_is_stuck() {
        let (runner, waiter, id) = runner(crate::db::Engine::Sqlite).await;
        runner.set_max_attempts(3);
        runner.inject(Fault::Transient { kind: "wait".into(), step: "wait".into() });
        runner.drive(&id).await;
        let s = runner.get(&id).await.unwrap().unwrap();
        assert_eq!((s.state, s.attempts), (SagaState::Running, 3));
        assert!(s.stuck_at.is_some());
        assert!(s.last_error.contains("injected transient"), "{}", s.last_error);
        assert_eq!(*waiter.stuck.lock().unwrap(), 1, "the definition showed it once");
        // The sweeper leaves it alone; it still counts as unfinished for its subject.
        assert_eq!(runner.resume_all().await.unwrap(), 0);
        assert_eq!(runner.stuck().await.unwrap(), std::slice::from_ref(&id));
        assert_eq!(runner.unfinished(Some("subject")).await.unwrap(), std::slice::from_ref(&id));
        // An operator's retry, with the cause gone, goes on.
        runner.clear_faults();
        assert!(runner.retry(&id).await.unwrap());
        assert!(runner.drive_with(&id, Box::new("go".to_string())).await);
        let s = runner.get(&id).await.unwrap().unwrap();
        assert_eq!((s.state, s.attempts, s.stuck_at), (SagaState::Done, 0, None));
        // A stuck saga can still be cancelled: it unwinds.
        let other = new_saga(&runner).await;
        runner.inject(Fault::Transient { kind: "wait".into(), step: "wait".into() });
        runner.drive(&other).await;
        assert!(runner.get(&other).await.unwrap().unwrap().stuck_at.is_some());
        runner.clear_faults();
        assert!(runner.cancel(&other, "deleted").await.unwrap());
        runner.drive(&other).await;
        assert_eq!(state(&runner, &other).await, SagaState::Failed);
    }

    #[tokio::test]
    async fn unreadable_data_is_a_permanent_error() {
        let (runner, _, id) = runner(crate::db::Engine::Sqlite).await;
        sqlx::query("UPDATE test_sagas SET data = '{\"runs\": \"many\"}' WHERE id = $1")
            .bind(id.as_str())
            .execute(&runner.db.pool)
            .await
            .unwrap();
        runner.drive(&id).await;
        let s = runner.get(&id).await.unwrap().unwrap();
        assert_eq!(s.state, SagaState::Failed);
        assert!(s.error.contains("cannot be read"), "{}", s.error);
    }

    #[tokio::test]
    async fn a_crash_after_a_step_loses_only_unsaved_progress() {
        let (runner, waiter, id) = runner(crate::db::Engine::Sqlite).await;
        runner.inject(Fault::CrashAfter { kind: "wait".into(), step: "count".into() });
        assert!(!runner.drive_with(&id, Box::new("go".to_string())).await, "the drive died");
        let s = runner.get(&id).await.unwrap().unwrap();
        assert_eq!((s.state, s.step), (SagaState::Running, 0), "nothing was written");
        // After the "restart" the saga runs from its last record: the first step waits.
        assert_eq!(runner.resume_all().await.unwrap(), 1);
        assert_eq!(seen(&waiter), ["go", ""]);
        assert!(runner.drive_with(&id, Box::new("go".to_string())).await);
        assert_eq!(state(&runner, &id).await, SagaState::Done);
    }

    #[tokio::test]
    async fn rows_from_before_entered_steps_were_recorded_unwind_every_step() {
        let (runner, waiter, id) = runner(crate::db::Engine::Sqlite).await;
        sqlx::query("UPDATE test_sagas SET entered = NULL, step = 1, state = 'unwinding' WHERE id = $1")
            .bind(id.as_str())
            .execute(&runner.db.pool)
            .await
            .unwrap();
        runner.drive(&id).await;
        assert_eq!(state(&runner, &id).await, SagaState::Failed);
        assert_eq!(*waiter.undone.lock().unwrap(), ["count", "wait"]);
    }
}
