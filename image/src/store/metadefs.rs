//! Metadata definitions (Glance's metadefs): namespaces, the objects, properties and
//! tags inside them (one table, told apart by `kind`), resource types and the
//! namespaces' associations with them. A namespace's children hang off its id, so a
//! rename is one update and a delete cascades.

use super::{Store, StoreResult};
use serde_json::Value;
use sqlx::any::AnyRow;
use stratus_common::db::{now_text, RowExt};

#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: String,
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: String,
    pub protected: bool,
    pub owner: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Namespace {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            id: r.text("id"),
            namespace: r.text("namespace"),
            display_name: r.opt_text("display_name"),
            description: r.opt_text("description"),
            visibility: r.text("visibility"),
            protected: r.flag("protected"),
            owner: r.text("owner"),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        }
    }
}

/// What a namespace holds besides resource type associations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Object,
    Property,
    Tag,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Object => "object",
            ItemKind::Property => "property",
            ItemKind::Tag => "tag",
        }
    }
}

/// An object, property or tag: its name and its definition (a JSON object; a tag's is
/// empty).
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub body: Value,
    pub created_at: String,
    pub updated_at: String,
}

impl Item {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            name: r.text("name"),
            body: serde_json::from_str(&r.text("body")).unwrap_or_else(|_| Value::Object(Default::default())),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceType {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone)]
pub struct Association {
    pub namespace_id: String,
    pub resource_type: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Association {
    fn from_row(r: &AnyRow) -> Self {
        Self {
            namespace_id: r.text("namespace_id"),
            resource_type: r.text("resource_type"),
            prefix: r.opt_text("prefix"),
            properties_target: r.opt_text("properties_target"),
            created_at: r.text("created_at"),
            updated_at: r.text("updated_at"),
        }
    }
}

/// A namespace as created in one request: the namespace and everything it comes with.
pub struct NewNamespace<'a> {
    pub ns: &'a Namespace,
    pub items: &'a [(ItemKind, String, Value)],
    pub associations: &'a [(String, Option<String>, Option<String>)],
}

impl Store {
    pub async fn namespaces(&self) -> StoreResult<Vec<Namespace>> {
        let rows = sqlx::query("SELECT * FROM image_metadef_namespaces ORDER BY created_at, id")
            .fetch_all(&self.db.pool)
            .await?;
        Ok(rows.iter().map(Namespace::from_row).collect())
    }

    pub async fn namespace_fetch(&self, name: &str) -> StoreResult<Option<Namespace>> {
        let row = sqlx::query("SELECT * FROM image_metadef_namespaces WHERE namespace = $1")
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Namespace::from_row))
    }

    /// Creates a namespace with its children in one transaction: all or nothing.
    pub async fn namespace_create(&self, new: NewNamespace<'_>) -> StoreResult<()> {
        let ns = new.ns;
        let mut tx = self.db.pool.begin().await?;
        sqlx::query(
            "INSERT INTO image_metadef_namespaces (id, namespace, display_name, description, visibility, protected, owner, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&ns.id)
        .bind(&ns.namespace)
        .bind(&ns.display_name)
        .bind(&ns.description)
        .bind(&ns.visibility)
        .bind(ns.protected as i64)
        .bind(&ns.owner)
        .bind(&ns.created_at)
        .execute(&mut *tx)
        .await?;
        for (kind, name, body) in new.items {
            insert_item(&mut tx, &ns.id, *kind, name, body).await?;
        }
        for (rt, prefix, target) in new.associations {
            insert_association(&mut tx, &ns.id, rt, prefix.as_deref(), target.as_deref()).await?;
        }
        tx.commit().await
    }

    /// Replaces a namespace's own fields (a rename included); false when it is gone.
    pub async fn namespace_update(&self, ns: &Namespace) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE image_metadef_namespaces SET namespace = $2, display_name = $3, description = $4, visibility = $5, \
             protected = $6, owner = $7, updated_at = $8 WHERE id = $1",
        )
        .bind(&ns.id)
        .bind(&ns.namespace)
        .bind(&ns.display_name)
        .bind(&ns.description)
        .bind(&ns.visibility)
        .bind(ns.protected as i64)
        .bind(&ns.owner)
        .bind(now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn namespace_delete(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM image_metadef_namespaces WHERE id = $1").bind(id).execute(&self.db.pool).await?;
        Ok(())
    }

    pub async fn items(&self, namespace_id: &str, kind: ItemKind) -> StoreResult<Vec<Item>> {
        let rows = sqlx::query(
            "SELECT * FROM image_metadef_items WHERE namespace_id = $1 AND kind = $2 ORDER BY created_at, name",
        )
        .bind(namespace_id)
        .bind(kind.as_str())
        .fetch_all(&self.db.pool)
        .await?;
        Ok(rows.iter().map(Item::from_row).collect())
    }

    pub async fn item_fetch(&self, namespace_id: &str, kind: ItemKind, name: &str) -> StoreResult<Option<Item>> {
        let row = sqlx::query("SELECT * FROM image_metadef_items WHERE namespace_id = $1 AND kind = $2 AND name = $3")
            .bind(namespace_id)
            .bind(kind.as_str())
            .bind(name)
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.as_ref().map(Item::from_row))
    }

    /// Adds items; with `replace`, the namespace's items of that kind go first (one
    /// transaction, so a duplicate among the new ones changes nothing).
    pub async fn items_add(
        &self,
        namespace_id: &str,
        kind: ItemKind,
        items: &[(String, Value)],
        replace: bool,
    ) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        if replace {
            sqlx::query("DELETE FROM image_metadef_items WHERE namespace_id = $1 AND kind = $2")
                .bind(namespace_id)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?;
        }
        for (name, body) in items {
            insert_item(&mut tx, namespace_id, kind, name, body).await?;
        }
        tx.commit().await
    }

    /// Replaces an item's name and definition; false when it is gone.
    pub async fn item_update(
        &self,
        namespace_id: &str,
        kind: ItemKind,
        name: &str,
        new_name: &str,
        body: &Value,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE image_metadef_items SET name = $4, body = $5, updated_at = $6 \
             WHERE namespace_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(namespace_id)
        .bind(kind.as_str())
        .bind(name)
        .bind(new_name)
        .bind(body.to_string())
        .bind(now_text())
        .execute(&self.db.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes one item (`Some(name)`) or every item of the kind; the number deleted.
    pub async fn items_delete(&self, namespace_id: &str, kind: ItemKind, name: Option<&str>) -> StoreResult<u64> {
        let done = match name {
            Some(name) => {
                sqlx::query("DELETE FROM image_metadef_items WHERE namespace_id = $1 AND kind = $2 AND name = $3")
                    .bind(namespace_id)
                    .bind(kind.as_str())
                    .bind(name)
                    .execute(&self.db.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM image_metadef_items WHERE namespace_id = $1 AND kind = $2")
                    .bind(namespace_id)
                    .bind(kind.as_str())
                    .execute(&self.db.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }

    pub async fn resource_types(&self) -> StoreResult<Vec<ResourceType>> {
        let rows =
            sqlx::query("SELECT * FROM image_metadef_resource_types ORDER BY name").fetch_all(&self.db.pool).await?;
        Ok(rows
            .iter()
            .map(|r| ResourceType {
                name: r.text("name"),
                created_at: r.text("created_at"),
                updated_at: r.text("updated_at"),
            })
            .collect())
    }

    /// Every association, or one namespace's.
    pub async fn associations(&self, namespace_id: Option<&str>) -> StoreResult<Vec<Association>> {
        let rows = match namespace_id {
            Some(id) => sqlx::query(
                "SELECT * FROM image_metadef_associations WHERE namespace_id = $1 ORDER BY created_at, resource_type",
            )
            .bind(id)
            .fetch_all(&self.db.pool)
            .await?,
            None => {
                sqlx::query("SELECT * FROM image_metadef_associations ORDER BY created_at, resource_type")
                    .fetch_all(&self.db.pool)
                    .await?
            }
        };
        Ok(rows.iter().map(Association::from_row).collect())
    }

    pub async fn association_add(
        &self,
        namespace_id: &str,
        resource_type: &str,
        prefix: Option<&str>,
        target: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.db.pool.begin().await?;
        insert_association(&mut tx, namespace_id, resource_type, prefix, target).await?;
        tx.commit().await
    }

    pub async fn association_delete(&self, namespace_id: &str, resource_type: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM image_metadef_associations WHERE namespace_id = $1 AND resource_type = $2")
            .bind(namespace_id)
            .bind(resource_type)
            .execute(&self.db.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

async fn insert_item(
    tx: &mut stratus_common::db::Tx,
    namespace_id: &str,
    kind: ItemKind,
    name: &str,
    body: &Value,
) -> StoreResult<()> {
    let now = now_text();
    sqlx::query(
        "INSERT INTO image_metadef_items (namespace_id, kind, name, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(namespace_id)
    .bind(kind.as_str())
    .bind(name)
    .bind(body.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Associates a namespace with a resource type, registering the type on first use (as
/// Glance does).
async fn insert_association(
    tx: &mut stratus_common::db::Tx,
    namespace_id: &str,
    resource_type: &str,
    prefix: Option<&str>,
    target: Option<&str>,
) -> StoreResult<()> {
    let now = now_text();
    let known = sqlx::query("SELECT name FROM image_metadef_resource_types WHERE name = $1")
        .bind(resource_type)
        .fetch_optional(&mut **tx)
        .await?;
    if known.is_none() {
        sqlx::query(
            "INSERT INTO image_metadef_resource_types (name, protected, created_at, updated_at) VALUES ($1, 0, $2, $2)",
        )
        .bind(resource_type)
        .bind(&now)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO image_metadef_associations (namespace_id, resource_type, prefix, properties_target, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(namespace_id)
    .bind(resource_type)
    .bind(prefix)
    .bind(target)
    .bind(&now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
