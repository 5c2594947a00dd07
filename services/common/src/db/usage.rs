//! Quota usage counted by a service in its own table (`<service>_usage`: `project_id`,
//! `resource`, `used`), claimed atomically against limits inside the transaction that
//! makes what it counts, so an over-quota request is refused and nothing exists.
//! Each service's migration creates the table with [`usage_table_sql`].

use super::placeholders;

/// A claim: the resource, how much more, and its limit (-1: unlimited).
pub type Claim<'a> = (&'a str, i64, i64);

/// The usage table's shape.
pub fn usage_table_sql(table: &str) -> String {
    format!(
        "CREATE TABLE {table} (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, resource)
)"
    )
}

/// Counts `amount` more of each resource for `owner` if every one stays within its
/// limit (-1: unlimited); all or nothing, inside the caller's transaction (which the
/// caller must drop on `false`). One statement when the owner's usage rows exist: an
/// update that moves only rows within their limits, and none unless every row is
/// there; when it moves none, the missing rows are made and the update runs again.
pub async fn claim(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    owner: &str,
    claims: &[Claim<'_>],
) -> Result<bool, sqlx::Error> {
    if claims.is_empty() {
        return Ok(true);
    }
    let n = claims.len() as u64;
    match add(conn, table, owner, claims).await? {
        moved if moved == n => return Ok(true),
        0 => {}
        // Some rows are over their limits: the caller drops what moved.
        _ => return Ok(false),
    }
    // Rows missing (or all over their limits): make the missing ones and try again,
    // in a new statement that also sees rows another transaction just made.
    let rows: Vec<String> = (0..claims.len()).map(|i| format!("($1, ${}, 0)", i + 2)).collect();
    let insert =
        format!("INSERT INTO {table} (project_id, resource, used) VALUES {} ON CONFLICT DO NOTHING", rows.join(", "));
    let mut q = sqlx::query(&insert).bind(owner);
    for (resource, _, _) in claims {
        q = q.bind(*resource);
    }
    q.execute(&mut *conn).await?;
    Ok(add(conn, table, owner, claims).await? == n)
}

/// The claim's update: the rows it moved, none when any of the owner's rows for these
/// resources is missing.
async fn add(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    owner: &str,
    claims: &[Claim<'_>],
) -> Result<u64, sqlx::Error> {
    // $1 the owner; claim i binds its resource, amount and limit at 3i+2 .. 3i+4.
    let pick = |offset: usize| {
        let arms: String =
            (0..claims.len()).map(|i| format!(" WHEN ${} THEN ${}", 3 * i + 2, 3 * i + 2 + offset)).collect();
        format!("(CASE resource{arms} END)")
    };
    let (amount, limit) = (pick(1), pick(2));
    let names = placeholders(claims.len(), 2, 3);
    let n = claims.len();
    let sql = format!(
        "UPDATE {table} SET used = used + {amount} WHERE project_id = $1 AND resource IN ({names}) AND ({limit} < 0 OR used + {amount} <= {limit})
         AND (SELECT COUNT(*) FROM {table} WHERE project_id = $1 AND resource IN ({names})) = {n}"
    );
    let mut q = sqlx::query(&sql).bind(owner);
    for (resource, amount, limit) in claims {
        q = q.bind(*resource).bind(*amount).bind(*limit);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected())
}

/// Counts `amount` less of each resource for `owner` (never below zero), in one statement.
pub async fn release(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    owner: &str,
    amounts: &[(&str, i64)],
) -> Result<(), sqlx::Error> {
    if amounts.is_empty() {
        return Ok(());
    }
    // $1 is the owner; resource i binds its name and amount at 2i+2 and 2i+3.
    let arms: String = (0..amounts.len()).map(|i| format!(" WHEN ${} THEN ${}", 2 * i + 2, 2 * i + 3)).collect();
    let names = placeholders(amounts.len(), 2, 2);
    let less = format!("(CASE resource{arms} END)");
    let sql = format!(
        "UPDATE {table} SET used = CASE WHEN used > {less} THEN used - {less} ELSE 0 END WHERE project_id = $1 AND resource IN ({names})"
    );
    let mut q = sqlx::query(&sql).bind(owner);
    for (resource, amount) in amounts {
        q = q.bind(*resource).bind(*amount);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// What `owner` uses, by resource.
pub async fn of(db: &super::Db, table: &str, owner: &str) -> Result<Vec<(String, i64)>, sqlx::Error> {
    use super::RowExt;
    let rows = sqlx::query(&format!("SELECT resource, used FROM {table} WHERE project_id = $1"))
        .bind(owner)
        .fetch_all(&db.reads)
        .await?;
    Ok(rows.iter().map(|r| (r.text("resource"), r.int("used"))).collect())
}
