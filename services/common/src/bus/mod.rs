//! The message bus between services and agents.
//!
//! One interface, two implementations: [`MemoryBus`] inside one process (all-in-one and
//! tests) and [`NatsBus`] over a real NATS server with JetStream (production). The bus
//! carries three kinds of traffic:
//! - **events** (`publish` / `subscribe`, subjects with `*` and `>` wildcards), such as
//!   `identity.revocation` or `compute.instance.create.end`; fire and forget;
//! - **requests** (`request`, answered by whoever subscribes with a reply subject);
//! - **work queues** (`enqueue` / `work`): durable, each item handed to one worker,
//!   redelivered until acknowledged. Delivery is at least once, so every handler must be
//!   idempotent.
//!
//! The database is the truth and the bus only a nudge: a lost event delays convergence
//! (reconcilers also run on a timer); it never loses intent.

mod memory;
mod nats;

pub use memory::MemoryBus;
pub use nats::NatsBus;

use serde::{de::DeserializeOwned, Serialize};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("no answer to request on {0} in time")]
    Timeout(String),
    #[error("message bus unavailable: {0}")]
    Unavailable(String),
    #[error("malformed message on {subject}")]
    Decode { subject: String, source: serde_json::Error },
}

/// A message received from a subscription.
#[derive(Debug, Clone)]
pub struct Message {
    pub subject: String,
    pub payload: Vec<u8>,
    /// Where to send an answer, when the message is a request.
    pub reply: Option<String>,
}

impl Message {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, BusError> {
        serde_json::from_slice(&self.payload)
            .map_err(|source| BusError::Decode { subject: self.subject.clone(), source })
    }
}

/// How long a work item may stay unacknowledged before it is handed out again.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// A handle on the bus; cheap to clone.
#[derive(Clone, Debug)]
pub enum Bus {
    Memory(MemoryBus),
    Nats(Box<NatsBus>),
}

impl Bus {
    /// `memory` for the in-process bus, or a `nats://` URL.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        if url.is_empty() || url == "memory" {
            Ok(Bus::Memory(MemoryBus::new()))
        } else {
            Ok(Bus::Nats(Box::new(NatsBus::connect(url).await?)))
        }
    }

    pub async fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), BusError> {
        match self {
            Bus::Memory(b) => b.publish(subject, payload, None),
            Bus::Nats(b) => b.publish(subject, payload).await,
        }
    }

    /// Publishes a JSON event. Failures are logged, not returned: events are nudges and
    /// the database stays the truth.
    pub async fn emit<T: Serialize>(&self, subject: &str, event: &T) {
        let payload = serde_json::to_vec(event).expect("events serialize");
        if let Err(err) = self.publish(subject, payload).await {
            tracing::warn!(subject, error = %err, "event not published");
        }
    }

    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        match self {
            Bus::Memory(b) => Ok(Subscription::Memory(b.subscribe(subject))),
            Bus::Nats(b) => Ok(Subscription::Nats(b.subscribe(subject).await?)),
        }
    }

    /// Sends a request and waits for the first answer.
    pub async fn request(&self, subject: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, BusError> {
        match self {
            Bus::Memory(b) => b.request(subject, payload, timeout).await,
            Bus::Nats(b) => b.request(subject, payload, timeout).await,
        }
    }

    /// Answers a request received on a subscription.
    pub async fn respond(&self, request: &Message, payload: Vec<u8>) -> Result<(), BusError> {
        match &request.reply {
            Some(reply) => self.publish(reply, payload).await,
            None => Ok(()),
        }
    }

    /// Adds an item to a durable work queue.
    pub async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BusError> {
        match self {
            Bus::Memory(b) => {
                b.enqueue(queue, payload);
                Ok(())
            }
            Bus::Nats(b) => b.enqueue(queue, payload).await,
        }
    }

    /// Takes items from a durable work queue. Workers of the same queue share its items.
    pub async fn work(&self, queue: &str, ack_wait: Duration) -> Result<WorkQueue, BusError> {
        match self {
            Bus::Memory(b) => Ok(WorkQueue::Memory(b.work(queue, ack_wait))),
            Bus::Nats(b) => Ok(WorkQueue::Nats(Box::new(b.work(queue, ack_wait).await?))),
        }
    }
}

/// A stream of messages on a subject.
pub enum Subscription {
    Memory(memory::MemorySubscription),
    Nats(nats::NatsSubscription),
}

impl Subscription {
    /// The next message, or `None` when the bus is gone.
    pub async fn next(&mut self) -> Option<Message> {
        match self {
            Subscription::Memory(s) => s.next().await,
            Subscription::Nats(s) => s.next().await,
        }
    }
}

/// A consumer of one work queue.
pub enum WorkQueue {
    Memory(memory::MemoryWorkQueue),
    Nats(Box<nats::NatsWorkQueue>),
}

impl WorkQueue {
    pub async fn next(&mut self) -> Option<WorkItem> {
        match self {
            WorkQueue::Memory(q) => q.next().await.map(WorkItem::Memory),
            WorkQueue::Nats(q) => q.next().await.map(|i| WorkItem::Nats(Box::new(i))),
        }
    }
}

/// One item of work; unacknowledged items come back after the queue's ack wait.
pub enum WorkItem {
    Memory(memory::MemoryWorkItem),
    Nats(Box<nats::NatsWorkItem>),
}

impl WorkItem {
    pub fn payload(&self) -> &[u8] {
        match self {
            WorkItem::Memory(i) => &i.payload,
            WorkItem::Nats(i) => i.payload(),
        }
    }

    /// The work is done: do not hand it out again.
    pub async fn ack(self) -> Result<(), BusError> {
        match self {
            WorkItem::Memory(i) => {
                i.ack();
                Ok(())
            }
            WorkItem::Nats(i) => i.ack().await,
        }
    }

    /// The work failed: hand it out again now.
    pub async fn nack(self) -> Result<(), BusError> {
        match self {
            WorkItem::Memory(i) => {
                i.nack();
                Ok(())
            }
            WorkItem::Nats(i) => i.nack().await,
        }
    }
}

/// Whether `subject` matches `pattern` with NATS wildcards (`*` one token, `>` the rest).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
