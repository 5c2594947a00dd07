//! Configuration: one TOML file, every key overridable by environment variable.
//!
//! Keys are grouped in sections (`[database] url = ...`). Each service owns its section
//! type (`stratus_compute::config::ComputeConfig` for `[compute]`, ...) with its
//! defaults and its checks; this module holds the sections every process shares
//! (`[server]`, `[database]`, `[bus]`, `[service_auth]`, `[log]`) and the loader,
//! [`load`], which `stratusd` runs over the whole file.
//!
//! An environment variable `STRATUS_<SECTION>__<KEY>` (double underscore between
//! section and key) overrides the file; a value is read as its key's type wants it (a
//! password of digits stays a string, a port must be an integer, lists and tables in
//! TOML's inline syntax), and a variable naming no key, or a value of the wrong type, is
//! an error naming the variable. With no file and no variables every key has a
//! default, so `stratusd all-in-one` needs no configuration at all.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Prefix of every environment variable that overrides a configuration key.
pub const ENV_PREFIX: &str = "STRATUS_";

/// `FromStr` for enums read by serde (a command-line flag takes the same words as the
/// configuration file): `stratus_common::from_str_by_serde!(MyEnum, Other);`.
#[macro_export]
macro_rules! from_str_by_serde {
    ($($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
            }
        }
    )*};
}

/// `true`, `false` or `"auto"` (decided at start from what the host offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
    Auto,
}

impl Serialize for Switch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Switch::On => s.serialize_bool(true),
            Switch::Off => s.serialize_bool(false),
            Switch::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Switch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Switch::On),
            Raw::Bool(false) => Ok(Switch::Off),
            Raw::Text(t) => match t.as_str() {
                "auto" => Ok(Switch::Auto),
                "true" | "on" => Ok(Switch::On),
                "false" | "off" => Ok(Switch::Off),
                other => Err(serde::de::Error::custom(format!("expected true, false or \"auto\", not '{other}'"))),
            },
        }
    }
}

/// The service user a service runs as when it is not in identity's process (to read
/// quotas). Bootstrap creates none; an operator creates one with the `admin` or
/// `reader` role on a service project.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceAuthConfig {
    pub username: String,
    pub password: String,
    pub project: String,
    pub domain: String,
}

impl Default for ServiceAuthConfig {
    fn default() -> Self {
        Self { username: "admin".into(), password: String::new(), project: "admin".into(), domain: "Default".into() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where the SQLite database, clouds.yaml and openrc are kept.
    pub data_dir: PathBuf,
    /// Address the HTTP servers listen on.
    pub bind_host: String,
    /// Host name or address that goes into the service catalog and version links.
    pub public_host: String,
    /// Largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; empty means a SQLite file in the data directory.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// `memory` (in-process, the default) or `nats://host:port`.
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `stratus_identity=debug,info`.
    pub level: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let data_dir = std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/share/stratus"))
            .unwrap_or_else(|| PathBuf::from("./stratus-data"));
        Self { data_dir, bind_host: "127.0.0.1".into(), public_host: "127.0.0.1".into(), max_body_bytes: 1024 * 1024 }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 8 }
    }
}

impl Default for BusConfig {
    fn default() -> Self {
        Self { url: "memory".into() }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Builds a configuration of type `T` (sections as fields) from TOML text and a set of
/// environment variables; the error names the key or the variable.
pub fn load<T: Default + Serialize + DeserializeOwned>(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let mut root: toml::Table = toml::from_str(toml_text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    // The defaults tell each key's type, so a variable is read as its field wants it
    // (a password of digits stays a string; a port must be a number).
    let defaults = serde_json::to_value(T::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        let Some((section, key)) = rest.split_once("__") else { continue };
        let section = section.to_ascii_lowercase();
        let key = key.to_ascii_lowercase();
        let Some(default) = defaults.get(&section).and_then(|s| s.get(&key)) else {
            return Err(ConfigError::Invalid(format!("{name}: there is no setting [{section}] {key}")));
        };
        let parsed = typed_value(default, &value)
            .map_err(|want| ConfigError::Invalid(format!("{name}: expected {want}, not {value:?}")))?;
        let table = root.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(table) = table else {
            return Err(ConfigError::Invalid(format!("{section} is not a section")));
        };
        table.insert(key, parsed);
    }
    // The error names the key (`compute.weigher: unknown variant ...`).
    serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().message().to_string();
        ConfigError::Invalid(if key == "." { message } else { format!("{key}: {message}") })
    })
}

/// Checks a URL setting: an http:// or https:// URL with a host, or empty (this
/// deployment's own).
pub fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    let ok = url.is_empty()
        || url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "{key}: an http:// or https:// URL with a host (or empty for this deployment's own)"
        )))
    }
}

/// Checks an address setting: an IP address, or empty (`[server] public_host`).
pub fn check_ip(key: &str, ip: &str) -> Result<(), ConfigError> {
    if ip.is_empty() || ip.parse::<std::net::IpAddr>().is_ok() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!("{key}: an IP address (or empty for [server] public_host)")))
    }
}

impl DatabaseConfig {
    /// Checks the URL's scheme; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let db = &self.url;
        if db.is_empty()
            || db.starts_with("sqlite:")
            || db.starts_with("postgres://")
            || db.starts_with("postgresql://")
        {
            return Ok(());
        }
        Err(ConfigError::Invalid(
            "database.url: use sqlite://PATH or postgres://USER@HOST/DB (empty: SQLite in the data directory)".into(),
        ))
    }
}

impl BusConfig {
    /// Checks the URL's scheme; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bus = &self.url;
        if bus == "memory" || bus.starts_with("nats://") || bus.starts_with("tls://") {
            return Ok(());
        }
        Err(ConfigError::Invalid("bus.url: use memory or nats://HOST:PORT".into()))
    }
}

/// An environment variable's text as the type of the key's default wants it; the error
/// names what was expected.
fn typed_value(default: &serde_json::Value, value: &str) -> Result<toml::Value, &'static str> {
    use serde_json::Value as J;
    match default {
        J::String(_) => Ok(toml::Value::String(value.to_string())),
        J::Bool(_) => match value.trim() {
            "true" | "on" | "1" => Ok(toml::Value::Boolean(true)),
            "false" | "off" | "0" => Ok(toml::Value::Boolean(false)),
            // Switches also take "auto".
            other => Ok(toml::Value::String(other.to_string())),
        },
        J::Number(n) if n.is_f64() => value.trim().parse::<f64>().map(toml::Value::Float).map_err(|_| "a number"),
        J::Number(_) => value.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| "an integer"),
        // Lists and tables: TOML's inline syntax (`["a", "b"]`, `{ k = "v" }`).
        _ => toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .ok_or("a TOML list or table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default, deny_unknown_fields)]
    struct Whole {
        database: DatabaseConfig,
        service_auth: ServiceAuthConfig,
        server: ServerConfig,
    }

    #[test]
    fn variables_are_read_as_their_field_wants() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c: Whole = load("", env("STRATUS_SERVICE_AUTH__PASSWORD", "123456")).unwrap();
        assert_eq!(c.service_auth.password, "123456", "digits stay a string");
        let err = load::<Whole>("", env("STRATUS_SERVER__PORT_X", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_SERVER__PORT_X"), "{err}");
        let err = load::<Whole>("", env("STRATUS_NOPE__PORT", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_NOPE__PORT"), "{err}");
        let c: Whole =
            load("[database]\nurl = \"sqlite://a\"\n", env("STRATUS_DATABASE__URL", "postgres://x/y")).unwrap();
        assert_eq!(c.database.url, "postgres://x/y", "the environment overrides the file");
    }

    #[test]
    fn checks_name_the_key() {
        assert!(check_url("a.url", "").is_ok());
        assert!(check_url("a.url", "https://h:1/x").is_ok());
        assert!(check_url("a.url", "localhost:9696").unwrap_err().to_string().contains("a.url"));
        assert!(check_ip("a.ip", "10.0.0.1").is_ok());
        assert!(check_ip("a.ip", "host").unwrap_err().to_string().contains("a.ip"));
        let db = DatabaseConfig { url: "mysql://x".into(), ..Default::default() };
        assert!(db.validate().unwrap_err().to_string().contains("database.url"));
    }
}
