//! Exchange, queues, dead-letter and delay queues. Every name carries the
//! configured prefix, so several deployments (or tests) share one broker.
//!
//! ```text
//! {p}.pipeline (topic) ──message.received──▶ {p}.chatbot.messages
//!                      ──buffer.flush──────▶ {p}.chatbot.flush
//!                      ──reply.due─────────▶ {p}.chatbot.replies
//!                      ──dialog.ready──────▶ {p}.qualification.dialogs
//!                      ──capi.event────────▶ {p}.capi.events
//! each queue Q: Q.dlq (rejected messages), Q.delay.<ms> (TTL, then back to Q)
//! ```

use crate::messages::{
    BufferFlush, BusMessage, CapiEventQueued, CrmChanged, DialogReady, MessageReceived, ReplyDue,
};
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    ChatbotMessages,
    ChatbotFlush,
    ChatbotReplies,
    QualificationDialogs,
    QualificationCrmChanges,
    CapiEvents,
}

impl Queue {
    pub const ALL: [Queue; 6] = [
        Queue::ChatbotMessages,
        Queue::ChatbotFlush,
        Queue::ChatbotReplies,
        Queue::QualificationDialogs,
        Queue::QualificationCrmChanges,
        Queue::CapiEvents,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Queue::ChatbotMessages => "chatbot.messages",
            Queue::ChatbotFlush => "chatbot.flush",
            Queue::ChatbotReplies => "chatbot.replies",
            Queue::QualificationDialogs => "qualification.dialogs",
            Queue::QualificationCrmChanges => "qualification.crm",
            Queue::CapiEvents => "capi.events",
        }
    }

    pub fn routing_key(self) -> &'static str {
        match self {
            Queue::ChatbotMessages => MessageReceived::ROUTING_KEY,
            Queue::ChatbotFlush => BufferFlush::ROUTING_KEY,
            Queue::ChatbotReplies => ReplyDue::ROUTING_KEY,
            Queue::QualificationDialogs => DialogReady::ROUTING_KEY,
            Queue::QualificationCrmChanges => CrmChanged::ROUTING_KEY,
            Queue::CapiEvents => CapiEventQueued::ROUTING_KEY,
        }
    }

    /// The service that consumes this queue (scale it on the queue's length).
    pub fn consumer(self) -> &'static str {
        match self {
            Queue::ChatbotMessages | Queue::ChatbotFlush | Queue::ChatbotReplies => {
                "chatbot-service"
            }
            Queue::QualificationDialogs | Queue::QualificationCrmChanges => "qualification-agent",
            Queue::CapiEvents => "capi-sender",
        }
    }

    /// The queue a routing key is delivered to.
    pub fn for_routing_key(key: &str) -> Option<Queue> {
        Self::ALL.into_iter().find(|q| q.routing_key() == key)
    }
}

#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    pub fn exchange(&self) -> String {
        format!("{}.pipeline", self.prefix)
    }

    pub fn queue(&self, q: Queue) -> String {
        format!("{}.{}", self.prefix, q.suffix())
    }

    pub fn dead_letter(&self, q: Queue) -> String {
        format!("{}.dlq", self.queue(q))
    }

    pub fn delay(&self, q: Queue, delay_ms: u64) -> String {
        format!("{}.delay.{delay_ms}", self.queue(q))
    }
}

fn dead_letter_to(queue: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(queue.into()),
    );
    args
}

/// Declares the exchange, every queue with its dead-letter queue, and the bindings. Idempotent.
pub async fn declare(channel: &Channel, names: &Names) -> lapin::Result<()> {
    let exchange = names.exchange();
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    for q in Queue::ALL {
        let (queue, dlq) = (names.queue(q), names.dead_letter(q));
        channel
            .queue_declare(
                dlq.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::durable(),
                dead_letter_to(&dlq),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                q.routing_key().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// A queue that holds messages for `delay_ms`, then dead-letters them back to `q`.
pub async fn declare_delay(
    channel: &Channel,
    names: &Names,
    q: Queue,
    delay_ms: u64,
) -> lapin::Result<String> {
    let name = names.delay(q, delay_ms);
    let mut args = dead_letter_to(&names.queue(q));
    args.insert(
        "x-message-ttl".into(),
        AMQPValue::LongLongInt(delay_ms.min(i64::MAX as u64) as i64),
    );
    channel
        .queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args)
        .await?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_routing_key_has_exactly_one_queue() {
        for q in Queue::ALL {
            assert_eq!(Queue::for_routing_key(q.routing_key()), Some(q));
        }
        let n = Names::new("t1");
        assert_eq!(n.queue(Queue::CapiEvents), "t1.capi.events");
        assert_eq!(
            n.delay(Queue::ChatbotFlush, 5000),
            "t1.chatbot.flush.delay.5000"
        );
    }
}
