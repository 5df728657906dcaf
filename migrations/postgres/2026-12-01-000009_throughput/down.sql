DROP TABLE webhook_cursor;
DROP INDEX events_tx;
ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq_seq');
DROP FUNCTION events_next_seq();
ALTER TABLE events DROP COLUMN tx;
ALTER TABLE messages DROP COLUMN callback_events;
DROP INDEX jobs_ready;
CREATE INDEX jobs_queue ON jobs (queue, priority DESC, id);
