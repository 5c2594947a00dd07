use super::{json_text, Metered, Store, StoreResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stratus_common::db::{now_text, Col, JsonSelect};

/// A volume's status, as Cinder names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeStatus {
    Creating,
    Available,
    Extending,
    Deleting,
    Uploading,
    #[serde(rename = "awaiting-transfer")]
    AwaitingTransfer,
    /// Held for an attachment made without a connector (the attachments API's
    /// reservation) until the host says how it connects.
    Reserved,
    /// Reserved for an attachment (`os-reserve`) while the host connects it.
    Attaching,
    #[serde(rename = "in-use")]
    InUse,
    /// Being taken off its server (`os-begin_detaching`).
    Detaching,
    /// Being made what one of its snapshots holds (3.40's revert).
    Reverting,
    /// Being copied to a backup.
    #[serde(rename = "backing-up")]
    BackingUp,
    /// Being made what a backup holds.
    #[serde(rename = "restoring-backup")]
    RestoringBackup,
    /// A restore from a backup failed: what it holds is unknown.
    ErrorRestoring,
    Error,
    ErrorDeleting,
    ErrorExtending,
    /// Set by an operator (`os-reset_status`) while they work on it.
    Maintenance,
}

impl VolumeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeStatus::Creating => "creating",
            VolumeStatus::Available => "available",
            VolumeStatus::Extending => "extending",
            VolumeStatus::Deleting => "deleting",
            VolumeStatus::Uploading => "uploading",
            VolumeStatus::AwaitingTransfer => "awaiting-transfer",
            VolumeStatus::Reserved => "reserved",
            VolumeStatus::Attaching => "attaching",
            VolumeStatus::InUse => "in-use",
            VolumeStatus::Detaching => "detaching",
            VolumeStatus::Reverting => "reverting",
            VolumeStatus::BackingUp => "backing-up",
            VolumeStatus::RestoringBackup => "restoring-backup",
            VolumeStatus::ErrorRestoring => "error_restoring",
            VolumeStatus::Error => "error",
            VolumeStatus::ErrorDeleting => "error_deleting",
            VolumeStatus::ErrorExtending => "error_extending",
            VolumeStatus::Maintenance => "maintenance",
        }
    }

    /// A status a request may start new work from.
    pub fn settled(self) -> bool {
        matches!(
            self,
            VolumeStatus::Available | VolumeStatus::Error | VolumeStatus::ErrorExtending | VolumeStatus::ErrorRestoring
        )
    }
}

/// What the service tracks about work under way on a volume (never shown).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VolumeControl {
    /// The saga working on the volume.
    pub saga_id: Option<stratus_common::ids::SagaId>,
    /// The server an `os-reserve` that named one holds the volume for (so the
    /// reservation, asked again by a retrying caller, is granted again).
    pub reserved_for: Option<String>,
    /// An attached volume growing: when the compute service was told to grow the
    /// guest's disk, and what it answered (`os-extend_volume_completion`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_asked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_result: Option<bool>,
}

/// A volume's attachment to a server (`attachments` in the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The attachment's id (`attachment_id`).
    pub id: String,
    pub server_id: String,
    /// The compute host the server runs on.
    pub host_name: Option<String>,
    /// Where the guest sees it (`/dev/vdb`).
    pub device: String,
    pub attached_at: String,
    /// `rw` or `ro`.
    #[serde(default = "read_write")]
    pub mode: String,
    /// Where the attachment is (`attach_status`): those made by the legacy attach steps
    /// are `attached` from the start.
    #[serde(default)]
    pub status: AttachStatus,
    /// The host's connector (the attachments API), kept to end the connection when the
    /// attachment is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<Value>,
    /// How that host reaches the volume, as the backend answered (shown with the
    /// attachment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_info: Option<Value>,
}

/// An attachment's `attach_status`, as Cinder names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachStatus {
    /// Made without a connector: the volume is held for the server.
    Reserved,
    /// The host has its connection and is plugging it in.
    Attaching,
    #[default]
    Attached,
}

impl AttachStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachStatus::Reserved => "reserved",
            AttachStatus::Attaching => "attaching",
            AttachStatus::Attached => "attached",
        }
    }
}

fn read_write() -> String {
    "rw".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub id: String,
    pub project_id: String,
    pub user_id: String,
    pub name: String,
    pub description: String,
    /// GiB.
    pub size: i64,
    pub status: VolumeStatus,
    pub type_id: String,
    /// The backend holding it.
    pub backend: String,
    pub bootable: bool,
    pub source_volid: Option<String>,
    pub snapshot_id: Option<String>,
    pub metadata: Map<String, Value>,
    /// The image it was made from, and what the image service said of it (shown as
    /// `volume_image_metadata`).
    #[serde(default)]
    pub image_id: Option<String>,
    #[serde(default)]
    pub image_meta: Map<String, Value>,
    pub control: VolumeControl,
    /// The servers it is attached to: one, or several when `multiattach`.
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Whether several servers may have it at once (its type's `multiattach` spec).
    #[serde(default)]
    pub multiattach: bool,
    /// The generic volume group it is in.
    #[serde(default)]
    pub group_id: Option<String>,
    pub deleted: bool,
    pub rev: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl Volume {
    /// A new empty volume of `project`, `creating` on `backend`, not yet written.
    pub fn fresh(project: &str, user: &str, name: String, size: i64, type_id: &str, backend: &str) -> Self {
        let now = now_text();
        Volume {
            id: uuid::Uuid::new_v4().to_string(),
            project_id: project.to_string(),
            user_id: user.to_string(),
            name,
            description: String::new(),
            size,
            status: VolumeStatus::Creating,
            type_id: type_id.to_string(),
            backend: backend.to_string(),
            bootable: false,
            source_volid: None,
            snapshot_id: None,
            metadata: Map::new(),
            image_id: None,
            image_meta: Map::new(),
            control: VolumeControl::default(),
            attachments: Vec::new(),
            multiattach: false,
            group_id: None,
            deleted: false,
            rev: 0,
            created_at: now.clone(),
            updated_at: now,
        }
    }
}

const COLUMNS: &[Col] = &[
    Col::Text("id"),
    Col::Text("project_id"),
    Col::Text("user_id"),
    Col::Text("name"),
    Col::Text("description"),
    Col::Text("size"),
    Col::Text("status"),
    Col::Text("type_id"),
    Col::Text("backend"),
    Col::Flag("bootable"),
    Col::Text("source_volid"),
    Col::Text("snapshot_id"),
    Col::Json("metadata"),
    Col::Text("image_id"),
    Col::Json("image_meta"),
    Col::Json("control"),
    Col::Json("attachments"),
    Col::Flag("multiattach"),
    Col::Text("group_id"),
    Col::Flag("deleted"),
    Col::Text("rev"),
    Col::Text("created_at"),
    Col::Text("updated_at"),
];

impl Store {
    /// Inserts a volume (inside the caller's transaction, with its quota and saga).
    pub async fn volume_insert_in(conn: &mut sqlx::AnyConnection, v: &Volume) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO volume_volumes (id, project_id, user_id, name, description, size, status, type_id, backend, bootable,
             source_volid, snapshot_id, metadata, control, deleted, rev, created_at, updated_at, image_id, image_meta,
             multiattach, group_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 0, 0, $15, $15, $16, $17, $18, $19)",
        )
        .bind(&v.id)
        .bind(&v.project_id)
        .bind(&v.user_id)
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(v.status.as_str())
        .bind(&v.type_id)
        .bind(&v.backend)
        .bind(v.bootable as i64)
        .bind(v.source_volid.clone())
        .bind(v.snapshot_id.clone())
        .bind(json_text(&v.metadata))
        .bind(serde_json::to_string(&v.control).unwrap_or_else(|_| "{}".into()))
        .bind(&v.created_at)
        .bind(v.image_id.clone())
        .bind(json_text(&v.image_meta))
        .bind(v.multiattach as i64)
        .bind(&v.group_id)
        .execute(&mut *conn)
        .await?;
        Store::meter_in(conn, Metered::Volume, &v.id, &v.project_id, v.size, true).await
    }

    /// A volume, deleted ones included (callers decide what a deleted one means).
    pub async fn volume_get(&self, id: &str) -> StoreResult<Option<Volume>> {
        const SELECT: JsonSelect = JsonSelect { columns: COLUMNS, from: "volume_volumes WHERE id = $1", order: "id" };
        Ok(self.db.json_rows(&SELECT, &[Some(id)]).await?.pop())
    }

    /// Live volumes, of one project or all, oldest first.
    pub async fn volume_list(&self, project: Option<&str>) -> StoreResult<Vec<Volume>> {
        const SELECT: JsonSelect = JsonSelect {
            columns: COLUMNS,
            from: "volume_volumes WHERE deleted = 0 AND ($1 IS NULL OR project_id = $1)",
            order: "created_at, id",
        };
        self.db.json_rows(&SELECT, &[project]).await
    }

    /// Saves a volume read earlier (on `conn`); false when someone saved it meanwhile.
    pub async fn volume_save_in(conn: &mut sqlx::AnyConnection, v: &Volume) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE volume_volumes SET name = $1, description = $2, size = $3, status = $4, bootable = $5, metadata = $6,
             control = $7, deleted = $8, updated_at = $9, attachments = $12, image_meta = $13, type_id = $14,
             multiattach = $15, group_id = $16, rev = rev + 1 WHERE id = $10 AND rev = $11",
        )
        .bind(&v.name)
        .bind(&v.description)
        .bind(v.size)
        .bind(v.status.as_str())
        .bind(v.bootable as i64)
        .bind(json_text(&v.metadata))
        .bind(serde_json::to_string(&v.control).unwrap_or_else(|_| "{}".into()))
        .bind(v.deleted as i64)
        .bind(now_text())
        .bind(&v.id)
        .bind(v.rev)
        .bind(serde_json::to_string(&v.attachments).unwrap_or_else(|_| "[]".into()))
        .bind(json_text(&v.image_meta))
        .bind(&v.type_id)
        .bind(v.multiattach as i64)
        .bind(&v.group_id)
        .execute(&mut *conn)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        Store::meter_in(conn, Metered::Volume, &v.id, &v.project_id, v.size, !v.deleted).await?;
        Ok(true)
    }

    /// [`Self::volume_save_in`] on a connection of its own; bumps `v.rev` when saved.
    pub async fn volume_save(&self, v: &mut Volume) -> StoreResult<bool> {
        let mut conn = self.db.pool.acquire().await?;
        let saved = Self::volume_save_in(&mut conn, v).await?;
        conn.release();
        if saved {
            v.rev += 1;
        }
        Ok(saved)
    }

    /// The GiB of live volumes on each backend.
    pub async fn allocated_by_backend(&self) -> StoreResult<std::collections::HashMap<String, i64>> {
        use stratus_common::db::RowExt;
        let rows = sqlx::query(
            "SELECT backend, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS gb FROM volume_volumes WHERE deleted = 0 GROUP BY backend",
        )
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(|r| (r.text("backend"), r.int("gb"))).collect())
    }

    /// Live volumes made from image `image`, other than `except`.
    pub async fn volumes_of_image(&self, image: &str, except: &str) -> StoreResult<i64> {
        use stratus_common::db::RowExt;
        let r =
            sqlx::query("SELECT COUNT(*) AS n FROM volume_volumes WHERE deleted = 0 AND image_id = $1 AND id <> $2")
                .bind(image)
                .bind(except)
                .fetch_one(&self.db.pool)
                .await?;
        Ok(r.int("n"))
    }

    /// Live volumes made from a snapshot or a volume (which must stay while they copy).
    pub async fn volumes_from(&self, source: &str) -> StoreResult<i64> {
        use stratus_common::db::RowExt;
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM volume_volumes WHERE deleted = 0 AND status = 'creating' AND (snapshot_id = $1 OR source_volid = $1)",
        )
        .bind(source)
        .fetch_one(&self.db.pool)
        .await?;
        Ok(r.int("n"))
    }
}
