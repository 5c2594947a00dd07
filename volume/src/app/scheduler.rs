//! Where a new volume goes: Cinder's filter scheduler, small. Backends an operator
//! disabled (`os-services/disable`) take none. Each backend reports its
//! capabilities (`backends::capabilities`); a backend qualifies when it satisfies the
//! volume type's extra specs (the capabilities filter) and has the room for the whole
//! volume (the capacity filter: free space at least its size, since thin volumes grow
//! up to it); among those the one with the most free space takes it (the capacity
//! weigher). When none qualifies the volume is made in `error` and the project gets a
//! user message saying why.
//!
//! Extra specs are read as Cinder's: `volume_backend_name=B` names the backend, a
//! `capabilities:` scope names a capability, other scopes (`RESKEY:`, `quota:`, ...)
//! are for other parts; an unscoped key is matched against the capability of its name.
//! Values are plain (equal to the capability) or use Cinder's operators: `<is> True`,
//! `<in> text`, `<all-in> a b`, `<or> a <or> b`, numeric `==` `!=` `>=` `<=`, and string
//! `s==` `s!=` `s>=` `s>` `s<=` `s<`. Decision: an unscoped key naming a capability no
//! backend reports is not matched (Cinder would find no backend for it), so types may
//! carry specs meant for other services.

use super::backends::capabilities;
use super::{AppResult, Error, VolumeService};
use crate::store::VolumeType;
use serde_json::{Map, Value};

impl VolumeService {
    /// The backend for a new volume of type `t` and `size` GiB, or why none can take it.
    pub(crate) async fn schedule(&self, t: &VolumeType, size: i64) -> AppResult<Result<String, String>> {
        // What the volumes were given, per backend, only when a spec asks for it (a
        // scan of every volume, which the common create does not need).
        let asks_allocated = t
            .extra_specs
            .keys()
            .any(|k| k.ends_with("allocated_capacity_gb") || k.ends_with("provisioned_capacity_gb"));
        let allocated = if asks_allocated { self.store.allocated_by_backend().await? } else { Default::default() };
        let mut names: Vec<&String> = self.drivers.keys().collect();
        names.sort();
        let mut best: Option<(f64, &String)> = None;
        let mut refusals = Vec::new();
        let disabled = self.store.disabled_backends().await?;
        for name in names {
            if let Some(why) = disabled.get(name.as_str()) {
                let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                refusals.push(format!("backend {name}: disabled by an operator{why}"));
                continue;
            }
            let driver = &self.drivers[name];
            // A backend whose storage does not answer takes nothing; the others may.
            let room = match driver.capacity().await {
                Ok(room) => room,
                Err(e) => {
                    tracing::warn!(backend = %name, error = %format!("{e:#}"), "a backend's storage does not answer");
                    refusals.push(format!("backend {name}: its storage does not answer"));
                    continue;
                }
            };
            let caps = capabilities(name, driver.as_ref(), room, allocated.get(name.as_str()).copied().unwrap_or(0));
            if let Err(why) = satisfies(&t.extra_specs, &caps) {
                refusals.push(format!("backend {name}: {why}"));
                continue;
            }
            if room.free_gb < size as f64 {
                refusals.push(format!("backend {name}: {size} GiB asked, {:.0} GiB free", room.free_gb.floor()));
                continue;
            }
            if best.is_none_or(|(free, _)| room.free_gb > free) {
                best = Some((room.free_gb, name));
            }
        }
        Ok(match best {
            Some((_, name)) => Ok(name.clone()),
            None if refusals.is_empty() => Err("this cloud has no backend".into()),
            None => Err(refusals.join("; ")),
        })
    }
}

impl VolumeService {
    /// Whether backend `name` satisfies type `t`'s extra specs (a retype that stays on
    /// its backend), or why not.
    pub(crate) async fn backend_suits(&self, name: &str, t: &VolumeType) -> AppResult<Result<(), String>> {
        let Some(driver) = self.drivers.get(name) else {
            return Ok(Err(format!("this cloud has no backend {name}")));
        };
        let room = driver.capacity().await.map_err(Error::Internal)?;
        Ok(satisfies(&t.extra_specs, &capabilities(name, driver.as_ref(), room, 0)))
    }
}

/// Whether capabilities `caps` satisfy extra specs `specs`; else the first spec that
/// fails, said for the user.
pub fn satisfies(specs: &Map<String, Value>, caps: &Value) -> Result<(), String> {
    for (key, want) in specs {
        let cap = match key.split_once(':') {
            Some(("capabilities", k)) => k,
            Some(_) => continue,
            None => key.as_str(),
        };
        let Some(have) = caps.get(cap) else { continue };
        let want = want.as_str().map(str::to_string).unwrap_or_else(|| want.to_string());
        if !matches(have, &want) {
            let have = have.as_str().map(str::to_string).unwrap_or_else(|| have.to_string());
            return Err(format!("its {cap} is {have}, the volume type asks for {want}"));
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// One extra spec value (`req`) against one capability (`have`).
fn matches(have: &Value, req: &str) -> bool {
    let have_text = text(have);
    let number = |s: &str| s.trim().parse::<f64>().ok();
    let words: Vec<&str> = req.split_whitespace().collect();
    match words.as_slice() {
        ["<is>", b] => boolean(have) == Some(b.eq_ignore_ascii_case("true")),
        ["<in>", ..] => have_text.contains(req.trim_start()["<in>".len()..].trim()),
        ["<all-in>", wanted @ ..] => wanted.iter().all(|w| have_text.contains(w)),
        ["<or>", ..] => req.split("<or>").map(str::trim).filter(|a| !a.is_empty()).any(|a| a == have_text),
        [op @ ("==" | "!=" | ">=" | "<="), n] => match (number(&have_text), number(n)) {
            (Some(h), Some(n)) => match *op {
                "==" => h == n,
                "!=" => h != n,
                ">=" => h >= n,
                _ => h <= n,
            },
            _ => false,
        },
        [op @ ("s==" | "s!=" | "s>=" | "s>" | "s<=" | "s<"), s] => {
            let (h, s) = (have_text.as_str(), *s);
            match *op {
                "s==" => h == s,
                "s!=" => h != s,
                "s>=" => h >= s,
                "s>" => h > s,
                "s<=" => h <= s,
                _ => h < s,
            }
        }
        _ => match boolean(have) {
            Some(b) if have.is_boolean() => boolean(&Value::String(req.trim().into())) == Some(b),
            _ => have_text == req.trim(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_specs_match_as_cinders_capabilities_filter() {
        let caps = json!({"volume_backend_name": "file", "storage_protocol": "file", "vendor_name": "Stratus",
                          "thin_provisioning_support": true, "multiattach": false, "free_capacity_gb": 40.5,
                          "driver_version": "0.1.0"});
        let specs = |v: Value| v.as_object().unwrap().clone();
        for ok in [
            json!({}),
            json!({"volume_backend_name": "file"}),
            json!({"storage_protocol": "file", "vendor_name": "Stratus"}),
            json!({"thin_provisioning_support": "<is> True", "multiattach": "<is> False"}),
            json!({"thin_provisioning_support": "True"}),
            json!({"capabilities:storage_protocol": "<or> iSCSI <or> file"}),
            json!({"vendor_name": "<in> Strat"}),
            json!({"free_capacity_gb": ">= 40"}),
            json!({"driver_version": "s>= 0.0.9"}),
            json!({"RESKEY:availability_zones": "elsewhere", "quota:read_bytes_sec": "100", "unreported_key": "x"}),
        ] {
            assert!(satisfies(&specs(ok.clone()), &caps).is_ok(), "{ok}");
        }
        for bad in [
            json!({"volume_backend_name": "ceph"}),
            json!({"storage_protocol": "iSCSI"}),
            json!({"multiattach": "<is> True"}),
            json!({"capabilities:vendor_name": "Open Source"}),
            json!({"free_capacity_gb": ">= 100"}),
            json!({"storage_protocol": "<or> iSCSI <or> RBD"}),
        ] {
            let why = satisfies(&specs(bad.clone()), &caps).unwrap_err();
            assert!(why.contains("the volume type asks for"), "{bad}: {why}");
        }
    }
}
