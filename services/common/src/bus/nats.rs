//! The bus over a real NATS server: core NATS for events and requests, JetStream
//! work-queue streams with one durable pull consumer per queue for work.

use super::{BusError, Message};
use async_nats::jetstream::{self, consumer::pull, stream};
use futures::StreamExt;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Work queues whose stream this process made or found: enqueues skip the
    /// JetStream API round trip after the first.
    known: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

fn unavailable(e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// JetStream names may not contain dots or wildcards.
fn stream_name(queue: &str) -> String {
    let clean: String =
        queue.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    format!("STRATUS_WORK_{clean}")
}

impl NatsBus {
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(unavailable)?;
        // retry_on_initial_connect returns at once; make sure the server answers.
        tokio::time::timeout(Duration::from_secs(10), client.flush())
            .await
            .map_err(|_| BusError::Unavailable(format!("NATS at {url} did not answer")))?
            .map_err(unavailable)?;
        let js = jetstream::new(client.clone());
        Ok(Self { client, js, known: Default::default() })
    }

    pub async fn publish(&self, subject: &str, payload: Vec<u8>) -> Result<(), BusError> {
        self.client.publish(subject.to_string(), payload.into()).await.map_err(unavailable)?;
        Ok(())
    }

    pub async fn subscribe(&self, subject: &str) -> Result<NatsSubscription, BusError> {
        let sub = self.client.subscribe(subject.to_string()).await.map_err(unavailable)?;
        // Make sure the server has registered the interest before returning.
        self.client.flush().await.map_err(unavailable)?;
        Ok(NatsSubscription { sub })
    }

    pub async fn request(&self, subject: &str, payload: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, BusError> {
        match tokio::time::timeout(timeout, self.client.request(subject.to_string(), payload.into())).await {
            Ok(Ok(m)) => Ok(m.payload.to_vec()),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
                Err(BusError::Timeout(subject.to_string()))
            }
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => {
                Err(BusError::Timeout(subject.to_string()))
            }
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(BusError::Timeout(subject.to_string())),
        }
    }

    async fn stream(&self, queue: &str) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: stream_name(queue),
                subjects: vec![format!("work.{queue}")],
                retention: stream::RetentionPolicy::WorkQueue,
                ..Default::default()
            })
            .await
            .map_err(unavailable)
    }

    pub async fn enqueue(&self, queue: &str, payload: Vec<u8>) -> Result<(), BusError> {
        let payload: bytes::Bytes = payload.into();
        if !self.known.lock().unwrap().contains(queue) {
            self.stream(queue).await?;
            self.known.lock().unwrap().insert(queue.to_string());
        }
        let first = async {
            let ack = self.js.publish(format!("work.{queue}"), payload.clone()).await.map_err(unavailable)?;
            ack.await.map_err(unavailable)
        }
        .await;
        if first.is_ok() {
            return Ok(());
        }
        // The stream may have been removed behind our back: make it again, once.
        self.known.lock().unwrap().remove(queue);
        self.stream(queue).await?;
        self.known.lock().unwrap().insert(queue.to_string());
        let ack = self.js.publish(format!("work.{queue}"), payload).await.map_err(unavailable)?;
        ack.await.map_err(unavailable)?;
        Ok(())
    }

    pub async fn work(&self, queue: &str, ack_wait: Duration) -> Result<NatsWorkQueue, BusError> {
        let stream = self.stream(queue).await?;
        let durable = format!("{}_workers", stream_name(queue));
        let consumer = stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        let messages = consumer.messages().await.map_err(unavailable)?;
        Ok(NatsWorkQueue { messages })
    }
}

pub struct NatsSubscription {
    sub: async_nats::Subscriber,
}

impl NatsSubscription {
    pub async fn next(&mut self) -> Option<Message> {
        let m = self.sub.next().await?;
        Some(Message {
            subject: m.subject.to_string(),
            payload: m.payload.to_vec(),
            reply: m.reply.map(|r| r.to_string()),
        })
    }
}

pub struct NatsWorkQueue {
    messages: pull::Stream,
}

impl NatsWorkQueue {
    pub async fn next(&mut self) -> Option<NatsWorkItem> {
        loop {
            match self.messages.next().await? {
                Ok(m) => return Some(NatsWorkItem { message: m }),
                Err(err) => {
                    tracing::warn!(error = %err, "work queue read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

pub struct NatsWorkItem {
    message: jetstream::Message,
}

impl NatsWorkItem {
    pub fn payload(&self) -> &[u8] {
        &self.message.payload
    }

    pub async fn ack(self) -> Result<(), BusError> {
        self.message.double_ack().await.map_err(unavailable)
    }

    pub async fn nack(self) -> Result<(), BusError> {
        self.message.ack_with(jetstream::AckKind::Nak(None)).await.map_err(unavailable)
    }
}
