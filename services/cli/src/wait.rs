//! `--wait`: the client library's wait ([`stratus_client::wait`]) with a live status
//! line on a terminal (stderr) only; ERROR, deletion or the timeout is exit code 6.

use crate::Failure;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use stratus_client::resources::Kind;
use stratus_client::wait::{Seen, WaitError};
use stratus_client::Session;

/// `--wait` and `--timeout`, as every command that can wait takes them.
#[derive(clap::Args, Clone, Copy)]
pub struct WaitArgs {
    /// Wait until it is done (ACTIVE; gone, for a delete)
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// Polls `kind` `id` until its status is `want` (`GONE`: deleted); the resource as
/// last seen. One that is gone, or in ERROR, while another status is awaited fails.
pub async fn wait_for(s: &Session, kind: &Kind, id: &str, want: &str, timeout: u64) -> Result<Value, Failure> {
    let tty = std::io::stderr().is_terminal();
    let line = |seen: &Seen| {
        if tty {
            let task = seen.resource["OS-EXT-STS:task_state"].as_str().map(|t| format!(" ({t})")).unwrap_or_default();
            eprint!("\r\x1b[K{} {id}: {}{task}  {}s", kind.noun, seen.status, seen.elapsed.as_secs());
            let _ = std::io::stderr().flush();
        }
    };
    let result = stratus_client::wait::wait_for(s, kind, id, want, Duration::from_secs(timeout), line).await;
    if tty {
        eprintln!();
    }
    result.map_err(|e| match e {
        WaitError::Call(e) => e.into(),
        other => Failure { code: 6, message: other.to_string() },
    })
}
