//! Where uploaded bytes go while they stream: three threads work on each chunk at once,
//! one writing it to the staging file, one feeding md5 and one feeding sha512, so the
//! upload runs at the speed of the slowest of them rather than of their sum. Chunks are
//! reference-counted `Bytes`, shared, not copied; the channels are bounded, so a slow
//! disk slows the client down instead of filling memory.

use bytes::Bytes;
use md5::{Digest, Md5};
use sha2::Sha512;
use std::io::Write;
use tokio::sync::{mpsc, oneshot};

const QUEUE: usize = 16;

pub struct DataSink {
    senders: Vec<mpsc::Sender<Bytes>>,
    md5: oneshot::Receiver<String>,
    sha512: oneshot::Receiver<String>,
    file: oneshot::Receiver<std::io::Result<std::fs::File>>,
}

/// What the sink produced: the two digests (hex) and the written file.
pub struct Digests {
    pub md5: String,
    pub sha512: String,
    pub file: std::fs::File,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hasher<D: Digest + Send + 'static>(mut rx: mpsc::Receiver<Bytes>, done: oneshot::Sender<String>) {
    std::thread::spawn(move || {
        let mut d = D::new();
        while let Some(chunk) = rx.blocking_recv() {
            d.update(&chunk);
        }
        let _ = done.send(hex(&d.finalize()));
    });
}

impl DataSink {
    pub fn start(mut file: std::fs::File) -> Self {
        let (md5_tx, md5_rx) = mpsc::channel(QUEUE);
        let (sha_tx, sha_rx) = mpsc::channel(QUEUE);
        let (write_tx, mut write_rx) = mpsc::channel::<Bytes>(QUEUE);
        let (md5_done, md5) = oneshot::channel();
        let (sha_done, sha512) = oneshot::channel();
        let (file_done, file_rx) = oneshot::channel();
        hasher::<Md5>(md5_rx, md5_done);
        hasher::<Sha512>(sha_rx, sha_done);
        std::thread::spawn(move || {
            let mut result = Ok(());
            while let Some(chunk) = write_rx.blocking_recv() {
                if let Err(e) = file.write_all(&chunk) {
                    result = Err(e);
                    break;
                }
            }
            let _ = file_done.send(result.map(|()| file));
        });
        Self { senders: vec![write_tx, md5_tx, sha_tx], md5, sha512, file: file_rx }
    }

    /// Hands a chunk to the three workers; fails when the writer has stopped.
    pub async fn send(&self, chunk: Bytes) -> std::io::Result<()> {
        for tx in &self.senders {
            tx.send(chunk.clone()).await.map_err(|_| std::io::Error::other("the staging file writer stopped"))?;
        }
        Ok(())
    }

    /// Waits for the workers to drain their queues.
    pub async fn finish(self) -> std::io::Result<Digests> {
        drop(self.senders);
        let gone = || std::io::Error::other("an upload worker stopped");
        let file = self.file.await.map_err(|_| gone())??;
        let md5 = self.md5.await.map_err(|_| gone())?;
        let sha512 = self.sha512.await.map_err(|_| gone())?;
        Ok(Digests { md5, sha512, file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_and_hashes_every_chunk() {
        let path = std::env::temp_dir().join(format!("sink-{}", uuid::Uuid::new_v4()));
        let sink = DataSink::start(std::fs::File::create(&path).unwrap());
        for part in [&b"hello "[..], b"world"] {
            sink.send(Bytes::copy_from_slice(part)).await.unwrap();
        }
        let d = sink.finish().await.unwrap();
        drop(d.file);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(d.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert!(d.sha512.starts_with("309ecc489c12d6eb4cc40f50c902f2b4"));
        std::fs::remove_file(path).unwrap();
    }
}
