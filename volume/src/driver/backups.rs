//! The backup repository: where backups live, apart from the volumes' backends (a
//! directory, which may be a network file system shared by storage hosts; Cinder's
//! `posix` backup driver has the same shape).
//!
//! A backup is a **manifest** (`manifests/<id>.json`) listing the volume's content in
//! 1 MiB chunks, each named by its SHA-256, and the **chunks** themselves
//! (`chunks/<2 hex>/<sha256>`), stored once however many backups hold them. A chunk of
//! zeros is stored as nothing. So a backup stores only what no earlier backup holds: an
//! incremental backup of a volume that changed little writes little, and restoring any
//! backup needs only its own manifest.
//!
//! Writing is crash-safe and idempotent: a chunk is written under a `.part` name and
//! renamed, the manifest last, so a backup exists exactly when its manifest does and a
//! step run again finds what it wrote before. Deleting a backup removes its manifest,
//! then every chunk no manifest names; a lock keeps that sweep from removing the
//! chunks of a backup being written in this process. Chunks orphaned by a crash go at
//! the next sweep. One volume service writes to a repository.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The size of a chunk.
pub const CHUNK: usize = 1 << 20;

/// What a backup holds: the volume's size in bytes and its chunks in order (`None`:
/// zeros).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub size_bytes: u64,
    pub chunk_size: usize,
    pub chunks: Vec<Option<String>>,
}

impl Manifest {
    /// The chunks that hold data (Cinder's `object_count`).
    pub fn objects(&self) -> usize {
        self.chunks.iter().flatten().count()
    }
}

/// What a backup written now cost: its manifest, and how many chunks were new.
#[derive(Debug, Clone)]
pub struct Written {
    pub manifest: Manifest,
    pub new_chunks: usize,
}

#[derive(Clone)]
pub struct BackupRepository {
    root: PathBuf,
    /// Writers hold it shared, the sweep exclusively.
    sweep: Arc<tokio::sync::RwLock<()>>,
}

impl BackupRepository {
    pub fn new(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root = root.into();
        for dir in ["manifests", "chunks", "staging"] {
            std::fs::create_dir_all(root.join(dir)).with_context(|| format!("cannot create {}", root.display()))?;
        }
        Ok(Self { root, sweep: Default::default() })
    }

    /// A scratch file for backup `id`'s data on its way in or out.
    pub fn staging(&self, id: &str, what: &str) -> PathBuf {
        self.root.join("staging").join(format!("{}.{what}", safe(id)))
    }

    fn manifest_path(&self, id: &str) -> PathBuf {
        self.root.join("manifests").join(format!("{}.json", safe(id)))
    }

    fn chunk_path(&self, hash: &str) -> PathBuf {
        self.root.join("chunks").join(&hash[..2]).join(hash)
    }

    /// Backup `id`'s manifest, or `None` when it has none (not written, or deleted).
    pub async fn manifest(&self, id: &str) -> anyhow::Result<Option<Manifest>> {
        match tokio::fs::read(self.manifest_path(id)).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).context("a backup manifest that does not read")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores the raw disk image `from` as backup `id`; what is stored already (a step
    /// run again) is kept as it is.
    pub async fn store(&self, id: &str, from: &Path) -> anyhow::Result<Written> {
        let _writing = self.sweep.read().await;
        if let Some(manifest) = self.manifest(id).await? {
            return Ok(Written { manifest, new_chunks: 0 });
        }
        let (me, from, id) = (self.clone(), from.to_path_buf(), id.to_string());
        tokio::task::spawn_blocking(move || me.store_blocking(&id, &from)).await?
    }

    fn store_blocking(&self, id: &str, from: &Path) -> anyhow::Result<Written> {
        let mut file = std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        let size_bytes = file.metadata()?.len();
        let mut chunks = Vec::with_capacity(size_bytes.div_ceil(CHUNK as u64) as usize);
        let mut new_chunks = 0;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = read_full(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            let data = &buf[..n];
            if data.iter().all(|b| *b == 0) {
                chunks.push(None);
                continue;
            }
            let hash = hex(&Sha256::digest(data));
            let path = self.chunk_path(&hash);
            if !path.exists() {
                std::fs::create_dir_all(path.parent().expect("chunks have a directory"))?;
                write_atomically(&path, data)?;
                new_chunks += 1;
            }
            chunks.push(Some(hash));
        }
        let manifest = Manifest { size_bytes, chunk_size: CHUNK, chunks };
        write_atomically(&self.manifest_path(id), &serde_json::to_vec(&manifest)?)?;
        Ok(Written { manifest, new_chunks })
    }

    /// Writes backup `id` as a raw disk image to `to` (sparse: zeros are holes).
    pub async fn restore(&self, id: &str, to: &Path) -> anyhow::Result<()> {
        let manifest = self.manifest(id).await?.ok_or_else(|| anyhow::anyhow!("backup {id} has no data here"))?;
        let (me, to) = (self.clone(), to.to_path_buf());
        tokio::task::spawn_blocking(move || me.restore_blocking(&manifest, &to)).await?
    }

    fn restore_blocking(&self, manifest: &Manifest, to: &Path) -> anyhow::Result<()> {
        let part = to.with_extension("part");
        let mut out = std::fs::File::create(&part)?;
        out.set_len(manifest.size_bytes)?;
        for (i, chunk) in manifest.chunks.iter().enumerate() {
            let Some(hash) = chunk else { continue };
            let data = std::fs::read(self.chunk_path(hash)).with_context(|| format!("chunk {hash} is missing"))?;
            if hex(&Sha256::digest(&data)) != *hash {
                anyhow::bail!("chunk {hash} does not hold what it held when written");
            }
            out.seek(SeekFrom::Start((i * manifest.chunk_size) as u64))?;
            out.write_all(&data)?;
        }
        out.sync_all()?;
        std::fs::rename(&part, to)?;
        Ok(())
    }

    /// Removes backup `id` (its manifest, then every chunk no other backup holds);
    /// nothing when it is gone already.
    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let _sweeping = self.sweep.write().await;
        match tokio::fs::remove_file(self.manifest_path(id)).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.sweep_blocking()).await?
    }

    /// Removes every chunk no manifest names (and the leftovers of interrupted writes).
    fn sweep_blocking(&self) -> anyhow::Result<()> {
        let mut kept = HashSet::new();
        for entry in std::fs::read_dir(self.root.join("manifests"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let m: Manifest = serde_json::from_slice(&std::fs::read(&path)?)?;
                kept.extend(m.chunks.into_iter().flatten());
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        for dir in std::fs::read_dir(self.root.join("chunks"))? {
            for entry in std::fs::read_dir(dir?.path())? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                if !kept.contains(name) {
                    std::fs::remove_file(&path)?;
                }
            }
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; answers how much was read.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let part = path.with_extension("part");
    let mut f = std::fs::File::create(&part)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&part, path)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids are UUIDs; anything else is refused rather than turned into a path.
fn safe(id: &str) -> &str {
    if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        id
    } else {
        "invalid"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(path: &Path, size: u64, writes: &[(u64, u8)]) {
        let mut f = std::fs::File::create(path).unwrap();
        f.set_len(size).unwrap();
        for (at, byte) in writes {
            f.seek(SeekFrom::Start(*at)).unwrap();
            f.write_all(&vec![*byte; 4096]).unwrap();
        }
    }

    fn chunk_files(root: &Path) -> usize {
        std::fs::read_dir(root.join("chunks"))
            .unwrap()
            .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
            .sum()
    }

    #[tokio::test]
    async fn backups_store_each_chunk_once_restore_exactly_and_sweep_what_nothing_holds() {
        let root = std::env::temp_dir().join(format!("stratus-backups-{}", uuid::Uuid::new_v4()));
        let repo = BackupRepository::new(&root).unwrap();
        let size = 8 * CHUNK as u64 + 100;
        let first = root.join("first.raw");
        disk(&first, size, &[(0, 0xaa), (3 * CHUNK as u64 + 7, 0xbb)]);
        let (a, b) = (uuid::Uuid::new_v4().to_string(), uuid::Uuid::new_v4().to_string());
        let w = repo.store(&a, &first).await.unwrap();
        assert_eq!((w.new_chunks, w.manifest.objects(), w.manifest.chunks.len()), (2, 2, 9));
        // Run again (a step after a crash): nothing new.
        assert_eq!(repo.store(&a, &first).await.unwrap().new_chunks, 0);

        // One chunk changed: the next backup writes one chunk.
        let second = root.join("second.raw");
        disk(&second, size, &[(0, 0xaa), (3 * CHUNK as u64 + 7, 0xcc), (8 * CHUNK as u64, 0xdd)]);
        let w = repo.store(&b, &second).await.unwrap();
        assert_eq!((w.new_chunks, w.manifest.objects()), (2, 3));
        assert_eq!(chunk_files(&root), 4);

        for (id, source) in [(&a, &first), (&b, &second)] {
            let out = root.join("out.raw");
            repo.restore(id, &out).await.unwrap();
            assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(source).unwrap());
        }

        // Deleting the first keeps the chunks the second holds.
        repo.delete(&a).await.unwrap();
        repo.delete(&a).await.unwrap();
        assert_eq!(chunk_files(&root), 3);
        assert!(repo.manifest(&a).await.unwrap().is_none());
        repo.delete(&b).await.unwrap();
        assert_eq!(chunk_files(&root), 0);

        // A chunk changed on disk is found out, not restored.
        let d = uuid::Uuid::new_v4().to_string();
        let m = repo.store(&d, &first).await.unwrap().manifest;
        let hash = m.chunks[0].clone().unwrap();
        std::fs::write(repo.chunk_path(&hash), b"rot").unwrap();
        let e = repo.restore(&d, &root.join("bad.raw")).await.unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
