//! Waiting for a resource to reach a status: polls with a growing pause (250 ms, up to
//! 2 s), tells an observer what it saw after each poll (a command draws a status line
//! with it), and stops at the status wanted, at `error`, when the resource is gone, or
//! at the deadline.
//!
//! ```no_run
//! # async fn demo(s: &stratus_client::Session, id: &str) -> Result<(), stratus_client::wait::WaitError> {
//! use std::time::Duration;
//! use stratus_client::{resources::VOLUME, wait::{wait_for, GONE}};
//! let volume = wait_for(s, &VOLUME, id, "available", Duration::from_secs(300), |_| {}).await?;
//! wait_for(s, &VOLUME, id, GONE, Duration::from_secs(300), |seen| eprintln!("{}", seen.status)).await?;
//! # let _ = volume; Ok(()) }
//! ```

use crate::resources::Kind;
use crate::{Error, Session};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The status that means "deleted": the resource answers 404.
pub const GONE: &str = "GONE";

/// What one poll saw.
pub struct Seen<'a> {
    /// The resource's status (`GONE` once it answers 404).
    pub status: &'a str,
    /// The resource as shown (null once gone).
    pub resource: &'a Value,
    pub elapsed: Duration,
}

/// Why a wait ended without the status wanted.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// It was deleted while another status was awaited (a snapshot whose copy failed,
    /// or someone deleted it).
    #[error("{kind} {id} was deleted before it became {want}")]
    Gone { kind: &'static str, id: String, want: String },
    /// It went to `error`; the fault the service recorded, if any.
    #[error("{kind} {id} is in ERROR: {fault}")]
    Failed { kind: &'static str, id: String, fault: String },
    /// The deadline passed; the work goes on in the cloud.
    #[error("{kind} {id} is {status}, not {want}, after {} s; it goes on without us", .after.as_secs())]
    TimedOut { kind: &'static str, id: String, status: String, want: String, after: Duration },
    /// A call failed.
    #[error(transparent)]
    Call(#[from] Error),
}

/// Polls `kind` `id` until its status is `want` (any case; [`GONE`]: deleted) and
/// answers the resource as last seen; `observe` is told of every poll.
pub async fn wait_for(
    s: &Session,
    kind: &Kind,
    id: &str,
    want: &str,
    timeout: Duration,
    mut observe: impl FnMut(&Seen),
) -> Result<Value, WaitError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(250);
    let mut last = Value::Null;
    loop {
        let (status, shown) = match kind.show(s, id).await {
            Ok(v) => (v["status"].as_str().unwrap_or("?").to_string(), v),
            Err(e) if e.is_not_found() => (GONE.to_string(), Value::Null),
            Err(e) => return Err(e.into()),
        };
        observe(&Seen { status: &status, resource: &shown, elapsed: start.elapsed() });
        if status.eq_ignore_ascii_case(want) {
            return Ok(if shown.is_null() { last } else { shown });
        }
        let (kind, id) = (kind.noun, id.to_string());
        if status == GONE {
            return Err(WaitError::Gone { kind, id, want: want.to_string() });
        }
        if status.eq_ignore_ascii_case("error") {
            let fault = shown["fault"]["message"].as_str().unwrap_or("no fault recorded").to_string();
            return Err(WaitError::Failed { kind, id, fault });
        }
        if start.elapsed() >= timeout {
            return Err(WaitError::TimedOut { kind, id, status, want: want.to_string(), after: timeout });
        }
        last = shown;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
