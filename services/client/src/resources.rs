//! Every resource of every service, as one table: where each lives in its service's
//! API (list, show, update, delete paths; the microversion it is read at), how it is
//! named, and the columns a summary shows. One constant per kind; a new kind is one
//! more constant. [`Kind`]'s methods list (every page), show, find by name or ID,
//! change and delete any of them.
//!
//! ```no_run
//! # async fn demo(s: &stratus_client::Session) -> Result<(), stratus_client::Error> {
//! use stratus_client::resources::{NETWORK, SERVER};
//! let net = NETWORK.find(s, "private").await?;          // by name or ID
//! for server in SERVER.list(s).await? {                 // every page
//!     println!("{} {}", server["name"], server["status"]);
//! }
//! # let _ = net; Ok(()) }
//! ```

use crate::session::Method;
use crate::{Error, Session};
use serde_json::Value;

pub struct Kind {
    /// What a person calls one (`server`).
    pub noun: &'static str,
    /// The catalog type of its service.
    pub service: &'static str,
    /// The list path and the key its answer holds the list under.
    pub list: (&'static str, &'static str),
    /// The show path (`{id}` replaced) and the key its answer holds the object under
    /// (none: the answer is the object).
    pub show: (&'static str, Option<&'static str>),
    /// Headers every call sends (microversions).
    pub headers: &'static [(&'static str, &'static str)],
    /// (header, field path with dots) per list column.
    pub columns: &'static [(&'static str, &'static str)],
    pub id_field: &'static str,
    pub name_field: &'static str,
    /// How `set` changes one, if it can.
    pub update: Option<Update>,
}

/// How a kind is changed: the method on its show path, and the field that enables or
/// disables it, if it has one.
pub struct Update {
    pub method: UpdateMethod,
    pub enabled_field: Option<&'static str>,
    /// Whether its name may change (a floating IP's "name" is its address).
    pub name: bool,
    /// Whether it has a description.
    pub description: bool,
    /// How its key-value properties change (`--property`, `--unset-property`), if it
    /// has any.
    pub properties: Option<Properties>,
}

#[derive(Clone, Copy)]
pub enum UpdateMethod {
    /// `PUT` with the changes under the show key (Nova, Neutron, Cinder).
    Put,
    /// `PATCH` with the changes under the show key (Keystone).
    Patch,
    /// `PATCH` with a JSON patch (RFC 6902) of this content type (Glance, Ironic).
    JsonPatch(&'static str),
}

/// Where a kind keeps its key-value properties.
#[derive(Clone, Copy)]
pub enum Properties {
    /// A sub-resource of the object: `POST {show}/{path}` with `{key: {k: v}}` sets,
    /// `DELETE {show}/{path}/{k}` unsets (Nova's server metadata and flavor extra specs,
    /// Cinder's volume metadata).
    SubResource { path: &'static str, key: &'static str },
    /// Members of the object under this JSON pointer, in its JSON patch (Glance: the
    /// image itself, `""`; Ironic: `/properties`).
    Patch { under: &'static str },
    /// Blazar's host: `PUT {"values": {k: v}}`, where a null unsets.
    Values,
}

const PUT: Option<Update> =
    Some(Update { method: UpdateMethod::Put, enabled_field: None, name: true, description: true, properties: None });
const PUT_ADMIN_STATE: Option<Update> = Some(Update {
    method: UpdateMethod::Put,
    enabled_field: Some("admin_state_up"),
    name: true,
    description: true,
    properties: None,
});
const PATCH_ENABLED: Option<Update> = Some(Update {
    method: UpdateMethod::Patch,
    enabled_field: Some("enabled"),
    name: true,
    description: true,
    properties: None,
});
/// Server metadata and volume metadata: the same sub-resource.
const PUT_WITH_METADATA: Option<Update> = Some(Update {
    method: UpdateMethod::Put,
    enabled_field: None,
    name: true,
    description: true,
    properties: Some(Properties::SubResource { path: "metadata", key: "metadata" }),
});

const IRONIC: &[(&str, &str)] = &[("X-OpenStack-Ironic-API-Version", "1.31")];
const NOVA: &[(&str, &str)] = &[("X-OpenStack-Nova-API-Version", "2.79")];

pub const SERVER: Kind = Kind {
    noun: "server",
    service: "compute",
    list: ("/servers/detail", "servers"),
    show: ("/servers/{id}", Some("server")),
    headers: NOVA,
    columns: &[
        ("ID", "id"),
        ("Name", "name"),
        ("Status", "status"),
        ("Networks", "addresses"),
        ("Flavor", "flavor.original_name"),
        ("Host", "OS-EXT-SRV-ATTR:hypervisor_hostname"),
    ],
    id_field: "id",
    name_field: "name",
    update: PUT_WITH_METADATA,
};

pub const IMAGE: Kind = Kind {
    noun: "image",
    service: "image",
    list: ("/v2/images", "images"),
    show: ("/v2/images/{id}", None),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Status", "status"), ("Visibility", "visibility"), ("Size", "size")],
    id_field: "id",
    name_field: "name",
    // Glance has no description of its own: it is a property like any other.
    update: Some(Update {
        method: UpdateMethod::JsonPatch("application/openstack-images-v2.1-json-patch"),
        enabled_field: None,
        name: true,
        description: true,
        properties: Some(Properties::Patch { under: "" }),
    }),
};

pub const FLAVOR: Kind = Kind {
    noun: "flavor",
    service: "compute",
    list: ("/flavors/detail", "flavors"),
    show: ("/flavors/{id}", Some("flavor")),
    headers: NOVA,
    columns: &[
        ("ID", "id"),
        ("Name", "name"),
        ("RAM", "ram"),
        ("Disk", "disk"),
        ("VCPUs", "vcpus"),
        ("Is Public", "os-flavor-access:is_public"),
    ],
    id_field: "id",
    name_field: "name",
    // A flavor keeps its name (Nova changes only its description, at 2.55).
    update: Some(Update {
        method: UpdateMethod::Put,
        enabled_field: None,
        name: false,
        description: true,
        properties: Some(Properties::SubResource { path: "os-extra_specs", key: "extra_specs" }),
    }),
};

pub const NETWORK: Kind = Kind {
    noun: "network",
    service: "network",
    list: ("/v2.0/networks", "networks"),
    show: ("/v2.0/networks/{id}", Some("network")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Status", "status"), ("Subnets", "subnets")],
    id_field: "id",
    name_field: "name",
    update: PUT_ADMIN_STATE,
};

pub const LEASE: Kind = Kind {
    noun: "lease",
    service: "reservation",
    list: ("/leases", "leases"),
    show: ("/leases/{id}", Some("lease")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Status", "status"), ("Start", "start_date"), ("End", "end_date")],
    id_field: "id",
    name_field: "name",
    update: None,
};

pub const HOST: Kind = Kind {
    noun: "host",
    service: "reservation",
    list: ("/os-hosts", "hosts"),
    show: ("/os-hosts/{id}", Some("host")),
    headers: &[],
    columns: &[
        ("ID", "id"),
        ("Hypervisor", "hypervisor_hostname"),
        ("Node Type", "node_type"),
        ("Reservable", "reservable"),
        ("VCPUs", "vcpus"),
        ("RAM", "memory_mb"),
    ],
    id_field: "id",
    name_field: "hypervisor_hostname",
    // Its extra capabilities (`node_type`, ...) are its properties.
    update: Some(Update {
        method: UpdateMethod::Put,
        enabled_field: None,
        name: false,
        description: false,
        properties: Some(Properties::Values),
    }),
};

pub const NODE: Kind = Kind {
    noun: "node",
    service: "baremetal",
    list: ("/v1/nodes/detail", "nodes"),
    show: ("/v1/nodes/{id}", None),
    headers: IRONIC,
    columns: &[
        ("UUID", "uuid"),
        ("Name", "name"),
        ("Instance UUID", "instance_uuid"),
        ("Power State", "power_state"),
        ("Provisioning State", "provision_state"),
        ("Maintenance", "maintenance"),
        ("Resource Class", "resource_class"),
    ],
    id_field: "uuid",
    name_field: "name",
    update: Some(Update {
        method: UpdateMethod::JsonPatch("application/json"),
        enabled_field: None,
        name: true,
        description: true,
        properties: Some(Properties::Patch { under: "/properties" }),
    }),
};

impl Kind {
    /// Every one the caller may see, following the service's pages: Glance's `next`
    /// (a path under the endpoint) and the `<key>_links` `next` link of Nova, Neutron,
    /// Cinder and Keystone (a whole URL).
    pub async fn list(&self, s: &Session) -> Result<Vec<Value>, Error> {
        self.list_from(s, self.list.0).await
    }

    /// [`Self::list`] from a path of the list's own (the list path with a query:
    /// filters, `limit`, `sort_key`).
    pub async fn list_from(&self, s: &Session, path: &str) -> Result<Vec<Value>, Error> {
        let key = self.list.1;
        let endpoint = s.endpoint(self.service)?;
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            let page = s.call(Method::GET, self.service, &p, None, self.headers).await?;
            let items = page[key].as_array().cloned().unwrap_or_default();
            let got = items.len();
            out.extend(items);
            pages += 1;
            if got == 0 || pages >= MAX_PAGES {
                break;
            }
            next = next_page(&page, key, &endpoint);
        }
        Ok(out)
    }

    /// Deletes one by ID.
    pub async fn delete(&self, s: &Session, id: &str) -> Result<(), Error> {
        let path = self.show.0.replace("{id}", &urlencode(id));
        s.call(Method::DELETE, self.service, &path, None, self.headers).await.map(drop)
    }

    /// Changes one by ID: the fields given (under the kind's show key, or as a JSON
    /// patch), then the properties set (`Some`) and unset (`None`); answers the object
    /// as the service shows it afterwards.
    pub async fn update(
        &self,
        s: &Session,
        id: &str,
        fields: serde_json::Map<String, Value>,
        properties: &[(String, Option<String>)],
    ) -> Result<Value, Error> {
        let Some(u) = &self.update else {
            return Err(Error::Config(format!("a {} cannot be changed here", self.noun)));
        };
        let (path, key) = self.show;
        let path = path.replace("{id}", &urlencode(id));
        let mut patch = Vec::new();
        if let UpdateMethod::JsonPatch(_) = u.method {
            for (k, v) in &fields {
                patch.push(serde_json::json!({"op": "add", "path": format!("/{}", pointer(k)), "value": v}));
            }
        } else if !fields.is_empty() {
            let body = match key {
                Some(k) => serde_json::json!({ k: fields }),
                None => Value::Object(fields),
            };
            let method = if matches!(u.method, UpdateMethod::Patch) { Method::PATCH } else { Method::PUT };
            s.call(method, self.service, &path, Some(&body), self.headers).await?;
        }
        match (u.properties, properties.is_empty()) {
            (_, true) => {}
            (None, false) => return Err(Error::Config(format!("a {} has no properties", self.noun))),
            (Some(Properties::Patch { under }), false) => {
                for (k, v) in properties {
                    let at = format!("{under}/{}", pointer(k));
                    patch.push(match v {
                        Some(v) => serde_json::json!({"op": "add", "path": at, "value": v}),
                        None => serde_json::json!({"op": "remove", "path": at}),
                    });
                }
            }
            (Some(Properties::SubResource { path: sub, key: wrap }), false) => {
                let set: serde_json::Map<String, Value> =
                    properties.iter().filter_map(|(k, v)| Some((k.clone(), Value::String(v.clone()?)))).collect();
                if !set.is_empty() {
                    let body = serde_json::json!({ wrap: set });
                    s.call(Method::POST, self.service, &format!("{path}/{sub}"), Some(&body), self.headers).await?;
                }
                for (k, _) in properties.iter().filter(|(_, v)| v.is_none()) {
                    let at = format!("{path}/{sub}/{}", urlencode(k));
                    s.call(Method::DELETE, self.service, &at, None, self.headers).await?;
                }
            }
            (Some(Properties::Values), false) => {
                let values: serde_json::Map<String, Value> =
                    properties.iter().map(|(k, v)| (k.clone(), v.clone().map_or(Value::Null, Value::String))).collect();
                let body = serde_json::json!({ "values": values });
                s.call(Method::PUT, self.service, &path, Some(&body), self.headers).await?;
            }
        }
        if let UpdateMethod::JsonPatch(content_type) = u.method {
            if !patch.is_empty() {
                let mut headers = self.headers.to_vec();
                headers.push(("Content-Type", content_type));
                s.call(Method::PATCH, self.service, &path, Some(&Value::Array(patch)), &headers).await?;
            }
        }
        self.show(s, id).await
    }

    /// One by ID or, failing that, by its exact name: [`Error::NotFound`] when none
    /// has it, [`Error::Ambiguous`] when several do.
    pub async fn find(&self, s: &Session, name_or_id: &str) -> Result<Value, Error> {
        match self.show(s, name_or_id).await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_not_found() || matches!(e, Error::Api { status: 400, .. }) => {}
            Err(e) => return Err(e),
        }
        let rows = self.list(s).await?;
        let named: Vec<&Value> = rows.iter().filter(|r| r[self.name_field] == name_or_id).collect();
        match named.as_slice() {
            [one] => self.show(s, &id_text(&one[self.id_field])).await,
            [] => Err(Error::NotFound { kind: self.noun, name: name_or_id.to_string() }),
            many => Err(Error::Ambiguous { kind: self.noun, name: name_or_id.to_string(), count: many.len() }),
        }
    }

    /// One by ID.
    pub async fn show(&self, s: &Session, id: &str) -> Result<Value, Error> {
        let (path, key) = self.show;
        let path = path.replace("{id}", &urlencode(id));
        let v = s.call(Method::GET, self.service, &path, None, self.headers).await?;
        Ok(match key {
            Some(k) => v[k].clone(),
            None => v,
        })
    }
}

/// Enough pages for any real list; a service whose `next` links loop stops here.
const MAX_PAGES: usize = 10_000;

/// The path (under `endpoint`) of the page after `page`, if the service names one.
fn next_page(page: &Value, key: &str, endpoint: &str) -> Option<String> {
    if let Some(n) = page["next"].as_str() {
        // Glance: relative to the endpoint's root, which carries no path of its own.
        return Some(n.to_string());
    }
    // Keystone: `"links": {"next": URL}`.
    if let Some(href) = page["links"]["next"].as_str() {
        return under(href, endpoint);
    }
    let links = page[format!("{key}_links")].as_array()?;
    let href = links.iter().find(|l| l["rel"] == "next")?["href"].as_str()?;
    under(href, endpoint)
}

/// A link's path and query below `endpoint`: the part after the endpoint's own path,
/// whatever host name the service wrote into it.
fn under(href: &str, endpoint: &str) -> Option<String> {
    let path_of = |url: &str| -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.find('/').map_or(String::new(), |i| rest[i..].to_string())
    };
    let (link, base) = (path_of(href), path_of(endpoint));
    let base = base.trim_end_matches('/');
    link.strip_prefix(base).map(str::to_string)
}

/// An id as text (Blazar's hosts have integer ids).
pub fn id_text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub const SUBNET: Kind = Kind {
    noun: "subnet",
    service: "network",
    list: ("/v2.0/subnets", "subnets"),
    show: ("/v2.0/subnets/{id}", Some("subnet")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Network", "network_id"), ("Subnet", "cidr")],
    id_field: "id",
    name_field: "name",
    update: PUT,
};

pub const ROUTER: Kind = Kind {
    noun: "router",
    service: "network",
    list: ("/v2.0/routers", "routers"),
    show: ("/v2.0/routers/{id}", Some("router")),
    headers: &[],
    columns: &[
        ("ID", "id"),
        ("Name", "name"),
        ("Status", "status"),
        ("External Network", "external_gateway_info.network_id"),
    ],
    id_field: "id",
    name_field: "name",
    update: PUT_ADMIN_STATE,
};

pub const PORT: Kind = Kind {
    noun: "port",
    service: "network",
    list: ("/v2.0/ports", "ports"),
    show: ("/v2.0/ports/{id}", Some("port")),
    headers: &[],
    columns: &[
        ("ID", "id"),
        ("Name", "name"),
        ("MAC Address", "mac_address"),
        ("Status", "status"),
        ("Device", "device_id"),
    ],
    id_field: "id",
    name_field: "name",
    update: PUT_ADMIN_STATE,
};

pub const SECURITY_GROUP: Kind = Kind {
    noun: "security group",
    service: "network",
    list: ("/v2.0/security-groups", "security_groups"),
    show: ("/v2.0/security-groups/{id}", Some("security_group")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Description", "description")],
    id_field: "id",
    name_field: "name",
    update: PUT,
};

pub const FLOATING_IP: Kind = Kind {
    noun: "floating IP",
    service: "network",
    list: ("/v2.0/floatingips", "floatingips"),
    show: ("/v2.0/floatingips/{id}", Some("floatingip")),
    headers: &[],
    columns: &[
        ("ID", "id"),
        ("Floating IP", "floating_ip_address"),
        ("Fixed IP", "fixed_ip_address"),
        ("Port", "port_id"),
        ("Status", "status"),
    ],
    id_field: "id",
    name_field: "floating_ip_address",
    update: Some(Update {
        method: UpdateMethod::Put,
        enabled_field: None,
        name: false,
        description: true,
        properties: None,
    }),
};

pub const VOLUME: Kind = Kind {
    noun: "volume",
    service: "volumev3",
    list: ("/volumes/detail", "volumes"),
    show: ("/volumes/{id}", Some("volume")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Status", "status"), ("Size", "size"), ("Bootable", "bootable")],
    id_field: "id",
    name_field: "name",
    update: PUT_WITH_METADATA,
};

pub const PROJECT: Kind = Kind {
    noun: "project",
    service: "identity",
    list: ("/projects", "projects"),
    show: ("/projects/{id}", Some("project")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Domain", "domain_id"), ("Enabled", "enabled")],
    id_field: "id",
    name_field: "name",
    update: PATCH_ENABLED,
};

pub const USER: Kind = Kind {
    noun: "user",
    service: "identity",
    list: ("/users", "users"),
    show: ("/users/{id}", Some("user")),
    headers: &[],
    columns: &[("ID", "id"), ("Name", "name"), ("Domain", "domain_id"), ("Enabled", "enabled")],
    id_field: "id",
    name_field: "name",
    update: PATCH_ENABLED,
};

/// A key as one step of a JSON pointer (RFC 6901: `~` and `/` escaped).
fn pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_pages_are_found_in_every_services_shape() {
        let nova = json!({"servers": [1], "servers_links": [{"rel": "next",
            "href": "http://other-name:8774/v2.1/servers/detail?limit=1&marker=a"}]});
        assert_eq!(
            next_page(&nova, "servers", "http://127.0.0.1:8774/v2.1").as_deref(),
            Some("/servers/detail?limit=1&marker=a")
        );
        let cinder = json!({"volumes": [1], "volumes_links": [{"rel": "next",
            "href": "http://h:8776/v3/p1/volumes/detail?marker=b"}]});
        assert_eq!(next_page(&cinder, "volumes", "http://h:8776/v3/p1/").as_deref(), Some("/volumes/detail?marker=b"));
        let glance = json!({"images": [1], "next": "/v2/images?marker=c"});
        assert_eq!(next_page(&glance, "images", "http://h:9292").as_deref(), Some("/v2/images?marker=c"));
        assert_eq!(next_page(&json!({"networks": [1]}), "networks", "http://h:9696"), None);
        let keystone = json!({"users": [1], "links": {"self": "x", "next": "http://h:5000/v3/users?marker=d"}});
        assert_eq!(next_page(&keystone, "users", "http://h:5000/v3").as_deref(), Some("/users?marker=d"));
        let last = json!({"users": [1], "links": {"self": "x", "next": null}});
        assert_eq!(next_page(&last, "users", "http://h:5000/v3"), None);
        // A link outside the endpoint is not followed.
        let odd = json!({"ports": [1], "ports_links": [{"rel": "next", "href": "http://h:9696/elsewhere?x"}]});
        assert_eq!(next_page(&odd, "ports", "http://h:9696/v2.0"), None);
    }
}
