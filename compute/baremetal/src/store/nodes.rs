//! Nodes: one row each, read whole and saved whole under a revision check.

use super::{parse_enum, parse_object, Store, StoreResult};
use crate::model::{PowerState, PowerTarget, ProvisionState, Work};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: Option<String>,
    pub driver: String,
    pub driver_info: Map<String, Value>,
    pub properties: Map<String, Value>,
    pub extra: Map<String, Value>,
    pub instance_info: Map<String, Value>,
    pub instance_uuid: Option<String>,
    pub power_state: Option<PowerState>,
    pub target_power_state: Option<PowerTarget>,
    pub provision_state: ProvisionState,
    pub target_provision_state: Option<ProvisionState>,
    pub provision_updated_at: Option<String>,
    pub maintenance: bool,
    pub maintenance_reason: Option<String>,
    pub last_error: Option<String>,
    pub resource_class: Option<String>,
    pub deploy_interface: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub lessee: Option<String>,
    /// The conductor working on the node (Ironic's `reservation`), while it does.
    pub conductor: Option<String>,
    /// What the conductor owes the node.
    pub work: Option<Work>,
    pub inspection_started_at: Option<String>,
    pub inspection_finished_at: Option<String>,
    /// The conductor's own notes on a deploy or clean in progress ([`Internal`]).
    pub internal: Internal,
    pub revision: i64,
    pub created_at: String,
    pub updated_at: Option<String>,
}

fn opt_enum<T: std::str::FromStr<Err = String>>(v: Option<String>) -> StoreResult<Option<T>> {
    v.map(|t| parse_enum(&t)).transpose()
}

impl Node {
    /// A new node in `state`, with nothing else set.
    pub fn new(id: String, driver: String, deploy_interface: String, state: ProvisionState) -> Self {
        Self {
            id,
            name: None,
            driver,
            driver_info: Map::new(),
            properties: Map::new(),
            extra: Map::new(),
            instance_info: Map::new(),
            instance_uuid: None,
            power_state: None,
            target_power_state: None,
            provision_state: state,
            target_provision_state: None,
            provision_updated_at: None,
            maintenance: false,
            maintenance_reason: None,
            last_error: None,
            resource_class: None,
            deploy_interface,
            description: None,
            owner: None,
            lessee: None,
            conductor: None,
            work: None,
            inspection_started_at: None,
            inspection_finished_at: None,
            internal: Internal::default(),
            revision: 0,
            created_at: now_text(),
            updated_at: None,
        }
    }

    fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.text("id"),
            name: r.opt_text("name"),
            driver: r.text("driver"),
            driver_info: parse_object(&r.text("driver_info"))?,
            properties: parse_object(&r.text("properties"))?,
            extra: parse_object(&r.text("extra"))?,
            instance_info: parse_object(&r.text("instance_info"))?,
            instance_uuid: r.opt_text("instance_uuid"),
            power_state: opt_enum(r.opt_text("power_state"))?,
            target_power_state: opt_enum(r.opt_text("target_power_state"))?,
            provision_state: parse_enum(&r.text("provision_state"))?,
            target_provision_state: opt_enum(r.opt_text("target_provision_state"))?,
            provision_updated_at: r.opt_text("provision_updated_at"),
            maintenance: r.flag("maintenance"),
            maintenance_reason: r.opt_text("maintenance_reason"),
            last_error: r.opt_text("last_error"),
            resource_class: r.opt_text("resource_class"),
            deploy_interface: r.text("deploy_interface"),
            description: r.opt_text("description"),
            owner: r.opt_text("owner"),
            lessee: r.opt_text("lessee"),
            conductor: r.opt_text("conductor"),
            work: opt_enum(r.opt_text("work"))?,
            inspection_started_at: r.opt_text("inspection_started_at"),
            inspection_finished_at: r.opt_text("inspection_finished_at"),
            internal: serde_json::from_str(&r.text("internal_info")).map_err(|e| sqlx::Error::Decode(e.into()))?,
            revision: r.int("revision"),
            created_at: r.text("created_at"),
            updated_at: r.opt_text("updated_at"),
        })
    }

    /// Moves the node into a new provisioning state, now.
    pub fn enter(&mut self, state: ProvisionState, target: Option<ProvisionState>) {
        self.provision_state = state;
        self.target_provision_state = target;
        self.provision_updated_at = Some(now_text());
    }
}

const COLUMNS: &str = "id, name, driver, driver_info, properties, extra, instance_info, instance_uuid, power_state, \
    target_power_state, provision_state, target_provision_state, provision_updated_at, maintenance, \
    maintenance_reason, last_error, resource_class, deploy_interface, description, owner, lessee, conductor, work, \
    inspection_started_at, inspection_finished_at, internal_info, revision, created_at, updated_at";

/// What the conductor keeps on a node while the deploy ramdisk works on it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Internal {
    /// The secret the ramdisk presents (Ironic's agent token); set while it runs.
    pub agent_token: Option<String>,
    /// How far the ramdisk got: `written` (the image) or `wiped` (the disk).
    pub agent_done: Option<String>,
    /// The raw image the ramdisk writes: its file on the conductor, size and sha256.
    pub image: Option<DeployImage>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeployImage {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

fn internal_text(i: &Internal) -> String {
    serde_json::to_string(i).expect("serialises")
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds what every write of a node sets, `name` to `internal_info` in [`COLUMNS`] order.
fn bind_fields<'q>(q: AnyQuery<'q>, n: &'q Node) -> AnyQuery<'q> {
    q.bind(&n.name)
        .bind(&n.driver)
        .bind(json_text(&n.driver_info))
        .bind(json_text(&n.properties))
        .bind(json_text(&n.extra))
        .bind(json_text(&n.instance_info))
        .bind(&n.instance_uuid)
        .bind(n.power_state.map(|p| p.as_str()))
        .bind(n.target_power_state.map(|p| p.as_str()))
        .bind(n.provision_state.as_str())
        .bind(n.target_provision_state.map(|p| p.as_str()))
        .bind(&n.provision_updated_at)
        .bind(n.maintenance as i64)
        .bind(&n.maintenance_reason)
        .bind(&n.last_error)
        .bind(&n.resource_class)
        .bind(&n.deploy_interface)
        .bind(&n.description)
        .bind(&n.owner)
        .bind(&n.lessee)
        .bind(&n.conductor)
        .bind(n.work.map(|w| w.encode()))
        .bind(&n.inspection_started_at)
        .bind(&n.inspection_finished_at)
        .bind(internal_text(&n.internal))
}

fn json_text(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

impl Store {
    /// Adds a node; a duplicate id, name or instance is a unique violation.
    pub async fn node_insert(&self, n: &Node) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO baremetal_nodes ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
             $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29)"
        );
        let q = sqlx::query(&sql).bind(&n.id);
        bind_fields(q, n).bind(n.revision).bind(&n.created_at).bind(&n.updated_at).execute(&self.db.pool).await?;
        Ok(())
    }

    /// The node with id `key`, or else the one named `key`.
    pub async fn node_get(&self, key: &str) -> StoreResult<Option<Node>> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM baremetal_nodes WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC"
        ))
        .bind(key)
        .fetch_optional(&self.db.pool)
        .await?;
        row.as_ref().map(Node::from_row).transpose()
    }

    pub async fn node_list(&self) -> StoreResult<Vec<Node>> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM baremetal_nodes ORDER BY id")).fetch_all(&self.db.pool).await?;
        rows.iter().map(Node::from_row).collect()
    }

    /// Nodes the conductor owes work.
    pub async fn nodes_with_work(&self) -> StoreResult<Vec<Node>> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM baremetal_nodes WHERE work IS NOT NULL ORDER BY id"))
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter().map(Node::from_row).collect()
    }

    /// Saves `n` if nobody changed it since it was read at `n.revision`; its revision is
    /// then one more. False when someone did (nothing is written).
    pub async fn node_save(&self, n: &mut Node) -> StoreResult<bool> {
        let now = now_text();
        let q = sqlx::query(
            "UPDATE baremetal_nodes SET name = $1, driver = $2, driver_info = $3, properties = $4, extra = $5, \
             instance_info = $6, instance_uuid = $7, power_state = $8, target_power_state = $9, provision_state = $10, \
             target_provision_state = $11, provision_updated_at = $12, maintenance = $13, maintenance_reason = $14, \
             last_error = $15, resource_class = $16, deploy_interface = $17, description = $18, owner = $19, \
             lessee = $20, conductor = $21, work = $22, inspection_started_at = $23, inspection_finished_at = $24, \
             internal_info = $25, revision = revision + 1, updated_at = $26 WHERE id = $27 AND revision = $28",
        );
        let done =
            bind_fields(q, n).bind(&now).bind(&n.id).bind(n.revision).execute(&self.db.pool).await?.rows_affected()
                == 1;
        if done {
            n.revision += 1;
            n.updated_at = Some(now);
        }
        Ok(done)
    }

    /// Deletes node `n` and its ports if it is still at the revision read.
    pub async fn node_delete(&self, n: &Node) -> StoreResult<bool> {
        let mut tx = self.db.pool.begin().await?;
        sqlx::query("DELETE FROM baremetal_ports WHERE node_id = $1").bind(&n.id).execute(&mut *tx).await?;
        let gone = sqlx::query("DELETE FROM baremetal_nodes WHERE id = $1 AND revision = $2 AND work IS NULL")
            .bind(&n.id)
            .bind(n.revision)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !gone {
            // Dropping the transaction rolls the ports back.
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}
