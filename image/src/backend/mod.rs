//! Where image data lives. [`ImageBackend`] is the trait an object store can implement;
//! [`FilesystemBackend`] keeps data under the data directory.
//!
//! Writes are staged: data goes to a staging file, is fsynced, and only then renamed to
//! its final place, so a half-written image is never visible under its id.

mod filesystem;

pub use filesystem::FilesystemBackend;

use futures::future::BoxFuture;
use std::path::PathBuf;

/// A write in progress; dropped without `commit`, it leaves nothing behind.
pub struct StagedWrite {
    pub file: tokio::fs::File,
    pub path: PathBuf,
    pub image_id: String,
}

pub trait ImageBackend: Send + Sync {
    /// Opens a staging file for an image's data.
    fn stage(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<StagedWrite>>;
    /// Makes staged data the image's data (fsync, then rename).
    fn commit(&self, staged: StagedWrite) -> BoxFuture<'_, std::io::Result<()>>;
    /// Throws a staged write away.
    fn discard(&self, staged: StagedWrite) -> BoxFuture<'_, ()>;
    /// Opens an image's data for reading; returns the file and its length.
    fn open(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<(tokio::fs::File, u64)>>;
    /// Removes an image's data; absent data is not an error.
    fn delete(&self, image_id: &str) -> BoxFuture<'_, std::io::Result<()>>;
    /// Ids of every image with data, and staging leftovers removed (for the reconciler).
    fn sweep(&self, keep: &[String]) -> BoxFuture<'_, std::io::Result<usize>>;
    /// A path for data staged through `PUT /stage` (the import flow).
    fn import_path(&self, image_id: &str) -> PathBuf;
}
