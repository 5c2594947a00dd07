//! The connections to one database, lent to one task at a time.
//!
//! sqlx's own pool tests every connection on its way back (a round trip to the server,
//! or to SQLite's worker thread, after every statement run on the pool and every
//! transaction): at a few hundred requests a second that is a tenth of the database's
//! and the service's CPU. This pool skips the test when the borrower says the
//! connection finished cleanly, and keeps it where it matters:
//!
//! - a connection whose borrower did not finish (its future was dropped mid-query, or
//!   a query failed) is tested before anyone else gets it, and closed if it fails;
//! - a transaction dropped without `commit` is rolled back at once, in a task of its
//!   own, so its locks never outlive it;
//! - a connection that failed with an I/O or protocol error is closed, never lent;
//! - one idle for a minute is tested before reuse (the server may have gone), and one
//!   older than half an hour is closed on return (server-side memory stays bounded).
//!
//! Waiting borrowers queue in order (a fair semaphore), for at most 30 s.

use super::Engine;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::any::{AnyQueryResult, AnyRow};
use sqlx::{Any, AnyConnection, Connection, Describe, Either, Error, Execute, Executor};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TEST_AFTER: Duration = Duration::from_secs(60);
const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Opening a connection (with its set-up statements): a server that accepts and never
/// answers must not hold a borrower, or a pool slot, for ever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A test of an idle connection, and the background ROLLBACK or test of one returned
/// midway: past this the peer counts as dead and the connection is closed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections to one database, at most `max` at a time.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    engine: Engine,
    max: usize,
    /// Connections nobody holds, last returned on top.
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may exist.
    slots: Arc<Semaphore>,
    closed: AtomicBool,
}

struct Idle {
    conn: AnyConnection,
    born: Instant,
    since: Instant,
}

/// What a connection needs before it is lent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Return {
    /// Nothing: its last borrower finished cleanly.
    Clean,
    /// A test (its borrower did not say it finished).
    Test,
    /// A rollback (a transaction ended without commit).
    RollBack,
    /// Closing: it failed in a way that leaves it unusable.
    Close,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("engine", &self.inner.engine)
            .field("max", &self.inner.max)
            .field("idle", &self.inner.idle.lock().map(|v| v.len()).unwrap_or(0))
            .finish()
    }
}

impl Pool {
    /// A pool for `url`; opens one connection at once, so a wrong URL fails here.
    pub async fn connect(url: &str, engine: Engine, max: usize) -> Result<Self, Error> {
        let max = max.max(1);
        let pool = Pool {
            inner: Arc::new(Inner {
                url: url.to_string(),
                engine,
                max,
                idle: Mutex::new(Vec::with_capacity(max)),
                slots: Arc::new(Semaphore::new(max)),
                closed: AtomicBool::new(false),
            }),
        };
        pool.acquire().await?.release();
        Ok(pool)
    }

    /// A connection of its own until the returned guard is dropped. Call
    /// [`Conn::release`] when done, or the next borrower pays a test round trip.
    pub async fn acquire(&self) -> Result<Conn, Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        let slot = tokio::time::timeout(ACQUIRE_TIMEOUT, self.inner.slots.clone().acquire_owned())
            .await
            .map_err(|_| Error::PoolTimedOut)?
            .map_err(|_| Error::PoolClosed)?;
        loop {
            let idle = self.inner.idle.lock().expect("pool lock").pop();
            let Some(mut idle) = idle else {
                let conn = self.inner.open().await?;
                return Ok(Conn::new(conn, Instant::now(), &self.inner, slot));
            };
            // Idle ones retire after their lifetime too, not only on their way back.
            if idle.born.elapsed() >= MAX_LIFETIME {
                close(idle.conn);
                continue;
            }
            if idle.since.elapsed() >= IDLE_TEST_AFTER
                && !matches!(tokio::time::timeout(CHECK_TIMEOUT, idle.conn.ping()).await, Ok(Ok(())))
            {
                close(idle.conn);
                continue;
            }
            return Ok(Conn::new(idle.conn, idle.born, &self.inner, slot));
        }
    }

    /// A transaction on a connection of its own: `commit` it, or dropping it rolls
    /// it back.
    pub async fn begin(&self) -> Result<Tx, Error> {
        let mut conn = self.acquire().await?;
        conn.on_return = Return::RollBack;
        conn.execute("BEGIN").await?;
        Ok(Tx { conn })
    }

    /// Stops lending and closes the idle connections; those lent out close when
    /// returned.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.slots.close();
        let idle: Vec<Idle> = std::mem::take(&mut *self.inner.idle.lock().expect("pool lock"));
        for i in idle {
            close_now(i.conn).await;
        }
    }
}

impl Inner {
    async fn open(&self) -> Result<AnyConnection, Error> {
        tokio::time::timeout(CONNECT_TIMEOUT, self.open_now()).await.map_err(|_| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the database did not answer within {}s", CONNECT_TIMEOUT.as_secs()),
            ))
        })?
    }

    async fn open_now(&self) -> Result<AnyConnection, Error> {
        let mut conn = AnyConnection::connect(&self.url).await?;
        if self.engine == Engine::Sqlite {
            for pragma in [
                "PRAGMA journal_mode=WAL",
                "PRAGMA busy_timeout=10000",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
            ] {
                conn.execute(pragma).await?;
            }
        }
        Ok(conn)
    }

    fn put_back(&self, conn: AnyConnection, born: Instant) {
        if self.closed.load(Ordering::Acquire) || born.elapsed() >= MAX_LIFETIME {
            close(conn);
            return;
        }
        self.idle.lock().expect("pool lock").push(Idle { conn, born, since: Instant::now() });
    }
}

/// Closes a connection politely in the background (when there is a runtime), so the
/// server sees a goodbye rather than a reset.
fn close(conn: AnyConnection) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(close_now(conn));
    }
}

/// Says goodbye to the server, waiting at most [`CLOSE_TIMEOUT`].
async fn close_now(conn: AnyConnection) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.close()).await;
}

/// True for errors after which the connection cannot be trusted with another query:
/// I/O and protocol failures, and PostgreSQL's connection exceptions (class 08) and
/// shutdowns (57P01-57P03: the server says goodbye before it hangs up).
fn breaks_connection(e: &Error) -> bool {
    match e {
        Error::Io(_) | Error::Protocol(_) | Error::Tls(_) | Error::WorkerCrashed => true,
        Error::Database(d) => d.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// A connection lent by a [`Pool`]; derefs to sqlx's connection.
pub struct Conn {
    conn: Option<AnyConnection>,
    born: Instant,
    on_return: Return,
    pool: Arc<Inner>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Conn {
    fn new(conn: AnyConnection, born: Instant, pool: &Arc<Inner>, slot: OwnedSemaphorePermit) -> Self {
        Conn { conn: Some(conn), born, on_return: Return::Test, pool: pool.clone(), slot: Some(slot) }
    }

    /// Returns the connection, saying its work finished: the next borrower gets it
    /// without a test.
    pub fn release(mut self) {
        self.on_return = Return::Clean;
    }

    /// Records how a statement run through the pool ended.
    fn settle<T>(&mut self, r: &Result<T, Error>) {
        self.on_return = match r {
            Err(e) if breaks_connection(e) => Return::Close,
            _ => Return::Clean,
        };
    }
}

impl Deref for Conn {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("connection present until dropped")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("connection present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let (Some(mut conn), Some(slot)) = (self.conn.take(), self.slot.take()) else {
            return;
        };
        let (pool, born) = (self.pool.clone(), self.born);
        match self.on_return {
            Return::Clean => pool.put_back(conn, born),
            Return::Close => close(conn),
            fix => {
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                // The slot stays taken until the connection is fit again (or gone).
                rt.spawn(async move {
                    // Bounded: a dead peer closes the connection and frees the slot.
                    let check = async {
                        match fix {
                            Return::RollBack => match conn.execute("ROLLBACK").await {
                                // SQLite refuses a rollback with no transaction open (the
                                // commit went through): the connection is fine.
                                Ok(_) => true,
                                Err(e) => !breaks_connection(&e),
                            },
                            _ => conn.ping().await.is_ok(),
                        }
                    };
                    let ok = tokio::time::timeout(CHECK_TIMEOUT, check).await.unwrap_or(false);
                    if ok {
                        pool.put_back(conn, born);
                    } else {
                        close(conn);
                    }
                    drop(slot);
                });
            }
        }
    }
}

/// A transaction on a lent connection; derefs to sqlx's connection.
pub struct Tx {
    conn: Conn,
}

impl Tx {
    pub async fn commit(mut self) -> Result<(), Error> {
        self.conn.execute("COMMIT").await?;
        self.conn.on_return = Return::Clean;
        Ok(())
    }

    pub async fn rollback(mut self) -> Result<(), Error> {
        self.conn.execute("ROLLBACK").await?;
        self.conn.on_return = Return::Clean;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// Statements run on the pool borrow a connection for themselves. Results are
/// collected before the connection goes back (every caller reads them all anyway).
impl<'p> Executor<'p> for &'_ Pool {
    type Database = Any;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<AnyQueryResult, AnyRow>, Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        futures::stream::once(async move {
            let mut conn = pool.acquire().await?;
            let r: Result<Vec<_>, Error> = conn.fetch_many(query).try_collect().await;
            conn.settle(&r);
            r
        })
        .flat_map(|r| {
            futures::stream::iter(match r {
                Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<AnyRow>, Error>>
    where
        E: 'q + Execute<'q, Any>,
    {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let r = conn.fetch_optional(query).await;
            conn.settle(&r);
            r
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [sqlx::any::AnyTypeInfo],
    ) -> BoxFuture<'e, Result<sqlx::any::AnyStatement<'q>, Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let r = conn.prepare_with(sql, parameters).await;
            conn.settle(&r);
            r
        })
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Any>, Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let r = conn.describe(sql).await;
            conn.settle(&r);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use sqlx::Row;

    async fn count(pool: &Pool) -> i64 {
        sqlx::query("SELECT COUNT(*) AS n FROM t").fetch_one(pool).await.unwrap().get::<i64, _>("n")
    }

    fn idle(pool: &Pool) -> usize {
        pool.inner.idle.lock().unwrap().len()
    }

    #[tokio::test]
    async fn a_dropped_transaction_rolls_back_at_once_and_frees_its_locks() {
        for engine in testing::engines() {
            let db = testing::fresh(engine).await;
            sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY)").execute(&db.pool).await.unwrap();
            let mut tx = db.pool.begin().await.unwrap();
            sqlx::query("INSERT INTO t (id) VALUES ('a')").execute(&mut *tx).await.unwrap();
            drop(tx);
            // Would block on the uncommitted key (PostgreSQL) or the write lock (SQLite's
            // single writer) if the first transaction were still open.
            let mut tx = tokio::time::timeout(Duration::from_secs(5), db.pool.begin()).await.unwrap().unwrap();
            tokio::time::timeout(
                Duration::from_secs(5),
                sqlx::query("INSERT INTO t (id) VALUES ('a')").execute(&mut *tx),
            )
            .await
            .unwrap()
            .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(count(&db.pool).await, 1, "{engine:?}");
            let tx = db.pool.begin().await.unwrap();
            tx.rollback().await.unwrap();
            assert_eq!(count(&db.pool).await, 1, "{engine:?}");
        }
    }

    #[tokio::test]
    async fn a_connection_that_finished_cleanly_goes_straight_back() {
        for engine in testing::engines() {
            let db = testing::fresh(engine).await;
            sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY)").execute(&db.pool).await.unwrap();
            assert_eq!(idle(&db.pool), 1);
            let mut conn = db.pool.acquire().await.unwrap();
            sqlx::query("INSERT INTO t (id) VALUES ('a')").execute(&mut *conn).await.unwrap();
            conn.release();
            assert_eq!(idle(&db.pool), 1, "{engine:?}: no test pending");
            let tx = db.pool.begin().await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(idle(&db.pool), 1, "{engine:?}");
            // Not released: tested in the background, then back.
            drop(db.pool.acquire().await.unwrap());
            let back = async {
                while idle(&db.pool) == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(5), back).await.unwrap();
        }
    }

    #[tokio::test]
    async fn borrowers_wait_for_a_free_connection() {
        let db = testing::fresh(Engine::Sqlite).await;
        // The SQLite writer pool has one connection.
        let held = db.pool.acquire().await.unwrap();
        let pool = db.pool.clone();
        let waiter = tokio::spawn(async move { pool.acquire().await.map(Conn::release) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        held.release();
        tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_query_abandoned_midway_does_not_confuse_the_next_borrower() {
        let Some(url) = testing::postgres_url() else { return };
        sqlx::any::install_default_drivers();
        let pool = Pool::connect(&url, Engine::Postgres, 1).await.unwrap();
        let slow = sqlx::query("SELECT pg_sleep(0.3)").execute(&pool);
        assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err());
        for n in 0..3i64 {
            let row = sqlx::query("SELECT CAST($1 AS BIGINT) + 1 AS n").bind(n).fetch_one(&pool).await.unwrap();
            assert_eq!(row.get::<i64, _>("n"), n + 1);
        }
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_never_lent_again() {
        let Some(url) = testing::postgres_url() else { return };
        sqlx::any::install_default_drivers();
        let pool = Pool::connect(&url, Engine::Postgres, 1).await.unwrap();
        let admin = Pool::connect(&url, Engine::Postgres, 1).await.unwrap();
        let pid: i32 = sqlx::query("SELECT pg_backend_pid() AS p").fetch_one(&pool).await.unwrap().get("p");
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&admin).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The first query finds the connection gone; the pool opens a new one after.
        let first = sqlx::query("SELECT 1 AS one").fetch_one(&pool).await;
        assert!(first.is_err());
        let again: i32 = sqlx::query("SELECT pg_backend_pid() AS p").fetch_one(&pool).await.unwrap().get("p");
        assert_ne!(again, pid);
        pool.close().await;
        assert!(matches!(pool.acquire().await, Err(Error::PoolClosed)));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_fails_the_connect_within_its_bound() {
        sqlx::any::install_default_drivers();
        // Accepts connections and says nothing, like a host whose database hung.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((c, _)) = listener.accept().await {
                open.push(c);
            }
        });
        let started = Instant::now();
        let url = format!("postgres://postgres@127.0.0.1:{port}/test");
        let r = tokio::time::timeout(CONNECT_TIMEOUT * 2, Pool::connect(&url, Engine::Postgres, 1)).await;
        let Err(err) = r.expect("bounded by the connect timeout") else { panic!("no pool from a silent server") };
        assert!(err.to_string().contains("did not answer"), "{err}");
        assert!(started.elapsed() >= CONNECT_TIMEOUT);
        held.abort();
    }
}
