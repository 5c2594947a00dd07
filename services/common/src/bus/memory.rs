//! The in-process bus: the same contract as NATS, inside one process.

use super::{subject_matches, BusError, Message};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};

#[derive(Clone, Debug, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    subscribers: Mutex<Vec<(String, mpsc::UnboundedSender<Message>)>>,
    queues: Mutex<HashMap<String, Arc<Queue>>>,
}

#[derive(Debug, Default)]
struct Queue {
    state: Mutex<QueueState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct QueueState {
    next_id: u64,
    ready: VecDeque<(u64, Vec<u8>)>,
    in_flight: HashMap<u64, (Vec<u8>, Instant)>,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn publish(&self, subject: &str, payload: Vec<u8>, reply: Option<String>) -> Result<(), BusError> {
        let mut subs = self.inner.subscribers.lock().unwrap();
        subs.retain(|(_, tx)| !tx.is_closed());
        for (pattern, tx) in subs.iter() {
            if subject_matches(pattern, subject) {
                let _ =
                    tx.send(Message { subject: subject.to_string(), payload: payload.clone(), reply: reply.clone() });
            }
        }
        Ok(())
    }

    pub fn subscribe(&self, subject: &str) -> MemorySubscription {
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner.subscribers.lock().unwrap().push((subject.to_string(), tx));
        MemorySubscription { rx }
    }

    pub async fn request(&self, subject: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, BusError> {
        let inbox = format!("_INBOX.{}", uuid::Uuid::new_v4().simple());
        let mut sub = self.subscribe(&inbox);
        self.publish(subject, payload, Some(inbox))?;
        match tokio::time::timeout(timeout, sub.next()).await {
            Ok(Some(m)) => Ok(m.payload),
            _ => Err(BusError::Timeout(subject.to_string())),
        }
    }

    fn queue(&self, name: &str) -> Arc<Queue> {
        self.inner.queues.lock().unwrap().entry(name.to_string()).or_default().clone()
    }

    pub fn enqueue(&self, queue: &str, payload: Vec<u8>) {
        let q = self.queue(queue);
        {
            let mut st = q.state.lock().unwrap();
            st.next_id += 1;
            let id = st.next_id;
            st.ready.push_back((id, payload));
        }
        q.notify.notify_one();
    }

    pub fn work(&self, queue: &str, ack_wait: Duration) -> MemoryWorkQueue {
        MemoryWorkQueue { queue: self.queue(queue), ack_wait }
    }
}

pub struct MemorySubscription {
    rx: mpsc::UnboundedReceiver<Message>,
}

impl MemorySubscription {
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }
}

pub struct MemoryWorkQueue {
    queue: Arc<Queue>,
    ack_wait: Duration,
}

impl MemoryWorkQueue {
    pub async fn next(&mut self) -> Option<MemoryWorkItem> {
        loop {
            let wait = {
                let mut st = self.queue.state.lock().unwrap();
                let now = Instant::now();
                // Items whose worker never acknowledged them go back to the front.
                let expired: Vec<u64> =
                    st.in_flight.iter().filter(|(_, (_, d))| *d <= now).map(|(id, _)| *id).collect();
                for id in expired {
                    if let Some((payload, _)) = st.in_flight.remove(&id) {
                        st.ready.push_front((id, payload));
                    }
                }
                if let Some((id, payload)) = st.ready.pop_front() {
                    st.in_flight.insert(id, (payload.clone(), now + self.ack_wait));
                    return Some(MemoryWorkItem { id, payload, queue: self.queue.clone() });
                }
                st.in_flight
                    .values()
                    .map(|(_, d)| d.saturating_duration_since(now))
                    .min()
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1))
            };
            let _ = tokio::time::timeout(wait, self.queue.notify.notified()).await;
        }
    }
}

pub struct MemoryWorkItem {
    id: u64,
    pub payload: Vec<u8>,
    queue: Arc<Queue>,
}

impl MemoryWorkItem {
    pub fn ack(self) {
        self.queue.state.lock().unwrap().in_flight.remove(&self.id);
    }

    pub fn nack(self) {
        {
            let mut st = self.queue.state.lock().unwrap();
            if let Some((payload, _)) = st.in_flight.remove(&self.id) {
                st.ready.push_front((self.id, payload));
            }
        }
        self.queue.notify.notify_one();
    }
}
