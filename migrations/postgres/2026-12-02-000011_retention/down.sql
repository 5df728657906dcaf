DROP INDEX idempotency_created;
