use super::{ImageBackend, StagedWrite};
use futures::future::BoxFuture;
use std::path::PathBuf;

/// Image data as files: `images/<id>` for data, `staging/<id>.<random>` while uploading,
/// `import/<id>` for data staged by the import flow.
pub struct FilesystemBackend {
    root: PathBuf,
}

impl FilesystemBackend {
    pub fn new(root: PathBuf) -> std::io::Result<Self> {
        for d in ["images", "staging", "import"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(Self { root })
    }

    fn data_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(id)
    }
}

/// Image ids are UUIDs or client-chosen ids; never let one name a path elsewhere.
fn safe(id: &str) -> std::io::Result<&str> {
    if id.is_empty() || id.contains('/') || id.contains('\0') || id.starts_with('.') {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad image id"));
    }
    Ok(id)
}

impl ImageBackend for FilesystemBackend {
    fn stage(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<StagedWrite>> {
        let image_id = image_id.to_string();
        Box::pin(async move {
            safe(&image_id)?;
            let path = self.root.join("staging").join(format!("{image_id}.{}", uuid::Uuid::new_v4().simple()));
            let file = tokio::fs::File::create(&path).await?;
            Ok(StagedWrite { file, path, image_id })
        })
    }

    fn commit(&self, staged: StagedWrite) -> BoxFuture<'_, std::io::Result<()>> {
        Box::pin(async move {
            staged.file.sync_all().await?;
            drop(staged.file);
            tokio::fs::rename(&staged.path, self.data_path(&staged.image_id)).await?;
            // Make the rename itself durable.
            if let Ok(dir) = tokio::fs::File::open(self.root.join("images")).await {
                let _ = dir.sync_all().await;
            }
            Ok(())
        })
    }

    fn discard(&self, staged: StagedWrite) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            drop(staged.file);
            let _ = tokio::fs::remove_file(&staged.path).await;
        })
    }

    fn open(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<(tokio::fs::File, u64)>> {
        let image_id = image_id.to_string();
        Box::pin(async move {
            let file = tokio::fs::File::open(self.data_path(safe(&image_id)?)).await?;
            let len = file.metadata().await?.len();
            Ok((file, len))
        })
    }

    fn delete(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<()>> {
        let image_id = image_id.to_string();
        Box::pin(async move {
            safe(&image_id)?;
            for p in [self.data_path(&image_id), self.import_path(&image_id)] {
                match tokio::fs::remove_file(&p).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }

    fn sweep(&self, keep: &[String]) -> BoxFuture<'_, std::io::Result<usize>> {
        let keep: std::collections::HashSet<String> = keep.iter().cloned().collect();
        Box::pin(async move {
            let mut removed = 0;
            for dir in ["images", "import"] {
                let mut entries = tokio::fs::read_dir(self.root.join(dir)).await?;
                while let Some(e) = entries.next_entry().await? {
                    let name = e.file_name().to_string_lossy().to_string();
                    if !keep.contains(&name) {
                        let _ = tokio::fs::remove_file(e.path()).await;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
    }

    fn import_path(&self, image_id: &str) -> PathBuf {
        self.root.join("import").join(image_id.replace('/', "_"))
    }
}

impl FilesystemBackend {
    /// Removes every staging file (at start, no upload of this process is running).
    pub async fn clear_staging(&self) -> std::io::Result<usize> {
        let mut n = 0;
        let mut entries = tokio::fs::read_dir(self.root.join("staging")).await?;
        while let Some(e) = entries.next_entry().await? {
            let _ = tokio::fs::remove_file(e.path()).await;
            n += 1;
        }
        Ok(n)
    }
}
