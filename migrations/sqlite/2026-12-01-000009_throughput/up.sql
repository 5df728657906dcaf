-- A lease (or a retry's delay) moves a job's `available_at` forward: the jobs ready now
-- are one range of (queue, priority, available_at), found without walking past the
-- leased and delayed ones. `locked_until` still marks a lease (released at start).
UPDATE jobs SET available_at = locked_until WHERE locked_until > available_at;
DROP INDEX jobs_queue;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, available_at, id);

-- Webhook deliveries likewise: a lease moves `next_at` to its end.
UPDATE webhook_deliveries SET next_at = locked_until WHERE locked_until > next_at;

-- The events a message's callback_url receives (a JSON array; NULL: all).
ALTER TABLE messages ADD COLUMN callback_events TEXT;

-- The event log is the webhook queue: one reader follows it from its cursor and only
-- failed (or deferred) deliveries become rows. Events before this migration went out
-- through rows already.
CREATE TABLE webhook_cursor (
    name TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL,
    pending TEXT NOT NULL DEFAULT '',
    holder TEXT NOT NULL DEFAULT '',
    lease_until BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);
INSERT INTO webhook_cursor (name, seq, updated_at)
    SELECT 'events', COALESCE(MAX(seq), 0), 0 FROM events;
