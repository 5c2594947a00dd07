//! The image service's configuration section, `[image]`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConfig {
    pub port: u16,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: u64,
    /// How often the image reconciler runs, in seconds.
    pub reconcile_secs: u64,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self { port: 9292, max_image_bytes: 1 << 40, reconcile_secs: 30 }
    }
}
