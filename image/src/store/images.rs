use super::{Store, StoreResult};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

/// Glance's image statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStatus {
    Queued,
    Saving,
    Uploading,
    Importing,
    Active,
    Killed,
    Deactivated,
}

impl ImageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
            ImageStatus::Deactivated => "deactivated",
        }
    }
    /// The status a row holds; anything else is an error, never a guess.
    pub fn parse(s: &str) -> Result<Self, sqlx::Error> {
        Ok(match s {
            "queued" => ImageStatus::Queued,
            "saving" => ImageStatus::Saving,
            "uploading" => ImageStatus::Uploading,
            "importing" => ImageStatus::Importing,
            "active" => ImageStatus::Active,
            "killed" => ImageStatus::Killed,
            "deactivated" => ImageStatus::Deactivated,
            other => return Err(sqlx::Error::Decode(format!("unknown image status {other:?}").into())),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub owner: String,
    pub status: ImageStatus,
    pub visibility: String,
    pub protected: bool,
    pub os_hidden: bool,
    pub disk_format: Option<String>,
    pub container_format: Option<String>,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub tags: Vec<String>,
    pub extra: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl Image {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.text("id"),
            name: r.opt_text("name"),
            owner: r.text("owner"),
            status: ImageStatus::parse(&r.text("status"))?,
            visibility: r.text("visibility"),
            protected: r.flag("protected"),
            os_hidden: r.flag("os_hidden"),
            disk_format: r.opt_text("disk_format"),
            container_format: r.opt_text("container_format"),
            size: r.opt_int("size"),
            virtual_size: r.opt_int("virtual_size"),
            checksum: r.opt_text("checksum"),
            os_hash_algo: r.opt_text("os_hash_algo"),
            os_hash_value: r.opt_text("os_hash_value"),
            min_disk: r.int("min_disk"),
            min_ram: r.int("min_ram"),
            tags: serde_json::from_str(&r.text("tags")).unwrap_or_default(),
            extra: match serde_json::from_str(&r.text("extra")) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            },
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        })
    }
}

impl Store {
    /// Inserts an image and counts it against the project's `image_count_total` in one
    /// transaction: the conditional update fails when the limit is reached, so concurrent
    /// creates can never exceed it. Returns false when over the limit.
    pub async fn image_create(&self, img: &Image, count_limit: Option<i64>) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("INSERT INTO image_usage (project_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&img.owner)
            .execute(&mut *tx)
            .await?;
        let counted = sqlx::query(
            "UPDATE image_usage SET image_count = image_count + 1 WHERE project_id = $1 AND ($2 < 0 OR image_count + 1 <= $2)",
        )
        .bind(&img.owner)
        .bind(count_limit.unwrap_or(-1))
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO image_images (id, name, owner, status, visibility, protected, os_hidden, disk_format,
                container_format, min_disk, min_ram, tags, extra, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(&img.id)
        .bind(&img.name)
        .bind(&img.owner)
        .bind(img.status.as_str())
        .bind(&img.visibility)
        .bind(img.protected as i64)
        .bind(img.os_hidden as i64)
        .bind(&img.disk_format)
        .bind(&img.container_format)
        .bind(img.min_disk)
        .bind(img.min_ram)
        .bind(serde_json::to_string(&img.tags).unwrap())
        .bind(Value::Object(img.extra.clone()).to_string())
        .bind(now_text())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn image_fetch(&self, id: &str) -> StoreResult<Option<Image>> {
        let row =
            sqlx::query("SELECT * FROM image_images WHERE id = $1").bind(id).fetch_optional(&self.db.reads).await?;
        row.as_ref().map(Image::from_row).transpose()
    }

    /// Images a project may see in a listing: its own, public, community, and those
    /// shared with it (the caller filters further). Admins pass `None` to see all.
    pub async fn image_list_candidates(&self, project: Option<&str>) -> StoreResult<Vec<(Image, Option<String>)>> {
        let rows = match project {
            None => {
                sqlx::query(
                    "SELECT i.*, NULL AS member_status FROM image_images i ORDER BY i.created_at DESC, i.id DESC",
                )
                .fetch_all(&self.db.reads)
                .await?
            }
            Some(p) => {
                sqlx::query(
                    "SELECT i.*, m.status AS member_status FROM image_images i
                     LEFT JOIN image_members m ON m.image_id = i.id AND m.member_id = $1
                     WHERE i.owner = $1 OR i.visibility IN ('public', 'community') OR m.member_id IS NOT NULL
                     ORDER BY i.created_at DESC, i.id DESC",
                )
                .bind(p)
                .fetch_all(&self.db.reads)
                .await?
            }
        };
        rows.iter().map(|r| Ok((Image::from_row(r)?, r.opt_text("member_status")))).collect()
    }

    /// Saves the mutable attributes of an image. A new owner (an admin's change) takes
    /// the image's count and bytes from the old owner's usage, in the same transaction.
    pub async fn image_update(&self, img: &Image) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        let before = sqlx::query("SELECT owner, status, size FROM image_images WHERE id = $1")
            .bind(&img.id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = before.filter(|r| r.text("owner") != img.owner) {
            let bytes = match row.text("status").as_str() {
                "active" | "deactivated" => row.opt_int("size").unwrap_or(0),
                _ => 0,
            };
            sqlx::query("INSERT INTO image_usage (project_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(&img.owner)
                .execute(&mut *tx)
                .await?;
            for (project, sign) in [(row.text("owner"), -1i64), (img.owner.clone(), 1)] {
                sqlx::query(
                    "UPDATE image_usage SET image_count = image_count + $2, image_bytes = image_bytes + $3 WHERE project_id = $1",
                )
                .bind(project)
                .bind(sign)
                .bind(sign * bytes)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "UPDATE image_images SET name = $2, visibility = $3, protected = $4, os_hidden = $5, disk_format = $6,
                container_format = $7, min_disk = $8, min_ram = $9, tags = $10, extra = $11, updated_at = $12, owner = $13
             WHERE id = $1",
        )
        .bind(&img.id)
        .bind(&img.name)
        .bind(&img.visibility)
        .bind(img.protected as i64)
        .bind(img.os_hidden as i64)
        .bind(&img.disk_format)
        .bind(&img.container_format)
        .bind(img.min_disk)
        .bind(img.min_ram)
        .bind(serde_json::to_string(&img.tags).unwrap())
        .bind(Value::Object(img.extra.clone()).to_string())
        .bind(now_text())
        .bind(&img.owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves an image from one status to another; false if it was not in `from`.
    pub async fn image_transition(
        &self,
        id: &str,
        from: &[ImageStatus],
        to: ImageStatus,
        lease_until: Option<&str>,
    ) -> StoreResult<bool> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut changed = false;
        for f in from {
            let r = sqlx::query(
                "UPDATE image_images SET status = $3, lease_until = $4, updated_at = $5 WHERE id = $1 AND status = $2",
            )
            .bind(id)
            .bind(f)
            .bind(to.as_str())
            .bind(lease_until)
            .bind(now_text())
            .execute(&self.db.pool)
            .await?;
            if r.rows_affected() > 0 {
                changed = true;
                break;
            }
        }
        Ok(changed)
    }

    /// Extends the lease of an upload in progress.
    pub async fn image_renew_lease(&self, id: &str, lease_until: &str) -> StoreResult<()> {
        sqlx::query("UPDATE image_images SET lease_until = $2 WHERE id = $1")
            .bind(id)
            .bind(lease_until)
            .execute(&self.db.pool)
            .await?;
        Ok(())
    }

    /// Records uploaded data against `image_size_total` and activates the image, in one
    /// transaction. Returns false (and changes nothing) when over the limit.
    #[allow(clippy::too_many_arguments)]
    pub async fn image_activate(
        &self,
        img: &Image,
        size: i64,
        virtual_size: Option<i64>,
        checksum: &str,
        hash: &str,
        bytes_limit: Option<i64>,
        from: ImageStatus,
    ) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("INSERT INTO image_usage (project_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(&img.owner)
            .execute(&mut *tx)
            .await?;
        let counted = sqlx::query(
            "UPDATE image_usage SET image_bytes = image_bytes + $2 WHERE project_id = $1 AND ($3 < 0 OR image_bytes + $2 <= $3)",
        )
        .bind(&img.owner)
        .bind(size)
        .bind(bytes_limit.unwrap_or(-1))
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() == 0 {
            return Ok(false);
        }
        let r = sqlx::query(
            "UPDATE image_images SET status = 'active', size = $2, virtual_size = $3, checksum = $4, os_hash_algo = 'sha512',
                os_hash_value = $5, lease_until = NULL, updated_at = $6 WHERE id = $1 AND status = $7",
        )
        .bind(&img.id)
        .bind(size)
        .bind(virtual_size)
        .bind(checksum)
        .bind(hash)
        .bind(now_text())
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            // The image was deleted or killed meanwhile: record nothing.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes an image and gives back its count and bytes.
    pub async fn image_delete(&self, img: &Image) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        let row = sqlx::query("SELECT status, size FROM image_images WHERE id = $1")
            .bind(&img.id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(()) };
        let counted_bytes = match row.text("status").as_str() {
            "active" | "deactivated" => row.opt_int("size").unwrap_or(0),
            _ => 0,
        };
        sqlx::query("DELETE FROM image_images WHERE id = $1").bind(&img.id).execute(&mut *tx).await?;
        sqlx::query("UPDATE image_usage SET image_count = image_count - 1, image_bytes = image_bytes - $2 WHERE project_id = $1")
            .bind(&img.owner)
            .bind(counted_bytes)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Images whose upload lease ran out (the uploading process died).
    pub async fn image_list_stale_uploads(&self, now: &str) -> StoreResult<Vec<Image>> {
        let rows = sqlx::query(
            "SELECT * FROM image_images WHERE status IN ('saving', 'importing') AND (lease_until IS NULL OR lease_until < $1)",
        )
        .bind(now)
        .fetch_all(&self.db.reads)
        .await?;
        rows.iter().map(Image::from_row).collect()
    }

    pub async fn image_ids(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM image_images").fetch_all(&self.db.reads).await?;
        Ok(rows.iter().map(|r| r.text("id")).collect())
    }
}

impl Store {
    /// One page of the default listing (no filters, newest first), in SQL: what most
    /// list calls ask, kept fast however many images there are. `marker` is the last id
    /// of the previous page. `project` is the caller's project; `admin` sees every
    /// non-community image. Returns up to `limit + 1` images so the caller knows whether
    /// another page follows.
    pub async fn image_page_default(
        &self,
        project: &str,
        admin: bool,
        marker: Option<&Image>,
        limit: i64,
    ) -> StoreResult<Vec<Image>> {
        let visible = if admin {
            "(i.owner = $1 OR i.visibility <> 'community')"
        } else {
            "(i.owner = $1 OR i.visibility = 'public' OR m.status = 'accepted')"
        };
        let after = if marker.is_some() { "AND (i.created_at < $3 OR (i.created_at = $3 AND i.id < $4))" } else { "" };
        let sql = format!(
            "SELECT i.* FROM image_images i LEFT JOIN image_members m ON m.image_id = i.id AND m.member_id = $1
             WHERE {visible} AND i.os_hidden = 0 {after}
             ORDER BY i.created_at DESC, i.id DESC LIMIT $2"
        );
        let mut q = sqlx::query(&sql).bind(project).bind(limit + 1);
        if let Some(m) = marker {
            q = q.bind(&m.created_at).bind(&m.id);
        }
        let rows = q.fetch_all(&self.db.reads).await?;
        rows.iter().map(Image::from_row).collect()
    }
}
