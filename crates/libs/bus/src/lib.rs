//! RabbitMQ: the one place that knows the topology, the pipeline's message
//! types, publishing with confirms, and the consumer loop with delayed
//! retries and dead-lettering.

mod connection;
pub mod consumer;
pub mod messages;
pub mod topology;

pub use connection::{AmqpSettings, Bus};
pub use consumer::{Incoming, Outcome, Settle, consume, consume_settling};
pub use messages::{BusMessage, DecodeError};
pub use topology::Queue;
