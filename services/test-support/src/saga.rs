//! The generic saga tests: every saga gets them by one call to [`check_saga`].
//!
//! Each scenario starts a fresh saga of the kind under test (through the caller's
//! `start`, on a new subject), injects one [`Fault`] into the runner, waits for the saga
//! to end (driving unfinished sagas now and then, as the sweeper and a restart do) and
//! takes the caller's `observe` snapshot of the subject: a JSON value of what must not
//! depend on the fault (states, counts of ports and claims, quota use; not ids, names or
//! timestamps). The checks:
//!
//! - **every step run twice** gives the same end as a clean run;
//! - **a crash after each step** (progress not yet written is lost, then the saga is
//!   resumed) gives the same end as a clean run;
//! - **a failure injected at each step** unwinds, with **every undo run twice**; the
//!   ends come back by step, and [`SagaReport::failures_alike`] asserts they are one
//!   (a saga that only goes forward has no undos, so its ends differ by step);
//! - **transient failures past the bound** leave the saga stuck (no longer retried),
//!   its subject showing it.
//!
//! The ends are handed back in a [`SagaReport`] for the caller's own assertions (a
//! clean create is ACTIVE, a failed one ERROR with nothing left).

use serde_json::Value;
use std::future::Future;
use std::time::Duration;
use stratus_common::saga::{Fault, SagaRunner, DEFAULT_MAX_ATTEMPTS};

/// The ends the scenarios reached.
#[derive(Debug)]
pub struct SagaReport {
    /// A clean run's end (the same with any step run twice, or a crash after it).
    pub ok: Value,
    /// The end of a run failed at each step (by step name), with the subject.
    pub failed: Vec<(String, String, Value)>,
    /// A stuck run's end, and its subject.
    pub stuck: (String, Value),
    /// Scenarios run.
    pub scenarios: usize,
}

impl SagaReport {
    /// Asserts that a failure at any step unwinds to the same end (a saga whose steps
    /// all have undos), and answers it.
    pub fn failures_alike(&self) -> &Value {
        let (first_step, _, first) = &self.failed[0];
        for (step, _, end) in &self.failed {
            assert_eq!(end, first, "a failure at step {step} unwinds elsewhere than one at step {first_step}");
        }
        first
    }
}

/// Runs the generic scenarios for saga `kind` of `runner`. `start(label)` begins one
/// saga of that kind on a new subject and answers the subject's id; `observe(subject)`
/// answers the snapshot to compare.
pub async fn check_saga<Start, StartFut, Observe, ObserveFut>(
    runner: &SagaRunner,
    kind: &str,
    start: Start,
    observe: Observe,
) -> SagaReport
where
    Start: Fn(String) -> StartFut,
    StartFut: Future<Output = String>,
    Observe: Fn(String) -> ObserveFut,
    ObserveFut: Future<Output = Value>,
{
    let steps = runner.steps_of(kind);
    assert!(!steps.is_empty(), "no saga kind {kind} in this runner");
    let fault = |f: fn(String, String) -> Fault, step: &str| f(kind.to_string(), step.to_string());
    let run = |label: String, faults: Vec<Fault>, stuck: bool| {
        let (start, observe) = (&start, &observe);
        async move {
            runner.clear_faults();
            for f in &faults {
                runner.inject(f.clone());
            }
            let subject = start(label.clone()).await;
            settle(runner, &subject, &faults, stuck, &label).await;
            runner.clear_faults();
            (subject.clone(), observe(subject).await)
        }
    };
    let mut scenarios = 0;
    let (_, ok) = run(format!("{kind}-ok"), vec![], false).await;
    scenarios += 1;
    for step in &steps {
        let (_, twice) =
            run(format!("{kind}-twice-{step}"), vec![fault(|kind, step| Fault::RunTwice { kind, step }, step)], false)
                .await;
        assert_eq!(twice, ok, "{kind}: step {step} run twice ends elsewhere than a clean run");
        let (_, crash) = run(
            format!("{kind}-crash-{step}"),
            vec![fault(|kind, step| Fault::CrashAfter { kind, step }, step)],
            false,
        )
        .await;
        assert_eq!(crash, ok, "{kind}: a crash after step {step} ends elsewhere than a clean run");
        scenarios += 2;
    }
    let mut failed = Vec::new();
    for step in &steps {
        let (subject, end) = run(
            format!("{kind}-fail-{step}"),
            vec![fault(|kind, step| Fault::FailAt { kind, step }, step), Fault::UndoTwice { kind: kind.to_string() }],
            false,
        )
        .await;
        scenarios += 1;
        failed.push((step.to_string(), subject, end));
    }
    runner.set_max_attempts(2);
    let stuck =
        run(format!("{kind}-stuck"), vec![fault(|kind, step| Fault::Transient { kind, step }, steps[0])], true).await;
    runner.set_max_attempts(DEFAULT_MAX_ATTEMPTS);
    scenarios += 1;
    SagaReport { ok, failed, stuck, scenarios }
}

/// Waits until the subject's sagas ended (or, when `stuck`, until one is stuck) and the
/// one-shot faults fired, driving unfinished sagas every 200 ms as the sweeper does.
async fn settle(runner: &SagaRunner, subject: &str, faults: &[Fault], stuck: bool, label: &str) {
    let one_shot = |f: &Fault| !matches!(f, Fault::UndoTwice { .. } | Fault::Transient { .. });
    for round in 0..750 {
        let pending = runner.faults().iter().filter(|f| one_shot(f) && faults.contains(f)).count();
        let open = runner.unfinished(Some(subject)).await.expect("sagas readable");
        let stuck_now = runner.stuck().await.expect("sagas readable");
        let done = if stuck { open.iter().any(|id| stuck_now.contains(id)) } else { open.is_empty() && pending == 0 };
        if done {
            return;
        }
        if round % 10 == 9 {
            runner.resume_all().await.expect("sagas readable");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{label}: the saga did not settle; faults left {:?}", runner.faults());
}
