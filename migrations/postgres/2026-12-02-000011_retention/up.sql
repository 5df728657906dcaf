-- Idempotency records are kept for a retention period (default 7 days), swept by age.
CREATE INDEX idempotency_created ON idempotency_keys (created_at);
