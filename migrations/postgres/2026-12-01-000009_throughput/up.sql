-- A lease (or a retry's delay) moves a job's `available_at` forward: the jobs ready now
-- are one range of (queue, priority, available_at), found without walking past the
-- leased and delayed ones. `locked_until` still marks a lease.
UPDATE jobs SET available_at = locked_until WHERE locked_until > available_at;
DROP INDEX jobs_queue;
CREATE INDEX jobs_ready ON jobs (queue, priority DESC, available_at, id);

-- Webhook deliveries likewise: a lease moves `next_at` to its end.
UPDATE webhook_deliveries SET next_at = locked_until WHERE locked_until > next_at;

-- The events a message's callback_url receives (a JSON array; NULL: all).
ALTER TABLE messages ADD COLUMN callback_events TEXT;

-- The event log is the webhook queue: one reader follows it from its cursor and only
-- failed (or deferred) deliveries become rows. Sequence numbers are taken before
-- commit, so an event can become visible below the highest one read: each event
-- carries its transaction id, and the reader keeps the transactions that were still
-- running when it read (the cursor's `pending`) until they end. The id is assigned
-- before the number, so a transaction holding a number is always one of those.
ALTER TABLE events ADD COLUMN tx BIGINT;
ALTER TABLE events ALTER COLUMN tx SET DEFAULT (pg_current_xact_id()::text::bigint);
CREATE FUNCTION events_next_seq() RETURNS BIGINT AS $$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN nextval('events_seq_seq');
END;
$$ LANGUAGE plpgsql;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT events_next_seq();
CREATE INDEX events_tx ON events (tx);
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
