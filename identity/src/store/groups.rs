use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::RowExt;

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub description: String,
}

impl Group {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            name: r.text("name"),
            domain_id: r.text("domain_id"),
            description: r.text("description"),
        }
    }
}

impl Store {
    pub async fn group_create(&self, g: &Group) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO identity_groups (id, name, domain_id, description, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&g.id)
        .bind(&g.name)
        .bind(&g.domain_id)
        .bind(&g.description)
        .bind(stratus_common::db::now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub async fn group_fetch(&self, id: &str) -> StoreResult<Option<Group>> {
        let row =
            sqlx::query("SELECT * FROM identity_groups WHERE id = $1").bind(id).fetch_optional(&self.db.pool).await?;
        Ok(row.as_ref().map(Group::from_row))
    }

    pub async fn group_list(&self, name: Option<&str>, domain_id: Option<&str>) -> StoreResult<Vec<Group>> {
        let rows = sqlx::query(
            "SELECT * FROM identity_groups WHERE ($1 IS NULL OR name = $1) AND ($2 IS NULL OR domain_id = $2) ORDER BY name, id",
        )
        .bind(name)
        .bind(domain_id)
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(Group::from_row).collect())
    }

    pub async fn group_update(&self, g: &Group) -> StoreResult<()> {
        sqlx::query("UPDATE identity_groups SET name = $2, description = $3 WHERE id = $1")
            .bind(&g.id)
            .bind(&g.name)
            .bind(&g.description)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn group_delete(&self, id: &str) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        for sql in [
            "DELETE FROM identity_assignments WHERE actor_type = 'group' AND actor_id = $1",
            "DELETE FROM identity_group_members WHERE group_id = $1",
            "DELETE FROM identity_groups WHERE id = $1",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn group_add_user(&self, group_id: &str, user_id: &str) -> StoreResult<()> {
        sqlx::query("INSERT INTO identity_group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Returns whether the user was a member.
    pub async fn group_remove_user(&self, group_id: &str, user_id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM identity_group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .execute(&self.db.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn group_has_user(&self, group_id: &str, user_id: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS x FROM identity_group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id)
            .bind(user_id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn group_user_ids(&self, group_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT user_id FROM identity_group_members WHERE group_id = $1")
            .bind(group_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(|r| r.text("user_id")).collect())
    }

    pub async fn user_group_ids(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT group_id FROM identity_group_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(|r| r.text("group_id")).collect())
    }
}
