use super::{Store, StoreResult};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Member {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            image_id: r.text("image_id"),
            member_id: r.text("member_id"),
            status: r.text("status"),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        }
    }
}

impl Store {
    pub async fn member_create(&self, image_id: &str, member_id: &str) -> StoreResult<()> {
        let now = now_text();
        sqlx::query("INSERT INTO image_members (image_id, member_id, status, created_at, updated_at) VALUES ($1, $2, 'pending', $3, $3)")
            .bind(image_id)
            .bind(member_id)
            .bind(now)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn member_fetch(&self, image_id: &str, member_id: &str) -> StoreResult<Option<Member>> {
        let row = sqlx::query("SELECT * FROM image_members WHERE image_id = $1 AND member_id = $2")
            .bind(image_id)
            .bind(member_id)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Member::from_row))
    }

    pub async fn member_list(&self, image_id: &str) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query("SELECT * FROM image_members WHERE image_id = $1 ORDER BY created_at")
            .bind(image_id)
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(Member::from_row).collect())
    }

    pub async fn member_set_status(&self, image_id: &str, member_id: &str, status: &str) -> StoreResult<()> {
        sqlx::query("UPDATE image_members SET status = $3, updated_at = $4 WHERE image_id = $1 AND member_id = $2")
            .bind(image_id)
            .bind(member_id)
            .bind(status)
            .bind(now_text())
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    pub async fn member_delete(&self, image_id: &str, member_id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM image_members WHERE image_id = $1 AND member_id = $2")
            .bind(image_id)
            .bind(member_id)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }
}
