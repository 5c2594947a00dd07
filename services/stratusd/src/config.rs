//! The whole configuration file: the shared sections and each service's own
//! (`stratus_common::config` loads it; each section type lives with its service).

use serde::{Deserialize, Serialize};
use std::path::Path;
use stratus_baremetal::config::BaremetalConfig;
use stratus_common::config::{
    self, BusConfig, ConfigError, DatabaseConfig, LogConfig, ServerConfig, ServiceAuthConfig,
};
use stratus_compute::config::ComputeConfig;
use stratus_compute_agent::config::ComputeAgentConfig;
use stratus_identity::config::IdentityConfig;
use stratus_image::config::ImageConfig;
use stratus_network::config::NetworkConfig;
use stratus_network_agent::config::NetworkAgentConfig;
use stratus_reservation::config::ReservationConfig;
use stratus_volume::config::VolumeConfig;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub bus: BusConfig,
    pub identity: IdentityConfig,
    pub image: ImageConfig,
    pub network: NetworkConfig,
    pub network_agent: NetworkAgentConfig,
    pub compute: ComputeConfig,
    pub compute_agent: ComputeAgentConfig,
    pub volume: VolumeConfig,
    pub reservation: ReservationConfig,
    pub baremetal: BaremetalConfig,
    pub service_auth: ServiceAuthConfig,
    pub log: LogConfig,
}

impl Config {
    /// Reads the file (if given) and applies `STRATUS_*` environment overrides.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?
            }
            None => String::new(),
        };
        Self::from_parts(&text, std::env::vars())
    }

    /// Builds a configuration from TOML text and a set of environment variables, and
    /// checks it (each section checks its own keys).
    pub fn from_parts(toml_text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let config: Config = config::load(toml_text, env)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot: URLs of the right scheme, addresses, ranges.
    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.bus.validate()?;
        config::check_url("identity.url", &self.identity.url)?;
        self.compute.validate()?;
        self.compute_agent.validate()?;
        self.volume.validate()?;
        self.reservation.validate()?;
        self.baremetal.validate()?;
        self.network_agent.validate()
    }

    /// The secret signing instance ids between the metadata proxy and the metadata API:
    /// `[compute] metadata_secret`, else `[network_agent] metadata_secret`, else one
    /// generated once into `<data_dir>/metadata-secret` (readable by the owner only), so
    /// the processes of one host agree without configuration.
    pub fn metadata_secret(&self) -> std::io::Result<String> {
        for s in [&self.compute.metadata_secret, &self.network_agent.metadata_secret] {
            if !s.is_empty() {
                return Ok(s.clone());
            }
        }
        let path = self.server.data_dir.join("metadata-secret");
        if let Ok(s) = std::fs::read_to_string(&path) {
            if !s.trim().is_empty() {
                return Ok(s.trim().to_string());
            }
        }
        std::fs::create_dir_all(&self.server.data_dir)?;
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| std::io::Error::other("no system randomness"))?;
        let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // A temporary file of this process alone: agents of one host may start together.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(secret.as_bytes())?;
        }
        // Another process may have won the race: keep whichever landed first.
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(secret)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                Ok(std::fs::read_to_string(&path)?.trim().to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.server.data_dir.join("stratus.sqlite").display())
        } else {
            self.database.url.clone()
        }
    }

    /// Base URL of the identity API as other services reach it.
    pub fn identity_url(&self) -> String {
        if self.identity.url.is_empty() {
            format!("http://{}:{}", self.server.public_host, self.identity.port)
        } else {
            self.identity.url.trim_end_matches('/').to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stratus_compute::scheduler::Weigher;
    use stratus_compute_agent::config::{ComputeDriver, VirtType};

    #[test]
    fn defaults_need_no_file() {
        let c = Config::from_parts("", Vec::new()).unwrap();
        assert_eq!(c.identity.port, 5000);
        assert_eq!(c.bus.url, "memory");
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn environment_overrides_file() {
        let c = Config::from_parts(
            "[identity]\nport = 6000\ntoken_ttl_secs = 60\n",
            vec![
                ("STRATUS_IDENTITY__PORT".into(), "7000".into()),
                ("STRATUS_DATABASE__URL".into(), "postgres://x/y".into()),
                ("OTHER".into(), "1".into()),
            ],
        )
        .unwrap();
        assert_eq!(c.identity.port, 7000);
        assert_eq!(c.identity.token_ttl_secs, 60);
        assert_eq!(c.database_url(), "postgres://x/y");
    }

    #[test]
    fn metadata_secret_is_configured_or_generated_once() {
        let dir = std::env::temp_dir().join(format!("stratus-secret-{}-{}", std::process::id(), line!()));
        let mut c = Config::from_parts("", Vec::<(String, String)>::new()).unwrap();
        c.server.data_dir = dir.clone();
        let generated = c.metadata_secret().unwrap();
        assert_eq!(generated.len(), 64);
        assert_eq!(c.metadata_secret().unwrap(), generated, "a second process reads the same one");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("metadata-secret")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by the owner only");
        c.network_agent.metadata_secret = "agent".into();
        assert_eq!(c.metadata_secret().unwrap(), "agent");
        c.compute.metadata_secret = "compute".into();
        assert_eq!(c.metadata_secret().unwrap(), "compute");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn every_section_reads_variables_as_its_fields_want() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c = Config::from_parts("", env("STRATUS_SERVICE_AUTH__PASSWORD", "123456")).unwrap();
        assert_eq!(c.service_auth.password, "123456", "digits stay a string");
        let c = Config::from_parts("", env("STRATUS_IDENTITY__REGION", "true")).unwrap();
        assert_eq!(c.identity.region, "true");
        let err = Config::from_parts("", env("STRATUS_IDENTITY__PORT", "http")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_IDENTITY__PORT") && err.contains("integer"), "{err}");
        let err = Config::from_parts("", env("STRATUS_IDENTITY__PROT", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_IDENTITY__PROT"), "{err}");
        let err = Config::from_parts("", env("STRATUS_NOPE__PORT", "1")).unwrap_err().to_string();
        assert!(err.contains("STRATUS_NOPE__PORT"), "{err}");
    }

    #[test]
    fn values_are_typed_and_checked_at_start_with_the_key_named() {
        let c = Config::from_parts(
            "[compute]\nweigher = \"pack\"\n[compute_agent]\nvirt_type = \"qemu\"\n",
            vec![("STRATUS_COMPUTE_AGENT__DRIVER".to_string(), "fake".to_string())],
        )
        .unwrap();
        assert_eq!((c.compute.weigher, c.compute_agent.virt_type), (Weigher::Pack, VirtType::Qemu));
        assert_eq!(c.compute_agent.driver, ComputeDriver::Fake);
        for (text, key) in [
            ("[compute]\nweigher = \"heaviest\"\n", "compute.weigher"),
            ("[compute_agent]\nvirt_type = \"xen\"\n", "compute_agent.virt_type"),
            ("[network]\ndriver = \"ovs\"\n", "network.driver"),
            ("[database]\nurl = \"mysql://x\"\n", "database.url"),
            ("[bus]\nurl = \"amqp://x\"\n", "bus.url"),
            ("[compute]\nnetwork_url = \"localhost:9696\"\n", "compute.network_url"),
            ("[identity]\nport = \"x\"\n", "identity.port"),
        ] {
            let err = Config::from_parts(text, Vec::new()).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        assert_eq!("libvirt".parse::<ComputeDriver>().unwrap(), ComputeDriver::Libvirt);
        assert!("kvmm".parse::<VirtType>().is_err());
    }

    #[test]
    fn the_example_configuration_loads() {
        let c = Config::from_parts(include_str!("../../../deploy/stratus.toml.example"), Vec::new()).unwrap();
        assert_eq!(c.identity.lockout_failure_attempts, 5);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_parts("[identity]\nprot = 1\n", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }
}
