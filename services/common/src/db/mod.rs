//! The relational database every service keeps its state in.
//!
//! One schema shared by all services, each owning its own tables. Queries go through
//! sqlx's `Any` driver so the same SQL runs on SQLite (the default, a file in the data
//! directory) and PostgreSQL (production). Portable SQL rules, enforced by review and by
//! running every store test on both engines:
//! - placeholders are `$1, $2, ...`;
//! - ids and timestamps are `TEXT` (timestamps as RFC 3339 UTC with microseconds, so
//!   they sort as text); integers and booleans are `BIGINT` (0/1), because `Any`
//!   cannot decode SQLite's `BOOLEAN`;
//! - JSON documents are `TEXT`;
//! - upserts use `ON CONFLICT ... DO NOTHING/UPDATE`, which both engines accept.

mod json_rows;
mod pool;
pub mod usage;

pub use json_rows::{Col, JsonSelect};
pub use pool::{Conn, Pool, Tx};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Which engine a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A pool of connections plus the engine it talks to.
///
/// SQLite lets one connection write at a time; others wanting to write sleep in its
/// busy handler (1 ms, then longer, and a busy writer can starve them for over 100
/// ms). So for SQLite `pool`, which every write and transaction uses, has a single
/// connection: writers queue in the process, in order. Reads that need no
/// transaction can use `reads`, more connections that see every committed write.
/// For PostgreSQL both are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: Pool,
    pub reads: Pool,
    pub engine: Engine,
}

/// One schema change owned by one service. Versions count up from 1 per service.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub service: &'static str,
    pub version: i64,
    pub name: &'static str,
    /// Statements separated by `;` at the end of a line.
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database error")]
    Sqlx(#[from] sqlx::Error),
    #[error("unsupported database URL {0:?}: use sqlite://... or postgres://...")]
    UnsupportedUrl(String),
    #[error("migration {service} {version} ({name}) failed")]
    Migration { service: String, version: i64, name: String, source: sqlx::Error },
}

impl Db {
    /// Connects to `url`, creating the SQLite file (and its folder) when needed.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            return Err(DbError::UnsupportedUrl(url.to_string()));
        };
        if engine == Engine::Sqlite {
            if let Some(path) = sqlite_path(url) {
                if let Some(parent) = std::path::Path::new(&path).parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
            }
        }
        if engine == Engine::Postgres {
            let pool = Pool::connect(url, engine, max_connections as usize).await?;
            return Ok(Self { reads: pool.clone(), pool, engine });
        }
        let pool = Pool::connect(url, engine, 1).await?;
        let reads = Pool::connect(url, engine, max_connections as usize).await?;
        Ok(Self { pool, reads, engine })
    }

    /// Applies the migrations not yet recorded in `schema_migrations`, in order.
    pub async fn migrate(&self, migrations: &[Migration]) -> Result<usize, DbError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                service TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL,
                applied_at TEXT NOT NULL, PRIMARY KEY (service, version))",
        )
        .execute(&self.pool)
        .await?;
        let mut applied = 0;
        for m in migrations {
            let done: Option<AnyRow> =
                sqlx::query("SELECT version FROM schema_migrations WHERE service = $1 AND version = $2")
                    .bind(m.service)
                    .bind(m.version)
                    .fetch_optional(&self.pool)
                    .await?;
            if done.is_some() {
                continue;
            }
            let wrap = |source| DbError::Migration {
                service: m.service.into(),
                version: m.version,
                name: m.name.into(),
                source,
            };
            let mut tx = self.pool.begin().await.map_err(wrap)?;
            for stmt in split_statements(m.sql) {
                sqlx::query(&stmt).execute(&mut *tx).await.map_err(wrap)?;
            }
            // Two processes migrating at once: the loser's insert fails and rolls back.
            sqlx::query("INSERT INTO schema_migrations (service, version, name, applied_at) VALUES ($1, $2, $3, $4)")
                .bind(m.service)
                .bind(m.version)
                .bind(m.name)
                .bind(now_text())
                .execute(&mut *tx)
                .await
                .map_err(wrap)?;
            tx.commit().await.map_err(wrap)?;
            tracing::info!(service = m.service, version = m.version, name = m.name, "migration applied");
            applied += 1;
        }
        Ok(applied)
    }
}

fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

/// `count` bind placeholders for a statement's text, comma-separated: `$first`, then
/// every `stride`-th after it (`placeholders(3, 2, 2)` is `$2, $4, $6`).
pub fn placeholders(count: usize, first: usize, stride: usize) -> String {
    (0..count).map(|i| format!("${}", first + i * stride)).collect::<Vec<_>>().join(", ")
}

fn split_statements(sql: &str) -> Vec<String> {
    sql.split(";\n").map(|s| s.trim().trim_end_matches(';').trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Now as stored in the database: RFC 3339, UTC, microseconds, `Z`.
pub fn now_text() -> String {
    time_text(chrono::Utc::now())
}

/// A time as stored in the database.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses a stored time.
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Typed access to a row's columns by name, portable over both engines.
/// Typed readers of a row's columns. A column the row does not have (a misspelt name, a
/// query that forgot it) is a bug, never a silent `""` or `0`: the reader panics naming
/// the column, and the tests that run every query find it. A SQL NULL reads as the
/// empty value (`""`, `0`, `false`), or `None` from the `opt_` readers.
pub trait RowExt {
    fn text(&self, col: &str) -> String;
    fn opt_text(&self, col: &str) -> Option<String>;
    fn int(&self, col: &str) -> i64;
    fn opt_int(&self, col: &str) -> Option<i64>;
    fn flag(&self, col: &str) -> bool;
}

/// A column the row lacks is a bug in the query: panic naming it and what the row has.
fn missing_column(row: &AnyRow, col: &str) -> ! {
    use sqlx::Column;
    let have: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
    panic!("the query's rows have no column {col:?} (they have {have:?})");
}

impl RowExt for AnyRow {
    fn text(&self, col: &str) -> String {
        self.opt_text(col).unwrap_or_default()
    }
    fn opt_text(&self, col: &str) -> Option<String> {
        match self.try_get::<Option<String>, _>(col) {
            Ok(v) => v,
            Err(sqlx::Error::ColumnNotFound(_)) => missing_column(self, col),
            Err(_) => None,
        }
    }
    fn int(&self, col: &str) -> i64 {
        self.opt_int(col).unwrap_or_default()
    }
    fn opt_int(&self, col: &str) -> Option<i64> {
        match self.try_get::<Option<i64>, _>(col) {
            Ok(v) => v,
            Err(sqlx::Error::ColumnNotFound(_)) => missing_column(self, col),
            Err(_) => self.try_get::<Option<i32>, _>(col).ok().flatten().map(i64::from),
        }
    }
    fn flag(&self, col: &str) -> bool {
        self.int(col) != 0
    }
}

/// Whether an error is a unique-constraint violation (a duplicate).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.kind() == sqlx::error::ErrorKind::UniqueViolation
                || db.message().contains("UNIQUE constraint failed")
                || db.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}

/// Whether an error is a foreign-key violation (a reference to something gone).
pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
                || db.message().contains("FOREIGN KEY constraint failed")
                || db.code().as_deref() == Some("23503")
        }
        _ => false,
    }
}

/// Test support: a fresh database for one test. PostgreSQL when `STRATUS_TEST_POSTGRES`
/// names a server (a new schema per test, dropped with the server), else a SQLite file
/// in a temporary folder.
pub mod testing {
    use super::*;

    /// Which engines the test run covers: always SQLite, PostgreSQL when configured.
    pub fn engines() -> Vec<Engine> {
        let mut v = vec![Engine::Sqlite];
        if postgres_url().is_some() {
            v.push(Engine::Postgres);
        }
        v
    }

    pub fn postgres_url() -> Option<String> {
        std::env::var("STRATUS_TEST_POSTGRES").ok().filter(|s| !s.is_empty())
    }

    /// A new empty database on `engine`.
    pub async fn fresh(engine: Engine) -> Db {
        match engine {
            Engine::Sqlite => {
                let dir = std::env::temp_dir().join(format!("stratus-test-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.join("db.sqlite").display());
                Db::connect(&url, 4).await.unwrap()
            }
            Engine::Postgres => {
                let base = postgres_url().expect("STRATUS_TEST_POSTGRES");
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let admin = Db::connect(&base, 1).await.unwrap();
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin.pool).await.unwrap();
                admin.pool.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
                Db::connect(&url, 4).await.unwrap()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_refuse_a_column_the_row_does_not_have() {
        let db = testing::fresh(Engine::Sqlite).await;
        let row =
            sqlx::query("SELECT 'x' AS name, CAST(NULL AS TEXT) AS note, 7 AS n").fetch_one(&db.pool).await.unwrap();
        assert_eq!((row.text("name"), row.opt_text("note"), row.int("n")), ("x".to_string(), None, 7));
        assert_eq!(row.text("note"), "", "NULL reads as empty");
        let misspelt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| row.text("nmae")));
        let message = *misspelt.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("\"nmae\"") && message.contains("name"), "{message}");
        assert!(std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| row.int("count"))).is_err());
    }

    #[test]
    fn placeholders_follow_the_stride() {
        assert_eq!(placeholders(3, 2, 2), "$2, $4, $6");
        assert_eq!(placeholders(2, 1, 1), "$1, $2");
        assert_eq!(placeholders(0, 1, 1), "");
    }

    const M: &[Migration] = &[
        Migration {
            service: "t",
            version: 1,
            name: "things",
            sql: "CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL, flag BIGINT NOT NULL);\nCREATE INDEX things_n ON things (n);",
        },
        Migration { service: "t", version: 2, name: "more", sql: "ALTER TABLE things ADD COLUMN note TEXT;" },
    ];

    #[tokio::test]
    async fn migrations_apply_once_and_rows_decode_on_every_engine() {
        for engine in testing::engines() {
            let db = testing::fresh(engine).await;
            assert_eq!(db.migrate(M).await.unwrap(), 2);
            assert_eq!(db.migrate(M).await.unwrap(), 0);
            sqlx::query("INSERT INTO things (id, n, flag, note) VALUES ($1, $2, $3, $4)")
                .bind("a")
                .bind(42i64)
                .bind(1i64)
                .bind(None::<String>)
                .execute(&db.pool)
                .await
                .unwrap();
            let row = sqlx::query("SELECT * FROM things").fetch_one(&db.pool).await.unwrap();
            assert_eq!(row.text("id"), "a");
            assert_eq!(row.int("n"), 42);
            assert!(row.flag("flag"));
            assert_eq!(row.opt_text("note"), None);
            let dup =
                sqlx::query("INSERT INTO things (id, n, flag) VALUES ('a', 1, 0)").execute(&db.pool).await.unwrap_err();
            assert!(is_unique_violation(&dup), "{engine:?}: {dup}");
        }
    }

    #[test]
    fn times_sort_as_text() {
        let a = time_text(chrono::Utc::now());
        let b = time_text(chrono::Utc::now() + chrono::Duration::milliseconds(1));
        assert!(a < b);
        assert!(parse_time(&a).is_some());
    }
}
