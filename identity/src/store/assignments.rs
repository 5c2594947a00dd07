use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

/// Who holds a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    User(String),
    Group(String),
}

/// Where a role is held.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Project(String),
    Domain(String),
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Assignment {
    pub actor: Actor,
    pub target: Target,
    pub role_id: String,
    /// OS-INHERIT: the role is not held on the target but on every project under it
    /// (a domain's projects, a project's subtree).
    pub inherited: bool,
}

impl Actor {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Actor::User(id) => ("user", id),
            Actor::Group(id) => ("group", id),
        }
    }
}

impl Target {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Target::Project(id) => ("project", id),
            Target::Domain(id) => ("domain", id),
            Target::System => ("system", "all"),
        }
    }
}

impl Assignment {
    fn from_row(r: &AnyRow) -> Self {
        let actor_id = r.text("actor_id");
        let target_id = r.text("target_id");
        Self {
            actor: if r.text("actor_type") == "group" { Actor::Group(actor_id) } else { Actor::User(actor_id) },
            target: match r.text("target_type").as_str() {
                "project" => Target::Project(target_id),
                "domain" => Target::Domain(target_id),
                _ => Target::System,
            },
            role_id: r.text("role_id"),
            inherited: r.flag("inherited"),
        }
    }
}

impl Store {
    pub async fn assignment_grant(&self, a: &Assignment) -> StoreResult<()> {
        let (at, aid) = a.actor.parts();
        let (tt, tid) = a.target.parts();
        sqlx::query(
            "INSERT INTO identity_assignments (actor_type, actor_id, target_type, target_id, role_id, inherited)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(at)
        .bind(aid)
        .bind(tt)
        .bind(tid)
        .bind(&a.role_id)
        .bind(a.inherited as i64)
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    /// Returns whether the assignment existed.
    pub async fn assignment_revoke(&self, a: &Assignment) -> StoreResult<bool> {
        let (at, aid) = a.actor.parts();
        let (tt, tid) = a.target.parts();
        let r = sqlx::query(
            "DELETE FROM identity_assignments WHERE actor_type = $1 AND actor_id = $2 AND target_type = $3
             AND target_id = $4 AND role_id = $5 AND inherited = $6",
        )
        .bind(at)
        .bind(aid)
        .bind(tt)
        .bind(tid)
        .bind(&a.role_id)
        .bind(a.inherited as i64)
        .execute(&self.db.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn assignment_exists(&self, a: &Assignment) -> StoreResult<bool> {
        let (at, aid) = a.actor.parts();
        let (tt, tid) = a.target.parts();
        let row = sqlx::query(
            "SELECT 1 AS x FROM identity_assignments WHERE actor_type = $1 AND actor_id = $2 AND target_type = $3
             AND target_id = $4 AND role_id = $5 AND inherited = $6",
        )
        .bind(at)
        .bind(aid)
        .bind(tt)
        .bind(tid)
        .bind(&a.role_id)
        .bind(a.inherited as i64)
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Direct assignments of any of `actors`.
    pub async fn assignment_list_for_actors(&self, actors: &[Actor]) -> StoreResult<Vec<Assignment>> {
        let mut out = Vec::new();
        for actor in actors {
            let (at, aid) = actor.parts();
            let rows = sqlx::query("SELECT * FROM identity_assignments WHERE actor_type = $1 AND actor_id = $2")
                .bind(at)
                .bind(aid)
                .fetch_all(&self.db.pool)
                .await?;
            out.extend(rows.iter().map(Assignment::from_row));
        }
        Ok(out)
    }

    pub async fn assignment_list_all(&self) -> StoreResult<Vec<Assignment>> {
        let rows = sqlx::query("SELECT * FROM identity_assignments").fetch_all(&self.db.pool).await?;
        Ok(rows.iter().map(Assignment::from_row).collect())
    }
}
