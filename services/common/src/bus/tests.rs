//! The bus contract, run against the in-process bus and, when `STRATUS_TEST_NATS` names a
//! server, against real NATS with JetStream.

use super::*;

async fn buses() -> Vec<Bus> {
    let mut v = vec![Bus::Memory(MemoryBus::new())];
    if let Ok(url) = std::env::var("STRATUS_TEST_NATS") {
        if !url.is_empty() {
            v.push(Bus::connect(&url).await.expect("NATS from STRATUS_TEST_NATS"));
        }
    }
    v
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

#[test]
fn wildcards_match_like_nats() {
    assert!(subject_matches("a.*.c", "a.b.c"));
    assert!(subject_matches("a.>", "a.b.c"));
    assert!(!subject_matches("a.>", "a"));
    assert!(!subject_matches("a.*", "a.b.c"));
    assert!(subject_matches("a.b", "a.b"));
    assert!(!subject_matches("a.b", "a.c"));
}

#[tokio::test]
async fn events_reach_every_matching_subscriber() {
    for bus in buses().await {
        let root = unique("t");
        let mut exact = bus.subscribe(&format!("{root}.x.created")).await.unwrap();
        let mut wild = bus.subscribe(&format!("{root}.>")).await.unwrap();
        let mut other = bus.subscribe(&format!("{root}.y.*")).await.unwrap();
        bus.publish(&format!("{root}.x.created"), b"hello".to_vec()).await.unwrap();
        let m = tokio::time::timeout(Duration::from_secs(5), exact.next()).await.unwrap().unwrap();
        assert_eq!(m.payload, b"hello");
        let m = tokio::time::timeout(Duration::from_secs(5), wild.next()).await.unwrap().unwrap();
        assert_eq!(m.subject, format!("{root}.x.created"));
        assert!(tokio::time::timeout(Duration::from_millis(200), other.next()).await.is_err());
    }
}

#[tokio::test]
async fn requests_get_answers_and_time_out_without_responder() {
    for bus in buses().await {
        let subject = unique("svc.");
        let mut sub = bus.subscribe(&subject).await.unwrap();
        let responder = bus.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let mut answer = m.payload.clone();
                answer.reverse();
                responder.respond(&m, answer).await.unwrap();
            }
        });
        let got = bus.request(&subject, b"abc".to_vec(), Duration::from_secs(5)).await.unwrap();
        assert_eq!(got, b"cba");
        let err = bus.request(&unique("nobody."), vec![], Duration::from_millis(300)).await.unwrap_err();
        assert!(matches!(err, BusError::Timeout(_)), "{err}");
    }
}

#[tokio::test]
async fn work_is_redelivered_until_acknowledged() {
    for bus in buses().await {
        let queue = unique("q");
        bus.enqueue(&queue, b"job-1".to_vec()).await.unwrap();
        let mut worker = bus.work(&queue, Duration::from_secs(1)).await.unwrap();
        // First delivery is dropped without an ack, as if the worker crashed.
        let first = tokio::time::timeout(Duration::from_secs(5), worker.next()).await.unwrap().unwrap();
        assert_eq!(first.payload(), b"job-1");
        drop(first);
        let again = tokio::time::timeout(Duration::from_secs(10), worker.next()).await.unwrap().unwrap();
        assert_eq!(again.payload(), b"job-1");
        again.ack().await.unwrap();
        // Acknowledged work never comes back.
        assert!(tokio::time::timeout(Duration::from_millis(2500), worker.next()).await.is_err());
    }
}

#[tokio::test]
async fn nacked_work_comes_back_at_once_and_items_are_shared() {
    for bus in buses().await {
        let queue = unique("q");
        let mut w = bus.work(&queue, Duration::from_secs(30)).await.unwrap();
        for i in 0..3 {
            bus.enqueue(&queue, format!("{i}").into_bytes()).await.unwrap();
        }
        let a = tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap();
        assert_eq!(a.payload(), b"0");
        a.nack().await.unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let item = tokio::time::timeout(Duration::from_secs(5), w.next()).await.unwrap().unwrap();
            seen.push(String::from_utf8(item.payload().to_vec()).unwrap());
            item.ack().await.unwrap();
        }
        seen.sort();
        assert_eq!(seen, vec!["0", "1", "2"]);
    }
}
