//! Sagas: multi-step operations that survive crashes.
//!
//! A saga is a row in a service's saga table (`<service>_sagas`, see
//! [`saga_table_sql`]): its kind, the resource it acts on, the step it is at, whether it
//! is still going forward or unwinding, and a JSON document the steps share. A
//! [`SagaDef`] says what each step does and how to undo it. [`SagaRunner::drive`] runs
//! a saga from wherever its row says it is: after a crash the service calls
//! [`SagaRunner::resume_all`], and every unfinished saga goes on (or goes on unwinding).
//!
//! Rules for steps, checked by each saga's tests:
//! - a step may run more than once (a crash after it acted but before its progress was
//!   written), so it must be idempotent;
//! - an undo may also run more than once, and for a step that never ran or only half
//!   ran, so it must tolerate absent things: a failing saga undoes *every* step, last
//!   first (a step may have been passed before a `Goto` went back);
//! - a step that waits for something outside (an agent) answers [`Outcome::Pending`]:
//!   the saga stops until someone pokes it again (a result arriving, or the sweeper).
//!
//! Each write of progress checks the row's revision, so two runners (two processes
//! after a failover, or a poke racing the sweeper) never both move one saga on.

use crate::db::{now_text, Db, RowExt};
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
    updated_at TEXT NOT NULL
);
CREATE INDEX {table}_state ON {table} (state);
CREATE INDEX {table}_subject ON {table} (subject)"
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

/// One saga as stored, plus what one drive's steps hand on to each other.
pub struct Saga {
    pub id: String,
    pub kind: String,
    /// The resource the saga acts on (a server id).
    pub subject: String,
    /// The step to run next (forward) or to undo next (unwinding; -1 when all undone).
    pub step: i64,
    pub state: SagaState,
    /// What the steps share: inputs, and what each step made (so its undo can remove it).
    pub data: Value,
    /// Why the saga unwinds.
    pub error: String,
    rev: i64,
    pub updated_at: String,
    /// What a step hands on to the next step of the same drive (never stored): the
    /// resource it read and saved, so the next step need not read it again. A step
    /// only leaves something here that matches the database; only the first step of
    /// a [`SagaRunner::drive_with`] may find unsaved changes here, which it saves.
    pub scratch: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// This drive began from the saga its creator just inserted: no step ran before.
    pub fresh: bool,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Saga")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("subject", &self.subject)
            .field("step", &self.step)
            .field("state", &self.state)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Saga {
    /// A new saga at its first step, to [`SagaRunner::insert_saga`] and then
    /// [`SagaRunner::spawn_saga`] without reading it back.
    pub fn fresh(id: &str, kind: &str, subject: &str, data: Value) -> Self {
        let now = now_text();
        Self {
            id: id.to_string(),
            kind: kind.to_string(),
            subject: subject.to_string(),
            step: 0,
            state: SagaState::Running,
            data,
            error: String::new(),
            rev: 0,
            updated_at: now,
            scratch: None,
            fresh: true,
        }
    }

    /// Takes what the previous step left, if it is a `T` (for `subject`, checked by
    /// the caller).
    pub fn take_scratch<T: 'static>(&mut self) -> Option<T> {
        self.scratch.take().and_then(|b| b.downcast::<T>().ok()).map(|b| *b)
    }
}

/// What a step answers.
#[derive(Debug)]
pub enum Outcome {
    /// Done; go to the next step.
    Next,
    /// Go to another step (a retry from an earlier step, for example rescheduling).
    Goto(usize),
    /// Waiting for something outside; stop until poked.
    Pending,
    /// Cannot succeed: unwind, starting with this step's own undo.
    Fail(String),
    /// The last step is done and recorded the saga's end itself, in the transaction
    /// of its own writes ([`SagaRunner::finish_in`]): one commit less. It takes the
    /// place of [`SagaDef::finished`], which the runner then does not call.
    Finished,
}

/// What a kind of saga does.
pub trait SagaDef: Send + Sync {
    fn kind(&self) -> &'static str;
    fn steps(&self) -> &'static [&'static str];
    /// Runs step `step`; an `Err` is transient (the step is retried later).
    fn run<'a>(&'a self, step: usize, saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<Outcome>>;
    /// Undoes step `step`; an `Err` is transient.
    fn undo<'a>(&'a self, step: usize, saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Called when the saga is done or fully unwound, before that is recorded: it may
    /// run again after a crash, so it must be idempotent.
    fn finished<'a>(&'a self, saga: &'a Saga) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Stores sagas in one table and drives them.
#[derive(Clone)]
pub struct SagaRunner {
    db: Db,
    table: &'static str,
    defs: Arc<HashMap<&'static str, Arc<dyn SagaDef>>>,
    /// Sagas being driven by this process, and whether they were poked meanwhile.
    active: Arc<Mutex<HashMap<String, bool>>>,
}

impl SagaRunner {
    pub fn new(db: Db, table: &'static str, defs: Vec<Arc<dyn SagaDef>>) -> Self {
        let defs = defs.into_iter().map(|d| (d.kind(), d)).collect();
        Self { db, table, defs: Arc::new(defs), active: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// Writes a [`Saga::fresh`] (inside the transaction that makes its subject, so a
    /// request and its saga exist together or not at all).
    pub async fn insert_saga(&self, conn: &mut sqlx::AnyConnection, s: &Saga) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO {} (id, kind, subject, step, state, data, created_at, updated_at) VALUES ($1, $2, $3, 0, 'running', $4, $5, $5)",
            self.table
        ))
        .bind(&s.id)
        .bind(&s.kind)
        .bind(&s.subject)
        .bind(s.data.to_string())
        .bind(&s.updated_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub async fn get(&self, id: &str) -> Result<Option<Saga>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT * FROM {} WHERE id = $1", self.table))
            .bind(id)
            .fetch_optional(&self.db.reads)
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Saga {
            id: r.text("id"),
            kind: r.text("kind"),
            subject: r.text("subject"),
            step: r.int("step"),
            state: SagaState::parse(&r.text("state"))?,
            data: serde_json::from_str(&r.text("data"))
                .map_err(|e| sqlx::Error::Decode(format!("saga {} data: {e}", r.text("id")).into()))?,
            error: r.text("error"),
            rev: r.int("rev"),
            updated_at: r.text("updated_at"),
            scratch: None,
            fresh: false,
        }))
    }

    /// Unfinished sagas (ids), optionally only those of one subject.
    pub async fn unfinished(&self, subject: Option<&str>) -> Result<Vec<String>, sqlx::Error> {
        let sql = format!(
            "SELECT id FROM {} WHERE state IN ('running', 'unwinding'){} ORDER BY created_at",
            self.table,
            if subject.is_some() { " AND subject = $1" } else { "" }
        );
        let mut q = sqlx::query(&sql);
        if let Some(s) = subject {
            q = q.bind(s);
        }
        Ok(q.fetch_all(&self.db.reads).await?.iter().map(|r| r.text("id")).collect())
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
    /// read the saga afresh, so the copy changed here is never used.
    pub async fn finish_in(&self, conn: &mut sqlx::AnyConnection, s: &mut Saga) -> Result<bool, sqlx::Error> {
        s.state = SagaState::Done;
        s.step += 1;
        self.record_in(conn, s).await
    }

    /// Records saga `s` as it stands (at the step now running, with its data) on
    /// `conn`, the step's own transaction, so that the drive stopping at
    /// [`Outcome::Pending`] costs no write of its own; the step must not change the
    /// saga after it. False when someone else moved the saga on meanwhile, and the
    /// caller must then drop its transaction (its error makes the runner read the
    /// saga afresh).
    pub async fn record_in(&self, conn: &mut sqlx::AnyConnection, s: &mut Saga) -> Result<bool, sqlx::Error> {
        let written = self.write(conn, s).await?;
        if written {
            s.rev += 1;
        }
        Ok(written)
    }

    async fn write(&self, conn: &mut sqlx::AnyConnection, s: &Saga) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(&format!(
            "UPDATE {} SET step = $1, state = $2, data = $3, error = $4, rev = rev + 1, updated_at = $5 WHERE id = $6 AND rev = $7",
            self.table
        ))
        .bind(s.step)
        .bind(s.state.as_str())
        .bind(s.data.to_string())
        .bind(s.error.clone())
        .bind(now_text())
        .bind(s.id.clone())
        .bind(s.rev)
        .execute(conn)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Asks a running saga to unwind (a delete arriving during a create). The next
    /// drive undoes what was done. False when the saga is not running forward.
    pub async fn cancel(&self, id: &str, why: &str) -> Result<bool, sqlx::Error> {
        for _ in 0..5 {
            let Some(mut s) = self.get(id).await? else { return Ok(false) };
            if s.state != SagaState::Running {
                return Ok(false);
            }
            s.state = SagaState::Unwinding;
            s.step = i64::MAX;
            s.error = why.to_string();
            if self.save(&mut s).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Drives every unfinished saga (after a restart, and from the sweeper).
    pub async fn resume_all(&self) -> Result<usize, sqlx::Error> {
        let ids = self.unfinished(None).await?;
        for id in &ids {
            self.drive(id).await;
        }
        Ok(ids.len())
    }

    /// Runs a saga in the background.
    pub fn spawn(&self, id: &str) {
        let me = self.clone();
        let id = id.to_string();
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
    /// fails transiently). A drive of a saga this process is already driving only
    /// makes that drive look again once it stops.
    pub async fn drive(&self, id: &str) {
        self.drive_from(id, None).await
    }

    /// [`Self::drive`], handing `scratch` to the first step: what the caller just read
    /// of the saga's subject and changed, saved or not. True when a drive started here
    /// and its first round went without error, so the step has seen `scratch` and kept
    /// what it needed of it. False, having done nothing, when this process is driving
    /// the saga already; false too when that first round failed. Then the caller must
    /// save what it holds itself and [`Self::drive`] again.
    pub async fn drive_with(&self, id: &str, scratch: Box<dyn std::any::Any + Send + Sync>) -> bool {
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
    fn claim_drive(&self, id: &str, poke: bool) -> bool {
        let mut active = self.active.lock().unwrap();
        if let Some(poked) = active.get_mut(id) {
            *poked |= poke;
            return false;
        }
        active.insert(id.to_string(), false);
        true
    }

    async fn drive_from(&self, id: &str, mut start: Option<Saga>) {
        if !self.claim_drive(id, true) {
            return;
        }
        let first = self.drive_once(id, start.take()).await;
        self.drive_claimed(id, first.err()).await
    }

    /// Goes on with a drive claimed by [`Self::claim_drive`] whose first round ended
    /// with `failed`, until the saga stops with nobody having poked it meanwhile.
    async fn drive_claimed(&self, id: &str, mut failed: Option<anyhow::Error>) {
        let mut failures = 0u32;
        loop {
            if let Some(e) = failed.take() {
                failures += 1;
                tracing::warn!(saga = id, error = %format!("{e:#}"), failures, "saga step failed; it will be retried");
                // Transient trouble (a busy database, a service restarting): retry soon
                // a few times, then leave it to the next sweep.
                if failures <= 6 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << failures)).await;
                    failed = self.drive_once(id, None).await.err();
                    continue;
                }
            }
            {
                let mut active = self.active.lock().unwrap();
                if !active.get(id).copied().unwrap_or(false) {
                    active.remove(id);
                    return;
                }
                active.insert(id.to_string(), false);
            }
            failed = self.drive_once(id, None).await.err();
        }
    }

    async fn drive_once(&self, id: &str, start: Option<Saga>) -> anyhow::Result<()> {
        let mut s = match start {
            Some(s) => s,
            None => match self.get(id).await? {
                Some(s) => s,
                None => return Ok(()),
            },
        };
        let Some(def) = self.defs.get(s.kind.as_str()).cloned() else {
            anyhow::bail!("no definition for saga kind {}", s.kind);
        };
        let n = def.steps().len() as i64;
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
                    def.finished(&s).await?;
                    self.save(&mut s).await?;
                    return Ok(());
                }
                SagaState::Running => {
                    let step = s.step as usize;
                    let (before, rev_before) = (s.data.clone(), s.rev);
                    let outcome = def.run(step, &mut s).await?;
                    tracing::debug!(saga = id, kind = %s.kind, step = def.steps()[step], ?outcome, "saga step");
                    match outcome {
                        Outcome::Next => {
                            s.step += 1;
                            unsaved = true;
                            continue;
                        }
                        Outcome::Goto(k) => s.step = k as i64,
                        Outcome::Finished => {
                            if s.state != SagaState::Done {
                                anyhow::bail!("step {} answered Finished without recording the end", def.steps()[step]);
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
                        Outcome::Fail(why) => {
                            // Undos read what they need afresh.
                            s.scratch = None;
                            // Undo every step, the last first: a step reached before a
                            // Goto went back may have left something (undos tolerate
                            // steps that never ran).
                            s.state = SagaState::Unwinding;
                            s.step = n - 1;
                            s.error = why;
                        }
                    }
                    unsaved = false;
                    if !self.save(&mut s).await? {
                        return Ok(());
                    }
                }
                SagaState::Unwinding if s.step < 0 => {
                    s.state = SagaState::Failed;
                    def.finished(&s).await?;
                    self.save(&mut s).await?;
                    return Ok(());
                }
                SagaState::Unwinding => {
                    let step = (s.step.min(n - 1)) as usize;
                    def.undo(step, &mut s).await?;
                    s.step = step as i64 - 1;
                    if !self.save(&mut s).await? {
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    /// One step that goes on when handed the word "go", fails on "fail" and waits
    /// otherwise; `hold` keeps a drive inside the step.
    #[derive(Default)]
    struct Waiter {
        hold: tokio::sync::Mutex<()>,
        seen: Mutex<Vec<String>>,
    }

    impl SagaDef for Waiter {
        fn kind(&self) -> &'static str {
            "wait"
        }

        fn steps(&self) -> &'static [&'static str] {
            &["wait"]
        }

        fn run<'a>(&'a self, _step: usize, saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<Outcome>> {
            Box::pin(async move {
                let word = saga.take_scratch::<String>().unwrap_or_default();
                self.seen.lock().unwrap().push(word.clone());
                let _held = self.hold.lock().await;
                match word.as_str() {
                    "go" => Ok(Outcome::Next),
                    "fail" => anyhow::bail!("the step failed"),
                    _ => Ok(Outcome::Pending),
                }
            })
        }

        fn undo<'a>(&'a self, _step: usize, _saga: &'a mut Saga) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }

        fn finished<'a>(&'a self, _saga: &'a Saga) -> BoxFuture<'a, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }
    }

    async fn runner(engine: crate::db::Engine) -> (SagaRunner, Arc<Waiter>, String) {
        let db = testing::fresh(engine).await;
        for sql in saga_table_sql("test_sagas").split(';') {
            sqlx::query(sql).execute(&db.pool).await.unwrap();
        }
        let waiter = Arc::new(Waiter::default());
        let runner = SagaRunner::new(db.clone(), "test_sagas", vec![waiter.clone()]);
        let saga = Saga::fresh(&uuid::Uuid::new_v4().to_string(), "wait", "subject", Value::Null);
        let mut tx = db.pool.begin().await.unwrap();
        runner.insert_saga(&mut tx, &saga).await.unwrap();
        tx.commit().await.unwrap();
        (runner, waiter, saga.id)
    }

    fn seen(w: &Waiter) -> Vec<String> {
        w.seen.lock().unwrap().clone()
    }

    async fn state(runner: &SagaRunner, id: &str) -> SagaState {
        runner.get(id).await.unwrap().unwrap().state
    }

    #[tokio::test]
    async fn a_row_in_an_unknown_state_is_an_error_not_a_guess() {
        let (runner, _, id) = runner(crate::db::Engine::Sqlite).await;
        sqlx::query("UPDATE test_sagas SET state = 'halfway' WHERE id = $1")
            .bind(&id)
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
            assert_eq!(state(&runner, &id).await, SagaState::Done);
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
            assert_eq!(state(&runner, &id).await, SagaState::Running);
        }
    }
}
