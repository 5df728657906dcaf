DROP TABLE webhook_cursor;
ALTER TABLE messages DROP COLUMN callback_events;
DROP INDEX jobs_ready;
CREATE INDEX jobs_queue ON jobs (queue, priority DESC, id);
