//! Lists read as one JSON document built by the database, deserialised straight into
//! typed rows.
//!
//! A list of a thousand rows read row by row costs a thousand hand-overs from the
//! database driver (SQLite's worker thread sends each row to the caller) and a thousand
//! conversions into generic rows; the same list aggregated by the database into one
//! JSON array is one row, which serde turns into typed structs at once. Both engines
//! build it (`json_group_array` on SQLite, `json_agg` on PostgreSQL), in the order
//! asked.
//!
//! ```no_run
//! # async fn f(db: &stratus_common::db::Db) -> Result<(), sqlx::Error> {
//! use stratus_common::db::{Col, JsonSelect};
//! #[derive(serde::Deserialize)]
//! struct Project { id: String, enabled: bool, tags: Vec<String> }
//! const SELECT: JsonSelect = JsonSelect {
//!     columns: &[Col::Text("id"), Col::Flag("enabled"), Col::Json("tags")],
//!     from: "identity_projects WHERE ($1 IS NULL OR name = $1)",
//!     order: "name, id",
//! };
//! let projects: Vec<Project> = db.json_rows(&SELECT, &[None]).await?;
//! # Ok(()) }
//! ```

use super::{Db, Engine};
use serde::de::DeserializeOwned;
use sqlx::Row;

/// A column of a [`JsonSelect`], by how it becomes JSON.
#[derive(Debug, Clone, Copy)]
pub enum Col {
    /// Text or number as it is (NULL becomes `null`).
    Text(&'static str),
    /// An integer 0/1 column, as `false`/`true`.
    Flag(&'static str),
    /// A text column holding JSON, embedded as the JSON it holds.
    Json(&'static str),
}

/// A list read by [`Db::json_rows`]: which columns (named as the struct's fields),
/// from which table and condition (`$1`… bound in order), in which order.
#[derive(Debug, Clone, Copy)]
pub struct JsonSelect {
    pub columns: &'static [Col],
    /// The table and its `WHERE` clause, if any.
    pub from: &'static str,
    /// The `ORDER BY` list.
    pub order: &'static str,
}

impl JsonSelect {
    /// The statement for `engine`: one row, one column `j`, the JSON array.
    pub fn sql(&self, engine: Engine) -> String {
        let pairs: Vec<String> = self
            .columns
            .iter()
            .map(|c| match (c, engine) {
                (Col::Text(n), _) => format!("'{n}', {n}"),
                (Col::Flag(n), Engine::Sqlite) => {
                    format!("'{n}', json(CASE WHEN {n} <> 0 THEN 'true' ELSE 'false' END)")
                }
                (Col::Flag(n), Engine::Postgres) => format!("'{n}', {n} <> 0"),
                (Col::Json(n), Engine::Sqlite) => format!("'{n}', json({n})"),
                (Col::Json(n), Engine::Postgres) => format!("'{n}', ({n})::json"),
            })
            .collect();
        let names: Vec<&str> = self
            .columns
            .iter()
            .map(|c| match c {
                Col::Text(n) | Col::Flag(n) | Col::Json(n) => *n,
            })
            .collect();
        match engine {
            // Aggregated over an ordered subquery: SQLite keeps its order.
            Engine::Sqlite => format!(
                "SELECT json_group_array(json_object({})) AS j FROM (SELECT {} FROM {} ORDER BY {})",
                pairs.join(", "),
                names.join(", "),
                self.from,
                self.order
            ),
            Engine::Postgres => format!(
                "SELECT COALESCE(json_agg(json_build_object({}) ORDER BY {}), '[]')::text AS j FROM {}",
                pairs.join(", "),
                self.order,
                self.from
            ),
        }
    }
}

impl Db {
    /// The rows `select` names, as `T`s; `binds` are its `$1`… in order.
    pub async fn json_rows<T: DeserializeOwned>(
        &self,
        select: &JsonSelect,
        binds: &[Option<&str>],
    ) -> Result<Vec<T>, sqlx::Error> {
        let sql = select.sql(self.engine);
        let mut q = sqlx::query(&sql);
        for b in binds {
            q = q.bind(b.map(str::to_string));
        }
        let row = q.fetch_one(&self.reads).await?;
        let text: Option<String> = row.try_get("j")?;
        let text = text.unwrap_or_else(|| "[]".into());
        serde_json::from_str(&text)
            .map_err(|e| sqlx::Error::Decode(format!("rows of {} as JSON: {e}", select.from).into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Thing {
        id: String,
        n: i64,
        lit: bool,
        tags: Vec<String>,
        note: Option<String>,
    }

    const THINGS: JsonSelect = JsonSelect {
        columns: &[Col::Text("id"), Col::Text("n"), Col::Flag("lit"), Col::Json("tags"), Col::Text("note")],
        from: "things WHERE ($1 IS NULL OR id <> $1)",
        order: "n DESC, id",
    };

    #[tokio::test]
    async fn rows_come_typed_in_order_on_every_engine() {
        for engine in testing::engines() {
            let db = testing::fresh(engine).await;
            sqlx::query("CREATE TABLE things (id TEXT PRIMARY KEY, n BIGINT NOT NULL, lit BIGINT NOT NULL, tags TEXT NOT NULL, note TEXT)")
                .execute(&db.pool)
                .await
                .unwrap();
            let none: Vec<Thing> = db.json_rows(&THINGS, &[None]).await.unwrap();
            assert!(none.is_empty());
            for (id, n, on, tags, note) in [
                ("a", 1, 1, r#"["x"]"#, None),
                ("b", 2, 0, "[]", Some("it's \"quoted\"")),
                ("c", 2, 1, r#"["y","z"]"#, None),
            ] {
                sqlx::query("INSERT INTO things VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(n as i64)
                    .bind(on as i64)
                    .bind(tags)
                    .bind(note)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            let all: Vec<Thing> = db.json_rows(&THINGS, &[Some("c")]).await.unwrap();
            assert_eq!(
                all,
                [
                    Thing { id: "b".into(), n: 2, lit: false, tags: vec![], note: Some("it's \"quoted\"".into()) },
                    Thing { id: "a".into(), n: 1, lit: true, tags: vec!["x".into()], note: None },
                ],
                "{engine:?}"
            );
        }
    }
}
