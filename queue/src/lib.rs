//! Queue backends behind `hermod_core::ports::Queue`.
//!
//! The embedded backend keeps jobs in the `jobs` table of the same database file as
//! the messages, so the API can commit a message and its first job in one transaction
//! (the outbox *is* the queue). A consumer leases a batch; an acknowledged job is
//! deleted; a job whose consumer died becomes visible again when its lease ends (or at
//! once on restart, since one embedded process owns the file). The RabbitMQ backend
//! (distributed mode) implements the same trait.

mod embedded;
mod rabbit;

pub use embedded::EmbeddedQueue;
pub use rabbit::{RabbitQueue, RabbitSettings};
