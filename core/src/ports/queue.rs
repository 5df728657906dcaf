//! Queues: the durable work queue every stage reads ([`Queue`]), and the store's job
//! table ([`Outbox`]) that the embedded queue and the outbox relay run on.

use std::time::Duration;

use async_trait::async_trait;

use super::PortResult;
use crate::model::{DeadJob, Delivery, Job};

/// A durable work queue with at-least-once delivery.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn publish(&self, queue: &str, jobs: &[Job]) -> PortResult<()>;
    /// Up to `max` jobs; waits up to `wait` for the first one.
    async fn receive(&self, queue: &str, max: usize, wait: Duration) -> PortResult<Vec<Delivery>>;
    async fn ack(&self, queue: &str, tags: &[i64]) -> PortResult<()>;
    /// Hands each job out again after its delay.
    async fn retry(&self, queue: &str, jobs: &[(i64, Duration)]) -> PortResult<()>;
    async fn depth(&self, queue: &str) -> PortResult<i64>;
    /// Jobs moved aside after too many deliveries, oldest first.
    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>>;
}

/// The store's job table: jobs committed in the same transaction as the rows they
/// are about (the outbox), leased by the embedded queue (one process) or by the relay
/// that moves them to RabbitMQ (distributed mode). Only the store touches the table.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Adds jobs to `queue`, ready now.
    async fn enqueue(&self, queue: &str, jobs: &[Job]) -> PortResult<()>;
    /// Leases up to `max` ready jobs of `queue` until now + `lease`: the fast lane
    /// first, then the oldest. A job handed out more than `max_deliveries` times, or
    /// unreadable, goes to the dead letters instead.
    async fn lease(
        &self,
        queue: &str,
        max: usize,
        lease: Duration,
        max_deliveries: i32,
    ) -> PortResult<Vec<Delivery>>;
    /// Deletes handled jobs.
    async fn ack(&self, tags: &[i64]) -> PortResult<()>;
    /// Hands each job out again after its delay.
    async fn retry(&self, jobs: &[(i64, Duration)]) -> PortResult<()>;
    async fn depth(&self, queue: &str) -> PortResult<i64>;
    /// Jobs moved aside after too many deliveries, oldest first.
    async fn dead_letters(&self, max: usize) -> PortResult<Vec<DeadJob>>;
    /// Makes every leased job visible again, in its first order. Only the sole
    /// consumer may (the embedded mode, at startup after a crash).
    async fn release_all_leases(&self) -> PortResult<usize>;
    /// Waits at most `max` for a commit of this process that may have added jobs
    /// (SQLite's writer); where commits are not seen (PostgreSQL), sleeps `max`.
    async fn wait_for_commit(&self, max: Duration);
}
