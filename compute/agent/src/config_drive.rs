//! The config drive: an ISO 9660 image labelled `config-2` holding the files the compute
//! service sends (`openstack/latest/meta_data.json`, `network_data.json`, `user_data`,
//! ...), which cloud-init and the test guest read before any network is up.

use anyhow::Context;
use base64::Engine;
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// Writes the ISO at `iso` from `files` (path → base64 content).
pub async fn build(files: &BTreeMap<String, String>, iso: &Path) -> anyhow::Result<()> {
    let staging = iso.with_extension("d");
    let _ = std::fs::remove_dir_all(&staging);
    let made = async {
        for (name, content) in files {
            let rel = Path::new(name);
            anyhow::ensure!(
                rel.components().all(|c| matches!(c, Component::Normal(_))),
                "config drive path {name:?} leaves the drive"
            );
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(content)
                .with_context(|| format!("config drive file {name} is not base64"))?;
            let path = staging.join(rel);
            std::fs::create_dir_all(path.parent().unwrap_or(&staging))?;
            std::fs::write(&path, bytes)?;
        }
        std::fs::create_dir_all(&staging)?;
        let out = tokio::process::Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-V", "config-2", "-J", "-R", "-o"])
            .arg(iso)
            .arg(&staging)
            .output()
            .await
            .context("cannot run xorriso (apt-get install xorriso)")?;
        anyhow::ensure!(out.status.success(), "xorriso failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }
    .await;
    let _ = std::fs::remove_dir_all(&staging);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paths_stay_inside_the_drive() {
        let dir = std::env::temp_dir().join(format!("stratus-cd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files: BTreeMap<String, String> = [("../escape".to_string(), "eA==".to_string())].into();
        let err = build(&files, &dir.join("disk.config")).await.unwrap_err();
        assert!(err.to_string().contains("leaves the drive"), "{err}");
        assert!(!dir.join("escape").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
