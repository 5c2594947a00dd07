//! Image commands that move bytes: upload a file as a new image and download an image
//! into a file, with a progress line (bytes, percentage, rate) drawn on a terminal only.

use crate::{find, kinds, output, usage, Failure, Format};
use clap::Subcommand;
use futures::StreamExt;
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratus_client::session::Method;
use stratus_client::Session;
use tokio::io::AsyncWriteExt;

#[derive(Subcommand)]
pub enum ImageVerb {
    /// List the images the project can see
    List,
    /// Show one, by name or ID
    Show {
        /// Its name or ID
        name: String,
    },
    /// Upload a file as a new image
    #[command(
        after_help = "Examples:\n  stratus image create debian-12 --file debian-12-genericcloud-amd64.qcow2\n  stratus image create tiny --file tiny.raw --disk-format raw --public"
    )]
    Create {
        /// Its name
        name: String,
        /// The file to upload
        #[arg(long)]
        file: PathBuf,
        /// raw, qcow2, iso, vmdk, vdi, vhd, vhdx, ami, ari, aki (default: from the file's
        /// extension, else raw)
        #[arg(long)]
        disk_format: Option<String>,
        /// bare, ovf, ova, ami, ari, aki, docker, compressed
        #[arg(long, default_value = "bare")]
        container_format: String,
        /// Visible to every project (an admin's choice)
        #[arg(long)]
        public: bool,
    },
    /// Download an image's data into a file
    #[command(after_help = "Examples:\n  stratus image download debian-12 --file debian-12.qcow2")]
    Download {
        /// Its name or ID
        name: String,
        /// Where to write it
        #[arg(long)]
        file: PathBuf,
    },
    /// Change one: rename it, set or unset its properties
    #[command(after_help = "Example:\n  stratus image set debian-12 --name debian-12-old --property os_distro=debian")]
    Set(crate::SetArgs),
    /// Delete images, by name or ID
    Delete {
        /// Their names or IDs
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// The disk format a file's extension names.
fn format_of(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("qcow2") | Some("qcow") => "qcow2",
        Some("iso") => "iso",
        Some("vmdk") => "vmdk",
        Some("vdi") => "vdi",
        Some("vhd") => "vhd",
        Some("vhdx") => "vhdx",
        _ => "raw",
    }
}

/// `12.3 MiB`
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A progress line on stderr, redrawn five times a second while `done` moves; nothing
/// when stderr is not a terminal.
struct Progress {
    done: Arc<AtomicU64>,
    what: String,
    total: Option<u64>,
    started: Instant,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How many cells the bar has.
const BAR: u64 = 30;

/// The bar for `n` of `total`: `[#########.....................]`.
fn bar(n: u64, total: u64) -> String {
    let full = (n.min(total) * BAR / total.max(1)) as usize;
    format!("[{}{}]", "#".repeat(full), ".".repeat(BAR as usize - full))
}

/// One drawing of the line: what, a bar when the size is known, how much of how much,
/// the rate.
fn draw(what: &str, n: u64, total: Option<u64>, started: Instant) {
    let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
    let amount = match total {
        Some(t) if t > 0 => format!("{}  {} / {}  {:>3}%", bar(n, t), human(n), human(t), n * 100 / t),
        _ => human(n),
    };
    eprint!("\r\x1b[K{what}  {amount}  {}/s", human(rate as u64));
    let _ = std::io::stderr().flush();
}

impl Progress {
    fn start(what: String, total: Option<u64>) -> Self {
        let done = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let task = std::io::stderr().is_terminal().then(|| {
            let (done, what) = (done.clone(), what.clone());
            tokio::spawn(async move {
                loop {
                    draw(&what, done.load(Ordering::Relaxed), total, started);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        });
        Self { done, what, total, started, task }
    }

    /// Stops the redrawing and draws the end state once.
    fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
            draw(&self.what, self.done.load(Ordering::Relaxed), self.total, self.started);
            eprintln!();
        }
    }
}

pub async fn run(s: &Session, verb: ImageVerb, format: Format, columns: &[String]) -> Result<(), Failure> {
    match verb {
        ImageVerb::List | ImageVerb::Show { .. } | ImageVerb::Set(_) => {
            Err(usage("list, show and set are not handled here".into()))
        }
        ImageVerb::Create { name, file, disk_format, container_format, public } => {
            let fail = |e: std::io::Error| Failure { code: 1, message: format!("{}: {e}", file.display()) };
            let len = tokio::fs::metadata(&file).await.map_err(fail)?.len();
            let reader = tokio::fs::File::open(&file).await.map_err(fail)?;
            let disk_format = disk_format.unwrap_or_else(|| format_of(&file).to_string());
            let mut body = json!({"name": name, "disk_format": disk_format, "container_format": container_format});
            if public {
                body["visibility"] = json!("public");
            }
            let image = s.call(Method::POST, "image", "/v2/images", Some(&body), &[]).await?;
            let id = image["id"].as_str().unwrap_or_default().to_string();
            let progress = Progress::start(format!("uploading {}", file.display()), Some(len));
            let counter = progress.done.clone();
            let stream = tokio_util::io::ReaderStream::with_capacity(reader, 1 << 20).map(move |chunk| {
                if let Ok(c) = &chunk {
                    counter.fetch_add(c.len() as u64, Ordering::Relaxed);
                }
                chunk
            });
            let sent =
                s.upload("image", &format!("/v2/images/{id}/file"), reqwest::Body::wrap_stream(stream), len).await;
            progress.finish();
            if let Err(e) = sent {
                // An image without data is of no use: do not leave it behind.
                let _ = s.call(Method::DELETE, "image", &format!("/v2/images/{id}"), None, &[]).await;
                return Err(e.into());
            }
            let shown = kinds::IMAGE.show(s, &id).await?;
            output::record(&shown, format, columns).map_err(usage)
        }
        ImageVerb::Download { name, file } => {
            let image = find(&kinds::IMAGE, s, &name).await?;
            let id = image["id"].as_str().unwrap_or_default().to_string();
            let total = image["size"].as_u64();
            let resp = s.download("image", &format!("/v2/images/{id}/file")).await?;
            let fail = |e: std::io::Error| Failure { code: 1, message: format!("{}: {e}", file.display()) };
            let part = file.with_extension("part");
            let mut out = tokio::fs::File::create(&part).await.map_err(fail)?;
            let progress = Progress::start(format!("downloading {name}"), total);
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| Failure { code: 5, message: format!("the download broke off: {e}") })?;
                out.write_all(&chunk).await.map_err(fail)?;
                progress.done.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            out.flush().await.map_err(fail)?;
            progress.finish();
            tokio::fs::rename(&part, &file).await.map_err(fail)?;
            Ok(())
        }
        ImageVerb::Delete { names } => {
            for n in &names {
                let image = find(&kinds::IMAGE, s, n).await?;
                let id = image["id"].as_str().unwrap_or_default();
                s.call(Method::DELETE, "image", &format!("/v2/images/{id}"), None, &[]).await?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_the_bytes() {
        assert_eq!(bar(0, 100), format!("[{}]", ".".repeat(30)));
        assert_eq!(bar(50, 100), format!("[{}{}]", "#".repeat(15), ".".repeat(15)));
        assert_eq!(bar(200, 100), format!("[{}]", "#".repeat(30)));
    }

    #[test]
    fn sizes_and_formats_read_as_people_name_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
        assert_eq!(format_of(std::path::Path::new("debian.QCOW2")), "qcow2");
        assert_eq!(format_of(std::path::Path::new("disk.img")), "raw");
    }
}
