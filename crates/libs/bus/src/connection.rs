//! One broker connection per process, (re)opened on demand, with a
//! confirm-mode channel for publishing.

use crate::{
    messages::{BusMessage, encode},
    topology::{self, Names, Queue},
};
use anyhow::{Context, anyhow};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, FieldTable},
};
use serde::Deserialize;
use std::{collections::HashSet, fmt, sync::Mutex as StdMutex, time::Duration};
use tokio::sync::Mutex;
use uuid::Uuid;

/// `[amqp]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// `amqp://user:pass@host:port/vhost`; may hold a password, so never printed.
    pub url: String,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Unacknowledged messages a consumer channel holds at once.
    pub prefetch: u16,
    /// Channels consuming each queue, each with its own prefetch. RabbitMQ's
    /// cost per acknowledgement grows with a channel's unacknowledged count,
    /// so a large in-flight window is cheaper spread over several channels.
    pub channels: u16,
}

impl fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("channels", &self.channels)
            .finish()
    }
}

struct Link {
    connection: Connection,
    publisher: Channel,
}

pub struct Bus {
    settings: AmqpSettings,
    names: Names,
    link: Mutex<Option<Link>>,
    /// The channel queue depths are asked on: not the publisher's, since a
    /// busy queue answers a declare seconds late and the broker handles a
    /// channel's methods in order (publishes would wait behind it).
    counter: Mutex<Option<Channel>>,
    delay_queues: StdMutex<HashSet<String>>,
}

pub(crate) const ATTEMPT_HEADER: &str = "x-attempt";

/// How long [`Bus::check`] waits for the broker: one that takes the socket
/// and never answers reads as unreachable instead of holding `/ready` open.
/// (Kubernetes gives up on a probe after its own `timeoutSeconds`, 1 s by
/// default.)
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Each distinct delay is a queue, so delays are rounded up to a coarse grid:
/// 100 ms steps up to 10 s, whole seconds up to a minute, whole minutes after.
pub(crate) fn delay_bucket_ms(delay: Duration) -> u64 {
    let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX).max(1);
    let step = match ms {
        0..=10_000 => 100,
        10_001..=60_000 => 1_000,
        _ => 60_000,
    };
    ms.div_ceil(step).saturating_mul(step).min(24 * 3_600_000)
}

impl Bus {
    /// A bus that connects on first use (and again after the broker drops it).
    pub fn new(settings: AmqpSettings) -> Self {
        let names = Names::new(&settings.prefix);
        Bus {
            settings,
            names,
            link: Mutex::new(None),
            counter: Mutex::new(None),
            delay_queues: StdMutex::new(HashSet::new()),
        }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn prefetch(&self) -> u16 {
        self.settings.prefetch.max(1)
    }

    /// Consumer channels per queue.
    pub fn consumer_channels(&self) -> u16 {
        self.settings.channels.max(1)
    }

    /// Connects if needed and declares the topology; returns the publishing channel.
    async fn publisher(&self) -> anyhow::Result<Channel> {
        let mut link = self.link.lock().await;
        if let Some(l) = link.as_ref()
            && l.connection.status().connected()
            && l.publisher.status().connected()
        {
            return Ok(l.publisher.clone());
        }
        *link = None;
        let connection = Connection::connect(&self.settings.url, ConnectionProperties::default())
            .await
            .context("connecting to RabbitMQ")?;
        let publisher = connection.create_channel().await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        topology::declare(&publisher, &self.names)
            .await
            .context("declaring the topology")?;
        if let Ok(mut d) = self.delay_queues.lock() {
            d.clear();
        }
        *link = Some(Link {
            connection,
            publisher: publisher.clone(),
        });
        Ok(publisher)
    }

    /// A fresh channel on the shared connection, for a consumer.
    pub async fn open_channel(&self) -> anyhow::Result<Channel> {
        self.publisher().await?;
        let link = self.link.lock().await;
        let l = link
            .as_ref()
            .ok_or_else(|| anyhow!("RabbitMQ connection lost"))?;
        Ok(l.connection.create_channel().await?)
    }

    /// True when the broker answers now: a channel opened and closed on the
    /// connection (connecting first if needed). The connection's own status
    /// is not enough: a cut socket reads as connected until the next read
    /// fails, so `/ready` would say "reachable" for a broker already gone.
    /// Opening a channel is the connection process's work, never a queue's,
    /// so a busy queue does not slow the answer.
    pub async fn check(&self) -> bool {
        let probe = async {
            let channel = self.open_channel().await?;
            channel.close(200, "readiness probe".into()).await?;
            anyhow::Ok(())
        };
        matches!(tokio::time::timeout(CHECK_TIMEOUT, probe).await, Ok(Ok(())))
    }

    async fn drop_link(&self) {
        *self.link.lock().await = None;
    }

    async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: Uuid,
        payload: &[u8],
        attempt: u32,
    ) -> anyhow::Result<()> {
        let channel = self.publisher().await?;
        let mut headers = FieldTable::default();
        headers.insert(
            ATTEMPT_HEADER.into(),
            AMQPValue::LongLongInt(i64::from(attempt)),
        );
        let props = BasicProperties::default()
            .with_message_id(message_id.to_string().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let result = async {
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    payload,
                    props,
                )
                .await?
                .await?;
            if !confirm.is_ack() {
                return Err(anyhow!("broker refused message {message_id}"));
            }
            if confirm.take_message().is_some() {
                return Err(anyhow!(
                    "message {message_id} was unroutable ({routing_key})"
                ));
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            self.drop_link().await;
        }
        result
    }

    /// Publishes to the pipeline exchange and waits for the broker's confirm.
    pub async fn publish(
        &self,
        routing_key: &str,
        message_id: Uuid,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        self.publish_raw(&self.names.exchange(), routing_key, message_id, payload, 1)
            .await
    }

    /// Delivers to `queue` after `delay` (through a TTL queue), confirmed.
    pub async fn publish_delayed(
        &self,
        queue: Queue,
        delay: Duration,
        message_id: Uuid,
        payload: &[u8],
        attempt: u32,
    ) -> anyhow::Result<()> {
        let ms = delay_bucket_ms(delay);
        let name = self.names.delay(queue, ms);
        let known = self
            .delay_queues
            .lock()
            .map(|d| d.contains(&name))
            .unwrap_or(false);
        if !known {
            let channel = self.publisher().await?;
            topology::declare_delay(&channel, &self.names, queue, ms).await?;
            if let Ok(mut d) = self.delay_queues.lock() {
                d.insert(name.clone());
            }
        }
        self.publish_raw("", &name, message_id, payload, attempt)
            .await
    }

    /// Publishes a typed message (outside any outbox: use only where losing
    /// it on a crash is impossible, e.g. when the caller acks after this).
    pub async fn publish_message<M: BusMessage>(&self, m: &M) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(&encode(m))?;
        self.publish(M::ROUTING_KEY, Uuid::new_v4(), &payload).await
    }

    /// Messages waiting in `queue`'s dead-letter queue (for operators and tests).
    pub async fn dead_letter_depth(&self, queue: Queue) -> anyhow::Result<u32> {
        self.depth(&self.names.dead_letter(queue)).await
    }

    /// Messages ready in `queue` (not counting those a consumer holds).
    pub async fn queue_depth(&self, queue: Queue) -> anyhow::Result<u32> {
        self.depth(&self.names.queue(queue)).await
    }

    /// A passive declare, on a channel of its own (`counter`), opened again
    /// after an error (a missing queue closes it).
    async fn depth(&self, name: &str) -> anyhow::Result<u32> {
        let mut counter = self.counter.lock().await;
        let channel = match counter.as_ref() {
            Some(c) if c.status().connected() => c.clone(),
            _ => {
                let c = self.open_channel().await?;
                *counter = Some(c.clone());
                c
            }
        };
        let declared = channel
            .queue_declare(
                name.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if declared.is_err() {
            *counter = None;
        }
        Ok(declared?.message_count())
    }

    /// Closes the connection (at shutdown).
    pub async fn close(&self) {
        if let Some(l) = self.link.lock().await.take() {
            let _ = l.connection.close(200, "shutdown".into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_round_up_to_a_small_set_of_queues() {
        assert_eq!(delay_bucket_ms(Duration::from_millis(5000)), 5000);
        assert_eq!(delay_bucket_ms(Duration::from_millis(1)), 100);
        assert_eq!(delay_bucket_ms(Duration::from_millis(12_345)), 13_000);
        assert_eq!(delay_bucket_ms(Duration::from_secs(61)), 120_000);
        assert_eq!(
            delay_bucket_ms(Duration::from_secs(86_400 * 30)),
            86_400_000
        );
    }
}
