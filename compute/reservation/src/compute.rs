//! How the reservation service reaches compute: read a hypervisor (to make it
//! reservable), hand a host to a reservation at a lease's start, and at its end remove
//! the reservation's servers and take the host back. Every call is idempotent, so an
//! event retried after a crash or a failure repeats it safely.
//!
//! [`HttpCompute`] calls compute's API with the service's own token (an admin);
//! [`FakeCompute`] keeps hosts in memory for tests and benchmarks at scale.

use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use stratus_common::auth::service_token::TokenSource;

/// A hypervisor as compute reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hypervisor {
    pub hostname: String,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub local_gb: i64,
    pub cpu_info: String,
    pub service_host: String,
}

pub trait Compute: Send + Sync {
    /// The hypervisor named `name` (its hostname or its service host), if compute has it.
    fn hypervisor(&self, name: &str) -> BoxFuture<'_, anyhow::Result<Option<Hypervisor>>>;
    /// Holds `host` for `reservation` of `project`: only its servers land there.
    fn reserve(&self, host: &str, reservation: &str, project: &str) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Deletes the servers launched into `reservation` on `host` and gives the host back.
    /// A server whose snapshot is still being taken is waited for (an error: the end
    /// event is tried again later), so a snapshot asked for before the end completes.
    fn release(&self, host: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Snapshots each server launched into `reservation` on `host` into an image of
    /// `project` (`before_end: snapshot`), once per server and lease: `label` (the
    /// lease's id) marks the images, and a server that has one is left alone.
    fn snapshot(&self, host: &str, reservation: &str, project: &str, label: &str) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Every hypervisor's health: true when it is up and enabled.
    fn health(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, bool>>>;
    /// Flavor `id` as `project` sees it (public, or private with access given to the
    /// project), with its `extra_specs`; None when the project has no such flavor.
    fn flavor(&self, id: &str, project: &str) -> BoxFuture<'_, anyhow::Result<Option<Value>>>;
    /// Holds a slice of `host` (`size`: vCPUs, MB of RAM, GB of disk) for a
    /// `flavor:instance` reservation of `project`.
    fn reserve_slice(
        &self,
        host: &str,
        reservation: &str,
        project: &str,
        size: (i64, i64, i64),
    ) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Makes the private flavor a `flavor:instance` reservation's servers boot with:
    /// id = the reservation's, named `reservation:<id>`, shaped as `source`, usable by
    /// `project` only, and marked so its servers run in the reservation.
    fn make_flavor(&self, reservation: &str, project: &str, source: &Value) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Deletes that flavor (gone already is fine).
    fn drop_flavor(&self, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>>;
}

/// The flavor extra spec that puts a flavor's servers into a reservation (compute's
/// `RESERVATION_SPEC`, the key Blazar uses).
pub const RESERVATION_SPEC: &str = "aggregate_instance_extra_specs:reservation";

/// A flavor's extra specs with the reservation's mark: what a reservation's flavor gets.
fn reservation_specs(reservation: &str, source: &Value) -> serde_json::Map<String, Value> {
    let mut specs = source["extra_specs"].as_object().cloned().unwrap_or_default();
    specs.insert(RESERVATION_SPEC.into(), json!(reservation));
    specs
}

/// Compute's API (and the image service's, for the snapshots it takes), called with
/// the service's token.
pub struct HttpCompute {
    compute: crate::client::ServiceClient,
    image: crate::client::ServiceClient,
}

/// The image property that marks a lease's snapshot of a server: `<lease>:<server>`.
pub const SNAPSHOT_PROPERTY: &str = "stratus_lease_snapshot";

impl HttpCompute {
    /// `url`: compute's endpoint, ending in `/v2.1`; `image_url`: the image service's.
    pub fn new(http: reqwest::Client, url: String, image_url: String, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            compute: crate::client::ServiceClient {
                http: http.clone(),
                url,
                tokens: tokens.clone(),
                name: "compute",
                headers: vec![("OpenStack-API-Version", "compute 2.53")],
            },
            image: crate::client::ServiceClient { http, url: image_url, tokens, name: "image", headers: vec![] },
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        self.compute.call(method, path, body).await
    }

    /// The servers launched into `reservation` on `host`, every project's.
    async fn servers_in(&self, host: &str, reservation: &str) -> anyhow::Result<Vec<Value>> {
        let list = format!(
            "/servers/detail?all_tenants=1&host={}&reservation={}",
            urlencoding::encode(host),
            urlencoding::encode(reservation)
        );
        let (status, body) = self.call(reqwest::Method::GET, &list, None).await?;
        anyhow::ensure!(status == 200, "compute refused to list the host's servers ({status}): {body}");
        Ok(body["servers"].as_array().cloned().unwrap_or_default())
    }

    /// Holds `host` (whole, or the slice `body` sizes) for a reservation.
    async fn hold(&self, host: String, body: Value) -> anyhow::Result<()> {
        let path = format!("/os-hypervisors/{}/reservation", urlencoding::encode(&host));
        let (status, answer) = self.call(reqwest::Method::PUT, &path, Some(body)).await?;
        anyhow::ensure!(status == 200, "compute refused to hold host {host} ({status}): {answer}");
        Ok(())
    }

    /// Gives a lease's snapshot to the server's project (the service's token made it).
    async fn give_image(&self, image: &Value, project: &str) -> anyhow::Result<()> {
        if image["owner"].as_str() == Some(project) {
            return Ok(());
        }
        let id = image["id"].as_str().unwrap_or_default();
        let patch = json!([{"op": "replace", "path": "/owner", "value": project}]);
        let (status, body) = self.image.call_patch(&format!("/v2/images/{id}"), patch).await?;
        anyhow::ensure!(status == 200, "the image service refused to give image {id} to {project} ({status}): {body}");
        Ok(())
    }
}

impl Compute for HttpCompute {
    fn hypervisor(&self, name: &str) -> BoxFuture<'_, anyhow::Result<Option<Hypervisor>>> {
        let name = name.to_string();
        Box::pin(async move {
            // Those whose name holds `name` first (one host, not a thousand), then all.
            let narrow = format!("/os-hypervisors/detail?hypervisor_hostname_pattern={}", urlencoding::encode(&name));
            let mut found = None;
            for path in [narrow.as_str(), "/os-hypervisors/detail"] {
                let (status, body) = self.call(reqwest::Method::GET, path, None).await?;
                anyhow::ensure!(status == 200, "compute refused to list hypervisors ({status}): {body}");
                found = body["hypervisors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|h| {
                        h["hypervisor_hostname"].as_str() == Some(name.as_str())
                            || h["service"]["host"].as_str() == Some(name.as_str())
                    })
                    .cloned();
                if found.is_some() {
                    break;
                }
            }
            Ok(found.map(|h| Hypervisor {
                hostname: h["hypervisor_hostname"].as_str().unwrap_or_default().to_string(),
                hypervisor_type: h["hypervisor_type"].as_str().unwrap_or_default().to_string(),
                hypervisor_version: h["hypervisor_version"].as_i64().unwrap_or_default(),
                vcpus: h["vcpus"].as_i64().unwrap_or_default(),
                memory_mb: h["memory_mb"].as_i64().unwrap_or_default(),
                local_gb: h["local_gb"].as_i64().unwrap_or_default(),
                cpu_info: match &h["cpu_info"] {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                },
                service_host: h["service"]["host"].as_str().unwrap_or_default().to_string(),
            }))
        })
    }

    fn reserve(&self, host: &str, reservation: &str, project: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let body = json!({"reservation": {"id": reservation, "project_id": project}});
        Box::pin(self.hold(host.to_string(), body))
    }

    fn health(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, bool>>> {
        Box::pin(async move {
            let (status, body) = self.call(reqwest::Method::GET, "/os-hypervisors/detail", None).await?;
            anyhow::ensure!(status == 200, "compute refused to list hypervisors ({status}): {body}");
            Ok(body["hypervisors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| {
                    let name = h["hypervisor_hostname"].as_str()?.to_string();
                    Some((name, h["state"] == "up" && h["status"] == "enabled"))
                })
                .collect())
        })
    }

    fn flavor(&self, id: &str, project: &str) -> BoxFuture<'_, anyhow::Result<Option<Value>>> {
        let (id, project) = (urlencoding::encode(id).into_owned(), project.to_string());
        Box::pin(async move {
            let (status, body) = self.call(reqwest::Method::GET, &format!("/flavors/{id}"), None).await?;
            match status {
                200 => {}
                404 => return Ok(None),
                _ => anyhow::bail!("compute refused to show flavor {id} ({status}): {body}"),
            }
            let mut flavor = body["flavor"].clone();
            if flavor["os-flavor-access:is_public"] == false {
                let path = format!("/flavors/{id}/os-flavor-access");
                let (status, access) = self.call(reqwest::Method::GET, &path, None).await?;
                anyhow::ensure!(status == 200, "compute refused to show flavor {id}'s access ({status}): {access}");
                let allowed =
                    access["flavor_access"].as_array().into_iter().flatten().any(|a| a["tenant_id"] == project);
                if !allowed {
                    return Ok(None);
                }
            }
            let (status, specs) =
                self.call(reqwest::Method::GET, &format!("/flavors/{id}/os-extra_specs"), None).await?;
            anyhow::ensure!(status == 200, "compute refused to show flavor {id}'s extra specs ({status}): {specs}");
            flavor["extra_specs"] = specs["extra_specs"].clone();
            if let Value::Object(m) = &mut flavor {
                m.remove("links");
            }
            Ok(Some(flavor))
        })
    }

    fn reserve_slice(
        &self,
        host: &str,
        reservation: &str,
        project: &str,
        size: (i64, i64, i64),
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let body = json!({"reservation": {"id": reservation, "project_id": project,
                                          "vcpus": size.0, "memory_mb": size.1, "disk_gb": size.2}});
        Box::pin(self.hold(host.to_string(), body))
    }

    fn make_flavor(&self, reservation: &str, project: &str, source: &Value) -> BoxFuture<'_, anyhow::Result<()>> {
        let id = reservation.to_string();
        let flavor = json!({"flavor": {
            "id": id, "name": format!("reservation:{id}"),
            "vcpus": source["vcpus"], "ram": source["ram"], "disk": source["disk"],
            "OS-FLV-EXT-DATA:ephemeral": source["OS-FLV-EXT-DATA:ephemeral"].as_i64().unwrap_or(0),
            "swap": source["swap"].as_i64().unwrap_or(0),
            "os-flavor-access:is_public": false,
        }});
        let specs = json!({"extra_specs": reservation_specs(&id, source)});
        let access = json!({"addTenantAccess": {"tenant": project}});
        Box::pin(async move {
            let (status, body) = self.call(reqwest::Method::POST, "/flavors", Some(flavor)).await?;
            // 409: made by an earlier try of this event.
            anyhow::ensure!(status == 200 || status == 409, "compute refused to make flavor {id} ({status}): {body}");
            let (status, body) =
                self.call(reqwest::Method::POST, &format!("/flavors/{id}/os-extra_specs"), Some(specs)).await?;
            anyhow::ensure!(status == 200, "compute refused the extra specs of flavor {id} ({status}): {body}");
            let (status, body) =
                self.call(reqwest::Method::POST, &format!("/flavors/{id}/action"), Some(access)).await?;
            anyhow::ensure!(status == 200 || status == 409, "compute refused access to flavor {id} ({status}): {body}");
            Ok(())
        })
    }

    fn drop_flavor(&self, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let path = format!("/flavors/{}", urlencoding::encode(reservation));
        Box::pin(async move {
            let (status, body) = self.call(reqwest::Method::DELETE, &path, None).await?;
            anyhow::ensure!(status == 202 || status == 404, "compute refused to delete the flavor ({status}): {body}");
            Ok(())
        })
    }

    fn snapshot(&self, host: &str, reservation: &str, project: &str, label: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let (host, reservation, project, label) =
            (host.to_string(), reservation.to_string(), project.to_string(), label.to_string());
        Box::pin(async move {
            for s in self.servers_in(&host, &reservation).await? {
                let id = s["id"].as_str().unwrap_or_default();
                let mark = format!("{label}:{id}");
                // Taken already (an earlier try of this event): make sure it is the
                // project's, and take no second one.
                let path = format!("/v2/images?{SNAPSHOT_PROPERTY}={}", urlencoding::encode(&mark));
                let (status, found) = self.image.call(reqwest::Method::GET, &path, None).await?;
                anyhow::ensure!(status == 200, "the image service refused to list images ({status}): {found}");
                if let Some(image) = found["images"].as_array().and_then(|l| l.first()) {
                    self.give_image(image, &project).await?;
                    continue;
                }
                let name = format!("{}-lease-snapshot", s["name"].as_str().unwrap_or(id));
                let body = json!({"createImage": {"name": name, "metadata": {SNAPSHOT_PROPERTY: mark}}});
                let (status, answer) =
                    self.call(reqwest::Method::POST, &format!("/servers/{id}/action"), Some(body)).await?;
                match status {
                    202 => {}
                    // Gone meanwhile: nothing to keep.
                    404 => continue,
                    _ => anyhow::bail!("compute refused to snapshot server {id} ({status}): {answer}"),
                }
                let image_id = answer["image_id"].as_str().unwrap_or_default();
                let (status, image) =
                    self.image.call(reqwest::Method::GET, &format!("/v2/images/{image_id}"), None).await?;
                anyhow::ensure!(status == 200, "the image service cannot show snapshot {image_id} ({status}): {image}");
                self.give_image(&image, &project).await?;
            }
            Ok(())
        })
    }

    fn release(&self, host: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let host = host.to_string();
        let reservation = reservation.to_string();
        Box::pin(async move {
            // Only the servers launched into this reservation: a server that was on the
            // host before the lease started is not the lease's to delete.
            let servers = self.servers_in(&host, &reservation).await?;
            if let Some(s) =
                servers.iter().find(|s| s["OS-EXT-STS:task_state"].as_str().is_some_and(|t| t.starts_with("image_")))
            {
                anyhow::bail!("server {} is still being snapshotted; its lease ends once that is done", s["id"]);
            }
            for s in &servers {
                let id = s["id"].as_str().unwrap_or_default();
                let (status, body) = self.call(reqwest::Method::DELETE, &format!("/servers/{id}"), None).await?;
                anyhow::ensure!(
                    status == 204 || status == 404,
                    "compute refused to delete server {id} ({status}): {body}"
                );
            }
            let path = format!(
                "/os-hypervisors/{}/reservation/{}",
                urlencoding::encode(&host),
                urlencoding::encode(&reservation)
            );
            let (status, body) = self.call(reqwest::Method::DELETE, &path, None).await?;
            anyhow::ensure!(status == 204 || status == 404, "compute refused to give the host back ({status}): {body}");
            Ok(())
        })
    }
}

/// A fake host's slices: reservation → (project, (vCPUs, MB of RAM, GB of disk)).
pub type FakeSlices = HashMap<String, (String, (i64, i64, i64))>;

/// Hosts in memory: which reservation holds each. For tests and benchmarks.
#[derive(Default)]
pub struct FakeCompute {
    hosts: Mutex<HashMap<String, Option<(String, String)>>>,
    /// Slices per host.
    slices: Mutex<HashMap<String, FakeSlices>>,
    /// Flavors by id (Nova's shape, with `extra_specs`; private ones list their
    /// projects in `projects`). `with_hosts` adds a public `m1.small`: 2 vCPUs, 4096
    /// MB, 20 GB.
    pub flavors: Mutex<HashMap<String, Value>>,
    /// When set, every call fails with this message (to test retries and errors).
    pub fail: Mutex<Option<String>>,
    /// Calls made, in order (`reserve host res`, `release host res`).
    pub calls: Mutex<Vec<String>>,
    /// Hosts reported down.
    pub down: Mutex<std::collections::HashSet<String>>,
}

impl FakeCompute {
    pub fn with_hosts(names: impl IntoIterator<Item = String>) -> Arc<Self> {
        let me = Self::default();
        me.hosts.lock().unwrap().extend(names.into_iter().map(|n| (n, None)));
        me.flavors.lock().unwrap().insert(
            "m1.small".into(),
            json!({"id": "m1.small", "name": "m1.small", "vcpus": 2, "ram": 4096, "disk": 20,
                   "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "os-flavor-access:is_public": true, "extra_specs": {}}),
        );
        Arc::new(me)
    }

    /// The slices of `host`: reservation → (project, size).
    pub fn slices(&self, host: &str) -> FakeSlices {
        self.slices.lock().unwrap().get(host).cloned().unwrap_or_default()
    }

    /// The reservation and project holding `host`, if any.
    pub fn holder(&self, host: &str) -> Option<(String, String)> {
        self.hosts.lock().unwrap().get(host).cloned().flatten()
    }

    fn failing(&self) -> anyhow::Result<()> {
        match self.fail.lock().unwrap().clone() {
            Some(m) => anyhow::bail!(m),
            None => Ok(()),
        }
    }
}

impl Compute for FakeCompute {
    fn health(&self) -> BoxFuture<'_, anyhow::Result<HashMap<String, bool>>> {
        let down = self.down.lock().unwrap().clone();
        let states = self.hosts.lock().unwrap().keys().map(|h| (h.clone(), !down.contains(h))).collect();
        Box::pin(async move {
            self.failing()?;
            Ok(states)
        })
    }

    fn hypervisor(&self, name: &str) -> BoxFuture<'_, anyhow::Result<Option<Hypervisor>>> {
        let found = self.hosts.lock().unwrap().contains_key(name);
        let name = name.to_string();
        Box::pin(async move {
            self.failing()?;
            Ok(found.then(|| Hypervisor {
                hostname: name.clone(),
                hypervisor_type: "fake".into(),
                hypervisor_version: 1,
                vcpus: 8,
                memory_mb: 16384,
                local_gb: 100,
                cpu_info: String::new(),
                service_host: name,
            }))
        })
    }

    fn reserve(&self, host: &str, reservation: &str, project: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().and_then(|_| {
            let mut hosts = self.hosts.lock().unwrap();
            let slot = hosts.get_mut(host).ok_or_else(|| anyhow::anyhow!("no host {host}"))?;
            match slot {
                Some((held, _)) if held != reservation => anyhow::bail!("{host} is held by {held}"),
                _ => *slot = Some((reservation.to_string(), project.to_string())),
            }
            self.calls.lock().unwrap().push(format!("reserve {host} {reservation}"));
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn release(&self, host: &str, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().map(|_| {
            let mut hosts = self.hosts.lock().unwrap();
            if let Some(slot) = hosts.get_mut(host) {
                if slot.as_ref().is_some_and(|(held, _)| held == reservation) {
                    *slot = None;
                }
            }
            if let Some(slices) = self.slices.lock().unwrap().get_mut(host) {
                slices.remove(reservation);
            }
            self.calls.lock().unwrap().push(format!("release {host} {reservation}"));
        });
        Box::pin(async move { r })
    }

    fn flavor(&self, id: &str, project: &str) -> BoxFuture<'_, anyhow::Result<Option<Value>>> {
        let found = self.flavors.lock().unwrap().get(id).cloned().filter(|f| {
            f["os-flavor-access:is_public"] != false
                || f["projects"].as_array().is_some_and(|p| p.iter().any(|p| p == project))
        });
        Box::pin(async move {
            self.failing()?;
            Ok(found)
        })
    }

    fn reserve_slice(
        &self,
        host: &str,
        reservation: &str,
        project: &str,
        size: (i64, i64, i64),
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().and_then(|_| {
            match self.hosts.lock().unwrap().get(host) {
                None => anyhow::bail!("no host {host}"),
                Some(Some((held, _))) => anyhow::bail!("{host} is held by {held}"),
                Some(None) => {}
            }
            let mut slices = self.slices.lock().unwrap();
            slices.entry(host.to_string()).or_default().insert(reservation.to_string(), (project.to_string(), size));
            self.calls.lock().unwrap().push(format!("slice {host} {reservation}"));
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn make_flavor(&self, reservation: &str, project: &str, source: &Value) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().map(|_| {
            let mut flavor = source.clone();
            flavor["id"] = json!(reservation);
            flavor["name"] = json!(format!("reservation:{reservation}"));
            flavor["os-flavor-access:is_public"] = json!(false);
            flavor["projects"] = json!([project]);
            flavor["extra_specs"] = Value::Object(reservation_specs(reservation, source));
            self.flavors.lock().unwrap().insert(reservation.to_string(), flavor);
            self.calls.lock().unwrap().push(format!("flavor {reservation}"));
        });
        Box::pin(async move { r })
    }

    fn drop_flavor(&self, reservation: &str) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().map(|_| {
            self.flavors.lock().unwrap().remove(reservation);
            self.calls.lock().unwrap().push(format!("unflavor {reservation}"));
        });
        Box::pin(async move { r })
    }

    fn snapshot(
        &self,
        host: &str,
        reservation: &str,
        _project: &str,
        _label: &str,
    ) -> BoxFuture<'_, anyhow::Result<()>> {
        let r = self.failing().map(|_| {
            self.calls.lock().unwrap().push(format!("snapshot {host} {reservation}"));
        });
        Box::pin(async move { r })
    }
}
