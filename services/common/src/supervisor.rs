//! The process's background tasks (reconcilers, agents' loops, bus subscriptions,
//! watchers) run under one small supervisor: a task that ends, by returning, by an
//! error or by a panic, is started again after a backoff (1 s, doubling to a minute,
//! back to 1 s once a run lasted a minute), and each task records when it last ran,
//! last succeeded and last failed, with the error. `/metrics` shows them
//! (`stratus_task_*`), and so does identity's admin API `GET /v3/OS-STRATUS/tasks`.
//!
//! A task is a factory: each start calls it for a new future, so a subscription made
//! inside it is made again after a restart. Long-lived loops report each pass with
//! [`Task::pass`], so a loop that keeps failing shows it without ending.
//!
//! ```no_run
//! # use std::time::Duration;
//! # use stratus_common::supervisor::SUPERVISOR;
//! SUPERVISOR.spawn("example.subscriber", move |task| async move {
//!     loop {
//!         let result: anyhow::Result<()> = Ok(()); // one message handled
//!         task.pass(&result);
//!     }
//! });
//! // A loop that only runs a pass now and then: `spawn_every`.
//! SUPERVISOR.spawn_every("example.reconciler", Duration::from_secs(10), || async { anyhow::Ok(()) });
//! ```

use futures::FutureExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The process's supervisor.
pub static SUPERVISOR: LazyLock<Supervisor> = LazyLock::new(Supervisor::default);

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A run this long counts as healthy: the next restart waits the first backoff again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// What is known of one task.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TaskStatus {
    pub name: String,
    pub running: bool,
    /// Times it was started (1 for a task that never ended).
    pub starts: u64,
    /// Seconds since the epoch.
    pub last_run: Option<f64>,
    pub last_success: Option<f64>,
    pub last_error: Option<f64>,
    pub last_error_message: Option<String>,
}

#[derive(Default)]
pub struct Supervisor {
    tasks: Mutex<BTreeMap<String, Arc<Mutex<TaskStatus>>>>,
}

/// A running task's handle on its own record.
#[derive(Clone)]
pub struct Task {
    status: Arc<Mutex<TaskStatus>>,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

impl Task {
    /// Records one pass of a loop: a success, or a failure with its error.
    pub fn pass<T, E: std::fmt::Display>(&self, result: &Result<T, E>) {
        let mut s = self.status.lock().unwrap();
        let t = now();
        s.last_run = Some(t);
        match result {
            Ok(_) => s.last_success = Some(t),
            Err(e) => {
                s.last_error = Some(t);
                s.last_error_message = Some(format!("{e:#}").chars().take(500).collect());
            }
        }
    }

    pub fn name(&self) -> String {
        self.status.lock().unwrap().name.clone()
    }
}

impl Supervisor {
    /// Runs `make(task)` now, and again whenever the future it made ends. Within one
    /// process, names are unique: spawning a name again replaces the record.
    pub fn spawn<F, Fut>(&self, name: &str, make: F)
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let status = Arc::new(Mutex::new(TaskStatus { name: name.to_string(), ..Default::default() }));
        self.tasks.lock().unwrap().insert(name.to_string(), status.clone());
        let task = Task { status };
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                {
                    let mut s = task.status.lock().unwrap();
                    s.running = true;
                    s.starts += 1;
                    s.last_run = Some(now());
                }
                let started = Instant::now();
                let outcome = std::panic::AssertUnwindSafe(make(task.clone())).catch_unwind().await;
                let result: anyhow::Result<()> = match outcome {
                    Ok(Ok(())) => Err(anyhow::anyhow!("the task ended")),
                    Ok(Err(e)) => Err(e),
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        Err(anyhow::anyhow!("the task panicked: {what}"))
                    }
                };
                task.pass(&result);
                task.status.lock().unwrap().running = false;
                if started.elapsed() >= HEALTHY_RUN {
                    backoff = FIRST_BACKOFF;
                }
                if let Err(e) = &result {
                    tracing::warn!(task = %task.name(), error = %e, retry_in = ?backoff, "background task stopped; restarting");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// A periodic task: `pass` every `every`, each pass recorded (success or error) and
    /// its error logged; the task itself never ends.
    pub fn spawn_every<F, Fut, T, E>(&self, name: &str, every: Duration, pass: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let pass = Arc::new(pass);
        self.spawn(name, move |task| {
            let pass = pass.clone();
            async move {
                loop {
                    let result = pass().await;
                    task.pass(&result);
                    if let Err(e) = &result {
                        tracing::warn!(task = %task.name(), error = %e, "pass failed; the next one retries");
                    }
                    tokio::time::sleep(every).await;
                }
            }
        });
    }

    /// Every task's record, by name.
    pub fn snapshot(&self) -> Vec<TaskStatus> {
        self.tasks.lock().unwrap().values().map(|s| s.lock().unwrap().clone()).collect()
    }

    /// The records as Prometheus gauges and counters.
    pub fn render_metrics(&self, out: &mut String) {
        let tasks = self.snapshot();
        if tasks.is_empty() {
            return;
        }
        out.push_str("# TYPE stratus_task_up gauge\n");
        for t in &tasks {
            let _ = writeln!(out, "stratus_task_up{{task=\"{}\"}} {}", t.name, u8::from(t.running));
        }
        out.push_str("# TYPE stratus_task_starts_total counter\n");
        for t in &tasks {
            let _ = writeln!(out, "stratus_task_starts_total{{task=\"{}\"}} {}", t.name, t.starts);
        }
        for (metric, pick) in [
            ("stratus_task_last_success_timestamp_seconds", (|t: &TaskStatus| t.last_success) as fn(&TaskStatus) -> _),
            ("stratus_task_last_error_timestamp_seconds", |t: &TaskStatus| t.last_error),
        ] {
            let _ = writeln!(out, "# TYPE {metric} gauge");
            for t in &tasks {
                if let Some(v) = pick(t) {
                    let _ = writeln!(out, "{metric}{{task=\"{}\"}} {v:.3}", t.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    async fn until(what: &str, check: impl Fn() -> bool) {
        for _ in 0..3000 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_errs_or_panics_is_started_again_and_recorded() {
        let sup = Supervisor::default();
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        sup.spawn("test.flaky", move |task| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Ok(()),                       // ends
                    1 => Err(anyhow::anyhow!("boom")), // fails
                    2 => panic!("kaboom"),             // panics
                    _ => {
                        task.pass(&Ok::<(), String>(())); // a healthy loop
                        std::future::pending().await
                    }
                }
            }
        });
        until("four starts", || runs.load(Ordering::SeqCst) >= 4).await;
        let s = sup.snapshot().pop().unwrap();
        assert_eq!((s.name.as_str(), s.starts, s.running), ("test.flaky", 4, true));
        assert!(s.last_error_message.as_deref().unwrap().contains("kaboom"), "{s:?}");
        assert!(s.last_success.unwrap() >= s.last_error.unwrap());
        let mut text = String::new();
        sup.render_metrics(&mut text);
        assert!(text.contains("stratus_task_up{task=\"test.flaky\"} 1"), "{text}");
        assert!(text.contains("stratus_task_starts_total{task=\"test.flaky\"} 4"), "{text}");
        assert!(text.contains("stratus_task_last_error_timestamp_seconds{task=\"test.flaky\"}"), "{text}");
    }

    #[tokio::test]
    async fn a_loop_reports_each_pass() {
        let sup = Supervisor::default();
        sup.spawn("test.loop", |task| async move {
            task.pass(&Err::<(), _>(anyhow::anyhow!("database away")));
            std::future::pending().await
        });
        until("a failed pass", || sup.snapshot()[0].last_error.is_some()).await;
        let s = &sup.snapshot()[0];
        assert_eq!(s.last_error_message.as_deref(), Some("database away"));
        assert!(s.running && s.last_success.is_none());
    }
}
