//! Where a client's credentials come from, as the openstack client finds them:
//! a cloud of `clouds.yaml` (named by `--os-cloud` or `OS_CLOUD`; the file is looked for
//! in the current directory, then `~/.config/openstack/`, then `/etc/openstack/`, or
//! at `OS_CLIENT_CONFIG_FILE`), then the `OS_*` variables, which win.

use crate::Error;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What authenticating and choosing endpoints needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CloudConfig {
    pub auth_url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub user_id: Option<String>,
    pub user_domain_name: Option<String>,
    pub user_domain_id: Option<String>,
    pub project_name: Option<String>,
    pub project_id: Option<String>,
    pub project_domain_name: Option<String>,
    pub project_domain_id: Option<String>,
    pub application_credential_id: Option<String>,
    pub application_credential_secret: Option<String>,
    pub region_name: Option<String>,
    /// `public` (default), `internal` or `admin`.
    pub interface: String,
}

impl CloudConfig {
    /// The configuration for `cloud` (or `OS_CLOUD`), with the `OS_*` variables over it.
    pub fn load(cloud: Option<&str>) -> Result<Self, Error> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let cloud = cloud.map(str::to_string).or_else(|| env.get("OS_CLOUD").cloned()).filter(|c| !c.is_empty());
        let mut cfg = match &cloud {
            Some(name) => {
                let path = find_clouds_yaml(&env).ok_or_else(|| {
                    Error::Config(format!(
                        "cloud {name:?} asked for, but no clouds.yaml was found (./clouds.yaml, \
                         ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)"
                    ))
                })?;
                Self::from_clouds_yaml(&path, name)?
            }
            None => Self::default(),
        };
        cfg.apply_env(&env);
        if cfg.interface.is_empty() {
            cfg.interface = "public".into();
        }
        if cfg.auth_url.is_empty() {
            return Err(Error::Config(
                "no cloud to talk to: name one of clouds.yaml with --os-cloud or OS_CLOUD, or set OS_AUTH_URL \
                 and the other OS_* variables"
                    .into(),
            ));
        }
        Ok(cfg)
    }

    /// The cloud `name` of a clouds.yaml file.
    pub fn from_clouds_yaml(path: &Path, name: &str) -> Result<Self, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
        let doc: Value = serde_yaml::from_str(&text)
            .map_err(|e| Error::Config(format!("{} is not valid YAML: {e}", path.display())))?;
        let cloud = doc.get("clouds").and_then(|c| c.get(name)).ok_or_else(|| {
            let known: Vec<String> = doc["clouds"].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
            Error::Config(format!("{} has no cloud {name:?} (it has: {})", path.display(), known.join(", ")))
        })?;
        let auth = &cloud["auth"];
        let text = |v: &Value, k: &str| v.get(k).and_then(scalar);
        Ok(Self {
            auth_url: text(auth, "auth_url").unwrap_or_default(),
            username: text(auth, "username"),
            password: text(auth, "password"),
            user_id: text(auth, "user_id"),
            user_domain_name: text(auth, "user_domain_name"),
            user_domain_id: text(auth, "user_domain_id"),
            project_name: text(auth, "project_name").or_else(|| text(auth, "tenant_name")),
            project_id: text(auth, "project_id").or_else(|| text(auth, "tenant_id")),
            project_domain_name: text(auth, "project_domain_name"),
            project_domain_id: text(auth, "project_domain_id"),
            application_credential_id: text(auth, "application_credential_id"),
            application_credential_secret: text(auth, "application_credential_secret"),
            region_name: text(cloud, "region_name"),
            interface: text(cloud, "interface").or_else(|| text(cloud, "endpoint_type")).unwrap_or_default(),
        })
    }

    fn apply_env(&mut self, env: &HashMap<String, String>) {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let set = |field: &mut Option<String>, k: &str| {
            if let Some(v) = get(k) {
                *field = Some(v);
            }
        };
        if let Some(v) = get("OS_AUTH_URL") {
            self.auth_url = v;
        }
        set(&mut self.username, "OS_USERNAME");
        set(&mut self.password, "OS_PASSWORD");
        set(&mut self.user_id, "OS_USER_ID");
        set(&mut self.user_domain_name, "OS_USER_DOMAIN_NAME");
        set(&mut self.user_domain_id, "OS_USER_DOMAIN_ID");
        set(&mut self.project_name, "OS_PROJECT_NAME");
        set(&mut self.project_id, "OS_PROJECT_ID");
        set(&mut self.project_domain_name, "OS_PROJECT_DOMAIN_NAME");
        set(&mut self.project_domain_id, "OS_PROJECT_DOMAIN_ID");
        set(&mut self.application_credential_id, "OS_APPLICATION_CREDENTIAL_ID");
        set(&mut self.application_credential_secret, "OS_APPLICATION_CREDENTIAL_SECRET");
        set(&mut self.region_name, "OS_REGION_NAME");
        if let Some(v) = get("OS_INTERFACE").or_else(|| get("OS_ENDPOINT_TYPE")) {
            self.interface = v.trim_end_matches("URL").to_lowercase();
        }
    }

    /// Keystone's auth body for these credentials.
    pub fn auth_body(&self) -> Result<Value, Error> {
        if let (Some(id), Some(secret)) = (&self.application_credential_id, &self.application_credential_secret) {
            return Ok(serde_json::json!({"auth": {"identity": {"methods": ["application_credential"],
                "application_credential": {"id": id, "secret": secret}}}}));
        }
        let password = self
            .password
            .clone()
            .ok_or_else(|| Error::Config("no password: set OS_PASSWORD or auth.password in clouds.yaml".into()))?;
        let mut user = serde_json::Map::new();
        match (&self.user_id, &self.username) {
            (Some(id), _) => {
                user.insert("id".into(), id.clone().into());
            }
            (None, Some(name)) => {
                user.insert("name".into(), name.clone().into());
                user.insert("domain".into(), domain(&self.user_domain_id, &self.user_domain_name));
            }
            (None, None) => return Err(Error::Config("no user: set OS_USERNAME or auth.username".into())),
        }
        user.insert("password".into(), password.into());
        let mut auth = serde_json::json!({"identity": {"methods": ["password"], "password": {"user": user}}});
        match (&self.project_id, &self.project_name) {
            (Some(id), _) => auth["scope"] = serde_json::json!({"project": {"id": id}}),
            (None, Some(name)) => {
                auth["scope"] = serde_json::json!({"project": {"name": name,
                    "domain": domain(&self.project_domain_id, &self.project_domain_name)}})
            }
            (None, None) => {}
        }
        Ok(serde_json::json!({ "auth": auth }))
    }

    /// What tells one set of credentials from another (the token cache's key); the
    /// secrets are part of it, so a changed password is a new entry.
    pub fn identity_key(&self) -> String {
        format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            self.auth_url,
            self.user_id,
            self.username,
            self.user_domain_name,
            self.project_id,
            self.project_name,
            self.project_domain_name,
            self.application_credential_id,
            self.password,
            self.application_credential_secret
        )
    }
}

fn domain(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => serde_json::json!({ "id": id }),
        (None, Some(name)) => serde_json::json!({ "name": name }),
        (None, None) => serde_json::json!({ "id": "default" }),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The clouds.yaml the openstack client would read.
fn find_clouds_yaml(env: &HashMap<String, String>) -> Option<PathBuf> {
    if let Some(p) = env.get("OS_CLIENT_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let mut candidates = vec![PathBuf::from("clouds.yaml")];
    let config_home = env
        .get("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".config")));
    if let Some(dir) = config_home {
        candidates.push(dir.join("openstack").join("clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clouds_yaml_entries_read_as_the_openstack_client_reads_them() {
        let dir = std::env::temp_dir().join(format!("stratus-client-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("clouds.yaml");
        std::fs::write(
            &path,
            "clouds:\n  lab:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: alice\n      \
             password: 123456\n      project_name: demo\n      user_domain_name: Default\n      \
             project_domain_name: Default\n    region_name: CHI@UC\n    interface: public\n",
        )
        .unwrap();
        let c = CloudConfig::from_clouds_yaml(&path, "lab").unwrap();
        assert_eq!(c.auth_url, "http://127.0.0.1:5000/v3");
        assert_eq!(c.password.as_deref(), Some("123456"), "a password of digits stays text");
        assert_eq!(c.region_name.as_deref(), Some("CHI@UC"));
        let body = c.auth_body().unwrap();
        assert_eq!(body["auth"]["identity"]["password"]["user"]["name"], "alice");
        assert_eq!(body["auth"]["scope"]["project"]["domain"]["name"], "Default");
        let missing = CloudConfig::from_clouds_yaml(&path, "nope").unwrap_err().to_string();
        assert!(missing.contains("lab"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn application_credentials_need_no_user_or_scope() {
        let c = CloudConfig {
            auth_url: "http://x/v3".into(),
            application_credential_id: Some("ac".into()),
            application_credential_secret: Some("s".into()),
            ..Default::default()
        };
        let body = c.auth_body().unwrap();
        assert_eq!(body["auth"]["identity"]["methods"][0], "application_credential");
        assert!(body["auth"].get("scope").is_none());
    }
}
