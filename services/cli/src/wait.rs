//! `--wait`: polls a resource until it reaches a status (or is gone), a live status line
//! on a terminal (stderr) only; ERROR, or the timeout, is exit code 6.

use crate::kinds::Kind;
use crate::Failure;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
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
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut pause = Duration::from_millis(250);
    let mut last = Value::Null;
    let noun = kind.noun;
    let done = |tty: bool| {
        if tty {
            eprintln!();
        }
    };
    loop {
        let (status, shown) = match kind.show(s, id).await {
            Ok(v) => (v["status"].as_str().unwrap_or("?").to_string(), v),
            Err(e) if e.is_not_found() => ("GONE".to_string(), Value::Null),
            Err(e) => return Err(e.into()),
        };
        if tty {
            let task = shown["OS-EXT-STS:task_state"].as_str().map(|t| format!(" ({t})")).unwrap_or_default();
            eprint!("\r\x1b[K{noun} {id}: {status}{task}  {}s", start.elapsed().as_secs());
            let _ = std::io::stderr().flush();
        }
        if status.eq_ignore_ascii_case(want) {
            done(tty);
            return Ok(if shown.is_null() { last } else { shown });
        }
        if status == "GONE" {
            // Waiting for it to become something else: it failed and was removed
            // (a snapshot whose copy failed), or someone deleted it.
            done(tty);
            return Err(Failure { code: 6, message: format!("{noun} {id} was deleted before it became {want}") });
        }
        if status.eq_ignore_ascii_case("error") {
            done(tty);
            let why = shown["fault"]["message"].as_str().unwrap_or("no fault recorded");
            return Err(Failure { code: 6, message: format!("{noun} {id} is in ERROR: {why}") });
        }
        if start.elapsed() >= Duration::from_secs(timeout) {
            done(tty);
            return Err(Failure {
                code: 6,
                message: format!("{noun} {id} is {status}, not {want}, after {timeout} s; it goes on without us"),
            });
        }
        last = shown;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
